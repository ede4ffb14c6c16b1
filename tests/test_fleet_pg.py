# Issue 12: PostgreSQL as the store of several collectors, and the whole fleet at once -- three
# ossuary-collect processes with three simulated v2 nodes each (tests/test_collect_readings.py's
# V2Node over TCP loopback) into one PostgreSQL database and one MQTT broker; a collector
# SIGKILLed and restarted mid-stream, the broker stopped and restarted, a node's whole history
# delivered again to another collector on purpose. Every reading must be in the database exactly
# once and reach an MQTT subscriber, none lost. All servers are real and started here: a
# throw-away cluster from the machine's initdb/pg_ctl (skipped, saying so, where they are
# absent), amqtt in every run and Mosquitto where it is installed.

import os

import pytest

from ossuary_micro.keys import generate_keypair, parse_key
from host_tools.known_nodes import KnownNodes
from host_tools.collector.sinks import SinkError
from tests._fleet import (AmqttBroker, MosquittoBroker, Subscriber, PgCluster, CollectorProc, pg_bin,
                          mosquitto_missing, wait_for)
from tests.test_collect_cli import run_collect
from tests.test_collect import SockLink
from tests.test_collect_readings import V2Node

pytestmark = pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL server binaries (initdb, pg_ctl) "
                                "not found: the PostgreSQL tests were skipped")


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.destroy()


_dbs = iter(range(1, 1000))


def fresh_db(pg):
    return pg.create_db("fleet_%d_%d" % (os.getpid(), next(_dbs)))


def row(node, key, boot, seq, ts=1.0):
    return {"ts": ts, "node": node, "node_key": key, "source": "tcp:x", "seq": seq, "sensor": "temp",
            "value": 20.5, "unit": "C", "up_ms": seq, "boot": boot, "dropped": 0, "v": 2}


def test_schema_is_created_and_each_reading_stored_once_across_sinks(pg):
    import psycopg
    from host_tools.collector.pgsink import PostgresSink
    url = fresh_db(pg)
    a, b = PostgresSink(url), PostgresSink(url)      # two collectors, one database
    key = "ab" * 32
    rows = [row("n1", key, "0011223344556677", s) for s in range(10)]
    assert a.store(rows[:6]) == rows[:6]
    # b gets all ten (a node that moved, resending): only the last four are new to it.
    assert b.store(rows) == rows[6:]
    assert a.store(rows) == []
    v1 = [row("n1", key, "", 3)]
    assert a.store(v1) == v1 and a.store(v1) == v1          # v1 rows (no boot) may repeat
    assert b.stored([(key, "0011223344556677", 3), (key, "0011223344556677", 99)]) == \
        {(key, "0011223344556677", 3)}
    a.close()
    b.close()
    with psycopg.connect(url) as c:
        assert c.execute("SELECT count(*) FROM readings WHERE boot <> ''").fetchone()[0] == 10
        assert c.execute("SELECT count(*) FROM boots").fetchone()[0] == 1
        assert c.execute("SELECT version FROM ossuary_schema").fetchall() == [(2,)]
    PostgresSink(url).close()                        # opening again migrates nothing, fails nothing


def test_a_newer_schema_and_a_lost_server_are_clear_errors(pg):
    import psycopg
    from host_tools.collector.pgsink import PostgresSink
    url = fresh_db(pg)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE ossuary_schema (version INTEGER NOT NULL)")
        c.execute("INSERT INTO ossuary_schema VALUES (9)")
    with pytest.raises(SinkError, match="schema version 9"):
        PostgresSink(url)
    url = fresh_db(pg)
    s = PostgresSink(url)
    with psycopg.connect(pg.url(), autocommit=True) as c:      # the server drops our session
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                  (url.rsplit("/", 1)[1],))
    key = "cd" * 32
    with pytest.raises(SinkError):
        s.store([row("n2", key, "0011223344556677", 0)])
    # The next attempt reconnects (the session retries with backoff), nothing lost.
    assert len(s.store([row("n2", key, "0011223344556677", 0)])) == 1
    s.close()


