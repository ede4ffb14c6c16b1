# Instruction counts of the viper backend on the emulated Cortex-M0 (armv6m, the RP2040's ISA).
#
#   python tools/board_emulator.py m0 --icount bench/m0_bench.py     (from the project root)
#
# Runs on the board from .mpy. Under QEMU's --icount the board's clock advances one nanosecond
# per instruction executed, so a ticks_us difference is thousands of instructions (kinstr) and
# ticks_ms millions (Minstr). Without --icount the same figures are plain (emulated) time and
# mean nothing: the first line says which it believes. Prints one line per figure,
#   R <metric> viper <value>
# with metrics m0_*_kinstr (field, SHA-512 block, AEAD per KiB) and m0_*_minstr (X25519,
# Ed25519, handshake sides). Each figure is the cheapest of a few runs minus the cost of the
# empty timing loop; a gc.collect() before each run keeps collections out of the count.
#
# Handshake: AUTH_SERVER mode, both sides with long-term keys, deterministic random sources
# (this firmware has no os.urandom). A side's figure is the instructions spent in its own
# calls, Connection construction (ephemeral X25519 key) included and the Ed25519 public key
# of its long-term seed excluded (derived once at boot on a node): that derivation is timed
# right before and subtracted. Protocol 2 the same way, its Identity (the seed's X25519 form
# and Ed25519 public key) made beforehand; then the heap allocated by its record path.

import gc
import sys
import time

from ossuary_micro import Connection, CLIENT, AUTH_SERVER, NEED_DATA
from ossuary_micro.connection2 import Connection2, Identity
from ossuary_micro.crypto import get_backend
from ossuary_micro.crypto import viper as _v
from ossuary_micro.crypto import _viper_ed as _e

_us = time.ticks_us
_diff = time.ticks_diff

SERVER_SEED = bytes(range(1, 33))
CLIENT_SEED = bytes(range(33, 65))


class DetRandom:
    """Deterministic bytes, for benchmarking only (no os.urandom on this firmware)."""

    def __init__(self, seed):
        self.x = seed & 0xFFFF

    def __call__(self, n):
        out = bytearray(n)
        x = self.x
        for i in range(n):
            x = (x * 25173 + 13849) & 0xFFFF
            out[i] = x >> 8
        self.x = x
        return bytes(out)


def emit(metric, value):
    print("R %s viper %s" % (metric, ("%.4g" % value) if isinstance(value, float) else value))


def cost_us(fn, n, runs=3):
    """Cheapest of `runs` timings of n calls of fn(), in us (= kinstr under --icount), minus the
    same loop around a no-op, divided by n."""
    best = None
    for _ in range(runs):
        gc.collect()
        t0 = _us()
        for _ in range(n):
            fn()
        el = _diff(_us(), t0)
        gc.collect()
        t0 = _us()
        for _ in range(n):
            _noop()
        el -= _diff(_us(), t0)
        if best is None or el < best:
            best = el
    return best / n


def _noop():
    pass


def bench_field():
    a = bytearray(80)
    b = bytearray(80)
    _v._addk(a, _v._FE0, _v._FE1, 12345)
    _v._addk(b, _v._FE0, _v._FE1, 6789)
    emit("m0_fe_mul_kinstr", cost_us(lambda: _v._mul(a, a, b), 50))
    emit("m0_fe_sq_kinstr", cost_us(lambda: _v._mul(a, a, a), 50))
    emit("m0_fe_add_kinstr", cost_us(lambda: _v._addk(a, a, b, 1), 50))
    blk = bytearray(128)
    _e._sha(bytearray(64), ())  # a state to compress from (the cost does not depend on it)
    emit("m0_sha512_block_kinstr", cost_us(lambda: _e._compress(blk, 0), 5))


def bench_primitives(be):
    k = bytes(range(32))
    u = bytes(range(32, 64))
    emit("m0_x25519_minstr", cost_us(lambda: be.x25519(k, u), 1, 2) / 1000)
    emit("m0_x25519_base_minstr", cost_us(lambda: be.x25519_base(k), 1, 2) / 1000)
    msg = bytes(64)
    pub = be.ed25519_public(SERVER_SEED)
    sig = be.ed25519_sign(SERVER_SEED, msg)
    emit("m0_ed_public_minstr", cost_us(lambda: be.ed25519_public(SERVER_SEED), 1, 2) / 1000)
    emit("m0_ed_sign_minstr", cost_us(lambda: be.ed25519_sign(SERVER_SEED, msg), 1, 2) / 1000)
    emit("m0_ed_verify_minstr", cost_us(lambda: be.ed25519_verify(pub, msg, sig), 1, 2) / 1000)
    key = bytes(range(32))
    nonce = bytes(12)
    src = bytearray(1024)
    ct = bytearray(1024 + 16)
    emit("m0_aead_seal_kib_kinstr",
         cost_us(lambda: be.aead_seal(key, nonce, src, 0, 1024, ct, 0), 2))
    emit("m0_aead_open_kib_kinstr",
         cost_us(lambda: be.aead_open(key, nonce, ct, 0, 1024, src, 0), 2))


