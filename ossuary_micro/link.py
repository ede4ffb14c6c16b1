# The serial link layer: a reliable, ordered byte stream over a noisy line, sans-I/O.
#
# It sits under the secure channel on serial transports (a UART, a pty, RS-232): the
# Connection's packets go in as bytes (`send`), come out at the peer in order and exactly
# once (`recv_into`), whatever the line did to them on the way. Over TCP it is not used.
# The wire format and the rules are specified in docs/LINK.md; section numbers below (L1..L7)
# point there.
#
#  * Framing (L1-L2): each frame is CRC-32 protected and COBS-encoded between
#    0x00 delimiters, so after garbage, a lost or an inserted byte the receiver loses at most
#    the frames the damage touched and resynchronises at the next 0x00.
#  * Reliability (L4): 8-bit sequence numbers, cumulative acks piggybacked on every frame,
#    go-back-N retransmission on a timer with exponential backoff (bounded by max_rto_ms),
#    and a NAK flag so a gap is repaired at once instead of after a timeout.
#  * Flow control (L5): the receiver advertises how many full frames its receive buffer can
#    still take; the sender never has more than that (and its own window) outstanding. Frames
#    are small (max_payload <= 255) so a board's UART buffer holds a whole window.
#  * Liveness (L6): keepalive acks every keepalive_ms; the link is "down" after down_ms
#    without a valid frame from the peer, and up again at the next one. Nothing is discarded
#    while down: retransmission goes on at max_rto_ms, so a cut costs time, not data.
#  * Sessions (L3): each end draws a random 32-bit nonce when it starts (or reset()s); the SYN
#    exchange binds both nonces. A SYN carrying a different nonce for the peer means the peer
#    restarted: the session's buffers and sequence numbers are discarded (PEER_RESET), so a
#    rebooted peer's frames are never taken for duplicates and nothing of the old session
#    leaks into the new one.
#
# Like Connection: bytes in (`receive_data`), events out (`next_event`), frames written into
# a buffer the caller owns (`data_to_send`), time from the `clock` callable. receive_data
# parses complete frames as their delimiter arrives (each input byte is looked at once) and
# latches events; next_event() checks the timers and returns one latched event.
#
# MicroPython: no I/O imports, const() ints, every buffer allocated once in __init__, no
# allocation on the data path (copies go through copy_into, viper on boards), CRC-32 in
# 16-bit halves (small ints are 31 bits on boards), nonces compared byte by byte.

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x
from .errors import LocalProtocolError, CryptoError
try:
    # Viper on boards. Not connection.py's copy: a protocol 2 node on a serial line would
    # load all of protocol 1's Connection (~10 KB of heap on a 32-bit board) for this.
    from ._viper_copy import copy_into
except (ImportError, SyntaxError, NotImplementedError, ValueError):
    from .connection import copy_into   # CPython, or no viper emitter: the portable copy

# --- Events returned by next_event() ---
NEED_DATA = const(0)       # nothing latched: do I/O
LINK_UP = const(1)         # session established, or the peer is heard again after LINK_DOWN
LINK_DOWN = const(2)       # nothing valid from the peer for down_ms (data is kept)
PEER_RESET = const(3)      # the peer restarted: both buffers were discarded, resyncing
EVENT_NAMES = ("NEED_DATA", "LINK_UP", "LINK_DOWN", "PEER_RESET")

# --- Frame types (L2): low nibble of byte 0; flags in the high nibble ---
_T_DATA = const(1)
_T_ACK = const(2)
_T_SYN = const(3)
_F_UP = const(0x10)         # SYN: the sender is synchronised (no reply wanted)
_F_NAK = const(0x20)        # DATA/ACK: a frame after `ack` arrived, `ack` itself is missing

_HEADER_LEN = const(4)      # type|flags, seq, ack, win
_CRC_LEN = const(4)
_SYN_BODY_LEN = const(8)    # sender nonce, echo of the peer's nonce
_NONCE_LEN = const(4)
_MAX_PAYLOAD = const(255)
_MAX_WINDOW = const(16)     # well under half the 8-bit sequence space (go-back-N needs < 256)

