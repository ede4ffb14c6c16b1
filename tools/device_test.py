#!/usr/bin/env python3
"""Run tests/device/selftest.py on the CI MicroPython interpreters, or on a board.

  python tools/device_test.py                      unix port (.venv/bin/micropython) and the
                                                   WebAssembly port (node tools/mpwasm/run.mjs)
  python tools/device_test.py --port /dev/ttyACM0  a board, via
                                                   `mpremote connect PORT mount . run tests/device/selftest.py`

Prints each run's output, then one `NAME: N passed, N failed` line per run and a final
`N passed, N failed`. Exit codes: 0 all passed; 1 a check failed; 2 bad usage; 3 a run did not
complete (no summary line, crash, timeout); 4 an interpreter or mpremote is missing.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
SELFTEST = "tests/device/selftest.py"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")

EXIT_FAILED, EXIT_INCOMPLETE, EXIT_MISSING = 1, 3, 4


class Missing(Exception):
    pass


def _mpremote():
    exe = os.path.join(VENV_BIN, "mpremote")
    if os.path.exists(exe):
        return [exe]
    found = shutil.which("mpremote")
    if found:
        return [found]
    raise Missing("mpremote not found: run `make venv`")


def commands(port):
    """(name, argv) of each run to do."""
    if port:
        return [("board " + port, _mpremote() + ["connect", port, "mount", ".", "run", SELFTEST])]
    mp = os.path.join(VENV_BIN, "micropython")
    if not os.path.exists(mp):
        raise Missing("MicroPython unix port missing at %s: run `make venv`" % mp)
    node = os.path.join(VENV_BIN, "node")
    if not os.path.exists(node):
        node = shutil.which("node")
    if not node:
        raise Missing("node not found: the WebAssembly MicroPython needs Node.js 20")
    if not os.path.isdir(os.path.join(ROOT, "tools", "mpwasm", "node_modules")):
        raise Missing("tools/mpwasm/node_modules missing: run `make venv`")
    return [("unix", [mp, SELFTEST]),
            ("wasm", [node, os.path.join(ROOT, "tools", "mpwasm", "run.mjs"), SELFTEST])]


def run_one(name, argv, timeout):
    """Run one self-test; return (passed, failed) or None when it did not complete."""
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print("%s: timed out after %d s" % (name, timeout))
        return None
    except OSError as e:
        print("%s: cannot run %s: %s" % (name, argv[0], e))
        return None
    sys.stdout.write(proc.stdout)
    if proc.stderr.strip():
        sys.stdout.write(proc.stderr)
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    m = SUMMARY.match(lines[-1]) if lines else None
    if not m:
        print("%s: no 'N passed, N failed' line (exit %d)" % (name, proc.returncode))
        return None
    return int(m.group(1)), int(m.group(2))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", help="serial port of a board (e.g. /dev/ttyACM0)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per run (default 600)")
    args = ap.parse_args(argv)
    try:
        runs = commands(args.port)
    except Missing as e:
        print("device_test: %s" % e, file=sys.stderr)
        return EXIT_MISSING
    results = []
    for name, cmd in runs:
        print("== %s: %s" % (name, " ".join(cmd)))
        results.append((name, run_one(name, cmd, args.timeout)))
    total_p = total_f = 0
    incomplete = False
    for name, res in results:
        if res is None:
            print("%s: did not complete" % name)
            incomplete = True
        else:
            print("%s: %d passed, %d failed" % (name, res[0], res[1]))
            total_p += res[0]
            total_f += res[1]
    print("%d passed, %d failed" % (total_p, total_f))
    if incomplete:
        return EXIT_INCOMPLETE
    return EXIT_FAILED if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
