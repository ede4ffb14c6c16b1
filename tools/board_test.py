#!/usr/bin/env python3
"""`make board-test`: the device self-test and a node session on the board-like interpreters.

Runs, from .mpy files (tools/board_emulator.py builds the trees):
  * Cortex-M0 emulator (armv6m, 140 KiB heap, QEMU): tests/device/selftest.py and
    tests/device/node_checks.py (the node's queue with the board's single-precision floats)
    from a mounted tree, and tests/device/node_session.py (the whole node, 100 readings,
    in-process collector peer) in protocol 1 and in protocol 2 (and protocol 2 over the link
    layer), each from a fresh board filesystem into which mpremote's `mip install --target
    /remote/lib` installed the armv6m package of `ossuary-deploy --write-mip-package` (the
    issue 7 item 3 install path);
  * i386 unix build (31-bit small ints, 4-byte words): the node sessions with `-X
    heapsize=64K` (--heap; `make board-test` passes BOARD_HEAP, 64K, issue 7's figure: both
    protocols fit, this machine, 2026-12-03), the protocol 2 node over the serial link layer
    (a UART node's default) with 80K (--link-heap), the self-test and node checks with 96K
    (--selftest-heap: the self-test also loads the pure backend). A run given more than 64K
    prints that target as MISSED.
Each emulator that is not installed here (../shared/tools/board-emulator, qemu-system-arm,
libc6-i386) is reported as SKIPPED with the reason. Prints one line per run with the heap
figures, then `N passed, N failed, N skipped`. Exit 0 when nothing failed (skips included),
1 otherwise.

    python tools/board_test.py [--heap 64K] [--link-heap 80K] [--selftest-heap 96K] [--only m0|i386]
                               [--json]
"""

import argparse
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import board_emulator  # noqa: E402

SELFTEST = "import sys; sys.path.append('tests/device'); import selftest; selftest.main()\n"
# The i386 node sessions' heap (make board-test's BOARD_HEAP and bench/run.py use it too).
HEAP = "64K"
# ... and that of the serial node over the link layer (a UART node's default config), which
# loads the link's code too (--link-heap).
LINK_HEAP = "80K"

# The node's own code where a board's MicroPython differs from CPython (single-precision
# floats, 31-bit small ints): tests/device/node_checks.py, in the self-test's heap.
NODE_CHECKS = ("import sys; sys.path.append('tests/device'); import node_checks; "
               "node_checks.main()\n")

SESSION = ("import sys; sys.path.append('tests/device'); import node_session; "
           "node_session.main(%d, protocol=%d, link=%s)\n")


def figures(out):
    """{name: int} from a node_session run's `key value` lines, plus max_block in bytes."""
    f = {}
    for k, v in re.findall(r"^([a-z_]+) (-?\d+)\s*$", out, re.M):
        f[k] = int(v)
    m = re.search(r"n_qstr=(\d+)", out)
    if m:
        f["qstrs"] = int(m.group(1))
    blocks = [int(b) for b in re.findall(r"max blk sz: (\d+)", out)]
    if blocks and "block_bytes" in f:
        f["max_block"] = max(blocks) * f["block_bytes"]
    return f


def selftest_ok(out):
    m = re.search(r"^(\d+) passed, (\d+) failed\s*$", out, re.M)
    return bool(m) and int(m.group(2)) == 0 and int(m.group(1)) > 0


def session_ok(out, count):
    return re.search(r"^readings %d ok\s*$" % count, out, re.M) is not None


def _session_code(count, protocol, lib=None, link=False):
    # The node session's run script; `lib`: the board's mip target, put on sys.path as a
    # board's /lib is; `link`: the node over the serial link layer.
    pre = "import sys; sys.path.append(%r)\n" % lib if lib else ""
    return pre + SESSION % (count, protocol, link)


def _mip_board(work, name):
    """A fresh board filesystem for the M0 (mounted at /remote): the test harness compiled
    into tests/device, and the package `ossuary-deploy --write-mip-package --board rp2`
    writes (armv6m .mpy), to be installed by mpremote's mip into /remote/lib. Returns
    (board dir, package.json)."""
    from host_tools import deploy
    exe = board_emulator._mpy_cross()
    pkg = deploy.write_mip_package("armv6m", os.path.join(work, name + "-pkg"), [exe])
    board = os.path.join(work, name)
    for f in ("selftest.py", "node_session.py", "link_peer.py"):
        board_emulator.compile_one("armv6m", os.path.join(board_emulator.ROOT, "tests", "device", f),
                                   os.path.join(board, "tests", "device", f[:-3] + ".mpy"), exe)
    return board, pkg


def _installed(board, pkg):
    # "" when every file the package names was installed under lib/ and the board holds no
    # .py of the library (nothing could be compiled on the board); else what is wrong.
    with open(pkg) as f:
        urls = json.load(f)["urls"]
    lib = os.path.join(board, "lib")
    missing = [d for d, _ in urls if not os.path.isfile(os.path.join(lib, d))]
    py = [f for _, _, fs in os.walk(lib) for f in fs if f.endswith(".py")]
    if missing or py:
        return "mip install incomplete: missing %s, .py %s" % (missing[:3], py[:3])
    return ""


