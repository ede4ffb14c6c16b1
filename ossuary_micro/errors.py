# The library's error types: one base class, so callers can catch everything we raise.
#
# Nothing else may escape the library: backends translate their own exceptions into
# these at the boundary (docs/design.md, "Errors"). The classes with no body of their own
# are made by type(): the same classes as a `class` statement would give, in a smaller .mpy
# (every board loads this module). What each one means:
#
#   CryptoError          a primitive refused its input: wrong key/nonce length, all-zero
#                        X25519 output
#   AuthenticationFailed an AEAD tag did not verify; no plaintext was released
#   OutOfMemory          the heap could not hold what an operation needed; the connection
#                        it happened in is closed (error set to this); a new one can be
#                        tried once memory is free again
#   KeyFormatError       a key is not 32 bytes, or its text is not 64 hex characters
#   NoRandomSource       no usable cryptographic random source on this platform
#   LocalProtocolError   the caller used the API wrongly (e.g. sending before the handshake
#                        completed)
#   RemoteProtocolError  the peer sent something the protocol does not allow; `reason`
#                        says what
#   ConnectionReset      recoverable: the session was reset and the handshake starts again
#   ConnectionFailed     permanent failure: the peer reported an error, or the reset limit
#                        was reached
#   ConnectionClosed     permanent clean close, by us or by the peer


class OssuaryError(Exception):
    """Base class of every error ossuary_micro raises."""


CryptoError = type("CryptoError", (OssuaryError,), {})
AuthenticationFailed = type("AuthenticationFailed", (CryptoError,), {})
OutOfMemory = type("OutOfMemory", (OssuaryError,), {})
KeyFormatError = type("KeyFormatError", (OssuaryError,), {})
NoRandomSource = type("NoRandomSource", (OssuaryError,), {})
LocalProtocolError = type("LocalProtocolError", (OssuaryError,), {})


class RemoteProtocolError(OssuaryError):
    """The peer sent something the protocol does not allow. `reason` says what."""

    @property
    def reason(self):
        # Not an __init__ override: MicroPython exceptions cannot call the base __init__.
        return self.args[0] if self.args else ""


ConnectionReset = type("ConnectionReset", (OssuaryError,), {})
ConnectionFailed = type("ConnectionFailed", (OssuaryError,), {})
ConnectionClosed = type("ConnectionClosed", (OssuaryError,), {})
