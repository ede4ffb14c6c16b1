"""Protocol 2 against an independent Noise implementation: the `noiseprotocol` package plays
the peer at the Noise-message level, as client and as server, with our framing around it.

Also the identity map against pyca/cryptography (the X25519 public key pyca derives from the
converted secret is the converted Ed25519 public key) on many random seeds."""

import os

import pytest

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from noise.connection import NoiseConnection, Keypair

from ossuary_micro import (CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA, HANDSHAKE_DONE,
                           UNTRUSTED_KEY, DATA, CLOSED, get_backend, available_backends)
from ossuary_micro import wire, wire2
from ossuary_micro.errors import ConnectionClosed, RemoteProtocolError
from ossuary_micro.crypto.ed2curve import ed25519_sk_to_x25519, ed25519_pk_to_x25519
from ossuary_micro.connection2 import Connection2, END_OF_STREAM


def _raw(pub):
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.mark.parametrize("backend", available_backends())
def test_identity_map_matches_pyca(backend):
    b = get_backend(backend)
    for _ in range(200 if backend == "cryptography" else 10):
        seed = os.urandom(32)
        ed_pub = _raw(Ed25519PrivateKey.from_private_bytes(seed).public_key())
        x_sec = bytes(ed25519_sk_to_x25519(seed, b.sha512))
        x_pub = _raw(X25519PrivateKey.from_private_bytes(x_sec).public_key())
        assert ed25519_pk_to_x25519(ed_pub) == x_pub


class NoisePeer:
    """noiseprotocol's XX behind protocol 2's framing: header, msg_id, records with the header
    as associated data, payloads carrying the Ed25519 identity."""

    def __init__(self, initiator, seed):
        self.seed = seed
        self.ed_pub = _raw(Ed25519PrivateKey.from_private_bytes(seed).public_key())
        self.nc = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_SHA256")
        self.nc.set_as_initiator() if initiator else self.nc.set_as_responder()
        self.nc.set_prologue(wire2.PROLOGUE)
        import hashlib
        self.nc.set_keypair_from_private_bytes(
            Keypair.STATIC, bytes(ed25519_sk_to_x25519(seed, lambda d: hashlib.sha512(d).digest())))
        self.nc.start_handshake()
        self.tx_id = 0
        self.rx_id = 0

    def frame(self, ptype, body):
        hdr = bytearray(8)
        wire.put_header(hdr, 0, len(body), self.tx_id, ptype)
        self.tx_id += 1
        return bytes(hdr) + body

    def unframe(self, data, ptype):
        assert wire.be16(data, 0) == len(data) - 8
        assert wire.be16(data, 2) == self.rx_id
        assert wire.be16(data, 4) == ptype
        self.rx_id += 1
        return data[8:]

    def record(self, ptype, plaintext):
        hdr = bytearray(8)
        wire.put_header(hdr, 0, len(plaintext) + 16, self.tx_id, ptype)
        self.tx_id += 1
        ct = self.nc.noise_protocol.cipher_state_encrypt.encrypt_with_ad(bytes(hdr), plaintext)
        return bytes(hdr) + ct

    def open_record(self, data):
        ptype = wire.be16(data, 4)
        assert wire.be16(data, 2) == self.rx_id
        self.rx_id += 1
        pt = self.nc.noise_protocol.cipher_state_decrypt.decrypt_with_ad(bytes(data[:8]), data[8:])
        return ptype, pt


def _drive(conn, data=b""):
    # Feed bytes, collect events until NEED_DATA, return (events, bytes conn wants to send).
    out = bytearray(400)
    conn.receive_data(data)
    events, sent = [], b""
    while True:
        ev = conn.next_event()
        if ev == UNTRUSTED_KEY:
            conn.accept_key()
        n = conn.data_to_send(out)
        if n:
            sent += bytes(out[:n])
        if ev == NEED_DATA and not n:
            return events, sent
        if ev != NEED_DATA:
            events.append(ev)
        if ev == CLOSED:
            return events, sent


SEED_A = bytes(range(32))
SEED_B = bytes(range(32, 64))


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("client_key", [SEED_A, None], ids=["keyed", "keyless"])
def test_noiseprotocol_as_server(backend, client_key):
    srv = NoisePeer(False, SEED_B)
    c = Connection2(CLIENT, secret_key=client_key, authorized_keys=(srv.ed_pub,),
                    backend=get_backend(backend), rekey_after=2)
    _, m1 = _drive(c)
    srv.nc.read_message(srv.unframe(m1, wire2.T2_MSG1))
    m2 = srv.frame(wire2.T2_MSG2, srv.nc.write_message(srv.ed_pub))
    events, m3 = _drive(c, m2)
    assert events == [HANDSHAKE_DONE] and c.remote_public_key == srv.ed_pub
    payload = srv.nc.read_message(srv.unframe(m3, wire2.T2_MSG3))
    assert payload == (c.local_public_key if client_key else b"")
    assert srv.nc.handshake_finished
    assert srv.nc.get_handshake_hash() == c.handshake_hash
    if client_key:
        # Our Noise static key is the X25519 form of the identity we announced.
        assert ed25519_pk_to_x25519(payload) == c._static.public
    # Records both ways, a REKEY every 2 records from our side, END and an authenticated CLOSE.
    out = bytearray(400)
    got = []
    for i in range(5):
        n = c.send_data(b"reading %d" % i, out)
        buf = bytes(out[:n])
        while buf:
            k = 8 + wire.be16(buf, 0)
            ptype, pt = srv.open_record(buf[:k])
            if ptype == wire2.T2_REKEY:
                srv.nc.noise_protocol.cipher_state_decrypt.rekey()
            else:
                got.append((ptype, pt))
            buf = buf[k:]
    assert got == [(wire2.T2_DATA, b"reading %d" % i) for i in range(5)]
    events, _ = _drive(c, srv.record(wire2.T2_DATA, b"ack") + srv.record(wire2.T2_END, b""))
    assert events == [DATA, END_OF_STREAM] and c.remote_ended
    events, _ = _drive(c, srv.record(wire2.T2_CLOSE, b""))
    assert events == [CLOSED] and isinstance(c.error, ConnectionClosed)


