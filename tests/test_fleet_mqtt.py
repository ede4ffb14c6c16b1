# Issue 12: MQTT out with the SQLite store, against an amqtt broker started here: start-up
# failures are one line and exit 7 (never the password); a broker that goes away never blocks
# the nodes (acks keep coming), the outbox holds what waits up to its bound and counts what it
# pushed out, and the next run publishes the rest; readings a crash left pending in the outbox
# are settled against the store.

import os
import sqlite3
import time

from ossuary_micro.keys import generate_keypair, parse_key
from host_tools.known_nodes import KnownNodes
from host_tools.store import Store
from host_tools.collector.sinks import SqliteSink
from host_tools.collector.outbox import Outbox, OutboxSink
from tests._fleet import AmqttBroker, Subscriber, CollectorProc, free_port, make_tls, wait_for
from tests.test_collect import SockLink
from tests.test_collect_cli import run_collect
from tests.test_collect_readings import V2Node

PW = "hunter2-mqtt"


def _errors(stderr):
    return [ln for ln in stderr.splitlines() if ln.startswith("ossuary-collect: error:")]


def test_bad_or_refusing_brokers_are_one_line_and_exit_7(tmp_path):
    broker = AmqttBroker(str(tmp_path / "broker"), users={"u": PW}).start()
    try:
        (tmp_path / "creds").write_text("u:not-the-password\n")
        cases = [
            (["--mqtt", "ftp://127.0.0.1:%d" % broker.port], "mqtt:// or mqtts://"),
            (["--mqtt", "mqtt://127.0.0.1:%d" % free_port()], "cannot reach"),
            (["--mqtt", "mqtt://u:wrong-%s@127.0.0.1:%d" % (PW, broker.port)], "refused the connection"),
            (["--mqtt", "mqtt://127.0.0.1:%d" % broker.port, "--mqtt-credentials", str(tmp_path / "creds")],
             "refused the connection"),
            (["--mqtt", "mqtt://127.0.0.1:%d" % broker.port, "--mqtt-credentials", str(tmp_path / "none")],
             "cannot read MQTT credentials"),
            (["--mqtt", "mqtt://127.0.0.1:%d" % broker.port, "--mqtt-topic", "x/{nope}"], "--mqtt-topic"),
            (["--mqtt", "mqtt://u:%s@127.0.0.1:%d" % (PW, broker.port), "--mqtt-outbox",
              str(tmp_path / "no-such-dir" / "ob.db")], "cannot open the MQTT outbox"),
        ]
        for extra, what in cases:
            r = run_collect(tmp_path, "--init", "--listen", "127.0.0.1:0",
                            "--mqtt-outbox", str(tmp_path / "ob.db"), *extra)
            assert r.returncode == 7, (extra, r.stderr)
            errs = _errors(r.stderr)
            assert len(errs) == 1 and what in errs[0], (extra, r.stderr)
            assert PW not in r.stderr and "Traceback" not in r.stderr
    finally:
        broker.stop()


