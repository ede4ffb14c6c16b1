# Roles and events shared by both protocols' connections (connection.py, connection2.py).
#
# Their own module so that a protocol 2 program (a board node) can name them without loading
# protocol 1's connection.py, which is ~11 KB of heap on a 32-bit board. connection.py
# keeps private consts of the same values; tests/portable/test_proto2.py checks they agree.

# Plain ints, not const(): another module's `from .events import X` reads the attribute
# either way (MicroPython folds a const only inside its own module), and this module needs
# nothing to import (it used to take const from wire.py, which a protocol 2 node never loads).

# --- Roles ---
CLIENT = 0
AUTH_SERVER = 1
UNAUTH_SERVER = 2

# --- Events (next_event's results) ---
NEED_DATA = 0
HANDSHAKE_DONE = 1
UNTRUSTED_KEY = 2
DATA = 3
RESET = 4
CLOSED = 5
END_OF_STREAM = 6     # protocol 2 only: the peer half-closed (it sends no more DATA)
EVENT_NAMES = ("NEED_DATA", "HANDSHAKE_DONE", "UNTRUSTED_KEY", "DATA", "RESET", "CLOSED",
               "END_OF_STREAM")
