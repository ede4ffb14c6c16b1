# Helpers for tests that run both under pytest (CPython) and under our MicroPython runner.
#
# Portable test modules import nothing from pytest: they define plain `test_*` functions that
# raise AssertionError on failure, and use these helpers.

import json
import os

try:
    from binascii import unhexlify, hexlify
except ImportError:  # pragma: no cover
    from ubinascii import unhexlify, hexlify


def h(text):
    """Bytes from a hex string (whitespace ignored)."""
    return unhexlify("".join(text.split()))


def hx(data):
    """Lowercase hex string of bytes."""
    return hexlify(bytes(data)).decode()


def raises(exc, fn, *args, **kwargs):
    """Assert that fn(*args) raises `exc`; return the exception."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError("%r did not raise %r" % (fn, exc))


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _here():
    # Directory of this file; MicroPython sets __file__ for imported modules.
    f = __file__
    i = f.rfind("/")
    return f[:i] if i >= 0 else "."


def wycheproof_dir():
    """Folder of the Wycheproof vectors: $WYCHEPROOF_DIR if set, else the copy vendored in
    tests/data/wycheproof (SOURCE.md there names the upstream commit). Fails loudly
    (AssertionError naming the places looked at) when the vectors are missing: they are a
    required part of the test suite."""
    getenv = getattr(os, "getenv", None)   # absent on the WebAssembly port: run.mjs copies
    env = getenv("WYCHEPROOF_DIR") if getenv else None  # $WYCHEPROOF_DIR to the vendored path
    tried = []
    if env:
        tried.append(env)
    tried.append(_here() + "/../data/wycheproof")
    for d in tried:
        if _exists(d + "/x25519_test.json"):
            return d
    raise AssertionError(
        "WYCHEPROOF VECTORS MISSING: looked in %s; set WYCHEPROOF_DIR" % ", ".join(tried))


def load_wycheproof(name):
    """Parsed JSON of one Wycheproof file, e.g. load_wycheproof('x25519_test.json')."""
    with open(wycheproof_dir() + "/" + name) as f:
        return json.load(f)


# Per-run tally of Wycheproof cases executed, {(file, backend): count}; pytest prints it at the
# end (tests/conftest.py) and the MicroPython runner prints it too, so every run shows that the
# cases really ran on every backend.
WYCHEPROOF_TALLY = {}


def tally(file, backend, n):
    key = (file, backend)
    WYCHEPROOF_TALLY[key] = WYCHEPROOF_TALLY.get(key, 0) + n
