# One identity for both protocols: the Ed25519 key of protocol 1 in its X25519 form for
# protocol 2 (the birational map of RFC 7748 section 4.1, as libsodium's
# crypto_sign_ed25519_sk_to_curve25519 / crypto_sign_ed25519_pk_to_curve25519).
#
# Secret: the X25519 secret is the clamped first half of SHA-512(seed), i.e. exactly the scalar
# Ed25519 itself uses (RFC 8032 5.1.5), so X25519(secret, 9) is the Montgomery form of the
# Ed25519 public key. Public: u = (1 + y) / (1 - y) mod p.
#
# Public keys are hostile input here (they arrive from the wire), so the conversion is strict:
# non-canonical encodings, points not on the curve and the small-order points are refused with
# KeyFormatError. Unlike libsodium we do not check that the point is in the prime-order
# subgroup (a full scalar multiplication per key on the boards): a key with a torsion
# component is only ever compared byte for byte against authorized keys, and only its holder
# can complete a handshake with it, so it cannot stand in for anyone else's key.

from ..errors import KeyFormatError
from ..keys import is_small_order_key

P = (1 << 255) - 19


def ed25519_sk_to_x25519(seed, sha512):
    """X25519 secret (bytearray, 32 bytes) of a 32-byte Ed25519 seed; `sha512` is the
    backend's hash (boards have no hashlib SHA-512). Raises KeyFormatError on a wrong length."""
    if len(seed) != 32:
        raise KeyFormatError("secret key must be 32 bytes")
    h = sha512(bytes(seed))
    a = bytearray(32)
    for i in range(32):
        a[i] = h[i]
    # The RFC 8032 / RFC 7748 clamp: clear the 3 low bits and the top bit, set bit 254.
    a[0] &= 248
    a[31] = (a[31] & 127) | 64
    return a


def ed25519_pk_to_x25519(pk):
    """X25519 public key (bytes) of a 32-byte Ed25519 public key.

    Raises KeyFormatError for a wrong length, a non-canonical or undecodable encoding, or a
    small-order point (whose X25519 form would give an all-zero or guessable DH)."""
    if len(pk) != 32:
        raise KeyFormatError("public key must be 32 bytes")
    # Imported here, not above: the pure curve module is heap on a board that uses the viper
    # backend, and a node that only meets keys it already trusts never needs it.
    from ._curve25519 import decode_point, _inv
    pk = bytes(pk)
    if is_small_order_key(pk) or decode_point(pk) is None:
        raise KeyFormatError("not a usable Ed25519 public key")
    y = int.from_bytes(pk, "little") & ((1 << 255) - 1)
    # y = 1 is the identity (small order, refused above), so 1 - y is invertible here.
    u = ((1 + y) * _inv((1 - y) % P)) % P
    return u.to_bytes(32, "little")


def ed25519_pk_matches_x25519(pk, xpk):
    """True if the 32-byte X25519 key `xpk` is the X25519 form of the Ed25519 key `pk`.

    Cheap (no inversion, no square root): checks u * (1 - y) == 1 + y mod p on canonical
    encodings and refuses small-order `pk`. It does not check that `pk` is a point on the
    curve; ed25519_pk_to_x25519 does. Never raises for 32-byte inputs."""
    if len(pk) != 32 or len(xpk) != 32 or is_small_order_key(pk):
        return False
    y = int.from_bytes(bytes(pk), "little") & ((1 << 255) - 1)
    u = int.from_bytes(bytes(xpk), "little")
    if y >= P or u >= P:
        return False
    return (u * (1 - y) - (1 + y)) % P == 0