def test_broker_down_never_blocks_nodes_outbox_bounded_and_drained_next_run(tmp_path):
    broker = AmqttBroker(str(tmp_path / "broker"), users={"u": PW}).start()
    sub = Subscriber(broker.port, auth=("u", PW))
    (tmp_path / "creds").write_text("# user:password\nu:%s\n" % PW)
    os.chmod(str(tmp_path / "creds"), 0o600)
    seed, npub = generate_keypair()
    KnownNodes(str(tmp_path / "kn")).add("n1", npub)
    col = CollectorProc(str(tmp_path / "c"), str(tmp_path / "c.key"), str(tmp_path / "kn"),
                        str(tmp_path / "r.db"), "--mqtt", "mqtt://127.0.0.1:%d" % broker.port,
                        "--mqtt-credentials", str(tmp_path / "creds"), "--mqtt-outbox-max", "5")
    node = V2Node("n1", seed)
    try:
        col.start()
        cpub = parse_key(wait_for(lambda: _pub(col), 10, "public key"))
        node.connect(SockLink(("127.0.0.1", col.port)), cpub)
        node.take(3)
        node.send_queue()
        node.wait_acked()
        wait_for(lambda: len(sub.keys()) == 3, 30, "the first readings")
        wait_for(lambda: _backlog(col) == 0, 30, "PUBACKs struck off the outbox")
        assert sub.status.get("ossuary/n1/availability") == "online"
        subacks = sub.subacks
        broker.stop()
        # The broker is gone: the node is still acked at once, the outbox fills, then overflows.
        node.take(12)
        node.send_queue()
        node.wait_acked(timeout=20)
        rc, log = col.stop()
        assert rc == 0, log
        assert "backlog 5 (max 5)" in log and "overflowed 7 this run (7 all runs)" in log, log
        assert "WARNING mqtt_lost" in log and PW not in log
        # Next run, broker back: the five newest go out, the next reading after them.
        broker.hold(True)
        broker.start()
        sub.wait_resubscribed(subacks)
        broker.hold(False)
        col.start()
        node.link.close()
        node.connect(SockLink(("127.0.0.1", col.port)), cpub)
        node.take(1)
        node.send_queue()
        node.wait_acked()
        want = {("n1", node.boot, s) for s in list(range(3)) + list(range(10, 16))}
        wait_for(lambda: sub.keys() == want, 30, "the outbox drained")
        rc, log = col.stop()
        assert rc == 0 and "backlog 0" in log and "(7 all runs)" in log, log
    finally:
        if col.proc is not None and col.proc.poll() is None:
            col.proc.kill()
        sub.close()
        broker.stop()
    db = sqlite3.connect(str(tmp_path / "r.db"))
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 16    # the store has all
    db.close()


def test_tls_broker_with_our_ca_and_refused_without_it(tmp_path):
    ca = make_tls(str(tmp_path / "broker"))
    broker = AmqttBroker(str(tmp_path / "broker")).start()
    seed, npub = generate_keypair()
    KnownNodes(str(tmp_path / "kn")).add("n1", npub)
    try:
        # The system's CAs do not know this certificate: one line, exit 7.
        r = run_collect(tmp_path, "--init", "--listen", "127.0.0.1:0", "--mqtt-outbox",
                        str(tmp_path / "ob.db"), "--mqtt", "mqtts://127.0.0.1:%d" % broker.port)
        assert r.returncode == 7 and "TLS" in _errors(r.stderr)[0], r.stderr
        assert "certificate verify failed" in _errors(r.stderr)[0]
        col = CollectorProc(str(tmp_path / "c"), str(tmp_path / "c.key"), str(tmp_path / "kn"),
                            str(tmp_path / "r.db"), "--mqtt", "mqtts://127.0.0.1:%d" % broker.port,
                            "--mqtt-ca", ca, "--count", "3")
        col.start()
        node = V2Node("n1", seed)
        node.connect(SockLink(("127.0.0.1", col.port)), parse_key(_pub(col)))
        node.take(3)
        node.send_queue()
        node.wait_acked()
        rc, log = col.stop()
        assert rc == 0 and "published 3" in log and "backlog 0" in log, log
    finally:
        broker.stop()


def _backlog(col):
    db = sqlite3.connect(os.path.join(col.dir, "mqtt-outbox.db"))
    try:
        return db.execute("SELECT count(*) FROM outbox WHERE state=1").fetchone()[0]
    finally:
        db.close()


def _pub(col):
    import re
    m = re.search(r"public_key=([0-9a-f]{64})", open(col.log_path()).read())
    return m.group(1) if m else None


def _row(seq, boot="00112233aabbccdd"):
    return {"ts": 1.0, "node": "n", "node_key": "ef" * 32, "source": "x", "seq": seq,
            "sensor": "t", "value": 1.0, "unit": "C", "up_ms": 0, "boot": boot, "dropped": 0, "v": 2}


