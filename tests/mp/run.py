# MicroPython test runner for tests/portable: imports test modules, runs their test_* functions.
#
#   micropython tests/mp/run.py [-v] [--no-tests] [MODULE ...]   (from the project root)
#   node tools/mpwasm/run.mjs tests/mp/run.py [-v] [MODULE ...]
#
# MODULE is `test_crypto_rfc`, `tests.portable.test_crypto_rfc` or `tests/portable/test_x.py`;
# none means every tests/portable/test_*.py. Prints the interpreter, its small-int width, one
# block per failure (name + traceback), the Wycheproof tally, and as the very last line exactly
# `N passed, N failed`. Exits 1 when anything failed (the wasm port ignores exit codes, so
# tools/mpwasm/run.mjs reads that last line instead).

import sys
import gc

try:
    import time

    _ticks_ms = time.ticks_ms
    _ticks_diff = time.ticks_diff
except (ImportError, AttributeError):  # CPython (only for trying the runner there)
    import time

    def _ticks_ms():
        return int(time.monotonic() * 1000)

    def _ticks_diff(a, b):
        return a - b


def _root():
    # The project root: the runner lives at <root>/tests/mp/run.py.
    f = globals().get("__file__") or (sys.argv[0] if sys.argv else "")
    f = f.replace("\\", "/")
    for _ in range(3):
        i = f.rfind("/")
        f = f[:i] if i >= 0 else ""
    return f or "."


def small_int_bits():
    """Bits of a non-negative small int (value bits + sign): the largest shift that still does not
    allocate, found under heap_lock (a big int needs the heap, so creating one raises
    MemoryError). 31 on the boards and the wasm port, 63 on the 64-bit unix port. None when
    heap_lock is missing (CPython)."""
    try:
        import micropython

        lock = micropython.heap_lock
        unlock = micropython.heap_unlock
    except (ImportError, AttributeError):
        return None
    v = 1
    bits = 1
    lock()
    try:
        while bits < 200:
            v = v << 1  # allocates (MemoryError under the lock) once v is no longer small
            bits += 1
    except MemoryError:
        pass
    finally:
        unlock()
    # v == 1 << (bits - 1) was the largest small power of two; the largest small int is then
    # 2 ** bits - 1, so with the sign bit a small int has bits + 1 bits.
    return bits + 1


def _module_names(args):
    names = []
    for a in args:
        a = a.replace("\\", "/")
        if a.endswith(".py"):
            a = a[:-3]
        a = a.replace("/", ".")
        if "." not in a:
            a = "tests.portable." + a
        names.append(a)
    return names


def _discover(root):
    import os

    found = []
    for name in sorted(os.listdir(root + "/tests/portable")):
        if name.startswith("test_") and name.endswith(".py"):
            found.append("tests.portable." + name[:-3])
    return found


def _import(name):
    mod = __import__(name)
    for part in name.split(".")[1:]:
        mod = getattr(mod, part)
    return mod


def _tests_of(mod):
    # Definition order is not kept by MicroPython module dicts; sort for a stable order.
    names = []
    for k in dir(mod):
        if k.startswith("test_") and callable(getattr(mod, k)):
            names.append(k)
    names.sort()
    return names


def run(modules, verbose=False):
    """Run every test_* function of `modules`; return (passed, failed)."""
    passed = 0
    failed = 0
    for name in modules:
        t_mod = _ticks_ms()
        try:
            mod = _import(name)
        except Exception as e:  # noqa: BLE001 - a module that does not import is one failure
            failed += 1
            print("FAIL %s (import)" % name)
            sys.print_exception(e)
            continue
        mod_passed = 0
        mod_failed = 0
        for tname in _tests_of(mod):
            fn = getattr(mod, tname)
            t0 = _ticks_ms()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - any exception is a failed test
                mod_failed += 1
                print("FAIL %s.%s" % (name, tname))
                sys.print_exception(e)
            else:
                mod_passed += 1
                if verbose:
                    print("  ok %s.%s (%d ms)" % (name, tname, _ticks_diff(_ticks_ms(), t0)))
            gc.collect()
        print("%s: %d passed, %d failed in %d ms" % (
            name, mod_passed, mod_failed, _ticks_diff(_ticks_ms(), t_mod)))
        passed += mod_passed
        failed += mod_failed
    return passed, failed


def _print_tally():
    try:
        from tests.portable._util import WYCHEPROOF_TALLY
    except ImportError:
        return
    if not WYCHEPROOF_TALLY:
        print("wycheproof: no cases run")
        return
    keys = sorted(WYCHEPROOF_TALLY.keys())
    print("wycheproof: " + ", ".join(
        "%s[%s]=%d" % (k[0], k[1], WYCHEPROOF_TALLY[k]) for k in keys))


def main(argv):
    verbose = False
    header_only = False
    args = []
    for a in argv:
        if a == "-v":
            verbose = True
        elif a == "--no-tests":  # print the interpreter lines only
            header_only = True
        else:
            args.append(a)
    root = _root()
    if root not in sys.path:
        sys.path.insert(0, root)
    impl = sys.implementation
    print("interpreter: %s %s on %s, small ints %s bits" % (
        impl.name, ".".join(str(x) for x in impl.version[:3]), sys.platform, small_int_bits()))
    try:
        from ossuary_micro.crypto import available_backends

        print("backends: %s" % ", ".join(available_backends()))
    except Exception as e:  # noqa: BLE001 - still run the tests, they will show the problem
        print("backends: unavailable (%r)" % (e,))
    if header_only:
        print("0 passed, 0 failed")
        return 0
    modules = _module_names(args) if args else _discover(root)
    passed, failed = run(modules, verbose)
    _print_tally()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    _rc = main(sys.argv[1:])
    # The unix port takes the exit code; the wasm runner reads the last line (its SystemExit
    # handling would also work, but a clean end keeps its output simplest).
    if _rc and sys.platform != "webassembly":
        sys.exit(_rc)
