# Exactly-once readings at the collector (docs/design.md "Sensor readings", v2): acks only
# after commit, duplicates stored once and still acked, a failing store retried without loss,
# a collector restart and node reboots without loss or collision, and a rebooted node on a
# serial line served at once. Real SQLite, real ptys and TCP on 127.0.0.1; the node is a
# CPython Connection speaking the v2 reading protocol (queue, resend, acks) in the test thread.

import json
import os
import sqlite3
import threading
import time

from ossuary_micro import (Connection, CLIENT, NEED_DATA, HANDSHAKE_DONE, DATA, CLOSED,
                           MAX_CONTROL_PACKET)
from host_tools.collector import session as session_mod
from host_tools.collector.sinks import SinkError
from tests.test_collect import SockLink, env, logs, events, ms  # noqa: F401 (fixtures)


def v2(node, boot, seq, value=20.0, dropped=0):
    return json.dumps({"v": 2, "node": node, "boot": boot, "seq": seq, "sensor": "temp",
                       "value": value, "unit": "C", "up_ms": seq * 100, "dropped": dropped},
                      separators=(",", ":")).encode()


class V2Node:
    """The node's side of the protocol, driven step by step by the test: a queue of readings
    kept until acked, resent in seq order at the start of every session."""

    def __init__(self, name, seed, boot=None):
        self.name = name
        self.seed = seed
        self.boot = boot or os.urandom(8).hex()
        self.seq = 0
        self.queue = []             # (seq, record) not yet acked
        self.acks = []              # (monotonic time, ack dict) as received
        self.conn = None
        self.link = None
        self.closed = False
        self.first_byte_at = None   # when this session's first byte went out

    def take(self, n=1, dropped=0):
        for _ in range(n):
            self.queue.append((self.seq, v2(self.name, self.boot, self.seq, 20.0 + self.seq, dropped)))
            self.seq += 1

    def new_conn(self, collector_pub):
        """The client Connection of a new session and its output buffer."""
        conn = Connection(CLIENT, secret_key=self.seed, authorized_keys=(collector_pub,), clock=ms)
        return conn, bytearray(max(conn.max_packet, MAX_CONTROL_PACKET))

    def connect(self, link, collector_pub, timeout=10):
        self.link = link
        self.closed = False
        self.conn, self.out = self.new_conn(collector_pub)
        self.first_byte_at = None
        end = time.monotonic() + timeout
        while not self.conn.established:
            assert time.monotonic() < end, "no handshake"
            self.pump(0.05)
            assert not self.closed, "closed during the handshake"

    def _flush(self):
        n = self.conn.data_to_send(self.out)
        if n:
            if self.first_byte_at is None:
                self.first_byte_at = time.monotonic()
            self.link.write(bytes(self.out[:n]))

    def pump(self, timeout):
        """Handle what arrives for up to `timeout` s (acks remove queued readings)."""
        end = time.monotonic() + timeout
        while True:
            self._flush()
            ev = self.conn.next_event()
            if ev == CLOSED:
                self._flush()
                self.closed = True
                return
            if ev == DATA:
                ack = json.loads(bytes(self.conn.plaintext[:self.conn.data_len]))
                self.acks.append((time.monotonic(), ack))
                if ack["boot"] == self.boot:
                    self.queue = [(s, r) for s, r in self.queue if s > ack["ack"]]
                continue
            if ev == HANDSHAKE_DONE:
                return
            if ev != NEED_DATA:
                continue
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                data = self.link.read(min(left, 0.05))
            except EOFError:
                self.closed = True
                return
            if data:
                self.conn.receive_data(data)

    def send(self, records):
        for r in records:
            n = self.conn.send_data(r, self.out)
            self.link.write(bytes(self.out[:n]))

    def send_queue(self):
        self.send([r for _, r in self.queue])

    def wait_acked(self, timeout=10):
        end = time.monotonic() + timeout
        while self.queue and time.monotonic() < end and not self.closed:
            self.pump(0.05)
        assert not self.queue, "not acked: %s; acks %s" % ([s for s, _ in self.queue], self.acks)


