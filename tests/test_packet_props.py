"""Property-based tests (hypothesis) of the protocol packet parsers: protocol 1's Connection
and protocol 2's Connection2, in every role (client, authenticating server, unauthenticated
server) and in several states (fresh, mid-handshake, established: reached with a real
in-memory pair), fed arbitrary bytes and mutated valid packets in random chunks.

What must hold (issue 8 item 5, design.md "no hang"): next_event() never raises for anything
the peer sent; receive_data() raises nothing but OssuaryError and takes at most the free room
of the bounded input buffer; a bounded number of next_event() calls reaches NEED_DATA or
CLOSED; after a time jump past timeout_ms a partial packet is discarded.
"""

import os

from hypothesis import HealthCheck, given, settings, strategies as st

from ossuary_micro import AUTH_SERVER, NEED_DATA, CLOSED, UNTRUSTED_KEY
from ossuary_micro.errors import OssuaryError
from tests.portable._pair import make_pair, CLIENT_SEED
from tests.portable._pair2 import make_pair2

# `make fuzz` runs many more examples.
EXAMPLES = 2000 if os.environ.get("OSSUARY_FUZZ") == "full" else 500
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PROTOS = (1, 2)
ROLES = ("client", "auth_server", "unauth_server")
STAGES = ("fresh", "mid", "established")


def _reach(proto, role, stage):
    """A real pair driven to `stage`; returns (link, the connection under test)."""
    kw = {} if role == "unauth_server" else dict(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    link = (make_pair if proto == 1 else make_pair2)(**kw)
    conn = link.client if role == "client" else link.server
    if stage == "mid":
        out = link._out
        n = link.client.data_to_send(out)       # client now waits for the server's reply
        assert n
        if role != "client":
            link.deliver("client", link.server, out[:n])
            link.drain(link.server)
            assert link.server.data_to_send(out)    # server now waits for the client's next
    elif stage == "established":
        link.run()
        assert link.established()
    return link, conn


def _valid_frames(proto):
    # Every packet of a whole session, both directions: handshake, records, end of stream.
    link = _reach(proto, "client", "established")[0]
    link.send("client", b"reading 1")
    link.send("server", b"ack")
    link.send("client", b"x" * 300)
    if proto == 2:
        link.end("client")
    return link.frames["client"] + link.frames["server"]


FRAMES = {p: _valid_frames(p) for p in PROTOS}


def _pump(conn, out, decide):
    """next_event() until NEED_DATA or CLOSED, answering TOFU and writing pending output.
    A bound on the calls proves there is no infinite loop."""
    for _ in range(len(conn._in) + 16):
        ev = conn.next_event()                  # must never raise: no try here
        assert isinstance(ev, int) and 0 <= ev <= 6
        if ev == UNTRUSTED_KEY:
            conn.accept_key() if decide else conn.reject_key()
            continue
        conn.data_to_send(out)
        if ev == NEED_DATA or ev == CLOSED:
            return ev
    raise AssertionError("next_event() never reached NEED_DATA or CLOSED")


def _check_bounds(conn):
    assert 0 <= conn._in_start <= conn._in_end <= len(conn._in)
    # No partial packet, no partial-packet timer: a stale one would time out the next
    # packet's first bytes at once (e.g. after a reset emptied the buffer).
    assert conn._in_end > conn._in_start or conn._partial_t0 is None or conn.state_name in (
        "Failing", "Failed")


def _feed(conn, data, sizes, out, decide):
    pos = i = 0
    while pos < len(data):
        n = min(sizes[i % len(sizes)], len(data) - pos)
        i += 1
        chunk = data[pos:pos + n]
        for _ in range(len(conn._in) + 16):     # re-offer what did not fit, boundedly
            free = len(conn._in) - (conn._in_end - conn._in_start)
            was_closed = conn.closed
            try:
                took = conn.receive_data(chunk)
            except OssuaryError:
                return
            assert 0 <= took <= len(chunk)
            if not was_closed:
                assert took <= free, "took more than the free room of the input buffer"
            _check_bounds(conn)
            pos += took
            chunk = chunk[took:]
            _pump(conn, out, decide)
            _check_bounds(conn)
            if not chunk:
                break
        else:
            raise AssertionError("receive_data() never took the rest of a chunk")


def _time_jump_discards_partial(link, conn, out, decide):
    # The core's rule: a partial packet older than timeout_ms is discarded. A state change
    # on the way (ResetWait timing out, say) may restart the wait, hence a few jumps.
    for _ in range(4):
        if conn._in_end == conn._in_start or conn.closed:
            return
        link.clock.now += conn.timeout_ms + 1
        _pump(conn, out, decide)
        _check_bounds(conn)
    assert conn._in_end == conn._in_start or conn.closed, (
        "a partial packet survived %d time jumps in %s" % (4, conn.state_name))


def _mutated(proto, picks, edits, cut):
    frames = FRAMES[proto]
    data = bytearray(b"".join(frames[i % len(frames)] for i in picks))
    for off, val in edits:
        if data:
            data[off % len(data)] = val
    if cut and data:
        del data[cut % len(data):]
    return bytes(data)


target = st.tuples(st.sampled_from(PROTOS), st.sampled_from(ROLES), st.sampled_from(STAGES))
sizes = st.lists(st.integers(1, 700), min_size=1, max_size=8)


@PROFILE
@given(target, st.binary(max_size=2000), sizes, st.booleans())
def test_arbitrary_bytes(tgt, data, chunk_sizes, decide):
    link, conn = _reach(*tgt)
    out = bytearray(len(link._out))
    _feed(conn, data, chunk_sizes, out, decide)
    _time_jump_discards_partial(link, conn, out, decide)


@PROFILE
@given(target, st.lists(st.integers(0, 63), min_size=1, max_size=6),
       st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
       st.integers(0, 1 << 16), sizes, st.booleans())
def test_mutated_valid_packets(tgt, picks, edits, cut, chunk_sizes, decide):
    link, conn = _reach(*tgt)
    out = bytearray(len(link._out))
    _feed(conn, _mutated(tgt[0], picks, edits, cut), chunk_sizes, out, decide)
    _time_jump_discards_partial(link, conn, out, decide)


@PROFILE
@given(target, st.integers(0, 63), st.integers(1, 0xFFFF), st.integers(0, 0xFF))
def test_partial_packet_times_out(tgt, pick, claimed_len, filler):
    # A header claiming `claimed_len` body bytes and fewer actually sent: the receiver
    # must not wait for them forever.
    link, conn = _reach(*tgt)
    out = bytearray(len(link._out))
    frame = bytearray(FRAMES[tgt[0]][pick % len(FRAMES[tgt[0]])])
    frame[0:2] = claimed_len.to_bytes(2, "big")
    have = min(len(frame), 6 + claimed_len - 1, len(conn._in) - 1)
    frame[6:] = bytes([filler]) * (len(frame) - 6)
    _feed(conn, bytes(frame[:have]), [have or 1], out, True)
    _time_jump_discards_partial(link, conn, out, True)
