# Pure-Python crypto backend: runs on CPython and on every MicroPython port (no viper needed).
#
# The arithmetic lives in private modules (_curve25519, _chacha, _sha512); this file checks
# lengths and offsets and turns anything the arithmetic could raise on odd input into our own
# errors, so only CryptoError / AuthenticationFailed escape (docs/design.md). Timing: Python
# big-int code is not constant-time; only the AEAD tag comparison avoids an early exit.
# Intermediate secrets (scalars, keystream) live in immutable ints and bytes, which Python
# cannot wipe; the caller's own key bytearrays are never copied into anything longer-lived.

from ._args import need, window
from ..errors import CryptoError, AuthenticationFailed
from . import _chacha, _curve25519

try:
    # CPython (and any port that has it): the C implementation.
    from hashlib import sha512 as _hashlib_sha512

    def _sha512(data):
        return _hashlib_sha512(data).digest()

except ImportError:
    # MicroPython's hashlib has sha256 only.
    from ._sha512 import sha512 as _sha512


class Backend:
    """Pure-Python X25519, ChaCha20-Poly1305, Ed25519 and SHA-512 (interface: docs/design.md)."""

    name = "pure"

    def x25519(self, scalar, point):
        """RFC 7748 X25519. Raises CryptoError for wrong lengths or an all-zero result."""
        scalar = need(scalar, 32, "X25519 scalar")
        point = need(point, 32, "X25519 point")
        out = _curve25519.x25519(scalar, point)
        # A low-order peer point gives zero; refusing it stops a peer from forcing the key.
        if out == bytes(32):
            raise CryptoError("X25519 result is all zero")
        return out

    def x25519_base(self, scalar):
        """X25519 public key of a 32-byte secret. Raises CryptoError for a wrong length."""
        scalar = need(scalar, 32, "X25519 scalar")
        return _curve25519.x25519_base(scalar)

    def aead_seal(self, key, nonce, src, soff, n, dst, doff, aad=b""):
        """ChaCha20-Poly1305: n bytes of src[soff:] -> ciphertext + 16-byte tag at dst[doff:].
        `aad` (default empty, as the protocol uses it) exists for the Wycheproof vectors.
        Raises CryptoError for a key not 32 / nonce not 12 bytes, short or read-only buffers."""
        key = need(key, 32, "key")
        nonce = need(nonce, 12, "nonce")
        window(src, soff, n, dst, doff, 0, 16)
        try:
            _chacha.aead_seal(key, nonce, src, soff, n, dst, doff, aad)
        except (TypeError, ValueError):
            raise CryptoError("unusable buffer")

    def aead_open(self, key, nonce, src, soff, n, dst, doff, aad=b""):
        """Check the tag at src[soff+n:soff+n+16] before writing anything, then write the n
        plaintext bytes at dst[doff:]. Raises AuthenticationFailed (dst untouched) or
        CryptoError (lengths, buffers)."""
        key = need(key, 32, "key")
        nonce = need(nonce, 12, "nonce")
        window(src, soff, n, dst, doff, 16, 0)
        try:
            ok = _chacha.aead_open(key, nonce, src, soff, n, dst, doff, aad)
        except (TypeError, ValueError):
            raise CryptoError("unusable buffer")
        if not ok:
            raise AuthenticationFailed("AEAD tag mismatch")

    def ed25519_public(self, seed):
        """RFC 8032 public key of a 32-byte seed. Raises CryptoError for a wrong length."""
        seed = need(seed, 32, "Ed25519 seed")
        return _curve25519.ed25519_public(seed, _sha512)

    def ed25519_sign(self, seed, msg):
        """64-byte RFC 8032 signature. Raises CryptoError for a wrong seed length or a
        message that is not a buffer."""
        seed = need(seed, 32, "Ed25519 seed")
        try:
            msg = bytes(memoryview(msg))
        except TypeError:
            raise CryptoError("message is not a buffer")
        return _curve25519.ed25519_sign(seed, msg, _sha512)

    def ed25519_verify(self, public, msg, sig):
        """Strict RFC 8032 verification (cofactorless, like OpenSSL): False for S >= L, a
        non-canonical or undecodable public key, a non-canonical R, wrong lengths. Never raises."""
        try:
            # memoryview() refuses ints and str, which bytes() would quietly accept.
            public = bytes(memoryview(public))
            sig = bytes(memoryview(sig))
            msg = bytes(memoryview(msg))
            if len(public) != 32 or len(sig) != 64:
                return False
            return _curve25519.ed25519_verify(public, msg, sig, _sha512)
        except (TypeError, ValueError):
            # Not a buffer (e.g. None): not a valid signature either.
            return False

    def sha512(self, data):
        """SHA-512 digest (64 bytes)."""
        return _sha512(data)
