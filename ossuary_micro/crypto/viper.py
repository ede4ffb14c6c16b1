# Viper crypto backend: MicroPython native-code X25519, ChaCha20-Poly1305, Ed25519, SHA-512.
#
# Everything is accelerated with @micropython.viper (private modules _viper_*): ChaCha20 and
# Poly1305 on buffers, field elements mod 2**255 - 19 as 20 limbs of 13 bits in preallocated
# arrays, SHA-512 on 32-bit halves. Every intermediate is kept within 32 bits (argued in each
# module's header), so a 32-bit board and the 64-bit unix port compute the same bytes.
#
# Availability: on CPython `import micropython` fails (ImportError); on a MicroPython built
# without the viper emitter (e.g. the WebAssembly port) compiling the @micropython.viper
# functions fails (SyntaxError / NotImplementedError). The registry catches those and falls
# back to the pure backend.
#
# Allocation: aead_seal / aead_open allocate nothing (tested with micropython.heap_lock()),
# X25519 allocates its small result only; Ed25519 uses a few Python big ints for scalars mod L.
# Timing: the field, ladder and AEAD code has no data-dependent branches or table lookups, and
# the tag is compared without early exit; Ed25519 verification branches on public data only.
# Python-level call overhead is constant per operation. Secrets are wiped from the AEAD and
# X25519 scratch buffers after use; Ed25519 point temporaries are not.
#
# Not re-entrant (module-level scratch buffers): one caller at a time, like the library itself.

import micropython  # noqa: F401  (ImportError on CPython: the registry skips this backend)

from ..errors import AuthenticationFailed, CryptoError
from . import _viper_aead, _viper_x25519, _viper_ed25519, _viper_sha512


def _length(buf, what):
    # len() of a bytes-like argument, else CryptoError. str is refused explicitly: MicroPython
    # lets viper read a str through its buffer protocol. Allocates nothing on success.
    if isinstance(buf, str):
        raise CryptoError("%s is not a buffer" % what)
    try:
        return len(buf)
    except TypeError:
        raise CryptoError("%s is not a buffer" % what)


def _check_key(buf, n, what):
    # A buffer of exactly n bytes, else CryptoError.
    if _length(buf, what) != n:
        raise CryptoError("%s must be %d bytes" % (what, n))


def _window(src, soff, n, dst, doff, src_extra, dst_extra):
    # Same refusals as the pure backend: int offsets, in range, dst writable.
    if not (isinstance(soff, int) and isinstance(doff, int) and isinstance(n, int)):
        raise CryptoError("offsets and length must be ints")
    if soff < 0 or doff < 0 or n < 0:
        raise CryptoError("negative offset or length")
    # (two isinstance calls: a tuple of types would be built, i.e. allocated, on each call)
    if isinstance(src, str) or isinstance(dst, str) or isinstance(dst, bytes):
        raise CryptoError("src/dst is not a usable buffer")
    try:
        if soff + n + src_extra > len(src):
            raise CryptoError("src too short")
        if doff + n + dst_extra > len(dst):
            raise CryptoError("dst too short")
        if n + dst_extra:
            # A read-only view (memoryview of bytes) fails here, before anything is written;
            # storing the byte back leaves dst unchanged.
            dst[doff] = dst[doff]
    except (TypeError, ValueError):
        raise CryptoError("src/dst is not a usable buffer")


class Backend:
    """Viper-accelerated X25519, ChaCha20-Poly1305, Ed25519 and SHA-512 (interface:
    docs/design.md)."""

    name = "viper"

    def x25519(self, scalar, point):
        """RFC 7748 X25519 (scalar clamped, top bit of u masked). Raises CryptoError for wrong
        lengths or an all-zero result (a low-order peer point)."""
        _check_key(scalar, 32, "X25519 scalar")
        _check_key(point, 32, "X25519 point")
        try:
            out, zero = _viper_x25519.x25519(scalar, point)
        except TypeError:
            raise CryptoError("X25519 input is not a buffer")
        if zero:
            raise CryptoError("X25519 result is all zero")
        return bytes(out)

    def x25519_base(self, scalar):
        """X25519 public key of a 32-byte secret. Raises CryptoError for a wrong length."""
        _check_key(scalar, 32, "X25519 scalar")
        try:
            out, _ = _viper_x25519.x25519(scalar, _viper_x25519._BASE)
        except TypeError:
            raise CryptoError("X25519 scalar is not a buffer")
        return bytes(out)

    def aead_seal(self, key, nonce, src, soff, n, dst, doff, aad=b""):
        """ChaCha20-Poly1305: n bytes of src[soff:] -> ciphertext + 16-byte tag at dst[doff:].
        `aad` (default empty, as the protocol uses it) exists for the Wycheproof vectors.
        Raises CryptoError for a key not 32 / nonce not 12 bytes, short or read-only buffers.
        Allocates nothing."""
        _check_key(key, 32, "key")
        _check_key(nonce, 12, "nonce")
        _length(aad, "aad")
        _window(src, soff, n, dst, doff, 0, 16)
        try:
            _viper_aead.seal(key, nonce, src, soff, n, dst, doff, aad)
        except TypeError:
            raise CryptoError("unusable buffer")

    def aead_open(self, key, nonce, src, soff, n, dst, doff, aad=b""):
        """Check the tag at src[soff+n:soff+n+16] (constant time) before writing anything, then
        write the n plaintext bytes at dst[doff:]. Raises AuthenticationFailed (dst untouched)
        or CryptoError (lengths, buffers). Allocates nothing unless it raises."""
        _check_key(key, 32, "key")
        _check_key(nonce, 12, "nonce")
        _length(aad, "aad")
        _window(src, soff, n, dst, doff, 16, 0)
        try:
            ok = _viper_aead.open_(key, nonce, src, soff, n, dst, doff, aad)
        except TypeError:
            raise CryptoError("unusable buffer")
        if not ok:
            raise AuthenticationFailed("AEAD tag mismatch")

    def ed25519_public(self, seed):
        """RFC 8032 public key of a 32-byte seed. Raises CryptoError for a wrong length."""
        _check_key(seed, 32, "Ed25519 seed")
        try:
            return _viper_ed25519.public(seed)
        except TypeError:
            raise CryptoError("Ed25519 seed is not a buffer")

    def ed25519_sign(self, seed, msg):
        """64-byte RFC 8032 signature. Raises CryptoError for a wrong seed length or a
        message that is not a buffer."""
        _check_key(seed, 32, "Ed25519 seed")
        if isinstance(msg, str):
            raise CryptoError("message is not a buffer")
        try:
            return _viper_ed25519.sign(seed, msg)
        except TypeError:
            raise CryptoError("message is not a buffer")

    def ed25519_verify(self, public, msg, sig):
        """Strict RFC 8032 verification (cofactorless): False for S >= L, a non-canonical or
        undecodable public key, a non-canonical R, wrong lengths or non-buffers. Never raises."""
        try:
            if isinstance(public, str) or isinstance(msg, str) or isinstance(sig, str):
                return False
            if len(public) != 32 or len(sig) != 64:
                return False
            return _viper_ed25519.verify(public, msg, sig)
        except Exception:
            # Not a buffer (e.g. None, an int): not a valid signature either.
            return False

    def sha512(self, data):
        """SHA-512 digest (64 bytes) of a bytes-like object."""
        return _viper_sha512.sha512(data)