def _exchange(c, s, buf, spent):
    # Pass handshake packets between client c and server s until both are established
    # (True) or 10 rounds went by (False), adding each side's instructions to spent[0|1].
    for _ in range(10):
        for i, (a, b) in enumerate(((c, s), (s, c))):
            t0 = _us()
            n = a.data_to_send(buf)
            spent[i] += _diff(_us(), t0)
            if n:
                t0 = _us()
                b.receive_data(buf, n)
                while b.next_event() != NEED_DATA:
                    pass
                spent[1 - i] += _diff(_us(), t0)
        if c.established and s.established:
            return True
    return False


def handshake_once(be, r):
    spent = [0, 0]
    buf = bytearray(256)
    gc.collect()
    for side, seed in enumerate((CLIENT_SEED, SERVER_SEED)):
        t0 = _us()
        be.ed25519_public(seed)
        spent[side] -= _diff(_us(), t0)
    t0 = _us()
    c = Connection(CLIENT, secret_key=CLIENT_SEED, max_record=1024, backend=be,
                   random=DetRandom(r))
    t1 = _us()
    s = Connection(AUTH_SERVER, secret_key=SERVER_SEED, max_record=1024, backend=be,
                   authorized_keys=(c.local_public_key,), random=DetRandom(r + 7))
    spent[0] += _diff(t1, t0)
    spent[1] += _diff(_us(), t1)
    c.add_authorized_key(s.local_public_key)
    if _exchange(c, s, buf, spent):
        return spent
    raise RuntimeError("handshake did not finish: %s / %s" % (c.state_name, s.state_name))


def bench_handshake(be):
    best = None
    for r in range(2):
        spent = handshake_once(be, r)
        if best is None or spent[0] + spent[1] < best[0] + best[1]:
            best = spent
    emit("m0_hs_client_minstr", best[0] / 1000)
    emit("m0_hs_server_minstr", best[1] / 1000)


def handshake2_once(be, r, ids):
    # Protocol 2 (Noise XX), both sides with long-term keys: each side's Identity (the X25519
    # form of its seed and its Ed25519 public key, derived once at boot on a node) is made
    # beforehand and not counted, as the Ed25519 public key is not counted for protocol 1.
    # Returns (spent, client, server).
    spent = [0, 0]
    buf = bytearray(300)
    gc.collect()
    t0 = _us()
    c = Connection2(CLIENT, secret_key=ids[0], max_record=256, backend=be,
                    authorized_keys=(ids[1].public_key,), random=DetRandom(r))
    t1 = _us()
    s = Connection2(AUTH_SERVER, secret_key=ids[1], max_record=256, backend=be,
                    authorized_keys=(ids[0].public_key,), random=DetRandom(r + 7))
    spent[0] += _diff(t1, t0)
    spent[1] += _diff(_us(), t1)
    if _exchange(c, s, buf, spent):
        return spent, c, s
    raise RuntimeError("handshake did not finish: %s / %s" % (c.state_name, s.state_name))


def bench_protocol2(be):
    # Handshake sides of protocol 2 beside protocol 1's (issue 11: cheaper on the M0), and
    # the heap allocated by 20 records each way once established (0 expected: the viper
    # record path allocates nothing). gc is off while counting, so gc.mem_alloc()'s growth is
    # exactly what the records allocated.
    ids = (Identity(CLIENT_SEED, be), Identity(SERVER_SEED, be))
    best = None
    for r in range(2):
        spent, c, s = handshake2_once(be, r, ids)
        if best is None or spent[0] + spent[1] < best[0] + best[1]:
            best = spent
    emit("m0_hs2_client_minstr", best[0] / 1000)
    emit("m0_hs2_server_minstr", best[1] / 1000)
    emit("m0_p2_rec_alloc_b", record_alloc(c, s))
    emit("m0_p2_record_kinstr", cost_us(lambda: _one_record(c, s), 5))


_RBUF = bytearray(300)
_MSG = bytes(64)


def _one_record(a, b):
    # One 64-byte record from a to b, read out on b's side.
    n = a.send_data(_MSG, _RBUF)
    b.receive_data(_RBUF, n)
    b.next_event()
    b.next_event()


def record_alloc(c, s):
    for _ in range(3):   # first calls may bind methods, intern names: not per-record costs
        _one_record(c, s)
        _one_record(s, c)
    gc.collect()
    gc.disable()
    try:
        a = gc.mem_alloc()
        for _ in range(20):
            _one_record(c, s)
            _one_record(s, c)
        return gc.mem_alloc() - a
    finally:
        gc.enable()


def main():
    # The script cannot tell whether QEMU counts instructions; the header says what to assume.
    print("m0_bench: %s, figures are instruction counts only under m0 --icount" % sys.platform)
    be = get_backend("viper")
    bench_field()
    bench_primitives(be)
    bench_handshake(be)
    bench_protocol2(be)
    gc.collect()
    print("m0_bench: free heap %d B" % gc.mem_free())
    print("m0_bench: done")


main()
