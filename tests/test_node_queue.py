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

from node import Node, ReadingQueue, format_reading, parse_ack  # noqa: E402

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


class _Sensor:
    name = "t"
    unit = "C"
    digits = 2

    def read(self):
        return 21.0


class _Board:
    # What Node's constructor uses of the board glue.
    def make_sensors(self, cfgs):
        return [_Sensor()]

    def random(self, n):
        return bytes(n)

    def clock(self):
        return 0


def _node(queue_max):
    cfg = {"name": "n", "interval_ms": 50, "max_readings": 0, "sensors": None,
           "queue_max": queue_max, "protocol": 2}
    node = Node(cfg, _Board())
    # A session has just been established (what HANDSHAKE_DONE does).
    node._cursor = node._acked_to = node.queue.first
    node._skips = []
    return node


def _take(node):
    # One reading into the queue, as Node.sample() queues it.
    node.queue.append(0, 21.0, 0)


def _send(node):
    # The session loop's sending step, without the record: skip what the queue dropped
    # unsent, then send everything queued.
    node._catch_up()
    node._cursor = node.queue.next_seq


def test_acked_counts_readings_the_full_queue_dropped_after_sending_them():
    # On the M0 the node logged "43 readings acknowledged, done" while the collector had all
    # 100: readings sent and still in flight were dropped from the full queue (acks had not
    # been read yet), and an ack counted only what it removed from the queue.
    node = _node(4)
    for _ in range(4):
        _take(node)
    _send(node)                              # seqs 0-3 in flight
    _take(node)
    _take(node)                              # the full queue drops 0 and 1 (sent)
    assert node.queue.dropped == 2
    _send(node)                              # 4 and 5
    node._ack(5)                             # the collector has 0-5
    assert node.acked == 6 and len(node.queue) == 0
    node._ack(5)                             # a repeated ack counts nothing
    node._ack(2)
    assert node.acked == 6


def test_acked_leaves_out_readings_dropped_before_they_were_sent():
    # Readings the queue dropped unsent leave a gap in seq: an ack above the gap covers only
    # what was sent (the collector never heard of the rest).
    node = _node(2)
    _take(node)
    _take(node)
    node._cursor = 1                         # seq 0 sent, seq 1 not yet
    _take(node)
    _take(node)                              # drops 0 (sent) and 1 (unsent)
    _send(node)                              # skips 1, sends 2 and 3
    assert node._skips == [1, 2]
    node._ack(0)
    assert node.acked == 1
    node._ack(3)
    assert node.acked == 3 and len(node.queue) == 0 and node._skips == []


def test_acked_with_an_ack_inside_a_gap_and_more_gaps_than_remembered():
    node = _node(1)
    _take(node)
    _send(node)                              # 0 sent
    for _ in range(3):
        _take(node)                          # 1, 2 dropped unsent; 3 queued
    _send(node)                              # skips 1-2, sends 3
    node._ack(1)                             # an ack of a seq the node skipped: covers 0
    assert node.acked == 1
    node._ack(3)
    assert node.acked == 2
    # Separate gaps (a reading sent, the next dropped unsent, ...): exact for up to 8 gaps
    # since the last ack; beyond that the bookkeeping stays bounded and acked may only
    # undercount, never count a reading that was not sent.
    for gaps in (8, 40):
        before = node.acked
        sent = 0
        for _ in range(gaps):
            _take(node)
            _send(node)
            sent += 1
            _take(node)
            _take(node)                      # the queue (1 slot) drops one reading unsent
        _send(node)
        sent += 1
        node._ack(node.queue.next_seq - 1)
        assert len(node._skips) == 0
        got = node.acked - before
        assert got == sent if gaps == 8 else 0 < got <= sent, (gaps, got, sent)


def test_event_constants_match_the_library():
    # node.py compiles the events it handles in as private constants (no globals on a board's
    # heap): they must be ossuary_micro/events.py's values.
    import node
    from ossuary_micro import events
    for name in ("CLIENT", "NEED_DATA", "HANDSHAKE_DONE", "UNTRUSTED_KEY", "DATA", "RESET",
                 "CLOSED", "END_OF_STREAM"):
        assert getattr(node, "_" + name) == getattr(events, name), name