class FlakySink:
    """Wraps a sink; fails every commit while `failing` is set. Records what it was offered
    and when each commit went in."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.failing = threading.Event()
        self.offered = []           # batch sizes
        self.commits = []           # (monotonic time, [(boot, seq)])
        self.failures = 0

    def store(self, readings):
        self.offered.append(len(readings))
        if self.failing.is_set():
            self.failures += 1
            raise SinkError("injected failure")
        new = self.inner.store(readings)
        self.commits.append((time.monotonic(), [(r["boot"], r["seq"]) for r in readings]))
        return new

    def close(self):
        self.inner.close()


def open_pty(e):
    """A pty served by the collector, once it has opened it: pyserial's open flushes input,
    so a node writing earlier would lose its first handshake (and wait for a timeout)."""
    link = e.pty()
    name = os.ttyname(e.ptys[-1][1])
    end = time.monotonic() + 10
    while name not in e.col.sources or e.col.sources[name].opens == 0:
        assert time.monotonic() < end, "the collector did not open the pty"
        time.sleep(0.01)
    return link


def keys_of(e):
    return e.rows("SELECT boot, seq FROM readings ORDER BY id")


def test_duplicates_within_and_across_sessions_are_stored_once_and_acked(env):
    e = env()
    port = e.tcp()
    seed, _ = e.node_key("dup")
    node = V2Node("dup", seed)
    node.connect(SockLink(("127.0.0.1", port)), e.pub)
    node.take(3)
    node.send_queue()
    node.send([v2("dup", node.boot, 1, 21.0)])       # seq 1 again, on purpose
    node.wait_acked()
    assert node.acks[-1][1] == {"v": 2, "ack": 2, "boot": node.boot}
    # A new session that delivers seq 1 and 2 again, then 3: stored once, all acked.
    node.link.close()
    node.connect(SockLink(("127.0.0.1", port)), e.pub)
    node.send([v2("dup", node.boot, 1, 21.0), v2("dup", node.boot, 2, 22.0)])
    node.take(1)
    node.send([node.queue[-1][1]])
    node.wait_acked()
    assert node.acks[-1][1] == {"v": 2, "ack": 3, "boot": node.boot}
    node.link.close()
    assert keys_of(e) == [(node.boot, s) for s in range(4)]
    st = e.col.nodes["dup"]
    assert st.stored == 4 and st.duplicates == 3 and st.gaps == 0 and len(st.boots) == 1
    assert "duplicates ignored 3" in e.col.summary()


def test_failing_store_is_retried_in_order_nothing_lost_and_acked_only_after_commit(env, logs):
    e = env()
    sink = FlakySink(e.col.sink)
    e.col.sink = sink
    sink.failing.set()
    port = e.tcp()
    seed, _ = e.node_key("flaky")
    node = V2Node("flaky", seed)
    node.connect(SockLink(("127.0.0.1", port)), e.pub)
    node.take(5)
    node.send_queue()
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        node.pump(0.05)
        node.take(1)                        # the node keeps sampling and sending meanwhile
        node.send([node.queue[-1][1]])
    assert sink.failures >= 2, "not retried"
    assert node.acks == [] and e.store.count() == 0, "acked or stored while the store fails"
    sink.failing.clear()
    node.wait_acked(timeout=15)
    t_ack = node.acks[-1][0]
    # Acked promptly after the commit that covered it (a behaviour, asserted generously).
    t_commit = next(t for t, keys in sink.commits if (node.boot, node.seq - 1) in keys)
    assert t_ack - t_commit < 1.0
    assert keys_of(e) == [(node.boot, s) for s in range(node.seq)]
    assert e.col.nodes["flaky"].store_retries == sink.failures
    assert len([r for r in events(logs, "store_failed") if r.levelname == "ERROR"]) == 1
    assert events(logs, "store_recovered")
    assert "store retries %d" % sink.failures in e.col.summary()
    node.link.close()


def test_locked_database_is_retried_until_it_is_free(env):
    e = env()
    e.store.db.execute("PRAGMA busy_timeout=100")      # fail fast instead of waiting 5 s
    port = e.tcp()
    seed, _ = e.node_key("locked")
    node = V2Node("locked", seed)
    node.connect(SockLink(("127.0.0.1", port)), e.pub)
    blocker = sqlite3.connect(str(e.tmp / "r.db"), timeout=0)
    blocker.execute("BEGIN IMMEDIATE")                 # another writer holds the database
    try:
        node.take(4)
        node.send_queue()
        node.pump(1.0)
        assert node.acks == []
    finally:
        blocker.rollback()
        blocker.close()
    node.wait_acked(timeout=15)
    assert keys_of(e) == [(node.boot, s) for s in range(4)]
    assert e.col.nodes["locked"].store_retries >= 1
    node.link.close()


def test_backlog_is_bounded_while_the_store_fails_and_nothing_is_dropped(env, monkeypatch):
    monkeypatch.setattr(session_mod, "BACKLOG_MAX", 8)
    e = env()
    sink = FlakySink(e.col.sink)
    e.col.sink = sink
    sink.failing.set()
    port = e.tcp()
    seed, _ = e.node_key("burst")
    node = V2Node("burst", seed)
    node.connect(SockLink(("127.0.0.1", port)), e.pub)
    node.take(40)
    node.send_queue()
    node.pump(1.5)
    assert sink.offered and max(sink.offered) == 8, sink.offered
    sink.failing.clear()
    node.wait_acked(timeout=20)
    assert max(sink.offered) == 8
    assert keys_of(e) == [(node.boot, s) for s in range(40)]
    node.link.close()


def test_collector_restart_mid_stream_node_resends_and_each_reading_is_stored_once(env):
    e1 = env()
    port = e1.tcp()
    seed, _ = e1.node_key("steady")
    node = V2Node("steady", seed)
    node.connect(SockLink(("127.0.0.1", port)), e1.pub)
    node.take(5)
    node.send_queue()
    node.wait_acked()
    # Three more go out; the collector stops before the node reads any ack for them.
    node.take(3)
    node.send_queue()
    time.sleep(0.3)
    e1.col.stop()
    e1.store.close()
    node.link.close()
    assert [s for s, _ in node.queue] == [5, 6, 7]
    # A new collector on the same database: the node resends what was never acked.
    e2 = env()
    port2 = e2.tcp()
    node.connect(SockLink(("127.0.0.1", port2)), e2.pub)
    node.send_queue()
    node.take(2)
    node.send(r for _, r in node.queue[-2:])
    node.wait_acked()
    node.link.close()
    assert keys_of(e2) == [(node.boot, s) for s in range(10)]
    assert e2.col.nodes["steady"].duplicates == 3


def test_node_reboots_on_a_serial_line_are_served_at_once_with_new_boot_ids(env, logs):
    e = env()
    link = open_pty(e)
    seed, _ = e.node_key("rebooter")
    boots = []
    for i in range(7):                  # more than the core's 5-reset limit per Connection
        node = V2Node("rebooter", seed)
        boots.append(node.boot)
        node.take(2, dropped=i)
        # A reboot: no Disconnect, a new Connection starts a handshake on the same line
        # while the collector still holds the previous session.
        t0 = time.monotonic()
        node.connect(link, e.pub)
        node.send_queue()
        end = time.monotonic() + 5
        while e.rows("SELECT count(*) FROM readings WHERE boot='%s'" % node.boot)[0][0] == 0:
            assert time.monotonic() < end, "reboot %d not served" % i
            node.pump(0.02)
        # From the rebooted node's first byte to its first stored reading.
        assert time.monotonic() - node.first_byte_at < 2.0, "reboot %d took too long" % i
        assert node.first_byte_at - t0 < 0.5
        node.wait_acked()
    assert keys_of(e) == [(b, s) for b in boots for s in range(2)]
    st = e.col.nodes["rebooter"]
    assert len(st.boots) == 7 and st.restarts == 6 and st.gaps == 0
    assert sum(st.dropped.values()) == sum(range(7))
    assert "boots 7" in e.col.summary() and "dropped by node 21" in e.col.summary()
    assert len(events(logs, "new_handshake")) == 6
    db = sqlite3.connect(str(e.tmp / "r.db"))
    assert db.execute("SELECT count(*), sum(dropped) FROM boots").fetchone() == (7, 21)
    db.close()


def _start_collector(tmp_path, log):
    # ossuary-collect as a process on a fresh TCP port, logging to a file (never a full pipe).
    import re
    import subprocess
    import sys
    from ossuary_micro.keys import parse_key
    from tests.test_collect_cli import collect_cmd, ENV
    f = open(log, "w")
    p = subprocess.Popen(collect_cmd(tmp_path, "--init", "--listen", "127.0.0.1:0"),
                         stdout=subprocess.DEVNULL, stderr=f, env=ENV)
    f.close()
    end = time.monotonic() + 30
    while time.monotonic() < end:
        text = open(log).read()
        pub = re.search(r"public_key=([0-9a-f]{64})", text)
        port = re.search(r"listening .*port=(\d+)", text)
        if pub and port:
            return p, parse_key(pub.group(1)), int(port.group(1))
        assert p.poll() is None, text
        time.sleep(0.05)
    p.kill()
    raise AssertionError("collector did not start")


def test_collector_killed_mid_stream_loses_and_duplicates_nothing(tmp_path):
    import signal
    from ossuary_micro.keys import generate_keypair
    from host_tools.known_nodes import KnownNodes
    seed, npub = generate_keypair()
    KnownNodes(str(tmp_path / "kn")).add("k1", npub)
    node = V2Node("k1", seed)
    procs = []
    try:
        p, cpub, port = _start_collector(tmp_path, str(tmp_path / "c1.log"))
        procs.append(p)
        node.connect(SockLink(("127.0.0.1", port)), cpub)
        # Sampling and sending without waiting for acks, as a node does; SIGKILL mid-stream.
        while not node.acks or node.acks[-1][1]["ack"] < 20:
            node.take(1)
            node.send([node.queue[-1][1]])
            node.pump(0.01)
        for _ in range(5):
            node.take(1)
            node.send([node.queue[-1][1]])
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        node.link.close()
        unacked = [s for s, _ in node.queue]
        assert unacked, "nothing in flight at the kill"
        p, cpub2, port = _start_collector(tmp_path, str(tmp_path / "c2.log"))
        procs.append(p)
        assert cpub2 == cpub
        node.connect(SockLink(("127.0.0.1", port)), cpub)
        node.send_queue()                   # the resend at the start of the new session
        for _ in range(10):
            node.take(1)
            node.send([node.queue[-1][1]])
            node.pump(0.01)
        node.wait_acked(timeout=15)
        p.send_signal(signal.SIGINT)
        assert p.wait(20) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    db = sqlite3.connect(str(tmp_path / "r.db"))
    rows = db.execute("SELECT boot, seq FROM readings ORDER BY seq").fetchall()
    db.close()
    assert rows == [(node.boot, s) for s in range(node.seq)]
    assert "Traceback" not in open(str(tmp_path / "c2.log")).read()


def test_node_that_died_mid_packet_does_not_delay_its_next_boot(env, monkeypatch):
    monkeypatch.setattr(session_mod, "PARTIAL_PACKET_S", 0.3)
    e = env()
    link = open_pty(e)
    seed, _ = e.node_key("halfway")
    first = V2Node("halfway", seed)
    first.connect(link, e.pub)
    first.take(1)
    first.send_queue()
    first.wait_acked()
    # Power lost while writing a reading: half of a data packet reaches the collector.
    n = first.conn.send_data(v2("halfway", first.boot, 1), first.out)
    link.write(bytes(first.out[:n // 2]))
    time.sleep(0.6)
    second = V2Node("halfway", seed)
    second.take(1)
    second.connect(link, e.pub)
    second.send_queue()
    second.wait_acked(timeout=5)
    assert time.monotonic() - second.first_byte_at < 2.0
    assert keys_of(e) == [(first.boot, 0), (second.boot, 0)]
    assert e.col.sources[os.ttyname(e.ptys[0][1])].discarded == n // 2


def test_full_database_is_retried_nothing_lost(env, logs):
    e = env()
    port = e.tcp()
    seed, _ = e.node_key("full")
    node = V2Node("full", seed)
    node.connect(SockLink(("127.0.0.1", port)), e.pub)
    node.take(2)
    node.send_queue()
    node.wait_acked()
    # The database cannot grow (SQLite's own "database or disk is full"), as on a full disk.
    with e.store.lock:
        pages = e.store.db.execute("PRAGMA page_count").fetchone()[0]
        e.store.db.execute("PRAGMA max_page_count = %d" % pages)
    for _ in range(30):                 # ~3 KiB of readings: more than any free space left
        node.take(10)
        node.send([r for _, r in node.queue[-10:]])
        node.pump(0.02)
    node.pump(0.5)
    failed = [r for r in events(logs, "store_failed") if r.levelname == "ERROR"]
    assert failed and "full" in failed[0].getMessage()
    assert node.queue, "acked although the database is full"
    with e.store.lock:
        e.store.db.execute("PRAGMA max_page_count = 1073741823")
    node.wait_acked(timeout=20)
    assert keys_of(e) == [(node.boot, s) for s in range(node.seq)]
    node.link.close()
