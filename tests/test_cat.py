# ossuary-cat end to end: real subprocesses of .venv/bin/ossuary-cat talking over loopback TCP
# (and a pty for --serial), in every auth mode, plus the failure exit codes. Bounded: every
# process wait has a timeout and leftovers are killed.

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from ossuary_micro import generate_keypair, format_key

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAT = os.path.join(ROOT, ".venv", "bin", "ossuary-cat")
if not os.path.exists(CAT):  # pragma: no cover - running outside `make venv`
    CAT = None

# Exit codes documented in ossuary-cat --help.
OK, USAGE, KEY, CONNECT, UNTRUSTED, FAILED, TIMEOUT, TRANSPORT = 0, 2, 3, 4, 5, 6, 7, 8

# libossuary examples/server.c key (spec 5.5).
EXAMPLE_SEED = "10866ec48a11f3c56d77a64b2f54aa066c0cb475d8c87d35b491eed6ac0bdebc"
EXAMPLE_PUB = "be1ca074f4a58bbbd262a7f9523b6fb0bb9e8662287c3389a2e163dc55de281f"


@pytest.fixture(autouse=True)
def deadline():
    # No pytest-timeout here: SIGALRM fails a test that runs past 30 s instead of hanging.
    def fire(signum, frame):
        raise AssertionError("test exceeded its 30 s limit")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, 30)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(5)


def cat_cmd(*args):
    if CAT is None:
        pytest.skip("ossuary-cat is not installed in .venv")
    return [CAT] + [str(a) for a in args]


