# Roles and events shared by both protocols' connections (connection.py, connection2.py).
#
# Their own module so that a protocol 2 program (a board node) can name them without loading
# protocol 1's connection.py, which is ~11 KB of heap on a 32-bit board. connection.py
# keeps private consts of the same values; tests/portable/test_proto2.py checks they agree.

# const from micropython, not from wire.py: a protocol 2 program never loads wire.py (its
# names would stay interned on a board's heap).
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# --- Roles ---
CLIENT = const(0)
AUTH_SERVER = const(1)
UNAUTH_SERVER = const(2)
ROLE_NAMES = ("client", "authenticated server", "unauthenticated server")

# --- Events (next_event's results) ---
NEED_DATA = const(0)
HANDSHAKE_DONE = const(1)
UNTRUSTED_KEY = const(2)
DATA = const(3)
RESET = const(4)
CLOSED = const(5)
END_OF_STREAM = const(6)     # protocol 2 only: the peer half-closed (it sends no more DATA)
EVENT_NAMES = ("NEED_DATA", "HANDSHAKE_DONE", "UNTRUSTED_KEY", "DATA", "RESET", "CLOSED",
               "END_OF_STREAM")

del const  # not part of the package's namespace (`from .events import *`)