def test_startup_errors_for_database_urls_are_one_line(tmp_path, pg):
    bad = [
        (pg.url(password="wrong"), "password authentication failed"),
        ("postgresql://postgres:pw@127.0.0.1:%d/postgres" % _closed_port(), "cannot connect"),
        ("postgresql://postgres@127.0.0.1:%d/no_such_db" % pg.port, "cannot connect"),
        # libpq quotes the bad part of a malformed URL: here, the password.
        ("postgresql://postgres:wrong%%zz@127.0.0.1:%d/postgres" % pg.port, "percent-encoded"),
    ]
    for url, what in bad:
        r = run_collect(tmp_path, "--init", "--listen", "127.0.0.1:0", "--db", url)
        assert r.returncode == 5, r.stderr
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("ossuary-collect: error:")]
        assert len(errors) == 1 and what in errors[0], r.stderr
        assert "wrong" not in r.stderr and ":pw@" not in r.stderr      # passwords redacted
        assert "Traceback" not in r.stderr


def _closed_port():
    from tests._fleet import free_port
    return free_port()


BROKERS = [pytest.param(AmqttBroker, id="amqtt"),
           pytest.param(MosquittoBroker, id="mosquitto",
                        marks=pytest.mark.skipif(mosquitto_missing() is not None,
                                                 reason=str(mosquitto_missing())))]


@pytest.mark.parametrize("broker_cls", BROKERS)
def test_three_collectors_one_database_one_broker_exactly_once(tmp_path, pg, broker_cls):
    import psycopg
    users = {"fleet": "s3cret-mqtt-pw"}
    broker = broker_cls(str(tmp_path / "broker"), users=users).start()
    sub = Subscriber(broker.port, auth=("fleet", users["fleet"]))
    db = fresh_db(pg)
    key = str(tmp_path / "collector.key")
    known = str(tmp_path / "known_nodes")
    kn = KnownNodes(known)
    cols = []
    try:
        for i in range(3):
            c = CollectorProc(str(tmp_path / ("c%d" % i)), key, known, db,
                              "--mqtt", "mqtt://127.0.0.1:%d" % broker.port, "--ha-discovery",
                              "--mqtt-node-timeout", "600")
            c.env.update(OSSUARY_MQTT_USER="fleet", OSSUARY_MQTT_PASSWORD=users["fleet"])
            cols.append(c.start())
        cpub = parse_key(wait_for(lambda: _pub(cols[0]), 10, "public key"))
        nodes = []
        for i in range(9):
            seed, pub = generate_keypair()
            kn.add("node%d" % i, pub)
            n = V2Node("node%d" % i, seed)
            n.home = cols[i % 3]
            nodes.append(n)
        for n in nodes:
            n.connect(SockLink(("127.0.0.1", n.home.port)), cpub)

        def burst(ns, count):
            for n in ns:
                n.take(count)
                n.send([r for _, r in n.queue[-count:]])
            for n in ns:
                n.wait_acked(timeout=30)

        # 1. Everyone delivers.
        burst(nodes, 10)
        # 2. Collector 1 is SIGKILLed while its nodes stream without waiting for acks.
        victims = [n for n in nodes if n.home is cols[1]]
        for _ in range(5):
            for n in victims:
                n.take(1)
                n.send([n.queue[-1][1]])
                n.pump(0.01)
        for n in victims:
            n.take(3)
            n.send([r for _, r in n.queue[-3:]])
        cols[1].kill()
        for n in victims:
            n.link.close()
        cols[1].start()
        for n in victims:
            n.connect(SockLink(("127.0.0.1", n.home.port)), cpub)
            n.send_queue()
        burst(nodes, 5)
        expected = lambda: {(n.name, n.boot, s) for n in nodes for s in range(n.seq)}   # noqa: E731
        _wait_all(sub, expected, 60, "all readings at the subscriber")
        # 3. The broker goes away; the collectors keep storing and acking (the outbox holds).
        subacks = sub.subacks
        broker.stop()
        burst(nodes, 10)
        broker.hold(True)          # amqtt: the subscriber is back before the collectors
        broker.start()
        sub.wait_resubscribed(subacks)
        broker.hold(False)
        # 4. Duplicates on purpose: node0 moves to collector 2 and sends its whole history.
        n0 = nodes[0]
        n0.link.close()
        n0.queue = [(s, _record(n0, s)) for s in range(n0.seq)]
        n0.connect(SockLink(("127.0.0.1", cols[2].port)), cpub)
        n0.send_queue()
        n0.wait_acked(timeout=30)
        _wait_all(sub, expected, 90, "all readings after the broker restart")
        results = [c.stop() for c in cols]
    finally:
        for c in cols:
            if c.proc is not None and c.proc.poll() is None:
                c.proc.kill()
        sub.close()
        broker.stop()
    want = expected()
    with psycopg.connect(db) as c:
        got = c.execute("SELECT node, boot, seq FROM readings").fetchall()
    assert len(want) == 9 * 25 + 3 * 8
    assert set(got) == want and len(got) == len(set(got))
    assert sub.keys() == want
    # Repeats at the subscriber can only be readings the killed collector had published and
    # not yet struck off its outbox when it died (QoS 1 is at least once across a crash).
    repeats = sub.repeats()
    assert all(k[0] in {n.name for n in victims} for k in repeats), repeats
    for rc, log in results:
        assert rc == 0, log
        assert "Traceback" not in log and users["fleet"] not in log
        assert "mqtt outbox" in log and "backlog 0" in log
    for c in cols:
        assert "mqtt_lost" in c.logs()         # the broker stop was seen, logged ...
        assert c.logs().count("WARNING mqtt_lost") == 1     # ... once
    # Availability and Home Assistant discovery arrived (retained, after the restart too).
    assert sub.status.get("ossuary/node0/availability") in ("online", "offline")
    assert any(t.startswith("homeassistant/sensor/ossuary_") for t in sub.status)
    topic, payload = sub.payloads[0]
    assert topic == "ossuary/%s/temp" % payload["node"]
    assert set(payload) == {"node", "key", "boot", "seq", "ts", "sensor", "value", "unit"}