def start(procs, *args, stdin=subprocess.PIPE):
    p = subprocess.Popen(cat_cmd(*args), stdin=stdin, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    procs.append(p)
    return p


def listen(procs, *args):
    """Start a server on 127.0.0.1 port 0; return (process, port) once it listens."""
    p = start(procs, "--listen", "127.0.0.1:0", *args)
    line = p.stderr.readline().decode()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    assert m, "no listening line: %r" % line
    return p, int(m.group(1))


def write_key(tmp_path, name, seed_hex):
    path = tmp_path / name
    path.write_text(seed_hex + "\n")
    os.chmod(path, 0o600)
    return str(path)


def run(args, stdin_data=b"", timeout=20):
    p = subprocess.run(cat_cmd(*args), input=stdin_data, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode()


class Reader(threading.Thread):
    """Collect a pipe's bytes in the background (so big transfers never block on a full pipe)."""

    def __init__(self, pipe):
        threading.Thread.__init__(self, daemon=True)
        self.pipe = pipe
        self.data = bytearray()
        self.start()

    def run(self):
        while True:
            b = self.pipe.read1(65536) if hasattr(self.pipe, "read1") else self.pipe.read(65536)
            if not b:
                return
            self.data += b

    def wait_for(self, n, timeout=10):
        t0 = time.monotonic()
        while len(self.data) < n:
            assert time.monotonic() - t0 < timeout, "got %d of %d bytes" % (len(self.data), n)
            time.sleep(0.01)
        return bytes(self.data)


def exchange(procs, server_args, client_args, size_c2s=40000, size_s2c=30000):
    """Run server and client, send data both ways, close the client's stdin.

    Returns (server returncode, client returncode, server stderr, client stderr)."""
    srv, port = listen(procs, *server_args)
    cli = start(procs, "--connect", "127.0.0.1:%d" % port, *client_args)
    c2s, s2c = os.urandom(size_c2s), os.urandom(size_s2c)
    srv_out, cli_out = Reader(srv.stdout), Reader(cli.stdout)
    cli.stdin.write(c2s)
    cli.stdin.flush()
    srv.stdin.write(s2c)
    srv.stdin.flush()
    assert srv_out.wait_for(len(c2s)) == c2s
    assert cli_out.wait_for(len(s2c)) == s2c
    if "1" in [str(x) for x in client_args[client_args.index("--protocol") + 1:][:1]] \
            if "--protocol" in client_args else False:
        cli.stdin.close()  # protocol 1: stdin EOF -> --linger -> clean Disconnect -> both exit 0
    else:
        # Protocol 2 (netcat -N): the client's stdin EOF is the authenticated half-close. The
        # server's stdout ends while both still run, and the server can still send; when
        # its stdin ends too, the session closes cleanly.
        cli.stdin.close()
        srv_out.join(10)
        assert not srv_out.is_alive(), "the server's stdout did not end at the half-close"
        assert bytes(srv_out.data) == c2s
        assert srv.poll() is None and cli.poll() is None
        more = os.urandom(5000)
        srv.stdin.write(more)
        srv.stdin.flush()
        assert cli_out.wait_for(len(s2c) + len(more)) == s2c + more
        srv.stdin.close()
    crc = cli.wait(10)
    src = srv.wait(10)
    return src, crc, srv.stderr.read().decode(), cli.stderr.read().decode()


def test_unauthenticated_server_keyless_client_trusting_server_key(procs, tmp_path):
    key = write_key(tmp_path, "server.key", EXAMPLE_SEED)
    src, crc, serr, cerr = exchange(procs, ["--key", key], ["--trust", EXAMPLE_PUB])
    assert (src, crc) == (OK, OK), (serr, cerr)
    assert "server key %s" % EXAMPLE_PUB in serr
    assert "peer key %s" % EXAMPLE_PUB in cerr
    assert EXAMPLE_SEED not in serr + cerr  # secrets never logged


def test_authenticated_server_and_client_with_key(procs, tmp_path):
    s_seed, s_pub = generate_keypair()
    c_seed, c_pub = generate_keypair()
    skey = write_key(tmp_path, "s.key", format_key(s_seed))
    ckey = write_key(tmp_path, "c.key", format_key(c_seed))
    clients = tmp_path / "clients.txt"
    clients.write_text("# allowed clients\n%s  # laptop\n\n%s\n"
                       % (format_key(generate_keypair()[1]), format_key(c_pub)))
    src, crc, serr, cerr = exchange(
        procs, ["--key", skey, "--auth-clients", "--trust", clients],
        ["--key", ckey, "--trust", format_key(s_pub)])
    assert (src, crc) == (OK, OK), (serr, cerr)
    assert "peer key %s" % format_key(c_pub) in serr  # the server verified our key


def test_tofu_client_logs_and_accepts_unknown_server_key(procs):
    src, crc, serr, cerr = exchange(procs, [], ["--tofu"], 100, 100)
    assert (src, crc) == (OK, OK), (serr, cerr)
    server_pub = re.search(r"server key ([0-9a-f]{64})", serr).group(1)
    assert "trusting unknown server key %s" % server_pub in cerr


def test_large_stdin_from_file_arrives_intact_and_exits_zero(procs, tmp_path):
    # stdin is a regular file (not pollable by epoll): > 16384 bytes, split into records.
    data = os.urandom(200000)
    src_file = tmp_path / "in.bin"
    src_file.write_bytes(data)
    srv = start(procs, "--listen", "127.0.0.1:0", stdin=subprocess.DEVNULL)
    port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", srv.stderr.readline().decode()).group(1))
    out = Reader(srv.stdout)
    with open(src_file, "rb") as f:
        cli = subprocess.run(cat_cmd("--connect", "127.0.0.1:%d" % port, "--tofu"), stdin=f,
                             capture_output=True, timeout=20)
    assert cli.returncode == OK, cli.stderr
    assert srv.wait(10) == OK
    out.join(5)
    assert bytes(out.data) == data


def test_listener_with_stdin_at_eof_keeps_receiving_until_the_client_closes(procs):
    # netcat semantics: stdin EOF stops our sending, not our receiving. The server's stdin is
    # at EOF from the start; the client sends only after the session is up (and after a
    # pause), and all of it must arrive before the server exits 0.
    srv = start(procs, "--listen", "127.0.0.1:0", "--linger", "20", stdin=subprocess.DEVNULL)
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", srv.stderr.readline().decode())
    assert m
    cli = start(procs, "--connect", "127.0.0.1:%s" % m.group(1), "--tofu", "--linger", "0.2")
    out = Reader(srv.stdout)
    while True:
        line = cli.stderr.readline().decode()
        assert line, "client ended before the session was established"
        if "session established" in line:
            break
    time.sleep(0.5)
    data = os.urandom(50000)
    cli.stdin.write(data)
    cli.stdin.close()
    assert cli.wait(15) == OK, cli.stderr.read()
    assert srv.wait(15) == OK, srv.stderr.read()
    out.join(5)
    assert bytes(out.data) == data


def test_linger_bounds_the_wait_for_a_silent_peer(procs):
    # Protocol 1: both sides at stdin EOF and neither closes: each gives up after --linger of
    # silence.
    srv = start(procs, "--listen", "127.0.0.1:0", "--linger", "0.5", stdin=subprocess.DEVNULL)
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", srv.stderr.readline().decode())
    cli = start(procs, "--connect", "127.0.0.1:%s" % m.group(1), "--tofu", "--linger", "0.5",
                "--protocol", "1", stdin=subprocess.DEVNULL)
    assert cli.wait(15) == OK, cli.stderr.read()
    assert srv.wait(15) == OK, srv.stderr.read()


def test_tofu_client_fails_when_a_reset_brings_another_server_key(procs):
    # An on-path attacker injects a Reset (unauthenticated in protocol 1) and answers the
    # re-handshake with its own key: the client must stop, say so, and send it nothing.
    from ossuary_micro import Connection, UNAUTH_SERVER, wire
    from ossuary_io import SecureStream
    clk = lambda: int(time.monotonic() * 1000)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    cli = start(procs, "--connect", "127.0.0.1:%d" % ls.getsockname()[1], "--tofu",
                "--protocol", "1")
    ls.settimeout(10)
    sock, _ = ls.accept()
    ls.close()
    first = SecureStream(Connection(UNAUTH_SERVER, clock=clk), sock, clock=clk)
    first.handshake(10000)
    cli.stdin.write(b"before")
    cli.stdin.flush()
    assert first.recv(timeout_ms=10000) == b"before"
    reset = bytearray(wire.HEADER_LEN + wire.RESET_BODY_LEN)
    wire.put_control(reset, 0, wire.T_RESET, False)
    sock.sendall(reset)
    sock.settimeout(10)
    got = b""
    while len(got) < len(reset):                # the client's Reset reply
        got += sock.recv(len(reset) - len(got))
    sock.settimeout(None)
    evil_seed, evil_pub = generate_keypair()
    evil = SecureStream(Connection(UNAUTH_SERVER, secret_key=evil_seed, clock=clk), sock, clock=clk)
    cli.stdin.write(b"secret")
    cli.stdin.flush()
    try:
        received = evil.recv(timeout_ms=5000)
    except Exception as e:                      # its session fails: equally nothing received
        received = repr(e)
    assert cli.wait(10) == FAILED
    err = cli.stderr.read().decode()
    assert "key changed" in err and format_key(evil_pub) in err, err
    assert "session reset" in err
    assert b"secret" not in (received if isinstance(received, bytes) else b"")
    sock.close()


@pytest.mark.parametrize("forged", ["reset", "disconnect"])
def test_protocol_2_injected_reset_or_disconnect_fails_the_session(procs, forged):
    # The same attack in protocol 2: the injected Reset (or a Disconnect without its error
    # flag, which protocol 1 reads as a clean close) ends the session with exit 6 -- never a
    # clean close, never a new handshake with anyone; nothing typed afterwards is sent.
    from ossuary_micro import UNAUTH_SERVER, wire, wire2
    from ossuary_io import SecureStream
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    cli = start(procs, "--connect", "127.0.0.1:%d" % ls.getsockname()[1], "--tofu")
    ls.settimeout(10)
    sock, _ = ls.accept()
    ls.close()
    first = SecureStream.create(UNAUTH_SERVER, sock, protocol=2)
    first.handshake(10000)
    cli.stdin.write(b"before")
    cli.stdin.flush()
    assert first.recv(timeout_ms=10000) == b"before"
    pkt = bytearray(wire.HEADER_LEN + wire.RESET_BODY_LEN)
    wire.put_control(pkt, 0, wire2.T2_RESET if forged == "reset" else wire2.T2_DISCONNECT,
                     forged == "reset")
    sock.sendall(pkt)
    assert cli.wait(10) == FAILED
    err = cli.stderr.read().decode()
    assert "unauthenticated" in err, err
    try:
        cli.stdin.write(b"secret")
        cli.stdin.flush()
    except BrokenPipeError:
        pass
    sock.settimeout(2)
    rest = b""
    try:
        while True:
            d = sock.recv(4096)
            if not d:
                break
            rest += d
    except OSError:
        pass
    assert len(rest) <= wire.HEADER_LEN + wire.RESET_BODY_LEN      # at most its Disconnect
    sock.close()


def test_protocol_2_half_close_both_ways_over_tcp(procs):
    # netcat -N: each side's stdin EOF ends the peer's stdout; the other direction goes on;
    # once both ended, both exit 0. The server picked protocol 2 from the client's packet.
    srv, port = listen(procs)
    cli = start(procs, "--connect", "127.0.0.1:%d" % port, "--tofu", "-v")
    srv_out, cli_out = Reader(srv.stdout), Reader(cli.stdout)
    srv.stdin.write(b"hello from server")
    srv.stdin.close()                           # the server ends first
    cli_out.join(10)
    assert not cli_out.is_alive() and bytes(cli_out.data) == b"hello from server"
    time.sleep(0.3)
    assert srv.poll() is None and cli.poll() is None
    data = os.urandom(70000)
    cli.stdin.write(data)                       # the client's direction still works
    cli.stdin.close()
    assert cli.wait(10) == OK, cli.stderr.read()
    assert srv.wait(10) == OK, srv.stderr.read()
    srv_out.join(5)
    assert bytes(srv_out.data) == data
    assert "wire protocol 2" in srv.stderr.read().decode()


def test_protocol_1_client_served_by_an_auto_server(procs, tmp_path):
    key = write_key(tmp_path, "server.key", EXAMPLE_SEED)
    src, crc, serr, cerr = exchange(procs, ["--key", key],
                                    ["--trust", EXAMPLE_PUB, "--protocol", "1", "--linger", "0.3"])
    assert (src, crc) == (OK, OK), (serr, cerr)
    assert "wire protocol 1" in serr
    # One key file, one public key, whichever protocol (its X25519 form in protocol 2).
    assert "peer key %s" % EXAMPLE_PUB in cerr


def test_server_forced_to_protocol_1_refuses_a_protocol_2_client(procs):
    srv, port = listen(procs, "--protocol", "1")
    rc, _, err = run(["--connect", "127.0.0.1:%d" % port, "--tofu", "--timeout", "3"])
    assert rc != OK
    srv.kill()


def test_untrusted_server_key_without_tofu(procs):
    srv, port = listen(procs)
    rc, out, err = run(["--connect", "127.0.0.1:%d" % port, "--trust", "ab" * 32])
    assert rc == UNTRUSTED
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "untrusted server key" in lines[0], err
    assert srv.wait(10) != OK  # the server saw our error Disconnect


@pytest.mark.parametrize("protocol", ["1", "2"])
def test_auth_server_rejects_unauthorized_client(procs, tmp_path, protocol):
    c_seed, _ = generate_keypair()
    ckey = write_key(tmp_path, "c.key", format_key(c_seed))
    srv, port = listen(procs, "--auth-clients", "--trust", format_key(generate_keypair()[1]))
    # Keep the client's stdin open: in protocol 1 it cannot know it was refused until the
    # server gives up; protocol 2 refuses the proved key at once (a Disconnect).
    cli = start(procs, "--connect", "127.0.0.1:%d" % port, "--key", ckey, "--tofu",
                "--protocol", protocol)
    assert srv.wait(20) == FAILED
    assert cli.wait(10) == FAILED
    serr = srv.stderr.read().decode().strip().splitlines()
    assert ("reset limit" if protocol == "1" else "client key not authorized") in serr[-1], serr
    assert "session failed" in cli.stderr.read().decode()


def test_keyless_client_refused_by_auth_server(procs):
    srv, port = listen(procs, "--auth-clients", "--trust", format_key(generate_keypair()[1]))
    cli = start(procs, "--connect", "127.0.0.1:%d" % port, "--tofu")
    assert srv.wait(20) == FAILED
    assert cli.wait(10) == FAILED


@pytest.mark.parametrize("content", ["not a key\n", "ab" * 31 + "\n", "", "ab" * 32 + "\n" + "cd" * 32])
def test_bad_key_file(tmp_path, content):
    key = tmp_path / "bad.key"
    key.write_text(content)
    rc, _, err = run(["--connect", "127.0.0.1:9", "--tofu", "--key", key])
    assert rc == KEY
    assert len(err.strip().splitlines()) == 1 and str(key) in err, err


def test_missing_key_file_and_bad_trust_value(tmp_path):
    rc, _, err = run(["--connect", "127.0.0.1:9", "--tofu", "--key", tmp_path / "nope"])
    assert rc == KEY and len(err.strip().splitlines()) == 1, err
    rc, _, err = run(["--connect", "127.0.0.1:9", "--trust", "zz" * 32])
    assert rc == KEY and "neither 64 hex" in err, err


def test_key_file_content_is_never_echoed(tmp_path):
    key = tmp_path / "k"
    key.write_text(EXAMPLE_SEED[:-1] + "x\n")  # almost a secret
    rc, _, err = run(["--listen", "127.0.0.1:0", "--key", key])
    assert rc == KEY and EXAMPLE_SEED[:20] not in err


def test_refused_connection():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    rc, _, err = run(["--connect", "127.0.0.1:%d" % port, "--tofu"])
    assert rc == CONNECT
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0].lower(), err


@pytest.mark.parametrize("args,needle", [
    (["--connect", "127.0.0.1:1", "--tofu", "--protocol", "3"], "invalid choice: 3"),
    (["--connect", "localhost", "--tofu"], "expected HOST:PORT"),
    (["--connect", "127.0.0.1:1"], "needs --trust"),
    (["--listen", "127.0.0.1:0", "--tofu"], "--tofu is for clients"),
    (["--connect", "127.0.0.1:1", "--tofu", "--auth-clients"], "--auth-clients is for servers"),
    (["--listen", "127.0.0.1:0", "--auth-clients"], "needs at least one --trust"),
    ([], "one of the arguments"),
])
def test_bad_arguments(args, needle):
    rc, _, err = run(args)
    assert rc == USAGE
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err


def test_help_documents_exit_codes():
    rc, out, _ = run(["--help"])
    assert rc == OK
    text = out.decode()
    for code in ("2  bad arguments", "3  bad key file", "4  cannot connect", "5  untrusted",
                 "6  the session failed", "7  timed out", "8  the transport"):
        assert code in text
    assert "--trust %s" % EXAMPLE_PUB in text


def test_handshake_timeout_when_server_is_silent():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)  # accepts (kernel backlog) but never speaks
    try:
        t0 = time.monotonic()
        rc, _, err = run(["--connect", "127.0.0.1:%d" % ls.getsockname()[1], "--tofu",
                          "--timeout", "1"])
        assert rc == TIMEOUT and "handshake timed out" in err, err
        assert time.monotonic() - t0 < 10
    finally:
        ls.close()


