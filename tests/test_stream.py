# SecureStream over real transports: socketpairs (blocking and non-blocking), a pty driven by
# pyserial on one end and a raw non-blocking fd on the other, pyserial loop://, and wrappers
# that inject partial writes, timeouts, EOF and I/O errors. Every test has its own deadline.

import errno
import io
import os
import signal
import socket
import threading
import time

import pytest
import serial

from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA, DATA,
                           HANDSHAKE_DONE, RESET, CLOSED, generate_keypair)
from ossuary_micro.errors import OssuaryError, ConnectionFailed, ConnectionClosed
from ossuary_io import (SecureStream, TransportError, TransportClosed, StreamTimeout,
                        HandshakeTimeout, UntrustedKey, PeerChanged)
from ossuary_micro import wire


def clock():
    return int(time.monotonic() * 1000)


SERVER_SEED, SERVER_PUB = generate_keypair()
CLIENT_SEED, CLIENT_PUB = generate_keypair()


def limit(seconds):
    """Give one test a longer time limit than the default 10 s."""
    def mark(fn):
        fn.limit = seconds
        return fn
    return mark


@pytest.fixture(autouse=True)
def deadline(request):
    # Per-test time limit (no pytest-timeout here): SIGALRM fails the test instead of hanging.
    limit = getattr(request.function, "limit", 10)

    def fire(signum, frame):
        raise AssertionError("test exceeded its %s s limit" % limit)

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


def make_conns(client_key=None, server_role=UNAUTH_SERVER, trust=True, authorize=True,
               max_record=16384, timeout_ms=4000):
    c = Connection(CLIENT, secret_key=client_key, authorized_keys=[SERVER_PUB] if trust else [],
                   clock=clock, max_record=max_record, timeout_ms=timeout_ms)
    auth = [CLIENT_PUB] if authorize else []
    s = Connection(server_role, secret_key=SERVER_SEED, authorized_keys=auth, clock=clock,
                   max_record=max_record, timeout_ms=timeout_ms)
    return c, s


class Runner:
    """Run fn in a thread; join() re-raises its exception and returns its result."""

    def __init__(self, fn):
        self.result = self.exc = None

        def body():
            try:
                self.result = fn()
            except BaseException as e:  # noqa: B902 - handed to the test thread
                self.exc = e

        self.t = threading.Thread(target=body, daemon=True)
        self.t.start()

    def join(self, timeout=8):
        self.t.join(timeout)
        assert not self.t.is_alive(), "peer thread still running"
        if self.exc is not None:
            raise self.exc
        return self.result


def recv_exactly(stream, n, timeout_ms=5000):
    out = bytearray()
    while len(out) < n:
        d = stream.recv(timeout_ms=timeout_ms)
        assert d, "clean close after %d of %d bytes" % (len(out), n)
        out += d
    return bytes(out)


def echo_server(stream, n):
    # Handshake, read n bytes, send them back reversed, then wait for the peer's close.
    stream.handshake(timeout_ms=5000)
    data = recv_exactly(stream, n)
    stream.send(data[::-1])
    return data, stream.recv(timeout_ms=5000)


# ---------------------------------------------------------------- blocking, socketpair


def test_blocking_socketpair_large_data_both_ways_and_clean_close():
    a, b = socket.socketpair()
    c, s = make_conns()
    cs, ss = SecureStream(c, a), SecureStream(s, b)
    payload = os.urandom(100000)  # > 16384: split into 7 records
    peer = Runner(lambda: echo_server(ss, len(payload)))
    assert cs.handshake(timeout_ms=5000) == SERVER_PUB
    assert cs.send(payload) == len(payload)
    assert recv_exactly(cs, len(payload)) == payload[::-1]
    cs.close(linger_ms=200)
    got, after_close = peer.join()
    assert got == payload
    assert after_close == b""  # clean close reads as b""
    assert c.closed and isinstance(s.error, ConnectionClosed)
    a.close(), b.close()


