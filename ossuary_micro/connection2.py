# Protocol 2: a Noise XX channel (docs/PROTOCOL.md) as a sans-I/O state machine beside
# connection.py, with the same surface: receive_data / next_event / data_to_send / send_data,
# the same roles, events, trust decisions and errors, plus END_OF_STREAM (half-close).
#
# Rules of the state machine (the table `_STATES` below owns them):
#  * Every state either waits for one packet type (`expects`), or has one packet to write
#    (`sends`), or does neither (paused/terminal). Any other type in a waiting state is a
#    protocol error: a missing entry *is* the error. Established accepts the four record types.
#  * During the handshake, Reset and Disconnect work as in protocol 1 (recoverable errors run
#    the Reset exchange, bounded by max_resets); msg_id is checked on every other packet.
#  * Once established, nothing unauthenticated changes the session except ending it: a clear
#    Reset or Disconnect, a bad tag, a bad length or a wrong msg_id fail the connection
#    permanently with ConnectionFailed / RemoteProtocolError, never ConnectionClosed. Only a
#    CLOSE record (authenticated) is a clean close. A new session is a new object, which
#    decides trust again: a different peer key cannot continue this stream.
#  * Records are Noise transport messages whose associated data is their own 8-byte outer
#    header, so type, length and msg_id are authenticated too.

# Not wire.py (protocol 1's layouts): its header writer and sizes are private here, so a
# protocol 2 node never loads it (its names would stay interned on a board's heap).
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x
from .errors import (CryptoError, LocalProtocolError, RemoteProtocolError, ConnectionReset,
                     ConnectionFailed, ConnectionClosed, KeyFormatError, OutOfMemory)
from .keys import check_key
from .noise import HandshakeState, KeyPair
from .crypto.ed2curve import ed25519_pk_to_x25519, ed25519_pk_matches_x25519
# Identity has a module of its own: a node derives its keys at boot with only that module
# (and the Ed25519 code) loaded, before this one; it is part of this module's interface.
from .identity import Identity  # noqa: F401
try:
    from ._viper_copy import copy_into
except (ImportError, SyntaxError, NotImplementedError, ValueError):
    from .connection import copy_into   # CPython, or no viper: protocol 1's portable copy
# Roles and events from events.py, not connection.py: a protocol 2 node never loads protocol
# 1's state machine (heap on a board). END_OF_STREAM is the one event protocol 1 does not
# have: the peer half-closed (it will send no more DATA).
from .events import (CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA, HANDSHAKE_DONE,  # noqa: F401
                     UNTRUSTED_KEY, DATA, RESET, CLOSED, END_OF_STREAM, EVENT_NAMES)

_TICKS_MASK = const(0x3FFFFFFF)
_HEADER_LEN = const(8)      # wire.HEADER_LEN, folded into the bytecode (a test checks it)
_MAX_CONTROL_PACKET = const(208)  # wire's MAX_CONTROL_PACKET (a test checks it)
# wire2.py's packet types and sizes, folded into the bytecode the same way, so that a node
# does not load wire2.py (its names are heap on a board); a test checks they agree.
_T2_MSG1 = const(0x0201)
_T2_MSG2 = const(0x0202)
_T2_MSG3 = const(0x0203)
_T2_DISCONNECT = const(0x0210)
_T2_RESET = const(0x0211)
_T2_DATA = const(0x0220)
_T2_END = const(0x0221)
_T2_CLOSE = const(0x0222)
_T2_REKEY = const(0x0223)
_TAG_LEN = const(16)
_MSG1_LEN = const(32)
_MSG2_LEN = const(128)
_MSG3_LEN = const(96)
_MSG3_KEYLESS_LEN = const(64)
_RECORD_OVERHEAD = const(24)
_MAX_RECORD = const(16384)
_PROLOGUE = const(b"ossuary-micro protocol 2")   # wire2.PROLOGUE

