# Benchmarks that run on MicroPython (unix and wasm ports) and on CPython alike.
#
#   .venv/bin/micropython bench/mp_bench.py [--quick] [--records 64,1024] [--backends a,b]
#   node tools/mpwasm/run.mjs --no-summary bench/mp_bench.py
#   python bench/mp_bench.py --records 64,16384
#
# Prints human-readable progress and one machine-readable line per figure:
#   R <metric> <backend> <value>
# bench/run.py collects those lines from every interpreter into one table. Figures:
#   x25519_ms, x25519_heap_b        one X25519 (time; bytes allocated, gross)
#   ed_sign_ms, ed_verify_ms        Ed25519 sign / verify of a 64-byte message
#   hs_client_ms, hs_server_ms      a full handshake's work on each side (AUTH_SERVER mode)
#   hs_full_ms                      the whole handshake, both sides, wall time
#   hs_gross_b, hs_peak_b           heap allocated during a handshake (gross; "oom" when more
#                                   than the heap), and the largest live heap (after
#                                   gc.collect) sampled between protocol steps, both 1 KiB
#                                   connections included
#   conn_heap_b                     live heap held by one Connection(max_record=1024)
#   (records: both connections have max_record = the largest size asked for)
#   seal_kBps_<n>, open_kBps_<n>    raw backend AEAD throughput at n-byte records
#   send_kBps_<n>, recv_kBps_<n>    the record path: send_data (seal+frame) and
#                                   receive_data+next_event (parse+open), n-byte records
#   rec_alloc_b_<n>                 bytes allocated per record (send+receive), gross
# Heap figures need gc.mem_alloc (MicroPython). The wasm port frees nothing while Python runs,
# so there its "live" figures are not measurable and are not printed.

import sys
import gc

try:
    import time

    _ticks_us = time.ticks_us
    _diff = time.ticks_diff
except AttributeError:  # CPython
    import time

    def _ticks_us():
        return time.perf_counter_ns() // 1000

    def _diff(a, b):
        return a - b

for _p in ("", "."):
    if _p not in sys.path:
        sys.path.append(_p)

from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, NEED_DATA, DATA,  # noqa: E402
                           available_backends, get_backend)

_MEM = getattr(gc, "mem_alloc", None)
# gc.collect() reclaims nothing inside one wasm run (measured), so "live" heap is unknowable.
_LIVE_OK = _MEM is not None and sys.platform != "webassembly"

SERVER_SEED = bytes(range(1, 33))
CLIENT_SEED = bytes(range(33, 65))


class DetRandom:
    """Deterministic bytes for benchmarking only (the wasm port has no os.urandom)."""

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


def emit(metric, backend, value):
    if isinstance(value, float):
        value = "%.4g" % value
    print("R %s %s %s" % (metric, backend, value))


def timed(fn, min_us, min_n=1, max_n=100000):
    """Mean microseconds per call of fn(), running at least min_n calls and min_us total."""
    n = 0
    t0 = _ticks_us()
    el = 0
    while n < min_n or (el < min_us and n < max_n):
        fn()
        n += 1
        el = _diff(_ticks_us(), t0)
    return el / n


def gross_alloc(fn):
    """Bytes allocated by one fn() call (gc.mem_alloc delta, no collection in between)."""
    if _MEM is None:
        return None
    gc.collect()
    gc.disable()
    try:
        a = _MEM()
        fn()
        b = _MEM()
    except MemoryError:
        return "oom"        # more than the heap holds without collecting
    finally:
        gc.enable()
    return b - a


# --------------------------------------------------------------------------- primitives

def bench_primitives(be, budget_us):
    k = bytes(range(32))
    u = bytes(range(32, 64))
    us = timed(lambda: be.x25519(k, u), budget_us)
    emit("x25519_ms", be.name, us / 1000.0)
    a = gross_alloc(lambda: be.x25519(k, u))
    if a is not None:
        emit("x25519_heap_b", be.name, a)
    msg = bytes(64)
    seed = SERVER_SEED
    pub = be.ed25519_public(seed)
    sig = be.ed25519_sign(seed, msg)
    emit("ed_sign_ms", be.name, timed(lambda: be.ed25519_sign(seed, msg), budget_us) / 1000.0)
    emit("ed_verify_ms", be.name,
         timed(lambda: be.ed25519_verify(pub, msg, sig), budget_us) / 1000.0)


def bench_aead(be, sizes, budget_us):
    key = bytes(range(32))
    nonce = bytes(12)
    for n in sizes:
        src = bytearray(n)
        ct = bytearray(n + 16)
        pt = bytearray(n)
        be.aead_seal(key, nonce, src, 0, n, ct, 0)
        us = timed(lambda: be.aead_seal(key, nonce, src, 0, n, ct, 0), budget_us, 3)
        emit("seal_kBps_%d" % n, be.name, n / us * 1e6 / 1000.0)
        us = timed(lambda: be.aead_open(key, nonce, ct, 0, n, pt, 0), budget_us, 3)
        emit("open_kBps_%d" % n, be.name, n / us * 1e6 / 1000.0)


# --------------------------------------------------------------------------- connections

def make_pair(be, max_record, tag=1):
    c = Connection(CLIENT, secret_key=CLIENT_SEED, max_record=max_record, backend=be,
                   random=DetRandom(tag * 2))
    s = Connection(AUTH_SERVER, secret_key=SERVER_SEED, max_record=max_record, backend=be,
                   authorized_keys=(c.local_public_key,), random=DetRandom(tag * 2 + 1))
    c.add_authorized_key(s.local_public_key)
    return c, s


