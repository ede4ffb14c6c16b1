# The Ossuary connection: wire protocol 1 as a sans-I/O state machine (spec section 4).
#
# Bytes in (`receive_data`), events out (`next_event`), outgoing bytes written into a buffer
# the caller owns (`data_to_send`, `send_data`). Nothing here blocks, reads a clock of its
# own, or calls user code: time comes from the `clock` callable the caller passes in.
#
# Rules of the state machine (the table `_STATES` below owns them):
#  * Every state either waits for exactly one packet type (`expects`), or has one packet to
#    write (`sends`), or does neither (paused/terminal). A packet of any other type in a
#    waiting state is a protocol error: a missing entry *is* the error.
#  * Reset (0x11) and Disconnect (0x10) are handled the same way in every waiting state and
#    are exempt from the msg_id check (spec 1.4). In ResetWait everything but Reset is
#    dropped (spec 4.4 step 4).
#  * Recoverable errors run the internal reset (spec 4.4): fresh ephemeral key and nonce,
#    msg_ids to 0, buffered input discarded, reset_count + 1, then Resetting(initiator).
#    The `max_resets`-th reset in the object's life becomes a permanent failure instead.
#  * Permanent errors (oversized packet, Disconnect, reset limit, local disconnect) go to
#    Failing: the next `data_to_send` writes Disconnect and the state becomes Failed.
#
# Deliberate differences from libossuary 0.5.1 (spec section 11): every length is checked
# before use; a data-phase decryption failure resets; wrong versions reset; an
# UnauthenticatedServer does not expose the client's unverified key; small-order peer keys
# are refused; ResetWait and the TOFU pause time out; a fresh server waiting for its first
# ClientHandshake does not time out until bytes of a packet have arrived.

from struct import pack_into as _pack_into

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from .errors import (OssuaryError, CryptoError, LocalProtocolError, RemoteProtocolError,
                     ConnectionReset, ConnectionFailed, ConnectionClosed, OutOfMemory)
from .keys import check_key as _check_key, is_small_order_key as _is_small_order_key
from .crypto import aead_record as _aead_record

# copy_into(dst, doff, src, soff, n) without allocating: a right-hand slice allocates on
# MicroPython, so the data path uses viper there; a MicroPython without viper (the
# WebAssembly port) copies byte by byte, still allocation-free. CPython takes
# _record_host.py's memoryview copy instead (put in place by _host.py; the end of this file).
try:
    from ._viper_copy import copy_into
except (ImportError, SyntaxError, NotImplementedError, ValueError):
    def copy_into(dst, doff, src, soff, n):
        for i in range(n):
            dst[doff + i] = src[soff + i]

# wire.py's sizes and packet types, as private constants of this module: MicroPython folds
# a `_NAME = const(n)` into the bytecode, where `wire.NAME` is a module attribute looked up at
# run time (and a name string in the .mpy). tests/portable/test_connection.py checks that
# they equal wire's. This module does not import wire.py at all (its few functions that a
# connection needs are private copies at the end of this file, checked against wire's by the
# same tests): on a board every module loaded is heap, and each of its names stays interned.
_T_CLIENT_HANDSHAKE = const(0x1)
_T_SERVER_HANDSHAKE = const(0x2)
_T_CLIENT_AUTH = const(0x3)
_T_DISCONNECT = const(0x10)
_T_RESET = const(0x11)
_T_DATA = const(0x20)
_PROTOCOL_VERSION = const(1)
_HEADER_LEN = const(8)
_SUB_HEADER_LEN = const(4)
_TAG_LEN = const(16)
_DATA_OVERHEAD = const(28)
_KEY_LEN = const(32)
_NONCE_LEN = const(12)
_CHALLENGE_LEN = const(32)
_CLIENT_HS_LEN = const(84)
_SERVER_HS_LEN = const(200)
_CLIENT_AUTH_LEN = const(124)
_SERVER_HS_PT_LEN = const(128)
_CLIENT_AUTH_PT_LEN = const(96)
_RESET_BODY_LEN = const(4)
_MAX_RECORD = const(16384)
_MAX_CONTROL_PACKET = const(208)
_REFERENCE_MAX_BODY = const(16404)

