# Sensor readings on the host: validate a record (docs/design.md "Sensor readings"), store it
# in SQLite, and optionally echo it as JSON lines or CSV.
#
# SQLite schema (PRAGMA user_version = 2):
#
#   CREATE TABLE readings (
#     id       INTEGER PRIMARY KEY,  -- insertion order
#     ts       REAL    NOT NULL,     -- collector receive time, Unix seconds (UTC)
#     node     TEXT    NOT NULL,     -- node name from the known-nodes file (pinned by key)
#     node_key TEXT    NOT NULL,     -- the node's verified public key, 64 lowercase hex
#     source   TEXT    NOT NULL,     -- where it came from: serial port/URL or tcp:HOST:PORT
#     seq      INTEGER NOT NULL,     -- the node's reading counter (restarts at 0 on boot)
#     sensor   TEXT    NOT NULL,
#     value    REAL    NOT NULL,
#     unit     TEXT    NOT NULL,
#     up_ms    INTEGER NOT NULL,     -- node uptime when read
#     boot     TEXT    NOT NULL DEFAULT ''   -- 16 hex, random per node boot; '' from v1 nodes
#   );
#   CREATE INDEX readings_node_sensor_ts ON readings(node, sensor, ts);
#   -- each reading at most once; v1 rows (boot '') may repeat (node_key, seq) across boots
#   CREATE UNIQUE INDEX readings_once ON readings(node_key, boot, seq) WHERE boot != '';
#   CREATE TABLE boots (             -- one row per (node, boot) that delivered v2 readings
#     node_key TEXT NOT NULL, boot TEXT NOT NULL, node TEXT NOT NULL,
#     first_ts REAL NOT NULL, last_ts REAL NOT NULL,
#     dropped  INTEGER NOT NULL,     -- readings the node dropped from its full queue, this boot
#     PRIMARY KEY (node_key, boot));
#
# A version 1 database (no boot column, no boots table) is migrated in place on open, in one
# transaction. The node is identified by its verified key; `node` is the name that key is
# pinned under, not the name the record claims (they are equal unless someone renamed an entry).

import csv
import io
import json
import math
import re
import sqlite3
import threading

from host_tools.known_nodes import valid_name

MAX_READING = 256          # bytes of JSON per record (design.md)
SCHEMA_VERSION = 2
_BOOT_RE = re.compile(r"\A[0-9a-f]{16}\Z")
_INT64_MAX = (1 << 63) - 1
# Up to 8 characters, no control characters (it ends up in CSV, logs and plot labels; "°C" is fine).
_UNIT_RE = re.compile(r"\A[^\x00-\x1f\x7f-\x9f]{0,8}\Z")

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
  id       INTEGER PRIMARY KEY,
  ts       REAL    NOT NULL,
  node     TEXT    NOT NULL,
  node_key TEXT    NOT NULL,
  source   TEXT    NOT NULL,
  seq      INTEGER NOT NULL,
  sensor   TEXT    NOT NULL,
  value    REAL    NOT NULL,
  unit     TEXT    NOT NULL,
  up_ms    INTEGER NOT NULL,
  boot     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS readings_node_sensor_ts ON readings(node, sensor, ts);
