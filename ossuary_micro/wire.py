# Wire protocol 1 byte layouts (spec sections 1-3): the outer header, the three handshake
# bodies, the encrypted sub-packet and the Reset/Disconnect body, plus the nonce counter.
#
# Everything here reads and writes bytes in caller-owned buffers at explicit offsets, so the
# data path (header + EncryptedPacket) allocates nothing on MicroPython. The handshake helpers
# allocate freely: they run three times per session.
#
# Endianness (spec section 0): the 8-byte outer header is big-endian; the fields inside
# bodies (inner len, data_len, tag_len, the Reset `len`) are little-endian.

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# The small-order key check lives in keys.py: a protocol 2 node needs it without this module.
from .keys import is_small_order_key  # noqa: F401

# --- Packet types (spec 1.2) ---
_T_UNKNOWN = const(0x0000)          # never sent; any unrecognised value acts like it
T_CLIENT_HANDSHAKE = const(0x0001)
_T_SERVER_HANDSHAKE = const(0x0002)
_T_CLIENT_AUTH = const(0x0003)
T_DISCONNECT = const(0x0010)
T_RESET = const(0x0011)
T_DATA = const(0x0020)

_PROTOCOL_VERSION = const(1)

# --- Sizes (spec 1.1-2.4) ---
HEADER_LEN = const(8)
_SUB_HEADER_LEN = const(4)          # data_len(2) + tag_len(2) of an EncryptedPacket
_TAG_LEN = const(16)
_DATA_OVERHEAD = const(28)          # header + sub-header + tag around a data record
_KEY_LEN = const(32)
_NONCE_LEN = const(12)
_CHALLENGE_LEN = const(32)
_SIG_LEN = const(64)
CLIENT_HS_LEN = const(84)          # ClientHandshake body
_SERVER_HS_LEN = const(200)         # ServerHandshake body
_CLIENT_AUTH_LEN = const(124)       # ClientAuthentication body
_SERVER_HS_PT_LEN = const(128)      # ServerHandshake plaintext: key, challenge, signature
_CLIENT_AUTH_PT_LEN = const(96)     # ClientAuthentication plaintext: key, signature
RESET_BODY_LEN = const(4)
MAX_RECORD = const(16384)          # libossuary's largest plaintext per data packet
MAX_CONTROL_PACKET = const(208)    # largest non-data frame we ever write (ServerHandshake)
_REFERENCE_MAX_BODY = const(16404)  # 16412 - 8: libossuary refuses larger bodies


def max_packet(max_record):
    """Frame size of the largest data record: header + sub-header + record + tag."""
    return HEADER_LEN + _SUB_HEADER_LEN + max_record + _TAG_LEN


# --- Outer header (spec 1.1): len, msg_id, type, reserved; big-endian u16 each ---

def put_header(out, off, body_len, msg_id, ptype):
    out[off] = body_len >> 8
    out[off + 1] = body_len & 0xFF
    out[off + 2] = msg_id >> 8
    out[off + 3] = msg_id & 0xFF
    out[off + 4] = ptype >> 8
    out[off + 5] = ptype & 0xFF
    out[off + 6] = 0
    out[off + 7] = 0


def be16(buf, off):
    return (buf[off] << 8) | buf[off + 1]


# --- Handshake bodies (spec 2.2-2.4): inner len (LE u16), version, 5 reserved, then fields;
# messages 2 and 3 end in an EncryptedPacket: data_len (LE u16), tag_len (LE u16, 16), data,
# tag. Connection writes and checks them itself (connection.py: _send_client, _check_handshake;
# _server1.py), so that a node does not load this module. ---

# --- Reset / Disconnect body (spec 1.5): len (we write 4, ignore on receive), error, 0 ---

def put_control(out, off, ptype, error):
    put_header(out, off, RESET_BODY_LEN, 0, ptype)
    out[off + HEADER_LEN] = RESET_BODY_LEN
    out[off + HEADER_LEN + 1] = 0
    out[off + HEADER_LEN + 2] = 1 if error else 0
    out[off + HEADER_LEN + 3] = 0
    return HEADER_LEN + RESET_BODY_LEN
