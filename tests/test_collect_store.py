# Reading validation (hostile records) and the SQLite store / line output.

import io
import json
import sqlite3

import pytest

from host_tools.store import BadReading, LineWriter, Store, StoreError, parse_reading, open_readonly

GOOD = {"v": 1, "node": "greenhouse-1", "seq": 17, "sensor": "mcu_temp", "value": 23.41,
        "unit": "C", "up_ms": 123456}


def enc(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def test_good_reading():
    r = parse_reading(enc(GOOD))
    assert r == dict(GOOD)
    r = parse_reading(memoryview(bytearray(enc(dict(GOOD, value=3, extra="x")))))
    assert r["value"] == 3.0 and isinstance(r["value"], float) and "extra" not in r
    assert parse_reading(enc(dict(GOOD, unit="°C")))["unit"] == "°C"


@pytest.mark.parametrize("raw,why", [
    (b"", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1,2]", "not a JSON object"),
    (b"{" * 200, "not JSON"),
    (b"x" * 300, "more than 256"),
    (enc(dict(GOOD, v=2)), "version"),
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
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
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
    assert out[0] == "ts,node,node_key,source,seq,sensor,value,unit,up_ms"
    assert out[1] == '1.0,n,k,"src,with,commas",17,mcu_temp,23.41,C,123456'
    assert len(out) == 3