def test_records_never_exceed_max_record():
    # A small max_record forces splitting; each frame on the wire is at most max_packet.
    a, b = socket.socketpair()
    c, s = make_conns(max_record=100)
    cs, ss = SecureStream(c, a), SecureStream(s, b)
    peer = Runner(lambda: echo_server(ss, 1000))
    cs.handshake(timeout_ms=5000)
    data = bytes(range(250)) * 4
    cs.send(data)
    assert recv_exactly(cs, 1000) == data[::-1]
    cs.close(linger_ms=200)
    assert peer.join()[0] == data


def test_recv_into_small_buffer_reads_a_record_in_pieces():
    a, b = socket.socketpair()
    c, s = make_conns()
    cs, ss = SecureStream(c, a), SecureStream(s, b)
    peer = Runner(lambda: (ss.handshake(timeout_ms=5000), ss.send(b"0123456789"),
                           ss.recv(timeout_ms=5000)))
    cs.handshake(timeout_ms=5000)
    buf = bytearray(3)
    parts = []
    while sum(len(p) for p in parts) < 10:
        n = cs.recv_into(buf, timeout_ms=5000)
        assert 0 < n <= 3
        parts.append(bytes(buf[:n]))
    assert b"".join(parts) == b"0123456789"
    assert cs.pending == 0
    cs.close(linger_ms=200)
    peer.join()


def test_authenticated_server_with_client_key():
    a, b = socket.socketpair()
    c, s = make_conns(client_key=CLIENT_SEED, server_role=AUTH_SERVER)
    cs, ss = SecureStream(c, a), SecureStream(s, b)
    peer = Runner(lambda: ss.handshake(timeout_ms=5000))
    assert cs.handshake(timeout_ms=5000) == SERVER_PUB
    assert peer.join() == CLIENT_PUB  # the server saw (and verified) the client's key


def test_untrusted_server_key_rejected_without_trust_callback():
    a, b = socket.socketpair()
    c, s = make_conns(trust=False)
    cs, ss = SecureStream(c, a), SecureStream(s, b)
    peer = Runner(lambda: ss.recv(timeout_ms=5000))
    with pytest.raises(UntrustedKey) as ei:
        cs.handshake(timeout_ms=5000)
    assert ei.value.key == SERVER_PUB
    assert isinstance(ei.value, ConnectionFailed)
    # The server got our error Disconnect: it fails too instead of waiting.
    with pytest.raises(ConnectionFailed):
        peer.join()


def test_untrusted_server_key_accepted_by_trust_callback():
    a, b = socket.socketpair()
    c, s = make_conns(trust=False)
    seen = []
    cs = SecureStream(c, a, trust=lambda k: seen.append(k) or True)
    ss = SecureStream(s, b)
    peer = Runner(lambda: echo_server(ss, 5))
    assert cs.handshake(timeout_ms=5000) == SERVER_PUB
    assert seen == [SERVER_PUB]
    cs.send(b"hello")
    assert recv_exactly(cs, 5) == b"olleh"
    cs.close(linger_ms=200)
    peer.join()


def test_peer_failure_raises_from_recv():
    a, b = socket.socketpair()
    c, s = make_conns()
    cs, ss = SecureStream(c, a), SecureStream(s, b)

    def server():
        ss.handshake(timeout_ms=5000)
        s.disconnect(error=True)
        ss.poll()  # writes the error Disconnect

    peer = Runner(server)
    cs.handshake(timeout_ms=5000)
    peer.join()
    with pytest.raises(ConnectionFailed):
        cs.recv(timeout_ms=3000)


# ---------------------------------------------------------------- non-blocking, poll()


def test_nonblocking_socketpair_driven_by_poll_in_one_thread():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    c, s = make_conns()
    cs, ss = SecureStream(c, a), SecureStream(s, b)
    done = {cs: False, ss: False}
    got = {cs: bytearray(), ss: bytearray()}
    sent = {cs: False, ss: False}
    msg = {cs: os.urandom(40000), ss: os.urandom(30000)}
    buf = bytearray(4096)
    t0 = time.monotonic()
    while len(got[cs]) < 30000 or len(got[ss]) < 40000:
        assert time.monotonic() - t0 < 8, "no progress"
        for st in (cs, ss):
            t1 = time.monotonic()
            ev = st.poll()
            assert time.monotonic() - t1 < 1.0  # poll does not block
            assert ev in (NEED_DATA, HANDSHAKE_DONE, DATA), ev
            if ev == HANDSHAKE_DONE:
                done[st] = True
            while st.pending:
                n = st.recv_into(buf)
                got[st] += buf[:n]
            if done[st] and not sent[st]:
                st.send(msg[st])
                sent[st] = True
    assert bytes(got[ss]) == msg[cs] and bytes(got[cs]) == msg[ss]
    cs.close(linger_ms=0)
    t0 = time.monotonic()
    while ss.poll() != CLOSED:
        assert time.monotonic() - t0 < 3
    assert isinstance(ss.error, ConnectionClosed)