# --- States ---
_SERVER_WAIT_MSG1 = const(0)
_SERVER_SEND_MSG2 = const(1)
_SERVER_WAIT_MSG3 = const(2)
_CLIENT_SEND_MSG1 = const(3)
_CLIENT_WAIT_MSG2 = const(4)
_CLIENT_SEND_MSG3 = const(5)
_WAIT_APPROVAL = const(6)      # paused for a TOFU decision (client after msg2, server after msg3)
_ESTABLISHED = const(7)
_RESETTING = const(8)          # Reset to write; self._initiator says whether we wait for one back
_RESET_WAIT = const(9)
_FAILING = const(10)           # CLOSE record or Disconnect to write, then Failed
_FAILED = const(11)

# name, packet type expected (0: none), receive handler, send handler, timed. The three server
# states' handlers (marked "_server2.py" below; None here) are in _server2.py, which the first
# server connection imports (its import puts them into _RECV and _SEND): a client never has
# them, nor their names, on its heap.
_STATES = (
    ("ServerWaitMsg1", _T2_MSG1, None, None, True),        # _server2.py receives
    ("ServerSendMsg2", 0, None, None, False),              # _server2.py sends
    ("ServerWaitMsg3", _T2_MSG3, None, None, True),        # _server2.py receives
    ("ClientSendMsg1", 0, None, "_send_msg", False),
    ("ClientWaitMsg2", _T2_MSG2, "_recv_msg2", None, True),
    ("ClientSendMsg3", 0, None, "_send_msg", False),
    ("WaitApproval", 0, None, None, True),
    ("Established", _T2_DATA, "_recv_record", None, False),
    ("Resetting", 0, None, "_send_reset", False),
    ("ResetWait", _T2_RESET, None, None, True),
    ("Failing", 0, None, "_send_final", False),
    ("Failed", 0, None, None, False),
)



