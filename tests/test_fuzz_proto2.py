# Protocol 2 under hostile input (CPython): every single-byte corruption of each handshake
# message with several values, random multi-byte mutations, truncations and extensions of
# handshake messages and records, and random garbage streams fed in random chunks to both
# roles in every state. Invariants: nothing but the library's own events comes out (no
# exception), nothing hangs, a corrupted record never releases plaintext, and a session only
# ever reads as cleanly closed after a genuine CLOSE record.
#
# CI runs a fixed sample; OSSUARY_FUZZ=full (as `make fuzz` sets for protocol 1) runs all 255
# values at every offset.

import os
import random

from ossuary_micro import AUTH_SERVER, NEED_DATA, DATA, CLOSED
from ossuary_micro.errors import ConnectionClosed
from ossuary_micro import wire2
from tests.portable._pair import CLIENT_SEED
from tests.portable._pair2 import make_pair2

FULL = os.environ.get("OSSUARY_FUZZ") == "full"
KW = dict(client_key=CLIENT_SEED, server_role=AUTH_SERVER)


def _frames():
    link = make_pair2(**KW).run()
    assert link.established()
    return {1: ("client", 0, link.frames["client"][0]), 2: ("server", 0, link.frames["server"][0]),
            3: ("client", 1, link.frames["client"][1])}


def _run_with(packet, mutate):
    sender, nth, _ = _frames()[packet]
    link = make_pair2(**KW)
    seen = {"n": 0}

    def tamper(name, frame):
        if name == sender:
            if seen["n"] == nth:
                frame = mutate(frame)
            seen["n"] += 1
        return frame

    link.tamper = tamper
    link.run(rounds=80, tick_ms=1000)      # the fake clock moves: timeouts end every wait
    return link


def _check_end_state(link, packet):
    # Either the handshake recovered, or it ended as a failure: no half-open pair (one side
    # established while the other is not), never a clean close, and no endless dance.
    c, s = link.client, link.server
    if link.established():
        return
    for x in (c, s):
        assert not x.established, (packet, link.events)
        if x.closed:
            assert not isinstance(x.error, ConnectionClosed), (packet, x.error)
    assert c.closed or s.closed, (packet, link.events)


def test_every_offset_of_every_handshake_message():
    frames = _frames()
    rnd = random.Random(2)
    for packet, (_, _, frame) in frames.items():
        for off in range(len(frame)):
            values = range(256) if FULL else rnd.sample(range(256), 3)
            for v in values:
                if v == frame[off]:
                    continue

                def mutate(f, off=off, v=v):
                    f[off] = v
                    return f

                _check_end_state(_run_with(packet, mutate), packet)


def test_random_mutations_truncations_and_extensions():
    rnd = random.Random(7)
    for i in range(150 if not FULL else 3000):
        packet = rnd.choice((1, 2, 3))
        kind = rnd.choice(("bytes", "truncate", "extend", "type"))

        def mutate(f, kind=kind):
            if kind == "bytes":
                for _ in range(rnd.randint(2, 6)):
                    f[rnd.randrange(len(f))] = rnd.randrange(256)
                return f
            if kind == "truncate":
                return f[:rnd.randrange(len(f))]
            if kind == "extend":
                return f + bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 40)))
            t = rnd.choice((0x0001, 0x0201, 0x0202, 0x0203, 0x0210, 0x0211, 0x0220, 0x0222, 0xFFFF))
            f[4], f[5] = t >> 8, t & 0xFF
            return f

        _check_end_state(_run_with(packet, mutate), packet)


def test_mutated_records_release_nothing_and_never_close_cleanly():
    rnd = random.Random(11)
    out = bytearray(600)
    for i in range(200):
        link = make_pair2(**KW).run()
        c, s = link.client, link.server
        kind = rnd.choice((wire2.T2_DATA, wire2.T2_END, wire2.T2_CLOSE))
        if kind == wire2.T2_DATA:
            n = c.send_data(bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 60))), out)
        elif kind == wire2.T2_END:
            n = c.end_stream(out)
        else:
            c.disconnect()
            n = c.data_to_send(out)
        frame = bytearray(out[:n])
        for _ in range(rnd.randint(1, 3)):
            frame[rnd.randrange(len(frame))] ^= 1 << rnd.randrange(8)
        s.receive_data(frame)
        events = []
        for _ in range(60):
            ev = s.next_event()
            if ev == NEED_DATA:
                s.receive_data(bytes(600))      # a length grew: give it the bytes it awaits
                continue
            events.append(ev)
            if ev == CLOSED:
                break
        assert DATA not in events, (i, events)
        assert events[-1:] == [CLOSED], (i, events)
        assert not isinstance(s.error, ConnectionClosed), (i, s.error)


def test_random_garbage_in_every_state():
    # Random streams (some starting with a plausible protocol 2 header) fed in random chunks
    # to a client and a server at each point of a handshake: only events come out.
    rnd = random.Random(5)
    for i in range(120):
        link = make_pair2(**KW)
        steps = rnd.randint(0, 4)
        for _ in range(steps):
            link.step()
        target = rnd.choice((link.client, link.server))
        junk = bytearray(rnd.randrange(256) for _ in range(rnd.randint(1, 400)))
        if rnd.random() < 0.5 and len(junk) >= 8:
            t = rnd.choice((0x0201, 0x0202, 0x0203, 0x0210, 0x0211, 0x0220, 0x0221))
            junk[0], junk[1] = 0, rnd.randint(0, 200)
            junk[4], junk[5] = t >> 8, t & 0xFF
        p = 0
        for _ in range(1000):
            if p >= len(junk) and target.next_event() == NEED_DATA:
                break
            if p < len(junk):
                k = rnd.randint(1, 50)
                p += target.receive_data(junk[p:p + k])
            ev = target.next_event()
            target.data_to_send(out=bytearray(400))
            if ev == CLOSED:
                break
        else:
            raise AssertionError("no progress on case %d" % i)
        if target.closed or target.state_name == "Failing":
            assert not isinstance(target.error, ConnectionClosed), (i, target.error)
