# The default cryptographic random source: os.urandom, or a clear NoRandomSource error.
#
# Keys and ephemeral secrets come from here unless the caller passes its own `random(n)`
# callable (a board port may use its hardware RNG). There is deliberately no fallback to
# `random` or any other non-cryptographic generator: without a real source we refuse.
# check_random, a sanity check of such a callable, lives in randcheck.py: the self-test
# uses it, a node does not load it.

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
        raise NoRandomSource("no os.urandom here: pass random=, e.g. a hardware RNG")
    return _urandom