def test_peer_vanishing_is_a_transport_error(procs):
    # A TCP server that accepts and then closes: EOF before any Ossuary close.
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    cli = start(procs, "--connect", "127.0.0.1:%d" % ls.getsockname()[1], "--tofu")
    conn, _ = ls.accept()
    conn.recv(92)
    conn.close()
    ls.close()
    assert cli.wait(10) == TRANSPORT
    assert "connection lost" in cli.stderr.read().decode()


class NullModem:
    """Two ptys bridged by the test, like a null-modem cable: what is written on one slave
    is read on the other. The slaves are raw from the start: a fresh pty echoes its input and
    edits lines until pyserial reconfigures it, and that echo (a cable never does it) sent the
    client's own handshake back to it as garbage ("Oversized packet") whenever the client
    wrote before the server had opened its port."""

    def __init__(self):
        import tty
        self.m1, self.s1 = os.openpty()
        self.m2, self.s2 = os.openpty()
        tty.setraw(self.s1)
        tty.setraw(self.s2)
        self.to_1 = 0       # bytes carried from side 2 to side 1
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._bridge, daemon=True)
        self.t.start()

    def _bridge(self):
        import select
        while not self.stop.is_set():
            r, _, _ = select.select([self.m1, self.m2], [], [], 0.05)
            for fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if fd == self.m2:
                    os.write(self.m1, data)
                    self.to_1 += len(data)
                else:
                    os.write(self.m2, data)

    def close(self):
        self.stop.set()
        self.t.join(2)
        for fd in (self.m1, self.s1, self.m2, self.s2):
            os.close(fd)


