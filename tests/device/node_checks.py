# On-device checks of the node's own code (port/common/node.py) where a board's MicroPython
# differs from CPython: the boards' floats are single precision (exact integers only up to
# 2**24) and their small ints are 31 bits. tools/board_test.py runs this on the Cortex-M0
# emulator (single-precision floats, as rp2 and esp32 builds) and on the i386 build, from .mpy:
#   import sys; sys.path.append('tests/device'); import node_checks; node_checks.main()
# The last line is exactly `N passed, N failed`.

import sys

for _p in ("", ".", "port/common", "../../port/common"):
    if _p not in sys.path:
        sys.path.append(_p)


def check_queue_uptimes():
    # Uptimes past 4.7 h (2**24 ms), past 12 days (2**30: a big int on a board) and past
    # 49 days (2**32) come back exactly as queued, and values as the board's float holds them.
    from node import ReadingQueue
    q = ReadingQueue(4)
    ups = (2 ** 24 + 1, 2 ** 30 + 3, 2 ** 32 + 5, 2 ** 40 + 7)
    for k, up in enumerate(ups):
        q.append(k, 20.5 + k, up)
    got = [q.get(s) for s in range(4)]
    want = [(k, 20.5 + k, up) for k, up in enumerate(ups)]
    if got != want:
        raise ValueError("queue returned %r, not %r" % (got, want))


def main():
    passed = failed = 0
    for name, fn in (("queue uptimes", check_queue_uptimes),):
        try:
            fn()
            passed += 1
            print("ok", name)
        except Exception as e:  # noqa: BLE001 (a device report: every failure is a line)
            failed += 1
            print("FAILED", name, repr(e))
    print("%d passed, %d failed" % (passed, failed))


if __name__ == "__main__":
    main()