def run_target(target, heap, count, work, selftest_heap=None, protocols=(1, 2), link_heap=None):
    """[(name, status, detail, figures)] for one emulator; status ok / FAILED / SKIPPED.
    On i386 the node sessions run with `heap`, the self-test with `selftest_heap` (default
    `heap`), and with `link_heap` a protocol 2 session over the serial link layer (a UART
    node's default) runs too, in that heap; the M0's heap is fixed at 140 KiB, and its node sessions run from a package
    installed by `mpremote mip install` (the .mpy files `ossuary-deploy --write-mip-package`
    makes for armv6m) into the emulated board's filesystem."""
    missing = board_emulator.m0_missing() if target == "m0" else board_emulator.i386_missing()
    if missing:
        return [("m0 (140 KiB)" if target == "m0" else "i386", "SKIPPED", missing, {})]
    tree = os.path.join(work, target)
    board_emulator.build_mpy("armv6m" if target == "m0" else "x86", tree)
    runs = [("selftest", SELFTEST, selftest_ok, selftest_heap or heap, None),
            ("node checks", NODE_CHECKS, selftest_ok, selftest_heap or heap, None)]
    for p in protocols:
        runs.append(("node session %d readings, protocol %d" % (count, p),
                     _session_code(count, p, "/remote/lib" if target == "m0" else None),
                     lambda out: session_ok(out, count), heap, p))
    if link_heap:
        runs.append(("node session %d readings, protocol 2 over the link layer" % count,
                     _session_code(count, 2, "/remote/lib" if target == "m0" else None, True),
                     lambda out: session_ok(out, count), link_heap, 2))
    results = []
    for name, code, check, h, proto in runs:
        label = "m0 (140 KiB)" if target == "m0" else "i386 (heap %s)" % h
        tag = "%s_%s_%s%s" % (target, name.split()[0], proto, "_link" if "link" in name else "")
        script = os.path.join(work, tag + ".py")
        with open(script, "w") as f:
            f.write(code)
        problem = ""
        if target == "m0" and proto:
            label = "m0 (140 KiB, mip-installed)"
            board, pkg = _mip_board(work, "board-" + tag)
            ok, out = board_emulator.run_m0(
                board, script, timeout=900,
                setup=("mip", "install", "--target", "/remote/lib", pkg))
            problem = _installed(board, pkg)
        elif target == "m0":
            ok, out = board_emulator.run_m0(tree, script, timeout=900)
        else:
            ok, out = board_emulator.run_i386(tree, script, heap=h, timeout=900)
        passed = ok and check(out) and not problem
        tail = [ln for ln in out.splitlines() if ln.strip()][-3:]
        results.append(("%s: %s" % (label, name), "ok" if passed else "FAILED",
                        "" if passed else " | ".join(([problem] if problem else []) + tail),
                        figures(out)))
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heap", default=HEAP, help="i386 heap of the node sessions (default %s)" % HEAP)
    ap.add_argument("--selftest-heap", default="96K", help="i386 heap of the self-test (96K)")
    ap.add_argument("--link-heap", default=LINK_HEAP,
                    help="i386 heap of the session over the link layer (default %s; 0: skip it)"
                         % LINK_HEAP)
    ap.add_argument("--only", choices=("m0", "i386"))
    ap.add_argument("--count", type=int, default=100, help="readings in the node session")
    ap.add_argument("--json", action="store_true", help="print the results as JSON at the end")
    args = ap.parse_args(argv)
    targets = [args.only] if args.only else ["m0", "i386"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="board-test-") as work:
        for t in targets:
            try:
                rows.extend(run_target(t, args.heap, args.count, work, args.selftest_heap,
                                       link_heap=None if args.link_heap == "0" else args.link_heap))
            except board_emulator.EmulatorError as e:
                rows.append((t, "FAILED", str(e), {}))
    counts = {"ok": 0, "FAILED": 0, "SKIPPED": 0}
    for name, status, detail, fig in rows:
        counts[status] += 1
        heap = ""
        if "heap_peak" in fig:
            heap = (" heap peak %d B (node %d B, in-process peer %d B, boot %d B, largest block"
                    " %s B, %s qstrs)" % (fig["heap_peak"], fig["node_peak"], fig["peer"],
                                fig.get("boot_peak", 0), fig.get("max_block", "?"),
                                fig.get("qstrs", "?")))
        print("%-7s %s%s%s" % (status, name, heap, (": " + detail) if detail else ""))
    for proto in (2, 1):
        # Only runs that passed: a failed run's peak is that of a node that never got far.
        peaks = [(n.split(":")[0], f["node_peak"]) for n, st, _, f in rows
                 if st == "ok" and "node_peak" in f and n.endswith("protocol %d" % proto)]
        if peaks:
            # Issue 7's target for a 32-bit board, code loaded from .mpy included; protocol 2
            # is what the node runs by default once the collector speaks it.
            worst = max(v for _, v in peaks)
            print("target node peak <= 48 KiB (49152 B) on 32-bit, protocol %d: %s: %s"
                  % (proto, ", ".join("%s %d B" % p for p in peaks),
                     "MET" if worst <= 49152 else "MISSED"))
    peaks = ["%s %d B" % (n.split(":")[0], f["node_peak"]) for n, st, _, f in rows
             if st == "ok" and "node_peak" in f and n.endswith("link layer")]
    if peaks:
        # Not the target's run (the session is the channel on a UART-like stream),
        # but what a UART node in its default configuration needs: said beside it.
        print("serial node over the link layer (a UART's default), protocol 2: %s"
              % ", ".join(peaks))
    for n, status, _, _ in rows:
        if n.startswith("i386") and "session" in n and not n.endswith("link layer"):
            # Issue 7's i386 target: the node session in a 64 KiB heap.
            k = int(n.split("heap ")[1].split("K")[0])
            print("target i386 node session in 64 KiB (%s): %s" % (n.split(", ")[-1], (
                "MET" if status == "ok" and k <= 64 else "MISSED (ran with %dK: %s)" % (k, status))))
    print("%d passed, %d failed, %d skipped" % (counts["ok"], counts["FAILED"], counts["SKIPPED"]))
    if args.json:
        print(json.dumps([{"run": n, "status": s, "detail": d, "figures": f}
                          for n, s, d, f in rows]))
    return 1 if counts["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