@pytest.mark.parametrize("backend", available_backends())
def test_noiseprotocol_as_client(backend):
    cli = NoisePeer(True, SEED_A)
    s = Connection2(AUTH_SERVER, secret_key=SEED_B, authorized_keys=(cli.ed_pub,),
                    backend=get_backend(backend))
    events, m2 = _drive(s, cli.frame(wire2.T2_MSG1, cli.nc.write_message(b"")))
    assert events == []
    payload = cli.nc.read_message(cli.unframe(m2, wire2.T2_MSG2))
    assert payload == s.local_public_key
    assert ed25519_pk_to_x25519(payload) == cli.nc.noise_protocol.handshake_state.rs.public_bytes
    m3 = cli.frame(wire2.T2_MSG3, cli.nc.write_message(cli.ed_pub))
    # Message 3 and the first record in one read, as a real client sends them.
    events, _ = _drive(s, m3 + cli.record(wire2.T2_DATA, b"hello"))
    assert events == [HANDSHAKE_DONE, DATA] and bytes(s.data) == b"hello"
    assert s.remote_public_key == cli.ed_pub
    assert cli.nc.get_handshake_hash() == s.handshake_hash
    out = bytearray(400)
    n = s.send_data(b"welcome", out)
    assert cli.open_record(bytes(out[:n])) == (wire2.T2_DATA, b"welcome")
    # A rekey announced by the peer: our receiving side follows it.
    events, _ = _drive(s, cli.record(wire2.T2_REKEY, b""))
    cli.nc.noise_protocol.cipher_state_encrypt.rekey()
    events, _ = _drive(s, cli.record(wire2.T2_DATA, b"after rekey"))
    assert events == [DATA] and bytes(s.data) == b"after rekey"
    # A record whose header was changed in flight fails the session (header is the AD).
    rec = bytearray(cli.record(wire2.T2_DATA, b"x"))
    rec[5] = wire2.T2_END & 0xFF
    events, sent = _drive(s, bytes(rec))
    assert events == [CLOSED] and isinstance(s.error, RemoteProtocolError)
    assert sent[5] == 0x10 and sent[10] == 1          # a clear Disconnect with the error flag


@pytest.mark.parametrize("backend", available_backends())
def test_noiseprotocol_client_unknown_key_tofu(backend):
    # An unknown but proved client key: refused without tofu_clients, UNTRUSTED_KEY with it.
    for tofu in (False, True):
        cli = NoisePeer(True, SEED_A)
        s = Connection2(AUTH_SERVER, secret_key=SEED_B, backend=get_backend(backend),
                        tofu_clients=tofu)
        _, m2 = _drive(s, cli.frame(wire2.T2_MSG1, cli.nc.write_message(b"")))
        cli.nc.read_message(cli.unframe(m2, wire2.T2_MSG2))
        s.receive_data(cli.frame(wire2.T2_MSG3, cli.nc.write_message(cli.ed_pub)))
        ev = s.next_event()
        if tofu:
            assert ev == UNTRUSTED_KEY and s.remote_public_key == cli.ed_pub
            s.accept_key()
            assert s.next_event() == HANDSHAKE_DONE
        else:
            assert ev == CLOSED and "not authorized" in str(s.error)


def test_noiseprotocol_peer_with_a_mismatched_identity_is_refused():
    # A peer whose payload names a key that is not the X25519 form of its static key (here:
    # someone else's Ed25519 key) is caught, although every tag verifies.
    cli = NoisePeer(True, SEED_A)
    other = _raw(Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key())
    s = Connection2(AUTH_SERVER, secret_key=SEED_B, authorized_keys=(other,))
    _, m2 = _drive(s, cli.frame(wire2.T2_MSG1, cli.nc.write_message(b"")))
    cli.nc.read_message(cli.unframe(m2, wire2.T2_MSG2))
    events, _ = _drive(s, cli.frame(wire2.T2_MSG3, cli.nc.write_message(other)))
    assert not s.established and s.remote_public_key is None
    assert "identity does not match" in str(s.error)
