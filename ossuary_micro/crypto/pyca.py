# Crypto backend on pyca/cryptography (OpenSSL): the fast, constant-time choice on CPython.
#
# Importing this module raises ImportError when cryptography is not installed; the registry
# (crypto/__init__.py) then skips the backend. Every cryptography exception is translated
# here, at the boundary, into ossuary_micro.errors types.

import hashlib

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ._args import need, window
from ..errors import AuthenticationFailed, CryptoError

_P = (1 << 255) - 19
_ZERO32 = bytes(32)

# X25519PublicKey.from_public_bytes is a Python wrapper that checks the backend on every call
# (half the cost of loading a public key, ~1.5 us); the pinned cryptography's Rust binding
# underneath is called directly when it is there (same object, same ValueError for a bad
# length; we only pass 32 bytes). Any other cryptography: the public wrapper.
try:
    from cryptography.hazmat.bindings._rust import openssl as _rust_openssl
    _x25519_public = _rust_openssl.x25519.from_public_bytes
except (ImportError, AttributeError):
    _x25519_public = X25519PublicKey.from_public_bytes
# encrypt_into is recent (the pinned cryptography 50 has it); without it, encrypt() and copy.
_HAS_ENCRYPT_INTO = hasattr(ChaCha20Poly1305, "encrypt_into")


def _b(buf):
    # bytes of a buffer; unlike bytes(x), refuses an int (bytes(5) would be five zeros).
    return bytes(memoryview(buf))


def _raw_public(key):
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _canonical_point(enc):
    # RFC 8032 5.1.3 strictness OpenSSL does not apply to public keys: y must be < p, and
    # x = 0 (y = 1 or y = p - 1) must not carry the sign bit. Same rule as pure.py's decoder.
    v = int.from_bytes(enc, "little")
    y = v & ((1 << 255) - 1)
    if y >= _P:
        return False
    if (v >> 255) and (y == 1 or y == _P - 1):
        return False
    return True


def _fits(src, soff, n, sx, dst, doff, dx):
    # The common case of _args.window in one expression, for the record path: plain int
    # offsets and length, n + sx bytes of src from soff and n + dx of dst from doff. False
    # sends the call to window(), which raises the precise CryptoError (or accepts the rare
    # bool offset).
    try:
        return (type(soff) is int and type(doff) is int and type(n) is int and 0 <= soff
                and 0 <= doff and 0 <= n and soff + n + sx <= len(src)
                and doff + n + dx <= len(dst))
    except TypeError:
        return False


_EPH_KEPT = 64
_ED_KEPT = 8


