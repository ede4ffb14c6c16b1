# Crypto backend registry: pick the best available backend, or the one asked for by name.
#
# Each backend module defines `Backend`, an object with the narrow interface described in
# docs/design.md ("Crypto backend interface"). Backends are imported lazily, so a board
# without the viper emitter or a host without pyca/cryptography simply skips them.

from ..errors import CryptoError

# Best first. The modules: pyca.py (pyca/cryptography, CPython), viper.py (MicroPython viper
# emitter), pure.py (pure Python, runs everywhere).
_ORDER = ("cryptography", "viper", "pure")
_cache = {}


def _load(name):
    # Import the backend module for `name` (and only that one); return a Backend instance,
    # or None if it does not exist here. ImportError covers a missing module; the viper
    # module also raises it when the emitter is unavailable, and pyca when the package is
    # not installed. SyntaxError/NotImplementedError: MicroPython builds without
    # the viper emitter refuse to compile @micropython.viper functions. Anything else -
    # above all MemoryError, from compiling or loading a module on a small board - is a
    # CryptoError naming the backend, and is not cached, so a later call can retry.
    if name in _cache:
        return _cache[name]
    try:
        if name == "cryptography":
            from . import pyca as mod
        elif name == "viper":
            from . import viper as mod
        else:
            from . import pure as mod
        backend = mod.Backend()
    except (ImportError, SyntaxError, NotImplementedError):
        backend = None
    except Exception as e:
        raise CryptoError("crypto backend %s failed to load: %s" % (name, type(e).__name__))
    _cache[name] = backend
    return backend


def available_backends():
    """Names of the backends usable on this interpreter, best first."""
    return [n for n in _ORDER if _load(n) is not None]


def get_backend(name=None):
    """Return a backend object: the one called `name`, or the best available one.

    Raises CryptoError if `name` is unknown or not usable here.
    """
    if name is None:
        for n in _ORDER:
            b = _load(n)
            if b is not None:
                return b
        raise CryptoError("no crypto backend available")
    if name not in _ORDER:
        raise CryptoError("unknown crypto backend: %s" % name)
    b = _load(name)
    if b is None:
        raise CryptoError("crypto backend not available here: %s" % name)
    return b


def aead_record(backend, key):
    """The record path's (seal, open_) for one session key (the Connections call these):
    seal(nonce, src, n, dst, doff) writes ciphertext and tag of n bytes of src (from its
    start) at dst[doff:]; open_(nonce, src, soff, n, dst) verifies src[soff:soff+n+16] and
    writes its plaintext at dst[0:n], releasing none on a bad tag (AuthenticationFailed).
    A backend may make them itself (pyca: one AEAD context per key, windows kept between
    records); otherwise they call its aead_seal / aead_open with `key`, a buffer the caller
    may wipe in place afterwards."""
    f = getattr(backend, "aead_record", None)
    if f is not None:
        return f(key)
    r = _Record(backend, key)
    return r.seal, r.open


class _Record:
    # Bound methods, not closures: on MicroPython a closure called with its 5 arguments
    # plus 2 captured ones copies them to the heap (more than 5 in all), a bound method
    # does not, and the record path must allocate nothing.

    def __init__(self, backend, key):
        self.backend = backend
        self.key = key

    def seal(self, nonce, src, n, dst, doff):
        self.backend.aead_seal(self.key, nonce, src, 0, n, dst, doff)

    def open(self, nonce, src, soff, n, dst):
        self.backend.aead_open(self.key, nonce, src, soff, n, dst, 0)
