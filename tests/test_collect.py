# The collector in-process, over real ptys (os.openpty), real TCP on 127.0.0.1 and a real
# SQLite file, with simulated nodes: CPython threads driving ossuary_micro.Connection as the
# Ossuary client, exactly as a sensor node does (one JSON reading per data record).

import json
import logging
import os
import select
import socket
import sqlite3
import threading
import time
import tty

import pytest

from ossuary_micro import (Connection, CLIENT, NEED_DATA, HANDSHAKE_DONE, UNTRUSTED_KEY,
                           CLOSED, MAX_CONTROL_PACKET)
from ossuary_micro import wire, wire2
from ossuary_micro.keys import generate_keypair, format_key
from host_tools.collect import Collector
from host_tools.known_nodes import KnownNodes
from host_tools.store import Store
from host_tools.collector.sinks import SqliteSink


def ms():
    return int(time.monotonic() * 1000) & 0x3FFFFFFF


def reading(node, seq, value=20.0, sensor="temp", unit="C"):
    return json.dumps({"v": 1, "node": node, "seq": seq, "sensor": sensor, "value": value,
                       "unit": unit, "up_ms": seq * 100}, separators=(",", ":")).encode()


class FdLink:
    """The node's side of a pty: the master fd (the collector opens the slave path)."""

    def __init__(self, fd):
        self.fd = fd

    def read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return b""
        try:
            return os.read(self.fd, 4096)
        except OSError:
            return b""

    def write(self, data):
        os.write(self.fd, data)

    def close(self):
        pass


