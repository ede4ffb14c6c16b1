# ossuary-cat: netcat over an Ossuary secure channel (TCP or any pyserial URL), CPython only.
#
# Standard input is sent encrypted, what the peer sends goes to standard output, logs go to
# standard error (public keys only, never secrets). One connection per run, like `nc`.
# Every failure ends with one line on stderr and an exit code that says which kind (EPILOG).

import argparse
import os
import selectors
import socket
import sys
import time

from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA,
                           HANDSHAKE_DONE, DATA, RESET, CLOSED, format_key, get_backend)
from ossuary_micro.connection2 import Connection2
from ossuary_micro.errors import OssuaryError, ConnectionClosed, ConnectionFailed, KeyFormatError
from ossuary_io import (SecureStream, TransportError, StreamTimeout, HandshakeTimeout,
                        UntrustedKey, PeerChanged, END_OF_STREAM)

from host_tools import keyfile
from host_tools.protocol_detect import protocol_of, HEADER_LEN

PROG = "ossuary-cat"

EXIT_OK = 0
EXIT_IO = 1             # local I/O error (stdout closed, ...)
EXIT_USAGE = 2          # bad arguments (argparse uses 2 too)
EXIT_KEY = 3            # key file or --trust value unreadable or malformed
EXIT_CONNECT = 4        # cannot connect / listen / open the serial port
EXIT_UNTRUSTED = 5      # the peer's key is not trusted (client without --tofu)
EXIT_FAILED = 6         # the session failed: reset limit, peer reported failure, key not authorized
EXIT_TIMEOUT = 7        # handshake or write timed out
EXIT_TRANSPORT = 8      # the transport broke or closed before a clean Ossuary close
EXIT_INTERRUPTED = 130  # Ctrl-C

# After we send Disconnect, how long to wait for the peer's echo (its close).
CLOSE_LINGER_MS = 1000

EPILOG = """\
wire protocols: 2 (Noise XX, docs/PROTOCOL.md) is the default for a client; 1 is libossuary
0.5.1's (--protocol 1). A server serves whichever the client speaks unless --protocol is given.

at stdin EOF (as netcat -N): in protocol 2, send the authenticated half-close: the peer's
stdout ends while it may go on sending to us; we copy what it sends to stdout until it also
ends (then we close) or closes. In protocol 1, which has no half-close, stop sending but keep
copying what the peer sends until it closes or has sent nothing for --linger seconds; then
close cleanly (--linger 0 closes at once).

exit codes:
  0  the session ended cleanly (stdin EOF, or the peer closed)
  1  local I/O error (e.g. stdout closed)
  2  bad arguments
  3  bad key file or --trust value
  4  cannot connect, listen or open the serial port (e.g. connection refused)
  5  untrusted peer key (the server key is not in --trust and --tofu was not given)
  6  the session failed: reset limit reached, the peer reported a failure
     (e.g. an --auth-clients server that does not know our key), the peer's key
     changed at a re-handshake after a reset (protocol 1; the first session's key is
     pinned), or an unauthenticated Reset/Disconnect ended an established protocol 2
     session (never read as a clean close)
  7  timed out (handshake not complete within --timeout, or the peer stopped reading)
  8  the transport closed or failed before a clean Ossuary close
130  interrupted

examples (libossuary 0.5.1 examples/server.c and examples/client.c):
  ossuary-cat --connect HOST:9981 --protocol 1 --trust be1ca074f4a58bbbd262a7f9523b6fb0bb9e8662287c3389a2e163dc55de281f
  ossuary-cat --listen 0.0.0.0:9981 --key server.key
"""


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage before the error; we print one line.
    def error(self, message):
        log("%s (see --help)" % message)
        sys.exit(EXIT_USAGE)


