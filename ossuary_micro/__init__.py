# ossuary_micro: the Ossuary secure channel (libossuary 0.5.1 wire protocol 1), sans-I/O.
#
# Public API: Connection and its role/event constants, the error types, key helpers and
# the crypto backend selector. See docs/design.md. The star imports take the public names
# of errors.py and connection.py (connection.py's imports are private names, apart from
# copy_into, which link.py and connection2.py share, and const): one import each, the
# smallest .mpy for a module every board loads.

from .errors import *
from .connection import *
from .keys import parse_key, format_key, generate_keypair
from .crypto import get_backend, available_backends
from .wire import MAX_RECORD, MAX_CONTROL_PACKET

__version__ = "0.1.0"