def test_poll_on_idle_socket_returns_need_data_quickly():
    a, b = socket.socketpair()  # blocking socket: poll() must still not block
    c, s = make_conns()
    ss = SecureStream(s, b)
    t0 = time.monotonic()
    for _ in range(20):
        assert ss.poll() == NEED_DATA
    assert time.monotonic() - t0 < 1.5


# ---------------------------------------------------------------- pty: pyserial <-> raw fd


@limit(15)
def test_pty_pyserial_client_raw_fd_server():
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), timeout=0)  # pyserial puts the tty in raw mode
    os.set_blocking(master, False)
    raw = io.FileIO(master, "r+b", closefd=False)  # readinto -> None when nothing is there
    c, s = make_conns()
    cs = SecureStream(c, port)  # no `recv`: empty reads are timeouts, not EOF
    ss = SecureStream(s, raw, eof_on_empty=False)
    assert not cs.eof_on_empty
    payload = os.urandom(20000)
    peer = Runner(lambda: echo_server(ss, len(payload)))
    cs.handshake(timeout_ms=5000)
    cs.send(payload)
    assert recv_exactly(cs, len(payload), timeout_ms=8000) == payload[::-1]
    cs.close(linger_ms=300)
    assert peer.join(10)[0] == payload
    port.close()
    os.close(slave)
    os.close(master)


def test_pty_hangup_is_a_transport_error_not_a_hang():
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), timeout=0)
    c, _ = make_conns()
    cs = SecureStream(c, port)
    os.close(master)  # the other end goes away
    with pytest.raises(TransportError):
        cs.handshake(timeout_ms=3000)
    port.close()
    os.close(slave)


# ---------------------------------------------------------------- pyserial loop://


def test_loop_url_poll_never_blocks_even_with_blocking_serial():
    # loop:// cannot be polled (no fileno) and timeout=None would make read(n) block
    # forever: the stream sizes reads from in_waiting instead. A client hearing its own
    # ClientHandshake treats it as a protocol error and resets.
    port = serial.serial_for_url("loop://", timeout=None)
    c, _ = make_conns()
    cs = SecureStream(c, port)
    assert cs._rpoll is None
    events = []
    t0 = time.monotonic()
    while RESET not in events:
        assert time.monotonic() - t0 < 3
        events.append(cs.poll())
    assert c.reset_count == 1
    port.close()


def test_loop_url_handshake_ends_by_reset_limit_quickly():
    # Hearing itself, the client resets until the limit: the blocking handshake ends with
    # ConnectionFailed instead of waiting in a read that never returns.
    port = serial.serial_for_url("loop://", timeout=None)
    c, _ = make_conns()
    cs = SecureStream(c, port)
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed):
        cs.handshake(timeout_ms=5000)
    assert time.monotonic() - t0 < 2
    assert c.closed
    port.close()


# ---------------------------------------------------------------- transport quirks


class Stingy:
    """A socket wrapper whose send writes at most 7 bytes, and every other call refuses
    (None, BlockingIOError or socket.timeout in turn): partial writes everywhere."""

    def __init__(self, sock):
        self.sock = sock
        self.calls = 0

    def recv_into(self, buf, n):
        return self.sock.recv_into(buf, n)

    def recv(self, n):
        return self.sock.recv(n)

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        self.calls += 1
        k = self.calls % 6
        if k == 1:
            return None
        if k == 3:
            raise BlockingIOError(errno.EAGAIN, "try again")
        if k == 5:
            raise socket.timeout("timed out")
        return self.sock.send(bytes(data[:7]))