def test_pending_rows_a_crash_left_are_settled_against_the_store(tmp_path):
    primary = SqliteSink(Store(str(tmp_path / "r.db")))
    box = Outbox(str(tmp_path / "ob.db"))
    rows = [_row(s) for s in range(6)]
    sink = OutboxSink(primary, box)
    assert sink.store(rows[:2]) == rows[:2]
    # A crash after step 1 (hold) of the next batch, with the store committed for 2..3 only.
    box.hold(rows[2:6])
    primary.store(rows[2:4])
    assert box.size()[:2] == (2, 4)
    assert box.recover(primary) == (2, 2)
    assert box.size()[:2] == (4, 0)
    # The node resends 4..5 (never acked): new to the store, queued now; 0..3 are repeats.
    assert sink.store(rows) == rows[4:]
    assert [r[0] for r in box.next_ready(100)] == sorted(r[0] for r in box.next_ready(100))
    assert box.size()[:2] == (6, 0)
    sink.close()


def test_a_hung_broker_does_not_hold_up_the_nodes(tmp_path):
    import signal
    broker = AmqttBroker(str(tmp_path / "broker")).start()
    sub = Subscriber(broker.port)
    seed, npub = generate_keypair()
    KnownNodes(str(tmp_path / "kn")).add("n1", npub)
    col = CollectorProc(str(tmp_path / "c"), str(tmp_path / "c.key"), str(tmp_path / "kn"),
                        str(tmp_path / "r.db"), "--mqtt", "mqtt://127.0.0.1:%d" % broker.port)
    node = V2Node("n1", seed)
    try:
        col.start()
        node.connect(SockLink(("127.0.0.1", col.port)), parse_key(_pub(col)))
        # SIGSTOP: the broker's sockets stay open and its kernel buffers take bytes, but it
        # answers nothing (no PUBACK) -- a broker that is slow, not gone.
        broker.proc.send_signal(signal.SIGSTOP)
        for _ in range(4):
            node.take(25)
            node.send_queue()
            node.wait_acked(timeout=15)
        assert len(sub.keys()) == 0
        broker.proc.send_signal(signal.SIGCONT)
        want = {("n1", node.boot, s) for s in range(100)}
        wait_for(lambda: sub.keys() == want, 30, "the readings after the broker woke up")
        rc, log = col.stop()
        assert rc == 0 and "backlog 0" in log, log
    finally:
        if broker.proc is not None:
            broker.proc.send_signal(signal.SIGCONT)
        if col.proc is not None and col.proc.poll() is None:
            col.proc.kill()
        sub.close()
        broker.stop()


def test_a_node_that_moved_stays_online_when_the_collector_it_left_times_it_out(tmp_path):
    broker = AmqttBroker(str(tmp_path / "broker")).start()
    sub = Subscriber(broker.port)
    seed, npub = generate_keypair()
    KnownNodes(str(tmp_path / "kn")).add("n1", npub)
    key = str(tmp_path / "c.key")
    cols = [CollectorProc(str(tmp_path / c), key, str(tmp_path / "kn"), str(tmp_path / (c + ".db")),
                          "--mqtt", "mqtt://127.0.0.1:%d" % broker.port, "--mqtt-node-timeout", "1")
            for c in ("a", "b")]
    node = V2Node("n1", seed)
    try:
        for c in cols:
            c.start()
        cpub = parse_key(_pub(cols[0]))
        node.connect(SockLink(("127.0.0.1", cols[0].port)), cpub)
        node.take(2)
        node.send_queue()
        node.wait_acked()
        node.link.close()
        node.connect(SockLink(("127.0.0.1", cols[1].port)), cpub)
        topic = "ossuary/n1/availability"
        end = time.monotonic() + 30
        # The node keeps reporting to b; a times it out (offline), b answers with online.
        while True:
            node.take(1)
            node.send_queue()
            node.wait_acked()
            node.pump(0.1)
            said = [p for t, p in list(sub.history) if t == topic]
            if "offline" in said and said[-1] == "online" and said.index("offline") < len(said) - 1:
                break
            assert time.monotonic() < end, sub.history
        assert "offline" in said[said.index("online"):]
    finally:
        for c in cols:
            if c.proc is not None and c.proc.poll() is None:
                c.proc.kill()
        sub.close()
        broker.stop()