# --- Roles and events: the public names are events.py's (both protocols share them) ---
_CLIENT = const(0)
_AUTH_SERVER = const(1)
_UNAUTH_SERVER = const(2)
_NEED_DATA = const(0)
_HANDSHAKE_DONE = const(1)
_UNTRUSTED_KEY = const(2)
_DATA = const(3)
_RESET = const(4)
_CLOSED = const(5)

# --- States (spec 4.1) ---
_SERVER_WAIT_HANDSHAKE = const(0)
_SERVER_SEND_HANDSHAKE = const(1)
_SERVER_WAIT_AUTH = const(2)
_CLIENT_SEND_HANDSHAKE = const(3)
_CLIENT_WAIT_HANDSHAKE = const(4)
_CLIENT_SEND_AUTH = const(5)
_WAIT_APPROVAL = const(6)      # ClientWaitServerApproval, and its server-side twin
_ENCRYPTED = const(7)
_RESETTING = const(8)          # Resetting(initiator); the flag is self._initiator
_RESET_WAIT = const(9)
_FAILING = const(10)
_FAILED = const(11)

# The state table: name, packet type expected (0: none), method that handles it, method
# that writes this state's packet (None: nothing to send), whether the state has a timeout.
# The three server states' handlers (marked "_server1.py" below; None here) are in
# _server1.py, which the first server connection imports (its import puts them into _RECV and
# _SEND): a client never has them, nor their names, on its heap.
_STATES = (
    ("ServerWaitHandshake", _T_CLIENT_HANDSHAKE, None, None, True),  # _server1.py receives
    ("ServerSendHandshake", 0, None, None, False),                   # _server1.py sends
    ("ServerWaitAuthentication", _T_CLIENT_AUTH, None, None, True),  # _server1.py receives
    ("ClientSendHandshake", 0, None, "_send_client", False),
    ("ClientWaitHandshake", _T_SERVER_HANDSHAKE, "_recv_server_handshake", None, True),
    ("ClientSendAuthentication", 0, None, "_send_client", False),
    ("WaitApproval", 0, None, None, True),
    ("Encrypted", _T_DATA, "_recv_data", None, False),
    ("Resetting", 0, None, "_send_reset", False),
    ("ResetWait", _T_RESET, None, None, True),
    ("Failing", 0, None, "_send_disconnect", False),
    ("Failed", 0, None, None, False),
)

_TICKS_MASK = const(0x3FFFFFFF)   # clock differences modulo 2**30 (MicroPython ticks_ms)


