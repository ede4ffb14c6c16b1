# Protocol 1's record path on CPython with the pyca backend (issue 10); host-only.
#
# The package's _host.py imports this module on CPython and makes connection.Connection the
# subclass below (and connection.copy_into / _zero the functions below); deploy.HOST_ONLY
# keeps the file off boards, and on a CPython without pyca/cryptography the first import
# fails (ImportError) and connection.py's own class and copy_into stand. The core cannot
# carry this speed: every byte of connection.py is heap on a board (issue 7: the core .mpy
# stays within 12 KiB).
#
# What it does: once a session key is derived on the pyca backend, send_data and next_event
# handle a whole data record each in a few lines, with the session's one ChaCha20Poly1305
# context called directly (encrypt_into, decrypt_into through memoryview windows kept
# between records of one size and offset). Two 12- and 10-byte headers are kept per
# connection, and the msg_id counters live inside them (_lid and _rid become views of their
# msg_id bytes): sending copies the header with the current msg_id in one store, receiving
# checks length, msg_id, type, reserved bytes and data_len with one bytearray.startswith.
# Counters step in place (their last byte; a carry goes to connection._step): no Python
# int above 256 and no object is made per 64-byte record.
#
# Anything else - a partial packet, another packet type or size, a wrong msg_id, another
# state or backend, unusual arguments - goes to connection.py's general path untouched,
# which gives the events and errors. The windows are dropped on every state change
# (_enter) and with the session key (_wipe), so a kept window also says "Encrypted, no event
# pending, pyca context at hand". The bytes on the wire are the same and a bad tag releases
# no plaintext (tests/test_record_paths.py).

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as _Aead

from .connection import Connection as _Connection, _zero as _zero_loop, _step
from .errors import OutOfMemory

if not (hasattr(_Aead, "encrypt_into") and hasattr(_Aead, "decrypt_into")):
    raise ImportError("cryptography without encrypt_into/decrypt_into: general path only")

# connection.py's private constants (tests/test_record_paths.py checks they agree).
_ENCRYPTED = 7
_NEED_DATA = 0
_DATA = 3
_DATA_OVERHEAD = 28
_NO_SEND = (None, -1, -1, None, None, None)
_NO_OPEN = (None, -1, -1, None, None, None, 0)


def copy_into(dst, doff, src, soff, n):
    # connection.copy_into on CPython: memoryview on both sides (a bytearray slice assigned
    # from another buffer is first copied into a temporary bytearray).
    memoryview(dst)[doff:doff + n] = memoryview(src)[soff:soff + n]


def _zero(buf):
    # connection._zero on CPython: one store of zeros in place instead of a Python loop (a
    # handshake wipes about ten small buffers per side).
    if buf is not None:
        buf[:] = bytes(len(buf))


