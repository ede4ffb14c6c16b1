# Protocol 2's host record path (issue 10): on CPython with pyca, connection2.Connection2 is
# _record2_host.py's subclass; whole DATA records go through its send_data / next_event,
# everything else through connection2.py's general path. These tests run the same traffic
# through it and through connection2.py's own class on the same backend (same random
# sources: the same session) and compare every frame, event, error and counter; and check
# that a bad tag releases no plaintext.

import pytest

pytest.importorskip("cryptography")

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from ossuary_micro import connection2 as _c2  # noqa: E402
from ossuary_micro import _record2_host as _host  # noqa: E402
from ossuary_micro.connection2 import (Connection2, CLIENT, AUTH_SERVER, DATA,  # noqa: E402
                                       NEED_DATA, CLOSED, END_OF_STREAM)
from ossuary_micro.crypto import get_backend  # noqa: E402
from ossuary_micro.errors import LocalProtocolError, ConnectionClosed  # noqa: E402

from tests.portable._pair import (Clock, DetRandom, CLIENT_SEED, SERVER_SEED,  # noqa: E402
                                  SERVER_PUB)
from tests.portable._pair2 import Link2  # noqa: E402
from tests.test_record_paths import check_partial_timer_cleared  # noqa: E402
from tests.portable.test_proto2 import nonce_of, set_nonce  # noqa: E402

_Base = _host._Connection2      # connection2.py's own class: the general path only


def _pair_of(cls, clock=None, max_record=16384, rekey_after=1 << 20, backend="cryptography"):
    clock = clock or Clock()
    b = get_backend(backend)
    c = cls(CLIENT, secret_key=CLIENT_SEED, authorized_keys=(SERVER_PUB,), backend=b,
            random=DetRandom(b"hp2-c"), clock=clock, max_record=max_record,
            rekey_after=rekey_after)
    s = cls(AUTH_SERVER, secret_key=SERVER_SEED, authorized_keys=(c.local_public_key,),
            backend=b, random=DetRandom(b"hp2-s"), clock=clock, max_record=max_record,
            rekey_after=rekey_after)
    link = Link2(c, s, clock).run()
    assert link.established()
    return link


def _counters(conn):
    # Everything the record path steps, as connection2.py sees it.
    cs, rs = conn._send_cs, conn._recv_cs
    return (conn.state, conn._local_msg_id, conn._remote_msg_id, conn._sent_since_rekey,
            conn.local_ended, conn.remote_ended,
            None if cs is None else (bytes(cs.k), nonce_of(cs)),
            None if rs is None else (bytes(rs.k), nonce_of(rs)))


def test_host_path_is_the_connection2_class_and_agrees_with_connection2_py():
    assert Connection2 is _host.Connection2 and _c2.Connection2 is _host.Connection2
    assert issubclass(Connection2, _Base) and _Base.__module__ == "ossuary_micro.connection2"
    assert (_host._ESTABLISHED, _host._NEED_DATA, _host._DATA, _host._RECORD_OVERHEAD) == (
        _c2._ESTABLISHED, _c2.NEED_DATA, _c2.DATA, _c2._RECORD_OVERHEAD)
    assert _c2._T2_DATA == 0x0220 and _c2._HEADER_LEN == 8 and _c2._TAG_LEN == 16
    # The fast path is in use on an established pyca session: its windows are kept.
    link = _pair_of(Connection2)
    link.send("client", b"x" * 10)
    assert link.client._sw[0] is not None and link.server._ow[0] is not None
    assert link.client._sctx is not None and link.server._rctx is not None
    # Another backend (no aead_record): the same class, the general path only.
    link = _pair_of(Connection2, backend="pure")
    link.send("client", b"x" * 10)
    assert link.received["server"] == [b"x" * 10] and link.client._sw[0] is None


