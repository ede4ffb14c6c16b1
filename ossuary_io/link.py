# A byte-stream transport over the serial link layer: what SecureStream drives instead of a
# bare UART, so the secure channel runs over ossuary_micro.link.Link unchanged.
#
#   link = Link(clock)                                   # ossuary_micro.link
#   ls = LinkStream(link, serial.Serial(dev, 115200, timeout=0))   # or machine.UART(...)
#   s = SecureStream(conn, ls, clock=clock)              # exactly as over the port itself
#
# LinkStream looks like a pyserial Serial / machine.UART to SecureStream: read / readinto /
# write, and `in_waiting` / `any()` saying how many bytes can be read without blocking. Every
# one of those calls first does one round of I/O on the real port (`pump`): read what the
# port has without waiting, hand it to the link, collect its events, write every frame it has.
# So the link's timers (retransmission, keepalive, link down) run as long as the application
# calls into the stream; an application that goes quiet for long should call pump().
#
# The port must not block on reads: pyserial with timeout=0, a UART with timeout=0 (or one
# that offers any()), a non-blocking file or socket. Writes to the port may block: frames are
# small (max_frame bytes, 137 by default).
#
# Peer restart: the link discards both directions' data (PEER_RESET). The secure session that
# ran over it is then dead too, so the next read or write raises LinkReset (a TransportClosed,
# as if the cable had been unplugged and replugged): the application makes a new Connection
# and SecureStream over the same LinkStream. LINK_DOWN / LINK_UP change nothing for reads and
# writes (the data waits); they are counted and shown by `up`.

import sys

from ossuary_micro.errors import OssuaryError
from ossuary_micro.link import NEED_DATA, LINK_UP, LINK_DOWN, PEER_RESET

from .errors import TransportError, TransportClosed
# The stream helper's notion of "not now" (EAGAIN, timeouts...) and its sleep, shared.
from ._transport import _would_block, _sleep_ms

_MICROPYTHON = sys.implementation.name == "micropython"


class LinkReset(TransportClosed):
    """The peer restarted (a new link session): data in flight in both directions was
    discarded, and the secure session over the link must be started again."""


class LinkStream:
    """Byte-stream transport over `link` (an ossuary_micro.link.Link) and `port` (the serial
    device: pyserial Serial, machine.UART, or any object with non-blocking read/readinto and
    write). Raises only OssuaryError subclasses: TransportError when the port fails,
    LinkReset once after each peer restart. The caller owns and closes `port`.

    Attributes: link, port, `downs` / `ups` / `resets` (event counts), `up` (property).
    """

    def __init__(self, link, port, read_size=256):
        self.link = link
        self.port = port
        self.downs = 0
        self.ups = 0
        self.resets = 0
        self._reset_pending = False
        self._ibuf = bytearray(read_size)
        self._imv = memoryview(self._ibuf)
        self._obuf = bytearray(link.max_frame)
        self._omv = memoryview(self._obuf)
        # How the port tells what is waiting: pyserial's in_waiting is a property (look it
        # up on the type so probing does no I/O), a UART has any().
        if hasattr(type(port), "in_waiting"):
            self._avail = 1
        elif hasattr(port, "any"):
            self._avail = 2
        else:
            self._avail = 0
        self._readinto = hasattr(port, "readinto")

    @property
    def up(self):
        return self.link.up

    # -- the transport surface SecureStream uses ---------------------------------------------

    @property
    def in_waiting(self):
        """Bytes readable now (after one round of I/O)."""
        self.pump()
        return self.link.readable

    def any(self):
        return self.in_waiting

    def readinto(self, buf, n=-1):
        """Read up to n (default len(buf)) received bytes into buf; 0 when none are waiting
        (never blocks, never means EOF). Raises LinkReset, TransportError."""
        self.pump()
        self._check_reset()
        if n < 0 or n > len(buf):
            n = len(buf)
        return self.link.recv_into(buf, 0, n)

    def read(self, n=-1):
        """Up to n received bytes (default: all waiting), b"" when none (allocates)."""
        self.pump()
        self._check_reset()
        if n < 0:
            n = self.link.readable
        buf = bytearray(n)
        k = self.link.recv_into(buf)
        return bytes(buf[:k])

    def write(self, data):
        """Queue as much of data as the link's window takes now and send it; return the count
        (0 when the window is full: the peer has not acknowledged yet, or the line is cut).
        Raises LinkReset, TransportError."""
        self.pump()
        self._check_reset()
        n = self.link.send(data)
        if n:
            self._flush()
        return n

    def flush_acked(self, clock, timeout_ms):
        """Pump until the peer has acknowledged everything written, or timeout_ms passed
        (on `clock`, monotonic ms). Returns True when all was acknowledged."""
        start = clock()
        while self.link.unacked:
            if ((clock() - start) & 0x3FFFFFFF) >= timeout_ms:
                return False
            self.pump()
            _sleep_ms(1)
        return True

    # -- one round of I/O ---------------------------------------------------------------------

    def pump(self):
        """Read what the port has (without waiting), process it, run the link's timers and
        write every frame the link has to send. Returns the number of line bytes read."""
        got = 0
        while True:
            k = self._read_port()
            if not k:
                break
            self.link.receive_data(self._ibuf, k)
            got += k
            if k < len(self._ibuf):
                break
        while True:
            ev = self.link.next_event()
            if ev == NEED_DATA:
                break
            if ev == PEER_RESET:
                self.resets += 1
                self._reset_pending = True
            elif ev == LINK_DOWN:
                self.downs += 1
            elif ev == LINK_UP:
                self.ups += 1
        self._flush()
        return got

    def _check_reset(self):
        if self._reset_pending:
            self._reset_pending = False
            raise LinkReset("link peer restarted: session data discarded")

    def _flush(self):
        while True:
            n = self.link.data_to_send(self._obuf)
            if not n:
                return
            self._write_port(n)

    def _read_port(self):
        p = self.port
        want = len(self._ibuf)
        try:
            if self._avail:
                a = p.in_waiting if self._avail == 1 else p.any()
                if a <= 0:
                    return 0
                if a < want:
                    want = a
            if self._readinto:
                if _MICROPYTHON:
                    n = p.readinto(self._ibuf, want)
                else:
                    n = p.readinto(self._imv[0:want])
            else:
                chunk = p.read(want)
                n = None if chunk is None else len(chunk)
                if n:
                    if n > want:
                        raise TransportError("port returned more bytes than asked for")
                    self._ibuf[0:n] = chunk
        except OssuaryError:
            raise
        except Exception as e:
            if _would_block(e):
                return 0
            raise TransportError("serial read failed: %s" % (e,))
        return n or 0

    def _write_port(self, n):
        # Whole frames only: a frame cut short is a lost frame, and the link would repair it,
        # but a port that accepts nothing for this many tries is broken.
        off = 0
        tries = 0
        while off < n:
            try:
                w = self.port.write(self._omv[off:n])
            except Exception as e:
                if not _would_block(e):
                    raise TransportError("serial write failed: %s" % (e,))
                w = 0
            if w is None:
                w = 0
            off += w
            if not w:
                tries += 1
                if tries > 2000:
                    raise TransportError("serial port accepts no data")
                _sleep_ms(1)
