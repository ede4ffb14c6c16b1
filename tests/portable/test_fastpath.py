# The record path is the same protocol whichever way a data packet goes: on CPython with the
# cryptography backend, through the host fast path (ossuary_micro/_record_host.py, issue 10);
# on MicroPython, through connection.py's general path. Data packets fed whole, byte by byte
# and with trailing data give the same events and plaintext; a tampered tag, a wrong msg_id or
# a bad length fall through to the general path, which resets; no unauthenticated plaintext is
# ever released. Portable: pytest and MicroPython.

from ossuary_micro import NEED_DATA, DATA, RESET, CLOSED, RemoteProtocolError
from ._pair import make_pair


def _pair():
    link = make_pair().run()
    assert link.established(), link.events
    return link


def _frames(link, records):
    # Client-side frames (bytes) of the given records, in order, not yet delivered.
    out = []
    for r in records:
        n = link.client.send_data(r, link._out)
        out.append(bytes(link._out[:n]))
    return out


def _events(conn):
    # Every event up to NEED_DATA, with the plaintext of each DATA.
    got = []
    while True:
        ev = conn.next_event()
        if ev == NEED_DATA:
            return got
        got.append(bytes(conn.plaintext[:conn.data_len]) if ev == DATA else ev)
        if ev == CLOSED:
            return got


def _general_path_off(conn):
    # Make the general path's packet parser fail loudly, so DATA events below can only come
    # from the fast path (an instance attribute shadows the method, on CPython and
    # MicroPython alike).
    def refuse():
        raise AssertionError("general path used")
    conn._parse_one = refuse


RECORDS = (b"first record", bytes(range(200)), b"", b"x" * 1000, b"last")


def _host_fast_path(conn):
    # True where the host record path serves this connection (CPython, cryptography backend).
    return type(conn).__module__.endswith("_record_host") and conn.backend.name == "cryptography"


def test_fed_whole_takes_the_fast_path():
    link = _pair()
    s = link.server
    if _host_fast_path(s):
        _general_path_off(s)        # elsewhere every packet takes the general path anyway
    for r, f in zip(RECORDS, _frames(link, RECORDS)):
        assert s.receive_data(f) == len(f)
        assert s.next_event() == DATA
        assert bytes(s.plaintext[:s.data_len]) == r
        assert s._in_start == 0 and s._in_end == 0      # consumed, buffer front-aligned


def test_fed_byte_by_byte():
    link = _pair()
    s = link.server
    for r, f in zip(RECORDS, _frames(link, RECORDS)):
        for i in range(len(f)):
            assert s.receive_data(f[i:i + 1]) == 1
            ev = s.next_event()
            if i < len(f) - 1:
                assert ev == NEED_DATA, (i, ev)
        assert ev == DATA
        assert bytes(s.plaintext[:s.data_len]) == r
        assert s.next_event() == NEED_DATA


def test_several_records_and_trailing_data_in_one_buffer():
    link = _pair()
    s = link.server
    frames = _frames(link, RECORDS)
    blob = b"".join(frames)
    cut = len(blob) - 3                     # the last frame arrives short by 3 bytes
    assert s.receive_data(blob[:cut]) == cut
    assert _events(s) == list(RECORDS[:-1])
    assert s.receive_data(blob[cut:]) == 3
    assert _events(s) == [RECORDS[-1]]
    # And the link still works both ways afterwards.
    link.send("server", b"reply")
    assert link.received["client"][-1] == b"reply"


def test_record_then_disconnect_in_one_buffer():
    link = _pair()
    f = _frames(link, (b"bye soon",))[0]
    link.client.disconnect()
    n = link.client.data_to_send(link._out)
    assert link.server.receive_data(f + bytes(link._out[:n]))
    assert _events(link.server) == [b"bye soon", CLOSED]


def _tampered(at):
    # A pair that has received one good record, and a frame whose byte `at` (from the end
    # when negative) is flipped.
    link = _pair()
    good, bad = _frames(link, (b"A" * 40, b"B" * 40))
    link.server.receive_data(good)
    assert _events(link.server) == [b"A" * 40]
    bad = bytearray(bad)
    bad[at] ^= 0x01
    return link, bytes(bad)


def test_tampered_tag_resets_and_releases_no_plaintext():
    for at in (-1, -16, 12, 12 + 39):       # last and first tag byte, first and last ciphertext
        link, bad = _tampered(at)
        s = link.server
        s.receive_data(bad)
        assert s.next_event() == RESET
        assert isinstance(s.error, RemoteProtocolError) and "decryption" in str(s.error)
        # The unauthenticated plaintext did not survive in the record buffer: it holds the
        # last good record (aead_open leaves it untouched) or zeros (a backend that decrypts
        # in place, pyca's decrypt_into on both paths, wipes it before reporting the bad tag).
        assert bytes(s.plaintext[:40]) in (b"A" * 40, bytes(40)), at
        # The session recovers through the reset, as on the general path.
        link.run()
        assert link.established()
        link.send("client", b"after")
        assert link.received["server"][-1] == b"after"


def test_wrong_msg_id_or_length_goes_to_the_general_path():
    # msg_id (bytes 2-3), data_len (8-9) and the packet type (5) each make the fast path
    # decline; the general path then resets with its own reason.
    for at, why in ((3, "Message ID"), (8, "data length"), (5, "non-encrypted")):
        link, bad = _tampered(at)
        s = link.server
        s.receive_data(bad)
        assert s.next_event() == RESET
        assert why in str(s.error), (at, s.error)
        assert bytes(s.plaintext[:40]) == b"A" * 40     # declined before any decryption