def test_host_and_general_path_agree_through_rekeys_and_counter_carries():
    # 66,000 records client -> server, a REKEY every 1000: the nonces' and msg_ids' low
    # bytes carry many times, the 16-bit msg_ids wrap past 0xFFFF, the rekey count passes
    # 255 several times per key. Record sizes change every 700 records, so rekeys fall
    # inside runs of one size (kept windows, whose key must change) and outside them.
    # Every frame (REKEYs included) must be the same bytes, and each receiver reads the
    # other pair's frames.
    fast, slow = (_pair_of(cls, rekey_after=1000) for cls in (Connection2, _Base))
    of, os_ = bytearray(100), bytearray(100)
    for i in range(66000):
        d = bytes((i & 0xFF,)) * ((i // 700) % 5)
        n = fast.client.send_data(d, of)
        assert slow.client.send_data(d, os_) == n and of[:n] == os_[:n], i
        for r, frame in ((fast.server, os_), (slow.server, of)):
            r.receive_data(frame, n)
            assert r.next_event() == DATA and r.plaintext[:r.data_len] == d, i
            assert r.next_event() == NEED_DATA
    for x, y in ((fast.client, slow.client), (fast.server, slow.server)):
        assert _counters(x) == _counters(y)
    # msg1, msg3 then 66,000 DATA and 65 REKEY records: msg_id mod 2**16.
    assert fast.client._local_msg_id == (2 + 66000 + 65) % 65536
    assert fast.server._remote_msg_id == fast.client._local_msg_id
    assert nonce_of(fast.client._send_cs) == 66065 and fast.client._sent_since_rekey == 1000
    fast.send("server", b"and back")            # the other direction still in step
    assert fast.received["client"][-1] == b"and back"


def test_host_path_rekeys_every_record_and_ends_and_closes_as_the_general_path():
    # rekey_after=1: a REKEY before every DATA; records of one size (kept windows) and of
    # changing sizes, several records in one buffer, then END both ways and a CLOSE.
    results = []
    for cls in (Connection2, _Base):
        link = _pair_of(cls, rekey_after=1)
        c, s = link.client, link.server
        got = []
        out = bytearray(2000)
        for i in range(20):
            size = 64 if i < 10 else i * 37
            n = c.send_data(bytes((i,)) * size, out)
            got.append(bytes(out[:n]))
            s.receive_data(out, n)
            while True:
                ev = s.next_event()
                got.append((ev, bytes(s.data)))
                if ev == NEED_DATA:
                    break
        off = 0
        for size in (5, 5, 300, 0, 5):                  # five records (and REKEYs) at once
            off += s.send_data(b"s" * size, out, off)
        got.append(bytes(out[:off]))
        c.receive_data(out, off)
        for _ in range(7):
            ev = c.next_event()
            got.append((ev, bytes(c.data)))
        n = c.end_stream(out)
        got.append(bytes(out[:n]))
        with pytest.raises(LocalProtocolError):
            c.send_data(b"after end", out)              # the kept window is gone
        s.receive_data(out, n)
        got += [s.next_event(), s.next_event(), s.remote_ended]
        link.send("server", b"half-closed: the other way still flows")
        got.append(link.received["client"][-1])
        s.disconnect()
        n = s.data_to_send(out)
        got.append(bytes(out[:n]))
        c.receive_data(out, n)
        got += [c.next_event(), type(c.error), _counters(c), _counters(s)]
        results.append(got)
    assert results[0] == results[1]
    assert END_OF_STREAM in results[0]
    assert results[0][-4:-2] == [CLOSED, ConnectionClosed]


def test_data_after_end_and_send_after_end_fail_as_the_general_path():
    # Records of one size (kept windows on both sides), then END: our send_data refuses
    # from then on, and a DATA record after the peer's END (forced here) fails the receiver.
    results = []
    for cls in (Connection2, _Base):
        link = _pair_of(cls)
        c, s = link.client, link.server
        for _ in range(3):
            link.send("client", b"q" * 30)
        link.end("client")
        with pytest.raises(LocalProtocolError):
            c.send_data(b"q" * 30, link._out)
        c.local_ended = False          # a peer that ignores its own END
        link.send("client", b"q" * 30)
        results.append((link.events["server"], link.received["server"], str(s.error),
                        _counters(c), _counters(s)))
    assert results[0] == results[1]
    assert results[0][0][-2:] == ["END_OF_STREAM", "CLOSED"]
    assert results[0][2] == "data after end of stream"


def test_bad_tag_at_every_position_releases_no_plaintext():
    # A byte flipped at every position of a DATA record (header, ciphertext, tag), through
    # the kept windows: the connection fails (as the general path: CLOSED, record
    # decryption failed, or the header's own error), and the plaintext buffer holds zeros
    # where the record path decrypted, never the unauthenticated plaintext.
    size = 40
    for at in range(size + 24):
        trace = []
        for cls in (Connection2, _Base):
            link = _pair_of(cls)
            c, s = link.client, link.server
            out = bytearray(200)
            for _ in range(3):                      # same size: windows kept on both sides
                link.send("client", b"A" * size)
            n = c.send_data(b"B" * size, out)
            out[at] ^= 0x20
            s.receive_data(out, n)
            ev = s.next_event()
            trace.append((ev, str(s.error), s.state_name))
            assert ev in (CLOSED, NEED_DATA), at
            # Only zeros or the earlier, authenticated "A"s (a flipped length bit makes a
            # shorter record: fewer bytes written, then zeroed).
            assert set(bytes(s.plaintext[:size])) <= {0, ord("A")}, at
            assert b"B" not in bytes(s.plaintext), at
            if cls is Connection2 and at >= 8:
                # decrypt_into wrote the whole record's plaintext, then the tag failed.
                assert "decryption" in str(s.error)
                assert bytes(s.plaintext[:size]) == bytes(size), at
        assert trace[0] == trace[1], at


def test_receive_data_takes_n_bytes_of_a_longer_buffer_as_the_general_path():
    # receive_data(buf, n) with bytes after n: the record path stores all of a short tail
    # (never parsed) or a window of n bytes; either way only n count. Frames are fed in
    # pieces of a buffer whose tail is another record's bytes, so a parser that read past
    # n would see a valid-looking record there.
    results = []
    for cls in (Connection2, _Base):
        link = _pair_of(cls, max_record=1000)
        c, s = link.client, link.server
        got = []
        for size, cut, slack in ((40, None, 0), (40, None, 24), (40, None, 300),
                                 (900, None, 200), (40, 10, 24), (40, 30, 300),
                                 (900, 500, 100), (0, None, 24), (0, 3, 0)):
            out = bytearray(size + 48 + slack + 100)
            n = c.send_data(bytes((size & 0xFF,)) * size, out)
            m = c.send_data(b"next", out, n)         # a whole record beyond n: unread
            pieces = [(0, n)] if cut is None else [(0, cut), (cut, n)]
            for a, b in pieces:
                buf = bytearray(out[a:b + m]) + bytes(slack)
                got.append(s.receive_data(buf, b - a))
                while True:
                    ev = s.next_event()
                    got.append((ev, bytes(s.data) if ev == DATA else None))
                    if ev == NEED_DATA:
                        break
            c._local_msg_id -= 1                     # "next" was never delivered: resend
            set_nonce(c._send_cs, nonce_of(c._send_cs) - 1)
        got.append(_counters(s))
        results.append(got)
    assert results[0] == results[1]
    assert results[0].count((DATA, b"\x28" * 40)) == 5


def _sends(conn, out):
    # send_data's answers (frame length or the error type) to a set of unusual arguments.
    got = []
    for args in ((b"abc", out, 3), (b"abcdef", out, 0, 2), (memoryview(b"xyz"), out),
                 (bytearray(b"q" * 40), out, 0, 40), (b"abc", bytes(80)), (b"abc", out, 0, 9),
                 (b"abc", bytearray(20)), (b"abc", bytearray(50)), (b"abc", out, -1),
                 (b"z" * 70, out, 0, -1), (b"abc", memoryview(bytearray(80)).toreadonly())):
        try:
            n = conn.send_data(*args)
            got.append((n, bytes(args[1][:n])))
        except LocalProtocolError as e:
            got.append(type(e))
    return got


def test_host_send_data_answers_unusual_arguments_as_the_general_path():
    fast, slow = _pair_of(Connection2, max_record=64), _pair_of(_Base, max_record=64)
    assert _sends(fast.client, bytearray(120)) == _sends(slow.client, bytearray(120))
    out = bytearray(120)
    for _ in range(3):
        fast.client.send_data(b"same size", out)          # a kept window on `out`
    fast.client.disconnect()
    slow.client.disconnect()
    with pytest.raises(LocalProtocolError):
        fast.client.send_data(b"same size", out)          # the kept window is gone


def test_host_path_clears_the_partial_packet_timer_as_the_general_path():
    check_partial_timer_cleared((Connection2, _Base), _pair_of)


# ---------------------------------------------------------------- differential, hypothesis
# Random traffic on an established session, the same through the host record path and
# through connection2.py's own class: records of random sizes each way (REKEYs every few,
# an END now and then), delivered whole, in random chunks, several at once, with a byte
# flipped or a clock jump now and then. Every frame, event, plaintext, error and counter
# must be the same.

_STEP = st.tuples(
    st.booleans(),                               # direction: client -> server or back
    st.lists(st.integers(-1, 300), min_size=1, max_size=3),  # record sizes (-1: END)
    st.one_of(st.none(), st.integers(1, 97)),    # deliver in chunks of this size, or whole
    st.one_of(st.none(), st.integers(0, 10 ** 6)),   # flip a byte at this index (mod length)
    st.sampled_from((0, 0, 0, 1500, 5000)),      # clock jump between chunks (timeout 4000)
)


def _drive(cls, steps):
    clock = Clock()
    link = _pair_of(cls, clock, max_record=256, rekey_after=3)
    trace = []
    for forward, sizes, chunk, flip, jump in steps:
        src, dst = (link.client, link.server) if forward else (link.server, link.client)
        blob = bytearray()
        for i, size in enumerate(sizes):
            out = bytearray(400)
            try:
                if size < 0:
                    n = src.end_stream(out)
                else:
                    n = src.send_data(bytes((size + i + k) & 0xFF for k in range(size)), out)
                blob += out[:n]
            except LocalProtocolError as e:
                trace.append(("send error", str(e)))
        trace.append(("frames", bytes(blob)))
        if flip is not None and blob:
            blob[flip % len(blob)] ^= 0x40
        pieces = [blob] if chunk is None else [blob[i:i + chunk]
                                                for i in range(0, len(blob), chunk)]
        for piece in pieces:
            mv = memoryview(bytes(piece))
            while len(mv):
                took = dst.receive_data(mv)
                mv = mv[took:]
                while True:
                    ev = dst.next_event()
                    trace.append((ev, bytes(dst.data) if ev == DATA else str(dst.error)))
                    if ev == NEED_DATA or ev == CLOSED:
                        break
                if not took:
                    trace.append(("dropped", len(mv)))
                    break
            clock.now += jump
        link.run()
        for conn in (link.client, link.server):
            trace.append(_counters(conn))
    return trace


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_STEP, min_size=1, max_size=8))
def test_host_and_general_path_agree_on_random_traffic(steps):
    assert _drive(Connection2, steps) == _drive(_Base, steps)