# --- States (L3, L6). The table owns the rules: name, DATA/ACK frames accepted, SYN
# retransmission timer running, silence (down_ms) timer running. Transitions:
#   Sync -> Up      a SYN that echoes our nonce, from the peer whose nonce we hold
#   Up -> Down      down_ms without a valid frame from the peer
#   Down -> Up      any valid frame from the same peer
#   Up/Down -> Sync a SYN with a different peer nonce (PEER_RESET), or reset() ---
_SYNC = const(0)
_UP = const(1)
_DOWN = const(2)
_STATES = (
    ("Sync", False, True, False),
    ("Up", True, False, True),
    ("Down", True, False, False),
)

_TICKS_MASK = const(0x3FFFFFFF)   # clock differences modulo 2**30, as in Connection


# CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320, init and xorout 0xFFFFFFFF: zlib's crc32)
# kept as two 16-bit halves, so every value stays a small int on 31-bit boards, four bits at a
# time from a 16-entry table (here split into its low and high halves).
_TL = (0x0000, 0x1064, 0x20C8, 0x30AC, 0x4190, 0x51F4, 0x6158, 0x713C,
       0x8320, 0x9344, 0xA3E8, 0xB38C, 0xC2B0, 0xD2D4, 0xE278, 0xF21C)
_TH = (0x0000, 0x1DB7, 0x3B6E, 0x26D9, 0x76DC, 0x6B6B, 0x4DB2, 0x5005,
       0xEDB8, 0xF00F, 0xD6D6, 0xCB61, 0x9B64, 0x86D3, 0xA00A, 0xBDBD)


def crc32_into(buf, off, n, dst, doff):
    """Write the CRC-32 of buf[off:off+n] big-endian into dst[doff:doff+4]. Allocates
    nothing. A 16-bit CRC was tried first: random garbage passes it once in 65536 damaged
    frames, which a long fault run hits within seconds."""
    lo = 0xFFFF
    hi = 0xFFFF
    tl = _TL
    th = _TH
    for j in range(off, off + n):
        lo ^= buf[j]
        i = lo & 0xF
        lo = ((lo >> 4) | ((hi & 0xF) << 12)) ^ tl[i]
        hi = (hi >> 4) ^ th[i]
        i = lo & 0xF
        lo = ((lo >> 4) | ((hi & 0xF) << 12)) ^ tl[i]
        hi = (hi >> 4) ^ th[i]
    hi ^= 0xFFFF
    lo ^= 0xFFFF
    dst[doff] = hi >> 8
    dst[doff + 1] = hi & 0xFF
    dst[doff + 2] = lo >> 8
    dst[doff + 3] = lo & 0xFF


def crc32(buf, off, n):
    """The CRC-32 of buf[off:off+n] as an int (allocates: for tests and tools);
    crc32(b"123456789", 0, 9) == 0xCBF43926."""
    b = bytearray(4)
    crc32_into(buf, off, n, b, 0)
    return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]


def cobs_encode(src, n, out, off):
    """COBS-encode src[0:n] into out[off:] (no delimiters); return the encoded length,
    at most n + n // 254 + 1. The output contains no 0x00 byte."""
    code_at = off
    o = off + 1
    code = 1
    for i in range(n):
        if code == 0xFF:
            # A full block of 254 non-zero bytes, and more input follows: close it. (At the
            # very end a full block needs no extra code byte.)
            out[code_at] = 0xFF
            code_at = o
            o += 1
            code = 1
        b = src[i]
        if b == 0:
            out[code_at] = code
            code_at = o
            o += 1
            code = 1
        else:
            out[o] = b
            o += 1
            code += 1
    out[code_at] = code
    return o - off


def cobs_decode(buf, n):
    """Decode the COBS block buf[0:n] in place (the output never overtakes the input).
    Returns the decoded length, or -1 when the block is malformed (a 0x00 code, or a code
    that runs past the end)."""
    i = 0
    o = 0
    while i < n:
        code = buf[i]
        i += 1
        if code == 0 or i + code - 1 > n:
            return -1
        for _ in range(code - 1):
            buf[o] = buf[i]
            o += 1
            i += 1
        if code != 0xFF and i < n:
            buf[o] = 0
            o += 1
    return o


