# The collector's transports: byte pipes with read() / write() / close(), chosen by what the
# source is (pyserial URL or device path, a raw fd such as a pty master, an accepted socket).
#
# The shape is pyserial's: the protocol shell (session.py) never knows which transport it
# drives. read() returns b"" after POLL_S without data (so the caller can look at its stop
# flag and deadlines) and at most READ_CHUNK bytes; every failure is TransportGone.

import os
import select
import socket
import time

READ_CHUNK = 4096           # bytes per transport read: bounds what one source can make us hold
POLL_S = 0.1                # read timeout: how often a source thread looks at the stop flag
WRITE_TIMEOUT_S = 2.0       # a peer that takes nothing for this long is treated as gone


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
        try:
            self.sock.close()
        except OSError:
            pass

