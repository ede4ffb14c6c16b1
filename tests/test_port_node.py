# The unix sensor node on the real MicroPython interpreter against a CPython collector-side peer,
# over TCP on 127.0.0.1 and over a real pty pair: readings arrive, decrypt, parse as the
# documented JSON, seq increments; the node reconnects after the peer drops or resets the
# session; configuration errors give one clear line and exit status 2.

import json
import os
import socket
import subprocess
import time
import tty

import pytest

from tests._nodepeer import (Keys, MICROPYTHON, ROOT, ack, check_reading, read_readings,
                             server_stream, start_node, write_config)

pytestmark = pytest.mark.skipif(not os.path.exists(MICROPYTHON),
                                reason="MicroPython unix port not installed (make venv)")


@pytest.fixture
def keys():
    return Keys()


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    srv.settimeout(30)
    yield srv
    srv.close()


def finish(proc, timeout=15):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode()


def kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_tcp_readings_arrive_in_order_and_node_exits(tmp_path, keys, listener):
    port = listener.getsockname()[1]
    cfg = write_config(str(tmp_path / "node.json"), keys,
                       {"type": "tcp", "host": "127.0.0.1", "port": port}, max_readings=5)
    proc = start_node(cfg)
    try:
        sock, _ = listener.accept()
        s = server_stream(keys, sock)
        assert s.handshake(30000) == keys.node_pub  # the node proved its configured key
        readings = read_readings(s, 5)
        for r in readings:
            check_reading(r)
        assert [r["seq"] for r in readings] == [0, 1, 2, 3, 4]
        ups = [r["up_ms"] for r in readings]
        assert ups == sorted(ups) and ups[-1] - ups[0] >= 4 * 150  # interval 0.2 s
        assert s.recv(timeout_ms=10000) == b""  # clean Disconnect after max_readings
        s.close(linger_ms=0)
        sock.close()
        rc, err = finish(proc)
        assert rc == 0, err
        assert "5 readings acknowledged, done" in err
    finally:
        kill(proc)


def test_tcp_reconnects_after_peer_drops_connection(tmp_path, keys, listener):
    port = listener.getsockname()[1]
    cfg = write_config(str(tmp_path / "node.json"), keys,
                       {"type": "tcp", "host": "127.0.0.1", "port": port}, max_readings=6)
    proc = start_node(cfg)
    try:
        sock, _ = listener.accept()
        s = server_stream(keys, sock)
        s.handshake(30000)
        first = read_readings(s, 2)
        sock.close()  # abrupt: no Disconnect
        sock2, _ = listener.accept()  # the node backs off, then comes back
        s2 = server_stream(keys, sock2)
        s2.handshake(30000)
        rest = []
        while True:
            data = s2.recv(timeout_ms=15000)
            if not data:
                break
            rest.append(json.loads(data))
            ack(s2, rest[-1])
        # 0 and 1 were acked; whatever was in flight when the connection dropped is resent,
        # so the collector has every reading once, in order.
        seqs = [r["seq"] for r in first + rest]
        assert seqs == list(range(6)), seqs
        assert len({r["boot"] for r in first + rest}) == 1
        for r in rest:
            check_reading(r)
        rc, err = finish(proc)
        assert rc == 0, err
        assert "reconnect in" in err
        assert err.count("connected to collector") == 2
    finally:
        kill(proc)


def _pty(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)  # the node also sets raw mode itself; both sides agree
    return master, slave, os.ttyname(slave)


def test_pty_bare_protocol_readings_and_reset_recovery(tmp_path, keys):
    # "link": false: protocol 1 straight on the line, as for a libossuary collector.
    master, slave, name = _pty(tmp_path)
    cfg = write_config(str(tmp_path / "node.json"), keys,
                       {"type": "uart", "device": name, "baud": 115200, "link": False},
                       max_readings=6, protocol=1)
    proc = start_node(cfg)
    f = os.fdopen(master, "r+b", buffering=0)
    try:
        s = server_stream(keys, f, protocol=1)
        assert s.handshake(30000) == keys.node_pub
        first = read_readings(s, 2)
        for r in first:
            check_reading(r)
        # The collector restarts: a fresh server on the same line. The node's next data
        # packet is invalid for it, it answers with Reset, and the node handshakes again
        # (the core's Reset handling, no new transport).
        s2 = server_stream(keys, f, protocol=1)
        assert s2.handshake(30000) == keys.node_pub
        rest = []
        while True:
            data = s2.recv(timeout_ms=15000)
            if not data:
                break
            rest.append(json.loads(data))
            ack(s2, rest[-1])
        # The reading that died with the old session is resent: none lost, none repeated.
        seqs = [r["seq"] for r in first + rest]
        assert seqs == list(range(6)), seqs
        rc, err = finish(proc)
        assert rc == 0, err
        assert "session reset" in err
    finally:
        kill(proc)
        f.close()
        os.close(slave)


