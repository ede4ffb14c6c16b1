# Errors of the stream layer: transport trouble and deadlines, under the library's one base class.
#
# Everything SecureStream raises is an ossuary_micro.errors.OssuaryError: either one of the
# core's types (ConnectionFailed, ConnectionClosed, ...) or one of these.

from ossuary_micro.errors import OssuaryError, ConnectionFailed


class TransportError(OssuaryError):
    """The transport raised an error that is not "would block" / "timed out".

    `errno` is the OS error number when there was one (else None).
    """

    def __init__(self, message, errno=None):
        super().__init__(message)   # MicroPython: the base __init__ is reachable only via super()
        self.errno = errno


class TransportClosed(TransportError):
    """The transport reached end of file (or the peer reset the TCP connection) before the
    secure session was closed cleanly. Data may have been truncated."""


class StreamTimeout(OssuaryError):
    """A deadline given to a SecureStream call passed."""


class HandshakeTimeout(StreamTimeout):
    """The handshake did not complete within the deadline given to handshake()."""


class UntrustedKey(ConnectionFailed):
    """The peer proved a key that is not authorized and the trust callback (or its absence)
    rejected it. `key` holds the peer's 32-byte public key."""

    def __init__(self, key):
        super().__init__("untrusted peer key")
        self.key = key


class PeerChanged(ConnectionFailed):
    """A re-handshake (after a Reset) proved a different peer key than the stream's first
    session. Protocol 1's Reset is unauthenticated, so this is what an on-path attacker who
    holds another trusted key (or any key, with TOFU) would cause; the stream is failed and
    nothing more is sent. `pinned` and `presented` hold the two 32-byte public keys."""

    def __init__(self, pinned, presented):
        super().__init__("peer key changed at re-handshake")
        self.pinned = pinned
        self.presented = presented
