# ossuary_micro: the Ossuary secure channel (libossuary 0.5.1 wire protocol 1, and protocol 2),
# sans-I/O.
#
# Public API: Connection and its role/event constants, the error types, key helpers and
# the crypto backend selector. See docs/design.md.
#
# On a board every module loaded is heap, and `import ossuary_micro.connection2` runs this
# file first. It loads what both protocols use (star imports: the smallest .mpy); protocol
# 1's Connection comes on first use through a module __getattr__ (PEP 562, which MicroPython
# has too), so a protocol 2 node never loads connection.py; and MAX_RECORD and
# MAX_CONTROL_PACKET are wire.py's values written here (a test checks they agree), so that it
# never loads wire.py either (every name of a loaded module stays interned on a board's heap).

from .errors import *
from .events import *
from .keys import parse_key, format_key, generate_keypair
from .crypto import get_backend, available_backends

MAX_RECORD = 16384          # wire.MAX_RECORD: libossuary's largest plaintext per data packet
MAX_CONTROL_PACKET = 208    # wire.MAX_CONTROL_PACKET: the largest non-data frame we write

__version__ = "0.1.0"


def __getattr__(name):
    # Connection: from connection.py on first use. Anything else may be a submodule:
    # MicroPython's `from . import wire` asks here before it looks for one.
    from sys import modules
    n = "ossuary_micro." + ("connection" if name == "Connection" else name)
    try:
        __import__(n)
    except ImportError:
        if n in modules:
            raise
        raise AttributeError(name)
    m = modules[n]
    return m.Connection if name == "Connection" else m


# CPython: the host's faster Noise HKDF and record paths (_host.py, never deployed). (No
# `import sys` here: a global, even deleted again, would leave this module's dict larger.)
if __import__("sys").implementation.name != "micropython":
    from . import _host  # noqa: F401