def serial_server(procs, line):
    """ossuary-cat --serial --server on side 1; returns once its port is open (pyserial's
    open flushes the input queue, so anything sent before that is lost)."""
    srv = start(procs, "--serial", os.ttyname(line.s1), "--server")
    first = srv.stderr.readline().decode()
    assert "server key" in first, first
    return srv


def serial_transfer(srv, cli, protocol):
    out = Reader(srv.stdout)
    data = os.urandom(30000)
    cli.stdin.write(data)
    cli.stdin.flush()
    assert out.wait_for(len(data), timeout=15) == data
    cli.stdin.close()
    if protocol == "2":
        out.join(10)        # the half-close ends the server's stdout ...
        assert not out.is_alive() and bytes(out.data) == data
        srv.stdin.close()   # ... and the server's own EOF ends the session
    assert cli.wait(10) == OK, cli.stderr.read()
    assert srv.wait(10) == OK, srv.stderr.read()


@pytest.mark.parametrize("protocol", ["1", "2"])
def test_serial_over_a_pty_pair(procs, protocol):
    line = NullModem()
    try:
        srv = serial_server(procs, line)
        cli = start(procs, "--serial", os.ttyname(line.s2), "--tofu", "--linger", "0.5",
                    "--protocol", protocol)
        serial_transfer(srv, cli, protocol)
    finally:
        line.close()


@pytest.mark.parametrize("protocol", ["1", "2"])
def test_serial_client_recovers_when_its_first_handshake_is_lost(procs, protocol):
    # The client starts first and its ClientHandshake (message 1) reaches the server's line
    # before the server opens it: the open flushes it. The client's handshake timer (4 s)
    # resets and re-handshakes, and the session then works; both sides report the reset.
    # The server, serving both protocols, tells them apart from the Reset that comes first.
    line = NullModem()
    try:
        cli = start(procs, "--serial", os.ttyname(line.s2), "--tofu", "--linger", "0.5",
                    "--protocol", protocol)
        t0 = time.monotonic()
        while line.to_1 == 0:
            assert time.monotonic() - t0 < 15, "the client sent nothing"
            time.sleep(0.01)
        srv = serial_server(procs, line)
        serial_transfer(srv, cli, protocol)
        assert "session reset" in cli.stderr.read().decode()
    finally:
        line.close()
