# Drive an ossuary_micro Connection over a byte stream: socket, pyserial Serial, machine.UART.
#
# The core (ossuary_micro.Connection) does no I/O; this is the shell around it. It runs on
# CPython and MicroPython, imports no socket/serial/machine module and only looks at what
# the transport object can do (duck typing):
#
#   reading   recv_into(buf, n)  CPython sockets
#             readinto(buf[, n]) MicroPython sockets and UARTs, pyserial Serial
#             read(n) / recv(n)  anything else
#   writing   send(data)         sockets (returns the count written)
#             write(data)        pyserial, UART, MicroPython streams (count, or None: would block)
#   waiting   select.poll        when the transport can be registered (has fileno() on CPython,
#                                is a stream on MicroPython); else `in_waiting` (pyserial) or
#                                `any()` (UART) tell how much can be read without blocking.
#
# Transport quirks and what we do about them:
#   * an empty read is EOF on a socket but a plain timeout on pyserial/UART, so "empty read
#     means EOF" is a setting (`eof_on_empty`), guessed from the object: True when it has
#     `recv` (sockets), False otherwise.
#   * readinto/read/write returning None (MicroPython non-blocking, nothing to do), and
#     BlockingIOError / socket.timeout / OSError(EAGAIN or, on MicroPython, ETIMEDOUT) are
#     all "not now", never errors.
#   * MicroPython sockets and files: readinto(buf, n) on a *blocking* object waits until all
#     n bytes arrived, even after poll() said "readable". Give SecureStream non-blocking
#     sockets there (sock.setblocking(False) after connect, as port/common/netlink.py does)
#     and raw ttys with VMIN=0; machine.UART is fine (its timeout bounds each read).
#   * partial writes are looped until everything is written, with a deadline
#     (`write_timeout_ms`): a transport that accepts nothing for that long raises StreamTimeout.
#   * any other transport exception becomes TransportError (TransportClosed for EOF or a
#     reset/broken connection): only OssuaryError subclasses leave this module, except what a
#     user-supplied `trust` callback raises.
#
# Identity across resets: protocol 1's Reset is unauthenticated, and after one the core runs a
# fresh handshake by itself. The stream pins the peer key of its first session and fails
# (PeerChanged) if a later handshake proves another one, so an attacker holding some other
# trusted key (or any key, under TOFU) cannot take over a stream by injecting a Reset. An
# UNAUTH_SERVER learns no client key (spec 8.2.13), so there is nothing to pin on that side.
#
# Loss across resets: protocol 1 has no acknowledgements, and a reset drops what was in
# flight. The stream counts resets and the records it sent in sessions that then ended by a
# reset (`resets`, `records_unconfirmed`); poll() also returns the RESET event. Applications
# that cannot tolerate silent loss check these or number their messages.
#
# Protocol 2 (docs/PROTOCOL.md): give the stream an ossuary_micro.connection2.Connection2
# instead (or build either with SecureStream.create(..., protocol=1|2)); the loop is the same.
# What differs: shutdown_write() sends the authenticated half-close (END), after which the
# peer's recv() returns b"" while it can still send; poll() reports it as END_OF_STREAM; only
# the authenticated CLOSE record reads as a clean close, and an unauthenticated Reset or
# Disconnect after the handshake fails the stream (ConnectionFailed) -- it never restarts it,
# so the peer key cannot change within a stream at all.
#
# Memory: one read buffer and one output buffer of conn.max_packet bytes (output at least
# MAX_CONTROL_PACKET), made once.
# Received plaintext is not copied: it stays in conn.plaintext, and the connection is not
# advanced (next_event) until the application has read all of it.

try:
    import select
except ImportError:  # pragma: no cover - ports without select
    select = None

import sys

from ossuary_micro import NEED_DATA, HANDSHAKE_DONE, UNTRUSTED_KEY, DATA, RESET, CLOSED
from ossuary_micro.wire import MAX_CONTROL_PACKET
from ossuary_micro.errors import OssuaryError, ConnectionClosed, ConnectionFailed, LocalProtocolError

from .errors import (TransportError, TransportClosed, StreamTimeout, HandshakeTimeout, UntrustedKey,
                     PeerChanged)
