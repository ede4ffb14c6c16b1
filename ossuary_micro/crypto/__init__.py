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
    """The record path's (seal, open_) for one session key, called as the backend's
    aead_seal / aead_open are (with `key`, which they may ignore): the backend's own
    aead_record(key) if it has one (pyca: one AEAD context per key, windows kept between
    records), else its aead_seal / aead_open themselves."""
    f = getattr(backend, "aead_record", None)
    return f(key) if f is not None else (backend.aead_seal, backend.aead_open)
