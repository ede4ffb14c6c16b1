# The serial link layer (ossuary_micro/link.py, docs/LINK.md): framing vectors, the session
# handshake, reliable ordered delivery, flow control, liveness, peer restarts, and the secure
# channel running over it. Portable: runs under pytest and under the MicroPython runner.

from ossuary_micro.link import Link, crc32, cobs_encode, cobs_decode
from ossuary_micro import LocalProtocolError
from ._util import h, raises
from ._pair import Clock, DetRandom
from ._linkpair import LinkPair, Feeder, SecurePair

# Frame types, as docs/LINK.md (L2) numbers them: link.py keeps its own as private consts.
T_DATA, T_ACK, T_SYN = 1, 2, 3


def _enc(data):
    out = bytearray(len(data) + len(data) // 254 + 1)
    n = cobs_encode(data, len(data), out, 0)
    return bytes(out[:n])


def _dec(data):
    b = bytearray(data)
    n = cobs_decode(b, len(b))
    return None if n < 0 else bytes(b[:n])


def _pattern(n, seed=7):
    # Deterministic bytes with plenty of zeros (COBS's special case) in them.
    out = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (x >> 16) & 0xFF if x & 0x700 else 0
    return bytes(out)


# ---------------------------------------------------------------- L1: CRC-32 and COBS

def test_crc32_check_values():
    # The catalogue check value of CRC-32 (zlib, IEEE 802.3), and two more known values.
    assert crc32(b"123456789", 0, 9) == 0xCBF43926
    assert crc32(b"", 0, 0) == 0
    assert crc32(b"The quick brown fox jumps over the lazy dog", 0, 43) == 0x414FA339
    assert crc32(b"xx123456789", 2, 9) == 0xCBF43926


def test_cobs_published_examples():
    # The examples of the COBS article (Cheshire & Baker's encoding).
    assert _enc(h("00")) == h("0101")
    assert _enc(h("0000")) == h("010101")
    assert _enc(h("00 11 00")) == h("01 02 11 01")
    assert _enc(h("11 22 00 33")) == h("03 11 22 02 33")
    assert _enc(h("11 22 33 44")) == h("05 11 22 33 44")
    assert _enc(h("11 00 00 00")) == h("02 11 01 01 01")
    r = bytes(range(1, 255))                                # 01..FE
    assert _enc(r) == b"\xff" + r
    assert _enc(b"\x00" + r) == b"\x01\xff" + r
    assert _enc(bytes(range(1, 256))) == b"\xff" + r + b"\x02\xff"
    assert _enc(bytes(range(2, 256)) + b"\x00") == b"\xff" + bytes(range(2, 256)) + b"\x01\x01"
    assert _enc(bytes(range(3, 256)) + b"\x00\x01") == (
        b"\xfe" + bytes(range(3, 256)) + b"\x02\x01")


def test_cobs_round_trip_and_bounds():
    for n in (0, 1, 2, 253, 254, 255, 256, 261, 508, 509):
        for data in (_pattern(n), b"\x01" * n, b"\x00" * n):
            e = _enc(data)
            assert 0 not in e
            assert len(e) <= n + n // 254 + 1
            assert _dec(e) == data


def test_cobs_decode_refuses_malformed_blocks():
    assert _dec(b"\x05\x11\x22") is None        # code runs past the end
    assert _dec(b"\x02\x11\x00\x11") is None    # a zero code inside the block
    assert _dec(b"") == b""


def test_settings_are_checked():
    c = Clock()
    raises(LocalProtocolError, Link, c, DetRandom(b"x"), max_payload=0)
    raises(LocalProtocolError, Link, c, DetRandom(b"x"), max_payload=256)
    raises(LocalProtocolError, Link, c, DetRandom(b"x"), window=0)
    raises(LocalProtocolError, Link, c, DetRandom(b"x"), window=17)
    raises(LocalProtocolError, Link, c, DetRandom(b"x"), max_payload=100, rx_size=99)
    raises(LocalProtocolError, Link, None, DetRandom(b"x"))
    link = Link(c, DetRandom(b"x"))
    raises(LocalProtocolError, link.data_to_send, bytearray(link.max_frame - 1))


# ---------------------------------------------------------------- L2: frame layout

def _frames(link):
    out = []
    buf = bytearray(link.max_frame)
    while True:
        n = link.data_to_send(buf)
        if not n:
            return out
        out.append(bytes(buf[:n]))


def _raw(frame):
    # Strip the delimiters, decode, split off the CRC (checked).
    assert frame[0] == 0 and frame[-1] == 0 and 0 not in frame[1:-1]
    raw = _dec(frame[1:-1])
    c = raw[-4:]
    assert crc32(raw, 0, len(raw) - 4) == (c[0] << 24) | (c[1] << 16) | (c[2] << 8) | c[3]
    return raw[:-4]


def test_first_frame_is_a_syn_with_nonce_and_no_echo():
    link = Link(Clock(), DetRandom(b"syn"), max_payload=64, window=4)
    f = _frames(link)
    assert len(f) == 1
    raw = _raw(f[0])
    assert raw[0] == T_SYN and raw[1] == 0 and raw[2] == 0
    assert raw[3] == 4                                   # credit: rx_size // max_payload
    assert raw[4:8] == DetRandom(b"syn")(4)              # our nonce
    assert raw[8:12] == b"\x00\x00\x00\x00"              # peer unknown
    assert len(raw) == 12
    assert _frames(link) == []                           # one SYN per rto, not per call


def test_data_frame_layout_and_piggybacked_ack():
    p = LinkPair(max_payload=16)
    p.run_until(lambda: p.a.up and p.b.up, 1000)
    p.run(50)
    assert p.a.send(b"hello") == 5
    f = _frames(p.a)
    raw = _raw(f[0])
    assert raw[0] == T_DATA and raw[1] == 0 and raw[2] == 0 and raw[4:] == b"hello"
    assert raw[3] == 4
    p.b.receive_data(f[0])
    g = _frames(p.b)
    raw = _raw(g[0])
    # ack: next expected seq is 1; credit 3: 5 unread bytes leave room for 3 full frames
    assert raw == bytes((T_ACK, 0, 1, 3))
    assert p.b.readable == 5


# ---------------------------------------------------------------- L3: sessions

def test_sync_then_data_both_ways_in_order():
    p = LinkPair(max_payload=32, window=3)
    da = _pattern(3000, 1)
    db = _pattern(2000, 2)
    fa = Feeder(lambda: p.a, da)
    fb = Feeder(lambda: p.b, db)
    t = 0
    while not (fa.done and fb.done and p.idle()):
        fa.pump()
        fb.pump()
        p.step()
        t += 1
        assert t < 20000
    assert bytes(p.got["b"]) == da and bytes(p.got["a"]) == db
    assert p.events == {"a": ["LINK_UP"], "b": ["LINK_UP"]}
    assert p.a.retransmits == 0 and p.b.retransmits == 0 and p.a.bad_frames == 0


def test_one_byte_frames_work():
    # max_payload=1: a SYN is then longer than any DATA frame.
    p = LinkPair(max_payload=1, window=2)
    assert p.a.send(b"tiny frames") == 2          # the window: 2 frames of 1 byte
    f = Feeder(lambda: p.a, b"tiny frames")
    f.off = 2
    p.run_until(lambda: (f.pump() or True) and bytes(p.got["b"]) == b"tiny frames", 5000)


def test_data_written_before_sync_is_kept():
    p = LinkPair()
    assert p.a.send(b"early") == 5
    p.run_until(lambda: bytes(p.got["b"]) == b"early", 2000)


def test_lost_syns_are_retried():
    p = LinkPair()
    p.ab.cut = True
    p.run(1000)
    assert not p.a.up and not p.b.up
    p.ab.cut = False
    p.run_until(lambda: p.a.up and p.b.up, 2000)


def test_peer_restart_discards_the_old_session():
    p = LinkPair(max_payload=32)
    p.run_until(lambda: p.a.up and p.b.up, 1000)
    p.a.send(b"old session")
    p.reading["b"] = False               # b never reads it: it sits in b's buffer
    p.run(100)
    assert p.b.readable == 11
    p.ab.cut = True
    p.a.send(b"never acked")
    p.run(50)
    p.restart("b")                      # b reboots: everything it had is gone
    p.ab.cut = False
    p.reading["b"] = True
    p.run_until(lambda: "PEER_RESET" in p.events["a"] and p.a.up and p.b.up, 3000)
    # a dropped the unacked bytes of the old session; the new one starts clean.
    assert p.a.unacked == 0 and p.a.peer_resets == 1
    assert p.a.send(b"new") == 3
    p.run_until(lambda: bytes(p.got["b"]) == b"new", 2000)


def test_local_reset_is_seen_by_the_peer():
    p = LinkPair()
    p.run_until(lambda: p.a.up and p.b.up, 1000)
    p.a.reset()
    assert not p.a.synced
    p.run_until(lambda: p.a.up and "PEER_RESET" in p.events["b"], 2000)
    p.a.send(b"again")
    p.run_until(lambda: bytes(p.got["b"]) == b"again", 2000)


def test_looped_back_line_never_syncs():
    link = Link(Clock(), DetRandom(b"loop"))
    buf = bytearray(link.max_frame)
    for _ in range(3):
        n = link.data_to_send(buf)
        link.receive_data(buf[:n])
    assert not link.synced and link.bad_frames >= 1


# ---------------------------------------------------------------- L4: retransmission

def test_a_third_of_all_frames_lost_still_delivers_in_order():
    p = LinkPair(max_payload=20, window=4)
    p.run_until(lambda: p.a.up and p.b.up, 1000)
    rnd = [12345]

    def drop_some(data):
        # Each frame, data or ack, in either direction: lost with probability 1/3 (an LCG,
        # so the run is the same everywhere).
        rnd[0] = (rnd[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return b"" if (rnd[0] >> 8) % 3 == 0 else data

    p.ab.fault = drop_some
    p.ba.fault = drop_some
    data = _pattern(2000, 3)
    f = Feeder(lambda: p.a, data)
    p.run_until(lambda: (f.pump() or True) and f.done and p.idle(), 60000)
    assert bytes(p.got["b"]) == data
    assert p.a.retransmits > 0


def test_a_gap_is_repaired_by_nak_before_the_timeout():
    p = LinkPair(max_payload=10, window=4, rto_ms=5000, max_rto_ms=5000)
    p.run_until(lambda: p.a.up and p.b.up, 1000)
    p.run(10)
    first = [True]

    def drop_first_data(data):
        if first[0] and len(data) > 10:
            first[0] = False
            return b""
        return data

    p.ab.fault = drop_first_data
    p.a.send(b"0123456789abcdefghij")          # two frames; the first is lost
    t = p.run_until(lambda: len(p.got["b"]) == 20, 4000)
    assert bytes(p.got["b"]) == b"0123456789abcdefghij"
    assert t < 100                             # well before rto_ms = 5000


def test_retransmission_backs_off_to_max_rto():
    c = Clock()
    p = LinkPair(clock=c, rto_ms=100, max_rto_ms=400)
    p.run_until(lambda: p.a.up and p.b.up, 1000)
    p.ab.cut = True
    p.a.send(b"x")
    p.step()
    times = [c.now]                     # the first transmission, then each retransmission
    for _ in range(3000):
        before = p.a.retransmits
        p.step()
        if p.a.retransmits > before:
            times.append(c.now)
    gaps = [times[i + 1] - times[i] for i in range(len(times) - 1)]
    assert gaps[:5] == [100, 200, 400, 400, 400], gaps
    assert max(gaps) == 400
    p.ab.cut = False                    # progress ends the backoff
    p.run_until(lambda: p.a.unacked == 0, 1000)
    assert p.a._rto == 100


# ---------------------------------------------------------------- L5: flow control

def test_receiver_that_does_not_read_stops_the_sender_without_loss():
    p = LinkPair(max_payload=16, window=4)
    p.reading["b"] = False
    data = _pattern(500, 4)
    f = Feeder(lambda: p.a, data)
    p.run_until(lambda: p.a.up, 1000)
    for _ in range(2000):
        f.pump()
        p.step()
    assert p.b.readable == 64                 # its buffer: 4 frames of 16 bytes
    assert p.b.dropped_full == 0
    assert not f.done
    p.reading["b"] = True
    p.run_until(lambda: (f.pump() or True) and f.done and p.idle(), 30000)
    assert bytes(p.got["b"]) == data and p.b.dropped_full == 0


def test_send_takes_no_more_than_the_window():
    link = Link(Clock(), DetRandom(b"w"), max_payload=10, window=3)
    assert link.writable == 30
    assert link.send(b"x" * 100) == 30
    assert link.send(b"y") == 0 and link.writable == 0
    assert link.unacked == 30


# ---------------------------------------------------------------- L6: liveness

def test_link_down_after_silence_and_up_again_without_loss():
    p = LinkPair(keepalive_ms=200, down_ms=600)
    p.run_until(lambda: p.a.up and p.b.up, 1000)
    p.ab.cut = p.ba.cut = True
    data = _pattern(1000, 5)
    f = Feeder(lambda: p.a, data)
    p.run_until(lambda: "LINK_DOWN" in p.events["a"] and "LINK_DOWN" in p.events["b"], 2000)
    assert not p.a.up
    for _ in range(3000):
        f.pump()
        p.step()
    p.ab.cut = p.ba.cut = False
    t = p.run_until(lambda: (f.pump() or True) and f.done and p.idle(), 20000)
    assert bytes(p.got["b"]) == data
    assert p.events["a"] == ["LINK_UP", "LINK_DOWN", "LINK_UP"]
    assert p.a.peer_resets == 0 and p.b.peer_resets == 0


def test_idle_link_stays_up_on_keepalives():
    p = LinkPair(keepalive_ms=300, down_ms=1000)
    p.run(20000, tick=10)
    assert p.events == {"a": ["LINK_UP"], "b": ["LINK_UP"]}
    assert p.a.frames_sent < 20000 // 300 + 5        # keepalives only, bounded


# ---------------------------------------------------------------- receiver robustness

def _one_frame_stream():
    # A synced pair's next DATA frame from a to b, plus what b must end up with.
    p = LinkPair(max_payload=50)
    p.run_until(lambda: p.a.up and p.b.up, 1000)
    p.run(20)
    p.a.send(b"payload with \x00 zeros \x00")
    return p, _frames(p.a)[0]


def test_frame_fed_whole_byte_by_byte_and_with_trailing_data():
    for mode in ("whole", "bytes", "trailing"):
        p, f = _one_frame_stream()
        if mode == "whole":
            p.b.receive_data(f)
        elif mode == "bytes":
            for i in range(len(f)):
                p.b.receive_data(f[i:i + 1])
        else:
            p.b.receive_data(f + b"\x07\x08\x09")    # a partial next frame
        buf = bytearray(100)
        n = p.b.recv_into(buf)
        assert bytes(buf[:n]) == b"payload with \x00 zeros \x00", mode


def test_garbage_and_damaged_frames_are_dropped_and_counted():
    p, f = _one_frame_stream()
    b = p.b
    before = b.bad_frames
    b.receive_data(b"\x00\x13\x37garbage\xff\x00")            # not a frame
    bad = bytearray(f)
    bad[5] ^= 0x04
    b.receive_data(bad)                                      # CRC wrong
    b.receive_data(b"\x01" * (b.max_frame + 40) + b"\x00")    # overrun, then resync
    assert b.readable == 0
    assert b.bad_frames >= before + 2 and b.overruns == 1
    b.receive_data(f)
    assert b.readable == len(b"payload with \x00 zeros \x00")


def test_inserted_and_lost_bytes_cost_only_the_frames_they_touch():
    p = LinkPair(max_payload=20)
    p.run_until(lambda: p.a.up and p.b.up, 1000)
    n = [0]

    def mangle(data):
        n[0] += 1
        if n[0] % 5 == 1 and len(data) > 8:
            return data[:4] + data[5:]                # one byte lost
        if n[0] % 5 == 3 and len(data) > 8:
            return data[:6] + b"\x55" + data[6:]      # one byte inserted
        return data

    p.ab.fault = mangle
    data = _pattern(1500, 6)
    f = Feeder(lambda: p.a, data)
    p.run_until(lambda: (f.pump() or True) and f.done and p.idle(), 60000)
    assert bytes(p.got["b"]) == data and p.b.bad_frames > 0


# ---------------------------------------------------------------- the secure channel over it

def test_secure_channel_runs_over_the_link_unchanged():
    p = LinkPair(max_payload=64, window=4, bytes_per_ms=11.52)    # 115200 baud, 10 bits/byte
    s = SecurePair(p)
    s.run_until(s.established, 20000)
    msgs = [_pattern(40 + 7 * i, i) for i in range(20)]
    i = 0
    while i < len(msgs):
        if s.send("client", msgs[i]):
            i += 1
        s.step()
    s.run_until(lambda: len(s.received["server"]) == len(msgs), 20000)
    assert s.received["server"] == msgs
    assert s.client.reset_count == 0 and s.server.reset_count == 0


def test_secure_channel_survives_bit_errors_without_a_reset():
    p = LinkPair(max_payload=64, window=4, bytes_per_ms=11.52)
    k = [0]

    def flip(data):
        # Every 7th frame on the wire gets one bit flipped somewhere.
        k[0] += 1
        if k[0] % 7 == 0:
            b = bytearray(data)
            b[(k[0] * 13) % len(b)] ^= 1 << (k[0] % 8)
            return bytes(b)
        return data

    p.ab.fault = flip
    p.ba.fault = flip
    s = SecurePair(p)
    s.run_until(s.established, 30000)
    msgs = [_pattern(100, 50 + i) for i in range(30)]
    i = 0
    while i < len(msgs):
        if s.send("client", msgs[i]):
            i += 1
        s.step()
    s.run_until(lambda: len(s.received["server"]) == len(msgs), 60000)
    assert s.received["server"] == msgs
    assert s.client.reset_count == 0 and s.server.reset_count == 0
    assert p.a.retransmits + p.b.retransmits > 0


# ---------------------------------------------------------------- MicroPython: no allocation

def test_data_path_allocates_nothing_on_micropython():
    # send -> data_to_send -> receive_data -> recv_into -> ack back, 50 frames under
    # heap_lock: any allocation raises MemoryError. CPython: nothing to measure.
    import sys
    if sys.implementation.name != "micropython":
        return
    import micropython
    if not hasattr(micropython, "heap_lock"):
        return
    p = LinkPair(max_payload=64)
    p.run_until(lambda: p.a.up and p.b.up, 1000)
    p.run(20)
    a, b, clock = p.a, p.b, p.clock
    data = bytearray(b"r" * 60)
    out = bytearray(a.max_frame)
    back = bytearray(b.max_frame)
    rbuf = bytearray(128)
    got = 0
    micropython.heap_lock()
    try:
        for _ in range(50):
            clock.now += 5
            a.send(data)
            n = a.data_to_send(out)
            b.receive_data(out, n)
            b.next_event()
            got += b.recv_into(rbuf)
            m = b.data_to_send(back)
            a.receive_data(back, m)
            a.next_event()
    finally:
        micropython.heap_unlock()
    assert got == 50 * 60 and a.unacked == 0
