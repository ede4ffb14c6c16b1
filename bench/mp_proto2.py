# Protocol 2 against protocol 1 on MicroPython (boards, emulators, unix/wasm ports) and CPython:
# one AUTH_SERVER handshake per protocol, the work of each side measured separately, plus the
# live heap of a Connection2 and the largest live heap between handshake steps.
#
#   .venv/bin/micropython bench/mp_proto2.py [ROUNDS]
#   ../shared/tools/board-emulator/m0 --icount ./m0tty   (then, with the .mpy files built and
#   bench/mp_bench.py copied into build/armv6m, since this script imports it:)
#   mpremote connect ./m0tty mount build/armv6m run bench/mp_proto2.py
#
# Prints `R <metric> <backend> <value>` lines like bench/mp_bench.py:
#   p1_client_us, p1_server_us, p2_client_us, p2_server_us   per side, one handshake (mean),
#                                                            object creation included
#   p1_setup_us, p2_setup_us                                 of which: creating one object
#   p2id_client_us, p2id_server_us                           protocol 2, Identity shared
#   p2_conn_heap_b, p2_hs_peak_b                             live heap (after gc.collect)
# Under the M0 emulator's --icount one tick_us is 1000 executed instructions.

import gc
import hashlib
import sys

# The clock (time.ticks_us, or perf_counter on CPython), the import path (the project root)
# and gc.mem_alloc come from mp_bench.py, which sits beside this script.
from mp_bench import _ticks_us, _diff, _MEM

from ossuary_micro import Connection, CLIENT, AUTH_SERVER, NEED_DATA, get_backend  # noqa: E402
from ossuary_micro.connection2 import Connection2, Identity  # noqa: E402

SEED_C = bytes(range(33, 65))
SEED_S = bytes(range(1, 33))


class DetRandom:
    """Deterministic bytes, for measuring only (boards' emulator has no os.urandom)."""

    def __init__(self, seed):
        self.seed = seed
        self.ctr = 0

    def __call__(self, n):
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.seed + bytes((self.ctr & 0xFF, self.ctr >> 8))).digest()
            self.ctr += 1
        return out[:n]


def live():
    gc.collect()
    return _MEM() if _MEM else 0


def handshake(cls, be, spent, peak, keys=(SEED_C, SEED_S)):
    pub_c = be.ed25519_public(SEED_C)
    pub_s = be.ed25519_public(SEED_S)
    out = bytearray(400)
    t0 = _ticks_us()
    c = cls(CLIENT, keys[0], (pub_s,), 256, be, DetRandom(b"c"))
    spent[0] += _diff(_ticks_us(), t0)
    t0 = _ticks_us()
    s = cls(AUTH_SERVER, keys[1], (pub_c,), 256, be, DetRandom(b"s"))
    spent[1] += _diff(_ticks_us(), t0)
    sides = (c, s)
    inbox = [b"", b""]
    for _ in range(12):
        for i in (0, 1):
            conn = sides[i]
            t0 = _ticks_us()
            if inbox[i]:
                conn.receive_data(inbox[i])
                inbox[i] = b""
            while True:
                ev = conn.next_event()
                n = conn.data_to_send(out)
                if n:
                    inbox[1 - i] += bytes(out[:n])
                if ev == NEED_DATA and not n:
                    break
            spent[i] += _diff(_ticks_us(), t0)
            if peak is not None:
                peak[0] = max(peak[0], live())
        if c.established and s.established:
            return c, s
    raise RuntimeError("handshake did not complete")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    try:
        be = get_backend()
    except MemoryError:
        # The viper backend's module does not fit beside both protocols in a 140 KiB heap
        # when loaded from source-sized .mpy: measure on the pure backend and say so.
        gc.collect()
        print("viper backend does not fit in this heap: using pure")
        be = get_backend("pure")
    print("interpreter:", sys.implementation.name, sys.platform, "backend:", be.name)
    # p2id: protocol 2 with an Identity made once per side and shared by every connection.
    ids = (Identity(SEED_C, be), Identity(SEED_S, be))
    for name, cls, keys in (("p1", Connection, (SEED_C, SEED_S)),
                            ("p2", Connection2, (SEED_C, SEED_S)), ("p2id", Connection2, ids)):
        handshake(cls, be, [0, 0], None, keys)    # warm-up (imports, tables)
        spent = [0, 0]
        for _ in range(rounds):
            handshake(cls, be, spent, None, keys)
        print("R %s_client_us %s %d" % (name, be.name, spent[0] // rounds))
        print("R %s_server_us %s %d" % (name, be.name, spent[1] // rounds))
        if name == "p2id":
            continue
        # Of which key setup: creating the client object (Ed25519 public key; for protocol 2
        # also SHA-512 of the seed and the X25519 static public key).
        t0 = _ticks_us()
        cls(CLIENT, SEED_C, (), 256, be, DetRandom(b"x"))
        print("R %s_setup_us %s %d" % (name, be.name, _diff(_ticks_us(), t0)))
    if _MEM:
        base = live()
        c = Connection2(CLIENT, SEED_C, (), 1024, be, DetRandom(b"h"))
        print("R p2_conn_heap_b %s %d" % (be.name, live() - base))
        del c
        base = live()
        peak = [base]
        pair = handshake(Connection2, be, [0, 0], peak)
        print("R p2_hs_peak_b %s %d" % (be.name, peak[0] - base))
        del pair
    print("done")


main()