class Connection2:
    """One end of a protocol 2 (Noise XX) channel. Same contract as Connection
    (docs/design.md), differences in docs/PROTOCOL.md section 6.

    `secret_key` is the same 32-byte Ed25519 seed as protocol 1; its X25519 form is the Noise
    static key. `authorized_keys` are Ed25519 public keys. `rekey_after`: records sent in one
    direction before that direction rekeys (a REKEY record). Raises only OssuaryError
    subclasses; peer errors surface as RESET / CLOSED events with `error` set."""

    def __init__(self, role, secret_key=None, authorized_keys=(), max_record=_MAX_RECORD,
                 backend=None, random=None, clock=None, timeout_ms=4000, max_resets=5,
                 tofu_clients=False, rekey_after=1 << 20):
        # One try around it all, as Connection: a MemoryError anywhere becomes OutOfMemory.
        try:
            if role not in (CLIENT, AUTH_SERVER, UNAUTH_SERVER):
                raise LocalProtocolError("unknown role %r" % (role,))
            if not 0 <= max_record <= _MAX_RECORD:
                raise LocalProtocolError("max_record must be 0..%d" % _MAX_RECORD)
            if max_resets < 1:
                raise LocalProtocolError("max_resets must be at least 1")
            if not 1 <= rekey_after <= (1 << 30) - 1:
                raise LocalProtocolError("rekey_after must be 1..2**30-1")
            if backend is None:
                from .crypto import get_backend
                backend = get_backend()
            if random is None:
                # (imported here, not at the top: a board node passes its own source, and
                # does not load rand.py at all)
                from .rand import default_random
                random = default_random()
            self.role = role
            self.is_server = role != CLIENT
            self.backend = backend
            self._random = random
            self._clock = clock
            self.timeout_ms = timeout_ms
            self.max_resets = max_resets
            self.tofu_clients = tofu_clients
            self.rekey_after = rekey_after
            self.max_record = max_record
            self.max_packet = _HEADER_LEN + max_record + _TAG_LEN   # wire2.max_packet

            # The identity: a server always has one; a keyless client gets a fresh static X25519
            # key per session and counts as unauthenticated (announces no Ed25519 key).
            if secret_key is None and self.is_server:
                secret_key = random(32)
                if secret_key is None or len(secret_key) != 32:
                    raise CryptoError("random source returned a wrong length")
            self._identity = None
            self._owned = False
            self._static = None
            self.local_public_key = None
            if secret_key is not None:
                # The 32-byte protocol 1 Ed25519 seed, or an Identity: its Ed25519 public key
                # is announced, its X25519 form is the Noise static key (KeyFormatError).
                if isinstance(secret_key, Identity):
                    self._identity = secret_key
                else:
                    self._identity = Identity(secret_key, backend)
                    self._owned = True
                self._static = self._identity.static
                self.local_public_key = self._identity.public_key
            self._authorized = []
            for k in authorized_keys:
                self.add_authorized_key(k)

            self._in = bytearray(max(self.max_packet, _MAX_CONTROL_PACKET))
            self._in_start = 0
            self._in_end = 0
            self.plaintext = bytearray(max_record)
            self.data_len = 0
            self._ad = bytearray(_HEADER_LEN)   # a record's header (sent or received): its AD

            self.reset_count = 0
            self.error = None
            self.remote_public_key = None
            self.handshake_hash = None
            self._initiator = False
            self._pending_done = False
            self._hs = None
            self._fresh_static = None
            self._send_cs = None
            self._recv_cs = None
            if self.is_server and _RECV[_SERVER_WAIT_MSG1] is None:
                from . import _server2  # noqa: F401 (its import fills _RECV and _SEND)
            self._new_session()
            self._enter(_SERVER_WAIT_MSG1 if self.is_server else _CLIENT_SEND_MSG1)
        except MemoryError:
            raise OutOfMemory("out of memory")

    # ------------------------------------------------------------------ keys and trust

    def add_authorized_key(self, key):
        """Trust a peer Ed25519 public key (32 bytes). Raises KeyFormatError."""
        check_key(key, "authorized key")
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
        # end_stream(), and the `data`, `state_name` and `authorized_keys` properties.
        from ._extra import member
        return member(self, name, _STATES, 2)

    # ------------------------------------------------------------------ status

    # Plain attributes, kept by _enter() and _new_session() (a property costs a board's heap
    # a function each): `state` (one of the _STATES indexes), `established`, `closed`;
    # `local_ended`: True once we sent END (half-close), send_data is refused from then on;
    # `remote_ended`: True once the peer's END arrived, it sends no more DATA.

    # ------------------------------------------------------------------ input

    def receive_data(self, data, n=-1):
        """Store up to `n` bytes (default all) of `data`; return how many were taken.
        Only stores; fewer are taken when the bounded buffer is full."""
        if n < 0 or n > len(data):
            n = len(data)
        if self.state == _FAILED or n == 0:
            return n
        if self._idle and self.state == _SERVER_WAIT_MSG1:
            self._idle = False
            self._enter(_SERVER_WAIT_MSG1)
        cap = len(self._in)
        if self._in_end + n > cap and self._in_start > 0:
            k = self._in_end - self._in_start
            copy_into(self._in, 0, self._in, self._in_start, k)
            self._in_start = 0
            self._in_end = k
        take = cap - self._in_end
        if take > n:
            take = n
        copy_into(self._in, self._in_end, data, 0, take)
        self._in_end += take
        return take

    # ------------------------------------------------------------------ events

    def next_event(self):
        """Parse at most one packet / check the clock; return one event (EVENT_NAMES).
        Never raises for anything the peer sent. Running out of heap closes the connection:
        CLOSED, with `error` an OutOfMemory."""
        try:
            while True:
                st = self.state
                if st == _FAILING or st == _FAILED:
                    return CLOSED
                if self._pending_done:
                    self._pending_done = False
                    return HANDSHAKE_DONE
                # A timed state (an idle server's first wait excepted) ends after timeout_ms.
                clock = self._clock
                if (clock is not None and _STATES[st][4]
                        and not (st == _SERVER_WAIT_MSG1 and self._idle)
                        and ((clock() - self._t0) & _TICKS_MASK) >= self.timeout_ms):
                    if st == _RESET_WAIT:
                        self._idle = True
                        self._enter(_SERVER_WAIT_MSG1 if self.is_server else _CLIENT_SEND_MSG1)
                        continue
                    return self._reset(ConnectionReset("handshake timeout in " + _STATES[st][0]))
                if _STATES[st][1] == 0:
                    return NEED_DATA
                # Parse one packet; a handler's -1 means "no event yet": go round again.
                avail = self._in_end - self._in_start
                buf = self._in
                p = self._in_start
                body_len = -1
                if avail >= _HEADER_LEN:
                    # The 8-byte header (_put_header below): len, msg_id, type, reserved;
                    # big-endian.
                    body_len = (buf[p] << 8) | buf[p + 1]
                    if _HEADER_LEN + body_len > len(buf):
                        self._in_start = self._in_end = 0
                        return self._fail(RemoteProtocolError("Oversized packet"))
                if body_len < 0 or _HEADER_LEN + body_len > avail:
                    # Protocol 1's rule (design.md): a packet begun must be whole within
                    # timeout_ms. Established has no state timeout, so without this a
                    # corrupted length field would leave the receiver waiting for bytes that
                    # never come. (Inline, not a method: a method is heap on a board.)
                    if avail == 0 or clock is None:
                        return NEED_DATA
                    now = clock()
                    if self._partial_t0 is None:
                        self._partial_t0 = now
                    elif ((now - self._partial_t0) & _TICKS_MASK) >= self.timeout_ms:
                        return self._bad("partial packet timed out")
                    return NEED_DATA
                end = p + _HEADER_LEN + body_len
                self._partial_t0 = None
                msg_id = (buf[p + 2] << 8) | buf[p + 3]
                ptype = (buf[p + 4] << 8) | buf[p + 5]
                if end == self._in_end:
                    self._in_start = self._in_end = 0
                else:
                    self._in_start = end

                if st == _RESET_WAIT:
                    if ptype == _T2_RESET:
                        self._remote_msg_id = 0
                        self._idle = True
                        self._enter(_SERVER_WAIT_MSG1 if self.is_server else _CLIENT_SEND_MSG1)
                    continue
                if ptype == _T2_RESET or ptype == _T2_DISCONNECT:
                    if st == _ESTABLISHED:
                        # Unauthenticated: it may end the session, but it is never a clean
                        # close.
                        # (Two whole messages: the words alone would be interned names.)
                        return self._fail(ConnectionFailed(
                            "unauthenticated Reset after the handshake" if ptype == _T2_RESET
                            else "unauthenticated Disconnect after the handshake"))
                    if ptype == _T2_DISCONNECT:
                        self.reset_count += 1
                        return self._fail(
                            ConnectionFailed("peer disconnected during the handshake"))
                    if self._absorb_reset:
                        self._absorb_reset = False
                        continue
                    return self._reset(ConnectionReset("peer sent Reset"), initiator=False)
                self._absorb_reset = False
                if buf[p + 6] or buf[p + 7]:
                    return self._bad("reserved header field not zero")
                if msg_id != self._remote_msg_id:
                    return self._bad("Message ID does not match")
                self._remote_msg_id = (msg_id + 1) & 0xFFFF
                if ptype != _STATES[st][1]:
                    if not (st == _ESTABLISHED and _T2_DATA <= ptype <= _T2_REKEY):
                        return self._bad("unexpected packet type 0x%04x in %s"
                                         % (ptype, _STATES[st][0]))
                ev = _RECV[st](self, buf, p + _HEADER_LEN, body_len, ptype)
                if ev >= 0:
                    return ev
        except MemoryError:
            return self._fail(OutOfMemory("out of memory"))

    # ------------------------------------------------------------------ handshake

    def _recv_msg2(self, buf, off, n, ptype):
        # <- e, ee, s, es + payload: the server's Ed25519 key, which must map to its s.
        if n != _MSG2_LEN:
            return self._bad("message 2 has the wrong length")
        try:
            payload, _ = self._hs.read_message(memoryview(buf)[off:off + n])
        except CryptoError:
            return self._bad("handshake decryption failed")
        key = self._peer_identity(payload)
        if key is None:
            return self._bad("server identity does not match its static key")
        self.remote_public_key = key
        if key in self._authorized:
            self._enter(_CLIENT_SEND_MSG3)
            return -1
        self._enter(_WAIT_APPROVAL)
        return UNTRUSTED_KEY

    def _peer_identity(self, payload):
        # The payload is the peer's Ed25519 public key; its X25519 form must be the static key
        # the peer just proved with a DH (rs). That relation costs one multiplication; the
        # full point validation (a square root) is only needed for a key we do not already
        # trust, i.e. one about to be reported as UNTRUSTED_KEY or accepted by an
        # UNAUTH_SERVER: a trusted key was vetted when it was written to the trust file.
        if len(payload) != 32:
            return None
        payload = bytes(payload)
        if not ed25519_pk_matches_x25519(payload, self._hs.rs):
            return None
        if payload not in self._authorized:
            try:
                ed25519_pk_to_x25519(payload)
            except KeyFormatError:
                return None
        return payload

    # ------------------------------------------------------------------ records

    def _recv_record(self, buf, off, n, ptype):
        # A Noise transport message; AD = the 8-byte header it came with (copied out: the
        # input buffer may move before the record is opened, and a window would allocate).
        copy_into(self._ad, 0, buf, off - _HEADER_LEN, _HEADER_LEN)
        if n < _TAG_LEN or n - _TAG_LEN > self.max_record:
            return self._fail(RemoteProtocolError("invalid record length"))
        if ptype != _T2_DATA and n != _TAG_LEN:
            return self._fail(RemoteProtocolError("control record with a payload"))
        if self.remote_ended and ptype == _T2_DATA:
            return self._fail(RemoteProtocolError("data after end of stream"))
        try:
            m = self._recv_cs.decrypt_with_ad_into(self._ad, buf, off, n, self.plaintext, 0)
        except CryptoError:
            return self._fail(RemoteProtocolError("record decryption failed"))
        if ptype == _T2_DATA:
            self.data_len = m
            return DATA
        if ptype == _T2_REKEY:
            self._recv_cs.rekey()
            return -1
        if ptype == _T2_END:
            if self.remote_ended:
                return self._fail(RemoteProtocolError("second end of stream"))
            self.remote_ended = True
            return END_OF_STREAM
        # T2_CLOSE: the one clean close, authenticated like any record.
        self.error = ConnectionClosed("peer closed the connection")
        self._enter(_FAILED)
        self._wipe()
        return CLOSED

    def _seal_record(self, ptype, data, n, out, off):
        # Header (the AD) then ciphertext + tag; the caller checked sizes and state. The
        # msg_id is taken only once the seal succeeded (the nonce likewise, in CipherState).
        # The header is built in self._ad and copied out: a memoryview window of `out` as the
        # AD would allocate two objects per record on MicroPython.
        m = self._local_msg_id
        ad = self._ad
        _put_header(ad, 0, n + _TAG_LEN, m, ptype)
        copy_into(out, off, ad, 0, _HEADER_LEN)
        self._send_cs.encrypt_with_ad_into(ad, data, 0, n, out, off + _HEADER_LEN)
        self._local_msg_id = (m + 1) & 0xFFFF
        return _RECORD_OVERHEAD + n

    def _seal_records(self, ptype, data, n, out, off):
        # send_data's and end_stream's checks, then a REKEY when due, then the record. `out`
        # is checked writable first, so a bad buffer consumes nothing; running out of heap
        # half-way (the REKEY may already be applied) ends the connection, since the two
        # sides could no longer agree on keys.
        if self.state != _ESTABLISHED:
            raise LocalProtocolError("Encrypted channel not established.")
        if self.local_ended:
            raise LocalProtocolError("stream already ended")
        if n > self.max_record:
            raise LocalProtocolError("record of %d bytes exceeds max_record %d"
                                     % (n, self.max_record))
        # (room for a REKEY record before this one)
        if off < 0 or len(out) - off < 2 * _RECORD_OVERHEAD + n:
            raise LocalProtocolError("output buffer too small")
        try:
            out[off] = out[off]
        except (TypeError, ValueError):
            raise LocalProtocolError("output buffer is not writable")
        try:
            k = 0
            if self._sent_since_rekey >= self.rekey_after:
                # After rekey_after records, a REKEY record goes out under the old key, then
                # the sending CipherState rekeys; the peer rekeys when it reads that record.
                k = self._seal_record(_T2_REKEY, b"", 0, out, off)
                self._send_cs.rekey()
                self._sent_since_rekey = 0
            k += self._seal_record(ptype, data, n, out, off + k)
        except MemoryError:
            self._fail(OutOfMemory("out of memory"))
            raise OutOfMemory("out of memory")
        self._sent_since_rekey += 1
        return k

    def send_data(self, data, out, off=0, n=-1):
        """Encrypt one record (`n` bytes of `data`, default all) into out[off:]; return the
        bytes written: n + 24, plus 24 when a REKEY record is due first (size `out` for
        max_packet + 24). Raises LocalProtocolError when not established, after end_stream(),
        for n > max_record or a short `out`; CryptoError when the nonce is exhausted."""
        if n < 0:
            n = len(data)
        elif n > len(data):
            raise LocalProtocolError("n is larger than the data")
        return self._seal_records(_T2_DATA, data, n, out, off)

    # ------------------------------------------------------------------ output

    def data_to_send(self, out, off=0):
        """Write the pending handshake, Reset, Disconnect or CLOSE packet into out[off:];
        return its length, 0 when nothing is pending. `out` needs MAX_CONTROL_PACKET bytes."""
        sender = _SEND[self.state]
        if sender is None:
            return 0
        if len(out) - off < _MAX_CONTROL_PACKET:
            raise LocalProtocolError("output buffer too small for a handshake packet")
        try:
            return sender(self, out, off)
        except MemoryError:
            # Nothing is written; the next data_to_send() writes the Disconnect.
            self._fail(OutOfMemory("out of memory"))
            return 0

    def _send_msg(self, out, off):
        # The client's handshake messages (one sender for both states), framed here.
        if self.state == _CLIENT_SEND_MSG1:
            # -> e, with an empty payload.
            msg, _ = self._hs.write_message(b"")
            self._enter(_CLIENT_WAIT_MSG2)
            ptype = _T2_MSG1
        else:
            # -> s, se + payload: our Ed25519 key, or nothing from a keyless client.
            msg, pair = self._hs.write_message(
                self.local_public_key if self._identity is not None else b"")
            # Split(): c1 protects initiator (us) -> responder, c2 the other way (Noise 5.2).
            # (The server's twin is in _server2.py.)
            self._send_cs, self._recv_cs = pair
            self.handshake_hash = self._hs.get_handshake_hash()
            self._hs.wipe()
            self._sent_since_rekey = 0
            self._enter(_ESTABLISHED)
            self._pending_done = True
            ptype = _T2_MSG3
        m = self._local_msg_id
        self._local_msg_id = (m + 1) & 0xFFFF
        n = len(msg)
        _put_header(out, off, n, m, ptype)
        out[off + _HEADER_LEN:off + _HEADER_LEN + n] = msg
        return _HEADER_LEN + n

    def _send_reset(self, out, off):
        n = _put_control(out, off, _T2_RESET, True)
        self._local_msg_id = 0
        if self._initiator:
            self._enter(_RESET_WAIT)
        else:
            self._idle = True
            self._enter(_SERVER_WAIT_MSG1 if self.is_server else _CLIENT_SEND_MSG1)
            self._absorb_reset = True
        return n

    def _send_final(self, out, off):
        # A clean close of an established session is an authenticated CLOSE record; anything
        # else is a clear Disconnect (error flag set unless it is a clean close before the
        # handshake finished, which the peer cannot tell from a forgery anyway).
        clean = isinstance(self.error, ConnectionClosed)
        if clean and self._send_cs is not None:
            n = self._seal_record(_T2_CLOSE, b"", 0, out, off)
        else:
            n = _put_control(out, off, _T2_DISCONNECT, not clean)
        self._enter(_FAILED)
        self._wipe()
        return n

    def disconnect(self, error=False):
        """Close: the next data_to_send() writes a CLOSE record (clean, established) or a
        Disconnect. A no-op on a connection that is already failing or failed."""
        if self.state in (_FAILING, _FAILED):
            return
        self.reset_count += 1
        if self.state != _ESTABLISHED:
            self._wipe()     # a half-made session has no channel to close on: Disconnect
        self._fail(ConnectionFailed("disconnected locally") if error
                   else ConnectionClosed("closed locally"))

    def close(self):
        """Wipe secrets and mark the connection Failed. The object is unusable afterwards."""
        if self.error is None:
            self.error = ConnectionClosed("closed locally")
        self._enter(_FAILED)
        self._wipe()
        if self._owned:
            self._identity.wipe()       # an Identity passed in belongs to the caller

    # ------------------------------------------------------------------ internals

    def _enter(self, state):
        self.state = state
        self.established = state == _ESTABLISHED
        self.closed = state == _FAILED
        if self._clock is not None and _STATES[state][4]:
            self._t0 = self._clock()

    def _new_session(self):
        # Fresh handshake: new HandshakeState (new e when it writes), msg_ids to 0. A keyless
        # client also takes a fresh static key, so two sessions cannot be linked by it.
        self._wipe()
        # The random source goes to the HandshakeState as it is: its GENERATE_KEYPAIR()
        # checks the length the same way (one method less on a board's heap).
        static = self._static
        if static is None:
            b = self._random(32)
            if b is None or len(b) != 32:
                raise CryptoError("random source returned a wrong length")
            static = self._fresh_static = KeyPair(self.backend, b)
        self._hs = HandshakeState(self.backend, self._random, not self.is_server,
                                  _PROLOGUE, static)
        self._absorb_reset = False
        self._partial_t0 = None     # clock when an incomplete packet was first seen
        self._local_msg_id = 0
        self._remote_msg_id = 0
        self.local_ended = False
        self.remote_ended = False
        self._sent_since_rekey = 0
        self.remote_public_key = None
        self.handshake_hash = None
        self._idle = True

    def _wipe(self):
        # Session secrets: handshake state and both CipherStates. The identity stays (close()).
        if self._hs is not None:
            self._hs.wipe()
        if self._fresh_static is not None:
            self._fresh_static.wipe()
            self._fresh_static = None
        if self._send_cs is not None:
            self._send_cs.wipe()
        if self._recv_cs is not None:
            self._recv_cs.wipe()
        self._send_cs = None
        self._recv_cs = None

    def _reset(self, error, initiator=True):
        self.error = error
        self.reset_count += 1
        self._in_start = self._in_end = 0
        self._pending_done = False
        if self.reset_count >= self.max_resets:
            self._new_session()
            return self._fail(ConnectionFailed("reset limit reached (%d)" % self.max_resets))
        self._new_session()
        self._initiator = initiator
        self._enter(_RESETTING)
        return RESET

    def _bad(self, reason):
        # During the handshake a broken rule is recoverable (a Reset exchange); once
        # established it ends the session (no unauthenticated restart of a stream).
        if self.state == _ESTABLISHED:
            return self._fail(RemoteProtocolError(reason))
        return self._reset(RemoteProtocolError(reason))

    def _fail(self, error):
        self.error = error
        self._pending_done = False
        self._enter(_FAILING)
        return CLOSED


