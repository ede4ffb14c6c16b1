# The collector's transports: byte pipes with read() / write() / close(), chosen by what the
# source is (pyserial URL or device path, a raw fd such as a pty master, an accepted socket).
#
# The shape is pyserial's: the protocol shell (session.py) never knows which transport it
# drives. LinkTransport puts the serial link layer (docs/LINK.md) between a port and the
# session; serial ports use it unless --link off (bare protocol 1, e.g. libossuary peers). read() returns b"" after POLL_S without data (so the caller can look at its stop
# flag and deadlines) and at most READ_CHUNK bytes; every failure is TransportGone.

import os
import select
import socket
import time

READ_CHUNK = 4096           # bytes per transport read: bounds what one source can make us hold
POLL_S = 0.1                # read timeout: how often a source thread looks at the stop flag
WRITE_TIMEOUT_S = 2.0       # a peer that takes nothing for this long is treated as gone
LINK_TICK_S = 0.01          # over the link layer: longest wait between two rounds of link I/O
LINK_WRITE_TIMEOUT_S = 10.0  # ... and how long a full window may last (cuts, retransmissions)
CLOSE_DRAIN_S = 1.0         # TCP close: how long to read (and drop) what the peer still sends ...
CLOSE_DRAIN_MAX = 65536     # ... and at most this much


class TransportGone(Exception):
    """The port disappeared or the peer hung up."""


class SerialTransport:
    """A pyserial port (device path or URL: rfc2217://, socket://, loop://, ...)."""

    def __init__(self, url, baud):
        import serial
        self._serial_mod = serial
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=POLL_S,
                                              write_timeout=WRITE_TIMEOUT_S)
        except (serial.SerialException, OSError, ValueError) as e:
            raise TransportGone(str(e))

    def read(self):
        try:
            waiting = self.port.in_waiting
            data = self.port.read(max(1, min(waiting, READ_CHUNK)))
        except (self._serial_mod.SerialException, OSError) as e:
            raise TransportGone(str(e) or type(e).__name__)
        return data

    def write(self, data):
        try:
            self.port.write(data)
        except (self._serial_mod.SerialException, OSError) as e:
            raise TransportGone(str(e) or type(e).__name__)

    def close(self):
        try:
            self.port.close()
        except Exception:
            pass


class FdTransport:
    """A raw file descriptor, e.g. the master side of a pty from os.openpty(). Not closed
    by us: whoever opened it owns it."""

    def __init__(self, fd):
        self.fd = fd

    def read(self):
        try:
            r, _, _ = select.select([self.fd], [], [], POLL_S)
            if not r:
                return b""
            data = os.read(self.fd, READ_CHUNK)
        except OSError as e:
            # EIO: the pty's other side is gone.
            raise TransportGone(e.strerror or str(e))
        if not data:
            raise TransportGone("end of file")
        return data

    def write(self, data):
        mv = memoryview(data)
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        while mv:
            try:
                _, w, _ = select.select([], [self.fd], [], max(0.0, deadline - time.monotonic()))
                if not w:
                    raise TransportGone("write timed out")
                n = os.write(self.fd, mv)
            except OSError as e:
                raise TransportGone(e.strerror or str(e))
            mv = mv[n:]

    def close(self):
        pass


class SocketTransport:
    """An accepted TCP connection."""

    def __init__(self, sock):
        self.sock = sock

    def read(self):
        try:
            self.sock.settimeout(POLL_S)
            data = self.sock.recv(READ_CHUNK)
        except socket.timeout:
            return b""
        except OSError as e:
            raise TransportGone(e.strerror or str(e))
        if not data:
            raise TransportGone("peer closed the TCP connection")
        return data

    def write(self, data):
        try:
            self.sock.settimeout(WRITE_TIMEOUT_S)
            self.sock.sendall(data)
        except OSError as e:
            raise TransportGone(e.strerror or str(e) or "write timed out")

    def close(self):
        # Closing a socket with unread bytes makes the kernel send RST instead of FIN, and a
        # peer that writes after the RST arrived gets EPIPE / ECONNRESET before it has read
        # our last packet (the Disconnect telling it why). So: FIN first (our writes are done),
        # then read and drop what the peer still sends until it closes too, bounded in time
        # and bytes so a peer that never stops cannot hold us.
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + CLOSE_DRAIN_S
            dropped = 0
            while dropped < CLOSE_DRAIN_MAX:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                data = self.sock.recv(READ_CHUNK)
                if not data:
                    break
                dropped += len(data)
        except OSError:     # includes socket.timeout; the peer is gone or slow: close anyway
            pass
        try:
            self.sock.close()
        except OSError:
            pass



class LinkRestarted(TransportGone):
    """The peer started a new link session (a node that rebooted): what was in flight in
    both directions is gone, and so is the secure session over it. The port itself is fine."""


class _FdPort:
    """A raw fd as the non-blocking port LinkStream drives (any / read / write)."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd

    def any(self):
        r, _, _ = select.select([self.fd], [], [], 0)
        return READ_CHUNK if r else 0

    def read(self, n):
        data = os.read(self.fd, n)
        if not data:
            raise OSError("end of file")
        return data

    def write(self, data):
        _, w, _ = select.select([], [self.fd], [], WRITE_TIMEOUT_S)
        if not w:
            return 0
        return os.write(self.fd, data)


class LinkTransport:
    """The serial link layer (ossuary_micro.link, docs/LINK.md) on a port: read() and write()
    carry the byte stream above the link, which resynchronises after garbage and retransmits
    what the line corrupted, so a bit error costs a retransmission instead of a handshake.
    `port` is a pyserial Serial (SerialTransport.port) or a raw fd; the caller closes it.
    Raises TransportGone when the port fails, LinkRestarted when the peer restarts."""

    def __init__(self, port, baud=115200):
        from ossuary_micro.link import Link
        from ossuary_io.link import LinkStream
        if isinstance(port, int):
            port = _FdPort(port)
        self.port = port
        self.link = Link(lambda: int(time.monotonic() * 1000), baud=baud)
        self.stream = LinkStream(self.link, port)

    def _call(self, f, *args):
        from ossuary_io.link import LinkReset
        from ossuary_micro.errors import OssuaryError
        try:
            return f(*args)
        except LinkReset as e:
            raise LinkRestarted(str(e))
        except OssuaryError as e:       # TransportError: the port failed under the link
            raise TransportGone(str(e))

    def _wait(self, seconds):
        # Until the port has bytes or `seconds` passed; the link's timers run on our calls.
        # Ports without a file descriptor (rfc2217://, loop://) are polled.
        try:
            fd = self.port.fileno()
        except (AttributeError, OSError, ValueError):
            time.sleep(seconds)
            return
        try:
            select.select([fd], [], [], seconds)
        except (OSError, ValueError) as e:
            raise TransportGone(str(e) or type(e).__name__)

    def read(self):
        end = time.monotonic() + POLL_S
        while True:
            data = self._call(self.stream.read)
            if data:
                return data
            left = end - time.monotonic()
            if left <= 0:
                return b""
            self._wait(min(left, LINK_TICK_S))

    def write(self, data):
        mv = memoryview(bytes(data))
        deadline = time.monotonic() + LINK_WRITE_TIMEOUT_S
        while mv:
            n = self._call(self.stream.write, mv)
            mv = mv[n:]
            if mv:
                # The window is full: the peer has not acknowledged (or the line is cut).
                if time.monotonic() > deadline:
                    raise TransportGone("link: the peer acknowledged nothing for %g s"
                                        % LINK_WRITE_TIMEOUT_S)
                self._wait(LINK_TICK_S)

    def close(self):
        pass
