# SecureStream speaking protocol 2 (Noise XX, docs/PROTOCOL.md) over real socketpairs and a
# real pty: the authenticated half-close (shutdown_write / END), the authenticated close, and
# what an unauthenticated Reset or Disconnect injected after the handshake does (it ends the
# stream, never as a clean close, and nothing can continue it with another key).

import io
import os
import socket

import pytest
import serial

from ossuary_micro import (CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA, CLOSED, generate_keypair,
                           wire, wire2)
from ossuary_micro.connection2 import Connection2, END_OF_STREAM as CONN2_END
from ossuary_micro.errors import (ConnectionFailed, ConnectionClosed, LocalProtocolError)
from ossuary_io import SecureStream, TransportClosed, StreamTimeout, END_OF_STREAM, UntrustedKey

from tests.test_stream import Runner, clock, recv_exactly, deadline  # noqa: F401 (fixture)

SERVER_SEED, SERVER_PUB = generate_keypair()
CLIENT_SEED, CLIENT_PUB = generate_keypair()


def pair(a, b, client_key=CLIENT_SEED, server_role=AUTH_SERVER, trust=True, **kw):
    cs = SecureStream.create(CLIENT, a, protocol=2, secret_key=client_key,
                             authorized_keys=[SERVER_PUB] if trust else [], **kw)
    ss = SecureStream.create(server_role, b, protocol=2, secret_key=SERVER_SEED,
                             authorized_keys=[CLIENT_PUB], **kw)
    return cs, ss


def handshake_both(cs, ss):
    peer = Runner(lambda: ss.handshake(timeout_ms=5000))
    got = cs.handshake(timeout_ms=5000)
    assert peer.join() == CLIENT_PUB
    return got


def test_event_constant_matches_the_core():
    assert END_OF_STREAM == CONN2_END


def test_create_picks_the_protocol():
    a, b = socket.socketpair()
    assert SecureStream.create(CLIENT, a, protocol=1, authorized_keys=[SERVER_PUB]).protocol == 1
    s2 = SecureStream.create(CLIENT, a, protocol=2, authorized_keys=[SERVER_PUB])
    assert s2.protocol == 2 and isinstance(s2.conn, Connection2)
    with pytest.raises(LocalProtocolError):
        SecureStream.create(CLIENT, a, protocol=3)
    a.close(), b.close()


def test_half_close_then_the_other_direction_goes_on_then_clean_close():
    a, b = socket.socketpair()
    cs, ss = pair(a, b)
    assert handshake_both(cs, ss) == SERVER_PUB
    request = os.urandom(50000)         # several records, then END

    def server():
        got = bytearray()
        while True:
            d = ss.recv(timeout_ms=5000)
            if not d:
                break
            got += d
        assert ss.peer_ended and not ss.conn.closed    # half-closed, not closed
        assert ss.recv(timeout_ms=100) == b""           # stays at EOF
        ss.send(bytes(got[::-1]))                       # the other direction still works
        ss.send(b"done")
        ss.close(linger_ms=500)                         # the authenticated CLOSE
        return bytes(got)

    peer = Runner(server)
    cs.send(request)
    cs.shutdown_write()
    assert cs.write_ended
    with pytest.raises(LocalProtocolError):
        cs.send(b"more")                                # nothing after our END
    assert recv_exactly(cs, len(request) + 4) == request[::-1] + b"done"
    assert cs.recv(timeout_ms=5000) == b""              # the CLOSE: a clean close
    assert isinstance(cs.error, ConnectionClosed) and not cs.peer_ended
    assert peer.join() == request
    a.close(), b.close()


def test_poll_reports_end_of_stream_once():
    a, b = socket.socketpair()
    a.setblocking(False), b.setblocking(False)
    cs, ss = pair(a, b)
    handshake_both(cs, ss)
    cs.send(b"x")
    cs.send_eof()
    seen = []
    for _ in range(200):
        ev = ss.poll()
        if ev == NEED_DATA:
            if END_OF_STREAM in seen:
                break
            ss._wait(clock(), 20)
            continue
        seen.append(ev)
        if ss.pending:
            assert ss.recv() == b"x"
    assert seen.count(END_OF_STREAM) == 1
    a.close(), b.close()


def test_both_half_closes_then_close():
    a, b = socket.socketpair()
    cs, ss = pair(a, b)
    handshake_both(cs, ss)
    cs.shutdown_write()
    ss.shutdown_write()
    assert ss.recv(timeout_ms=5000) == b"" and cs.recv(timeout_ms=5000) == b""
    assert cs.peer_ended and ss.peer_ended
    assert ss.recv(timeout_ms=100) == b""       # EOF stays EOF; the CLOSE comes by poll()

    peer = Runner(lambda: ss.wait_closed(timeout_ms=5000))
    cs.close(linger_ms=200)
    peer.join()
    assert isinstance(ss.error, ConnectionClosed)
    a.close(), b.close()


def test_shutdown_write_needs_protocol_2_and_a_session():
    a, b = socket.socketpair()
    s1 = SecureStream.create(CLIENT, a, protocol=1, authorized_keys=[SERVER_PUB])
    with pytest.raises(LocalProtocolError):
        s1.shutdown_write()
    s2 = SecureStream.create(CLIENT, a, protocol=2, authorized_keys=[SERVER_PUB])
    with pytest.raises(LocalProtocolError):
        s2.shutdown_write()     # not established
    a.close(), b.close()


