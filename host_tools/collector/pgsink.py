# Readings into PostgreSQL (psycopg 3): the SQLite store's schema, shared by any number of
# collectors. The unique index on (node_key, boot, seq) makes the database itself decide
# "stored before": INSERT ... ON CONFLICT DO NOTHING, so a reading delivered again by a
# restarted collector, or by another collector the node moved to, is stored exactly once.
#
# Schema (version 2, as host_tools/store.py; ts stays Unix seconds so both stores read alike):
#
#   CREATE TABLE readings (id BIGSERIAL PRIMARY KEY, ts DOUBLE PRECISION NOT NULL,
#     node TEXT NOT NULL, node_key TEXT NOT NULL, source TEXT NOT NULL, seq BIGINT NOT NULL,
#     sensor TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, unit TEXT NOT NULL,
#     up_ms BIGINT NOT NULL, boot TEXT NOT NULL DEFAULT '');
#   CREATE INDEX readings_node_sensor_ts ON readings(node, sensor, ts);
#   CREATE UNIQUE INDEX readings_once ON readings(node_key, boot, seq) WHERE boot <> '';
#   CREATE TABLE boots (node_key TEXT, boot TEXT, node TEXT, first_ts DOUBLE PRECISION,
#     last_ts DOUBLE PRECISION, dropped BIGINT, PRIMARY KEY (node_key, boot));
#   CREATE TABLE ossuary_schema (version INTEGER NOT NULL);   -- one row: 2
#
# Created or migrated at start inside one transaction holding an advisory lock, so several
# collectors starting at once do not race each other's CREATEs. psycopg's exceptions stop
# here: callers see SinkError with the URL's password removed.

import re

from host_tools.collector.sinks import Sink, SinkError