class SockLink:
    def __init__(self, addr):
        self.sock = socket.create_connection(addr, timeout=5)

    def read(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return b""
        try:
            data = self.sock.recv(4096)
        except OSError:
            raise EOFError
        if not data:
            raise EOFError
        return data

    def write(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            raise EOFError      # the peer ended the connection (as a reset seen by read())

    def close(self):
        self.sock.close()


class SimNode(threading.Thread):
    """A node: handshake as CLIENT trusting the collector key, then send `records` (bytes
    each) `gap` seconds apart. Records what happened: handshake_ok, sent, closed_by_peer (the
    peer ended the session: its Disconnect, EOF or a reset, whether seen reading or writing),
    told (it was its Disconnect)."""

    def __init__(self, link, seed, collector_pub, records, gap=0.01, disconnect=True, linger=0.3):
        threading.Thread.__init__(self, daemon=True)
        self.link = link
        self.conn, self.out = self.new_conn(seed, collector_pub)
        self.records = records
        self.gap = gap
        self.disconnect = disconnect
        self.linger = linger
        self.handshake_ok = False
        self.closed_by_peer = False
        self.told = False
        self.sent = 0
        self.error = None

    def new_conn(self, seed, collector_pub):
        """The client Connection and its output buffer."""
        conn = Connection(CLIENT, secret_key=seed, authorized_keys=(collector_pub,), clock=ms)
        return conn, bytearray(max(conn.max_packet, MAX_CONTROL_PACKET))

    def _flush(self):
        n = self.conn.data_to_send(self.out)
        if n:
            self.link.write(bytes(self.out[:n]))

    def _pump(self, timeout):
        # Process incoming bytes for up to `timeout` s; returns False once CLOSED.
        end = time.monotonic() + timeout
        while True:
            self._flush()
            ev = self.conn.next_event()
            if ev == CLOSED:
                self._flush()
                self.closed_by_peer = self.told = True
                return False
            if ev == HANDSHAKE_DONE:
                self.handshake_ok = True
                return True
            if ev == UNTRUSTED_KEY:
                self.conn.reject_key()
                continue
            if ev != NEED_DATA:
                continue
            left = end - time.monotonic()
            if left <= 0:
                return True
            try:
                data = self.link.read(min(left, 0.05))
            except EOFError:
                self.closed_by_peer = True
                return False
            if data:
                self.conn.receive_data(data)

    def run(self):
        try:
            deadline = time.monotonic() + 10
            while not self.conn.established and time.monotonic() < deadline:
                if not self._pump(0.1):
                    return
            if not self.conn.established:
                self.error = "no handshake"
                return
            for rec in self.records:
                n = self.conn.send_data(rec, self.out)
                try:
                    self.link.write(bytes(self.out[:n]))
                except EOFError:
                    self.closed_by_peer = True
                    return
                self.sent += 1
                if not self._pump(self.gap):
                    return
            if self.disconnect:
                self.conn.disconnect()
                self._flush()
                # Read the collector's Disconnect echo off the line, as a real node would
                # (left there, it would greet the next node on this pty).
                end = time.monotonic() + self.linger
                while time.monotonic() < end:
                    try:
                        self.link.read(0.05)
                    except EOFError:
                        break
            else:
                self._pump(self.linger)
        except Exception as e:      # surfaced by the test through .error
            self.error = repr(e)
        finally:
            self.link.close()


class Env:
    """A collector with real files in tmp_path, and helpers to make nodes."""

    def __init__(self, tmp_path, tofu=False):
        self.tmp = tmp_path
        self.seed, self.pub = generate_keypair()
        self.known = KnownNodes(str(tmp_path / "known_nodes"))
        self.store = Store(str(tmp_path / "r.db"))
        self.col = Collector(self.seed, self.known, SqliteSink(self.store), tofu=tofu)
        self.ptys = []

    def node_key(self, name=None):
        seed, pub = generate_keypair()
        if name:
            self.known.add(name, pub)
        return seed, pub

    def pty(self, link=False):
        """A pty pair; the collector serves the slave path through pyserial (bare protocol 1
        unless `link`). Returns the node's side (master)."""
        master, slave = os.openpty()
        tty.setraw(slave)       # no echo or line editing before pyserial configures it
        self.ptys.append((master, slave))
        self.col.add_serial(os.ttyname(slave), 115200, link=link)
        return FdLink(master)

    def tcp(self):
        return self.col.add_tcp("127.0.0.1", 0)

    def rows(self, sql="SELECT node, node_key, seq, sensor, value, source FROM readings ORDER BY id"):
        db = sqlite3.connect(str(self.tmp / "r.db"))
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def wait_rows(self, n, timeout=15):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.store.count() >= n:
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self.col.stop()
        self.store.close()
        for m, s in self.ptys:
            os.close(m)
            os.close(s)


@pytest.fixture
def logs():
    """Every record the collector logs (its logger may have propagation off)."""
    records = []

    class H(logging.Handler):
        def emit(self, record):
            records.append(record)

    lg = logging.getLogger("ossuary.collect")
    h = H(logging.DEBUG)
    old = lg.level
    lg.setLevel(logging.DEBUG)
    lg.addHandler(h)
    yield records
    lg.removeHandler(h)
    lg.setLevel(old)


def events(records, name):
    return [r for r in records if getattr(r, "event", None) == name]


@pytest.fixture
def env(tmp_path):
    envs = []

    def make(**kw):
        e = Env(tmp_path, **kw)
        envs.append(e)
        return e
    yield make
    for e in envs:
        e.close()


def test_several_nodes_over_ptys_and_tcp_at_once(env):
    e = env()
    port = e.tcp()
    nodes = []
    for i in range(2):
        seed, pub = e.node_key("pty-%d" % i)
        nodes.append(SimNode(e.pty(), seed, e.pub, [reading("pty-%d" % i, s, 10 * i + s) for s in range(5)]))
    for i in range(2):
        seed, pub = e.node_key("tcp-%d" % i)
        nodes.append(SimNode(SockLink(("127.0.0.1", port)), seed, e.pub,
                             [reading("tcp-%d" % i, s, 100 + s) for s in range(5)]))
    for n in nodes:
        n.start()
    assert e.wait_rows(20), e.col.summary()
    for n in nodes:
        n.join(10)
        assert n.error is None and n.handshake_ok and n.sent == 5
    rows = e.rows()
    assert len(rows) == 20
    for name in ("pty-0", "pty-1", "tcp-0", "tcp-1"):
        mine = [r for r in rows if r[0] == name]
        assert [r[2] for r in mine] == [0, 1, 2, 3, 4]
        assert {r[1] for r in mine} == {e.known.by_name(name).key_hex}
        src = {r[5] for r in mine}
        assert len(src) == 1
        assert next(iter(src)).startswith("/dev/pts/" if name.startswith("pty") else "tcp:127.0.0.1:")
    assert [r[4] for r in rows if r[0] == "pty-1"] == [10.0, 11.0, 12.0, 13.0, 14.0]
    s = e.col.summary()
    assert "20 readings stored" in s and "pty-1" in s and "tcp-0" in s


def tofu_pin_then_changed_key(env, logs, node_cls, name):
    """The TOFU story both protocols' tests start with (node_cls: SimNode, or SimNode2 of
    test_collect_proto2): a node pins its key under `name` with three readings; a node with
    the same name and another key is then refused loudly: nothing of it stored, the pin
    unchanged. Returns (env, the pty link, the refused node's seed, the refused_changed_key
    log records)."""
    e = env(tofu=True)
    link = e.pty()
    seed1, pub1 = e.node_key()
    n1 = node_cls(link, seed1, e.pub, [reading(name, s) for s in range(3)])
    n1.start()
    assert e.wait_rows(3)
    n1.join(10)
    pinned = KnownNodes(e.known.path).by_name(name)
    assert pinned is not None and pinned.key == pub1
    assert events(logs, "key_pinned")
    # Same name, another key: refused loudly, nothing stored, the pin unchanged.
    seed2, pub2 = e.node_key()
    n2 = node_cls(link, seed2, e.pub, [reading(name, s, 99.0) for s in range(3)], gap=0.1)
    n2.start()
    n2.join(15)
    assert n2.closed_by_peer
    time.sleep(0.3)
    assert e.store.count() == 3
    assert not [r for r in e.rows() if r[1] == format_key(pub2)]
    warn = events(logs, "refused_changed_key")
    assert warn and warn[0].levelno == logging.WARNING
    assert warn[0].fields["pinned_key"] == format_key(pub1)
    assert warn[0].fields["presented_key"] == format_key(pub2)
    assert KnownNodes(e.known.path).by_name(name).key == pub1
    return e, link, seed2, warn


def test_tofu_pins_first_key_and_refuses_a_changed_one(env, logs):
    e, link, seed2, warn = tofu_pin_then_changed_key(env, logs, SimNode, "shed")
    text = warn[0].getMessage()
    assert "NODE KEY CHANGED" in text and "shed" in text and "nothing stored" in text
    assert e.col.refused == {"changed_key": 1}
    # It tries again at once (as a node does after a failed session): refused again, but the
    # log stays readable: the repeat is counted and logged at DEBUG, not another WARNING.
    time.sleep(0.6)     # past the collector's first backoff (input is discarded meanwhile)
    n3 = SimNode(link, seed2, e.pub, [reading("shed", 0, 99.0)], gap=0.1)
    n3.start()
    n3.join(15)
    assert n3.closed_by_peer and e.store.count() == 3
    warn = events(logs, "refused_changed_key")
    assert [w.levelno for w in warn] == [logging.WARNING, logging.DEBUG]
    assert e.col.refused == {"changed_key": 2}


def test_unknown_key_refused_without_tofu(env, logs):
    e = env(tofu=False)
    port = e.tcp()
    seed, pub = e.node_key()            # not added to known-nodes
    n = SimNode(SockLink(("127.0.0.1", port)), seed, e.pub, [reading("stranger", s) for s in range(3)], gap=0.1)
    n.start()
    n.join(15)
    assert n.closed_by_peer
    time.sleep(0.2)
    assert e.store.count() == 0
    r = events(logs, "refused_unknown_key")
    assert r and r[0].levelno == logging.WARNING
    assert "ossuary-keygen known" in r[0].getMessage() and format_key(pub) in r[0].getMessage()
    assert KnownNodes(e.known.path).entries() == []
    # `known add` in another process (here: another KnownNodes object) is picked up live.
    KnownNodes(e.known.path).add("stranger", pub)
    n = SimNode(SockLink(("127.0.0.1", port)), seed, e.pub, [reading("stranger", s) for s in range(2)])
    n.start()
    assert e.wait_rows(2)
    n.join(10)
    assert n.handshake_ok and not n.error


def test_malformed_readings_are_skipped(env, logs):
    e = env()
    seed, pub = e.node_key("n1")
    bad = [b"not json", b"\xff\xfe", json.dumps({"v": 1, "node": "n1"}).encode(),
           reading("n1", 2).replace(b'"value":20.0', b'"value":NaN'), b"x" * 300]
    recs = [reading("n1", 0)] + bad + [reading("n1", 1)]
    n = SimNode(e.pty(), seed, e.pub, recs)
    n.start()
    assert e.wait_rows(2)
    n.join(10)
    time.sleep(0.2)
    assert [r[2] for r in e.rows()] == [0, 1]
    assert e.col.nodes["n1"].malformed == 5
    reasons = [r.fields["reason"] for r in events(logs, "bad_reading")]
    assert len(reasons) == 3        # then rate-limited
    assert reasons[0] == "record is not JSON" and reasons[1] == "record is not UTF-8"
    assert "missing field" in reasons[2]


def test_unknown_key_with_only_garbage_records_is_refused_even_with_tofu(env, logs):
    e = env(tofu=True)
    port = e.tcp()
    seed, pub = e.node_key()
    n = SimNode(SockLink(("127.0.0.1", port)), seed, e.pub, [b"{}", b"[]", b"nope", b"more"], gap=0.05)
    n.start()
    n.join(10)
    assert n.closed_by_peer
    assert events(logs, "refused_unidentified")
    assert e.store.count() == 0 and KnownNodes(e.known.path).entries() == []


def test_garbage_spewing_source_does_not_block_the_others(env):
    e = env()
    noisy = e.pty()
    stop = threading.Event()

    def spew():
        # Random bytes, plus a valid-looking header claiming a huge body, as fast as it goes.
        while not stop.is_set():
            try:
                os.write(noisy.fd, os.urandom(512) + b"\x40\x00\x00\x00\x00\x01\x00\x00")
            except OSError:
                time.sleep(0.01)
    t = threading.Thread(target=spew, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        port = e.tcp()
        seed_a, _ = e.node_key("good-pty")
        seed_b, _ = e.node_key("good-tcp")
        a = SimNode(e.pty(), seed_a, e.pub, [reading("good-pty", s) for s in range(10)], gap=0.05)
        b = SimNode(SockLink(("127.0.0.1", port)), seed_b, e.pub, [reading("good-tcp", s) for s in range(10)], gap=0.05)
        t0 = time.monotonic()
        a.start()
        b.start()
        assert e.wait_rows(20, timeout=20), e.col.summary()
        took = time.monotonic() - t0
        a.join(5)
        b.join(5)
        assert took < 10
        noisy_stats = e.col.sources[os.ttyname(e.ptys[0][1])]
        # The noise was read (and thrown away while backing off), never stored or trusted.
        assert noisy_stats.bytes_in + noisy_stats.discarded > 4096
        assert noisy_stats.failed >= 1 and noisy_stats.sessions == 0
        assert e.store.count() == 20
        assert all(th.is_alive() for th in e.col.threads if th.name.startswith("serial:"))
    finally:
        stop.set()
        t.join(2)


def test_reconnect_after_node_restart_on_the_same_serial_line(env, logs):
    e = env()
    link = e.pty()
    seed, pub = e.node_key("restarter")
    # First boot: three readings, then the node "loses power" (no Disconnect).
    n1 = SimNode(link, seed, e.pub, [reading("restarter", s) for s in range(3)], disconnect=False, linger=0)
    n1.start()
    assert e.wait_rows(3)
    n1.join(5)
    # Second boot: a new Connection on the same line starts a new handshake while the
    # collector still holds the old session; seq restarts at 0.
    n2 = SimNode(link, seed, e.pub, [reading("restarter", s, 30.0) for s in range(3)])
    n2.start()
    assert e.wait_rows(6, timeout=20), e.col.summary()
    n2.join(10)
    assert n2.handshake_ok and n2.error is None
    assert [r[2] for r in e.rows()] == [0, 1, 2, 0, 1, 2]
    assert e.col.nodes["restarter"].restarts == 1
    assert events(logs, "node_restarted")


def test_stale_disconnect_on_a_serial_line_is_ignored_not_echoed(env, logs):
    # The previous session's last word on the line (say, a node's echo of the collector's
    # Disconnect) reaches a fresh session. Fed to it, it would fail that session, whose own
    # Disconnect would end the node's next session, and so on for ever (found by
    # tests/test_fleet_props.py after a corrupted length field). Either protocol's type.
    e = env()
    for i, ptype in enumerate((wire.T_DISCONNECT, wire2.T2_DISCONNECT)):
        link = e.pty()
        stats = e.col.source_stats(os.ttyname(e.ptys[-1][1]))
        end = time.monotonic() + 10
        while stats.opens == 0 and time.monotonic() < end:
            time.sleep(0.02)        # bytes written before the port is open would be flushed
        time.sleep(0.1)
        stale = bytearray(wire.HEADER_LEN + wire.RESET_BODY_LEN)
        wire.put_control(stale, 0, ptype, True)
        link.write(bytes(stale))
        assert link.read(0.5) == b"", "the collector answered a stale Disconnect"
        name = "after-stale-%d" % i
        seed, _ = e.node_key(name)
        n = SimNode(link, seed, e.pub, [reading(name, s) for s in range(2)])
        n.start()
        assert e.wait_rows(2 * (i + 1)), e.col.summary()
        n.join(10)
        assert n.handshake_ok and n.error is None and n.sent == 2
    assert sum(s.stale for s in e.col.sources.values()) == 2, [(s.name, s.stale) for s in e.col.sources.values()]
    assert len(events(logs, "stale_disconnect")) == 2


class DeviceServer:
    """A TCP server playing a networked serial device (ser2net style) for socket:// URLs:
    it bridges one connection to a SimNode via a socketpair."""

    def __init__(self, port=0):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]

    def accept(self, timeout=10):
        self.lsock.settimeout(timeout)
        conn, _ = self.lsock.accept()
        return conn

    def close(self):
        self.lsock.close()


class ConnLink(SockLink):
    def __init__(self, sock):
        self.sock = sock


def test_port_that_disappears_is_reopened(env, logs):
    e = env()
    dev = DeviceServer()
    port = dev.port
    e.col.add_serial("socket://127.0.0.1:%d" % port, 115200, link=False)
    seed, pub = e.node_key("remote")
    c1 = dev.accept()
    n1 = SimNode(ConnLink(c1), seed, e.pub, [reading("remote", s) for s in range(3)], disconnect=False, linger=0)
    n1.start()
    assert e.wait_rows(3)
    n1.join(5)
    # The device vanishes (connection and listener gone), comes back a moment later.
    c1.close()
    dev.close()
    time.sleep(1.0)
    dev = DeviceServer(port)
    try:
        c2 = dev.accept(timeout=15)
        n2 = SimNode(ConnLink(c2), seed, e.pub, [reading("remote", s) for s in range(3, 6)])
        n2.start()
        assert e.wait_rows(6, timeout=15), e.col.summary()
        n2.join(10)
    finally:
        dev.close()
    assert events(logs, "port_lost")
    assert len(events(logs, "port_open")) >= 2
    assert [r[2] for r in e.rows()] == [0, 1, 2, 3, 4, 5]


def test_stop_disconnects_established_nodes_cleanly(env):
    e = env()
    port = e.tcp()
    seed, _ = e.node_key("n")
    n = SimNode(SockLink(("127.0.0.1", port)), seed, e.pub, [reading("n", 0)], disconnect=False, linger=5)
    n.start()
    assert e.wait_rows(1)
    t0 = time.monotonic()
    e.col.stop()
    assert time.monotonic() - t0 < 3
    n.join(5)
    assert n.told            # cleanly: the Disconnect, not just a hang-up
    assert not any(t.is_alive() for t in e.col.threads)


def test_silent_tcp_peers_are_dropped_and_do_not_use_up_slots(env, logs):
    e = env()
    e.col.tcp_handshake_timeout = 0.5
    port = e.tcp()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        for s in idle:
            s.settimeout(5)
            assert s.recv(10) == b""        # hung up on us after the handshake timeout
        assert len(events(logs, "handshake_timeout")) == 3
        seed, _ = e.node_key("after")
        n = SimNode(SockLink(("127.0.0.1", port)), seed, e.pub, [reading("after", 0)])
        n.start()
        assert e.wait_rows(1)
        n.join(5)
    finally:
        for s in idle:
            s.close()