def test_partial_writes_none_and_would_block_are_retried():
    a, b = socket.socketpair()
    c, s = make_conns()
    stingy = Stingy(a)
    cs, ss = SecureStream(c, stingy), SecureStream(s, b)
    payload = os.urandom(20000)
    peer = Runner(lambda: echo_server(ss, len(payload)))
    cs.handshake(timeout_ms=5000)
    cs.send(payload)
    assert recv_exactly(cs, len(payload)) == payload[::-1]
    assert stingy.calls > 20000 // 7
    cs.close(linger_ms=200)
    assert peer.join()[0] == payload


class Refuses:
    """A transport that never accepts a byte and never has any."""

    def readinto(self, buf):
        return None

    def write(self, data):
        return 0


def test_write_that_never_progresses_times_out():
    c, _ = make_conns()
    cs = SecureStream(c, Refuses(), write_timeout_ms=300)
    t0 = time.monotonic()
    with pytest.raises(StreamTimeout):
        cs.handshake(timeout_ms=5000)
    assert time.monotonic() - t0 < 2


class TimeoutSocket:
    """A socket with a read timeout seen through recv_into only (not pollable): reads
    raise socket.timeout when nothing arrives, like socket.settimeout()."""

    def __init__(self, sock):
        self.sock = sock
        sock.settimeout(0.05)

    def recv_into(self, buf, n):
        return self.sock.recv_into(buf, n)

    def recv(self, n):
        return self.sock.recv(n)

    def send(self, data):
        return self.sock.send(data)


def test_socket_timeouts_are_not_errors_and_deadlines_hold():
    a, b = socket.socketpair()
    c, s = make_conns()
    cs, ss = SecureStream(c, TimeoutSocket(a)), SecureStream(s, b)
    assert cs._rpoll is None
    peer = Runner(lambda: echo_server(ss, 3))
    cs.handshake(timeout_ms=5000)
    t0 = time.monotonic()
    with pytest.raises(StreamTimeout):
        cs.recv(timeout_ms=300)  # nothing sent yet
    assert 0.25 < time.monotonic() - t0 < 2
    cs.send(b"abc")
    assert recv_exactly(cs, 3) == b"cba"
    cs.close(linger_ms=200)
    peer.join()


def test_eof_mid_handshake_raises_transport_closed():
    a, b = socket.socketpair()
    c, _ = make_conns()
    cs = SecureStream(c, a)

    def hang_up():
        b.recv(92)  # the ClientHandshake, then go away
        b.close()

    peer = Runner(hang_up)
    t0 = time.monotonic()
    with pytest.raises(TransportClosed):
        cs.handshake(timeout_ms=5000)
    assert time.monotonic() - t0 < 2
    peer.join()


def test_eof_after_handshake_without_disconnect_is_not_a_clean_close():
    a, b = socket.socketpair()
    c, s = make_conns()
    cs, ss = SecureStream(c, a), SecureStream(s, b)
    peer = Runner(lambda: ss.handshake(timeout_ms=5000))
    cs.handshake(timeout_ms=5000)
    peer.join()
    b.close()  # truncation: the socket closes, no Disconnect
    with pytest.raises(TransportClosed):
        cs.recv(timeout_ms=2000)


def test_data_then_disconnect_then_eof_delivers_everything():
    # Everything buffered before EOF is processed: the data, then the clean close.
    a, b = socket.socketpair()
    c, s = make_conns()
    cs, ss = SecureStream(c, a), SecureStream(s, b)

    def server():
        ss.handshake(timeout_ms=5000)
        ss.send(b"last words")
        ss.close(linger_ms=0)
        b.close()

    peer = Runner(server)
    cs.handshake(timeout_ms=5000)
    peer.join()
    time.sleep(0.05)
    assert cs.recv(timeout_ms=2000) == b"last words"
    assert cs.recv(timeout_ms=2000) == b""


class Broken:
    def readinto(self, buf):
        raise OSError(errno.EIO, "Input/output error")

    def write(self, data):
        return len(data)


def test_transport_exceptions_become_transport_error():
    c, _ = make_conns()
    cs = SecureStream(c, Broken())
    with pytest.raises(TransportError) as ei:
        cs.handshake(timeout_ms=1000)
    assert ei.value.errno == errno.EIO
    assert isinstance(ei.value, OssuaryError)