class Connection:
    """One end of an Ossuary channel, speaking libossuary 0.5.1's wire protocol.

    See docs/design.md for the full contract. Raises only OssuaryError subclasses:
    KeyFormatError for bad keys, CryptoError/NoRandomSource when the backend or random
    source is unusable, LocalProtocolError for API misuse. Protocol errors caused by the
    peer never raise: they surface as RESET or CLOSED events with `error` set.
    """

    def __init__(self, role, secret_key=None, authorized_keys=(), max_record=_MAX_RECORD,
                 backend=None, random=None, clock=None, timeout_ms=4000, max_resets=5,
                 tofu_clients=False):
        # One try around it all: a MemoryError anywhere in here becomes OutOfMemory.
        try:
            if role not in (_CLIENT, _AUTH_SERVER, _UNAUTH_SERVER):
                raise LocalProtocolError("unknown role %r" % (role,))
            if not 0 <= max_record <= _MAX_RECORD:
                raise LocalProtocolError("max_record must be 0..%d" % _MAX_RECORD)
            if max_resets < 1:
                raise LocalProtocolError("max_resets < 1")
            if backend is None:
                from .crypto import get_backend
                backend = get_backend()
            if random is None:
                from .rand import default_random
                random = default_random()   # raises NoRandomSource where there is none
            self.role = role
            self.is_server = role != _CLIENT
            self.backend = backend
            self._random = random
            self._clock = clock
            self.timeout_ms = timeout_ms
            self.max_resets = max_resets
            self.tofu_clients = tofu_clients
            self.max_record = max_record
            self.max_packet = max_record + _DATA_OVERHEAD     # wire.max_packet

            # Long-term key (spec 2.1): a server always has one; a client may have none.
            if secret_key is None and self.is_server:
                secret_key = self._rand(_KEY_LEN)
            self._secret = None
            self.local_public_key = None
            if secret_key is not None:
                # The 32-byte Ed25519 seed (KeyFormatError otherwise) and its public key.
                _check_key(secret_key, "secret key")
                self._secret = bytearray(secret_key)
                self.local_public_key = self.backend.ed25519_public(bytes(secret_key))
            self._authorized = []
            for k in authorized_keys:
                self.add_authorized_key(k)

            # Buffers, allocated once (docs/design.md): input holds one whole packet, plaintext
            # one record. The session key and nonces are bytearrays so they can be wiped.
            # _cap: its size, kept (len() would make a new int object per record on CPython).
            self._cap = max(self.max_packet, _MAX_CONTROL_PACKET)
            self._in = bytearray(self._cap)
            self._in_mv = memoryview(self._in)
            self._in_start = 0
            self._in_end = 0
            self.plaintext = bytearray(max_record)
            self.data_len = 0
            self._key = bytearray(_KEY_LEN)
            self._local_nonce = bytearray(_NONCE_LEN)
            self._remote_nonce = bytearray(_NONCE_LEN)
            # The 16-bit msg_ids (spec 1.4), big-endian like the header, stepped as the nonces
            # are: no int above 256 is made per record (on CPython each would be an object).
            self._lid = bytearray(2)
            self._rid = bytearray(2)
            # Challenge: generated once per object and reused across re-handshakes (spec 2.1).
            self._challenge = self._rand(_CHALLENGE_LEN)

            self.reset_count = 0
            self.error = None
            self._initiator = False
            self._pending_done = False
            self._eph_secret = None
            if self.is_server and _RECV[_SERVER_WAIT_HANDSHAKE] is None:
                from . import _server1  # noqa: F401 (its import fills _RECV and _SEND)
            self._new_session()
            self._enter(_SERVER_WAIT_HANDSHAKE if self.is_server else _CLIENT_SEND_HANDSHAKE)
        except MemoryError:
            raise OutOfMemory("out of memory")

    # ------------------------------------------------------------------ keys and trust

    def add_authorized_key(self, key):
        """Trust a peer public key (32 bytes). Raises KeyFormatError."""
        _check_key(key, "authorized key")
        key = bytes(key)
        if key not in self._authorized:
            self._authorized.append(key)

    def reject_key(self):
        """Refuse the key announced by UNTRUSTED_KEY: the connection fails permanently."""
        if self.state != _WAIT_APPROVAL:
            raise LocalProtocolError("no key is waiting for approval")
        self._fail(ConnectionFailed("peer key rejected"))

    def __getattr__(self, name):
        # Called only for a name the class lacks. The members a node never uses are in
        # _extra.py, loaded on first use (on a board their code would be heap): accept_key(),
        # and the `data`, `state_name` and `authorized_keys` properties.
        from ._extra import member
        return member(self, name, _STATES, 1)

    # ------------------------------------------------------------------ status

    # Plain attributes, read-only by convention and kept by _enter() (a property would be
    # ~130 B more of heap on a board): `state` (the state's number, an index of _STATES);
    # `established` (Encrypted); `closed`: True once the connection is dead (Failed) and its
    # Disconnect, if any, was written.

    # ------------------------------------------------------------------ input

    def receive_data(self, data, n=-1):
        """Store up to `n` bytes (default: all) of `data`; return how many were taken.

        Only stores: parsing happens in next_event(). Fewer bytes are taken when the
        bounded input buffer is full; call next_event() and offer the rest again."""
        k = len(data)
        if n < 0 or n > k:
            n = k
        if self.state == _FAILED or n == 0:
            return n        # a dead connection swallows input, so callers never spin
        cap = self._cap
        e = self._in_end
        p = self._in_start
        if e + n > cap and p > 0:
            # Move the unparsed tail to the front; only when a packet straddles the end.
            e -= p
            copy_into(self._in, 0, self._in, p, e)
            self._in_start = 0
        take = cap - e
        if take > n:
            take = n
        if take == k:
            # A slice store into our own memoryview allocates nothing (CPython, MicroPython).
            self._in_mv[e:e + take] = data
        else:
            copy_into(self._in, e, data, 0, take)    # no slice of data: no allocation
        if self._idle and self.state == _SERVER_WAIT_HANDSHAKE:
            # The first bytes of a client: from now on the handshake runs against the clock.
            self._idle = False
            self._enter(_SERVER_WAIT_HANDSHAKE)
        self._in_end = e + take
        return take

    # ------------------------------------------------------------------ events

    def next_event(self):
        """Parse at most what is needed to return one event (see events.EVENT_NAMES).

        Returns NEED_DATA when more input (or more time) is needed. Never raises for
        anything the peer sent. Running out of heap (e.g. the pure backend's big ints on a
        board) closes the connection: CLOSED, with `error` an OutOfMemory."""
        try:
            while True:
                st = self.state
                if st == _FAILING or st == _FAILED:
                    return _CLOSED
                if self._pending_done:
                    self._pending_done = False
                    return _HANDSHAKE_DONE
                if (self._clock is not None and _STATES[st][4]
                        and not (st == _SERVER_WAIT_HANDSHAKE and self._idle)
                        and ((self._clock() - self._t0) & _TICKS_MASK) >= self.timeout_ms):
                    # A timed state ran out (a fresh server's ServerWaitHandshake only once
                    # bytes have arrived).
                    if st == _RESET_WAIT:
                        # The peer never answered our Reset: start over as if it had.
                        self._enter_initial()
                        continue
                    return self._reset(ConnectionReset("handshake timeout in "
                                                       + _STATES[st][0]))
                if _STATES[st][1] == 0:
                    # A state with something to send, or paused for a TOFU decision: input
                    # stays buffered until the state moves on.
                    return _NEED_DATA
                # Parse one packet (a handler's -1: consumed without an event, look again).
                avail = self._in_end - self._in_start
                buf = self._in
                p = self._in_start
                body_len = -1
                if avail >= _HEADER_LEN:
                    body_len = (buf[p] << 8) | buf[p + 1]   # spec 1.1: the header is big-endian
                    if _HEADER_LEN + body_len > self._cap or body_len > _REFERENCE_MAX_BODY:
                        # Spec 1.1: oversized packets are a permanent failure.
                        self._in_start = self._in_end = 0
                        return self._fail(RemoteProtocolError("Oversized packet"))
                if body_len < 0 or avail < _HEADER_LEN + body_len:
                    # Spec section 11, "no hang", in every state: once the first bytes of a
                    # packet have been seen here, the whole packet must be buffered within
                    # timeout_ms, else the session resets. Without this a corrupted length field
                    # (up to 16,404 bytes) would leave the receiver waiting for bytes that never
                    # come. timeout_ms must therefore exceed the time the link takes to carry the
                    # largest packet. (Inline, not a method of its own: a method is heap on a
                    # board.)
                    if avail == 0 or self._clock is None:
                        return _NEED_DATA
                    now = self._clock()
                    if self._partial_t0 is None:
                        self._partial_t0 = now
                    elif ((now - self._partial_t0) & _TICKS_MASK) >= self.timeout_ms:
                        return self._bad("partial packet timed out")
                    return _NEED_DATA
                self._partial_t0 = None
                # (an unknown type matches no state: an error below)
                ptype = (buf[p + 4] << 8) | buf[p + 5]
                body = p + _HEADER_LEN
                p = body + body_len
                if p == self._in_end:
                    p = self._in_end = 0        # keep the buffer front-aligned, no copy
                self._in_start = p              # the packet's bytes stay put until receive_data

                if st == _RESET_WAIT:
                    # Spec 4.4 step 4: only the peer's Reset ends ResetWait; all else is
                    # dropped.
                    if ptype == _T_RESET:
                        _zero(self._rid)
                        self._enter_initial()
                    continue
                if ptype == _T_RESET:
                    if self._absorb_reset:
                        # We answered a Reset a moment ago; this one crossed ours on the
                        # wire. Resetting again would start the ping-pong the reference
                        # suffers from.
                        self._absorb_reset = False
                        continue
                    return self._reset(ConnectionReset("peer sent Reset"), initiator=False)
                if ptype == _T_DISCONNECT:
                    if body_len < _RESET_BODY_LEN:
                        return self._bad("short Disconnect body")
                    if buf[body + 2]:
                        err = ConnectionFailed("peer disconnected with an error")
                    else:
                        err = ConnectionClosed("peer closed the connection")
                    self.reset_count += 1
                    return self._fail(err)
                self._absorb_reset = False
                m = self._rid
                if buf[body - 6] != m[0] or buf[body - 5] != m[1]:
                    return self._bad("Message ID does not match")
                _step(m)
                if ptype != _STATES[st][1]:
                    if st == _ENCRYPTED:
                        return self._bad(
                            "Received non-encrypted data on encrypted channel.")
                    return self._bad("Received unexpected handshake packet.")
                ev = _RECV[st](self, buf, body, body_len)
                if ev >= 0:
                    return ev
                # ev < 0: a packet was consumed without an event; look again.
        except MemoryError:
            return self._fail(OutOfMemory("out of memory"))

    # ------------------------------------------------------------------ receive handlers

    def _recv_server_handshake(self, buf, off, n):
        # Spec 2.3: ServerHandshake, client side, checks in the reference's order.
        why = _check_handshake(buf, off, n, _SERVER_HS_LEN, _SERVER_HS_PT_LEN)
        if why:
            return self._bad(why)
        peer_eph = bytes(buf[off + 8:off + 40])
        self._remote_nonce[:] = buf[off + 40:off + 52]
        if not self._derive_key(peer_eph):
            return self._bad("invalid ephemeral key")
        pt = bytearray(_SERVER_HS_PT_LEN)
        try:
            self.backend.aead_open(self._key, self._remote_nonce, buf, off + 56,
                                   _SERVER_HS_PT_LEN, pt, 0)
        except CryptoError:
            return self._bad("handshake decryption failed")
        server_key = bytes(pt[0:32])
        challenge = bytes(pt[32:64])
        sig = bytes(pt[64:128])
        # Signed: server ephemeral public || server starting nonce || our challenge.
        signed = peer_eph + bytes(self._remote_nonce) + bytes(self._challenge)
        # Spec 2.3 steps 4-7 plus section 11: an all-zero challenge or signature and a
        # small-order key (the all-zero key is one) are refused. (_server1.py checks the
        # client's the same way.)
        if not (any(challenge) and any(sig) and not _is_small_order_key(server_key)
                and self.backend.ed25519_verify(server_key, signed, sig)):
            return self._bad("invalid server signature")
        self._peer_challenge = challenge
        _step(self._remote_nonce)
        self.remote_public_key = server_key
        if server_key in self._authorized:
            self._enter(_CLIENT_SEND_AUTH)
        else:
            self._enter(_WAIT_APPROVAL)        # spec 2.6: TOFU pause
            return _UNTRUSTED_KEY
        return -1

    def _recv_data(self, buf, off, n):
        # Spec 3: EncryptedData. data_len must leave exactly one tag after the ciphertext.
        dlen = n - _SUB_HEADER_LEN - _TAG_LEN
        if dlen < 0 or (buf[off] | (buf[off + 1] << 8)) != dlen or dlen > self.max_record:
            return self._bad("invalid data length")
        try:
            self._ropen(self._key, self._remote_nonce, buf, off + _SUB_HEADER_LEN, dlen,
                        self.plaintext, 0)
        except CryptoError:
            # The [master] behaviour: reset, never wedge (spec 3, section 11). The record
            # buffer is untouched or zeroed: no unauthenticated plaintext.
            return self._bad("decryption failed")
        _step(self._remote_nonce)
        self.data_len = dlen
        return _DATA

    # ------------------------------------------------------------------ output

    def data_to_send(self, out, off=0):
        """Write the pending handshake, Reset or Disconnect packet into out[off:].

        Returns the number of bytes written, 0 when nothing is pending. `out` needs room
        for _MAX_CONTROL_PACKET (208) bytes; raises LocalProtocolError otherwise."""
        sender = _SEND[self.state]
        if sender is None:
            return 0
        if len(out) - off < _MAX_CONTROL_PACKET:
            raise LocalProtocolError("output buffer too small")
        try:
            return sender(self, out, off)
        except MemoryError:
            # Nothing is written; the next data_to_send() writes the Disconnect.
            self._fail(OutOfMemory("out of memory"))
            return 0

    def _send_client(self, out, off):
        # The client's handshake messages (one sender for both states): the outer header and
        # the handshake body prefix (spec 1.1, 2.2, 2.4; _server1.py writes the server's the
        # same way), then the message. Header: len, msg_id, type, reserved 0 (big-endian);
        # prefix: inner len (little-endian), version 1, five reserved zeros. The last of those
        # is a B of 0, not pad: MicroPython's pack_into writes no trailing pad bytes (a
        # trailing "5x" left the buffer's old bytes there).
        first = self.state == _CLIENT_SEND_HANDSHAKE
        n = _CLIENT_HS_LEN if first else _CLIENT_AUTH_LEN
        m = self._lid
        _pack_into(">HBBHxxBBBxxxxB", out, off, n, m[0], m[1],
                   _T_CLIENT_HANDSHAKE if first else _T_CLIENT_AUTH, n & 0xFF, n >> 8, 1, 0)
        _step(m)
        body = off + _HEADER_LEN
        if first:
            # Spec 2.2: inner len 84, version, ephemeral public, starting nonce, challenge.
            out[body + 8:body + 40] = self._eph_public
            out[body + 40:body + 52] = self._local_nonce
            out[body + 52:body + 84] = self._challenge
            self._enter(_CLIENT_WAIT_HANDSHAKE)
        else:
            # Spec 2.4: {key, signature} sealed with our starting nonce; a keyless client
            # sends 96 zero bytes (the 0.5.1 encoding). Then straight to Encrypted.
            self._seal_signed(b"", out, body + 8)
            self._enter(_ENCRYPTED)
            self._pending_done = True
        return _HEADER_LEN + n

    def _seal_signed(self, mid, out, at):
        # The sealed sub-packet of messages 2 and 3 at out[at:]: our public key, `mid`, and
        # our signature of ephemeral public || starting nonce || the peer's challenge
        # (spec 2.3, 2.4); all zeros from a keyless client.
        if self._secret is None:
            pt = bytes(_CLIENT_AUTH_PT_LEN)
        else:
            signed = bytes(self._eph_public) + bytes(self._local_nonce) + self._peer_challenge
            pt = (self.local_public_key + mid
                  + self.backend.ed25519_sign(bytes(self._secret), signed))
        _pack_into("<HH", out, at, len(pt), _TAG_LEN)     # EncryptedPacket: data_len, tag_len
        self.backend.aead_seal(self._key, self._local_nonce, pt, 0, len(pt), out, at + 4)
        _step(self._local_nonce)

    def _send_reset(self, out, off):
        # Spec 4.4 steps 2-3: Reset carries msg_id 0; local_msg_id stays 0 afterwards.
        n = _put_control(out, off, _T_RESET, 1)
        _zero(self._lid)
        if self._initiator:
            self._enter(_RESET_WAIT)
        else:
            self._enter_initial()
            self._absorb_reset = True
        return n

    def _send_disconnect(self, out, off):
        # Spec 4.5: error=0 only for a clean close.
        n = _put_control(out, off, _T_DISCONNECT,
                         0 if isinstance(self.error, ConnectionClosed) else 1)
        self._enter(_FAILED)
        self._wipe()
        return n

    def send_data(self, data, out, off=0, n=-1):
        """Encrypt one record (`n` bytes of `data`, default all) into out[off:].

        Returns the frame length, n + 28. Raises LocalProtocolError when the channel is
        not established, n exceeds max_record (split larger data yourself or use
        ossuary_io), or `out` is too small. The data path allocates nothing."""
        if n < 0:
            n = len(data)
        elif n > len(data):
            raise LocalProtocolError("n > len(data)")
        if self.state != _ENCRYPTED:
            raise LocalProtocolError("Encrypted channel not established.")
        if n > self.max_record:
            raise LocalProtocolError("record exceeds max_record %d" % self.max_record)
        total = _DATA_OVERHEAD + n
        if off < 0 or len(out) - off < total:
            raise LocalProtocolError("output buffer too small")
        # msg_id and nonce advance only once the record is written: a seal that fails, or
        # an `out` we cannot write (bytes: TypeError), consumes nothing, so the session
        # stays in step with the peer (issue 9.8).
        try:
            # Outer header (spec 1.1, big-endian) and the EncryptedPacket's data_len and
            # tag_len (little-endian: data_len as two bytes, tag_len 16 as 0x1000) in one call.
            m = self._lid
            _pack_into(">HBBHHBBH", out, off, total - _HEADER_LEN, m[0], m[1], _T_DATA, 0,
                       n & 0xFF, n >> 8, _TAG_LEN << 8)
            self._rseal(self._key, self._local_nonce, data, 0, n, out, off + 12)
        except MemoryError:
            raise OutOfMemory("out of memory")
        except (TypeError, ValueError):
            # `out` is not writable (bytes, a read-only memoryview); backends raise only
            # OssuaryError subclasses themselves.
            raise LocalProtocolError("output buffer is not writable")
        _step(m)
        _step(self._local_nonce)
        return total

    def disconnect(self, error=False):
        """Close: the next data_to_send() writes Disconnect (error flag as given).

        A no-op on a connection that is already failing or failed."""
        if self.state >= _FAILING:         # Failing or Failed, the last two states
            return
        self.reset_count += 1
        self._fail(ConnectionFailed("disconnected locally") if error
                   else ConnectionClosed("closed locally"))

    def close(self):
        """Wipe secrets and mark the connection Failed. The object is unusable afterwards.

        Wiped: the session key, the ephemeral secret, the long-term secret key and the
        last record's plaintext (`plaintext`, data_len 0)."""
        if self.error is None:
            self.error = ConnectionClosed("closed locally")
        self._enter(_FAILED)
        self._wipe()
        _zero(self._secret)
        _zero(self.plaintext)
        self.data_len = 0

    # ------------------------------------------------------------------ internals

    def _rand(self, n):
        b = self._random(n)
        if b is None or len(b) != n:
            raise CryptoError("random source: wrong length")
        return bytes(b)

    def _enter(self, st):
        self.state = st
        self.established = st == _ENCRYPTED
        self.closed = st == _FAILED
        if self._clock is not None and _STATES[st][4]:
            self._t0 = self._clock()

    def _enter_initial(self):
        self._idle = True
        self._enter(_SERVER_WAIT_HANDSHAKE if self.is_server else _CLIENT_SEND_HANDSHAKE)

    def _new_session(self):
        # Spec 2.1 session material: fresh ephemeral X25519 key and starting nonce. The
        # peer's challenge and signed prefix are set by the message that brings them,
        # which the state table puts before any use.
        self._wipe()
        self._eph_secret = bytearray(self._rand(32))
        self._eph_public = self.backend.x25519_base(bytes(self._eph_secret))
        self._local_nonce[:] = self._rand(_NONCE_LEN)
        self._partial_t0 = None
        self._absorb_reset = False
        _zero(self._lid)
        _zero(self._rid)
        self.remote_public_key = None
        self._idle = True

    def _wipe(self):
        # Session secrets only; the long-term key and the plaintext are wiped by close().
        _zero(self._key)
        _zero(self._eph_secret)
        self._rseal = self._ropen = None    # an AEAD context may hold the key

    def _derive_key(self, peer_eph):
        # The raw X25519 output is the session key (spec 2.1); an all-zero output is
        # refused by every backend (section 11). The ephemeral secret has done its only
        # job once the key is derived (or refused): wiped now, not at the session's end.
        try:
            self._key[:] = self.backend.x25519(bytes(self._eph_secret), peer_eph)
        except CryptoError:
            return False
        finally:
            _zero(self._eph_secret)
        # The record path's seal and open for this key (issue 10: on pyca one AEAD context
        # per session, nothing checked or allocated per record).
        self._rseal, self._ropen = _aead_record(self.backend, self._key)
        return True

    def _reset(self, err, initiator=True):
        # Spec 4.4 step 1 (initiator) or step 3 (responder).
        self.error = err
        self.reset_count += 1
        self._in_start = self._in_end = 0       # buffered input is discarded
        self._pending_done = False
        if self.reset_count >= self.max_resets:
            self._new_session()
            return self._fail(ConnectionFailed("reset limit reached (%d)" % self.max_resets))
        self._new_session()
        self._initiator = initiator
        self._enter(_RESETTING)
        return _RESET

    def _bad(self, reason):
        # The peer broke a rule: a recoverable reset that names the rule (spec 4.4).
        return self._reset(RemoteProtocolError(reason))

    def _fail(self, err):
        self.error = err
        self._pending_done = False
        self._enter(_FAILING)
        return _CLOSED


