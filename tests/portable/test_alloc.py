# Allocation checks on MicroPython: the data path allocates nothing, and a closed connection is
# reclaimed by the GC. On CPython every test returns at once (allocation there means nothing
# for a board).
#
# How: micropython.heap_lock() makes any heap allocation raise MemoryError (with a traceback
# naming the allocating line on the unix port; the wasm port gives none), so a loop of
# send_data / receive_data / next_event under the lock proves zero allocation per record. When
# something allocates, each call is re-run alone under the lock and the failure message names
# the call, the traceback and the bytes allocated per record (gc.mem_alloc).

import sys
import gc

from ossuary_micro import AUTH_SERVER, DATA, NEED_DATA
from ossuary_micro.crypto import get_backend, available_backends

from ._pair import make_pair, CLIENT_SEED

RECORDS = 40


def _micropython():
    """The micropython module when running on MicroPython with heap_lock, else None."""
    if sys.implementation.name != "micropython":
        return None
    import micropython

    return micropython if hasattr(micropython, "heap_lock") else None


class NullAEADBackend:
    """A real backend for the handshake's X25519/Ed25519, with a stand-in AEAD that allocates
    nothing (XOR with a constant, a fixed tag), so the core's own data path is measured apart
    from any backend. Both ends use it, so the channel still works end to end."""

    def __init__(self, real):
        self.real = real
        self.name = "null-aead(%s)" % real.name

    def x25519(self, a, b):
        return self.real.x25519(a, b)

    def x25519_base(self, a):
        return self.real.x25519_base(a)

    def ed25519_public(self, s):
        return self.real.ed25519_public(s)

    def ed25519_sign(self, s, m):
        return self.real.ed25519_sign(s, m)

    def ed25519_verify(self, p, m, s):
        return self.real.ed25519_verify(p, m, s)

    def sha512(self, d):
        return self.real.sha512(d)

    def aead_seal(self, key, nonce, src, soff, n, dst, doff):
        for i in range(n):
            dst[doff + i] = src[soff + i] ^ 0x5A
        for i in range(16):
            dst[doff + n + i] = 0xA5

    def aead_open(self, key, nonce, src, soff, n, dst, doff):
        for i in range(16):
            if src[soff + n + i] != 0xA5:
                from ossuary_micro.errors import AuthenticationFailed

                raise AuthenticationFailed("tag mismatch")
        for i in range(n):
            dst[doff + i] = src[soff + i] ^ 0x5A


def _established_pair(backend, max_record):
    link = make_pair(client_key=CLIENT_SEED, server_role=AUTH_SERVER, backend=backend,
                     max_record=max_record, seed=b"alloc")
    link.run()
    assert link.established(), "handshake failed with backend %s" % backend.name
    return link.client, link.server


def _one_record(sender, receiver, payload, out, n):
    # The data path as an application drives it: seal+frame, feed, parse.
    m = sender.send_data(payload, out, 0, n)
    receiver.receive_data(out, m)
    ev = receiver.next_event()
    if ev != DATA:
        raise AssertionError("expected DATA, got event %d" % ev)
    if receiver.next_event() != NEED_DATA:
        raise AssertionError("expected NEED_DATA after the record")


def _locked_loop(mp, sender, receiver, payload, out, n, count):
    # Returns None when nothing allocated, else the MemoryError. Runs inside a function: the
    # wasm port hangs when a top-level statement allocates under the lock.
    mp.heap_lock()
    try:
        for _ in range(count):
            _one_record(sender, receiver, payload, out, n)
    except MemoryError as e:
        mp.heap_unlock()
        # MicroPython reuses one MemoryError object while the heap is locked: render its
        # traceback now, before another one overwrites it.
        return _trace(e)
    mp.heap_unlock()
    return None


def _locked_call(mp, fn):
    # fn takes no arguments: a call with *args would itself allocate the argument array.
    mp.heap_lock()
    try:
        fn()
    except MemoryError as e:
        mp.heap_unlock()
        return _trace(e)
    mp.heap_unlock()
    return None


def _trace(e):
    try:
        import io

        s = io.StringIO()
        sys.print_exception(e, s)
        return s.getvalue()
    except Exception:  # a port without io.StringIO or print_exception to a stream
        return repr(e)