class Backend:
    """X25519, ChaCha20-Poly1305, Ed25519 and SHA-512 from pyca/cryptography
    (interface: docs/design.md)."""

    name = "cryptography"

    def __init__(self):
        # One ChaCha20Poly1305 context for the most recent AEAD key, and a copy of that key to
        # recognise it. A session seals and opens every record under one key (protocol 1 uses
        # the same key both ways), so OpenSSL's key setup and the key's checks happen once per
        # session, not once per record: the comparison below allocates nothing. A caller that
        # alternates keys (one backend, many sessions) gets a new context per change, which is
        # what every call cost before. The copy and the context hold the key until the next
        # key replaces them; on CPython nothing can be wiped reliably (docs/security.md).
        self._key = bytearray(32)
        self._aead = None
        # Key objects of x25519_base by scalar, kept for the x25519 with the same scalar that
        # follows in a handshake (see x25519); one backend serves every session of a process,
        # so several handshakes may be in flight: at most _EPH_KEPT, the oldest dropped.
        self._eph = {}
        # The public-key object of the last peer point x25519_key's DHs used: a Noise XX side
        # uses the peer's ephemeral in two DHs, through two key pairs (ee and es/se), and
        # loading a point costs as much as the rest of the wrapper. Public data; one entry.
        self._peer = (None, None)
        # Ed25519 private-key objects by seed: loading a seed costs OpenSSL a scalar
        # multiplication (~35 us, as much as a signature), and a process signs with its one
        # long-term seed in every handshake (and derives its public key in every Connection).
        # At most _ED_KEPT seeds, the oldest dropped; OpenSSL and this dict hold each seed
        # until then (docs/security.md: nothing is wiped on this backend).
        self._ed = {}

    def _context(self, key):
        if self._aead is not None and key == self._key:
            return self._aead
        k = need(key, 32, "key")    # CryptoError for a wrong length or a non-buffer
        self._aead = ChaCha20Poly1305(k)
        self._key[:] = k
        return self._aead

    def x25519(self, scalar, point):
        """RFC 7748 X25519. Raises CryptoError for wrong lengths or an all-zero result."""
        scalar = need(scalar, 32, "X25519 scalar")
        # The key object x25519_base made for this scalar, if any: OpenSSL computes the public
        # key whenever a private key is loaded, so loading it again would cost a second scalar
        # multiplication. Taken out for this one DH (nothing ephemeral outlives its use here).
        key = self._eph.pop(scalar, None) or X25519PrivateKey.from_private_bytes(scalar)
        point = need(point, 32, "X25519 point")
        try:
            out = key.exchange(_x25519_public(point))
        except ValueError:
            # OpenSSL refuses an all-zero shared secret (low-order point) this way.
            raise CryptoError("X25519 result is all zero")
        if out == _ZERO32:
            raise CryptoError("X25519 result is all zero")
        return out

    def x25519_key(self, scalar):
        """Optional (protocol 2's Noise key pairs use it when present): one OpenSSL key object
        for a 32-byte secret, as (public, dh) where dh(point) -> 32 bytes is x25519(scalar,
        point). Each DH is then one scalar multiplication, not two (from_private_bytes
        derives the public key every time). Raises CryptoError like x25519()."""
        scalar = need(scalar, 32, "X25519 scalar")
        key = X25519PrivateKey.from_private_bytes(scalar)

        backend = self

        def dh(point):
            point = need(point, 32, "X25519 point")
            try:
                last = backend._peer        # (point, key object) of the last DH
                if point == last[0]:
                    pk = last[1]
                else:
                    pk = _x25519_public(point)
                    backend._peer = (point, pk)
                out = key.exchange(pk)
            except ValueError:
                raise CryptoError("X25519 result is all zero")
            if out == _ZERO32:
                raise CryptoError("X25519 result is all zero")
            return out

        return _raw_public(key), dh

    def x25519_base(self, scalar):
        """X25519 public key of a 32-byte secret. Raises CryptoError for a wrong length."""
        scalar = need(scalar, 32, "X25519 scalar")
        key = X25519PrivateKey.from_private_bytes(scalar)
        if len(self._eph) >= _EPH_KEPT:
            del self._eph[next(iter(self._eph))]     # the oldest handshake in flight
        self._eph[scalar] = key
        return _raw_public(key)

    def aead_seal(self, key, nonce, src, soff, n, dst, doff, aad=b""):
        """ChaCha20-Poly1305: n bytes of src[soff:] -> ciphertext + 16-byte tag at dst[doff:],
        written in place through memoryview windows. `aad` (default empty) exists for the
        Wycheproof vectors. Raises CryptoError for bad lengths or buffers."""
        aead = self._context(key)
        if not _fits(src, soff, n, 0, dst, doff, 16):
            window(src, soff, n, dst, doff, 0, 16)     # raises, naming what is wrong
        try:
            # OpenSSL checks the nonce (ValueError unless 12 bytes, TypeError if no buffer).
            # A whole src is passed as it is: a memoryview window allocates.
            data = src if soff == 0 and n == len(src) else memoryview(src)[soff:soff + n]
            if _HAS_ENCRYPT_INTO:
                aead.encrypt_into(nonce, data, aad or None, memoryview(dst)[doff:doff + n + 16])
            else:
                dst[doff:doff + n + 16] = aead.encrypt(nonce, data, aad or None)
        except (TypeError, ValueError, OverflowError):
            raise CryptoError("nonce not 12 bytes, or an unusable buffer")

    def aead_open(self, key, nonce, src, soff, n, dst, doff, aad=b""):
        """Verify the tag at src[soff+n:soff+n+16], then write n plaintext bytes at dst[doff:].
        Raises AuthenticationFailed (dst untouched) or CryptoError (lengths, buffers).

        Not decrypt_into: cryptography 50 writes the unauthenticated plaintext into the buffer
        before it reports InvalidTag (checked), which would break "dst untouched". decrypt()
        returns nothing on failure; the price is one copy of the plaintext on success."""
        aead = self._context(key)
        if not _fits(src, soff, n, 16, dst, doff, 0):
            window(src, soff, n, dst, doff, 16, 0)     # raises, naming what is wrong
        try:
            pt = aead.decrypt(nonce, memoryview(src)[soff:soff + n + 16], aad or None)
        except InvalidTag:
            raise AuthenticationFailed("AEAD tag mismatch")
        except (TypeError, ValueError, OverflowError):
            raise CryptoError("nonce not 12 bytes, or an unusable buffer")
        try:
            memoryview(dst)[doff:doff + n] = pt     # (a bytearray slice would copy pt first)
        except (TypeError, ValueError):
            raise CryptoError("dst is not writable")

    def aead_record(self, key):
        """Optional (crypto.aead_record gives the Connections these when present): (seal,
        open_) for one session key, called as aead_seal / aead_open are (without `aad`; the
        `key` argument is ignored: it is this one), sharing one ChaCha20Poly1305 context, so
        nothing is set up or checked per record beyond what the calls need. Raises
        CryptoError for a bad key.

        open_ uses decrypt_into straight into dst. cryptography writes the unauthenticated
        plaintext before it reports InvalidTag, so on a bad tag dst[doff:doff+n] is zeroed
        before AuthenticationFailed is raised: dst is not untouched, but no unauthenticated
        plaintext outlives the call. Both raise CryptoError for unusable buffers or lengths.

        Each keeps the memoryview windows of its last call and reuses them while the next
        call names the same buffers, offsets and length (records of one size: no allocation
        at all). So the last `dst` of seal stays exported: a bytearray given to
        Connection.send_data as `out` cannot be resized (BufferError) until a call with
        another buffer, offset or length, or the end of the session, releases it.

        seal.aead is the ChaCha20Poly1305 context both share: ossuary_micro/_record_host.py
        (CPython's record path) calls encrypt_into/decrypt_into on it directly."""
        k = need(key, 32, "key")
        aead = ChaCha20Poly1305(k)
        # Also the context aead_seal / aead_open use for this key: the handshake seals and
        # opens its last two messages under the session key right after this call, and would
        # otherwise set up a second context for them.
        self._aead = aead
        self._key[:] = k
        sd = od = os_ = None    # the buffers of the cached windows
        sw = ow_s = ow_d = None
        so = sn = oo = on = odo = -1

        def seal(_key, nonce, src, soff, n, dst, doff):
            nonlocal sd, so, sn, sw
            try:
                if dst is sd and doff == so and n == sn:
                    w = sw
                else:
                    if sw is not None:
                        sw.release()
                        sd = sw = None
                    w = memoryview(dst)[doff:doff + n + 16]
                    if doff < 0 or len(w) != n + 16:
                        raise CryptoError("dst too short")
                    sd, so, sn, sw = dst, doff, n, w
                if soff or len(src) != n:
                    if soff < 0 or soff + n > len(src):
                        raise CryptoError("src too short")
                    src = memoryview(src)[soff:soff + n]
                aead.encrypt_into(nonce, src, None, w)
            except (TypeError, ValueError, OverflowError):
                raise CryptoError("nonce not 12 bytes, or an unusable buffer")

        def open_(_key, nonce, src, soff, n, dst, doff):
            nonlocal os_, od, oo, on, odo, ow_s, ow_d
            try:
                if src is os_ and soff == oo and n == on and dst is od and doff == odo:
                    aead.decrypt_into(nonce, ow_s, None, ow_d)
                    return
                if ow_s is not None:
                    ow_s.release()
                    ow_d.release()
                    os_ = od = ow_s = ow_d = None
                ws = memoryview(src)[soff:soff + n + 16]
                wd = memoryview(dst)[doff:doff + n]
                if soff < 0 or doff < 0 or len(ws) != n + 16 or len(wd) != n:
                    raise CryptoError("src or dst too short")
                os_, od, oo, on, odo, ow_s, ow_d = src, dst, soff, n, doff, ws, wd
                aead.decrypt_into(nonce, ow_s, None, ow_d)
            except InvalidTag:
                ow_d[:] = bytes(n)
                raise AuthenticationFailed("AEAD tag mismatch")
            except (TypeError, ValueError, OverflowError):
                raise CryptoError("nonce not 12 bytes, or an unusable buffer")

        seal.aead = aead        # the context itself, for _record_host.py's record path
        return seal, open_

    def _ed_key(self, seed):
        seed = need(seed, 32, "Ed25519 seed")
        key = self._ed.get(seed)
        if key is None:
            key = Ed25519PrivateKey.from_private_bytes(seed)
            if len(self._ed) >= _ED_KEPT:
                self._ed.pop(next(iter(self._ed)), None)     # the oldest seed
            self._ed[seed] = key
        return key

    def ed25519_public(self, seed):
        """RFC 8032 public key of a 32-byte seed. Raises CryptoError for a wrong length."""
        return _raw_public(self._ed_key(seed))

    def ed25519_sign(self, seed, msg):
        """64-byte RFC 8032 signature. Raises CryptoError for a wrong seed length or a
        message that is not a buffer."""
        key = self._ed_key(seed)
        try:
            return key.sign(_b(msg))
        except TypeError:
            raise CryptoError("message is not a buffer")

    def ed25519_verify(self, public, msg, sig):
        """Strict RFC 8032 verification: OpenSSL's check (S < L, cofactorless, R compared as
        bytes) plus a canonical public key. False for wrong lengths. Never raises."""
        try:
            public = _b(public)
            sig = _b(sig)
            msg = _b(msg)
            if len(public) != 32 or len(sig) != 64 or not _canonical_point(public):
                return False
            Ed25519PublicKey.from_public_bytes(public).verify(sig, msg)
            return True
        except (InvalidSignature, ValueError, TypeError):
            return False

    def sha512(self, data):
        """SHA-512 digest (64 bytes)."""
        return hashlib.sha512(data).digest()
