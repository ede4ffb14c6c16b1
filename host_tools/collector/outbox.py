# The MQTT outbox: a bounded, persistent queue (a SQLite file of its own) of readings to
# publish, filled in the same step as the store and drained by the publisher (mqtt.py) only
# when the broker has acknowledged a message (PUBACK). A broker that is down or slow therefore
# never holds up the nodes: readings wait here, and what does not fit is counted.
#
# Exactly once across a fleet: only readings the *database* calls new are published, so a
# reading delivered again (a restarted collector, a node that moved to another collector, a
# duplicate) goes out once, by the collector whose INSERT stored it. The steps of one commit:
#
#   1. hold:    the batch goes into the outbox as "pending" (state 0), one SQLite transaction;
#   2. store:   the primary sink (SQLite or PostgreSQL) commits it and says which rows are new;
#   3. settle:  new rows become "ready" (state 1), the others' pending rows are deleted.
#
# Only after step 3 does the session ack the node. A crash between 1 and 3 leaves pending rows:
# at the next start each is made ready if the primary has the reading, else deleted (the node
# was not acked, so it sends it again). The one case this gets wrong: a crash between 2 and 3
# of a batch whose reading another collector had stored and published already -- it is then
# published twice; consumers keep the (node_key, boot, seq) of the payload to drop repeats,
# as MQTT QoS 1 (at least once across a broker crash) asks of them anyway.
#
# Bounded: at most `max_rows` ready rows; a new one beyond pushes out the oldest, counted in
# `overflow` (this run) and in the file's own meta table (all runs). Pending rows are at most
# one commit batch per source, so they are not counted against the bound.

import json
import sqlite3
import threading

from host_tools.collector.sinks import Sink, SinkError

DEFAULT_MAX_ROWS = 100000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox ("
    " id INTEGER PRIMARY KEY, state INTEGER NOT NULL, node_key TEXT NOT NULL,"
    " boot TEXT NOT NULL, seq INTEGER NOT NULL, node TEXT NOT NULL, sensor TEXT NOT NULL,"
    " unit TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS outbox_once ON outbox(node_key, boot, seq) WHERE boot != ''",
    "CREATE INDEX IF NOT EXISTS outbox_state ON outbox(state, id)",
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
)


class OutboxError(Exception):
    """The outbox file cannot be opened or written."""


def fingerprint(node_key):
    """The node key's short fingerprint in payloads and HA ids: its first 16 hex digits."""
    return node_key[:16]


def payload(r):
    """The JSON payload of one reading (README "MQTT"): node, node key fingerprint, boot,
    seq, ts, value, unit (and sensor, so a wildcard subscriber needs no topic parsing)."""
    return json.dumps({"node": r["node"], "key": fingerprint(r["node_key"]), "boot": r["boot"],
                       "seq": r["seq"], "ts": round(r["ts"], 3), "sensor": r["sensor"],
                       "value": r["value"], "unit": r["unit"]}, separators=(",", ":"))


