# The collector serving protocol 2 (Noise XX) beside protocol 1, in-process, over real ptys
# (bare and with the link layer), real TCP on 127.0.0.1 and a real SQLite file. The nodes are
# host-side simulations (tests/test_collect.SimNode, tests/test_collect_readings.V2Node) driving
# ossuary_micro.Connection2 exactly as they drive Connection for protocol 1.

import json
import logging
import os
import time

from ossuary_micro import CLIENT, MAX_CONTROL_PACKET, wire2
from ossuary_micro.connection2 import Connection2
from ossuary_micro.keys import format_key
from ossuary_io import SecureStream
from tests.test_collect import (SimNode, SockLink, reading, ms, env, logs, events,  # noqa: F401
                                tofu_pin_then_changed_key)
from tests.test_collect_readings import V2Node, open_pty, keys_of
from tests.test_collect_link import LinkedPort, serve


class SimNode2(SimNode):
    def new_conn(self, seed, collector_pub):
        conn = Connection2(CLIENT, secret_key=seed, authorized_keys=(collector_pub,), clock=ms)
        return conn, bytearray(conn.max_packet + wire2.RECORD_OVERHEAD)


class V2Node2(V2Node):
    """V2Node speaking protocol 2; end() sends the half-close."""

    def new_conn(self, collector_pub):
        conn = Connection2(CLIENT, secret_key=self.seed, authorized_keys=(collector_pub,), clock=ms)
        return conn, bytearray(max(conn.max_packet, MAX_CONTROL_PACKET) + wire2.RECORD_OVERHEAD)

    def end(self):
        n = self.conn.end_stream(self.out)
        self.link.write(bytes(self.out[:n]))


def test_protocol_1_and_2_nodes_over_ptys_and_tcp_in_one_collector(env, logs):
    e = env()
    port = e.tcp()
    nodes = []
    for proto, cls in ((1, SimNode), (2, SimNode2)):
        seed, _ = e.node_key("pty-p%d" % proto)
        nodes.append(cls(e.pty(), seed, e.pub, [reading("pty-p%d" % proto, s) for s in range(5)]))
        seed, _ = e.node_key("tcp-p%d" % proto)
        nodes.append(cls(SockLink(("127.0.0.1", port)), seed, e.pub,
                         [reading("tcp-p%d" % proto, s) for s in range(5)]))
    for n in nodes:
        n.start()
    assert e.wait_rows(20), e.col.summary()
    for n in nodes:
        n.join(10)
        assert n.error is None and n.handshake_ok and n.sent == 5
    rows = e.rows()
    for name in ("pty-p1", "tcp-p1", "pty-p2", "tcp-p2"):
        mine = [r for r in rows if r[0] == name]
        assert [r[2] for r in mine] == [0, 1, 2, 3, 4]
        assert {r[1] for r in mine} == {e.known.by_name(name).key_hex}
    assert e.col.node_protocols == {"pty-p1": {1}, "tcp-p1": {1}, "pty-p2": {2}, "tcp-p2": {2}}
    summary = e.col.summary()
    for name in ("pty-p1", "tcp-p1"):
        assert [ln for ln in summary.splitlines() if " %s " % name in ln][0].endswith("protocol 1")
    for name in ("pty-p2", "tcp-p2"):
        assert [ln for ln in summary.splitlines() if " %s " % name in ln][0].endswith("protocol 2")
    connected = {r.fields["node"]: r.fields["protocol"] for r in events(logs, "node_connected")}
    assert connected == {"pty-p1": 1, "tcp-p1": 1, "pty-p2": 2, "tcp-p2": 2}


def test_one_key_both_protocols_and_no_downgrade_after_protocol_2(env, logs):
    # The node's one key file: the same known-nodes entry (same fingerprint) in protocol 1 and
    # 2. Once it has completed a protocol 2 session, protocol 1 from that key is refused.
    e = env()
    port = e.tcp()
    seed, pub = e.node_key("dual")
    n1 = SimNode(SockLink(("127.0.0.1", port)), seed, e.pub, [reading("dual", s) for s in range(2)])
    n1.start()
    n1.join(10)
    assert e.wait_rows(2)
    n2 = SimNode2(SockLink(("127.0.0.1", port)), seed, e.pub, [reading("dual", s) for s in range(2, 4)])
    n2.start()
    n2.join(10)
    assert e.wait_rows(4)
    assert {r[1] for r in e.rows()} == {format_key(pub)}
    assert e.col.node_protocols["dual"] == {1, 2}
    n3 = SimNode(SockLink(("127.0.0.1", port)), seed, e.pub, [reading("dual", 9)], gap=0.2)
    n3.start()
    n3.join(10)
    assert n3.closed_by_peer
    time.sleep(0.3)
    assert e.store.count() == 4
    assert e.col.refused == {"downgrade": 1}
    warn = events(logs, "refused_downgrade")
    assert warn and warn[0].levelno == logging.WARNING and "protocol 1" in warn[0].getMessage()


