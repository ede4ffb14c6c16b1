# Protocol 2's server side of the handshake: Connection2's handlers for message 1 (read),
# message 2 (write) and message 3 (read), as plain functions of the connection (`self`).
#
# Their own module so that a client, which never runs them, never has them on its heap (a
# board node is a client): connection2.py imports this module when the first server
# connection is made, and the import puts these functions into its state table's handler
# lists (at the end of this file).

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x
from .errors import CryptoError, ConnectionFailed
from .events import AUTH_SERVER, UNAUTH_SERVER, HANDSHAKE_DONE, UNTRUSTED_KEY
from .connection2 import _RECV, _SEND, _put_header

# connection2.py's states these handlers serve and move to (a test checks they agree).
_SERVER_WAIT_MSG1 = const(0)
_SERVER_SEND_MSG2 = const(1)
_SERVER_WAIT_MSG3 = const(2)
_WAIT_APPROVAL = const(6)
_ESTABLISHED = const(7)
# ... and wire2.py's sizes and type, as private consts too (not loading wire2.py and wire.py
# keeps their names off a board's heap; a test checks they agree).
_MSG1_LEN = const(32)
_MSG3_LEN = const(96)
_MSG3_KEYLESS_LEN = const(64)
_T2_MSG2 = const(0x0202)
_HEADER_LEN = const(8)


def _recv_msg1(self, buf, off, n, ptype):
    # -> e: exactly 32 bytes (the payload is empty; trailing bytes are an error).
    if n != _MSG1_LEN:
        return self._bad("message 1 has the wrong length")
    try:
        self._hs.read_message(memoryview(buf)[off:off + n])
    except CryptoError:
        return self._bad("message 1 rejected")
    self._enter(_SERVER_SEND_MSG2)
    return -1


def _send_msg2(self, out, off):
    try:
        msg, _ = self._hs.write_message(self.local_public_key)
    except CryptoError:
        # DH with the client's e gave zero (a low-order point): its fault, reset.
        self._bad("invalid ephemeral key")
        return self._send_reset(out, off)
    self._enter(_SERVER_WAIT_MSG3)
    # Framed as connection2's _send_msg frames the client's messages.
    m = self._local_msg_id
    self._local_msg_id = (m + 1) & 0xFFFF
    n = len(msg)
    _put_header(out, off, n, m, _T2_MSG2)
    out[off + _HEADER_LEN:off + _HEADER_LEN + n] = msg
    return _HEADER_LEN + n


def _recv_msg3(self, buf, off, n, ptype):
    # -> s, se + payload: the client's Ed25519 key, or nothing from a keyless client.
    if n != _MSG3_LEN and n != _MSG3_KEYLESS_LEN:
        return self._bad("message 3 has the wrong length")
    try:
        payload, pair = self._hs.read_message(memoryview(buf)[off:off + n])
    except CryptoError:
        return self._bad("handshake decryption failed")
    # Split(): c1 protects initiator (the client) -> responder (us), c2 the other way (Noise
    # 5.2). (The client's twin is connection2's _send_msg.)
    self._recv_cs, self._send_cs = pair
    self.handshake_hash = self._hs.get_handshake_hash()
    self._hs.wipe()
    self._sent_since_rekey = 0
    if len(payload) == 0:
        # Keyless client: encrypted and forward-secret, but nobody in particular.
        if self.role == AUTH_SERVER:
            return self._fail(ConnectionFailed("client is not authenticated"))
        self._enter(_ESTABLISHED)
        return HANDSHAKE_DONE
    key = self._peer_identity(payload)
    if key is None:
        return self._bad("client identity does not match its static key")
    self.remote_public_key = key
    if self.role == UNAUTH_SERVER or key in self._authorized:
        self._enter(_ESTABLISHED)
        return HANDSHAKE_DONE
    if self.tofu_clients:
        self._enter(_WAIT_APPROVAL)
        return UNTRUSTED_KEY
    # A proved identity we refuse: retrying cannot change it, so this is final (the
    # client, already established after message 3, sees a Disconnect: never a clean close).
    return self._fail(ConnectionFailed("client key not authorized"))


# Into connection2.py's handler lists, at the states its table leaves to this module (once:
# the first server connection imports it).
_RECV[_SERVER_WAIT_MSG1] = _recv_msg1
_SEND[_SERVER_SEND_MSG2] = _send_msg2
_RECV[_SERVER_WAIT_MSG3] = _recv_msg3
