# ossuary_io: drive an ossuary_micro Connection over a stream (socket, serial, UART).
#
# SecureStream (stream.py) loads on first use (a module __getattr__, PEP 562, which MicroPython
# has too): a board node imports only link.py's LinkStream from this package, and on a board
# every module loaded is heap.

from .errors import (TransportError, TransportClosed, StreamTimeout, HandshakeTimeout, UntrustedKey,
                     PeerChanged)


def __getattr__(name):
    # SecureStream and END_OF_STREAM from stream.py; anything else may be a submodule
    # (MicroPython's `from . import x` asks here before it looks for one).
    from sys import modules
    n = "ossuary_io." + ("stream" if name in ("SecureStream", "END_OF_STREAM") else name)
    try:
        __import__(n)
    except ImportError:
        if n in modules:
            raise
        raise AttributeError(name)
    m = modules[n]
    return getattr(m, name) if n == "ossuary_io.stream" else m
