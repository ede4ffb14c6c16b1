# A sanity check of a random source (the device self-test runs it): apart from rand.py so
# that a node, which never calls it, does not carry its code.

from .errors import NoRandomSource


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