class ResetSocket(Broken):
    def readinto(self, buf):
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")


def test_connection_reset_is_transport_closed():
    c, _ = make_conns()
    with pytest.raises(TransportClosed):
        SecureStream(c, ResetSocket()).handshake(timeout_ms=1000)


def test_handshake_timeout_with_silent_peer():
    a, b = socket.socketpair()
    c, _ = make_conns()
    cs = SecureStream(c, a)
    t0 = time.monotonic()
    with pytest.raises(HandshakeTimeout):
        cs.handshake(timeout_ms=300)
    assert 0.25 < time.monotonic() - t0 < 2
    a.close(), b.close()


@limit(20)
def test_silent_peer_ends_by_reset_limit_without_overall_timeout():
    # No overall deadline: the core's wait-state timer resets, and the reset limit ends it.
    a, b = socket.socketpair()
    c = Connection(CLIENT, authorized_keys=[SERVER_PUB], clock=clock, timeout_ms=100,
                   max_resets=3)
    cs = SecureStream(c, a)
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed):
        cs.handshake()
    assert time.monotonic() - t0 < 5
    a.close(), b.close()


# ---------------------------------------------------------------- the real MicroPython


MP_CLIENT = r"""
import sys, socket, time
sys.path.insert(0, sys.argv[1])
from ossuary_micro import Connection, CLIENT, parse_key
from ossuary_io import SecureStream
s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", int(sys.argv[2]))[0][-1])
s.setblocking(False)   # readinto -> None, send -> OSError(EAGAIN): MicroPython's quirks
c = Connection(CLIENT, authorized_keys=[parse_key(sys.argv[3])], clock=time.ticks_ms)
st = SecureStream(c, s)
st.handshake(timeout_ms=20000)
data = bytes(range(256)) * 80   # 20480 bytes: two records
st.send(data)
got = b""
while len(got) < len(data):
    got += st.recv(timeout_ms=20000)
n = len(data)
for i in range(n):   # MicroPython has no [::-1] on bytes
    assert got[i] == data[n - 1 - i], "echo mismatch"
st.close(linger_ms=2000)
print("MP-OK", c.reset_count)
"""


