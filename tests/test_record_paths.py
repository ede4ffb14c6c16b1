# The record path on the cryptography backend (issue 10: aead_record's one AEAD context per
# session key, windows kept between records, decrypt_into wiped on a bad tag) is the same
# protocol as the generic path every other backend takes (aead_seal / aead_open): with the
# same random sources both pairs derive the same session, so every frame must be the same
# bytes, and each pair must read the other's frames. A bad tag releases no plaintext.

import pytest

pytest.importorskip("cryptography")

from ossuary_micro import AUTH_SERVER, DATA, NEED_DATA, RESET, RemoteProtocolError  # noqa: E402
from ossuary_micro.crypto import get_backend  # noqa: E402

from tests.portable._pair import make_pair, CLIENT_SEED  # noqa: E402

SIZES = (0, 1, 63, 64, 64, 1000, 16384, 16384, 5, 64)   # repeats reuse the cached windows


def _pair(backend):
    link = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER,
                     backend=get_backend(backend), seed=b"record-paths").run()
    assert link.established()
    return link


def _read(conn, frame):
    assert conn.receive_data(frame) == len(frame)
    assert conn.next_event() == DATA
    got = bytes(conn.plaintext[:conn.data_len])
    assert conn.next_event() == NEED_DATA
    return got


def test_fast_and_generic_paths_write_the_same_bytes_and_read_each_other():
    fast, slow = _pair("cryptography"), _pair("pure")
    assert fast.client._key == slow.client._key          # the same session, two backends
    out_f, out_s = bytearray(16412), bytearray(16412)
    for i, size in enumerate(SIZES):
        data = bytes((i * 7 + k) & 0xFF for k in range(size))
        frames = []
        for a, b in ((fast.client, slow.client), (fast.server, slow.server)):
            n = a.send_data(data, out_f)
            assert b.send_data(data, out_s) == n == size + 28
            assert out_f[:n] == out_s[:n], size
            frames.append(bytes(out_f[:n]))
        # Each backend's receivers open the frames (the same bytes from either).
        to_server, to_client = frames
        assert _read(slow.server, to_server) == data
        assert _read(fast.server, to_server) == data
        assert _read(fast.client, to_client) == data
        assert _read(slow.client, to_client) == data


def test_bad_tag_on_the_fast_path_releases_no_plaintext():
    link = _pair("cryptography")
    c, s = link.client, link.server
    out = bytearray(200)
    for k in range(3):                  # same size each time: the cached windows are in use
        n = c.send_data(b"A" * 40, out)
        assert _read(s, bytes(out[:n])) == b"A" * 40
    for at in (12, 12 + 39, n - 16, n - 1):     # first/last ciphertext byte, first/last tag byte
        n = c.send_data(b"B" * 40, out)
        bad = bytearray(out[:n])
        bad[at] ^= 0x20
        s.receive_data(bad)
        assert s.next_event() == RESET
        assert isinstance(s.error, RemoteProtocolError) and "decryption" in str(s.error)
        # decrypt_into wrote the unauthenticated plaintext before the tag failed: wiped.
        assert bytes(s.plaintext[:40]) == bytes(40), at
        assert b"B" not in bytes(s.plaintext)
        link.run()                      # the reset's re-handshake, then on as before
        assert link.established()
        c, s = link.client, link.server
        n = c.send_data(b"A" * 40, out)
        assert _read(s, bytes(out[:n])) == b"A" * 40


def test_send_data_keeps_out_usable_and_releases_a_replaced_buffer():
    # The pyca seal keeps its window on the last `out`; another buffer releases it.
    link = _pair("cryptography")
    a, b = bytearray(100), bytearray(100)
    link.client.send_data(b"x" * 10, a)
    link.client.send_data(b"x" * 10, b)
    a.extend(b"resizable again")
    n = link.client.send_data(b"y" * 10, a)
    assert n == 38
