# Protocol 2's record path on CPython with the pyca backend (issue 10); host-only.
#
# The package's _host.py imports this module on CPython and makes connection2.Connection2 the
# subclass below; deploy.HOST_ONLY keeps the file off boards, and on a CPython without
# pyca/cryptography the import fails (ImportError) and connection2.py's own class stands. The
# shape is _record_host.py's (protocol 1): read that first.
#
# What it does: in Established, send_data and next_event handle one whole DATA record each in
# a few lines, with one ChaCha20Poly1305 context per direction's key (the CipherState's `k`,
# through the backend's aead_record) called directly: encrypt_into / decrypt_into through
# memoryview windows kept between records of one size and offset, the record's 8-byte header
# as the associated data (PROTOCOL.md: the AD is the header). Two 8-byte headers are kept per
# connection and the msg_id counters live inside them (_local_msg_id and _remote_msg_id are
# properties over their msg_id bytes): sending copies the header in one store, receiving
# checks length, msg_id, type and reserved bytes with one bytearray.startswith. The Noise
# nonces (CipherState._nonce: 4 zero bytes, n little-endian) step in place by their low byte
# only, and the sending one also counts the records sent since the last rekey (each send
# window notes where the low byte started); when a step would carry (every 256th record), or
# a REKEY is due, the record goes to the general path, which does the carry and checks nonce
# exhaustion and the rekey point itself. So no Python int above 256 and no object is made
# per record of one size.
#
# Anything else - REKEY, END and CLOSE records, a partial packet, another size, a wrong
# msg_id, another state or backend, data after END, unusual arguments - goes to
# connection2.py's general path untouched, which gives the events and errors. The windows are
# dropped on every state change (_enter) and with the session (_wipe); a context is remade
# when its direction's key changed (rekey) since it was made. The bytes on the wire are the
# same, and a bad tag releases no plaintext (tests/test_record_paths2.py).

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305 as _Aead
from cryptography.exceptions import InvalidTag
from sys import modules as _modules

from .connection2 import Connection2 as _Connection2
from .errors import RemoteProtocolError

if not (hasattr(_Aead, "encrypt_into") and hasattr(_Aead, "decrypt_into")):
    raise ImportError("cryptography without encrypt_into/decrypt_into: general path only")

# connection2.py's private constants (tests/test_record_paths2.py checks they agree).
_ESTABLISHED = 7
_NEED_DATA = 0
_DATA = 3
_RECORD_OVERHEAD = 24
_NO_SEND = (None, -1, -1, None, None, None, None, 0, 0)
_NO_OPEN = (None, -1, -1, None, None, None, 0, None)
_SLACK = 256        # receive_data: bytes of `data` past n it may copy rather than slice


