# pytest glue: make the project root importable and show, at the end of the run, how many
# Wycheproof cases ran on each crypto backend (so `make test` output proves they all ran).

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests.portable._util import WYCHEPROOF_TALLY

    if not WYCHEPROOF_TALLY:
        return
    files = {}
    for (name, backend), n in WYCHEPROOF_TALLY.items():
        files.setdefault(name, []).append((backend, n))
    terminalreporter.section("wycheproof cases per backend (CPython, and MicroPython runs)")
    for name in sorted(files):
        terminalreporter.write_line("wycheproof %s: %s" % (
            name, ", ".join("%s %d" % bn for bn in sorted(files[name]))))
