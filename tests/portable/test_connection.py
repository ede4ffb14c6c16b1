# Protocol tests for the sans-I/O Connection (spec sections 1-4 and 11), over an in-memory
# link. Portable: runs under pytest and under the MicroPython runner.

from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA,
                           DATA, RESET, CLOSED, HANDSHAKE_DONE, LocalProtocolError,
                           KeyFormatError, ConnectionClosed, ConnectionFailed,
                           RemoteProtocolError, OssuaryError, get_backend)
from ossuary_micro import wire
from ossuary_micro.keys import parse_key, format_key
from ._util import h, raises
from ._pair import (make_pair, DetRandom, Clock, SERVER_SEED, SERVER_PUB, CLIENT_SEED,
                    CLIENT_PUB, OTHER_PUB)


def _be16(b, off):
    return (b[off] << 8) | b[off + 1]


def _handshake_frames(**kw):
    """Run a fresh pair through the handshake; return (link, [msg1, msg2, msg3])."""
    link = make_pair(**kw).run()
    assert link.established(), link.events
    return link, [link.frames["client"][0], link.frames["server"][0], link.frames["client"][1]]


# ---------------------------------------------------------------- keys and layouts

def test_fixed_key_vectors():
    # Spec 5.5: seed -> public, on the default backend.
    b = get_backend()
    assert b.ed25519_public(SERVER_SEED) == SERVER_PUB
    assert b.ed25519_public(CLIENT_SEED) == CLIENT_PUB


def test_key_text_format():
    text = "BE1CA074f4a58bbbd262a7f9523b6fb0bb9e8662287c3389a2e163dc55de281f\n"
    assert parse_key(text) == CLIENT_PUB
    assert format_key(CLIENT_PUB) == text.strip().lower()
    raises(KeyFormatError, parse_key, "be1c")
    raises(KeyFormatError, parse_key, "zz" * 32)
    raises(KeyFormatError, parse_key, 42)
    raises(KeyFormatError, format_key, b"short")


def test_frame_sizes_match_reference():
    # examples/ffi.c prints 92, 208, 132 and 39 (11 bytes of plaintext).
    link, frames = _handshake_frames(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    assert [len(f) for f in frames] == [92, 208, 132]
    link.send("client", b"hello world")
    assert len(link.frames["client"][-1]) == 39
    assert link.received["server"] == [b"hello world"]


def test_handshake_byte_layouts():
    _, (m1, m2, m3) = _handshake_frames(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    # Outer header: len, msg_id, type, reserved, big-endian.
    assert m1[:8] == b"\x00\x54\x00\x00\x00\x01\x00\x00"
    assert m2[:8] == b"\x00\xc8\x00\x00\x00\x02\x00\x00"
    assert m3[:8] == b"\x00\x7c\x00\x01\x00\x03\x00\x00"
    # Inner prefix: LE inner length, version 1, 5 zero bytes.
    assert m1[8:16] == b"\x54\x00\x01\x00\x00\x00\x00\x00"
    assert m2[8:16] == b"\xc8\x00\x01\x00\x00\x00\x00\x00"
    assert m3[8:16] == b"\x7c\x00\x01\x00\x00\x00\x00\x00"
    # Sub-packet headers: data_len, tag_len = 16, little-endian.
    assert m2[60:64] == b"\x80\x00\x10\x00"
    assert m3[16:20] == b"\x60\x00\x10\x00"


def test_server_handshake_decrypts_to_reference_layout():
    # Decrypt message 2 ourselves with the session key: {server key, challenge, signature
    # over pubS || Ns || chC} under nonce Ns (spec 2.3).
    link, (m1, m2, m3) = _handshake_frames()
    b = get_backend()
    key = bytes(link.client._key)
    ns = m2[48:60]
    pt = bytearray(128)
    b.aead_open(key, ns, m2, 64, 128, pt, 0)
    assert bytes(pt[0:32]) == SERVER_PUB
    signed = m2[16:48] + ns + m1[60:92]
    assert b.ed25519_verify(SERVER_PUB, signed, bytes(pt[64:128]))
    # A keyless 0.5.1 client sends 96 zero bytes under nonce Nc.
    pt3 = bytearray(96)
    b.aead_open(key, m1[48:60], m3, 20, 96, pt3, 0)
    assert bytes(pt3) == bytes(96)


# ---------------------------------------------------------------- handshakes

def test_unauth_server_keyless_client():
    link = make_pair().run()
    assert link.events["client"] == ["HANDSHAKE_DONE"]
    assert link.events["server"] == ["HANDSHAKE_DONE"]
    assert link.client.remote_public_key == SERVER_PUB
    # An unauthenticated server does not expose an unverified client key (spec 8.2.13).
    assert link.server.remote_public_key is None
    link.send("client", b"ping")
    link.send("server", b"pong")
    assert link.received["server"] == [b"ping"]
    assert link.received["client"] == [b"pong"]


def test_auth_server_with_client_key():
    link = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER).run()
    assert link.established()
    assert link.server.remote_public_key == CLIENT_PUB
    assert link.client.local_public_key == CLIENT_PUB
    for i in range(5):
        link.send("client", b"c%d" % i)
        link.send("server", b"s%d" % i)
    assert link.received["server"] == [b"c0", b"c1", b"c2", b"c3", b"c4"]
    assert link.received["client"] == [b"s0", b"s1", b"s2", b"s3", b"s4"]


def test_unauth_server_accepts_keyed_client():
    link = make_pair(client_key=CLIENT_SEED, server_role=UNAUTH_SERVER).run()
    assert link.established()


def test_msg_ids_follow_reference_sequence():
    # Spec 1.4: C->S handshake 0, auth 1, data from 2; S->C handshake 0, data from 1.
    link = make_pair().run()
    link.send("client", b"a")
    link.send("client", b"b")
    link.send("server", b"x")
    ids_c = [_be16(f, 2) for f in link.frames["client"]]
    ids_s = [_be16(f, 2) for f in link.frames["server"]]
    assert ids_c == [0, 1, 2, 3]
    assert ids_s == [0, 1]


def test_tofu_accept():
    link = make_pair(trust_server=False).run()
    assert link.events["client"] == ["UNTRUSTED_KEY", "HANDSHAKE_DONE"]
    assert link.established()
    assert SERVER_PUB in link.client.authorized_keys


def test_tofu_reject():
    link = make_pair(trust_server=False)
    link.on_untrusted = lambda conn: conn.reject_key()
    link.run()
    assert link.events["client"] == ["UNTRUSTED_KEY", "CLOSED"]
    assert link.client.closed
    assert isinstance(link.client.error, ConnectionFailed)
    # The server saw Disconnect(error=1) and echoed it.
    assert link.events["server"] == ["CLOSED"]
    assert isinstance(link.server.error, ConnectionFailed)
    assert link.server.closed


def test_accept_without_pending_key_is_local_error():
    link = make_pair()
    raises(LocalProtocolError, link.client.accept_key)
    raises(LocalProtocolError, link.client.reject_key)


def test_unauthorized_client_resets_until_limit():
    # Spec 2.6: an unauthorized client key is a recoverable reset, repeated until the
    # 5th reset makes it permanent.
    link = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER,
                     authorize_client=False).run(rounds=80)
    assert "RESET" in link.events["server"]
    assert link.server.closed and link.client.closed
    assert isinstance(link.server.error, ConnectionFailed)
    assert link.server.reset_count >= 5


