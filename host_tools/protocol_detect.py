# Which wire protocol a peer speaks, from the header of the first packet it sent (host side:
# ossuary-cat's server and the collector). docs/PROTOCOL.md section 2: protocol 2's packet
# types all have 0x02 in the high byte, protocol 1's (libossuary 0.5.1) are 0x0000-0x0020.

from ossuary_micro import wire
from ossuary_micro.wire2 import detect_protocol

HEADER_LEN = wire.HEADER_LEN


def protocol_of(header):
    """1 or 2 for the first HEADER_LEN bytes of a peer's first packet. A session normally
    starts with ClientHandshake / message 1 (wire2.detect_protocol); a client whose first
    handshake was lost starts with a Reset instead, so any protocol 2 type counts as 2, and
    anything else (protocol 1 types, garbage) as 1, whose Connection deals with it as
    libossuary's would."""
    p = detect_protocol(header)
    if p is not None:
        return p
    return 2 if wire.be16(header, 4) >> 8 == 2 else 1
