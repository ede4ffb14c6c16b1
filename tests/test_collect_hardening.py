# Collector hardening (issue 9): revocation of a connected node, a forged length field, bounded
# TOFU, and TCP admission under a flood of idle connections. In-process collector, real TCP on
# loopback (several 127.x source addresses), real ptys, real SQLite, and `known remove` run as
# a separate process.

import os
import select
import socket
import subprocess
import sys
import threading
import time

import pytest

from ossuary_micro import wire
from host_tools.known_nodes import KnownNodes
from tests.test_collect import SimNode, SockLink, reading, events, env, logs  # noqa: F401 (fixtures)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SrcLink(SockLink):
    """A node's TCP link from a chosen loopback source address (one IP per node, as in a
    real network; Linux routes all of 127/8 to the loopback interface)."""

    def __init__(self, addr, src_ip):
        self.sock = socket.create_connection(addr, timeout=5, source_address=(src_ip, 0))


def stored_after(e, t):
    return e.rows("SELECT COUNT(*) FROM readings WHERE ts > %r" % t)[0][0]


# -- 9.2: revocation -----------------------------------------------------------------

def test_known_remove_cuts_off_a_connected_node_and_nothing_more_is_stored(env, logs):
    e = env()
    port = e.tcp()
    seed, _ = e.node_key("doomed")
    n = SimNode(SockLink(("127.0.0.1", port)), seed, e.pub,
                [reading("doomed", s) for s in range(400)], gap=0.02, disconnect=False)
    n.start()
    assert e.wait_rows(5)
    r = subprocess.run([sys.executable, "-m", "host_tools.keygen", "known", "-f",
                        str(e.tmp / "known_nodes"), "remove", "doomed"],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    t_done = time.time()
    assert r.returncode == 0, r.stderr
    n.join(5)
    assert not n.is_alive() and n.closed_by_peer, "the node was not cut off: %s" % n.error
    assert n.sent < 400
    assert stored_after(e, t_done) == 0
    assert len(events(logs, "revoked")) == 1
    assert "revoked" in e.col.summary()


# -- 9.3: a forged length field --------------------------------------------------------

def test_forged_length_field_fails_the_session_at_once_instead_of_stalling(env):
    e = env()
    seed, _ = e.node_key("noisy")
    link = e.pty()
    n = SimNode(link, seed, e.pub, [reading("noisy", 0)], disconnect=False, linger=0.2)
    n.start()
    assert e.wait_rows(1)
    n.join(5)
    # A data header that claims 5000 bytes (a line glitch, or forged): well under libossuary's
    # 16404 but far over a reading. The collector must drop the session now (Disconnect), not
    # wait for bytes that never come while the node's next readings vanish.
    hdr = bytearray(wire.HEADER_LEN)
    wire.put_header(hdr, 0, 5000, 1, wire.T_DATA)
    link.write(bytes(hdr) + b"\x00" * 20)
    got = b""
    end = time.monotonic() + 3
    while time.monotonic() < end and len(got) < wire.HEADER_LEN:
        got += link.read(0.1)
    assert len(got) >= wire.HEADER_LEN and (got[4] << 8 | got[5]) == wire.T_DISCONNECT, got
    time.sleep(0.2)
    while link.read(0.05):
        pass
    n2 = SimNode(link, seed, e.pub, [reading("noisy", 1)], linger=0.2)
    n2.start()
    assert e.wait_rows(2, timeout=5), "the node's next session was not served"
    n2.join(5)


# -- 9.4: bounded TOFU -----------------------------------------------------------------

def _new_node(e, port, name, src="127.0.0.1"):
    from ossuary_micro.keys import generate_keypair
    seed, pub = generate_keypair()
    n = SimNode(SrcLink(("127.0.0.1", port), src), seed, e.pub, [reading(name, 0)], linger=0.2)
    n.start()
    n.join(10)
    return pub


def test_tofu_total_cap_refuses_further_pins_loudly_and_without_a_tofu_hint(env, logs):
    e = env(tofu=True)
    e.col.tofu_max_total = 2
    port = e.tcp()
    for i in range(3):
        _new_node(e, port, "n%d" % i, "127.0.3.%d" % (i + 1))
    assert [x.name for x in KnownNodes(e.known.path).entries()] == ["n0", "n1"]
    refused = events(logs, "refused_tofu_limit")
    assert len(refused) == 1
    msg = refused[0].getMessage()
    assert "limit of 2 pins per run" in msg and "--tofu" not in msg and "known -f" in msg
    assert e.rows("SELECT DISTINCT node FROM readings ORDER BY node") == [("n0",), ("n1",)]


def test_tofu_per_source_cap_counts_per_peer_address(env, logs):
    e = env(tofu=True)
    e.col.tofu_max_per_source = 1
    port = e.tcp()
    _new_node(e, port, "a1", "127.0.4.1")
    _new_node(e, port, "a2", "127.0.4.1")      # same address: over its cap
    _new_node(e, port, "b1", "127.0.4.2")      # another address: its own cap
    assert sorted(x.name for x in KnownNodes(e.known.path).entries()) == ["a1", "b1"]
    assert "pins from tcp:127.0.4.1" in events(logs, "refused_tofu_limit")[0].getMessage()


def test_tofu_rate_limit(env, logs):
    e = env(tofu=True)
    e.col.tofu_rate = 1           # one pin now, the next after a minute
    port = e.tcp()
    _new_node(e, port, "r1", "127.0.5.1")
    _new_node(e, port, "r2", "127.0.5.2")
    assert [x.name for x in KnownNodes(e.known.path).entries()] == ["r1"]
    assert "rate limit" in events(logs, "refused_tofu_limit")[0].getMessage()


# -- 9.9: TCP admission ----------------------------------------------------------------

class Flood(threading.Thread):
    """Idle TCP connections that never send a byte, each reopened soon after it is dropped:
    `per_ip` from each source address in `ips`."""

    def __init__(self, port, ips, per_ip):
        threading.Thread.__init__(self, daemon=True)
        self.port = port
        self.want = [ip for ip in ips for _ in range(per_ip)]
        self.socks = [None] * len(self.want)
        self.stop = threading.Event()
        self.opened = 0
        self.start()

    def run(self):
        while not self.stop.is_set():
            for i, ip in enumerate(self.want):
                s = self.socks[i]
                if s is not None:
                    r, _, _ = select.select([s], [], [], 0)
                    if not r:
                        continue                # still open
                    s.close()                   # dropped by the collector: reopen
                try:
                    self.socks[i] = socket.create_connection(("127.0.0.1", self.port), timeout=2,
                                                             source_address=(ip, 0))
                    self.opened += 1
                except OSError:
                    self.socks[i] = None
            self.stop.wait(0.05)

    def close(self):
        self.stop.set()
        self.join(5)
        for s in self.socks:
            if s is not None:
                s.close()


def test_64_nodes_are_served_through_a_flood_of_idle_connections(env, logs):
    e = env()
    port = e.tcp()
    # 32 idle connections from one address (the attack: the per-address cap admits 8)
    # and 100 more from 100 other addresses: with the 64 nodes, more than the pending cap (128),
    # so admission has to reclaim idle slots for nodes.
    flood = Flood(port, ["127.0.6.1"], 32)
    flood2 = Flood(port, ["127.0.7.%d" % i for i in range(1, 101)], 1)
    try:
        time.sleep(1.5)                          # the flood is in place (and older than 1 s)
        keys = [e.node_key("node-%02d" % i)[0] for i in range(64)]
        nodes = []
        for i in range(64):
            # Each node speaks as soon as it connects, as a real one does.
            n = SimNode(SrcLink(("127.0.0.1", port), "127.0.8.%d" % (i + 1)), keys[i], e.pub,
                        [reading("node-%02d" % i, s) for s in range(3)], gap=0.3,
                        disconnect=False, linger=1.0)
            n.start()
            nodes.append(n)
        for n in nodes:
            n.join(30)
        assert all(n.handshake_ok for n in nodes), [n.error for n in nodes if not n.handshake_ok]
        assert all(n.error is None and n.sent == 3 for n in nodes), [n.error for n in nodes]
        assert e.wait_rows(64 * 3, timeout=10), e.store.count()
        assert flood.opened > 32                 # the per-address cap turned most of them away
        assert any("unidentified connections from this address" in r.getMessage()
                   for r in events(logs, "tcp_refused"))
        assert events(logs, "tcp_evicted")       # the pending cap reclaimed idle slots
    finally:
        flood.close()
        flood2.close()


# -- closing a TCP connection: FIN and a bounded drain, never a reset -----------------------

def _tcp_pair():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    peer = socket.create_connection(ls.getsockname(), timeout=5)
    sock, _ = ls.accept()
    ls.close()
    return peer, sock


def test_tcp_close_with_unread_bytes_lets_the_peer_read_the_last_packet_and_eof():
    # The node's readings are still arriving when the collector ends a session (revocation,
    # stop). A bare close() with unread bytes sends RST: the node's next write fails with
    # EPIPE and its read with ECONNRESET, before or instead of seeing our Disconnect.
    from host_tools.collector.transports import SocketTransport
    peer, sock = _tcp_pair()
    try:
        t = SocketTransport(sock)
        peer.sendall(b"r" * 3000)           # unread by the collector side
        time.sleep(0.05)
        t.write(b"BYE")
        closer = threading.Thread(target=t.close, daemon=True)
        closer.start()
        time.sleep(0.05)
        peer.sendall(b"r" * 3000)           # still sending: must not fail
        got = b""
        while not got.endswith(b"BYE"):
            got += peer.recv(100)
        assert got == b"BYE"
        assert peer.recv(100) == b""        # FIN, not ECONNRESET
        peer.close()
        closer.join(5)
        assert not closer.is_alive()
    finally:
        peer.close()


def test_tcp_close_is_bounded_when_the_peer_never_stops_sending():
    from host_tools.collector.transports import SocketTransport
    peer, sock = _tcp_pair()
    stop = threading.Event()

    def spew():
        try:
            while not stop.is_set():
                peer.sendall(b"x" * 1024)
        except OSError:
            pass            # the collector gave up on us and reset the connection

    s = threading.Thread(target=spew, daemon=True)
    s.start()
    try:
        closer = threading.Thread(target=SocketTransport(sock).close, daemon=True)
        closer.start()
        closer.join(10)
        assert not closer.is_alive(), "close() waited for a peer that never stops"
        assert sock.fileno() == -1
    finally:
        stop.set()
        peer.close()
        s.join(5)
