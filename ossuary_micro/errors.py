# The library's error types: one base class, so callers can catch everything we raise.
#
# Nothing else may escape the library: backends translate their own exceptions into
# these at the boundary (docs/design.md, "Errors").


class OssuaryError(Exception):
    """Base class of every error ossuary_micro raises."""


class CryptoError(OssuaryError):
    """A primitive refused its input: wrong key/nonce length, all-zero X25519 output."""


class AuthenticationFailed(CryptoError):
    """An AEAD tag did not verify. No plaintext was released."""


class OutOfMemory(OssuaryError):
    """The heap could not hold what an operation needed. The connection it happened in is
    closed (error set to this); a new one can be tried once memory is free again."""


class KeyFormatError(OssuaryError):
    """A key is not 32 bytes, or its text is not 64 hex characters."""


class NoRandomSource(OssuaryError):
    """No usable cryptographic random source on this platform."""


class LocalProtocolError(OssuaryError):
    """The caller used the API wrongly (e.g. sending before the handshake completed)."""


class RemoteProtocolError(OssuaryError):
    """The peer sent something the protocol does not allow. `reason` says what."""

    @property
    def reason(self):
        # Not an __init__ override: MicroPython exceptions cannot call the base __init__.
        return self.args[0] if self.args else ""


class ConnectionReset(OssuaryError):
    """Recoverable: the session was reset and the handshake starts again."""


class ConnectionFailed(OssuaryError):
    """Permanent failure: the peer reported an error, or the reset limit was reached."""


class ConnectionClosed(OssuaryError):
    """Permanent clean close, by us or by the peer."""
