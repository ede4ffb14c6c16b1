# Interoperability against an independent peer written only from the wire reference's
# checklist (spec section 10), with struct and pyca/cryptography, sharing no code with
# ossuary_micro. It plays libossuary's part: if our Connection and this peer disagree on a
# single byte or rule of sections 1-4, these tests fail.
#
# (A real libossuary build cannot be made here: no crates.io. This is the next best thing.)

import os
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA, DATA,
                           HANDSHAKE_DONE, UNTRUSTED_KEY, CLOSED, RESET, ConnectionClosed)

RAW = (Encoding.Raw, PublicFormat.Raw)
SERVER_SEED = bytes.fromhex("5029049762bda60771ca2914e383190ea09ed4b71af9c9593ea31c850fc4faa2")
CLIENT_SEED = bytes.fromhex("10866ec48a11f3c56d77a64b2f54aa066c0cb475d8c87d35b491eed6ac0bdebc")


def inc(nonce):
    # 96-bit big-endian counter, +1 mod 2^96 (spec 2.5).
    return ((int.from_bytes(nonce, "big") + 1) % (1 << 96)).to_bytes(12, "big")


class SpecPeer:
    """One side of protocol 1, exactly as the checklist says. Happy path plus control
    packets; it raises AssertionError on anything unexpected (it is a test oracle)."""

    def __init__(self, server, seed=None):
        self.server = server
        self.sign_key = ed25519.Ed25519PrivateKey.from_private_bytes(seed) if seed else None
        self.eph = x25519.X25519PrivateKey.generate()
        self.eph_pub = self.eph.public_key().public_bytes(*RAW)
        self.nonce = os.urandom(12)
        self.nonce0 = self.nonce
        self.challenge = os.urandom(32)
        self.local_id = 0
        self.remote_id = 0
        self.inbuf = b""

    # -- framing (checklist: header, msg_id) --
    def frame(self, ptype, body):
        f = struct.pack(">HHHH", len(body), self.local_id, ptype, 0) + body
        self.local_id = (self.local_id + 1) & 0xFFFF
        return f

    def packets(self, data):
        self.inbuf += data
        while len(self.inbuf) >= 8:
            blen, mid, ptype, _ = struct.unpack(">HHHH", self.inbuf[:8])
            if len(self.inbuf) < 8 + blen:
                break
            body = self.inbuf[8:8 + blen]
            self.inbuf = self.inbuf[8 + blen:]
            if ptype not in (0x10, 0x11):
                assert mid == self.remote_id, ("msg_id", mid, self.remote_id)
                self.remote_id = (mid + 1) & 0xFFFF
            yield ptype, body

    def seal(self, pt):
        ct = ChaCha20Poly1305(self.key).encrypt(self.nonce, pt, b"")
        self.nonce = inc(self.nonce)
        return struct.pack("<HH", len(pt), 16) + ct

    def open(self, sub):
        n, tag_len = struct.unpack("<HH", sub[:4])
        pt = ChaCha20Poly1305(self.key).decrypt(self.rnonce, bytes(sub[4:4 + n + 16]), b"")
        self.rnonce = inc(self.rnonce)
        return pt

    # -- handshake (checklist: bodies prefixed '<HB5x', signatures over 76 bytes) --
    def client_hello(self):
        return self.frame(1, struct.pack("<HB5x", 84, 1) + self.eph_pub + self.nonce
                          + self.challenge)

    def on_client_hello(self, body):
        inner, ver = struct.unpack("<HB", body[:3])
        assert (inner, ver) == (84, 1)
        self.peer_eph, self.rnonce, self.peer_challenge = body[8:40], body[40:52], body[52:84]
        self.peer_nonce0 = self.rnonce
        self.key = self.eph.exchange(x25519.X25519PublicKey.from_public_bytes(self.peer_eph))
        sig = self.sign_key.sign(self.eph_pub + self.nonce + self.peer_challenge)
        pt = self.sign_key.public_key().public_bytes(*RAW) + self.challenge + sig
        return self.frame(2, struct.pack("<HB5x", 200, 1) + self.eph_pub + self.nonce
                          + self.seal(pt))

    def on_server_hello(self, body):
        inner, ver = struct.unpack("<HB", body[:3])
        assert (inner, ver) == (200, 1)
        assert body[52:56] == b"\x80\x00\x10\x00"
        peer_eph, self.rnonce = body[8:40], body[40:52]
        self.key = self.eph.exchange(x25519.X25519PublicKey.from_public_bytes(peer_eph))
        ns = self.rnonce
        pt = self.open(body[52:])
        server_key, chs, sig = pt[:32], pt[32:64], pt[64:128]
        ed25519.Ed25519PublicKey.from_public_bytes(server_key).verify(
            sig, peer_eph + ns + self.challenge)
        self.peer_key = server_key
        if self.sign_key is None:
            pt = bytes(96)                                      # keyless, 0.5.1 encoding
        else:
            pt = (self.sign_key.public_key().public_bytes(*RAW)
                  + self.sign_key.sign(self.eph_pub + self.nonce0 + chs))
        return self.frame(3, struct.pack("<HB5x", 124, 1) + self.seal(pt))

    def on_client_auth(self, body):
        inner, ver = struct.unpack("<HB", body[:3])
        assert (inner, ver) == (124, 1)
        assert body[8:12] == b"\x60\x00\x10\x00"
        pt = self.open(body[8:])
        key, sig = pt[:32], pt[32:]
        if any(sig):
            ed25519.Ed25519PublicKey.from_public_bytes(key).verify(
                sig, self.peer_eph + self.peer_nonce0 + self.challenge)
        self.peer_key = key

    def data(self, payload):
        return self.frame(0x20, self.seal(payload))

    def on_data(self, body):
        return self.open(body)

    def control(self, ptype, error):
        # Checklist: '<HBB' with 4 in the first field; Rust writes msg_id 0.
        f = struct.pack(">HHHH", 4, 0, ptype, 0) + struct.pack("<HBB", 4, 1 if error else 0, 0)
        return f