def test_polled_serial_fallback_without_termios(tmp_path):
    # Builds without termios read the device through PolledSerial: it must return what is
    # there (not wait for a full buffer) and time out with 0.
    master, slave, name = _pty(tmp_path)
    code = (
        "import sys\nsys.path[:0] = ['%s/port/unix', '%s/port/common', '%s']\n"
        "import board\n"
        "p = board.open_serial(%r, 115200, 100, use_termios=False)\n"
        "b = bytearray(64)\n"
        "print('A', p.readinto(b, 64))\n"
        "sys.stdout.write('R\\n')\n"
        "n = p.readinto(b, 64)\n"
        "print('B', n, bytes(b[:n]))\n"
        "p.write(b'ok')\n" % (ROOT, ROOT, ROOT, name))
    proc = subprocess.Popen([MICROPYTHON, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert line == b"A 0\n", line + proc.stderr.read()
        assert proc.stdout.readline() == b"R\n"
        os.write(master, b"hello")
        out, err = proc.communicate(timeout=10)
        assert out == b"B 5 b'hello'\n", err
        assert os.read(master, 2) == b"ok"
    finally:
        kill(proc)
        os.close(master)
        os.close(slave)


def _one_line_error(proc):
    rc, err = finish(proc)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("ossuary-node: config error: ")
    return lines[0]


def test_config_missing_file(tmp_path):
    line = _one_line_error(start_node(str(tmp_path / "nope.json")))
    assert "cannot read config" in line and "nope.json" in line


def test_config_from_environment_variable(tmp_path):
    p = tmp_path / "env.json"
    p.write_text("{not json")
    line = _one_line_error(start_node(None, env={"OSSUARY_NODE_CONFIG": str(p)}))
    assert "not valid JSON" in line and "env.json" in line


def test_config_bad_collector_key_never_echoes_key_text(tmp_path, keys):
    cfg = write_config(str(tmp_path / "node.json"), keys, {"type": "tcp", "host": "h",
                                                            "port": 1})
    data = json.load(open(cfg))
    data["collector_key"] = "zz" + data["collector_key"][2:]
    json.dump(data, open(cfg, "w"))
    line = _one_line_error(start_node(cfg))
    assert "collector_key must be 64 hex characters" in line
    assert data["secret_key"] not in line and data["collector_key"] not in line


def test_config_unknown_sensor_for_unix(tmp_path, keys):
    cfg = write_config(str(tmp_path / "node.json"), keys, {"type": "tcp", "host": "h",
                                                            "port": 1},
                       sensors=[{"type": "mcu_temp"}])
    line = _one_line_error(start_node(cfg))
    assert "mcu_temp is not available on unix" in line


def test_node_creates_missing_key_file_and_prints_only_public_key(tmp_path, keys, listener):
    port = listener.getsockname()[1]
    cfg = write_config(str(tmp_path / "node.json"), keys,
                       {"type": "tcp", "host": "127.0.0.1", "port": port}, max_readings=1)
    data = json.load(open(cfg))
    del data["secret_key"]
    data["secret_key_file"] = str(tmp_path / "node_key.txt")
    json.dump(data, open(cfg, "w"))
    proc = start_node(cfg)
    try:
        sock, _ = listener.accept()
        # The server does not know the new key yet: TOFU-style, learn it from the file.
        from ossuary_micro import parse_key
        from ossuary_micro.crypto import get_backend
        deadline = time.monotonic() + 10
        while not os.path.exists(data["secret_key_file"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        seed = parse_key(open(data["secret_key_file"]).read())
        keys.node_pub = get_backend().ed25519_public(seed)
        s = server_stream(keys, sock)
        assert s.handshake(30000) == keys.node_pub
        check_reading(read_readings(s, 1)[0])
        rc, err = finish(proc)
        assert rc == 0, err
        assert keys.node_pub.hex() in err  # the public key is printed for the known-nodes file
        assert seed.hex() not in err
        assert not os.path.exists(data["secret_key_file"] + ".tmp")
        # Owner-only, whatever the umask of the process that ran the node.
        assert os.stat(data["secret_key_file"]).st_mode & 0o777 == 0o600
    finally:
        kill(proc)


def test_node_refuses_a_collector_with_another_key(tmp_path, keys, listener):
    # No TOFU on the node: a server proving any key but collector_key gets no readings.
    port = listener.getsockname()[1]
    cfg = write_config(str(tmp_path / "node.json"), keys,
                       {"type": "tcp", "host": "127.0.0.1", "port": port}, max_readings=1)
    impostor = Keys()
    impostor.node_pub = keys.node_pub  # it would accept the node; the node must refuse it
    proc = start_node(cfg)
    try:
        sock, _ = listener.accept()
        s = server_stream(impostor, sock)
        with pytest.raises(Exception):
            s.handshake(10000)
            s.recv(timeout_ms=3000)  # nothing may arrive
        sock.close()
        sock2, _ = listener.accept()  # it backs off and tries again, still refusing
        sock2.close()
    finally:
        kill(proc)
    out, err = proc.communicate()
    err = err.decode()
    assert "connected to collector" not in err, err
    assert "reconnect in" in err