"""

# What version 2 adds; run on a new database after SCHEMA, and on a version 1 one after the
# ALTER TABLE that adds `boot`.
SCHEMA_V2 = """
CREATE UNIQUE INDEX IF NOT EXISTS readings_once ON readings(node_key, boot, seq) WHERE boot != '';
CREATE TABLE IF NOT EXISTS boots (
  node_key TEXT    NOT NULL,
  boot     TEXT    NOT NULL,
  node     TEXT    NOT NULL,
  first_ts REAL    NOT NULL,
  last_ts  REAL    NOT NULL,
  dropped  INTEGER NOT NULL,
  PRIMARY KEY (node_key, boot)
);
"""

# Output and plotting columns; `boot` last so v1-era CSV consumers keep their column numbers.
COLUMNS = ("ts", "node", "node_key", "source", "seq", "sensor", "value", "unit", "up_ms", "boot")


class BadReading(ValueError):
    """A record is not a valid reading; the message says why (never the raw bytes)."""


class StoreError(Exception):
    """The database cannot be opened, is not ours, or a write failed."""


def _reject_constant(name):
    # json accepts NaN/Infinity/-Infinity by default; the format says finite numbers.
    raise BadReading("non-finite number %s" % name)


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise BadReading("field %r appears twice" % k)
        d[k] = v
    return d


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def parse_reading(buf):
    """Validate one record (bytes-like, the plaintext of one data record) and return a dict
    with the keys v, node, boot, seq, sensor, value (float), unit, up_ms, dropped. A v1 record
    has no boot or dropped: they read as "" and 0. Fields beyond these are ignored (a later
    node may add some). Raises BadReading saying what is wrong."""
    if len(buf) > MAX_READING:
        raise BadReading("record is %d bytes, more than %d" % (len(buf), MAX_READING))
    try:
        text = bytes(buf).decode("utf-8")
    except UnicodeDecodeError:
        raise BadReading("record is not UTF-8")
    try:
        obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except BadReading:
        raise
    except (ValueError, RecursionError):
        raise BadReading("record is not JSON")
    if not isinstance(obj, dict):
        raise BadReading("record is not a JSON object")
    for field in ("v", "node", "seq", "sensor", "value", "unit", "up_ms"):
        if field not in obj:
            raise BadReading("missing field %r" % field)
    v = obj["v"]
    if not _is_int(v) or v not in (1, 2):
        raise BadReading("unsupported format version")
    boot, dropped = "", 0
    if v == 2:
        for field in ("boot", "dropped"):
            if field not in obj:
                raise BadReading("missing field %r" % field)
        boot, dropped = obj["boot"], obj["dropped"]
        if not isinstance(boot, str) or not _BOOT_RE.match(boot):
            raise BadReading("boot is not 16 lowercase hex characters")
        if not _is_int(dropped) or not 0 <= dropped <= _INT64_MAX:
            raise BadReading("dropped is not an integer >= 0")
    if not valid_name(obj["node"]):
        raise BadReading("bad node name")
    if not valid_name(obj["sensor"]):
        raise BadReading("bad sensor name")
    seq = obj["seq"]
    if not _is_int(seq) or not 0 <= seq <= _INT64_MAX:
        raise BadReading("seq is not an integer >= 0")
    up = obj["up_ms"]
    if not _is_int(up) or not 0 <= up <= _INT64_MAX:
        raise BadReading("up_ms is not an integer >= 0")
    value = obj["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadReading("value is not a number")
    try:
        value = float(value)
    except OverflowError:
        raise BadReading("value is out of range")
    if not math.isfinite(value):
        raise BadReading("value is not finite")
    unit = obj["unit"]
    if not isinstance(unit, str) or not _UNIT_RE.match(unit):
        raise BadReading("bad unit (at most 8 characters, no control characters)")
    return {"v": v, "node": obj["node"], "boot": boot, "seq": seq, "sensor": obj["sensor"],
            "value": value, "unit": unit, "up_ms": up, "dropped": dropped}


class Store:
    """A SQLite readings database. One connection shared by the collector's threads behind
    a lock (readings arrive at sensor pace; one writer is plenty).

    Raises StoreError when the file cannot be opened or holds another application's schema.
    """

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        try:
            # check_same_thread=False: access is serialised by self.lock instead.
            self.db = sqlite3.connect(path, check_same_thread=False, timeout=5.0)
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, SCHEMA_VERSION):
                raise StoreError("%s has schema version %d; this collector writes version %d"
                                 % (path, version, SCHEMA_VERSION))
            if version == 0:
                tables = [r[0] for r in self.db.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")]
                if tables and "readings" not in tables:
                    raise StoreError("%s is a database of something else (tables: %s)"
                                     % (path, ", ".join(sorted(tables))))
            # WAL: a plotter or sqlite3 shell can read while we write.
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # One transaction: a migration interrupted half-way leaves version 1 intact.
            self.db.execute("BEGIN IMMEDIATE")
            if version == 1:
                self.db.execute("ALTER TABLE readings ADD COLUMN boot TEXT NOT NULL DEFAULT ''")
            for stmt in (SCHEMA + SCHEMA_V2).split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            self.db.execute("PRAGMA user_version=%d" % SCHEMA_VERSION)
            self.db.commit()
            self.migrated_from = version if version == 1 else None
        except sqlite3.Error as e:
            raise StoreError("cannot open database %s: %s" % (path, e))

    def add(self, ts, node, node_key, source, reading):
        """Insert one validated reading (a dict from parse_reading; without boot and dropped it
        is a v1 reading). Returns the row id, or
        None if that reading (node_key, boot, seq) was stored before. Raises StoreError if the
        write fails."""
        row = dict(reading, ts=ts, node=node, node_key=node_key, source=source)
        row.setdefault("boot", "")
        row.setdefault("dropped", 0)
        with self.lock:
            ids = self._insert([row])
        return ids[0]

    def add_many(self, rows):
        """Insert readings in one transaction, all or nothing: each row is a parse_reading
        dict plus ts, node, node_key, source. Returns one flag per row, True if it was new (a
        reading whose (node_key, boot, seq) is already stored is ignored, and is committed).
        Raises StoreError if the transaction fails; then nothing was written."""
        with self.lock:
            return [i is not None for i in self._insert(rows)]

    def _insert(self, rows):
        # Caller holds self.lock. Returns the new row ids (None for a duplicate).
        ids = []
        try:
            for r in rows:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO readings (ts, node, node_key, source, seq, sensor, value,"
                    " unit, up_ms, boot) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (r["ts"], r["node"], r["node_key"], r["source"], r["seq"], r["sensor"],
                     r["value"], r["unit"], r["up_ms"], r["boot"]))
                ids.append(cur.lastrowid if cur.rowcount == 1 else None)
                if r["boot"]:
                    # The node's count only grows within a boot: keep the largest seen.
                    self.db.execute(
                        "INSERT INTO boots (node_key, boot, node, first_ts, last_ts, dropped)"
                        " VALUES (?,?,?,?,?,?) ON CONFLICT (node_key, boot) DO UPDATE SET"
                        " last_ts = max(last_ts, excluded.last_ts),"
                        " dropped = max(dropped, excluded.dropped)",
                        (r["node_key"], r["boot"], r["node"], r["ts"], r["ts"], r["dropped"]))
            self.db.commit()
        except sqlite3.Error as e:
            try:
                self.db.rollback()
            except sqlite3.Error:
                pass
            raise StoreError("cannot store readings in %s: %s" % (self.path, e))
        return ids

    def stored_keys(self, keys):
        """The subset of `keys` ((node_key, boot, seq) triples) stored here, as a set.
        Raises StoreError."""
        out = set()
        with self.lock:
            try:
                for k in keys:
                    if self.db.execute("SELECT 1 FROM readings WHERE node_key=? AND boot=? AND seq=?"
                                       " AND boot != ''", tuple(k)).fetchone():
                        out.add(tuple(k))
            except sqlite3.Error as e:
                raise StoreError("cannot read %s: %s" % (self.path, e))
        return out

    def count(self, node=None):
        with self.lock:
            if node is None:
                return self.db.execute("SELECT count(*) FROM readings").fetchone()[0]
            return self.db.execute("SELECT count(*) FROM readings WHERE node=?", (node,)).fetchone()[0]

    def close(self):
        """Close the database, leaving it as one self-contained file (WAL is only used while
        the collector runs, so readers can query it meanwhile)."""
        with self.lock:
            try:
                self.db.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.Error:
                pass        # another reader holds it: it stays in WAL mode, still valid
            try:
                self.db.close()
            except sqlite3.Error:
                pass


def open_readonly(path):
    """A read-only sqlite3 connection to a readings database (for plotting).
    Raises StoreError if it is missing or is not one."""
    import os
    if not os.path.exists(path):
        raise StoreError("no database at %s" % path)
    try:
        uri = "file:%s?mode=ro" % path.replace("?", "%3f").replace("#", "%23")
        db = sqlite3.connect(uri, uri=True)
        cols = [r[1] for r in db.execute("PRAGMA table_info(readings)")]
    except sqlite3.Error as e:
        raise StoreError("cannot open database %s: %s" % (path, e))
    # `boot` is not required: a version 1 file that no collector has migrated yet plots fine.
    if not set(COLUMNS) - {"boot"} <= set(cols):
        db.close()
        raise StoreError("%s has no readings table of ours" % path)
    return db


class LineWriter:
    """Echo stored readings to a text stream as JSON lines or CSV (with a header row).
    Thread-safe; flushes each line so a pipe sees readings as they arrive."""

    def __init__(self, stream, fmt):
        if fmt not in ("jsonl", "csv"):
            raise ValueError("format must be jsonl or csv")
        self.stream = stream
        self.fmt = fmt
        self.lock = threading.Lock()
        self._header_done = False

    def write(self, ts, node, node_key, source, reading):
        row = {"ts": round(ts, 3), "node": node, "node_key": node_key, "source": source,
               "seq": reading["seq"], "sensor": reading["sensor"], "value": reading["value"],
               "unit": reading["unit"], "up_ms": reading["up_ms"], "boot": reading.get("boot", "")}
        with self.lock:
            if self.fmt == "jsonl":
                text = json.dumps(row, separators=(",", ":")) + "\n"
            else:
                buf = io.StringIO()
                w = csv.writer(buf, lineterminator="\n")
                if not self._header_done:
                    w.writerow(COLUMNS)
                    self._header_done = True
                w.writerow([row[c] for c in COLUMNS])
                text = buf.getvalue()
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                # stdout closed (e.g. `| head`): storing goes on, echoing stops.
                pass
