# ossuary_io: drive an ossuary_micro Connection over a stream (socket, serial, UART).

from .errors import (TransportError, TransportClosed, StreamTimeout, HandshakeTimeout, UntrustedKey,
                     PeerChanged)
from .stream import SecureStream, END_OF_STREAM