class Outbox:
    """The outbox file. Thread-safe (one connection behind a lock: the sessions hold and
    settle, the publisher reads and deletes). Raises OutboxError."""

    def __init__(self, path, max_rows=DEFAULT_MAX_ROWS, topic="ossuary/{node}/{sensor}"):
        self.path = path
        self.max_rows = max_rows
        self.topic = topic
        self.lock = threading.Lock()
        self.overflow = 0          # ready rows pushed out by newer ones, this run
        self.added = 0             # ready rows added, this run
        self.removed = 0           # rows removed after PUBACK, this run
        self.final = None          # size() at close()
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, timeout=5.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            for stmt in _SCHEMA:
                self.db.execute(stmt)
            self.db.commit()
            self.size()
        except sqlite3.Error as e:
            raise OutboxError("cannot open the MQTT outbox %s: %s" % (path, e))

    def topic_for(self, r):
        return self.topic.format(node=r["node"], sensor=r["sensor"], key=fingerprint(r["node_key"]))

    def _tx(self, fn):
        with self.lock:
            try:
                out = fn(self.db)
                self.db.commit()
                return out
            except sqlite3.Error as e:
                try:
                    self.db.rollback()
                except sqlite3.Error:
                    pass
                raise OutboxError("MQTT outbox %s: %s" % (self.path, e))

    def hold(self, rows):
        """Step 1: add `rows` as pending. Returns one id per row (None where that reading is
        in the outbox already)."""
        def fn(db):
            ids = []
            for r in rows:
                cur = db.execute(
                    "INSERT OR IGNORE INTO outbox (state, node_key, boot, seq, node, sensor, unit,"
                    " topic, payload) VALUES (0,?,?,?,?,?,?,?,?)",
                    (r["node_key"], r["boot"], r["seq"], r["node"], r["sensor"], r["unit"],
                     self.topic_for(r), payload(r)))
                ids.append(cur.lastrowid if cur.rowcount == 1 else None)
            return ids
        return self._tx(fn)

    def settle(self, ids, new_flags):
        """Step 3: pending rows of new readings become ready, the others go; then trim to the
        bound. Returns how many ready rows were pushed out."""
        def fn(db):
            ready = [(i,) for i, n in zip(ids, new_flags) if i is not None and n]
            gone = [(i,) for i, n in zip(ids, new_flags) if i is not None and not n]
            db.executemany("UPDATE outbox SET state=1 WHERE id=?", ready)
            db.executemany("DELETE FROM outbox WHERE id=? AND state=0", gone)
            return len(ready), self._trim(db)
        added, dropped = self._tx(fn)
        self.added += added
        self.overflow += dropped
        return dropped

    def release(self, ids):
        """Undo step 1 for a batch the primary did not commit."""
        self._tx(lambda db: db.executemany("DELETE FROM outbox WHERE id=? AND state=0",
                                           [(i,) for i in ids if i is not None]))

    def _trim(self, db):
        n = db.execute("SELECT count(*) FROM outbox WHERE state=1").fetchone()[0]
        extra = n - self.max_rows
        if extra <= 0:
            return 0
        db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE state=1"
                   " ORDER BY id LIMIT ?)", (extra,))
        db.execute("INSERT INTO meta VALUES ('overflow', ?) ON CONFLICT(k) DO UPDATE SET"
                   " v = v + excluded.v", (extra,))
        return extra

    def recover(self, sink):
        """Settle pending rows a crash left (module comment): ready if `sink` has the
        reading, else deleted. Returns (made ready, deleted). Raises SinkError/OutboxError."""
        with self.lock:
            rows = self.db.execute("SELECT id, node_key, boot, seq FROM outbox WHERE state=0").fetchall()
        if not rows:
            return 0, 0
        have = sink.stored([(k, b, s) for _, k, b, s in rows if b])
        flags = [bool(b) and (k, b, s) in have for _, k, b, s in rows]
        self.settle([r[0] for r in rows], flags)
        return sum(flags), len(flags) - sum(flags)

    def next_ready(self, limit):
        """The `limit` oldest ready rows: (id, topic, payload)."""
        with self.lock:
            try:
                return self.db.execute(
                    "SELECT id, topic, payload FROM outbox WHERE state=1 ORDER BY id LIMIT ?",
                    (limit,)).fetchall()
            except sqlite3.Error as e:
                raise OutboxError("MQTT outbox %s: %s" % (self.path, e))

    def remove(self, ids):
        """Delete rows whose publication the broker acknowledged."""
        if not ids:
            return
        self._tx(lambda db: db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids]))
        self.removed += len(ids)

    def size(self):
        """(ready rows, pending rows, overflow over all runs); after close(), as at the close."""
        with self.lock:
            if self.final is not None:
                return self.final
            try:
                counts = dict(self.db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
                row = self.db.execute("SELECT v FROM meta WHERE k='overflow'").fetchone()
            except sqlite3.Error as e:
                raise OutboxError("MQTT outbox %s: %s" % (self.path, e))
        return counts.get(1, 0), counts.get(0, 0), row[0] if row else 0

    def close(self):
        try:
            self.final = self.size()
        except OutboxError:
            self.final = (-1, -1, -1)
        with self.lock:
            try:
                self.db.close()
            except sqlite3.Error:
                pass


class OutboxSink(Sink):
    """The primary sink (SQLite or PostgreSQL) with every new reading also queued in the
    outbox for MQTT; `publisher` (mqtt.MqttPublisher, or None) is woken after each commit and
    closed with the sink. Raises SinkError as the primary does; an outbox that cannot be
    written fails the commit too (nothing acked, retried), so nothing is acked that is not in
    both."""

    def __init__(self, primary, outbox, publisher=None):
        self.primary = primary
        self.outbox = outbox
        self.publisher = publisher
        self.name = primary.name

    def store(self, readings):
        try:
            ids = self.outbox.hold(readings)
        except OutboxError as e:
            raise SinkError(str(e))
        try:
            new = self.primary.store(readings)
        except SinkError:
            try:
                self.outbox.release(ids)     # the retry holds them afresh
            except OutboxError:
                pass                         # left pending: recover() settles them
            raise
        fresh = set(map(id, new))
        try:
            self.outbox.settle(ids, [id(r) in fresh for r in readings])
        except OutboxError as e:
            # Stored but not queued: not acked, so the node resends; recover() at the next
            # start or the next successful settle decides (module comment).
            raise SinkError(str(e))
        if self.publisher is not None:
            self.publisher.saw(new)
        return new

    def stored(self, keys):
        return self.primary.stored(keys)

    def summary_lines(self):
        lines = list(self.primary.summary_lines())
        ready, pending, overflow_all = self.outbox.size()
        lines.append("  mqtt outbox %s: backlog %d (max %d), queued this run %d, published %d,"
                     " overflowed %d this run (%d all runs)"
                     % (self.outbox.path, ready, self.outbox.max_rows, self.outbox.added,
                        self.outbox.removed, self.outbox.overflow, overflow_all))
        if self.publisher is not None:
            lines.append("  " + self.publisher.status())
        return lines

    def close(self):
        if self.publisher is not None:
            self.publisher.close()
        self.primary.close()
        self.outbox.close()
