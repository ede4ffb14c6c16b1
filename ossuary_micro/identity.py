# A protocol 2 identity: the Ed25519 public key and the X25519 static key pair of a 32-byte
# seed, derived once and shared by every Connection2 that uses it.
#
# Its own module, apart from connection2.py: a board node derives its keys at boot, when the
# Ed25519/SHA-512 code this needs is loaded (and unloaded right after), and loads the
# connection code only once that is gone, so the two are never on the heap together. For the
# same reason the X25519 key pair (noise.py's KeyPair) is made on first use, by the first
# connection, not here.

from .keys import check_key
from .crypto.ed2curve import ed25519_sk_to_x25519


class Identity:
    """A long-term identity made once and shared by many connections (a collector or a node
    that reconnects): the Ed25519 public key and the X25519 static key pair of a 32-byte
    seed, so creating a Connection2 costs no key derivation. Pass it as `secret_key`.
    Connections never wipe it; call wipe() when done (unusable afterwards). Raises
    KeyFormatError."""

    def __init__(self, seed, backend=None, public_key=None):
        # public_key given (from_keys): `seed` is the X25519 secret, already derived.
        check_key(seed, "secret key")
        if backend is None:
            from .crypto import get_backend
            backend = get_backend()
        self._backend = backend
        self._static = None
        if public_key is not None:
            check_key(public_key, "public key")
            self._secret = bytearray(seed)
            self.public_key = bytes(public_key)
            return
        self._secret = ed25519_sk_to_x25519(seed, backend.sha512)   # a bytearray
        self.public_key = backend.ed25519_public(bytes(seed))

    @staticmethod
    def from_keys(secret, ed25519_public, backend=None):
        """The identity of keys derived elsewhere (`secret`: the X25519 form of the seed, and
        its Ed25519 public key, 32 bytes each), so that no Ed25519/SHA-512 code is loaded to
        make it. Raises KeyFormatError."""
        return Identity(secret, backend, ed25519_public)

    @property
    def static(self):
        """The X25519 static key pair (noise.KeyPair), made on first use."""
        if self._static is None:
            from .noise import KeyPair
            st = KeyPair(self._backend, self._secret)
            # The seed's X25519 form, now that the KeyPair holds its own copy: wipe() wipes
            # it, and not the new pair, which is set only afterwards.
            self.wipe()
            self._static = st
        return self._static

    def wipe(self):
        s = self._secret
        for i in range(len(s)):
            s[i] = 0
        if self._static is not None:
            self._static.wipe()