def _control(ptype, error):
    out = bytearray(wire.HEADER_LEN + wire.RESET_BODY_LEN)
    wire.put_control(out, 0, ptype, error)
    return bytes(out)


@pytest.mark.parametrize("ptype,error", [(wire2.T2_RESET, True), (wire2.T2_DISCONNECT, False),
                                         (wire2.T2_DISCONNECT, True)])
def test_injected_reset_or_disconnect_is_never_a_clean_close(ptype, error):
    # An on-path attacker writes a clear Reset / Disconnect into the stream after the
    # handshake (here: straight into the server's socket). The client's stream ends with
    # ConnectionFailed -- not b"" -- and does not run a new handshake with anyone.
    a, b = socket.socketpair()
    cs, ss = pair(a, b)
    handshake_both(cs, ss)
    cs.send(b"before")
    assert ss.recv(timeout_ms=5000) == b"before"
    b.sendall(_control(ptype, error))
    with pytest.raises(ConnectionFailed) as ei:
        cs.recv(timeout_ms=5000)
    assert not isinstance(ei.value, ConnectionClosed)
    assert "unauthenticated" in str(ei.value)
    assert cs.conn.closed and cs.resets == 0
    with pytest.raises(ConnectionFailed):
        cs.send(b"after")
    a.close(), b.close()


def test_a_new_handshake_after_an_injected_reset_cannot_take_over():
    # After the forged Reset, an attacker holding another key the client would accept
    # (TOFU) starts a fresh handshake on the same transport: the failed stream never
    # answers it, so no other key ever continues this stream.
    a, b = socket.socketpair()
    accepted = []
    cs = SecureStream.create(CLIENT, a, protocol=2, secret_key=CLIENT_SEED,
                             trust=lambda k: accepted.append(k) or True)
    ss = SecureStream.create(UNAUTH_SERVER, b, protocol=2, secret_key=SERVER_SEED)
    peer = Runner(lambda: ss.handshake(timeout_ms=5000))
    assert cs.handshake(timeout_ms=5000) == SERVER_PUB
    peer.join()
    assert accepted == [SERVER_PUB]
    b.sendall(_control(wire2.T2_RESET, True))
    mallory_seed, _ = generate_keypair()
    mallory = SecureStream.create(UNAUTH_SERVER, b, protocol=2, secret_key=mallory_seed)
    with pytest.raises(ConnectionFailed):
        cs.recv(timeout_ms=3000)
    with pytest.raises(ConnectionFailed):
        cs.handshake(timeout_ms=500)
    assert accepted == [SERVER_PUB] and cs.peer_key == SERVER_PUB
    mallory.conn.close()
    a.close(), b.close()


def test_eof_after_end_without_close_is_not_a_clean_close():
    a, b = socket.socketpair()
    cs, ss = pair(a, b)
    handshake_both(cs, ss)
    ss.shutdown_write()
    assert cs.recv(timeout_ms=5000) == b""      # the half-close
    b.close()                                   # ... but no CLOSE: truncated session
    with pytest.raises(TransportClosed):
        cs.wait_closed(timeout_ms=3000)
    a.close()


def test_wait_closed_times_out_while_the_peer_stays():
    a, b = socket.socketpair()
    cs, ss = pair(a, b)
    handshake_both(cs, ss)
    ss.shutdown_write()
    assert cs.recv(timeout_ms=5000) == b""
    with pytest.raises(StreamTimeout):
        cs.wait_closed(timeout_ms=300)
    a.close(), b.close()


def test_untrusted_server_key_in_protocol_2():
    a, b = socket.socketpair()
    cs, ss = pair(a, b, trust=False, server_role=UNAUTH_SERVER)
    peer = Runner(lambda: ss.handshake(timeout_ms=3000))
    with pytest.raises(UntrustedKey) as ei:
        cs.handshake(timeout_ms=5000)
    assert ei.value.key == SERVER_PUB
    a.close()
    with pytest.raises(Exception):
        peer.join()
    b.close()


def test_pty_pyserial_client_raw_fd_server_with_half_close():
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), timeout=0)
    os.set_blocking(master, False)
    raw = io.FileIO(master, "r+b", closefd=False)
    cs = SecureStream.create(CLIENT, port, protocol=2, secret_key=CLIENT_SEED,
                             authorized_keys=[SERVER_PUB])
    ss = SecureStream.create(AUTH_SERVER, raw, protocol=2, secret_key=SERVER_SEED,
                             authorized_keys=[CLIENT_PUB], eof_on_empty=False)
    payload = os.urandom(20000)

    def server():
        ss.handshake(timeout_ms=5000)
        got = bytearray()
        while True:
            d = ss.recv(timeout_ms=8000)
            if not d:
                break
            got += d
        ss.send(bytes(got[::-1]))
        ss.wait_closed(timeout_ms=8000)
        return bytes(got), ss.recv(timeout_ms=100)

    peer = Runner(server)
    cs.handshake(timeout_ms=5000)
    cs.send(payload)
    cs.shutdown_write()
    assert recv_exactly(cs, len(payload), timeout_ms=8000) == payload[::-1]
    cs.close(linger_ms=300)
    got, after = peer.join(10)
    assert got == payload and after == b"" and isinstance(ss.error, ConnectionClosed)
    port.close()
    os.close(slave)
    os.close(master)
