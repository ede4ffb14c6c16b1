# The node's reading queue, record and ack parser (port/common/node.py), on CPython: the queue
# keeps the newest `n` unacknowledged readings with consecutive seqs and counts what it drops,
# acks remove exactly what they cover, records are the documented v2 JSON, and the ack parser
# takes any bytes the collector might send without raising.

import json
import os
import sys

from hypothesis import given, settings, strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "port", "common"))

from node import ReadingQueue, format_reading, parse_ack  # noqa: E402

BOOT = "0123456789abcdef"


def test_queue_keeps_newest_counts_drops_and_acks_from_the_oldest():
    q = ReadingQueue(3)
    assert [q.append(i % 2, 20.0 + i, 1000 * i) for i in range(5)] == [0, 1, 2, 3, 4]
    assert len(q) == 3 and q.first == 2 and q.next_seq == 5 and q.dropped == 2
    assert q.get(2) == (0, 22.0, 2000) and q.get(4) == (0, 24.0, 4000)
    for bad in (1, 5):
        try:
            q.get(bad)
            raise AssertionError("got a reading that is not queued")
        except IndexError:
            pass
    assert q.ack(1) == 0                  # older than anything queued: nothing to remove
    assert q.ack(3) == 2 and q.first == 4 and len(q) == 1
    assert q.ack(100) == 1 and len(q) == 0 and q.first == q.next_seq == 5
    assert q.append(1, -3.5, 2 ** 40) == 5 and q.get(5) == (1, -3.5, 2 ** 40)  # > 31 bits


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.lists(st.one_of(st.just(None), st.integers(-2, 40)), max_size=80))
def test_queue_matches_a_model(n, ops):
    # None: take a reading; an int: ack up to it. The model is a plain list of seqs.
    q = ReadingQueue(n)
    model = []
    nxt = dropped = 0
    for op in ops:
        if op is None:
            if len(model) == n:
                model.pop(0)
                dropped += 1
            model.append(nxt)
            assert q.append(nxt % 7, float(nxt), nxt) == nxt
            nxt += 1
        else:
            before = len(model)
            model = [s for s in model if s > op]
            assert q.ack(op) == before - len(model)
        assert len(q) == len(model) and q.dropped == dropped and q.next_seq == nxt
        assert [q.get(s)[2] for s in model] == model


def test_record_is_the_documented_v2_object():
    rec = format_reading("greenhouse-1", BOOT, 17, "mcu_temp", 23.4149, "C", 123456, 3)
    assert json.loads(rec) == {"v": 2, "node": "greenhouse-1", "boot": BOOT, "seq": 17,
                               "sensor": "mcu_temp", "value": 23.41, "unit": "C",
                               "up_ms": 123456, "dropped": 3}
    assert list(json.loads(rec)) == ["v", "node", "boot", "seq", "sensor", "value", "unit",
                                     "up_ms", "dropped"]
    assert format_reading("n", BOOT, 0, "s", float("nan"), "C", 0, 0) is None
    assert format_reading("n", BOOT, 0, "s", float("inf"), "C", 0, 0) is None


def test_ack_parser_accepts_only_our_boots_acks():
    assert parse_ack(b'{"v":2,"ack":17,"boot":"%s"}' % BOOT.encode(), BOOT) == 17
    for data in (b'{"v":2,"ack":17,"boot":"fedcba9876543210"}',   # another boot
                 b'{"v":1,"ack":17,"boot":"%s"}' % BOOT.encode(),
                 b'{"v":2,"ack":-1,"boot":"%s"}' % BOOT.encode(),
                 b'{"v":2,"ack":true,"boot":"%s"}' % BOOT.encode(),
                 b'{"v":2,"ack":"17","boot":"%s"}' % BOOT.encode(),
                 b'{"v":2,"ack":1.5,"boot":"%s"}' % BOOT.encode(),
                 b'[2,17]', b'17', b'', b'{', b'\xff\xfe', b'null'):
        assert parse_ack(data, BOOT) == -1, data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_ack_parser_never_raises_on_any_bytes(data):
    n = parse_ack(data, BOOT)
    assert n == -1 or n >= 0
