# ossuary_micro: the Ossuary secure channel (libossuary 0.5.1 wire protocol 1, and protocol 2),
# sans-I/O.
#
# Public API: Connection and its role/event constants, the error types, key helpers and
# the crypto backend selector. See docs/design.md.
#
# On a board every module loaded is heap, and `import ossuary_micro.connection2` runs this
# file first. It loads what both protocols use (star imports: the smallest .mpy); protocol
# 1's Connection and wire.py's MAX_RECORD / MAX_CONTROL_PACKET come on first use through a
# module __getattr__ (PEP 562, which MicroPython has too), so a protocol 2 node never loads
# connection.py or wire.py (every name a loaded module has stays interned on a board's heap).

from .errors import *
from .events import *
from .keys import parse_key, format_key, generate_keypair
from .crypto import get_backend, available_backends

__version__ = "0.1.0"


def __getattr__(name):
    # Connection: from connection.py on first use; MAX_RECORD and MAX_CONTROL_PACKET: from
    # wire.py. Anything else may be a submodule: MicroPython's `from . import wire` asks here
    # before it looks for one.
    from sys import modules
    sub = name
    if name == "Connection":
        sub = "connection"
    elif name == "MAX_RECORD" or name == "MAX_CONTROL_PACKET":
        sub = "wire"
    n = "ossuary_micro." + sub
    try:
        __import__(n)
    except ImportError:
        if n in modules:
            raise
        raise AttributeError(name)
    m = modules[n]
    return m if sub == name else getattr(m, name)