def test_tofu_in_protocol_2_pins_and_refuses_a_changed_key(env, logs):
    tofu_pin_then_changed_key(env, logs, SimNode2, "shed2")


def test_protocol_option_refuses_the_other_protocol(env, logs):
    for only, refused_cls, served_cls in (("1", SimNode2, SimNode), ("2", SimNode, SimNode2)):
        e = env()
        e.col.protocol = only
        port = e.tcp()
        seed, _ = e.node_key("n-%s" % only)
        bad = refused_cls(SockLink(("127.0.0.1", port)), seed, e.pub, [reading("n-%s" % only, 0)])
        bad.start()
        bad.join(10)
        assert not bad.handshake_ok
        assert e.col.refused.get("protocol") == 1
        good = served_cls(SockLink(("127.0.0.1", port)), seed, e.pub, [reading("n-%s" % only, 1)])
        good.start()
        good.join(10)
        assert good.handshake_ok and e.wait_rows(1)
    assert len(events(logs, "refused_protocol")) == 2


def test_v2_readings_acked_then_half_close_commits_and_closes_cleanly(env, logs):
    e = env()
    link = open_pty(e)
    seed, _ = e.node_key("acker")
    node = V2Node2("acker", seed)
    node.take(5)
    node.connect(link, e.pub)
    node.send_queue()
    node.wait_acked()
    assert node.acks[-1][1] == {"v": 2, "ack": 4, "boot": node.boot}
    node.take(2)
    node.send_queue()
    node.end()                      # half-close: the collector commits, acks, then CLOSEs
    end = time.monotonic() + 10
    while not node.closed and time.monotonic() < end:
        node.pump(0.05)
    assert node.closed and not node.queue
    assert str(node.conn.error) == "peer closed the connection"   # the authenticated CLOSE
    assert keys_of(e) == [(node.boot, s) for s in range(7)]
    assert events(logs, "node_ended")
    assert e.col.sources[os.ttyname(e.ptys[-1][1])].closed == 1


def test_protocol_2_over_the_link_layer_and_a_node_switching_protocol_on_the_line(env, logs):
    # A serial port with the link layer: a protocol 1 node, then (a reboot with a new config)
    # the same node in protocol 2 on the same line, served at once.
    e = env()
    master, slave = os.openpty()
    import tty
    tty.setraw(slave)
    e.ptys.append((master, slave))
    serve(e, os.ttyname(slave))
    path = os.ttyname(slave)
    end = time.monotonic() + 10
    while path not in e.col.sources or e.col.sources[path].opens == 0:
        assert time.monotonic() < end
        time.sleep(0.01)
    port = LinkedPort(master)
    seed, _ = e.node_key("switch")
    a = V2Node("switch", seed)
    a.take(3)
    a.connect(port, e.pub)
    a.send_queue()
    a.wait_acked()
    port.boot()                     # reboot: new link session, protocol 2 now
    b = V2Node2("switch", seed)
    b.take(3)
    b.connect(port, e.pub)
    b.send_queue()
    b.wait_acked()
    assert len(keys_of(e)) == 6
    assert e.col.node_protocols["switch"] == {1, 2}


def test_cli_protocol_option(tmp_path):
    # --protocol is validated by argparse: one line, exit 2.
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "host_tools.collect", "--protocol", "3",
                        "--listen", "127.0.0.1:0"], capture_output=True, cwd=str(tmp_path),
                       env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
                           os.path.abspath(__file__)))), timeout=20)
    assert p.returncode == 2 and b"--protocol" in p.stderr


def test_tcp_protocol_2_stream_client_with_half_close(env):
    # A node written against ossuary_io: SecureStream.create(protocol=2), readings, acks
    # read with recv(), shutdown_write(), and the collector's CLOSE read as a clean close.
    import socket
    e = env()
    port = e.tcp()
    seed, _ = e.node_key("streamer")
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = SecureStream.create(CLIENT, sock, protocol=2, secret_key=seed, authorized_keys=[e.pub])
    s.handshake(5000)
    boot = os.urandom(8).hex()
    for seq in range(3):
        s.send(json.dumps({"v": 2, "node": "streamer", "boot": boot, "seq": seq, "sensor": "t",
                           "value": 1.0, "unit": "C", "up_ms": 1, "dropped": 0}).encode())
    acked = -1
    while acked < 2:
        acked = json.loads(s.recv(timeout_ms=5000))["ack"]
    s.shutdown_write()
    s.wait_closed(timeout_ms=5000)
    assert s.recv(timeout_ms=100) == b""
    sock.close()
    assert e.store.count() == 3