def _wait_all(sub, expected, timeout, what):
    try:
        wait_for(lambda: sub.keys() == expected(), timeout, what)
    except AssertionError:
        missing, extra = expected() - sub.keys(), sub.keys() - expected()
        raise AssertionError("%s: %d missing (%s), %d unexpected"
                             % (what, len(missing), sorted(missing)[:8], len(extra)))


def _pub(col):
    import re
    m = re.search(r"public_key=([0-9a-f]{64})", open(col.log_path()).read())
    return m.group(1) if m else None


def _record(n, seq):
    from tests.test_collect_readings import v2
    return v2(n.name, n.boot, seq, 20.0 + seq)


def test_database_lost_mid_stream_is_logged_once_retried_and_nothing_lost(tmp_path, pg):
    import psycopg
    db = fresh_db(pg)
    seed, npub = generate_keypair()
    KnownNodes(str(tmp_path / "kn")).add("n1", npub)
    col = CollectorProc(str(tmp_path / "c"), str(tmp_path / "c.key"), str(tmp_path / "kn"), db)
    try:
        col.start()
        node = V2Node("n1", seed)
        node.connect(SockLink(("127.0.0.1", col.port)), parse_key(_pub(col)))
        node.take(5)
        node.send_queue()
        node.wait_acked()
        pg.stop()
        # The server is gone: nothing is acked, the node keeps its readings queued.
        node.take(5)
        node.send_queue()
        node.pump(1.5)
        assert [s for s, _ in node.queue] == list(range(5, 10))
        pg.start()
        node.wait_acked(timeout=30)
        rc, log = col.stop()
    finally:
        if col.proc is not None and col.proc.poll() is None:
            col.proc.kill()
    assert rc == 0, log
    assert log.count("ERROR store_failed") == 1 and "store_recovered" in log, log
    assert pg.password not in log
    with psycopg.connect(db) as c:
        assert sorted(c.execute("SELECT seq FROM readings").fetchall()) == [(s,) for s in range(10)]


def test_a_version_1_table_is_migrated_in_place(pg):
    import psycopg
    from host_tools.collector.pgsink import PostgresSink
    url = fresh_db(pg)
    with psycopg.connect(url, autocommit=True) as c:       # the v1 columns, no boot, no version
        c.execute("CREATE TABLE readings (id BIGSERIAL PRIMARY KEY, ts DOUBLE PRECISION NOT NULL,"
                  " node TEXT NOT NULL, node_key TEXT NOT NULL, source TEXT NOT NULL,"
                  " seq BIGINT NOT NULL, sensor TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,"
                  " unit TEXT NOT NULL, up_ms BIGINT NOT NULL)")
        for _ in range(2):          # v1 repeats (node_key, seq) across boots
            c.execute("INSERT INTO readings (ts, node, node_key, source, seq, sensor, value, unit, up_ms)"
                      " VALUES (1, 'n', 'k', 's', 0, 't', 1, 'C', 0)")
    s = PostgresSink(url)
    key = "ef" * 32
    assert len(s.store([row("n", key, "0011223344556677", 0)])) == 1
    s.close()
    with psycopg.connect(url) as c:
        assert c.execute("SELECT boot, count(*) FROM readings GROUP BY boot ORDER BY boot").fetchall() == \
            [("", 2), ("0011223344556677", 1)]
