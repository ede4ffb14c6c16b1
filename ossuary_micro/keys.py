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
