# Reading validation (hostile records) and the SQLite store / line output.

import io
import json
import sqlite3

import pytest

from host_tools.store import BadReading, LineWriter, Store, StoreError, parse_reading, open_readonly

GOOD = {"v": 1, "node": "greenhouse-1", "seq": 17, "sensor": "mcu_temp", "value": 23.41,
        "unit": "C", "up_ms": 123456}
GOOD2 = dict(GOOD, v=2, boot="0123456789abcdef", dropped=3)


def enc(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def test_good_reading():
    r = parse_reading(enc(GOOD))
    assert r == dict(GOOD, boot="", dropped=0)      # v1: no boot id, nothing counted as dropped
    assert parse_reading(enc(GOOD2)) == GOOD2
    r = parse_reading(memoryview(bytearray(enc(dict(GOOD, value=3, extra="x")))))
    assert r["value"] == 3.0 and isinstance(r["value"], float) and "extra" not in r
    assert parse_reading(enc(dict(GOOD, unit="°C")))["unit"] == "°C"


@pytest.mark.parametrize("raw,why", [
    (b"", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1,2]", "not a JSON object"),
    (b"{" * 200, "not JSON"),
    (b"x" * 300, "more than 256"),
    (enc(dict(GOOD, v=3)), "version"),
    (enc(dict(GOOD, v=2)), "missing field 'boot'"),
    (enc({k: v for k, v in GOOD2.items() if k != "dropped"}), "missing field 'dropped'"),
    (enc(dict(GOOD2, boot="0123456789ABCDEF")), "boot"),
    (enc(dict(GOOD2, boot="0123456789abcde")), "boot"),
    (enc(dict(GOOD2, boot=12)), "boot"),
    (enc(dict(GOOD2, dropped=-1)), "dropped"),
    (enc(dict(GOOD2, dropped=2.0)), "dropped"),
    (enc(dict(GOOD, v=True)), "version"),
    (enc({k: v for k, v in GOOD.items() if k != "seq"}), "missing field 'seq'"),
    (enc(dict(GOOD, node="")), "node name"),
    (enc(dict(GOOD, node="a/b")), "node name"),
    (enc(dict(GOOD, node="n" * 33)), "node name"),
    (enc(dict(GOOD, sensor=5)), "sensor name"),
    (enc(dict(GOOD, seq=-1)), "seq"),
    (enc(dict(GOOD, seq=1.5)), "seq"),
    (enc(dict(GOOD, seq=1 << 63)), "seq"),
    (enc(dict(GOOD, up_ms=False)), "up_ms"),
    (enc(dict(GOOD, value="1")), "value"),
    (enc(dict(GOOD, value=True)), "value"),
    (enc(dict(GOOD, value=None)), "value"),
    (enc(dict(GOOD, unit="toolongunit")), "unit"),
    (enc(dict(GOOD, unit="a\nb")), "unit"),
    (enc(GOOD).replace(b"23.41", b"NaN"), "non-finite"),
    (enc(GOOD).replace(b"23.41", b"-Infinity"), "non-finite"),
    (enc(GOOD).replace(b"23.41", b"1e999"), "not finite"),
    (enc(GOOD)[:-1] + b',"seq":1}', "twice"),
])
def test_bad_readings(raw, why):
    with pytest.raises(BadReading) as ei:
        parse_reading(raw)
    assert why in str(ei.value)


def test_store_roundtrip_schema_and_wal(tmp_path):
    path = str(tmp_path / "r.db")
    st = Store(path)
    r = parse_reading(enc(GOOD))
    rid = st.add(1700000000.5, "greenhouse-1", "ab" * 32, "/dev/pts/3", r)
    st.add(1700000001.5, "greenhouse-1", "ab" * 32, "/dev/pts/3", dict(r, seq=18, value=24.0))
    assert rid == 1 and st.count() == 2 and st.count("greenhouse-1") == 2 and st.count("x") == 0
    # readable by another connection while open (WAL)
    db = open_readonly(path)
    rows = db.execute("SELECT ts,node,node_key,source,seq,sensor,value,unit,up_ms FROM readings ORDER BY id").fetchall()
    assert rows[0] == (1700000000.5, "greenhouse-1", "ab" * 32, "/dev/pts/3", 17, "mcu_temp", 23.41, "C", 123456)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()
    st.close()
    # reopening keeps the data
    st = Store(path)
    assert st.count() == 2
    st.close()


def test_store_refuses_foreign_databases(tmp_path):
    p = str(tmp_path / "other.db")
    db = sqlite3.connect(p)
    db.execute("CREATE TABLE people (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="something else"):
        Store(p)
    with pytest.raises(StoreError, match="no readings table"):
        open_readonly(p)
    with pytest.raises(StoreError, match="no database"):
        open_readonly(str(tmp_path / "missing.db"))
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        Store(str(bad))
    with pytest.raises(StoreError):
        Store(str(tmp_path / "no-such-dir" / "x.db"))


def test_line_writers():
    r = parse_reading(enc(GOOD))
    s = io.StringIO()
    w = LineWriter(s, "jsonl")
    w.write(1.0, "n", "k", "src", r)
    w.write(2.0, "n", "k", "src", r)
    lines = [json.loads(l) for l in s.getvalue().splitlines()]
    assert len(lines) == 2 and lines[0]["value"] == 23.41 and lines[1]["ts"] == 2.0
    s = io.StringIO()
    w = LineWriter(s, "csv")
    w.write(1.0, "n", "k", "src,with,commas", r)
    w.write(2.0, "n", "k", "s", r)
    out = s.getvalue().splitlines()
    assert out[0] == "ts,node,node_key,source,seq,sensor,value,unit,up_ms,boot"
    assert out[1] == '1.0,n,k,"src,with,commas",17,mcu_temp,23.41,C,123456,'
    assert len(out) == 3


def row(r, ts=1.0, node="n", key="ab" * 32, source="src"):
    return dict(r, ts=ts, node=node, node_key=key, source=source)


def test_each_v2_reading_is_stored_once_and_v1_repeats_stay_valid(tmp_path):
    st = Store(str(tmp_path / "r.db"))
    r2 = parse_reading(enc(GOOD2))
    assert sum(st.add_many([row(r2), row(dict(r2, seq=18))])) == 2
    # The same (node key, boot, seq) again, alone or mixed with a new one: ignored, committed.
    assert sum(st.add_many([row(r2, ts=5.0)])) == 0
    assert sum(st.add_many([row(dict(r2, seq=18)), row(dict(r2, seq=19, dropped=4))])) == 1
    assert st.add(6.0, "n", "ab" * 32, "src", r2) is None
    # Another boot or another node key with the same seq is another reading.
    assert sum(st.add_many([row(dict(r2, boot="f" * 16)), row(r2, key="cd" * 32)])) == 2
    # v1 readings have no boot id: a node that restarted repeats seqs, and both rows stay.
    r1 = parse_reading(enc(GOOD))
    assert sum(st.add_many([row(r1), row(r1)])) == 2
    assert st.count() == 7
    db = sqlite3.connect(str(tmp_path / "r.db"))
    boots = db.execute("SELECT node_key, boot, dropped, first_ts, last_ts FROM boots ORDER BY node_key, boot").fetchall()
    assert boots == [("ab" * 32, "0123456789abcdef", 4, 1.0, 6.0), ("ab" * 32, "f" * 16, 3, 1.0, 1.0),
                     ("cd" * 32, "0123456789abcdef", 3, 1.0, 1.0)]
    db.close()
    st.close()


def test_a_failed_batch_writes_nothing(tmp_path):
    path = str(tmp_path / "r.db")
    st = Store(path)
    r2 = parse_reading(enc(GOOD2))
    # Another connection holds the write lock: the batch fails as a whole, and goes in later.
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")
    st.db.execute("PRAGMA busy_timeout=50")
    with pytest.raises(StoreError, match="locked"):
        st.add_many([row(dict(r2, seq=s)) for s in range(3)])
    blocker.rollback()
    blocker.close()
    assert st.count() == 0
    assert sum(st.add_many([row(dict(r2, seq=s)) for s in range(3)])) == 3
    st.close()


def test_version_1_database_is_migrated_in_place(tmp_path):
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE readings (id INTEGER PRIMARY KEY, ts REAL NOT NULL, node TEXT NOT NULL,
          node_key TEXT NOT NULL, source TEXT NOT NULL, seq INTEGER NOT NULL, sensor TEXT NOT NULL,
          value REAL NOT NULL, unit TEXT NOT NULL, up_ms INTEGER NOT NULL);
        CREATE INDEX readings_node_sensor_ts ON readings(node, sensor, ts);
        PRAGMA user_version = 1;""")
    # Two boots of a v1 node: seq 0 twice, which the new unique index must not reject.
    for ts in (1.0, 2.0):
        db.execute("INSERT INTO readings (ts,node,node_key,source,seq,sensor,value,unit,up_ms)"
                   " VALUES (?,?,?,?,?,?,?,?,?)", (ts, "n", "ab" * 32, "s", 0, "t", 1.5, "C", 10))
    db.commit()
    db.close()
    assert open_readonly(path).execute("SELECT count(*) FROM readings").fetchone()[0] == 2
    st = Store(path)
    assert st.migrated_from == 1 and st.count() == 2
    r2 = parse_reading(enc(GOOD2))
    assert sum(st.add_many([row(r2), row(r2)])) == 1
    st.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("SELECT seq, boot FROM readings ORDER BY id").fetchall() == [
        (0, ""), (0, ""), (17, "0123456789abcdef")]
    assert db.execute("SELECT count(*) FROM boots").fetchone()[0] == 1
    db.close()
    assert Store(path).migrated_from is None        # already version 2: nothing to do


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "new.db")
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 3")
    db.close()
    with pytest.raises(StoreError, match="schema version 3"):
        Store(path)
