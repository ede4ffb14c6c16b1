# ossuary_micro: the Ossuary secure channel (libossuary 0.5.1 wire protocol 1), sans-I/O.
#
# Public API: Connection and its role/event constants, the error types, key helpers and
# the crypto backend selector. See docs/design.md.

from .errors import (OssuaryError, CryptoError, AuthenticationFailed, KeyFormatError,
                     NoRandomSource, LocalProtocolError, RemoteProtocolError,
                     ConnectionReset, ConnectionFailed, ConnectionClosed, OutOfMemory)
from .connection import (Connection, CLIENT, AUTH_SERVER, UNAUTH_SERVER, ROLE_NAMES,
                         NEED_DATA, HANDSHAKE_DONE, UNTRUSTED_KEY, DATA, RESET, CLOSED,
                         EVENT_NAMES)
from .keys import parse_key, format_key, generate_keypair
from .crypto import get_backend, available_backends
from .wire import MAX_RECORD, MAX_CONTROL_PACKET

__version__ = "0.1.0"