def _put_header(out, off, body_len, msg_id, ptype):
    # The 8-byte outer header (wire.put_header's layout, spec 1.1): len, msg_id, type,
    # reserved; big-endian u16 each. A copy, so that a protocol 2 node never loads wire.py.
    out[off] = body_len >> 8
    out[off + 1] = body_len & 0xFF
    out[off + 2] = msg_id >> 8
    out[off + 3] = msg_id & 0xFF
    out[off + 4] = ptype >> 8
    out[off + 5] = ptype & 0xFF
    out[off + 6] = 0
    out[off + 7] = 0


def _put_control(out, off, ptype, error):
    # A clear Reset or Disconnect packet (wire.put_control's layout): header and the 4-byte
    # body (len 4, error flag). Returns its length.
    _put_header(out, off, 4, 0, ptype)
    out[off + _HEADER_LEN] = 4
    out[off + _HEADER_LEN + 1] = 0
    out[off + _HEADER_LEN + 2] = 1 if error else 0
    out[off + _HEADER_LEN + 3] = 0
    return _HEADER_LEN + 4


# The state table's handlers resolved to plain functions; the server's are None until
# importing _server2.py fills them in.
_RECV = [getattr(Connection2, s[2]) if s[2] else None for s in _STATES]
_SEND = [getattr(Connection2, s[3]) if s[3] else None for s in _STATES]


# On CPython with pyca/cryptography the package's _host.py replaces Connection2 with
# _record2_host.py's subclass, issue 10's record fast path (host-only, never deployed).
