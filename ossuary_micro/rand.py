# The default cryptographic random source: os.urandom, or a clear NoRandomSource error.
#
# Keys and ephemeral secrets come from here unless the caller passes its own `random(n)`
# callable (a board port may use its hardware RNG). There is deliberately no fallback to
# `random` or any other non-cryptographic generator: without a real source we refuse.

from .errors import NoRandomSource

try:
    from os import urandom as _urandom
except ImportError:
    # Ports without os.urandom (e.g. MicroPython WebAssembly) or without os at all.
    _urandom = None


def default_random():
    """Return `random(n) -> bytes` backed by os.urandom.

    Raises NoRandomSource when this interpreter has no os.urandom; pass your own
    `random` callable (e.g. a hardware RNG) to the library instead."""
    if _urandom is None:
        raise NoRandomSource(
            "no os.urandom on this platform: pass a random(n) callable backed by a hardware RNG")
    return _urandom


def check_random(fn, n=32):
    """Sanity-check a `random(n) -> bytes` callable: it must return exactly n bytes, and two
    draws must differ (catches a constant or broken source, not a weak one). Returns fn.
    n must be at least 16 so that a chance repeat is impossible in practice.

    Raises NoRandomSource if the callable fails, returns the wrong length, or repeats."""
    if n < 16:
        raise ValueError("check_random needs n >= 16")
    try:
        a = fn(n)
        b = fn(n)
        la = len(a)
        lb = len(b)
    except Exception as e:  # whatever a broken user-supplied source raises
        raise NoRandomSource("random source failed: %r" % (e,))
    if la != n or lb != n:
        raise NoRandomSource("random source returned %d bytes, wanted %d" % (la, n))
    if bytes(a) == bytes(b):
        raise NoRandomSource("random source returned the same bytes twice")
    return fn