def test_keyless_client_refused_by_auth_server():
    link = make_pair(client_key=None, server_role=AUTH_SERVER).run(rounds=80)
    assert not link.server.established
    assert link.server.remote_public_key is None
    assert "HANDSHAKE_DONE" not in link.events["server"]


def test_server_tofu_clients_accept_and_reject():
    link = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER,
                     authorize_client=False, tofu_clients=True).run()
    assert link.events["server"] == ["UNTRUSTED_KEY", "HANDSHAKE_DONE"]
    assert link.server.remote_public_key == CLIENT_PUB
    link.send("client", b"pinned")
    assert link.received["server"] == [b"pinned"]

    link = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER,
                     authorize_client=False, tofu_clients=True)
    link.on_untrusted = lambda conn: conn.reject_key()
    link.run()
    assert link.server.closed
    assert "CLOSED" in link.events["client"]


def test_untrusted_server_key_is_the_proved_one():
    link = make_pair(trust_server=False)
    seen = []

    def decide(conn):
        seen.append(conn.remote_public_key)
        conn.accept_key()
    link.on_untrusted = decide
    link.run()
    assert seen == [SERVER_PUB]


# ---------------------------------------------------------------- feeding patterns

def _fresh_server_feed(frames_to_feed, chunking):
    """Feed the client's messages 1 and 3 to a fresh server using `chunking`; return it."""
    link, (m1, m2, m3) = _handshake_frames(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    return link, m1, m2, m3


def test_byte_by_byte_and_trailing_bytes():
    link, (m1, m2, m3) = _handshake_frames(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    # Replay the same deterministic conversation into fresh objects, byte by byte.
    fresh = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    out = bytearray(300)
    c, s = fresh.client, fresh.server
    assert c.data_to_send(out) == 92 and bytes(out[:92]) == m1
    evs = []
    for i in range(len(m1)):
        assert s.receive_data(m1[i:i + 1]) == 1
        ev = s.next_event()
        evs.append(ev)
    assert evs == [NEED_DATA] * 92
    assert s.data_to_send(out) == 208 and bytes(out[:208]) == m2
    for i in range(len(m2)):
        c.receive_data(m2[i:i + 1])
        assert c.next_event() == NEED_DATA
    assert c.data_to_send(out) == 132
    msg3 = bytes(out[:132])
    assert c.next_event() == HANDSHAKE_DONE
    # Message 3 plus two data records in ONE buffer, then the trailing half of a third.
    n1 = c.send_data(b"first", out)
    d1 = bytes(out[:n1])
    n2 = c.send_data(b"second", out)
    d2 = bytes(out[:n2])
    n3 = c.send_data(b"third", out)
    d3 = bytes(out[:n3])
    blob = msg3 + d1 + d2 + d3[:10]
    assert s.receive_data(blob) == len(blob)
    assert s.next_event() == HANDSHAKE_DONE
    assert s.next_event() == DATA and bytes(s.data) == b"first"
    assert s.next_event() == DATA and bytes(s.data) == b"second"
    assert s.next_event() == NEED_DATA
    s.receive_data(d3[10:])
    assert s.next_event() == DATA and bytes(s.data) == b"third"
    assert s.next_event() == NEED_DATA


def test_data_records_split_at_every_boundary():
    link = make_pair().run()
    out = bytearray(100)
    for cut in range(0, 39):
        n = link.client.send_data(b"hello world", out)
        frame = bytes(out[:n])
        s = link.server
        s.receive_data(frame[:cut])
        if cut < n:
            assert s.next_event() == NEED_DATA
        s.receive_data(frame[cut:])
        assert s.next_event() == DATA and bytes(s.data) == b"hello world"


def test_bounded_input_buffer_takes_what_fits():
    link = make_pair(max_record=64).run()
    s = link.server
    out = bytearray(200)
    frames = b""
    for i in range(10):
        n = link.client.send_data(b"x" * 60, out)
        frames += bytes(out[:n])
    got = []
    mv = memoryview(frames)
    while len(mv):
        took = s.receive_data(mv)
        assert took <= len(s._in)
        mv = mv[took:]
        while True:
            ev = s.next_event()
            if ev != DATA:
                break
            got.append(bytes(s.data))
    assert got == [b"x" * 60] * 10


# ---------------------------------------------------------------- hostile input

def test_pre_auth_crash_case_is_a_clean_reset():
    # Spec 8.1.1: a valid ClientHandshake, then a ClientAuthentication with data_len 0.
    link, (m1, m2, m3) = _handshake_frames(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    fresh = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    s = fresh.server
    s.receive_data(m1)
    assert s.next_event() == NEED_DATA
    out = bytearray(300)
    assert s.data_to_send(out) == 208
    bad = bytearray(m3)
    bad[16] = 0
    bad[17] = 0
    s.receive_data(bad)
    assert s.next_event() == RESET
    assert isinstance(s.error, RemoteProtocolError)
    # Still alive: it writes a Reset and waits for the peer's.
    assert s.data_to_send(out) == 12
    assert bytes(out[:12]) == b"\x00\x04\x00\x00\x00\x11\x00\x00\x04\x00\x01\x00"


def _sub_len_cases(total_body, off):
    # data_len and tag_len values: 0, too small, too large, past the end.
    return (0, 1, 15, 16, 95, 97, 127, 129, total_body, 0xFFFF)


def test_every_length_field_variant_is_a_clean_error():
    link, (m1, m2, m3) = _handshake_frames(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    out = bytearray(300)
    # (packet, receiver-side setup, field offsets (frame) of LE u16 length fields)
    for which, frame, fields in ((1, m1, (8,)), (2, m2, (8, 60, 62)), (3, m3, (8, 16, 18))):
        for foff in fields:
            for v in _sub_len_cases(len(frame) - 8, foff):
                fresh = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
                c, s = fresh.client, fresh.server
                c.data_to_send(out)
                if which == 1:
                    rx = s
                elif which == 2:
                    s.receive_data(m1)
                    s.next_event()
                    s.data_to_send(out)
                    rx = c
                else:
                    s.receive_data(m1)
                    s.next_event()
                    s.data_to_send(out)
                    rx = s
                bad = bytearray(frame)
                bad[foff] = v & 0xFF
                bad[foff + 1] = v >> 8
                rx.receive_data(bad)
                ev = rx.next_event()
                if bytes(bad) == frame:
                    continue
                assert ev == RESET, (which, foff, v, ev)
    # Outer header length: 0, too small, too large (waits), past the reference limit.
    for v in (0, 1, 83, 85, 200, 16404, 16405, 0xFFFF):
        fresh = make_pair()
        s = fresh.server
        bad = bytearray(m1)
        bad[0] = v >> 8
        bad[1] = v & 0xFF
        s.receive_data(bad)
        ev = s.next_event()
        if v < 84:
            assert ev == RESET, v
        elif v + 8 > s.max_packet or v > 16404:
            assert ev == CLOSED and s.error.reason == "Oversized packet", v
            assert s.data_to_send(out) == 12 and out[5] == 0x10     # Disconnect(error)
            assert out[10] == 1
        else:
            assert ev == NEED_DATA, v          # waits for the rest: the timeout bounds it


def test_wrong_version_resets():
    link, (m1, m2, m3) = _handshake_frames()
    s = make_pair().server
    bad = bytearray(m1)
    bad[10] = 2
    s.receive_data(bad)
    assert s.next_event() == RESET
    assert s.error.reason == "wrong protocol version"


def test_wrong_type_for_state_resets():
    link, (m1, m2, m3) = _handshake_frames()
    s = make_pair().server
    s.receive_data(m3[:6] + b"\x00\x03" + m3[8:])     # ClientAuthentication first
    assert s.next_event() == RESET
    for t in (0x0002, 0x0020, 0x0099):
        s = make_pair().server
        bad = bytearray(m1)
        bad[4] = t >> 8
        bad[5] = t & 0xFF
        s.receive_data(bad)
        assert s.next_event() == RESET


def test_non_data_packet_in_data_phase_resets():
    link, (m1, m2, m3) = _handshake_frames()
    s = link.server
    bad = bytearray(m1)
    bad[2] = 0
    bad[3] = 2            # right msg_id, wrong type for Encrypted
    s.receive_data(bad)
    assert s.next_event() == RESET
    assert s.error.reason == "Received non-encrypted data on encrypted channel."


def test_replay_and_reorder_reset():
    link = make_pair().run()
    out = bytearray(100)
    n = link.client.send_data(b"one", out)
    one = bytes(out[:n])
    n = link.client.send_data(b"two", out)
    two = bytes(out[:n])
    s = link.server
    s.receive_data(two)                         # reordered
    assert s.next_event() == RESET
    assert s.error.reason == "Message ID does not match"

    link = make_pair().run()
    n = link.client.send_data(b"one", out)
    one = bytes(out[:n])
    link.server.receive_data(one)
    assert link.server.next_event() == DATA
    link.server.receive_data(one)               # replayed
    assert link.server.next_event() == RESET


def test_truncated_packet_waits_then_times_out():
    link, (m1, m2, m3) = _handshake_frames()
    fresh = make_pair()
    s = fresh.server
    s.receive_data(m1[:50])
    assert s.next_event() == NEED_DATA
    fresh.clock.now += 3999
    assert s.next_event() == NEED_DATA
    fresh.clock.now += 1
    assert s.next_event() == RESET


def test_decryption_failure_in_data_phase_resets_and_recovers():
    link = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER).run()
    flip = [True]

    def tamper(name, frame):
        if name == "client" and flip[0] and frame[5] == 0x20:
            flip[0] = False
            frame[20] ^= 1
        return frame
    link.tamper = tamper
    link.send("client", b"will be corrupted")
    assert link.events["server"][-1] == "RESET"
    assert link.server.error.reason == "decryption failed"
    assert link.received["server"] == []
    link.run()
    # Not wedged (unlike 0.5.1): both sides re-handshake and data flows again.
    assert link.established()
    assert link.events["client"][-2:] == ["RESET", "HANDSHAKE_DONE"]
    link.send("client", b"after reset")
    link.send("server", b"both ways")
    assert link.received["server"] == [b"after reset"]
    assert link.received["client"] == [b"both ways"]


def test_corrupted_tag_and_length_in_data_phase():
    link = make_pair().run()
    out = bytearray(100)
    for off, val in ((8, 3), (9, 1), (10, 0), (38, None)):
        link = make_pair().run()
        n = link.client.send_data(b"hello world", out)
        bad = bytearray(out[:n])
        if val is None:
            bad[off] ^= 0x80
        else:
            bad[off] = val
        link.server.receive_data(bad)
        ev = link.server.next_event()
        if off == 10:
            # tag_len is ignored by data receivers (spec 1.3)
            assert ev == DATA
        else:
            assert ev == RESET, off


# ---------------------------------------------------------------- reset and disconnect

def test_peer_reset_dance_restarts_handshake():
    link = make_pair().run()
    link.send("client", b"before")
    out = bytearray(300)
    # Inject a Reset (with a garbage `len` field, as Rust writes) into the server.
    link.server.receive_data(b"\x00\x04\x00\x00\x00\x11\x00\x00\xcd\x7a\x01\x00")
    assert link.server.next_event() == RESET
    n = link.server.data_to_send(out)
    assert bytes(out[:n]) == b"\x00\x04\x00\x00\x00\x11\x00\x00\x04\x00\x01\x00"
    assert link.server.state_name == "ServerWaitHandshake"
    # Deliver that Reset to the client: it resets too, answers, and both re-handshake.
    link.client.receive_data(out[:n])
    link.drain(link.client)
    link.run()
    assert link.established()
    link.send("client", b"after")
    assert link.received["server"][-1] == b"after"
    # msg_ids started again from 0 (handshake 0, auth 1, data 2).
    assert _be16(link.frames["client"][-1], 2) == 2


def test_injected_reset_does_not_ping_pong():
    # One forged Reset: the server answers it, the client answers that; the crossing
    # Reset is absorbed instead of starting another round, so one re-handshake follows.
    link = make_pair().run()
    link.server.receive_data(b"\x00\x04\x00\x00\x00\x11\x00\x00\x04\x00\x01\x00")
    link.drain(link.server)
    link.run()
    assert link.established()
    assert link.server.reset_count == 1 and link.client.reset_count == 1


def test_local_reset_initiator_waits_for_peer_reset():
    link = make_pair().run()
    s = link.server
    s.receive_data(b"\x00\x04\x00\x09\x00\x20\x00\x00" + b"\x00" * 4)    # bad msg_id
    assert s.next_event() == RESET
    out = bytearray(300)
    assert s.data_to_send(out) == 12
    assert s.state_name == "ResetWait"
    # Anything but Reset is dropped in ResetWait.
    s.receive_data(b"\x00\x04\x00\x00\x00\x10\x00\x00\x04\x00\x00\x00")   # Disconnect
    assert s.next_event() == NEED_DATA and s.state_name == "ResetWait"
    s.receive_data(b"\x00\x04\x00\x00\x00\x11\x00\x00\x04\x00\x01\x00")
    assert s.next_event() == NEED_DATA
    assert s.state_name == "ServerWaitHandshake"


def test_reset_wait_times_out_to_initial_state():
    link = make_pair().run()
    c = link.client
    c.receive_data(b"\x00\x04\x00\x07\x00\x20\x00\x00" + b"\x00" * 4)
    assert c.next_event() == RESET
    out = bytearray(300)
    c.data_to_send(out)
    assert c.state_name == "ResetWait"
    link.clock.now += 4000
    assert c.next_event() == NEED_DATA
    assert c.state_name == "ClientSendHandshake"


def test_clean_disconnect_is_echoed():
    link = make_pair().run()
    link.client.disconnect()
    link.run()
    assert link.client.closed and link.server.closed
    assert link.events["server"][-1] == "CLOSED"
    assert isinstance(link.server.error, ConnectionClosed)
    assert isinstance(link.client.error, ConnectionClosed)
    # Client's Disconnect carried error=0, the server's echo too.
    assert link.frames["client"][-1][10] == 0
    assert link.frames["server"][-1][10] == 0
    assert link.client.next_event() == CLOSED
    assert link.client.data_to_send(bytearray(300)) == 0


def test_error_disconnect_and_short_disconnect():
    link = make_pair().run()
    link.server.disconnect(error=True)
    link.run()
    assert isinstance(link.client.error, ConnectionFailed)
    assert link.frames["server"][-1][10] == 1
    link = make_pair().run()
    link.server.receive_data(b"\x00\x02\x00\x00\x00\x10\x00\x00\x04\x00")
    assert link.server.next_event() == RESET


def test_reset_limit_is_a_setting():
    clock = Clock()
    c = Connection(CLIENT, random=DetRandom(b"x"), clock=clock, max_resets=2)
    events = []
    for i in range(6):
        c.data_to_send(bytearray(300))
        c.receive_data(b"\x00\x04\x00\x00\x00\x11\x00\x00\x04\x00\x01\x00")
        events.append(c.next_event())
        if events[-1] == CLOSED:
            break
    assert events.count(RESET) == 1 and events[-1] == CLOSED, events
    assert c.reset_count == 2
    assert isinstance(c.error, ConnectionFailed)
    assert not c.closed             # the Disconnect is still to be written
    out = bytearray(300)
    assert c.data_to_send(out) == 12 and out[5] == 0x10 and out[10] == 1
    assert c.closed


def test_timeouts_drive_resets():
    # ClientWaitHandshake gives up after 4 s: Reset goes out, then ResetWait.
    link = make_pair()
    out = bytearray(300)
    c = link.client
    assert c.data_to_send(out) == 92
    link.clock.now += 3999
    assert c.next_event() == NEED_DATA
    link.clock.now += 1
    assert c.next_event() == RESET
    assert c.data_to_send(out) == 12 and out[5] == 0x11
    # A fresh server waiting for its first client does not time out while idle.
    s = link.server
    link.clock.now += 100000
    assert s.next_event() == NEED_DATA
    assert s.state_name == "ServerWaitHandshake"
    # The TOFU pause has a timeout too.
    link = make_pair(trust_server=False)
    link.on_untrusted = lambda conn: None
    link.run()
    assert link.client.state_name == "WaitApproval"
    link.clock.now += 4000
    assert link.client.next_event() == RESET


def test_no_clock_means_no_timeouts():
    c = Connection(CLIENT, random=DetRandom(b"y"))
    c.data_to_send(bytearray(300))
    assert c.next_event() == NEED_DATA


# ---------------------------------------------------------------- API misuse

def test_send_rules():
    link = make_pair()
    out = bytearray(20000)
    raises(LocalProtocolError, link.client.send_data, b"early", out)
    link.run()
    raises(LocalProtocolError, link.client.send_data, b"x" * 16385, out)
    raises(LocalProtocolError, link.client.send_data, b"x" * 100, bytearray(100))
    raises(LocalProtocolError, link.client.data_to_send, bytearray(10)) \
        if link.client.data_to_send(bytearray(300)) else None
    assert link.client.send_data(b"x" * 16384, out) == 16412
    assert link.client.send_data(b"", out) == 28
    assert link.client.send_data(b"abcdef", out, 5, 3) == 31


def test_constructor_rejects_bad_arguments():
    raises(LocalProtocolError, Connection, 7)
    raises(LocalProtocolError, Connection, CLIENT, max_record=16385)
    raises(KeyFormatError, Connection, CLIENT, secret_key=b"short", random=DetRandom(b"z"))
    raises(KeyFormatError, Connection, CLIENT, authorized_keys=(b"x",), random=DetRandom(b"z"))


def test_msg_id_wraps_at_65536():
    link = make_pair().run()
    link.client._lid[:] = b"\xff\xff"
    link.server._rid[:] = b"\xff\xff"
    link.send("client", b"last")
    link.send("client", b"wrapped")
    assert _be16(link.frames["client"][-1], 2) == 0
    assert link.received["server"] == [b"last", b"wrapped"]


def test_nonce_counter_carries_big_endian():
    from ossuary_micro.connection import _step
    n = bytearray(b"\x00" * 10 + b"\x00\xff")
    _step(n)
    assert n == bytearray(b"\x00" * 10 + b"\x01\x00")
    n = bytearray(b"\xff" * 12)
    _step(n)
    assert n == bytearray(12)


def test_connection_counter_and_control_packets_match_wire():
    # connection.py steps its counters (the only copy: + 1 modulo 2**(8 * len), checked
    # against integer arithmetic) and writes Reset/Disconnect with a private copy of wire.py's
    # writer (a node never loads wire.py): the same results, into buffers full of 0xFF, so
    # that a byte left unwritten shows.
    from ossuary_micro import connection
    for start in (b"\x00" * 11 + b"\xff", b"\xff" * 12, b"\x01\x02", b"\xff\xff", b"\x00\xfe"):
        a = bytearray(start)
        v = int.from_bytes(start, "big")
        for k in range(1, 4):
            connection._step(a)
            want = (v + k) % (1 << (8 * len(start)))
            assert int.from_bytes(bytes(a), "big") == want, (start, k, a)
    for ptype in (wire.T_RESET, wire.T_DISCONNECT):
        for error in (0, 1):
            a = bytearray(b"\xff" * 16)
            b = bytearray(b"\xff" * 16)
            assert connection._put_control(a, 2, ptype, error) == wire.put_control(
                b, 2, ptype, error) == 12
            assert a == b, (ptype, error, a, b)


def test_handshake_reserved_bytes_zero_in_a_used_buffer():
    # The 5 reserved bytes of a handshake body are written as zeros whatever the output
    # buffer held before (on MicroPython a trailing pad in a pack_into format is not written).
    link = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    out = bytearray(b"\xff" * 300)
    assert link.client.data_to_send(out, 1) == 92
    assert bytes(out[9:17]) == b"\x54\x00\x01\x00\x00\x00\x00\x00"
    assert out[0] == 0xFF and out[93] == 0xFF


def test_small_order_keys_are_refused():
    assert wire.is_small_order_key(b"\x01" + b"\x00" * 31)
    assert wire.is_small_order_key(b"\x01" + b"\x00" * 30 + b"\x80")
    assert not wire.is_small_order_key(SERVER_PUB)


def test_master_keyless_encoding_accepted_by_unauth_server():
    # A [master] keyless client sends `01 00..` as its key; an UnauthenticatedServer
    # accepts it (and exposes no key).
    link = make_pair()
    out = bytearray(300)
    c, s = link.client, link.server
    n = c.data_to_send(out)
    nonce = bytes(out[8 + 40:8 + 52])   # the client's starting nonce, from its ClientHandshake
    s.receive_data(out[:n]); s.next_event()
    n = s.data_to_send(out)
    c.receive_data(out[:n]); c.next_event()
    n = c.data_to_send(out)
    b = get_backend()
    pt = b"\x01" + bytes(95)
    frame = bytearray(out[:n])
    b.aead_seal(bytes(c._key), nonce, pt, 0, 96, frame, 20)
    s.receive_data(frame)
    assert s.next_event() == HANDSHAKE_DONE
    assert s.remote_public_key is None


def test_close_wipes_secrets():
    link = make_pair(client_key=CLIENT_SEED).run()
    c = link.client
    c.close()
    assert c.closed
    assert bytes(c._key) == bytes(32)
    assert bytes(c._secret) == bytes(32)
    raises(LocalProtocolError, c.send_data, b"x", bytearray(100))


def test_no_random_source_fails_connection_creation():
    # Where the platform has no random source (the WebAssembly port has no os.urandom),
    # creating a connection fails with NoRandomSource: never a silent weak fallback.
    from ossuary_micro import rand, NoRandomSource
    saved = rand._urandom
    rand._urandom = None
    try:
        e = raises(NoRandomSource, Connection, CLIENT)
        assert "random" in str(e)
    finally:
        rand._urandom = saved
    # A source that returns the wrong length is refused as well.
    raises(OssuaryError, Connection, CLIENT, random=lambda n: b"\x01" * (n - 1))


def _feed_patterns(frame, nxt):
    # Whole; byte by byte; with the next packet's first bytes trailing.
    yield [frame]
    yield [frame[i:i + 1] for i in range(len(frame))]
    yield [frame + nxt[:7]]


def test_every_packet_fed_whole_bytewise_and_with_trailing_bytes():
    # Messages 1-3 and a data record, each to a receiver in the right state, fed three ways;
    # the receiver must reach the same state and report the same event every time.
    link, (m1, m2, m3) = _handshake_frames(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    out = bytearray(300)
    n = link.client.send_data(b"record", out)
    d1 = bytes(out[:n])
    for which, frame in ((1, m1), (2, m2), (3, m3), (4, d1)):
        results = []
        for pattern in _feed_patterns(frame, m1):
            fresh = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
            c, s = fresh.client, fresh.server
            assert c.data_to_send(out) == 92
            if which >= 2:
                s.receive_data(m1); s.next_event(); s.data_to_send(out)
            if which >= 3:
                c.receive_data(m2); c.next_event(); c.data_to_send(out); c.next_event()
            if which == 4:
                s.receive_data(m3); s.next_event()
            rx = c if which == 2 else s
            events = []
            for chunk in pattern:
                assert rx.receive_data(chunk) == len(chunk)
                ev = rx.next_event()
                if ev != NEED_DATA:
                    events.append(ev)
            results.append((events, rx.state_name,
                            bytes(rx.plaintext[:rx.data_len]) if which == 4 else None))
        assert results[0] == results[1] == results[2], (which, results)
        if which == 4:
            assert results[0][0] == [DATA] and results[0][2] == b"record"


# ---------------------------------------------------------------- hardening (issue 9)

def test_partial_packet_times_out_in_every_state():
    # Issue 9.3: a corrupted length field in the Encrypted state announced a body that never
    # comes. The receiver must not wait for ever: timeout_ms after it first saw the packet's
    # bytes it resets (and the session recovers by itself).
    link = make_pair().run()
    out = bytearray(64)
    n = link.client.send_data(b"reading", out)
    frame = bytearray(out[:n])
    frame[0] = 0x3F                         # body length 0x3F.. instead of 27: never arrives
    s = link.server
    s.receive_data(frame)
    assert s.next_event() == NEED_DATA
    link.clock.now += 3999
    assert s.next_event() == NEED_DATA
    link.clock.now += 1
    assert s.next_event() == RESET
    assert isinstance(s.error, RemoteProtocolError)
    assert s.error.reason == "partial packet timed out"
    link.run(rounds=40)
    assert link.established()
    link.send("client", b"after")
    assert link.received["server"][-1] == b"after"
    # A header cut short (fewer than 8 bytes) is bounded the same way.
    s.receive_data(b"\x00\x20\x00")
    assert s.next_event() == NEED_DATA
    link.clock.now += 4000
    assert s.next_event() == RESET


def test_slow_packet_within_timeout_is_delivered():
    # The bound is on the whole packet, counted from its first bytes: bytes trickling in
    # that complete it within timeout_ms are fine, and the next packet gets its own time.
    link = make_pair().run()
    out = bytearray(64)
    s = link.server
    for text in (b"one", b"two"):
        n = link.client.send_data(text, out)
        frame = bytes(out[:n])
        for i in range(n):
            s.receive_data(frame[i:i + 1])
            ev = s.next_event()
            link.clock.now += 3999 // n
        assert ev == DATA and bytes(s.plaintext[:s.data_len]) == text


class _FailingBackend:
    """The default backend with one method made to raise `exc` while `armed`."""

    def __init__(self, method, exc):
        self.inner = get_backend()
        self.name = self.inner.name
        self.method = method
        self.exc = exc
        self.armed = False

    def _call(self, name, args):
        if self.armed and name == self.method:
            raise self.exc
        return getattr(self.inner, name)(*args)

    def x25519(self, *a):
        return self._call("x25519", a)

    def x25519_base(self, *a):
        return self._call("x25519_base", a)

    def aead_seal(self, *a):
        return self._call("aead_seal", a)

    def aead_open(self, *a):
        return self._call("aead_open", a)

    def ed25519_public(self, *a):
        return self._call("ed25519_public", a)

    def ed25519_sign(self, *a):
        return self._call("ed25519_sign", a)

    def ed25519_verify(self, *a):
        return self._call("ed25519_verify", a)


def test_failed_send_data_consumes_nothing():
    # Issue 9.8: a read-only `out`, a failing seal or an exhausted heap raises an
    # OssuaryError and leaves msg_id and nonce where they were, so the next record is
    # accepted by the peer.
    from ossuary_micro import CryptoError, OutOfMemory
    for exc, expected in ((CryptoError("seal refused"), CryptoError),
                          (MemoryError(), OutOfMemory)):
        be = _FailingBackend("aead_seal", exc)
        link = make_pair(backend=be).run()
        c = link.client
        link.send("client", b"first")
        msg_id, nonce = bytes(c._lid), bytes(c._local_nonce)
        e = raises(LocalProtocolError, c.send_data, b"x", bytes(64))   # read-only out
        assert isinstance(e, OssuaryError)
        be.armed = True
        raises(expected, c.send_data, b"x", bytearray(64))
        be.armed = False
        assert (bytes(c._lid), bytes(c._local_nonce)) == (msg_id, nonce)
        link.send("client", b"second")
        assert link.received["server"] == [b"first", b"second"], link.events
        assert "RESET" not in link.events["server"]


def test_out_of_memory_in_handshake_closes_with_an_ossuary_error():
    # Issue 7, bad input: a MemoryError inside the library (here the key exchange) becomes
    # a closed connection whose error is OutOfMemory, never an escaping MemoryError.
    from ossuary_micro import OutOfMemory
    be = _FailingBackend("x25519", MemoryError())
    link = make_pair(backend=be)
    be.armed = True
    link.run()
    assert link.server.closed, link.server.state_name
    assert isinstance(link.server.error, OutOfMemory)
    be = _FailingBackend("x25519_base", MemoryError())
    be.armed = True
    e = raises(OutOfMemory, Connection, CLIENT, random=DetRandom(b"m"), backend=be)
    assert str(e) == "out of memory"


def test_ephemeral_secret_wiped_once_session_key_derived():
    # Issue 9.7: the ephemeral X25519 secret lives only until the session key exists.
    link = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER).run()
    assert link.established()
    for conn in (link.client, link.server):
        assert bytes(conn._eph_secret) == bytes(32)
        assert bytes(conn._key) != bytes(32)


def test_close_wipes_plaintext():
    # Issue 9.7: the last record's plaintext does not outlive the connection.
    link = make_pair().run()
    link.send("client", b"secret reading")
    s = link.server
    assert bytes(s.plaintext[:s.data_len]) == b"secret reading"
    s.close()
    assert s.data_len == 0
    assert bytes(s.plaintext) == bytes(len(s.plaintext))


def test_private_wire_constants_match_wire():
    # connection.py repeats wire.py's sizes and types as `_NAME = const(n)` (folded into the
    # bytecode on MicroPython, so only visible as attributes on CPython): they must agree.
    import sys
    if sys.implementation.name == "micropython":
        return
    from ossuary_micro import connection
    # wire.py keeps public only the names other modules use; the rest are `_NAME` there too.
    names = [n for n in dir(wire) if n.lstrip("_")[:1].isupper()
             and hasattr(connection, "_" + n.lstrip("_"))]
    assert len(names) >= 20, names
    for n in names:
        assert getattr(connection, "_" + n.lstrip("_")) == getattr(wire, n), n


def test_server1_constants_match_connection():
    # _server1.py (the server's handshake handlers, loaded by the first server connection)
    # keeps connection.py's states, roles, events and sizes as private consts of its own
    # (folded into its bytecode on MicroPython, so compared on CPython only).
    import sys
    if sys.implementation.name == "micropython":
        return
    from ossuary_micro import connection, _server1
    names = [n for n in dir(_server1) if n[:2] != "__" and n.startswith("_")
             and isinstance(getattr(_server1, n), int)]
    assert len(names) >= 14, names
    for n in names:
        assert getattr(_server1, n) == getattr(connection, n), n
    # ... and its handlers fill exactly the three server states the table leaves to it.
    Connection(AUTH_SERVER)
    for st in range(len(connection._STATES)):
        row = connection._STATES[st]
        waits = row[1] != 0 and st != connection._RESET_WAIT   # ResetWait: the parser's own
        assert (connection._RECV[st] is not None) == waits, row
        assert (connection._SEND[st] is not None) == (row[0] in (
            "ServerSendHandshake", "ClientSendHandshake", "ClientSendAuthentication",
            "Resetting", "Failing")), row


class _LaxBackend:
    """The real backend, but its Ed25519 verify accepts everything and its signatures can be
    made all-zero: what is left between a forged handshake and acceptance is then only the
    spec section 11 checks written at each signature check (connection.py for the server's
    signature, _server1.py for the client's)."""

    def __init__(self, real, zero_sig=False):
        self.real = real
        self.zero_sig = zero_sig

    def __getattr__(self, name):
        return getattr(self.real, name)

    def ed25519_verify(self, key, msg, sig):
        return True

    def ed25519_sign(self, seed, msg):
        return bytes(64) if self.zero_sig else self.real.ed25519_sign(seed, msg)


def test_section_11_checks_refuse_what_a_lax_verify_would_accept():
    small = b"\x01" + bytes(31)   # a small-order key (order 4)
    # (who forges, what) -> the side that must refuse, and its reason.
    cases = (("server", "zero signature", "client", "invalid server signature"),
             ("server", "zero challenge", "client", "invalid server signature"),
             ("server", "small-order key", "client", "invalid server signature"),
             ("client", "zero signature", "server", "invalid client signature"),
             ("client", "small-order key", "server", "invalid client signature"),
             (None, None, None, None))   # the control: nothing forged, the handshake completes
    for forger, what, refuser, reason in cases:
        link = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
        c, s = link.client, link.server
        for conn in (c, s):
            conn.backend = _LaxBackend(conn.backend)
        f = c if forger == "client" else s
        if what == "zero signature":
            f.backend.zero_sig = True
        elif what == "zero challenge":
            f._challenge = bytes(32)
        elif what == "small-order key":
            f.local_public_key = small
            if f is c:
                s._authorized = (small,)
        if forger is None:
            assert link.run().established(), link.events
            continue
        r = c if refuser == "client" else s
        for _ in range(20):   # up to the refusal: a reset that names the broken rule
            if r.reset_count or not link.step():
                break
        assert not link.established(), (forger, what)
        assert r.reset_count == 1 and isinstance(r.error, RemoteProtocolError), (forger, what)
        assert reason in str(r.error), (forger, what, r.error)