def _step(counter):
    # A big-endian counter + 1 in place, modulo 2**(8 * len): the 96-bit nonces (spec 2.5) and
    # the 16-bit msg_ids. The one copy: wire.py, which a node never loads, has none.
    i = len(counter) - 1
    while i >= 0:
        v = (counter[i] + 1) & 0xFF
        counter[i] = v
        if v:
            return
        i -= 1


def _check_handshake(buf, off, body_len, expected_len, sub_len=0):
    # None if a handshake body is well formed, else a short reason string. Checks, in the
    # reference's order: body long enough, version, inner length; then, when `sub_len` is
    # given, the EncryptedPacket that ends the body: tag_len 16 and data_len `sub_len`.
    # Unlike the reference (spec 8.1.1), all before anything is sliced or decrypted. Extra
    # trailing bytes are ignored (spec 1.1).
    if body_len < expected_len:
        return "handshake packet too short"
    if buf[off + 2] != _PROTOCOL_VERSION:
        return "wrong protocol version"
    if buf[off] | buf[off + 1] << 8 != expected_len:
        return "unexpected handshake inner length"
    if sub_len:
        off += expected_len - sub_len - _SUB_HEADER_LEN - _TAG_LEN     # the sub-header
        if buf[off + 2] | buf[off + 3] << 8 != _TAG_LEN:
            return "invalid tag length"
        if buf[off] | buf[off + 1] << 8 != sub_len:
            return "invalid encrypted sub-packet length"
    return None


