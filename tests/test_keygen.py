# ossuary-keygen: key files are created owner-only, never overwritten without --force,
# and the printed public key matches the secret.

import os
import stat
import subprocess
import sys

import pytest

from ossuary_micro.crypto import get_backend
from ossuary_micro.keys import parse_key
from host_tools.keygen import main, load_or_create
from host_tools.keyfile import read_secret_key, KeyFileError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "host_tools.keygen"] + list(args),
                          capture_output=True, text=True, env=env, timeout=60)


def test_creates_0600_and_prints_public_hex(tmp_path):
    path = str(tmp_path / "node.key")
    old = os.umask(0)           # even a permissive umask must not widen the mode
    try:
        r = run(path)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pub_hex = r.stdout.strip()
    assert len(pub_hex) == 64 and pub_hex == pub_hex.lower()
    seed = read_secret_key(path)
    assert get_backend().ed25519_public(seed) == parse_key(pub_hex)
    # the secret never reaches the terminal
    assert seed.hex() not in r.stdout + r.stderr
    r2 = run("--public", path)
    assert r2.returncode == 0 and r2.stdout.strip() == pub_hex


def test_refuses_to_overwrite_without_force(tmp_path):
    path = str(tmp_path / "k")
    assert run(path).returncode == 0
    before = open(path).read()
    r = run(path)
    assert r.returncode == 3
    assert "already exists" in r.stderr and "--force" in r.stderr and r.stderr.count("\n") == 1
    assert open(path).read() == before
    os.chmod(path, 0o644)
    r = run("--force", path)
    assert r.returncode == 0
    assert open(path).read() != before
    # replaced by a fresh owner-only file, not rewritten in place with the old mode
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [f for f in os.listdir(tmp_path)] == ["k"]


def test_errors_are_one_line_with_distinct_codes(tmp_path):
    r = run(str(tmp_path / "no-such-dir" / "k"))
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "cannot create" in r.stderr
    bad = tmp_path / "bad"
    bad.write_text("zz\n")
    r = run("--public", str(bad))
    assert r.returncode == 3 and r.stderr.count("\n") == 1
    r = run()
    assert r.returncode == 2


def test_loose_permissions_warned(tmp_path, capsys):
    path = str(tmp_path / "k")
    assert main([path]) == 0
    os.chmod(path, 0o640)
    capsys.readouterr()
    assert main(["--public", path]) == 0
    assert "chmod 600" in capsys.readouterr().err


def test_load_or_create(tmp_path):
    path = str(tmp_path / "c.key")
    with pytest.raises(KeyFileError, match="--init"):
        load_or_create(path)
    seed, pub, created = load_or_create(path, create=True)
    assert created and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    seed2, pub2, created2 = load_or_create(path, create=True)
    assert (seed2, pub2, created2) == (seed, pub, False)
