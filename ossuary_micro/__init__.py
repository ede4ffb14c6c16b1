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
# before) and then kept here.

__version__ = "0.1.0"

# name -> the submodule that defines it
_WHERE = {}
for _m, _names in (
        ("errors", ("OssuaryError", "CryptoError", "AuthenticationFailed", "KeyFormatError",
                    "NoRandomSource", "LocalProtocolError", "RemoteProtocolError",
                    "ConnectionReset", "ConnectionFailed", "ConnectionClosed", "OutOfMemory")),
        ("connection", ("Connection",)),
        ("events", ("CLIENT", "AUTH_SERVER", "UNAUTH_SERVER", "ROLE_NAMES", "NEED_DATA",
                    "HANDSHAKE_DONE", "UNTRUSTED_KEY", "DATA", "RESET", "CLOSED")),
        ("connection", ("EVENT_NAMES",)),
        ("keys", ("parse_key", "format_key", "generate_keypair")),
        ("crypto", ("get_backend", "available_backends")),
        ("wire", ("MAX_RECORD", "MAX_CONTROL_PACKET"))):
    for _n in _names:
        _WHERE[_n] = _m
del _m, _names, _n

__all__ = tuple(_WHERE)


def __getattr__(name):
    # A public name: from its module. Anything else may be a submodule: MicroPython's
    # `from . import wire` asks this function before it looks for the submodule, so import it
    # (CPython finds submodules without asking). Neither: AttributeError.
    import sys
    m = _WHERE.get(name)
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
