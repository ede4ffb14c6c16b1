# The README's Python examples run, for real, against an ossuary-cat server on loopback.
#
# "Keep README.md true": each ```python block is extracted and executed in a scratch
# directory holding the server.pub it reads; the server's stdout shows what arrived.

import os
import re
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAT = [sys.executable, "-m", "host_tools.cat"]
SEED = "10866ec48a11f3c56d77a64b2f54aa066c0cb475d8c87d35b491eed6ac0bdebc"
PUB = "be1ca074f4a58bbbd262a7f9523b6fb0bb9e8662287c3389a2e163dc55de281f"


def readme_blocks():
    text = open(os.path.join(ROOT, "README.md")).read()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def start_server(tmp_path, port):
    key = tmp_path / "server.key"
    key.write_text(SEED + "\n")
    os.chmod(key, 0o600)
    (tmp_path / "server.pub").write_text(PUB + "\n")
    # --linger: after its stdin EOF the server keeps receiving until the client closes (the
    # client does, at the end of each example); the bound only matters if the example hangs.
    proc = subprocess.Popen(CAT + ["--listen", "127.0.0.1:%d" % port, "--key", str(key),
                                   "--linger", "30"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    # It serves exactly one connection, so wait for its log line instead of probing.
    line = proc.stderr.readline().decode()
    if "listening on" not in line:
        proc.kill()
        raise OSError("ossuary-cat did not listen: " + line)
    return proc


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_readme_has_the_two_commands_first():
    lines = open(os.path.join(ROOT, "README.md")).read().splitlines()
    head = "\n".join(lines[:6])
    assert "make demo" in head and "make test" in head


def test_sans_io_example_runs(tmp_path):
    blocks = readme_blocks()
    assert len(blocks) == 3
    port = 9981
    try:
        proc = start_server(tmp_path, port)
    except OSError:
        pytest.skip("port 9981 busy")
    code = blocks[0]
    run = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), timeout=60,
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    out, err = proc.communicate(timeout=30)
    assert run.returncode == 0, run.stderr
    assert out == b"hello", (out, err)
    assert run.stdout == ""      # no DATA from the server, no error


def test_stream_example_runs(tmp_path):
    blocks = readme_blocks()
    port = free_port()
    proc = start_server(tmp_path, port)
    # The second block continues the first: build conn and sock the same way.
    setup = ("import socket, time\n"
             "from ossuary_micro import Connection, CLIENT, parse_key\n"
             "conn = Connection(CLIENT, authorized_keys=[parse_key(open('server.pub').read())],"
             " clock=lambda: int(time.monotonic() * 1000))\n"
             "sock = socket.create_connection(('127.0.0.1', %d))\n" % port)
    proc.stdin.write(b"reply from server")
    proc.stdin.close()
    run = subprocess.run([sys.executable, "-c", setup + blocks[1]], cwd=str(tmp_path),
                         timeout=60, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    out = proc.stdout.read()
    proc.wait(timeout=30)
    assert run.returncode == 0, run.stderr
    assert out == b"x" * 100000
    assert "reply from server" in run.stdout


def test_protocol_2_stream_example_runs(tmp_path):
    # The third block, against an ossuary-cat server that serves whichever protocol the
    # client speaks: our END ends the server's stdout; its own stdin EOF ends ours.
    blocks = readme_blocks()
    port = free_port()
    proc = start_server(tmp_path, port)
    setup = "import socket\nsock = socket.create_connection(('127.0.0.1', %d))\n" % port
    proc.stdin.write(b"reply from server")
    proc.stdin.close()
    run = subprocess.run([sys.executable, "-c", setup + blocks[2]], cwd=str(tmp_path),
                         timeout=60, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    out = proc.stdout.read()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0, err
    assert run.returncode == 0, run.stderr
    assert out == b"hello"
    assert "reply from server" in run.stdout
    assert "wire protocol 2" in err
