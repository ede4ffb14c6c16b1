# port/common/keystore.py: the node's key file is owner-only from the moment it exists, on the
# real MicroPython unix port (no os.open, chmod or umask there) and on CPython.

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
SEED_HEX = bytes(range(32)).hex()

# Runs on MicroPython: spy on open() inside keystore to record the file's mode at the moment
# it is opened for the secret (i.e. as soon as our code can see it), then write a key.
SCRIPT = """
import sys, os
sys.path.insert(0, %(root)r)
sys.path.insert(0, %(root)r + "/port/common")
import keystore
seen = []
real_open = open
def spy(path, mode="r"):
    f = real_open(path, mode)
    seen.append(os.stat(path)[0] & 0o777)
    return f
keystore.open = spy
path = %(path)r
keystore.write_secret_key(path, bytes(range(32)))
print("MODES", [oct(m) for m in seen], oct(os.stat(path)[0] & 0o777))
print("KEY", keystore.read_secret_key(path) == bytes(range(32)))
try:
    os.stat(path + ".tmp")
    print("TMP left")
except OSError:
    print("TMP gone")
"""


def _run_mp(tmp_path, path):
    if not os.path.exists(MICROPYTHON):
        pytest.fail("MicroPython unix port missing at %s: run `make venv`" % MICROPYTHON)
    script = tmp_path / "ks.py"
    script.write_text(SCRIPT % {"root": ROOT, "path": str(path)})
    # umask 0: whatever is created with default permissions would be world-readable (0666).
    p = subprocess.run([MICROPYTHON, str(script)], capture_output=True, text=True, timeout=60,
                       preexec_fn=lambda: os.umask(0))
    assert p.returncode == 0, p.stderr + p.stdout
    return p.stdout


def test_micropython_unix_key_file_is_owner_only_from_creation(tmp_path):
    out = _run_mp(tmp_path, tmp_path / "node.key")
    assert "MODES ['0o600'] 0o600" in out, out
    assert "KEY True" in out and "TMP gone" in out, out
    assert (tmp_path / "node.key").read_text() == SEED_HEX + "\n"


def test_micropython_unix_planted_symlink_is_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(str(victim), str(tmp_path / "node.key.tmp"))
    out = _run_mp(tmp_path, tmp_path / "node.key")
    assert "MODES ['0o600'] 0o600" in out, out
    assert victim.read_text() == "precious\n"
    assert not os.path.islink(str(tmp_path / "node.key"))


def test_cpython_key_file_is_created_0600_with_umask_0(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "port", "common"))
    try:
        import keystore
    finally:
        sys.path.pop(0)
    modes = []
    real_fdopen = os.fdopen

    def spy(fd, *a, **kw):
        modes.append(os.fstat(fd).st_mode & 0o777)
        return real_fdopen(fd, *a, **kw)

    monkeypatch.setattr(os, "fdopen", spy)
    old = os.umask(0)
    try:
        keystore.write_secret_key(str(tmp_path / "k"), bytes(range(32)))
    finally:
        os.umask(old)
    assert modes == [0o600]
    assert os.stat(str(tmp_path / "k")).st_mode & 0o777 == 0o600
