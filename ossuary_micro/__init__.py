# ossuary_micro: the Ossuary secure channel (libossuary 0.5.1 wire protocol 1, and protocol 2),
# sans-I/O.
#
# Public API: Connection and its role/event constants, the error types, key helpers and
# the crypto backend selector. See docs/design.md.
#
# Loaded lazily (PEP 562 module __getattr__, which MicroPython has too): `import
# ossuary_micro.connection2` or `from ossuary_micro.errors import ...` runs this file first,
# and on a board every module loaded is heap, so this file imports nothing itself. A name is
# imported from its module on first use (`from ossuary_micro import Connection` works as
# before) and then kept here. Tuples and if-tests, not a dict: the names cost no hash table.

__version__ = "0.1.0"

_ERRORS = ("OssuaryError", "CryptoError", "AuthenticationFailed", "KeyFormatError",
           "NoRandomSource", "LocalProtocolError", "RemoteProtocolError", "ConnectionReset",
           "ConnectionFailed", "ConnectionClosed", "OutOfMemory")
_EVENTS = ("CLIENT", "AUTH_SERVER", "UNAUTH_SERVER", "ROLE_NAMES", "NEED_DATA",
           "HANDSHAKE_DONE", "UNTRUSTED_KEY", "DATA", "RESET", "CLOSED")
_OTHER = ("Connection", "EVENT_NAMES", "parse_key", "format_key", "generate_keypair",
          "get_backend", "available_backends", "MAX_RECORD", "MAX_CONTROL_PACKET")
__all__ = _ERRORS + _EVENTS + _OTHER


def __getattr__(name):
    # A public name: from its module. Anything else may be a submodule: MicroPython's
    # `from . import wire` asks this function before it looks for the submodule, so import it
    # (CPython finds submodules without asking). Neither: AttributeError.
    import sys
    if name in _ERRORS:
        m = "errors"
    elif name in _EVENTS:
        m = "events"     # protocol 1's connection.py defines the same values
    elif name == "Connection" or name == "EVENT_NAMES":
        m = "connection"
    elif name in ("parse_key", "format_key", "generate_keypair"):
        m = "keys"
    elif name in ("get_backend", "available_backends"):
        m = "crypto"
    elif name in ("MAX_RECORD", "MAX_CONTROL_PACKET"):
        m = "wire"
    else:
        m = None
    full = "ossuary_micro." + (name if m is None else m)
    try:
        __import__(full)
    except ImportError:
        if m is not None or full in sys.modules:
            raise
        raise AttributeError(name)
    mod = sys.modules[full]
    if m is None:
        return mod
    v = getattr(mod, name)
    globals()[name] = v
    return v
