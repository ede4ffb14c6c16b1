# Wire protocol 2 byte layouts (docs/PROTOCOL.md): packet types, sizes, and how a server tells
# protocol 1 from protocol 2 by the first packet.
#
# Protocol 2 keeps protocol 1's 8-byte big-endian outer header (len, msg_id, type, reserved;
# wire.put_header) and uses packet types of its own, all with 0x02 in the high byte, so that no
# protocol 1 type (0x0000-0x0020) is ever reused and a libossuary peer that receives one treats
# it as Unknown.

from .wire import const, be16, HEADER_LEN, T_CLIENT_HANDSHAKE

PROTOCOL_VERSION = const(2)

# --- Packet types ---
T2_MSG1 = const(0x0201)          # Noise XX message 1, client -> server: e
T2_MSG2 = const(0x0202)          # Noise XX message 2, server -> client: e, ee, s, es + payload
T2_MSG3 = const(0x0203)          # Noise XX message 3, client -> server: s, se + payload
T2_DISCONNECT = const(0x0210)    # in clear, unauthenticated: 4-byte body as protocol 1 (1.5)
T2_RESET = const(0x0211)         # in clear, unauthenticated: same body
T2_DATA = const(0x0220)          # record: application data
T2_END = const(0x0221)           # record, empty: the sender will send no more data (half-close)
T2_CLOSE = const(0x0222)         # record, empty: authenticated close of the whole session
T2_REKEY = const(0x0223)         # record, empty: the sender's direction rekeys after this one

# --- Sizes ---
DHLEN = const(32)
TAG_LEN = const(16)
MSG1_LEN = const(32)             # e, empty payload (no key yet: sent in clear)
MSG2_LEN = const(128)            # e(32) + enc s(48) + enc payload: Ed25519 key(32) + tag(16)
MSG3_LEN = const(96)             # enc s(48) + enc payload: Ed25519 key(32) + tag(16)
MSG3_KEYLESS_LEN = const(64)     # enc s(48) + enc empty payload (16): keyless client
RECORD_OVERHEAD = const(24)      # header + tag around a record
MAX_RECORD = const(16384)

# The Noise prologue: the protocol name and version, mixed into the handshake hash on both
# sides, so peers that disagree on either fail at the first encrypted handshake field.
PROLOGUE = b"ossuary-micro protocol 2"


def max_packet(max_record):
    """Frame size of the largest data record: header + record + tag."""
    return HEADER_LEN + max_record + TAG_LEN


def detect_protocol(buf, off=0):
    """From the first 6 header bytes of a connection's first packet: 1 (libossuary
    ClientHandshake), 2 (protocol 2 message 1), or None (neither)."""
    t = be16(buf, off + 4)
    if t == T_CLIENT_HANDSHAKE:
        return 1
    if t == T2_MSG1:
        return 2
    return None
