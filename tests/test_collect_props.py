# Property-based tests (hypothesis) of the collector's parsers of wire data: the reading
# validator (only BadReading escapes, valid v1/v2 records come back exactly), the packet
# cutter that feeds the core (same packets however the stream is chunked, bounded), and the
# store's exactly-once key (any mix of repeats stores each (node key, boot, seq) once).

import json
import string

from hypothesis import given, settings, strategies as st

from ossuary_micro import wire
from host_tools.collector.session import Packets
from host_tools.store import BadReading, Store, parse_reading

NAMES = st.text(alphabet=string.ascii_letters + string.digits + "_.-", min_size=1, max_size=32)
BOOTS = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=6),
    max_leaves=12)
READING_KEYS = ["v", "node", "boot", "seq", "sensor", "value", "unit", "up_ms", "dropped"]


@st.composite
def readings(draw):
    v = draw(st.sampled_from([1, 2]))
    r = {"v": v, "node": draw(NAMES), "seq": draw(st.integers(0, 2 ** 63 - 1)),
         "sensor": draw(NAMES), "value": draw(st.floats(allow_nan=False, allow_infinity=False)),
         "unit": draw(st.text(alphabet=string.ascii_letters + "°%/", max_size=8)),
         "up_ms": draw(st.integers(0, 2 ** 63 - 1))}
    if v == 2:
        r["boot"] = draw(BOOTS)
        r["dropped"] = draw(st.integers(0, 2 ** 63 - 1))
    return r


def parses_or_bad(raw):
    try:
        r = parse_reading(raw)
    except BadReading:
        return None
    assert set(r) == set(READING_KEYS)
    return r


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_reading_or_bad_reading(raw):
    parses_or_bad(raw)


@settings(max_examples=120, deadline=None)
@given(JSON, st.dictionaries(st.sampled_from(READING_KEYS), JSON, max_size=9))
def test_any_json_gives_a_reading_or_bad_reading(doc, fields):
    parses_or_bad(json.dumps(doc).encode())
    parses_or_bad(json.dumps(fields).encode())


@settings(max_examples=200, deadline=None)
@given(readings())
def test_valid_readings_come_back_exactly(r):
    raw = json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode()
    if len(raw) > 256:
        return      # over the record limit: refused, which the bad-input tests cover
    got = parse_reading(raw)
    want = dict(r, value=float(r["value"]))
    want.setdefault("boot", "")
    want.setdefault("dropped", 0)
    assert got == want


def packet(ptype, body, msg_id=0):
    hdr = bytearray(wire.HEADER_LEN)
    wire.put_header(hdr, 0, len(body), msg_id, ptype)
    return bytes(hdr) + body


class Stats:
    discarded = 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8), st.data())
def test_packets_are_the_same_however_the_stream_is_cut(bodies, data):
    stream = b"".join(packet(wire.T_DATA, b, i) for i, b in enumerate(bodies))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
    p = Packets(wire.max_packet(1024), Stats())
    out = []
    for c in chunks:
        p.add(c, 0.0)
        assert len(p.buf) <= len(c) + wire.max_packet(1024)
        while True:
            pkt = p.next(0.0)
            if pkt is None:
                break
            out.append(pkt)
    assert out == [packet(wire.T_DATA, b, i) for i, b in enumerate(bodies)]
    assert not p.buf


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_comes_out_as_packets_or_is_dropped_never_held_unbounded(garbage):
    stats = Stats()
    p = Packets(wire.max_packet(1024), stats)
    p.add(garbage, 0.0)
    out = []
    while True:
        pkt = p.next(0.0)
        if pkt is None:
            break
        assert pkt
        out.append(pkt)
    # What is left is one incomplete packet at most, and it is dropped once it is too old.
    assert len(p.buf) < wire.max_packet(1024)
    assert b"".join(out) + bytes(p.buf) == garbage
    assert p.next(1000.0) is None and not p.buf and stats.discarded == len(garbage) - len(b"".join(out))


def test_a_client_handshake_is_recognised_only_when_whole():
    hs = packet(wire.T_CLIENT_HANDSHAKE, bytes(wire.CLIENT_HS_LEN))
    p = Packets(wire.max_packet(1024), Stats())
    for i, byte in enumerate(hs):
        assert not p.starts_client_handshake()
        p.add(bytes([byte]), 0.0)
    assert p.starts_client_handshake()
    p = Packets(wire.max_packet(1024), Stats())
    p.add(packet(wire.T_CLIENT_HANDSHAKE, bytes(wire.CLIENT_HS_LEN), msg_id=1), 0.0)
    assert not p.starts_client_handshake()      # msg_id 0 only: a session's first packet
    p = Packets(wire.max_packet(1024), Stats())
    p.add(packet(wire.T_DATA, bytes(wire.CLIENT_HS_LEN)), 0.0)
    assert not p.starts_client_handshake()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["k1", "k2"]), st.sampled_from(["", "a" * 16, "b" * 16]),
                          st.integers(0, 5)), min_size=1, max_size=30),
       st.lists(st.integers(1, 6), max_size=10))
def test_store_keeps_each_v2_reading_once_whatever_the_repeats(tmp_path_factory, keys, batches):
    st_ = Store(str(tmp_path_factory.mktemp("db") / "r.db"))
    try:
        rows = [{"ts": 1.0, "node": k, "node_key": k * 32, "source": "s", "boot": b, "seq": s,
                 "sensor": "t", "value": 1.0, "unit": "C", "up_ms": 0, "dropped": 0, "v": 2 if b else 1}
                for k, b, s in keys]
        new, i = [], 0
        for n in batches + [len(rows)]:
            new += st_.add_many(rows[i:i + n])
            i += n
            if i >= len(rows):
                break
        v2_unique = {(r["node_key"], r["boot"], r["seq"]) for r in rows if r["boot"]}
        v1 = [r for r in rows if not r["boot"]]
        assert st_.count() == len(v2_unique) + len(v1) == sum(new)
    finally:
        st_.close()