class Link:
    """One end of a serial link (docs/LINK.md). Sans-I/O; raises only OssuaryError
    subclasses (LocalProtocolError for bad settings or a too-small output buffer,
    NoRandomSource/CryptoError when no nonce can be drawn). Nothing the peer or the line
    sends raises: bad frames are dropped and counted (bad_frames, overruns, ...).

    clock: callable returning monotonic milliseconds (required: the link runs on timers).
    random: callable random(n) -> bytes for the session nonce (default os.urandom).
    max_payload: bytes per DATA frame, 1..255. window: frames outstanding, 1..16.
    rx_size: receive buffer in bytes (default window * max_payload; at least max_payload).
    baud: the line's speed, used only for the default retransmission timeout.
    rto_ms / max_rto_ms: first retransmission timeout and its backoff cap.
    keepalive_ms: idle time after which an ACK is sent; down_ms: silence before LINK_DOWN.
    """

    def __init__(self, clock, random=None, max_payload=128, window=4, rx_size=None,
                 baud=115200, rto_ms=None, max_rto_ms=1000, keepalive_ms=1000, down_ms=3000):
        if not 1 <= max_payload <= _MAX_PAYLOAD:
            raise LocalProtocolError("max_payload must be 1..%d" % _MAX_PAYLOAD)
        if not 1 <= window <= _MAX_WINDOW:
            raise LocalProtocolError("window must be 1..%d" % _MAX_WINDOW)
        if rx_size is None:
            rx_size = window * max_payload
        if rx_size < max_payload:
            raise LocalProtocolError("rx_size must hold at least one frame")
        if clock is None:
            raise LocalProtocolError("the link needs a clock")
        if random is None:
            from .rand import default_random
            random = default_random()
        self._clock = clock
        self._random = random
        self.max_payload = max_payload
        self.window = window
        # The largest raw frame: a full DATA frame, or a SYN when payloads are tiny.
        body_max = max_payload if max_payload > _SYN_BODY_LEN else _SYN_BODY_LEN
        raw_max = _HEADER_LEN + body_max + _CRC_LEN
        # Size of an output buffer that holds any frame data_to_send() writes: the largest
        # raw frame COBS-encoded (a code byte per 254 bytes, plus one), both delimiters
        # included.
        self.max_frame = raw_max + raw_max // 254 + 1 + 2
        if rto_ms is None:
            # L4: twice the time to put a full window on the wire (10 bits per byte), plus
            # 100 ms for the peer to turn round: no spurious go-back on a busy line.
            rto_ms = 2 * window * self.max_frame * 10000 // baud + 100
        self.rto_ms = rto_ms
        self.max_rto_ms = max(max_rto_ms, rto_ms)
        self.keepalive_ms = keepalive_ms
        self.down_ms = down_ms

        # Buffers, made once. _fr collects one encoded frame (decoded in place); _raw builds
        # one outgoing raw frame; _tx holds `window` slots of max_payload bytes (unacked and
        # unsent data); _rx is the ring of received bytes not yet read.
        self._fr = bytearray(self.max_frame - 2)
        self._raw = bytearray(raw_max)
        self._tx = bytearray(window * max_payload)
        self._tlen = bytearray(window)    # bytes in each slot (max_payload <= 255)
        self._rx = bytearray(rx_size)
        self._crc = bytearray(_CRC_LEN)     # a received frame's CRC, computed for comparison
        self._nonce = bytearray(_NONCE_LEN)
        self._peer = bytearray(_NONCE_LEN)  # all zero: no peer known

        # Counters (L7), for tests, benchmarks and logs.
        self.frames_sent = 0
        self.frames_received = 0
        self.retransmits = 0
        self.bad_frames = 0        # CRC, COBS, length or type wrong
        self.overruns = 0          # frames longer than max_frame before a delimiter
        self.dropped_full = 0      # in-order DATA that did not fit the receive buffer
        self.peer_resets = 0
        self._flen = 0
        self._fover = False
        self._events = 0           # latched events, one bit each
        self._start(self._clock())

    # ------------------------------------------------------------------ session

    def _start(self, now):
        # A new session of ours (L3): fresh nonce, empty buffers, Sync.
        while True:
            b = self._random(_NONCE_LEN)
            if b is None or len(b) != _NONCE_LEN:
                raise CryptoError("random source returned a wrong length")
            if b[0] | b[1] | b[2] | b[3]:
                break                   # all-zero means "unknown" in the echo field
        copy_into(self._nonce, 0, b, 0, _NONCE_LEN)
        for i in range(_NONCE_LEN):
            self._peer[i] = 0
        self._clear()
        self._state = _SYNC
        self._syn_pending = True
        self._t_rx = now
        self._t_tx = now

    def _clear(self):
        # Discard both directions' data and sequence state.
        self._base = 0           # seq of the oldest unacked slot
        self._bslot = 0          # its slot index
        self._count = 0          # slots in use (sent-unacked, then unsent)
        self._next_off = 0       # offset from _base of the next slot to transmit
        self._hi_off = 0         # offset from _base past the highest slot ever sent
        self._pwin = 0           # the peer's credit, in frames from _base
        self._rto = self.rto_ms
        self._t_rto = 0
        self._expect = 0         # next seq we accept
        self._rhead = 0
        self._rlen = 0
        self._adv = 0            # credit we last advertised
        self._ack_pending = False
        self._nak_pending = False
        self._naked = False      # a NAK go-back was done for the current _base

    def reset(self):
        """Start a new session of our own (new nonce): buffered data in both directions is
        discarded, and the peer sees PEER_RESET. For an application that restarts its
        upper layer without rebooting."""
        self._start(self._clock())

    # ------------------------------------------------------------------ status

    @property
    def state_name(self):
        return _STATES[self._state][0]

    @property
    def up(self):
        """True while synchronised and the peer has been heard within down_ms."""
        return self._state == _UP

    @property
    def synced(self):
        """True once the session is established (also while down)."""
        return self._state != _SYNC

    @property
    def readable(self):
        """Received bytes waiting for recv_into()."""
        return self._rlen

    @property
    def writable(self):
        """Bytes send() would take now."""
        free = (self.window - self._count) * self.max_payload
        if self._count and self._count - 1 >= self._hi_off:
            free += self.max_payload - self._tlen[(self._bslot + self._count - 1) % self.window]
        return free

    @property
    def unacked(self):
        """Bytes written with send() that the peer has not acknowledged yet."""
        n = 0
        for k in range(self._count):
            n += self._tlen[(self._bslot + k) % self.window]
        return n

    # ------------------------------------------------------------------ application side

    def send(self, data, off=0, n=-1):
        """Queue up to n bytes (default all) of data[off:] for the peer; return how many
        were taken (fewer, down to 0, when the window is full: try again after the peer
        acknowledges). Data queued before the session is up waits for it."""
        if n < 0:
            n = len(data) - off
        took = 0
        w = self.window
        mp = self.max_payload
        while took < n:
            last = self._count - 1
            if last >= self._hi_off:
                # The newest slot was never sent: it may still grow.
                s = (self._bslot + last) % w
                room = mp - self._tlen[s]
                if room:
                    k = n - took if n - took < room else room
                    copy_into(self._tx, s * mp + self._tlen[s], data, off + took, k)
                    self._tlen[s] += k
                    took += k
                    continue
            if self._count == w:
                break
            s = (self._bslot + self._count) % w
            self._tlen[s] = 0
            self._count += 1
        return took

    def recv_into(self, buf, off=0, n=-1):
        """Move up to n (default len(buf) - off) received bytes into buf[off:]; return the
        count (0: nothing buffered). Freeing space re-opens the peer's window."""
        if n < 0:
            n = len(buf) - off
        if n > self._rlen:
            n = self._rlen
        size = len(self._rx)
        done = 0
        while done < n:
            k = n - done
            if self._rhead + k > size:
                k = size - self._rhead
            copy_into(buf, off + done, self._rx, self._rhead, k)
            self._rhead = (self._rhead + k) % size
            done += k
        self._rlen -= n
        if n and self._credit() > self._adv:
            self._ack_pending = True      # window update (L5)
        return n

    def _credit(self):
        c = (len(self._rx) - self._rlen) // self.max_payload
        return c if c < self.window else self.window

    # ------------------------------------------------------------------ line input

    def receive_data(self, data, n=-1):
        """Take n (default all) bytes from the line; return n. Complete frames are handled
        at once; a frame's bytes beyond max_frame are dropped until the next delimiter."""
        if n < 0 or n > len(data):
            n = len(data)
        fr = self._fr
        cap = len(fr)
        for i in range(n):
            b = data[i]
            if b == 0:
                if self._flen and not self._fover:
                    self._frame(self._flen)
                self._flen = 0
                self._fover = False
            elif self._flen < cap:
                fr[self._flen] = b
                self._flen += 1
            elif not self._fover:
                self._fover = True
                self.overruns += 1
        return n

    def _frame(self, n):
        # One delimited block: decode, check, dispatch (L2). Bad frames only count.
        fr = self._fr
        n = cobs_decode(fr, n)
        if n < _HEADER_LEN + _CRC_LEN:
            self.bad_frames += 1
            return
        n -= _CRC_LEN
        c = self._crc
        crc32_into(fr, 0, n, c, 0)
        if c[0] != fr[n] or c[1] != fr[n + 1] or c[2] != fr[n + 2] or c[3] != fr[n + 3]:
            self.bad_frames += 1
            return
        typ = fr[0] & 0x0F
        flags = fr[0] & 0xF0
        # The three receive steps below are written out here, not as methods of their own:
        # each method is ~100 B of a board's heap and its name and arguments are interned.
        if typ == _T_SYN:
            if n != _HEADER_LEN + _SYN_BODY_LEN:
                self.bad_frames += 1
                return
            self.frames_received += 1
            # L3: the SYN exchange. fr[4:8] is the sender's nonce, fr[8:12] its echo of ours.
            same = True
            for i in range(_NONCE_LEN):
                if fr[4 + i] != self._nonce[i]:
                    same = False
                    break
            if same:
                self.bad_frames += 1   # our own nonce: a looped-back line, not a peer
                return
            known = True
            for i in range(_NONCE_LEN):
                if fr[4 + i] != self._peer[i]:
                    known = False
                    break
            now = self._clock()
            if not known:
                if self._state != _SYNC:
                    # The peer restarted: its session and ours end here.
                    self.peer_resets += 1
                    self._events |= 1 << PEER_RESET
                    self._clear()
                    self._state = _SYNC
                for i in range(_NONCE_LEN):
                    self._peer[i] = fr[4 + i]
            if self._state == _SYNC:
                echoed = True
                for i in range(_NONCE_LEN):
                    if fr[8 + i] != self._nonce[i]:
                        echoed = False
                        break
                if echoed:
                    # Both nonces bound: sequence numbers start at 0 in both directions.
                    # Data queued while in Sync (never sent) stays queued.
                    self._base = 0
                    self._expect = 0
                    self._next_off = 0
                    self._hi_off = 0
                    win = fr[3]
                    self._pwin = win if win < self.window else self.window
                    self._state = _UP
                    self._events |= 1 << LINK_UP
                    self._t_rx = now
            else:
                self._t_rx = now        # heard (as below)
                if self._state == _DOWN:
                    self._state = _UP
                    self._events |= 1 << LINK_UP
            if not flags & _F_UP:
                self._syn_pending = True      # the peer is not synchronised: answer
            return
        if typ == _T_DATA:
            plen = n - _HEADER_LEN
            if plen < 1 or plen > self.max_payload:
                self.bad_frames += 1
                return
        elif typ != _T_ACK or n != _HEADER_LEN:
            self.bad_frames += 1
            return
        self.frames_received += 1
        if not _STATES[self._state][1]:
            return              # Sync: DATA/ACK belong to a session we do not have (yet)
        now = self._clock()
        # Heard from the peer: a link that was down is up again (L6).
        self._t_rx = now
        if self._state == _DOWN:
            self._state = _UP
            self._events |= 1 << LINK_UP

        # L4: cumulative ack (fr[2]). Valid when it acknowledges nothing or slots we have
        # sent; a stale or bogus one is ignored, its window (fr[3]) included.
        d = (fr[2] - self._base) & 0xFF
        if d <= self._hi_off:
            if d:
                self._base = (self._base + d) & 0xFF
                self._bslot = (self._bslot + d) % self.window
                self._count -= d
                self._hi_off -= d
                self._next_off = self._next_off - d if self._next_off > d else 0
                self._rto = self.rto_ms         # progress ends the backoff
                self._t_rto = now
                self._naked = False
            if (flags & _F_NAK and self._hi_off and self._next_off >= self._hi_off
                    and not self._naked):
                # The receiver saw a frame after seq fr[2]: fr[2] was lost (it is what it acks).
                # Go back now (L4), once per oldest frame (a second loss of it waits for the
                # timer, so a loss pattern in step with our resends cannot keep us busy), and
                # not while a go-back is under way (the NAK may be about its predecessor).
                self._next_off = 0
                self._t_rto = now
                self._naked = True
            win = fr[3]
            self._pwin = win if win < self.window else self.window
        if typ != _T_DATA:
            return

        # L4-L5: DATA seq fr[1]. In-order payloads are delivered if they fit, everything
        # else is acked so the sender learns where we are.
        self._ack_pending = True
        seq = fr[1]
        if seq != self._expect:
            if (seq - self._expect) & 0xFF < 128:
                self._nak_pending = True      # a gap: ask for a go-back
            return
        size = len(self._rx)
        if plen > size - self._rlen:
            self.dropped_full += 1            # the peer overran our credit
            return
        tail = (self._rhead + self._rlen) % size
        done = 0
        while done < plen:
            k = plen - done
            if tail + k > size:
                k = size - tail
            copy_into(self._rx, tail, fr, _HEADER_LEN + done, k)
            tail = (tail + k) % size
            done += k
        self._rlen += plen
        self._expect = (self._expect + 1) & 0xFF

    # ------------------------------------------------------------------ timers and events

    def _timers(self, now):
        st = self._state
        idle = (now - self._t_tx) & _TICKS_MASK
        if _STATES[st][2]:
            if idle >= self._rto:
                self._syn_pending = True            # L3: SYN every rto while in Sync
            return
        if _STATES[st][3] and ((now - self._t_rx) & _TICKS_MASK) >= self.down_ms:
            self._state = _DOWN
            self._events |= 1 << LINK_DOWN
        if self._hi_off and ((now - self._t_rto) & _TICKS_MASK) >= self._rto:
            # L4: go back to the oldest unacked frame, back off.
            self._next_off = 0
            self._t_rto = now
            r = self._rto * 2
            self._rto = r if r < self.max_rto_ms else self.max_rto_ms
        if idle >= self.keepalive_ms:
            self._ack_pending = True                # L6: keepalive

    def next_event(self):
        """Check the timers; return one latched event (LINK_UP, LINK_DOWN, PEER_RESET) or
        NEED_DATA. Call it, and data_to_send(), whenever bytes arrived or time passed."""
        self._timers(self._clock())
        ev = self._events
        if not ev:
            return NEED_DATA
        for e in (PEER_RESET, LINK_DOWN, LINK_UP):
            if ev & (1 << e):
                self._events = ev & ~(1 << e)
                return e
        return NEED_DATA

    # ------------------------------------------------------------------ line output

    def data_to_send(self, out, off=0):
        """Write at most one encoded frame, delimiters included, into out[off:]; return its
        length (0: nothing to send now). Call until it returns 0. `out` needs max_frame
        bytes from off; LocalProtocolError otherwise."""
        if len(out) - off < self.max_frame:
            raise LocalProtocolError("output buffer smaller than max_frame")
        now = self._clock()
        self._timers(now)
        raw = self._raw
        if self._syn_pending:
            self._syn_pending = False
            raw[0] = _T_SYN | (0 if self._state == _SYNC else _F_UP)
            raw[1] = 0
            raw[2] = 0
            raw[3] = self._adv = self._credit()   # the credit advertised
            copy_into(raw, 4, self._nonce, 0, _NONCE_LEN)
            copy_into(raw, 8, self._peer, 0, _NONCE_LEN)
            return self._emit(_HEADER_LEN + _SYN_BODY_LEN, out, off, now)
        if self._state == _SYNC:
            return 0
        k = self._next_off
        if k < self._count and k < self._pwin:
            s = (self._bslot + k) % self.window
            plen = self._tlen[s]
            if k < self._hi_off:
                self.retransmits += 1
            elif not self._hi_off:
                self._t_rto = now           # the timer runs from the first outstanding frame
            self._next_off = k + 1
            if self._next_off > self._hi_off:
                self._hi_off = self._next_off
            self._header(_T_DATA, (self._base + k) & 0xFF)
            copy_into(raw, _HEADER_LEN, self._tx, s * self.max_payload, plen)
            return self._emit(_HEADER_LEN + plen, out, off, now)
        if self._ack_pending:
            self._header(_T_ACK, 0)
            return self._emit(_HEADER_LEN, out, off, now)
        return 0

    def _header(self, typ, seq):
        raw = self._raw
        raw[0] = typ | (_F_NAK if self._nak_pending else 0)
        raw[1] = seq
        raw[2] = self._expect
        raw[3] = self._adv = self._credit()   # the credit advertised
        self._ack_pending = False           # every DATA/ACK frame carries the ack
        self._nak_pending = False

    def _emit(self, n, out, off, now):
        # CRC (big-endian) after the raw frame, COBS, a delimiter on each side (L1).
        raw = self._raw
        crc32_into(raw, 0, n, raw, n)
        out[off] = 0
        m = cobs_encode(raw, n + _CRC_LEN, out, off + 1)
        out[off + 1 + m] = 0
        self._t_tx = now
        self.frames_sent += 1
        return m + 2
