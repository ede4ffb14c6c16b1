# RFC 5869 HKDF-SHA256 and HMAC-SHA256 for the host and the tests (the Wycheproof vectors):
# protocol 2 itself needs only the Noise HKDF (rev 34 section 4.3, two or three 32-byte
# outputs, empty info), which lives in noise.py with its HMAC, so that a board node never
# loads this module (its code and names would be heap there for the whole session). Both are
# the same construction: Noise's HKDF is RFC 5869 with the chaining key as salt and outputs
# chained by the counter byte (tests/portable/test_proto2.py checks it).
#
# Secrets pass through immutable bytes here (Python cannot wipe them); the callers keep their
# long-lived keys in bytearrays and wipe those.

import hashlib

from .errors import CryptoError
from .noise import hmac_sha256 as _hmac_sha256_py, noise_hkdf  # noqa: F401

HASHLEN = 32        # SHA-256 output


def sha256(data):
    """SHA-256 digest (32 bytes) of a bytes-like object."""
    return hashlib.sha256(data).digest()


try:
    # CPython: the C HMAC, about 15 times faster than noise.py's loop on hashlib. Same
    # function, same results (the tests check both against RFC 4231).
    from hmac import digest as _hmac_digest

    def hmac_sha256(key, data):
        """RFC 2104 HMAC-SHA256 of `data` under `key` (any length). Returns 32 bytes."""
        return _hmac_digest(bytes(key), bytes(data), "sha256")

except ImportError:
    hmac_sha256 = _hmac_sha256_py


def hkdf(salt, ikm, info, length):
    """RFC 5869 HKDF-SHA256: `length` bytes of output keying material.

    Raises CryptoError when length exceeds 255 * 32 (the RFC's limit)."""
    if length < 0 or length > 255 * HASHLEN:
        raise CryptoError("HKDF output length out of range")
    # Extract (RFC 5869 2.2): an absent salt is HashLen zero bytes.
    prk = hmac_sha256(salt if len(salt) else bytes(HASHLEN), ikm)
    # Expand (2.3): T(i) = HMAC(PRK, T(i-1) || info || i).
    out = bytearray()
    t = b""
    i = 1
    while len(out) < length:
        t = hmac_sha256(prk, bytes(t) + bytes(info) + bytes((i,)))
        out += t
        i += 1
    return bytes(out[:length])
