#!/usr/bin/env python3
"""Protocol 2 handshake and records on CPython, against noiseprotocol's XX and protocol 1.

  .venv/bin/python bench/proto2_bench.py [--quick]

Handshake cost per side: the time spent in each side's own calls (object creation, which
includes key setup, and every write/read of a handshake message), the median over N
handshakes run interleaved in this process, all with the `cryptography` (OpenSSL)
primitives; noiseprotocol 0.3.1 uses the same library. Records: seal + frame and parse + open of 1 KiB records.
Prints one table and the ratio to noiseprotocol (target: <= 0.8). A measurement, not a test.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, NEED_DATA, get_backend)  # noqa: E402
from ossuary_micro.connection2 import Connection2, Identity  # noqa: E402

SEED_C = bytes(range(32))
SEED_S = bytes(range(32, 64))
_pc = time.perf_counter


class Timer:
    def __init__(self):
        self.t = {"client": 0.0, "server": 0.0}

    def call(self, side, fn, *args):
        t0 = _pc()
        r = fn(*args)
        self.t[side] += _pc() - t0
        return r


def ours(cls, n, timer, backend, seed_c=SEED_C, seed_s=SEED_S):
    pub_c = backend.ed25519_public(SEED_C)
    pub_s = backend.ed25519_public(SEED_S)
    out = bytearray(400)

    def pump(side, conn, data):
        if data:
            conn.receive_data(data)
        sent = b""
        while True:
            ev = conn.next_event()
            k = conn.data_to_send(out)
            if k:
                sent += bytes(out[:k])
            if ev == NEED_DATA and not k:
                return sent

    for _ in range(n):
        c = timer.call("client", cls, CLIENT, seed_c, (pub_s,), 1024, backend)
        s = timer.call("server", cls, AUTH_SERVER, seed_s, (pub_c,), 1024, backend)
        to_s = timer.call("client", pump, "client", c, b"")
        while not (c.established and s.established):
            to_c = timer.call("server", pump, "server", s, to_s)
            to_s = timer.call("client", pump, "client", c, to_c)
            if to_s:
                timer.call("server", pump, "server", s, to_s)
                to_s = b""
    return c, s


def noiseprotocol(n, timer):
    from noise.connection import NoiseConnection, Keypair

    def make(initiator, seed):
        nc = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_SHA256")
        nc.set_as_initiator() if initiator else nc.set_as_responder()
        nc.set_prologue(b"ossuary-micro protocol 2")
        nc.set_keypair_from_private_bytes(Keypair.STATIC, seed)
        nc.start_handshake()
        return nc

    for _ in range(n):
        c = timer.call("client", make, True, SEED_C)
        s = timer.call("server", make, False, SEED_S)
        m1 = timer.call("client", c.write_message, b"")
        timer.call("server", s.read_message, m1)
        m2 = timer.call("server", s.write_message, b"\x01" * 32)
        timer.call("client", c.read_message, m2)
        m3 = timer.call("client", c.write_message, b"\x02" * 32)
        timer.call("server", s.read_message, m3)
        assert s.handshake_finished and c.handshake_finished
    return c, s


def record_rate(send, recv, size, seconds):
    data = bytes(size)
    n = 0
    t0 = _pc()
    while _pc() - t0 < seconds:
        recv(send(data))
        n += 1
    return n * size / (_pc() - t0) / 1e6


def main(argv):
    quick = "--quick" in argv
    n = 50 if quick else 300
    secs = 0.3 if quick else 1.5
    b = get_backend("cryptography")
    # A node or collector makes its Identity once (Ed25519 public key, X25519 static key pair)
    # and passes it to every connection; noiseprotocol's API derives the static public key in
    # every connection, as does ours when given the raw seed (second row).
    id_c, id_s = Identity(SEED_C, b), Identity(SEED_S, b)
    impls = (("protocol 2 (ours), shared Identity", lambda t, k: ours(Connection2, k, t, b, id_c, id_s)),
             ("protocol 2 (ours), seed per connection", lambda t, k: ours(Connection2, k, t, b)),
             ("noiseprotocol XX", lambda t, k: noiseprotocol(k, t)),
             ("protocol 1 (ours)", lambda t, k: ours(Connection, k, t, b)))
    for _, fn in impls:
        fn(Timer(), 5)                  # warm-up: imports, OpenSSL tables
    # Interleaved, one handshake of each at a time, and the median per side: the machine is
    # shared, and load that comes and goes then hits every implementation alike.
    samples = [([], []) for _ in impls]
    pairs = [None] * len(impls)
    for _ in range(n):
        for j, (_, fn) in enumerate(impls):
            t = Timer()
            pairs[j] = fn(t, 1)
            samples[j][0].append(t.t["client"])
            samples[j][1].append(t.t["server"])

    def median(v):
        v = sorted(v)
        return v[len(v) // 2]

    rows = [(name, median(samples[j][0]) * 1e3, median(samples[j][1]) * 1e3, pairs[j])
            for j, (name, _) in enumerate(impls)]

    # Records of 1 KiB, one direction: seal + frame, then parse + open.
    out = bytearray(2048)
    p2c, p2s = rows[0][3]
    npc, nps = rows[2][3]
    p1c, p1s = rows[3][3]

    def p_send(conn):
        return lambda d: bytes(out[:conn.send_data(d, out)])

    def p_recv(conn):
        def r(frame):
            conn.receive_data(frame)
            conn.next_event()
        return r

    rate2 = record_rate(p_send(p2c), p_recv(p2s), 1024, secs)
    rates = (rate2, rate2,
             record_rate(npc.encrypt, nps.decrypt, 1024, secs),
             record_rate(p_send(p1c), p_recv(p1s), 1024, secs))

    import platform
    print("proto2_bench: CPython %s on %s, median of %d handshakes per row, backend cryptography"
          % (platform.python_version(), platform.machine(), n))
    print("| implementation | client side (ms) | server side (ms) | 1 KiB records (MB/s) |")
    print("|---|---:|---:|---:|")
    for (name, cms, sms, _), rate in zip(rows, rates):
        print("| %s | %.3f | %.3f | %.1f |" % (name, cms, sms, rate))
    ref_c, ref_s = rows[2][1], rows[2][2]
    for j in (0, 1):
        print("%s / noiseprotocol: client %.2fx, server %.2fx (target <= 0.80)"
              % (rows[j][0], rows[j][1] / ref_c, rows[j][2] / ref_s))
        print("%s / protocol 1: client %.2fx, server %.2fx"
              % (rows[j][0], rows[j][1] / rows[3][1], rows[j][2] / rows[3][2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
