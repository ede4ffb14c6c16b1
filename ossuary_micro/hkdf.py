# HMAC-SHA256 and HKDF on hashlib's SHA-256: MicroPython has no `hmac` module, but every port
# (boards included) has hashlib.sha256, so protocol 2's key schedule is written here on it.
#
# Two entry points: `noise_hkdf` is the Noise specification's HKDF (rev 34 section 4.3, two or
# three 32-byte outputs, empty info), and `hkdf` is RFC 5869 with salt, info and any length,
# which the Wycheproof vectors exercise. Both are the same construction: Noise's HKDF is RFC
# 5869 with the chaining key as salt and outputs chained by the counter byte.
#
# Secrets pass through immutable bytes here (Python cannot wipe them); the callers keep their
# long-lived keys in bytearrays and wipe those.

import hashlib

from .errors import CryptoError

HASHLEN = 32        # SHA-256 output
BLOCKLEN = 64       # SHA-256 block

# The HMAC pads of RFC 2104, for a zero key: ipad = 0x36 and opad = 0x5c repeated.
_IPAD_BLOCK = b"\x36" * BLOCKLEN
_OPAD_BLOCK = b"\x5c" * BLOCKLEN


def sha256(data):
    """SHA-256 digest (32 bytes) of a bytes-like object."""
    return hashlib.sha256(data).digest()


def _hmac_sha256_py(key, data):
    """RFC 2104 HMAC-SHA256 on hashlib alone (MicroPython has no `hmac` module)."""
    if len(key) > BLOCKLEN:
        key = sha256(key)
    # The pads start as the constant pad bytes; only the key's own bytes need XOR-ing.
    ipad = bytearray(_IPAD_BLOCK)
    opad = bytearray(_OPAD_BLOCK)
    for i in range(len(key)):
        ipad[i] ^= key[i]
        opad[i] ^= key[i]
    inner = hashlib.sha256(ipad)
    inner.update(data)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


try:
    # CPython: the C HMAC, about 15 times faster than the loop above. Same function, same
    # results (the tests check both against RFC 4231).
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


def _noise_hkdf_generic(chaining_key, input_key_material, num_outputs):
    """Noise rev 34 section 4.3 HKDF(chaining_key, input_key_material, num_outputs).

    Returns a tuple of 2 or 3 HASHLEN-byte outputs."""
    # Sets temp_key = HMAC-HASH(chaining_key, input_key_material).
    temp_key = hmac_sha256(chaining_key, input_key_material)
    # Sets output1 = HMAC-HASH(temp_key, byte(0x01)).
    output1 = hmac_sha256(temp_key, b"\x01")
    # Sets output2 = HMAC-HASH(temp_key, output1 || byte(0x02)).
    output2 = hmac_sha256(temp_key, output1 + b"\x02")
    # If num_outputs == 2 then returns the pair (output1, output2).
    if num_outputs == 2:
        return output1, output2
    # Sets output3 = HMAC-HASH(temp_key, output2 || byte(0x03)).
    output3 = hmac_sha256(temp_key, output2 + b"\x03")
    # Returns the triple (output1, output2, output3).
    return output1, output2, output3


try:
    # CPython: a faster noise_hkdf of the same steps (_hkdf_host.py, host-only: deploy never
    # copies it to a board, where this import fails and the generic form below is used).
    # tests/portable/test_proto2.py checks it against the generic form.
    from ._hkdf_host import noise_hkdf
except ImportError:
    noise_hkdf = _noise_hkdf_generic