# What "not now" looks like on each transport, and a sleep: shared with link.py, which a
# serial node loads without this module.
from ._transport import (time, _CLOSED_ERRNOS, _default_clock, _sleep_ms, _errno_of,  # noqa: F401
                         _would_block)

_MICROPYTHON = sys.implementation.name == "micropython"

# connection2.END_OF_STREAM, the one event protocol 1 lacks (the peer half-closed). Spelt out
# here so that a protocol-1-only board never loads connection2; a test checks they agree.
END_OF_STREAM = 6
_RECORD_OVERHEAD2 = 24      # wire2.RECORD_OVERHEAD: a REKEY record may precede a data record

# Ticks arithmetic: differences modulo 2**30, like the core, so time.ticks_ms wrap-around
# is harmless; a deadline is at most 2**29 ms (6 days) away.
_TICKS_MASK = 0x3FFFFFFF
_MAX_WAIT_MS = 0x1FFFFFFF

# Longest single wait inside blocking calls, so the core's own timers (handshake wait states,
# 4 s by default) are checked while we wait for bytes.
_SLICE_MS = 50


def _transport_error(e, what):
    n = _errno_of(e)
    cls = TransportClosed if n in _CLOSED_ERRNOS else TransportError
    return cls("%s failed: %s" % (what, e), n)


