# Protocol 1's server side of the handshake: Connection's handlers for ClientHandshake (read),
# ServerHandshake (write) and ClientAuthentication (read), as plain functions of the
# connection (`self`).
#
# Their own module so that a client, which never runs them, never has them on its heap (a
# board node is a client), as _server2.py does for protocol 2: connection.py imports this
# module when the first server connection is made, and the import puts these functions into
# its state table's handler lists (at the end of this file).

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x
from struct import pack_into as _pack_into

from .errors import CryptoError
from .keys import is_small_order_key as _is_small_order_key
from .connection import _check_handshake, _step, _RECV, _SEND

# connection.py's states, roles, events, packet type and sizes these handlers use, as private
# consts (folded into the bytecode on MicroPython; tests/portable/test_connection.py checks
# they agree with connection.py's).
_SERVER_WAIT_HANDSHAKE = const(0)
_SERVER_SEND_HANDSHAKE = const(1)
_SERVER_WAIT_AUTH = const(2)
_WAIT_APPROVAL = const(6)
_ENCRYPTED = const(7)
_UNAUTH_SERVER = const(2)
_HANDSHAKE_DONE = const(1)
_UNTRUSTED_KEY = const(2)
_T_SERVER_HANDSHAKE = const(0x2)
_HEADER_LEN = const(8)
_CLIENT_HS_LEN = const(84)
_SERVER_HS_LEN = const(200)
_CLIENT_AUTH_LEN = const(124)
_CLIENT_AUTH_PT_LEN = const(96)


def _recv_client_handshake(self, buf, off, n):
    # Spec 2.2: ClientHandshake, server side.
    why = _check_handshake(buf, off, n, _CLIENT_HS_LEN)
    if why:
        return self._bad(why)
    peer_eph = bytes(buf[off + 8:off + 40])
    self._remote_nonce[:] = buf[off + 40:off + 52]
    # Kept for checking the client's signature in message 3: pubC || Nc || chS.
    self._peer_signed_prefix = peer_eph + bytes(self._remote_nonce)
    self._peer_challenge = bytes(buf[off + 52:off + 84])
    if not self._derive_key(peer_eph):
        return self._bad("invalid ephemeral key")
    self._enter(_SERVER_SEND_HANDSHAKE)
    return -1


def _send_server_handshake(self, out, off):
    # Spec 2.3: clear ephemeral and nonce, then {key, challenge, signature} sealed under the
    # session key with our starting nonce.
    # The outer header and handshake body prefix as connection.py's _send_client writes them.
    m = self._lid
    _pack_into(">HBBHxxBBBxxxxB", out, off, _SERVER_HS_LEN, m[0], m[1], _T_SERVER_HANDSHAKE,
               _SERVER_HS_LEN & 0xFF, _SERVER_HS_LEN >> 8, 1, 0)
    _step(m)
    body = off + _HEADER_LEN
    out[body + 8:body + 40] = self._eph_public
    out[body + 40:body + 52] = self._local_nonce
    self._seal_signed(bytes(self._challenge), out, body + 52)
    self._enter(_SERVER_WAIT_AUTH)
    return _HEADER_LEN + _SERVER_HS_LEN


def _recv_client_auth(self, buf, off, n):
    # Spec 2.4: ClientAuthentication, server side.
    why = _check_handshake(buf, off, n, _CLIENT_AUTH_LEN, _CLIENT_AUTH_PT_LEN)
    if why:
        return self._bad(why)
    pt = bytearray(_CLIENT_AUTH_PT_LEN)
    try:
        self.backend.aead_open(self._key, self._remote_nonce, buf, off + 12,
                               _CLIENT_AUTH_PT_LEN, pt, 0)
    except CryptoError:
        return self._bad("handshake decryption failed")
    _step(self._remote_nonce)
    if self.role == _UNAUTH_SERVER:
        # No signature check, and we do not expose the unverified key (spec 8.2.13).
        self._enter(_ENCRYPTED)
        return _HANDSHAKE_DONE
    client_key = bytes(pt[0:32])
    sig = bytes(pt[32:96])
    signed = self._peer_signed_prefix + bytes(self._challenge)
    # Spec 2.4 with 2.3's checks plus section 11, as connection.py checks the server's: an
    # all-zero challenge or signature and a small-order key are refused.
    if not (any(self._challenge) and any(sig) and not _is_small_order_key(client_key)
            and self.backend.ed25519_verify(client_key, signed, sig)):
        return self._bad("invalid client signature")
    self.remote_public_key = client_key
    if client_key in self._authorized:
        self._enter(_ENCRYPTED)
        return _HANDSHAKE_DONE
    if self.tofu_clients:
        self._enter(_WAIT_APPROVAL)
        return _UNTRUSTED_KEY
    return self._bad("client key not authorized")


# Into connection.py's handler lists, at the states its table leaves to this module (once:
# the first server connection imports it).
_RECV[_SERVER_WAIT_HANDSHAKE] = _recv_client_handshake
_SEND[_SERVER_SEND_HANDSHAKE] = _send_server_handshake
_RECV[_SERVER_WAIT_AUTH] = _recv_client_auth