class Connection2(_Connection2):
    __doc__ = _Connection2.__doc__
    # The attributes the record path touches, as slots (faster than the instance dict;
    # _record_host.py says why). connection2.py's own methods use them the same way.
    __slots__ = ("_sw", "_ow", "_shdr", "_rhdr", "_srk",
                 "_sctx", "_skey", "_rctx", "_rkey", "state", "_in", "_in_mv", "_in_start",
                 "_in_end", "_cap", "_send_cs", "_recv_cs", "local_ended", "remote_ended",
                 "_pending_done", "_partial_t0", "max_record", "data_len", "plaintext")

    def __init__(self, *args, **kwargs):
        # The DATA header send_data writes (len, msg_id, type 0x0220, reserved 0; big-endian)
        # and the one next_event expects: their len is set for the record size in use, their
        # msg_id bytes *are* the msg_id counters (the properties below).
        self._shdr = bytearray(b"\0\0\0\0\x02\x20\0\0")
        self._rhdr = bytearray(b"\0\0\0\0\x02\x20\0\0")
        # Records sent since the last rekey: _srk (an int, kept by the general path) plus
        # those send_data sent through its current window, which is how far the nonce's low
        # byte has moved since the window was made (_sent_since_rekey below).
        self._srk = 0
        self._sctx = self._rctx = None
        self._skey = bytearray(32)
        self._rkey = bytearray(32)
        self._sw = _NO_SEND
        self._ow = _NO_OPEN
        _Connection2.__init__(self, *args, **kwargs)   # raises as Connection2() does
        self._in_mv = memoryview(self._in)
        self._cap = len(self._in)

    # connection2.py's counters, seen through the bytes the record path steps.

    @property
    def _local_msg_id(self):
        return (self._shdr[2] << 8) | self._shdr[3]

    @_local_msg_id.setter
    def _local_msg_id(self, v):
        self._shdr[2] = v >> 8
        self._shdr[3] = v & 0xFF

    @property
    def _remote_msg_id(self):
        return (self._rhdr[2] << 8) | self._rhdr[3]

    @_remote_msg_id.setter
    def _remote_msg_id(self, v):
        self._rhdr[2] = v >> 8
        self._rhdr[3] = v & 0xFF

    @property
    def _sent_since_rekey(self):
        c = self._sw
        return self._srk + (c[6][4] - c[8] if c[0] is not None else 0)

    @_sent_since_rekey.setter
    def _sent_since_rekey(self, v):
        self._drop_send()
        self._srk = v

    def _drop_send(self):
        # Drops send_data's windows, first adding the records sent through them to _srk.
        # Every general-path change to the sending side (a seal, a rekey, a state change,
        # the session's end) comes through here before it touches the nonce.
        c = self._sw
        if c[0] is not None:
            self._srk += c[6][4] - c[8]
        self._sw = _NO_SEND         # (also releases the last `out` of send_data)

    def _enter(self, state):
        self._drop_send()
        _Connection2._enter(self, state)
        self._ow = _NO_OPEN

    def _wipe(self):
        self._drop_send()
        _Connection2._wipe(self)
        self._ow = _NO_OPEN
        self._sctx = self._rctx = None
        self._skey[:] = bytes(32)
        self._rkey[:] = bytes(32)

    def _seal_records(self, ptype, data, n, out, off):
        # Every record the general path seals (DATA it was handed, END, and the REKEY before
        # either) comes through here: the send windows are dropped first, so the next record
        # checks state, local_ended, the rekey count and the key again.
        self._drop_send()
        return _Connection2._seal_records(self, ptype, data, n, out, off)

    def _context(self, cs, ctx, copy):
        # The pyca context for CipherState cs's key: `ctx` when it was made for that key (kept
        # `copy`), else a new one from pyca's aead_record (None: another backend, or a
        # keyless CipherState - the general path).
        k = None if cs is None else cs.k
        if k is None or len(k) != 32:
            return None
        if ctx is not None and k == copy:
            return ctx
        # Only pyca's own backend: the general path calls backend.aead_seal/aead_open, and a
        # wrapper (a test's, a counting one) must see every record there. (Its module is
        # looked up, not imported here: the package imports this module on CPython, before
        # any backend is chosen, and must not load pyca's itself.)
        pyca = _modules.get("ossuary_micro.crypto.pyca")
        if pyca is None or not isinstance(self.backend, pyca.Backend):
            return None
        ctx = getattr(self.backend.aead_record(k)[0], "aead", None)
        copy[:] = k
        return ctx

    # ------------------------------------------------------------------ sending

    def send_data(self, data, out, off=0, n=-1):
        k = len(data)
        if n < 0:
            n = k
        elif n > k:
            return _Connection2.send_data(self, data, out, off, n)   # raises
        c = self._sw
        if out is not c[0] or off != c[1] or n != c[2]:
            c = self._send_window(out, off, n)
            if c is None:
                return _Connection2.send_data(self, data, out, off, n)
        nonce = c[6]
        if nonce[4] >= c[7]:
            # A nonce carry (and the exhaustion check) or a REKEY due: the general path.
            return _Connection2.send_data(self, data, out, off, n)
        h = self._shdr
        c[3][:] = h                 # the header, msg_id included: also the AD
        try:
            c[5].encrypt_into(nonce, data if n == k else memoryview(data)[:n], h, c[4])
        except Exception:
            # Nothing stepped: the general path seals again and raises its own error.
            return _Connection2.send_data(self, data, out, off, n)
        # Written: msg_id, nonce and the rekey count advance, as _seal_records does.
        v = h[3] + 1
        if v < 256:
            h[3] = v
        else:
            h[3] = 0
            h[2] = (h[2] + 1) & 0xFF
        nonce[4] += 1              # (below 255: no carry; also counts the record sent)
        return n + _RECORD_OVERHEAD

    def _send_window(self, out, off, n):
        # send_data's windows on out[off:] for n-byte records, or None: the general path
        # (another state or backend, or arguments it refuses with the precise error).
        self._drop_send()
        if (self.state != _ESTABLISHED or self.local_ended or n > self.max_record
                or off < 0):
            return None
        cs = self._send_cs
        ctx = self._sctx = self._context(cs, self._sctx, self._skey)
        if ctx is None:
            return None
        try:
            mv = memoryview(out)
        except TypeError:
            return None
        # (room for a REKEY as well, as connection2.send_data demands)
        if mv.readonly or mv.itemsize != 1 or off + n + 2 * _RECORD_OVERHEAD > len(mv):
            return None
        h = self._shdr
        h[0] = (n + 16) >> 8
        h[1] = (n + 16) & 0xFF
        # The window's end: the nonce's low byte may go up to 255 (no carry, so no exhaustion
        # either) and no further than the record that makes a REKEY due.
        nonce = cs._nonce
        n0 = nonce[4]
        lim = min(255, n0 + self.rekey_after - self._srk)
        c = self._sw = (out, off, n, mv[off:off + 8], mv[off + 8:off + n + _RECORD_OVERHEAD],
                        ctx, nonce, lim, n0)
        return c

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data, n=-1):
        # Established with nothing buffered, offered what fits: one store. Callers pass a
        # fixed buffer and a count (ossuary_io; the bench: a frame in a buffer sized for a
        # REKEY too), and a window of `data` for exactly n bytes allocates a memoryview per
        # call; so when all of `data` fits and is at most _SLACK bytes longer than n, all of
        # it is stored and the first n bytes count (_in_end): the rest lies past _in_end like
        # the bytes of records already read, and is never parsed.
        if self._in_end == 0 and self.state == _ESTABLISHED:
            k = len(data)
            if n < 0 or n > k:
                n = k
            if 0 < n <= self._cap:
                if k <= self._cap and k - n <= _SLACK:
                    self._in_mv[:k] = data
                else:
                    self._in_mv[:n] = memoryview(data)[:n]
                self._in_end = n
                return n
        return _Connection2.receive_data(self, data, n)

    def next_event(self):
        c = self._ow
        p = self._in_start
        e = self._in_end
        if p == e:
            if c[0] is not None:
                return _NEED_DATA   # Established, no event pending, nothing buffered
            return _Connection2.next_event(self)
        if (p != c[1] or c[2] > e or c[7][4] == 0xFF
                or not self._in.startswith(c[3], p)):
            c = self._open_window(p, e)
            if c is None:
                return _Connection2.next_event(self)
        # A whole DATA record with the expected msg_id (header checked in full): consumed as
        # next_event's general path consumes it, then opened as _recv_record opens it.
        end = c[2]
        if end == e:
            self._in_start = self._in_end = 0       # front-aligned, as next_event
        else:
            self._in_start = end
        nonce = c[7]
        h = c[3]
        try:
            # The header as the AD: the expected one, byte for byte the one received.
            c[0].decrypt_into(nonce, c[4], h, c[5])
            ok = True
        except InvalidTag:
            # decrypt_into wrote the unauthenticated plaintext before it checked the tag:
            # wiped before anything else runs.
            c[5][:] = bytes(c[6])
            ok = False
        v = h[3] + 1                # msg_id steps either way, as in next_event
        if v < 256:
            h[3] = v
        else:
            h[3] = 0
            h[2] = (h[2] + 1) & 0xFF
        if not ok:
            return self._fail(RemoteProtocolError("record decryption failed"))
        nonce[4] += 1
        self.data_len = c[6]
        return _DATA

    def _open_window(self, p, e):
        # next_event's windows for the DATA record at _in[p:e], or None: the general path
        # (another state or backend, an event pending, a partial or other packet, a nonce
        # carry). Checked: what next_event and _recv_record accept of a DATA record. The old
        # windows are dropped first, so a kept window also says _partial_t0 is None (the
        # general path (next_event) may set it; the record that completes it clears it).
        self._ow = _NO_OPEN
        if (self.state != _ESTABLISHED or self._pending_done or self.remote_ended
                or e - p < _RECORD_OVERHEAD or self._absorb_reset):
            return None
        cs = self._recv_cs
        if cs._nonce[4] == 0xFF:
            return None
        buf = self._in
        blen = (buf[p] << 8) | buf[p + 1]
        dlen = blen - 16
        end = p + 8 + blen
        if not 0 <= dlen <= self.max_record or end > e:
            return None
        h = self._rhdr
        h[0] = blen >> 8
        h[1] = blen & 0xFF
        if not buf.startswith(h, p):       # msg_id, type 0x0220, reserved 0
            return None
        ctx = self._rctx = self._context(cs, self._rctx, self._rkey)
        if ctx is None:
            return None
        c = (ctx, p, end, h, self._in_mv[p + 8:end], memoryview(self.plaintext)[:dlen],
             dlen, cs._nonce)
        self._ow = c
        self._partial_t0 = None
        return c


# The overrides document (and, for __init__, have the signature of) the methods they stand in
# for.
for _name in ("__init__", "send_data", "receive_data", "next_event"):
    getattr(Connection2, _name).__doc__ = getattr(_Connection2, _name).__doc__
Connection2.__init__.__wrapped__ = _Connection2.__init__