SCHEMA_VERSION = 2
_LOCK_ID = 0x6f7373756172   # pg_advisory_xact_lock key for schema changes ("ossuar")
CONNECT_TIMEOUT_S = 10

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ossuary_schema (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS readings ("
    " id BIGSERIAL PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, node TEXT NOT NULL,"
    " node_key TEXT NOT NULL, source TEXT NOT NULL, seq BIGINT NOT NULL, sensor TEXT NOT NULL,"
    " value DOUBLE PRECISION NOT NULL, unit TEXT NOT NULL, up_ms BIGINT NOT NULL)",
    # Version 1 had no boot column (a table made by hand from the old README, say).
    "ALTER TABLE readings ADD COLUMN IF NOT EXISTS boot TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX IF NOT EXISTS readings_node_sensor_ts ON readings(node, sensor, ts)",
    "CREATE UNIQUE INDEX IF NOT EXISTS readings_once ON readings(node_key, boot, seq)"
    " WHERE boot <> ''",
    "CREATE TABLE IF NOT EXISTS boots ("
    " node_key TEXT NOT NULL, boot TEXT NOT NULL, node TEXT NOT NULL,"
    " first_ts DOUBLE PRECISION NOT NULL, last_ts DOUBLE PRECISION NOT NULL,"
    " dropped BIGINT NOT NULL, PRIMARY KEY (node_key, boot))",
)

_INSERT = ("INSERT INTO readings (ts, node, node_key, source, seq, sensor, value, unit, up_ms, boot)"
           " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
           " ON CONFLICT (node_key, boot, seq) WHERE boot <> '' DO NOTHING RETURNING id")
_BOOTS = ("INSERT INTO boots (node_key, boot, node, first_ts, last_ts, dropped)"
          " VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (node_key, boot) DO UPDATE SET"
          " last_ts = greatest(boots.last_ts, excluded.last_ts),"
          " dropped = greatest(boots.dropped, excluded.dropped)")


def is_postgres_url(text):
    return text.startswith(("postgresql://", "postgres://"))


def redact_url(url):
    """`url` with any password replaced by ***, for logs and error messages."""
    return re.sub(r"(://[^/@:]*):[^/]*@", r"\1:***@", url)


def _short_error(e, url=""):
    # psycopg messages can run to several lines (DETAIL, HINT): keep the first. libpq may
    # quote part of a malformed URL: never the password.
    text = str(e).strip().splitlines()
    line = text[0] if text else e.__class__.__name__
    m = re.search(r"://[^/@:]*:([^/]*)@", url)
    if m and m.group(1):
        line = line.replace(m.group(1), "***")
    return line


class PostgresSink(Sink):
    """Readings into a PostgreSQL database given by a libpq URL (postgresql://...). Passwords
    may come from the URL, PGPASSWORD or ~/.pgpass (libpq's own rules).

    Raises SinkError at construction when the server is unreachable, refuses the login, or the
    database holds a newer schema. One connection, used by one committing thread at a time
    (the collector's sessions commit under self's lock). A connection lost later makes the
    commit fail (SinkError, retried by the session); the next commit reconnects."""

    def __init__(self, url, connect_timeout=CONNECT_TIMEOUT_S):
        import threading
        try:
            import psycopg
        except ImportError:
            raise SinkError("PostgreSQL needs psycopg (pip install 'psycopg[binary]')")
        self._pg = psycopg
        self.url = url
        self.name = redact_url(url)
        self.connect_timeout = connect_timeout
        self.lock = threading.Lock()
        self.conn = None
        self.reconnects = 0
        self._connect()
        try:
            with self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                row = self.conn.execute(
                    "SELECT to_regclass('ossuary_schema') IS NOT NULL").fetchone()
                version = None
                if row[0]:
                    got = self.conn.execute("SELECT max(version) FROM ossuary_schema").fetchone()
                    version = got[0]
                if version is not None and version > SCHEMA_VERSION:
                    raise SinkError("%s has schema version %d; this collector writes version %d"
                                    % (self.name, version, SCHEMA_VERSION))
                for stmt in _SCHEMA:
                    self.conn.execute(stmt)
                self.conn.execute("DELETE FROM ossuary_schema")
                self.conn.execute("INSERT INTO ossuary_schema VALUES (%s)", (SCHEMA_VERSION,))
            self.migrated_from = version if version != SCHEMA_VERSION else None
        except psycopg.Error as e:
            self.close()
            raise SinkError("cannot set up the schema in %s: %s" % (self.name, _short_error(e)))
        except SinkError:
            self.close()
            raise

    def _connect(self):
        try:
            self.conn = self._pg.connect(self.url, connect_timeout=self.connect_timeout,
                                         autocommit=True)
        except self._pg.Error as e:
            self.conn = None
            raise SinkError("cannot connect to %s: %s" % (self.name, _short_error(e, self.url)))
        except Exception as e:    # a malformed URL is a ProgrammingError or a ValueError
            self.conn = None
            raise SinkError("cannot connect to %s: %s" % (self.name, _short_error(e, self.url)))

    def store(self, readings):
        with self.lock:
            if self.conn is None or self.conn.closed:
                self.reconnects += 1
                self._connect()
            try:
                return self._store(readings)
            except self._pg.Error as e:
                if self.conn.closed or self.conn.broken:
                    self.conn = None      # reconnect on the next attempt
                raise SinkError("cannot store readings in %s: %s" % (self.name, _short_error(e)))

    def _store(self, readings):
        new = []
        boots = {}
        with self.conn.transaction():
            with self.conn.cursor() as cur:
                cur.executemany(_INSERT, [
                    (r["ts"], r["node"], r["node_key"], r["source"], r["seq"], r["sensor"],
                     r["value"], r["unit"], r["up_ms"], r["boot"]) for r in readings],
                    returning=True)
                for r in readings:
                    if cur.fetchone() is not None:
                        new.append(r)
                    cur.nextset()
                for r in readings:
                    if r["boot"]:
                        k = (r["node_key"], r["boot"])
                        b = boots.get(k)
                        if b is None:
                            boots[k] = [r["node"], r["ts"], r["ts"], r["dropped"]]
                        else:
                            b[1], b[2] = min(b[1], r["ts"]), max(b[2], r["ts"])
                            b[3] = max(b[3], r["dropped"])
                # One upsert per boot, in key order: two collectors writing the same boots
                # take the row locks in the same order and cannot deadlock on them.
                if boots:
                    cur.executemany(_BOOTS, [(k[0], k[1], b[0], b[1], b[2], b[3])
                                             for k, b in sorted(boots.items())])
        return new

    def stored(self, keys):
        """Which of `keys` ((node_key, boot, seq) triples) are in the database, as a set.
        Raises SinkError."""
        if not keys:
            return set()
        with self.lock:
            if self.conn is None or self.conn.closed:
                self._connect()
            try:
                rows = self.conn.execute(
                    "SELECT node_key, boot, seq FROM readings WHERE (node_key, boot, seq) IN"
                    " (SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]))",
                    ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])).fetchall()
            except self._pg.Error as e:
                raise SinkError("cannot query %s: %s" % (self.name, _short_error(e)))
        return {tuple(r) for r in rows}

    def close(self):
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