def handshake(c, s, spent=None, sample=None):
    """Run the handshake to completion. spent: optional [client_us, server_us] to add the
    time of each side's calls to; sample: optional callable run between steps."""
    buf = bytearray(256)
    for _ in range(20):
        moved = False
        for i, (a, b) in enumerate(((c, s), (s, c))):
            t0 = _ticks_us()
            n = a.data_to_send(buf)
            t1 = _ticks_us()
            if spent is not None:
                spent[i] += _diff(t1, t0)
            if n:
                moved = True
                t0 = _ticks_us()
                b.receive_data(buf, n)
                while b.next_event() != NEED_DATA:
                    pass
                t1 = _ticks_us()
                if spent is not None:
                    spent[1 - i] += _diff(t1, t0)
            if sample is not None:
                sample()
        if c.established and s.established:
            return
        if not moved:
            break
    raise AssertionError("handshake did not finish: %s / %s" % (c.state_name, s.state_name))


def bench_handshake(be, rounds):
    spent = [0, 0]
    t0 = _ticks_us()
    for r in range(rounds):
        # Construction (ephemeral X25519 key, public key from the seed) is part of the cost.
        a = _ticks_us()
        c = Connection(CLIENT, secret_key=CLIENT_SEED, max_record=1024, backend=be,
                       random=DetRandom(r))
        b = _ticks_us()
        s = Connection(AUTH_SERVER, secret_key=SERVER_SEED, max_record=1024, backend=be,
                       authorized_keys=(c.local_public_key,), random=DetRandom(r + 7))
        spent[0] += _diff(b, a)
        spent[1] += _diff(_ticks_us(), b)
        c.add_authorized_key(s.local_public_key)
        handshake(c, s, spent)
    total = _diff(_ticks_us(), t0)
    emit("hs_client_ms", be.name, spent[0] / rounds / 1000.0)
    emit("hs_server_ms", be.name, spent[1] / rounds / 1000.0)
    emit("hs_full_ms", be.name, total / rounds / 1000.0)


def _hs_gross(be):
    c, s = make_pair(be, 1024, 5)
    emit("hs_gross_b", be.name, gross_alloc(lambda: handshake(c, s)))


def bench_handshake_heap(be):
    """Gross allocation of one handshake, and its live peak: the heap above the baseline taken
    before both connections existed, so the peak includes the two 1 KiB connections."""
    if _MEM is None:
        return
    _hs_gross(be)
    if not _LIVE_OK:
        return
    gc.collect()
    base = _MEM()
    peak = [0]

    def sample():
        gc.collect()
        v = _MEM() - base
        if v > peak[0]:
            peak[0] = v

    c, s = make_pair(be, 1024, 6)
    sample()
    handshake(c, s, None, sample)
    emit("hs_peak_b", be.name, peak[0])


def bench_conn_heap(be):
    if not _LIVE_OK:
        return
    holder = []
    make = lambda: holder.append(Connection(CLIENT, secret_key=CLIENT_SEED, max_record=1024,  # noqa: E731
                                            backend=be, random=DetRandom(3)))
    make()              # warm up (imports, caches), then measure a second one
    holder.pop()
    gc.collect()
    a = _MEM()
    make()
    gc.collect()
    emit("conn_heap_b", be.name, _MEM() - a)


def bench_records(be, sizes, budget_us):
    # Connections sized for the largest record, so smaller records use part of the buffers
    # (n < len(buffer): the case that needs offsets rather than slices).
    mr = max(sizes)
    for n in sizes:
        c, s = make_pair(be, mr, 9)
        handshake(c, s)
        payload = bytearray(mr)
        out = bytearray(c.max_packet)
        m = c.send_data(payload, out, 0, n)
        s.receive_data(out, m)
        assert s.next_event() == DATA

        def send():
            c.send_data(payload, out, 0, n)

        us_send = timed(send, budget_us, 3)
        emit("send_kBps_%d" % n, be.name, n / us_send * 1e6 / 1000.0)
        # Fresh pair for receiving: feed frames sealed in sequence.
        c, s = make_pair(be, mr, 10)
        handshake(c, s)

        def rt():
            k = c.send_data(payload, out, 0, n)
            s.receive_data(out, k)
            s.next_event()

        us_rt = timed(rt, budget_us, 3)
        us_recv = us_rt - us_send
        if us_recv > 0:
            emit("recv_kBps_%d" % n, be.name, n / us_recv * 1e6 / 1000.0)
        if _MEM is not None:
            emit("rec_alloc_b_%d" % n, be.name, _per_record_alloc(rt, 20))


def _per_record_alloc(rt, k):
    gc.collect()
    gc.disable()
    try:
        a = _MEM()
        for _ in range(k):
            rt()
        b = _MEM()
    finally:
        gc.enable()
    return (b - a) // k


def main(argv):
    quick = "--quick" in argv
    sizes = (64, 1024)
    backends = None
    for i, a in enumerate(argv):
        if a == "--records":
            sizes = tuple(int(x) for x in argv[i + 1].split(","))
        elif a == "--backends":
            backends = argv[i + 1].split(",")
    budget = 200000 if quick else 1000000
    impl = sys.implementation
    print("mp_bench: %s %s on %s" % (impl.name, ".".join(str(x) for x in impl.version[:3]),
                                     sys.platform))
    names = backends or available_backends()
    for name in names:
        be = get_backend(name)
        print("backend %s" % name)
        bench_primitives(be, budget)
        bench_aead(be, sizes, budget)
        bench_handshake(be, 1 if quick else 3)
        bench_handshake_heap(be)
        bench_conn_heap(be)
        bench_records(be, sizes, budget)
        gc.collect()
    print("mp_bench: done")


if __name__ == "__main__":
    main(sys.argv[1:])