class Fatal(Exception):
    """Ends the program with one stderr line and an exit code."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code


def log(msg):
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.stderr.flush()


def parse_args(argv):
    p = _Parser(
        prog=PROG, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Send stdin over an Ossuary secure channel and write what the peer "
                    "sends to stdout (wire protocol 2, or libossuary 0.5's protocol 1).")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", metavar="HOST:PORT",
                       help="serve one TCP connection as the Ossuary server, then exit")
    where.add_argument("--connect", metavar="HOST:PORT", help="connect over TCP as the client")
    where.add_argument("--serial", metavar="URL",
                       help="use a serial port or any pyserial URL (client unless --server)")
    p.add_argument("--server", action="store_true",
                   help="with --serial: be the Ossuary server")
    p.add_argument("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    p.add_argument("--key", metavar="FILE",
                   help="own secret key file (64 hex characters); a server without one "
                        "uses a random key, a client without one is keyless")
    p.add_argument("--trust", metavar="HEX|FILE", action="append", default=[],
                   help="trusted peer public key, or a file of keys (one per line, # comments); "
                        "repeatable. Client: trusted server keys. --auth-clients server: "
                        "allowed client keys")
    p.add_argument("--tofu", action="store_true",
                   help="client: accept an unknown server key (logged to stderr)")
    p.add_argument("--auth-clients", action="store_true",
                   help="server: only accept clients whose key is in --trust")
    p.add_argument("--protocol", type=int, choices=(1, 2), default=None,
                   help="wire protocol: 2 (Noise XX; the client default) or 1 (libossuary "
                        "0.5.1). A server without it serves whichever the client speaks")
    p.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                   help="give up if the handshake is not complete after this long (default 20)")
    p.add_argument("--linger", type=float, default=2.0, metavar="SECONDS",
                   help="protocol 1: after stdin EOF, keep receiving until the peer closes "
                        "or sends nothing for this long (default 2; 0: close at once)")
    p.add_argument("-v", "--verbose", action="store_true", help="log resets and progress")
    a = p.parse_args(argv)
    is_server = a.listen is not None or (a.serial is not None and a.server)
    if a.protocol is None and not is_server:
        a.protocol = 2
    if a.server and a.serial is None:
        p.error("--server only applies to --serial (use --listen for TCP)")
    if is_server and a.tofu:
        p.error("--tofu is for clients (a server always shows its key)")
    if a.auth_clients and not is_server:
        p.error("--auth-clients is for servers (--listen, or --serial with --server)")
    if a.auth_clients and not a.trust:
        p.error("--auth-clients needs at least one --trust key")
    if not is_server and not a.trust and not a.tofu:
        p.error("a client needs --trust (the server's key) or --tofu")
    if a.timeout <= 0 or a.linger < 0:
        p.error("--timeout must be positive and --linger not negative")
    a.is_server = is_server
    return a


def split_hostport(value, opt):
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise Fatal(EXIT_USAGE, "%s %s: expected HOST:PORT" % (opt, value))
    return host, int(port)


def load_keys(a):
    seed = None
    if a.key:
        seed = keyfile.read_secret_key(a.key)
        if keyfile.loose_permissions(a.key):
            log("warning: key file %s is readable by others (chmod 600 it)" % a.key)
    trusted = []
    for value in a.trust:
        trusted.extend(keyfile.parse_trust(value))
    return seed, trusted


def open_transport(a):
    """(transport, description) for the chosen mode. Raises Fatal(EXIT_CONNECT)."""
    if a.connect:
        host, port = split_hostport(a.connect, "--connect")
        try:
            s = socket.create_connection((host, port), timeout=a.timeout)
        except OSError as e:
            raise Fatal(EXIT_CONNECT, "cannot connect to %s: %s" % (a.connect, e.strerror or e))
        s.setblocking(False)
        return s, "%s:%d" % (host, port)
    if a.listen:
        host, port = split_hostport(a.listen, "--listen")
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
            family, _, _, _, addr = infos[0]
            ls = socket.socket(family, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(addr)
            ls.listen(1)
        except OSError as e:
            raise Fatal(EXIT_CONNECT, "cannot listen on %s: %s" % (a.listen, e.strerror or e))
        bound = ls.getsockname()
        log("listening on %s:%d" % (bound[0], bound[1]))
        try:
            s, peer = ls.accept()
        finally:
            ls.close()
        s.setblocking(False)
        return s, "%s:%d" % (peer[0], peer[1])
    import serial
    try:
        port = serial.serial_for_url(a.serial, baudrate=a.baud, timeout=0)
    except (serial.SerialException, ValueError, OSError) as e:
        raise Fatal(EXIT_CONNECT, "cannot open serial port %s: %s" % (a.serial, e))
    return port, a.serial


def first_header(transport, timeout):
    """A server's first read: the header of the client's first packet, which says the wire
    protocol (protocol_detect). Raises Fatal on EOF or when nothing whole came in time."""
    got = bytearray()
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    try:
        sel.register(transport, selectors.EVENT_READ)
    except (ValueError, OSError, AttributeError):
        sel = None          # pyserial loop:// and the like: poll on a timer
    try:
        while len(got) < HEADER_LEN:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fatal(EXIT_TIMEOUT, "handshake timed out: no whole packet header from "
                                          "the client in %g s" % timeout)
            if sel is not None:
                sel.select(min(left, 0.05))
            want = HEADER_LEN - len(got)
            try:
                data = transport.recv(want) if hasattr(transport, "recv") else transport.read(want)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as e:
                raise Fatal(EXIT_TRANSPORT, "connection lost: %s" % (e.strerror or e))
            if data:
                got += data
            elif data is not None and hasattr(transport, "recv"):
                raise Fatal(EXIT_TRANSPORT, "connection lost: the client closed before its "
                                            "first packet")
            elif sel is None:
                time.sleep(0.01)
    finally:
        if sel is not None:
            sel.close()
    return bytes(got)


def exit_for(err):
    """(exit code, message) for an error that ended the session."""
    if isinstance(err, UntrustedKey):
        return EXIT_UNTRUSTED, ("untrusted server key %s (add it with --trust, or use --tofu)"
                                % format_key(err.key))
    if isinstance(err, PeerChanged):
        return EXIT_FAILED, ("session failed: the peer's key changed at a re-handshake "
                             "(pinned %s, presented %s): possible attack, nothing more sent"
                             % (format_key(err.pinned), format_key(err.presented)))
    if isinstance(err, HandshakeTimeout):
        return EXIT_TIMEOUT, "handshake timed out: %s" % err
    if isinstance(err, StreamTimeout):
        return EXIT_TIMEOUT, "timed out: %s" % err
    if isinstance(err, TransportError):
        return EXIT_TRANSPORT, "connection lost: %s" % err
    if isinstance(err, ConnectionClosed):
        return EXIT_OK, None
    if isinstance(err, KeyFormatError):
        return EXIT_KEY, str(err)
    if isinstance(err, ConnectionFailed):
        return EXIT_FAILED, "session failed: %s" % err
    return EXIT_FAILED, "session failed: %s: %s" % (type(err).__name__, err)


class Cat:
    """The copy loop: stdin -> stream, stream -> stdout."""

    def __init__(self, a, stream, verbose):
        self.a = a
        self.stream = stream
        self.verbose = verbose
        self.stdin = sys.stdin.buffer.fileno()
        self.stdout = sys.stdout.buffer.fileno()
        self.buf = bytearray(stream.conn.max_record or 1)
        self.sel = selectors.PollSelector() if hasattr(selectors, "PollSelector") \
            else selectors.SelectSelector()
        self.stdin_open = True
        self.stdin_registered = False
        self.eof_at = self.last_rx = 0.0    # time.monotonic() of stdin EOF / last peer data
        try:
            self.sel.register(stream.transport, selectors.EVENT_READ)
            self.transport_selectable = True
        except (ValueError, OSError, AttributeError):
            self.transport_selectable = False  # e.g. pyserial loop://: poll on a timer

    def _watch_stdin(self, on):
        if on and self.stdin_open and not self.stdin_registered:
            self.sel.register(self.stdin, selectors.EVENT_READ)
            self.stdin_registered = True
        elif not on and self.stdin_registered:
            self.sel.unregister(self.stdin)
            self.stdin_registered = False

    def _end_stdout(self):
        # Protocol 2: the peer half-closed. Our stdout ends here (its reader sees EOF) while
        # stdin goes on being sent: fd 1 now points at /dev/null, so it stays valid.
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.stdout)
        os.close(devnull)
        if self.verbose:
            log("peer ended its stream; stdout closed")

    def _write_out(self, n):
        mv = memoryview(self.buf)[:n]
        while mv:
            k = os.write(self.stdout, mv)
            mv = mv[k:]

    def _drain(self):
        # Run the stream until it needs bytes; copy received data to stdout.
        # Returns None to go on, or the terminal error (ConnectionClosed for a clean close).
        while True:
            ev = self.stream.poll()
            if ev == NEED_DATA:
                return None
            if ev == DATA:
                self.last_rx = time.monotonic()
                while self.stream.pending:
                    self._write_out(self.stream.recv_into(self.buf))
            elif ev == END_OF_STREAM:
                self._end_stdout()
            elif ev == HANDSHAKE_DONE:
                if self.verbose:
                    log("session re-established")
            elif ev == RESET:
                # Never silent: protocol 1 does not acknowledge records, so what we sent in
                # the session that just ended may not have arrived (and the peer's records in
                # flight were dropped).
                log("warning: session reset (%s); %d record(s) sent before it may be lost; "
                    "re-handshaking" % (self.stream.conn.error or "peer",
                                        self.stream.records_unconfirmed))
            elif ev == CLOSED:
                return self.stream.error or ConnectionClosed("closed")

    def run(self):
        """Copy until the session ends. Returns the ending error (ConnectionClosed: clean)."""
        while True:
            self._watch_stdin(self.stream.established)
            for key, _ in self.sel.select(0.05):
                if key.fd != self.stdin:
                    continue
                try:
                    data = os.read(self.stdin, len(self.buf) or 1)
                except OSError as e:
                    log("reading stdin failed: %s" % e.strerror)
                    data = b""
                if not data:
                    # Like netcat: stdin EOF ends our sending, not our receiving. The peer
                    # may still be answering. Protocol 2 tells it so (END, authenticated) and
                    # we close once it has ended too; protocol 1 has no half-close, so we
                    # close once the peer closes or stays silent for --linger seconds.
                    self.stdin_open = False
                    self._watch_stdin(False)
                    self.eof_at = time.monotonic()
                    if self.stream.protocol == 2:
                        self.stream.shutdown_write()
                        if self.verbose:
                            log("stdin closed; half-close sent, receiving until the peer ends")
                    elif self.verbose:
                        log("stdin closed; receiving until the peer closes or is idle %g s"
                            % self.a.linger)
                    continue
                self.stream.send(data, timeout_ms=int(self.a.timeout * 1000))
            # Also on timer ticks: the core's handshake timers need the clock to move.
            err = self._drain()
            if err is not None:
                return err
            if self.stream.protocol == 2:
                if self.stream.write_ended and self.stream.peer_ended:
                    # Both directions ended: the authenticated close (the peer may send its
                    # own at the same time; either one ends the session cleanly).
                    self.stream.close(CLOSE_LINGER_MS)
                    return ConnectionClosed("closed locally")
                continue
            if not self.stdin_open and \
                    time.monotonic() - max(self.eof_at, self.last_rx) >= self.a.linger:
                if self.verbose:
                    log("peer idle after stdin EOF, disconnecting")
                self.stream.close(CLOSE_LINGER_MS)
                return ConnectionClosed("closed locally")


def run(a):
    seed, trusted = load_keys(a)
    if a.is_server:
        role = AUTH_SERVER if a.auth_clients else UNAUTH_SERVER
    else:
        role = CLIENT
    transport, where = open_transport(a)
    try:
        clock = lambda: int(time.monotonic() * 1000)
        first = b""
        protocol = a.protocol
        if a.is_server:
            # The same key serves both protocols (its X25519 form in protocol 2), so the key
            # is the same whatever the client speaks.
            if seed is None:
                seed = os.urandom(32)
            log("server key %s" % format_key(get_backend().ed25519_public(bytes(seed))))
            if protocol is None:
                first = first_header(transport, a.timeout)
                protocol = protocol_of(first)
        make = Connection2 if protocol == 2 else Connection
        conn = make(role, secret_key=seed, authorized_keys=trusted, clock=clock)
        if first:
            conn.receive_data(first)
        if a.verbose or (a.is_server and a.protocol is None):
            log("wire protocol %d" % protocol)

        def trust(key):
            if a.tofu:
                log("trusting unknown server key %s (--tofu)" % format_key(key))
                return True
            return False

        stream = SecureStream(conn, transport, clock=clock, trust=trust,
                              write_timeout_ms=int(a.timeout * 1000))
        if a.verbose:
            log("connected to %s, handshaking" % where)
        peer = stream.handshake(timeout_ms=int(a.timeout * 1000))
        if role == UNAUTH_SERVER:
            # The client's claimed key is unverified here (spec 8.2.13): do not show it.
            log("session established with %s (client not authenticated)" % where)
        else:
            log("session established with %s, peer key %s" % (where, format_key(peer)))
        err = Cat(a, stream, a.verbose).run()
        if stream.resets:
            log("%d session reset(s); %d record(s) sent before a reset may have been lost"
                % (stream.resets, stream.records_unconfirmed))
        return exit_for(err)
    finally:
        transport.close()


def main(argv=None):
    try:
        a = parse_args(argv)
    except SystemExit as e:
        # argparse printed its usage and one error line; --help exits 0.
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    try:
        code, msg = run(a)
    except Fatal as e:
        code, msg = e.code, str(e)
    except KeyboardInterrupt:
        code, msg = EXIT_INTERRUPTED, "interrupted"
    except OssuaryError as e:
        code, msg = exit_for(e)
    except OSError as e:
        code, msg = EXIT_IO, "I/O error: %s" % (e.strerror or e)
    if msg:
        log(msg)
    return code


if __name__ == "__main__":
    sys.exit(main())