class SecureStream:
    """An Ossuary session over a byte-stream transport.

    conn: an ossuary_micro.Connection (not yet used). transport: a socket, pyserial Serial,
    machine.UART or any object with read/readinto/recv_into and write/send (see the module
    comment). The stream owns `conn` (close() wipes it) but not the transport: the caller
    closes that.

    clock: monotonic milliseconds callable; default time.ticks_ms / time.monotonic.
    trust: called as trust(public_key_bytes) -> bool when the peer proves a key that is not
    authorized (UNTRUSTED_KEY). True accepts it (TOFU); False, or no callback, rejects it and
    the session fails with UntrustedKey.
    eof_on_empty: whether an empty read means end of file. Default: True for objects with
    `recv` (sockets), False otherwise (pyserial and UART return empty on a timeout).
    write_timeout_ms: how long a write may make no progress before StreamTimeout.

    Counters: `resets` (sessions ended by a Reset and re-established, or being
    re-established), `records_unconfirmed` (records sent in those sessions: protocol 1 does not
    acknowledge records, so any of them may have been lost), `records_sent` (this session).
    `peer_key`: the pinned peer key (None before the first handshake, and on UNAUTH_SERVER).
    """

    def __init__(self, conn, transport, clock=None, trust=None, eof_on_empty=None,
                 write_timeout_ms=5000):
        self.conn = conn
        self.transport = transport
        self.trust = trust
        self.clock = clock if clock is not None else _default_clock()
        self.write_timeout_ms = write_timeout_ms
        if eof_on_empty is None:
            eof_on_empty = hasattr(transport, "recv")
        self.eof_on_empty = eof_on_empty
        # Protocol 2's Connection2 has end_stream(); protocol 1's Connection does not.
        self.protocol = 2 if hasattr(conn, "end_stream") else 1
        size = conn.max_packet
        self._rbuf = bytearray(size)
        self._rmv = memoryview(self._rbuf)
        self._rpos = 0  # unfed bytes are _rbuf[_rpos:_rend]
        self._rend = 0
        # Output holds one data frame or one control packet, whichever is bigger (a small
        # max_record makes data frames shorter than a 208-byte ServerHandshake).
        if size < MAX_CONTROL_PACKET:
            size = MAX_CONTROL_PACKET
        if self.protocol == 2:
            size += _RECORD_OVERHEAD2   # room for a REKEY record before a full data record
        self._out = bytearray(size)
        self._omv = memoryview(self._out)
        self._doff = 0  # unread plaintext is conn.plaintext[_doff:_doff + _dlen]
        self._dlen = 0
        self._pmv = None
        self._eof = False
        self._peer_ended = False    # protocol 2: the peer's END arrived (it sends no more data)
        self._rejected = None
        self.peer_key = None        # pinned by the first handshake (see the module comment)
        self._changed = None        # the other key a later handshake presented
        self._session_ok = False    # handshake done and the peer key checked against the pin
        self.resets = 0
        self.records_sent = 0
        self.records_unconfirmed = 0
        # How to read: pick once, from what the object offers.
        if hasattr(transport, "recv_into"):
            self._rmode = 0
        elif hasattr(transport, "readinto"):
            self._rmode = 1
        elif hasattr(transport, "read"):
            self._rmode = 2
        else:
            self._rmode = 3  # recv
        self._send = transport.send if hasattr(transport, "send") else transport.write
        # pyserial's in_waiting is a property: look it up on the type so that probing for it
        # does not do I/O.
        if hasattr(type(transport), "in_waiting"):
            self._avail = 1
        elif hasattr(transport, "any"):
            self._avail = 2
        else:
            self._avail = 0
        self._rpoll = self._wpoll = None
        if select is not None and hasattr(select, "poll"):
            try:
                p = select.poll()
                p.register(transport, select.POLLIN)
                q = select.poll()
                q.register(transport, select.POLLOUT)
                self._rpoll, self._wpoll = p, q
            except Exception:
                # Not pollable (pyserial loop://, objects without fileno): fall back to
                # in_waiting/any() or the transport's own timeouts.
                self._rpoll = self._wpoll = None

    @classmethod
    def create(cls, role, transport, protocol=2, clock=None, trust=None, eof_on_empty=None,
               write_timeout_ms=5000, **conn_options):
        """A stream over `transport` with a new connection of wire protocol `protocol`: 1
        (libossuary 0.5.1, ossuary_micro.Connection) or 2 (Noise XX, Connection2). The
        remaining keywords (secret_key, authorized_keys, max_record, tofu_clients, ...) go to
        the connection, which gets the stream's clock. Raises LocalProtocolError for another
        protocol number, and whatever the connection's constructor raises."""
        if clock is None:
            clock = _default_clock()
        if protocol == 1:
            from ossuary_micro.connection import Connection as make
        elif protocol == 2:
            from ossuary_micro.connection2 import Connection2 as make
        else:
            raise LocalProtocolError("unknown wire protocol %r (1 or 2)" % (protocol,))
        conn = make(role, clock=clock, **conn_options)
        return cls(conn, transport, clock=clock, trust=trust, eof_on_empty=eof_on_empty,
                   write_timeout_ms=write_timeout_ms)

    # -- properties -------------------------------------------------------------------

    @property
    def established(self):
        """True while the session is established and its peer key checked against the pin
        (it is not after a reset, until the re-handshake)."""
        return self._session_ok and self.conn.established

    @property
    def pending(self):
        """Received plaintext bytes not yet read with recv()/recv_into()."""
        return self._dlen

    @property
    def peer_ended(self):
        """Protocol 2: True once the peer half-closed (its END arrived; recv() returns b"")."""
        return self._peer_ended

    @property
    def write_ended(self):
        """Protocol 2: True once shutdown_write() sent our END."""
        return self.protocol == 2 and self.conn.local_ended

    @property
    def error(self):
        """Why the session ended (an OssuaryError), or None."""
        if self._changed is not None:
            return PeerChanged(self.peer_key, self._changed)
        if self._rejected is not None:
            return UntrustedKey(self._rejected)
        return self.conn.error

    # -- public API -----------------------------------------------------------------------

    def handshake(self, timeout_ms=None):
        """Run the handshake until the session is established; return the peer's public key.

        Blocks up to timeout_ms (None: no overall limit; the core's own wait-state timers
        still reset a stalled handshake, and the reset limit ends it). Resets along the way
        are retried by the core. Raises HandshakeTimeout, UntrustedKey, PeerChanged (a
        re-handshake proved another key than the first session's), ConnectionFailed /
        ConnectionClosed (the connection ended), TransportClosed / TransportError.
        """
        start = self._now()
        while not self.established:
            if self._dlen:
                break  # data already arrived: established before a reset; let recv see it
            ev = self._pump(self._wait(start, timeout_ms))
            if ev == CLOSED:
                raise self._closed_error()
            if ev == HANDSHAKE_DONE or ev == DATA:
                break
            if self._expired(start, timeout_ms):
                raise HandshakeTimeout("handshake not complete after %d ms" % timeout_ms)
        return self.conn.remote_public_key

    def send(self, data, timeout_ms=None):
        """Encrypt and write all of `data`, as several records if it is longer than
        conn.max_record (never truncated). Returns len(data).

        If the session is being re-established after a reset, waits for that first (this
        needs unread received data to be read first). Raises StreamTimeout (timeout_ms passed,
        or the transport accepted nothing for write_timeout_ms), ConnectionFailed /
        ConnectionClosed / UntrustedKey / PeerChanged (session ended), TransportError.
        """
        mv = memoryview(data)
        total = len(mv)
        start = self._now()
        off = 0
        while off < total:
            if not self.established:
                if self.conn.closed:
                    raise self._closed_error()
                if self._dlen:
                    raise LocalProtocolError("session reset: read pending data before sending")
                ev = self._pump(self._wait(start, timeout_ms))
                if ev == CLOSED:
                    raise self._closed_error()
                if self._expired(start, timeout_ms) and not self.established:
                    raise StreamTimeout("session not re-established after %d ms" % timeout_ms)
                continue
            self._flush_control()
            n = total - off
            if n > self.conn.max_record:
                n = self.conn.max_record
            # send_data has no source offset: a memoryview window (one small allocation).
            m = self.conn.send_data(mv[off:] if off else mv, self._out, 0, n)
            self._write_all(m)
            self.records_sent += 1
            off += n
        return total

    def recv_into(self, buf, timeout_ms=None):
        """Read received plaintext into `buf`; return the byte count, 0 on a clean close
        (protocol 2: also once the peer half-closed; the stream may still send).

        Blocks until some data arrives (up to timeout_ms; None waits as long as the session
        lives). Resets are retried transparently (counted in `resets`). Raises StreamTimeout,
        ConnectionFailed / UntrustedKey / PeerChanged (session failed), TransportClosed (EOF without a clean close),
        TransportError.
        """
        start = self._now()
        while True:
            if self._dlen:
                n = len(buf)
                if n > self._dlen:
                    n = self._dlen
                buf[0:n] = self._pmv[self._doff:self._doff + n]
                self._doff += n
                self._dlen -= n
                return n
            if self._peer_ended:
                return 0                # protocol 2 half-close: nothing more will come
            ev = self._pump(self._wait(start, timeout_ms))
            if ev == END_OF_STREAM:
                return 0
            if ev == CLOSED:
                err = self._closed_error()
                if isinstance(err, ConnectionClosed):
                    return 0
                raise err
            if ev != DATA and self._expired(start, timeout_ms):
                raise StreamTimeout("no data after %d ms" % timeout_ms)

    def recv(self, max_bytes=None, timeout_ms=None):
        """Like recv_into, returning bytes (b"" on a clean close). max_bytes defaults to
        conn.max_record. Allocates the result."""
        if max_bytes is None:
            max_bytes = self.conn.max_record
        buf = bytearray(max_bytes)
        n = self.recv_into(buf, timeout_ms)
        return bytes(buf[:n])

    def poll(self):
        """One non-blocking step: flush pending control output, read what the transport has
        without waiting, and return one event: NEED_DATA (nothing happened), HANDSHAKE_DONE,
        DATA (plaintext is pending: read it with recv/recv_into before polling on), RESET
        (handshake restarting), END_OF_STREAM (protocol 2: the peer half-closed) or CLOSED
        (see .error). Call again until NEED_DATA.

        Does not block if the transport is non-blocking, pollable, or reports in_waiting /
        any(); writes of control packets may wait up to write_timeout_ms. Raises
        TransportClosed on EOF before a clean close, TransportError, StreamTimeout (writes).
        """
        return self._pump(0)

    def shutdown_write(self):
        """Protocol 2 half-close: send END (authenticated). The peer's recv() then returns
        b"" once it has read everything before it, while it may go on sending to us; our
        send() is refused from now on. The session ends with close() (or the peer's).
        Raises LocalProtocolError (protocol 1, which has no half-close; not established;
        already ended), StreamTimeout / TransportError (the write)."""
        if self.protocol != 2:
            raise LocalProtocolError("protocol 1 has no half-close: use close()")
        if not self.established:
            raise LocalProtocolError("Encrypted channel not established.")
        self._flush_control()
        self._write_all(self.conn.end_stream(self._out))

    send_eof = shutdown_write

    def wait_closed(self, timeout_ms=None):
        """After the peer half-closed (protocol 2), wait for the end of the session: returns
        once the peer's authenticated CLOSE arrived. Received data still pending is
        discarded. Raises StreamTimeout, ConnectionFailed (the session failed instead, e.g. an
        unauthenticated Disconnect), TransportClosed (EOF without a CLOSE), TransportError."""
        start = self._now()
        self._dlen = 0
        while True:
            ev = self._pump(self._wait(start, timeout_ms))
            self._dlen = 0
            if ev == CLOSED:
                err = self._closed_error()
                if isinstance(err, ConnectionClosed):
                    return
                raise err
            if self._expired(start, timeout_ms):
                raise StreamTimeout("session not closed after %d ms" % timeout_ms)

    def close(self, linger_ms=1000):
        """Close the session: send Disconnect (protocol 2, established: the authenticated
        CLOSE record), flush, then read (discarding) until the peer
        closes the transport or linger_ms passes, so the peer's Disconnect echo is consumed.
        Wipes the connection's secrets. Never raises for transport trouble during the close;
        the transport itself stays open (the caller owns it)."""
        self._dlen = 0
        try:
            if not self.conn.closed:
                self.conn.disconnect()
            self._flush_control()
            start = self._now()
            while linger_ms and not self._eof and not self._expired(start, linger_ms):
                n = self._read_some(self._wait(start, linger_ms))
                if n:
                    self._feed()
                    self._advance()
                self._rpos = self._rend = 0
        except OssuaryError:
            pass
        self.conn.close()

    # -- engine ------------------------------------------------------------------------------

    def _now(self):
        return self.clock() if self.clock is not None else 0

    def _expired(self, start, timeout_ms):
        if timeout_ms is None or self.clock is None:
            return False
        return ((self.clock() - start) & _TICKS_MASK) >= timeout_ms

    def _wait(self, start, timeout_ms):
        # How long the next blocking read may wait: a slice, bounded by the deadline.
        if timeout_ms is None or self.clock is None:
            return _SLICE_MS
        left = timeout_ms - ((self.clock() - start) & _TICKS_MASK)
        if left <= 0:
            return 0
        return left if left < _SLICE_MS else _SLICE_MS

    def _closed_error(self):
        if self._changed is not None:
            return PeerChanged(self.peer_key, self._changed)
        if self._rejected is not None:
            return UntrustedKey(self._rejected)
        err = self.conn.error
        if isinstance(err, OssuaryError):
            return err
        return ConnectionFailed("connection closed")

    def _pump(self, wait_ms):
        # One step. Pending plaintext blocks progress: conn.plaintext stays valid only until
        # the next next_event().
        if self._dlen:
            return DATA
        ev = self._advance()
        if ev != NEED_DATA:
            return ev
        if self._rpos < self._rend:
            return NEED_DATA  # the core's input is full; it will make room
        if self._eof:
            if self.conn.closed:
                return CLOSED
            raise TransportClosed("transport closed before the session was closed")
        if self._read_some(wait_ms):
            self._feed()
            return self._advance()
        return NEED_DATA

    def _advance(self):
        # Run the core until it needs bytes or has something to report. Handles
        # UNTRUSTED_KEY itself (trust callback) and writes every control packet it produces.
        conn = self.conn
        while True:
            self._flush_control()
            ev = conn.next_event()
            if ev == CLOSED:
                self._session_ok = False
                # The final Disconnect (or the echo of the peer's): if the peer has already
                # hung up, failing to write it changes nothing.
                try:
                    self._flush_control()
                except (TransportError, StreamTimeout):
                    pass
                return CLOSED
            self._flush_control()
            if ev == NEED_DATA:
                if self._rpos < self._rend and self._feed():
                    continue
                return NEED_DATA
            if ev == DATA:
                self._pmv = memoryview(conn.plaintext)
                self._doff = 0
                self._dlen = conn.data_len
                if self._dlen == 0:
                    continue  # an empty record carries nothing for the reader
                return DATA
            if ev == UNTRUSTED_KEY:
                key = bytes(conn.remote_public_key)
                if self.peer_key is not None and key != self.peer_key:
                    self._changed = key         # not the pinned peer: no trust question
                    conn.reject_key()
                elif self.trust is not None and self.trust(key):
                    conn.accept_key()
                else:
                    self._rejected = key
                    conn.reject_key()
                continue
            if ev == HANDSHAKE_DONE:
                key = conn.remote_public_key
                if key is not None:
                    if self.peer_key is None:
                        self.peer_key = bytes(key)
                    elif bytes(key) != self.peer_key:
                        # Another trusted key took over after a reset: fail before anything
                        # is sent to it (send() waits for _session_ok, not conn.established).
                        self._changed = bytes(key)
                        conn.disconnect(error=True)
                        continue
                self._session_ok = True
                return ev
            if ev == END_OF_STREAM:
                self._peer_ended = True
                return ev
            if ev == RESET:
                self._session_ok = False
                self.resets += 1
                self.records_unconfirmed += self.records_sent
                self.records_sent = 0
            return ev  # RESET

    def _feed(self):
        # Hand unfed read bytes to the core; returns how many it took.
        if self._rpos:
            took = self.conn.receive_data(self._rmv[self._rpos:self._rend])
        else:
            took = self.conn.receive_data(self._rbuf, self._rend)
        self._rpos += took
        if self._rpos >= self._rend:
            self._rpos = self._rend = 0
        return took

    def _flush_control(self):
        # Write every pending handshake/Reset/Disconnect packet.
        while True:
            n = self.conn.data_to_send(self._out)
            if not n:
                return
            self._write_all(n)

    def _read_some(self, wait_ms):
        # Read what the transport has (waiting up to wait_ms where we control the wait) into
        # the empty read buffer. Returns the byte count; sets _eof on end of file.
        want = len(self._rbuf)
        t = self.transport
        try:
            if self._rpoll is not None:
                if not self._rpoll.poll(wait_ms):
                    return 0
                if self._avail:
                    a = self._available()
                    if a < want:
                        want = a if a > 0 else 1  # 0 but readable: EOF or error shows on read
            elif self._avail:
                a = self._available()
                if a <= 0:
                    if wait_ms:
                        _sleep_ms(wait_ms if wait_ms < 5 else 5)
                    return 0
                if a < want:
                    want = a
            mode = self._rmode
            if mode == 0:
                n = t.recv_into(self._rbuf, want)
            elif mode == 1:
                if _MICROPYTHON:
                    n = t.readinto(self._rbuf, want)
                else:
                    n = t.readinto(self._rmv[0:want])
            else:
                chunk = t.read(want) if mode == 2 else t.recv(want)
                if chunk is None:
                    n = None
                else:
                    n = len(chunk)
                    if n > want:
                        raise TransportError("transport returned more bytes than asked for")
                    self._rbuf[0:n] = chunk
        except OssuaryError:
            raise
        except Exception as e:
            if _would_block(e):
                return 0
            raise _transport_error(e, "read")
        if n is None:
            return 0
        if n == 0:
            if self.eof_on_empty:
                self._eof = True
            elif wait_ms and self._rpoll is None and not self._avail:
                _sleep_ms(1)  # a timeout-less empty read: don't spin
            return 0
        self._rpos = 0
        self._rend = n
        return n

    def _available(self):
        if self._avail == 1:
            return self.transport.in_waiting
        return self.transport.any()

    def _write_all(self, n):
        # Write self._out[0:n] completely, looping over partial writes; no progress for
        # write_timeout_ms raises StreamTimeout.
        off = 0
        idle_start = None
        spins = 0
        while off < n:
            try:
                w = self._send(self._omv[off:n] if off else self._omv[0:n])
            except Exception as e:
                if not _would_block(e):
                    raise _transport_error(e, "write")
                w = 0
            if w is None:
                w = 0
            if w > 0:
                off += w
                idle_start = None
                spins = 0
                continue
            if idle_start is None:
                idle_start = self._now()
            elif self.clock is None:
                spins += 1
                if spins > 100000:
                    raise StreamTimeout("transport accepts no data")
            elif self._expired(idle_start, self.write_timeout_ms):
                raise StreamTimeout("transport accepted no data for %d ms" % self.write_timeout_ms)
            if self._wpoll is not None:
                try:
                    self._wpoll.poll(_SLICE_MS)
                except Exception as e:
                    raise _transport_error(e, "poll")
            else:
                _sleep_ms(1)