def _bytes_per_record(sender, receiver, payload, out, n, count):
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(count):
        _one_record(sender, receiver, payload, out, n)
    return (gc.mem_alloc() - before) // count


def _check_zero_alloc(backend, max_record, n):
    mp = _micropython()
    sender, receiver = _established_pair(backend, max_record)
    payload = bytearray(max_record)
    for i in range(max_record):
        payload[i] = i & 0xFF
    out = bytearray(sender.max_packet)
    # Warm up: first calls may create cached objects (bound methods are not cached, so
    # anything lasting would show up in the locked loop anyway).
    _one_record(sender, receiver, payload, out, n)
    err = _locked_loop(mp, sender, receiver, payload, out, n, RECORDS)
    if err is None:
        assert receiver.data_len == n
        assert receiver.plaintext[:n] == payload[:n]
        return
    # The locked loop stopped mid-record, so that pair is out of step: measure and locate on
    # fresh pairs. Bytes per record from gc.mem_alloc (nothing is collected in between).
    s1, r1 = _established_pair(backend, max_record)
    per = _bytes_per_record(s1, r1, payload, out, n, 8)
    # Locate: each call of the data path alone under the lock, in protocol order.
    details = []
    s2, r2 = _established_pair(backend, max_record)
    m = n + 28

    def send():
        s2.send_data(payload, out, 0, n)

    def feed():
        r2.receive_data(out, m)

    def parse():
        r2.next_event()

    e = _locked_call(mp, send)
    if e is not None:
        details.append("send_data(payload, out, 0, %d) allocates:\n%s" % (n, e))
    else:
        e = _locked_call(mp, feed)
        if e is not None:
            details.append("receive_data(out, %d) allocates:\n%s" % (m, e))
        else:
            e = _locked_call(mp, parse)
            if e is not None:
                details.append("next_event() allocates:\n%s" % e)
    raise AssertionError(
        "data path allocates with backend %s, %d-byte records (max_record %d): about %d bytes "
        "per record; first allocation:\n%s%s" % (
            backend.name, n, max_record, per, err,
            "\n".join(details) if details else "(each call alone did not allocate)"))


# --------------------------------------------------------------------------- tests

def test_core_data_path_allocates_nothing_full_records():
    """The core (framing, nonces, buffers) with a non-allocating AEAD: 1 KiB records filling
    the output buffer exactly."""
    if _micropython() is None:
        return
    _check_zero_alloc(NullAEADBackend(get_backend()), 1024, 1024)


def test_core_data_path_allocates_nothing_short_records():
    """Same with 64-byte records in a 1 KiB connection: `n` smaller than the buffer, the case
    that needs offsets instead of slices."""
    if _micropython() is None:
        return
    _check_zero_alloc(NullAEADBackend(get_backend()), 1024, 64)


def test_viper_data_path_allocates_nothing():
    """The real thing on boards: the viper backend, 1 KiB and 64-byte records."""
    if _micropython() is None or "viper" not in available_backends():
        return  # CPython, or a port without the viper emitter (wasm): nothing to measure
    be = get_backend("viper")
    _check_zero_alloc(be, 1024, 1024)
    _check_zero_alloc(be, 1024, 64)


def test_closed_connection_is_reclaimed():
    """Weak check (the GC is conservative): after close + del + gc.collect the heap returns
    near its baseline, and five rounds do not grow it. A live 16 KiB connection pair holds
    > 64 KiB, so a leak of one would show."""
    if _micropython() is None or sys.platform == "webassembly":
        # The wasm port frees nothing while Python code runs (gc.collect() inside one
        # runPython call reclaims nothing; measured), so only the unix port can check this.
        return
    be = get_backend()

    def cycle():
        c, s = _established_pair(be, 16384)
        held = gc.mem_alloc()
        c.close()
        s.close()
        return held

    cycle()                     # warm caches (imports, backend tables)
    gc.collect()
    base = gc.mem_alloc()
    peak = 0
    for _ in range(5):
        held = cycle()
        if held - base > peak:
            peak = held - base
        gc.collect()
    after = gc.mem_alloc()
    assert peak > 64 * 1024, "a live pair should hold > 64 KiB, saw %d bytes" % peak
    assert after - base < 8 * 1024, (
        "heap grew by %d bytes after 5 closed 16 KiB connection pairs (live pair: %d bytes)"
        % (after - base, peak))
