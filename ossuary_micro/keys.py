# Key text format shared by every tool: 32-byte keys as 64 hex characters on one line.
#
# A secret key file holds the Ed25519 seed this way; public keys are written and accepted
# this way. File I/O lives in the tools (host_tools/keyfile.py, port/*): this module only
# converts, so it stays usable on boards.

from binascii import hexlify, unhexlify

from .errors import KeyFormatError

KEY_LEN = 32


def parse_key(text):
    """32 key bytes from 64 hex characters (either case, surrounding whitespace allowed).

    Accepts str or bytes. Raises KeyFormatError for anything else.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode()
        except Exception:
            raise KeyFormatError("key is not text")
    if not isinstance(text, str):
        raise KeyFormatError("key must be text")
    t = text.strip()
    if len(t) != 2 * KEY_LEN:
        raise KeyFormatError("key must be 64 hex characters, got %d characters" % len(t))
    try:
        return unhexlify(t)
    except ValueError:
        raise KeyFormatError("key contains a non-hex character")


def format_key(key):
    """64 lowercase hex characters for a 32-byte key. Raises KeyFormatError on wrong length."""
    check_key(key)
    return hexlify(bytes(key)).decode()


def check_key(key, what="key"):
    """Raise KeyFormatError unless `key` is a 32-byte bytes-like object."""
    if not isinstance(key, (bytes, bytearray, memoryview)) or len(key) != KEY_LEN:
        raise KeyFormatError("%s must be %d bytes" % (what, KEY_LEN))


def generate_keypair(random=None, backend=None):
    """A new Ed25519 key pair as (seed, public), 32 bytes each.

    Raises NoRandomSource when the platform has no cryptographic random source.
    """
    from .crypto import get_backend
    from .rand import default_random
    rnd = random if random is not None else default_random()
    b = backend if backend is not None else get_backend()
    seed = bytes(rnd(KEY_LEN))
    return seed, b.ed25519_public(seed)


def is_small_order_key(pub):
    """True if `pub` encodes a small-order Edwards point (any sign bit)."""
    # Encodings of the eight small-order Edwards points (with the sign bit masked off), as
    # libsodium's blocklist, 32 bytes each: the identity `01 00..00`, `00..00` (order 4), p-1
    # (order 2) and the two order-8 points. A long-term key equal to one of these lets anyone
    # forge a "signature" (spec 8.2.12), so we never accept one as a peer identity. One bytes
    # literal: the smallest .mpy (no sign bit is set in any of them).
    # (A constant of this function, not a module-level name: one interned name fewer.)
    blocklist = (
        b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        b"\xec\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"
        b"\x26\xe8\x95\x8f\xc2\xb2\x27\xb0\x45\xc3\xf4\x89\xf2\xef\x98\xf0"
        b"\xd5\xdf\xac\x05\xd3\xc6\x33\x39\xb1\x38\x02\x88\x6d\x53\xfc\x05"
        b"\xc7\x17\x6a\x70\x3d\x4d\xd8\x4f\xba\x3c\x0b\x76\x0d\x10\x67\x0f"
        b"\x2a\x20\x53\xfa\x2c\x39\xcc\xc6\x4e\xc7\xfd\x77\x92\xac\x03\x7a"
    )
    k = bytearray(pub)
    k[31] &= 0x7F
    for i in range(0, len(blocklist), 32):
        if k == blocklist[i:i + 32]:
            return True
    return False