def _put_control(out, off, ptype, error):
    # A Reset or Disconnect packet (spec 1.5; wire.put_control's bytes, a test checks): the
    # header (len 4, msg_id 0, type, reserved 0; big-endian), then the body: len 4, 0, the
    # error flag (0 or 1), 0. No trailing pad in the format (see _send_client).
    _pack_into(">HHHxxBxBB", out, off, _RESET_BODY_LEN, 0, ptype, _RESET_BODY_LEN, error, 0)
    return _HEADER_LEN + _RESET_BODY_LEN


def _zero(buf):
    # Overwrite a secret-holding bytearray in place (None: nothing to wipe).
    if buf is not None:
        for i in range(len(buf)):
            buf[i] = 0


# The table's handler names resolved once to plain functions: calling a function from a
# list allocates nothing on MicroPython, unlike getattr(self, name) which makes a bound
# method on every packet. (No helper function for the two: it would stay on the heap.) The
# server's are None until importing _server1.py fills them in.
_RECV = [getattr(Connection, s[2]) if s[2] else None for s in _STATES]
_SEND = [getattr(Connection, s[3]) if s[3] else None for s in _STATES]


# On CPython with pyca/cryptography the package's _host.py replaces Connection, copy_into and
# _zero with _record_host.py's: the same class with issue 10's record fast path, a memoryview
# copy_into and a _zero without a Python loop (host-only, never deployed: on a board, or
# without cryptography, all of the above stands).