@limit(60)
def test_micropython_client_over_tcp_to_cpython_server(tmp_path):
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mp = os.path.join(root, ".venv", "bin", "micropython")
    if not os.path.exists(mp):
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "mp_client.py"
    script.write_text(MP_CLIENT)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    from ossuary_micro import format_key
    proc = subprocess.Popen([mp, str(script), root, str(port), format_key(SERVER_PUB)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ls.settimeout(20)
        sock, _ = ls.accept()
        s = Connection(UNAUTH_SERVER, secret_key=SERVER_SEED, clock=clock)
        ss = SecureStream(s, sock)
        got, after = echo_server_slow(ss, 20480)
        assert got == bytes(range(256)) * 80
        assert after == b""
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ls.close()
    assert proc.returncode == 0, out.decode(errors="replace")
    assert out.split()[0] == b"MP-OK", out


def echo_server_slow(stream, n):
    # Like echo_server, with deadlines long enough for MicroPython's pure/viper crypto.
    stream.handshake(timeout_ms=20000)
    data = recv_exactly(stream, n, timeout_ms=20000)
    stream.send(data[::-1])
    return data, stream.recv(timeout_ms=20000)


MP_MEMORY = r"""
# ossuary_io on MicroPython over an in-memory duplex (readinto -> None when empty, partial writes), poll()-driven
import sys, time
from ossuary_micro import Connection, CLIENT, UNAUTH_SERVER, NEED_DATA, DATA, HANDSHAKE_DONE, CLOSED, generate_keypair
from ossuary_io import SecureStream

class Pipe:
    def __init__(self): self.buf = bytearray()
class End:
    def __init__(self, rx, tx): self.rx, self.tx = rx, tx
    def readinto(self, b, n=-1):
        if not self.rx.buf: return None
        if n < 0 or n > len(b): n = len(b)
        k = min(n, len(self.rx.buf))
        b[0:k] = self.rx.buf[0:k]
        self.rx.buf = self.rx.buf[k:]
        return k
    def write(self, d):
        k = min(len(d), 50)    # partial writes
        self.tx.buf += bytes(d[0:k])
        return k
ab, ba = Pipe(), Pipe()
clk = time.ticks_ms if hasattr(time, "ticks_ms") else (lambda: int(time.time()*1000))
try:
    import os; rnd = os.urandom
except AttributeError:
    rnd = None
if rnd is None or not hasattr(__import__("os"), "urandom"):
    import random   # test-only randomness on the wasm port (no os.urandom there)
    rnd = lambda n: bytes(random.getrandbits(8) for _ in range(n))
seed, pub = generate_keypair(random=rnd)
t0 = clk()
c = Connection(CLIENT, authorized_keys=[pub], clock=clk, timeout_ms=60000, random=rnd)
s = Connection(UNAUTH_SERVER, secret_key=seed, clock=clk, timeout_ms=60000, random=rnd)
cs, ss = SecureStream(c, End(ba, ab)), SecureStream(s, End(ab, ba))
msg = bytes(range(256)) * 70   # 17920 > 16384: two records
got = bytearray(); buf = bytearray(1000); sent = False
while len(got) < len(msg):
    cs.poll()
    if c.established and not sent:
        cs.send(msg); sent = True
    ev = ss.poll()
    while ss.pending:
        n = ss.recv_into(buf); got += buf[0:n]
assert bytes(got) == msg
cs.close(linger_ms=0)
while ss.poll() != CLOSED: pass
print("MEM-OK", sys.implementation.name, c.backend.name, time.ticks_diff(clk(), t0) if hasattr(time, "ticks_diff") else 0, "ms")
"""


@limit(120)
@pytest.mark.parametrize("interp", ["unix", "wasm"])
def test_stream_on_micropython_ports_over_memory_duplex(tmp_path, interp):
    # poll()-driven client and server on one MicroPython interpreter: the unix port (viper)
    # and the WebAssembly port (31-bit small ints, pure crypto, like the boards).
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "mp_mem.py"
    script.write_text(MP_MEMORY)
    if interp == "unix":
        mp = os.path.join(root, ".venv", "bin", "micropython")
        if not os.path.exists(mp):
            pytest.skip("no MicroPython unix port in .venv")
        cmd = [mp, "-X", "heapsize=64M", "-c",
               "import sys; sys.path.insert(0, '.'); exec(open(%r).read())" % str(script)]
    else:
        run = os.path.join(root, "tools", "mpwasm", "run.mjs")
        if not os.path.exists(os.path.join(root, "tools", "mpwasm", "node_modules")):
            pytest.skip("no MicroPython wasm port (make venv)")
        cmd = ["node", run, "--no-summary", os.path.relpath(str(script), root)]
    p = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=100)
    assert p.returncode == 0 and "MEM-OK" in p.stdout, p.stdout + p.stderr


# ---------------------------------------------------------------- identity pinned across resets
#
# Protocol 1's Reset is unauthenticated: an on-path attacker can inject one and answer the
# re-handshake itself. These play that attacker on the socket between the two peers.

OTHER_SEED, OTHER_PUB = generate_keypair()
CLIENT2_SEED, CLIENT2_PUB = generate_keypair()


def _inject_reset(sock):
    out = bytearray(wire.HEADER_LEN + wire.RESET_BODY_LEN)
    wire.put_control(out, 0, wire.T_RESET, False)
    sock.sendall(out)


def _read_reset_reply(sock):
    # The victim answers the injected Reset with its own (spec 4.4 step 3); the attacker eats it.
    sock.settimeout(5)
    got = b""
    while len(got) < wire.HEADER_LEN + wire.RESET_BODY_LEN:
        got += sock.recv(wire.HEADER_LEN + wire.RESET_BODY_LEN - len(got))
    assert (got[4] << 8 | got[5]) == wire.T_RESET, got


def _attacked_client(trust_keys, trust_cb):
    a, b = socket.socketpair()
    c = Connection(CLIENT, authorized_keys=trust_keys, clock=clock)
    client = SecureStream(c, a, clock=clock, trust=trust_cb)
    srv = Runner(lambda: recv_exactly(SecureStream(
        Connection(UNAUTH_SERVER, secret_key=SERVER_SEED, clock=clock), b, clock=clock), 4))
    assert client.handshake(5000) == SERVER_PUB
    client.send(b"ping")
    assert srv.join() == b"ping"
    # The attacker now holds b: Reset, then a handshake with its own key.
    _inject_reset(b)
    outcome = Runner(lambda: client.recv(timeout_ms=5000))
    _read_reset_reply(b)
    b.settimeout(None)
    evil = SecureStream(Connection(UNAUTH_SERVER, secret_key=OTHER_SEED, clock=clock), b, clock=clock)
    got = Runner(lambda: evil.recv(timeout_ms=2000))
    with pytest.raises(PeerChanged) as e:
        outcome.join()
    assert e.value.pinned == SERVER_PUB and e.value.presented == OTHER_PUB
    assert isinstance(client.error, PeerChanged)
    with pytest.raises(PeerChanged):
        client.send(b"secret")
    try:
        assert got.join() == b""           # nothing ever reached the attacker
    except (OssuaryError) as err:           # or its session failed: equally nothing
        assert not isinstance(err, StreamTimeout)
    a.close()
    b.close()


def test_client_with_several_trusted_keys_fails_when_a_reset_brings_another_one():
    _attacked_client([SERVER_PUB, OTHER_PUB], None)


def test_tofu_client_does_not_accept_a_second_key_after_a_reset():
    asked = []
    _attacked_client([], lambda key: asked.append(key) or True)
    assert asked == [SERVER_PUB]            # the second key never reached the trust callback


def test_auth_server_fails_when_another_authorized_client_takes_over_after_a_reset():
    a, b = socket.socketpair()
    s = Connection(AUTH_SERVER, secret_key=SERVER_SEED, authorized_keys=[CLIENT_PUB, CLIENT2_PUB],
                   clock=clock)
    server = SecureStream(s, b, clock=clock)
    first = SecureStream(Connection(CLIENT, secret_key=CLIENT_SEED, authorized_keys=[SERVER_PUB],
                                    clock=clock), a, clock=clock)
    cl = Runner(lambda: first.handshake(5000))
    assert server.handshake(5000) == CLIENT_PUB
    cl.join()
    outcome = Runner(lambda: server.recv(timeout_ms=5000))
    _inject_reset(a)
    _read_reset_reply(a)
    a.settimeout(None)
    second = SecureStream(Connection(CLIENT, secret_key=CLIENT2_SEED, authorized_keys=[SERVER_PUB],
                                     clock=clock), a, clock=clock)

    def intrude():
        try:
            second.handshake(3000)
            second.send(b"from the other client")
        except OssuaryError:
            pass

    Runner(intrude).join()
    with pytest.raises(PeerChanged) as e:
        outcome.join()
    assert e.value.pinned == CLIENT_PUB and e.value.presented == CLIENT2_PUB
    a.close()
    b.close()


def test_reset_with_the_same_peer_is_counted_and_the_stream_goes_on():
    a, b = socket.socketpair()
    c, s = make_conns()
    client = SecureStream(c, a, clock=clock)
    server = SecureStream(s, b, clock=clock)
    srv = Runner(lambda: (server.handshake(5000), recv_exactly(server, 6)))
    client.handshake(5000)
    client.send(b"one")
    client.send(b"two")
    srv.join()
    assert (client.resets, client.records_sent, client.records_unconfirmed) == (0, 2, 0)
    # A corrupted record makes the server reset (a real line error, not an attacker).
    a.sendall(b"\x00\x10\x00\x02\x00\x20\x00\x00" + bytes(16))
    srv = Runner(lambda: recv_exactly(server, 5))
    while client.poll() != RESET:           # the event the application sees
        time.sleep(0.01)
    assert client.resets == 1 and not client.established
    client.send(b"after")                   # waits for the re-handshake with the same server
    assert srv.join() == b"after"
    assert client.resets == 1 and client.records_unconfirmed == 2 and client.records_sent == 1
    assert client.peer_key == SERVER_PUB and client.established