class Connection(_Connection):
    __doc__ = _Connection.__doc__
    # The attributes the record path touches, as slots: a Connection has more attributes than
    # CPython keeps in a shared-key instance dict (30), and a slot is read and written faster
    # than a key of a plain dict. connection.py's own methods use them the same way (a slot is
    # a data descriptor: it wins over the instance dict).
    __slots__ = ("_aead", "_sw", "_ow", "_shdr", "_rhdr", "state", "_in", "_in_mv",
                 "_in_start", "_in_end", "_cap", "_lid", "_rid", "_local_nonce",
                 "_remote_nonce", "_pending_done", "_partial_t0", "max_record", "data_len",
                 "plaintext")

    def __init__(self, *args, **kwargs):
        # The data header send_data writes: outer header (len, msg_id, type 0x20, reserved 0;
        # big-endian), data_len (LE) and tag_len 16 (LE). And the first 10 bytes next_event
        # expects of a data packet: the same up to data_len. Their length fields are set for
        # the record size in use, their msg_id bytes *are* the msg_id counters.
        self._shdr = bytearray(b"\0\0\0\0\0\x20\0\0\0\0\x10\0")
        self._rhdr = bytearray(b"\0\0\0\0\0\x20\0\0\0\0")
        _Connection.__init__(self, *args, **kwargs)   # raises as Connection() does
        self._shdr[2:4] = self._lid
        self._lid = memoryview(self._shdr)[2:4]
        self._rhdr[2:4] = self._rid
        self._rid = memoryview(self._rhdr)[2:4]

    def _enter(self, st):
        _Connection._enter(self, st)
        # send_data's (out, off, n, header window, ciphertext window, AEAD context) and
        # next_event's (AEAD context, packet offset, packet end, expected header, ciphertext
        # window, plaintext window, data_len): made anew in the state that uses them.
        self._sw = _NO_SEND
        self._ow = _NO_OPEN

    def _derive_key(self, peer_eph):
        ok = _Connection._derive_key(self, peer_eph)
        # pyca's aead_record hangs its context on the seal function; other backends have none.
        self._aead = getattr(self._rseal, "aead", None) if ok else None
        return ok

    def _wipe(self):
        _Connection._wipe(self)
        self._aead = None
        self._sw = _NO_SEND         # releases the last `out` of send_data
        self._ow = _NO_OPEN

    # ------------------------------------------------------------------ sending

    def send_data(self, data, out, off=0, n=-1):
        k = len(data)
        if n < 0:
            n = k
        elif n > k:
            return _Connection.send_data(self, data, out, off, n)     # raises
        c = self._sw
        if out is not c[0] or off != c[1] or n != c[2]:
            c = self._send_window(out, off, n, k)
            if c is None:
                return _Connection.send_data(self, data, out, off, n)
        h = self._shdr
        c[3][:] = h                 # the header, msg_id included
        nonce = self._local_nonce
        try:
            c[5].encrypt_into(nonce, data if n == k else memoryview(data)[:n], None, c[4])
        except Exception:
            # Nothing stepped: the general path seals again and raises its own error
            # (LocalProtocolError, OutOfMemory) if it fails too.
            return _Connection.send_data(self, data, out, off, n)
        # Written: now msg_id and nonce advance, as in connection.send_data.
        v = h[3] + 1
        if v < 256:
            h[3] = v
        else:
            _step(self._lid)
        v = nonce[11] + 1
        if v < 256:
            nonce[11] = v
        else:
            _step(nonce)
        return n + _DATA_OVERHEAD

    def _send_window(self, out, off, n, k):
        # send_data's windows on out[off:] for n-byte records, or None: the general path
        # (another state or backend, or arguments it refuses with the precise error).
        aead = self._aead
        if aead is None or self.state != _ENCRYPTED or n > self.max_record or off < 0:
            return None
        try:
            mv = memoryview(out)
        except TypeError:
            return None
        if mv.readonly or mv.itemsize != 1 or off + n + _DATA_OVERHEAD > len(mv):
            return None
        h = self._shdr
        h[0] = (n + 20) >> 8
        h[1] = (n + 20) & 0xFF
        h[8] = n & 0xFF
        h[9] = n >> 8
        c = self._sw = (out, off, n, mv[off:off + 12], mv[off + 12:off + n + _DATA_OVERHEAD],
                        aead)
        return c

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data, n=-1):
        # An established session with nothing buffered, offered what fits: one store.
        if self._in_end == 0 and self._aead is not None:
            k = len(data)
            if (n < 0 or n == k) and k <= self._cap:
                self._in_mv[:k] = data
                self._in_end = k
                return k
        return _Connection.receive_data(self, data, n)

    def next_event(self):
        c = self._ow
        p = self._in_start
        e = self._in_end
        if p == e:
            if c[0] is not None:
                return _NEED_DATA   # Encrypted, no event pending, nothing buffered
            return _Connection.next_event(self)
        if p != c[1] or c[2] > e or not self._in.startswith(c[3], p):
            c = self._open_window(p, e)
            if c is None:
                return _Connection.next_event(self)
        # A whole data packet with the expected msg_id and data_len (spec 1.1, 3): consumed
        # as _parse_one consumes it, then opened as _recv_data opens it.
        end = c[2]
        if end == e:
            self._in_start = self._in_end = 0       # front-aligned, as _parse_one
        else:
            self._in_start = end
        nonce = self._remote_nonce
        try:
            c[0].decrypt_into(nonce, c[4], None, c[5])
        except InvalidTag:
            # decrypt_into wrote the unauthenticated plaintext before it checked the tag:
            # wiped before anything else runs. Then _recv_data's answer: reset.
            try:
                c[5][:] = bytes(c[6])
            except MemoryError:
                _zero_loop(c[5])
            return self._bad("decryption failed")
        h = self._rhdr
        v = h[3] + 1
        if v < 256:
            h[3] = v
        else:
            _step(self._rid)
        v = nonce[11] + 1
        if v < 256:
            nonce[11] = v
        else:
            _step(nonce)
        self.data_len = c[6]
        return _DATA

    def _open_window(self, p, e):
        # next_event's windows for the data packet at _in[p:e], or None: the general path
        # (another state or backend, an event pending, a partial or other packet). Checked:
        # what _parse_one and _recv_data accept of a data packet, and reserved bytes 0.
        # The old windows are dropped first: whenever the general path runs, the next packet
        # comes here again, so a kept window also says _partial_t0 is None (the general
        # path (_parse_one) may set it; the packet that completes it clears it, as _parse_one).
        self._ow = _NO_OPEN
        aead = self._aead
        if (aead is None or self.state != _ENCRYPTED or self._pending_done or e - p < 28
                or self._absorb_reset):
            # (_absorb_reset is never set in Encrypted: a handshake packet clears it on the
            # way, and setting it goes through _enter, which drops the windows. Checked here
            # so that the hit path in next_event need not clear it as _parse_one does.)
            return None
        buf = self._in
        blen = (buf[p] << 8) | buf[p + 1]
        dlen = blen - 20
        end = p + 8 + blen
        if not 0 <= dlen <= self.max_record or end > e:
            return None
        h = self._rhdr
        h[0] = blen >> 8
        h[1] = blen & 0xFF
        h[8] = dlen & 0xFF
        h[9] = dlen >> 8
        if not buf.startswith(h, p):       # msg_id, type 0x20, reserved 0, data_len
            return None
        try:
            c = (aead, p, end, h, self._in_mv[p + 12:end], memoryview(self.plaintext)[:dlen],
                 dlen)
        except MemoryError:
            return None
        self._ow = c
        self._partial_t0 = None
        return c


# The overrides document (and, for __init__, have the signature of: inspect follows
# __wrapped__) the methods they stand in for.
for _name in ("__init__", "send_data", "receive_data", "next_event"):
    getattr(Connection, _name).__doc__ = getattr(_Connection, _name).__doc__
Connection.__init__.__wrapped__ = _Connection.__init__