def drive(conn, pending=b""):
    """Feed `pending` (as much as the bounded input buffer takes at a time) and run our
    connection until it wants input: returns (bytes it wrote, events)."""
    out = bytearray(conn.max_packet)
    wrote, events = b"", []
    while True:
        if pending:
            pending = pending[conn.receive_data(pending):]
        ev = conn.next_event()
        if ev == DATA:
            events.append(("DATA", bytes(conn.data)))
        elif ev != NEED_DATA and not (ev == CLOSED and CLOSED in events):
            events.append(ev)
            if ev == UNTRUSTED_KEY:
                conn.accept_key()
        n = conn.data_to_send(out)
        wrote += bytes(out[:n])
        if ev in (NEED_DATA, CLOSED) and not n and not pending:
            return wrote, events


@pytest.mark.parametrize("client_key", [None, CLIENT_SEED])
def test_our_client_against_spec_server(client_key):
    peer = SpecPeer(server=True, seed=SERVER_SEED)
    server_pub = ed25519.Ed25519PrivateKey.from_private_bytes(SERVER_SEED).public_key() \
        .public_bytes(*RAW)
    conn = Connection(CLIENT, secret_key=client_key, authorized_keys=[server_pub])
    wrote, _ = drive(conn)
    (ptype, body), = peer.packets(wrote)
    assert ptype == 1
    conn.receive_data(peer.on_client_hello(body))
    wrote, events = drive(conn)
    assert events == [HANDSHAKE_DONE]
    (ptype, body), = peer.packets(wrote)
    assert ptype == 3
    peer.on_client_auth(body)
    if client_key is None:
        assert peer.peer_key == bytes(32)            # 0.5.1 keyless encoding
    else:
        assert peer.peer_key == conn.local_public_key
    # Data both ways, several records in one buffer.
    out = bytearray(conn.max_packet)
    sent = b"".join(bytes(out[:conn.send_data(m, out)]) for m in (b"one", b"", b"three"))
    got = [peer.on_data(b) for t, b in peer.packets(sent)]
    assert got == [b"one", b"", b"three"]
    _, events = drive(conn, peer.data(b"hello from the reference") + peer.data(b"x" * 16384))
    assert events == [("DATA", b"hello from the reference"), ("DATA", b"x" * 16384)]
    # A clean Disconnect from the reference is echoed with error=0 (spec 4.5).
    conn.receive_data(peer.control(0x10, False))
    wrote, events = drive(conn)
    assert events == [CLOSED] and isinstance(conn.error, ConnectionClosed)
    assert wrote == struct.pack(">HHHH", 4, 0, 0x10, 0) + b"\x04\x00\x00\x00"


@pytest.mark.parametrize("role", [AUTH_SERVER, UNAUTH_SERVER])
def test_our_server_against_spec_client(role):
    peer = SpecPeer(server=False, seed=CLIENT_SEED)
    client_pub = ed25519.Ed25519PrivateKey.from_private_bytes(CLIENT_SEED).public_key() \
        .public_bytes(*RAW)
    conn = Connection(role, secret_key=SERVER_SEED, authorized_keys=[client_pub])
    conn.receive_data(peer.client_hello())
    wrote, _ = drive(conn)
    (ptype, body), = peer.packets(wrote)
    assert ptype == 2 and len(body) == 200
    conn.receive_data(peer.on_server_hello(body))
    _, events = drive(conn)
    assert events == [HANDSHAKE_DONE]
    assert peer.peer_key == conn.local_public_key
    out = bytearray(conn.max_packet)
    (t, b), = peer.packets(bytes(out[:conn.send_data(b"from ours", out)]))
    assert t == 0x20 and peer.on_data(b) == b"from ours"
    conn.receive_data(peer.data(b"from reference"))
    _, events = drive(conn)
    assert events == [("DATA", b"from reference")]
    # The reference resets (e.g. after its own error): we answer Reset with msg_id 0 and
    # `len` 4, and wait for a new ClientHandshake from msg_id 0 (spec 4.4).
    conn.receive_data(peer.control(0x11, True))
    wrote, events = drive(conn)
    assert events == [RESET]
    assert wrote == struct.pack(">HHHH", 4, 0, 0x11, 0) + b"\x04\x00\x01\x00"
    peer2 = SpecPeer(server=False, seed=CLIENT_SEED)
    peer2.challenge = peer.challenge
    conn.receive_data(peer2.client_hello())
    wrote, _ = drive(conn)
    (ptype, body), = peer2.packets(wrote)
    conn.receive_data(peer2.on_server_hello(body))
    _, events = drive(conn)
    assert events == [HANDSHAKE_DONE]
