# The unix sensor node on the real MicroPython interpreter speaking protocol 2 (Noise XX,
# "protocol": 2 in its config) to a CPython collector-side Connection2: over a real pty pair
# with the channel bare on the line, and over TCP on 127.0.0.1. Readings and acks are the same
# JSON as in protocol 1 (tests/test_port_node.py); what differs is underneath: the node proves
# the same Ed25519 key through its X25519 form, and the collector can half-close.

import json
import os
import socket
import tty

import pytest

from tests._nodepeer import (Keys, MICROPYTHON, ack, check_reading, read_readings,
                             server_stream, start_node, write_config)

pytestmark = pytest.mark.skipif(not os.path.exists(MICROPYTHON),
                                reason="MicroPython unix port not installed (make venv)")


@pytest.fixture
def keys():
    return Keys()


def finish(proc, timeout=30):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode()


def kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_pty_protocol2_readings_acked_and_node_exits(tmp_path, keys):
    master, slave = os.openpty()
    tty.setraw(slave)
    cfg = write_config(str(tmp_path / "node.json"), keys,
                       {"type": "uart", "device": os.ttyname(slave), "baud": 115200,
                        "link": False}, max_readings=6, protocol=2)
    proc = start_node(cfg)
    f = os.fdopen(master, "r+b", buffering=0)
    try:
        s = server_stream(keys, f, protocol=2)
        # One identity for both protocols: the node proved the Ed25519 key of its config's
        # seed, through the X25519 static key of the Noise handshake.
        assert s.handshake(30000) == keys.node_pub
        assert type(s.conn).__name__ == "Connection2"
        readings = read_readings(s, 6)
        for r in readings:
            check_reading(r)
        assert [r["seq"] for r in readings] == list(range(6))
        # All six acked: the node closes the session (an authenticated CLOSE record) and exits.
        assert s.recv(timeout_ms=15000) == b""
        rc, err = finish(proc)
        assert rc == 0, err
        assert "6 readings acknowledged, done" in err, err
        assert "unexpected" not in err, err
    finally:
        kill(proc)
        f.close()
        os.close(slave)


def test_tcp_protocol2_half_close_ends_the_session_and_unacked_readings_are_resent(
        tmp_path, keys):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(2)
    srv.settimeout(30)
    cfg = write_config(str(tmp_path / "node.json"), keys,
                       {"type": "tcp", "host": "127.0.0.1", "port": srv.getsockname()[1]},
                       max_readings=5, protocol=2)
    proc = start_node(cfg)
    try:
        sock, _ = srv.accept()
        s = server_stream(keys, sock, protocol=2)
        assert s.handshake(30000) == keys.node_pub
        first = read_readings(s, 2, acked=False)
        ack(s, first[0])                 # only the first is acknowledged
        # The collector half-closes (END record): it will send no more acks, so the node
        # ends this session and comes back with a new one; reading 1 is still queued.
        out = bytearray(64)
        sock.sendall(out[:s.conn.end_stream(out)])
        while s.recv(timeout_ms=15000):
            pass                         # whatever the node sent before it saw the END
        sock.close()
        sock2, _ = srv.accept()
        s2 = server_stream(keys, sock2, protocol=2)
        assert s2.handshake(30000) == keys.node_pub
        rest = []
        while True:
            data = s2.recv(timeout_ms=15000)
            if not data:
                break
            rest.append(json.loads(data))
            ack(s2, rest[-1])
        seqs = [r["seq"] for r in rest]
        assert seqs[0] == 1 and seqs[-1] == 4 and sorted(set(seqs)) == list(range(1, 5)), seqs
        rc, err = finish(proc)
        assert rc == 0, err
        assert "collector ended its stream" in err, err
        assert err.count("connected to collector") == 2, err
    finally:
        kill(proc)
        srv.close()
