# The members of Connection (protocol 1) and Connection2 (protocol 2) that a board node never
# uses: accept_key() (the TOFU decision), protocol 2's end_stream() (half-close), and the
# `data`, `state_name` and `authorized_keys` properties.
#
# Their own module because on a board every function loaded is heap (its code, its function
# object and its name), and a node (port/common/node.py: a client that trusts only its
# configured collector key, and reads `plaintext`) calls none of these. Each class's
# __getattr__, which Python calls only for a name the class does not have, hands the lookup to
# member() below: on first use it makes the member an ordinary one of the class, so later
# lookups find it directly. One copy serves both protocols: their state tables agree on the states
# used here (tests/portable/test_proto2.py checks).

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x
from .errors import LocalProtocolError

_CLIENT_SEND_LAST = const(5)    # ClientSendAuthentication (1) / ClientSendMsg3 (2)
_WAIT_APPROVAL = const(6)
_ESTABLISHED = const(7)         # Encrypted (1) / Established (2)
_T2_END = const(0x0221)         # wire2.T2_END (a test checks)


def member(conn, name, states, protocol):
    # conn.<name>, for the __getattr__ of a Connection (protocol 1) or Connection2 (protocol 2),
    # `states` its state table. The member goes into conn's class, which lacks it (else Python
    # would not have called __getattr__), so the next lookup finds it there. AttributeError
    # for any other name, as without __getattr__.
    if name == "accept_key":
        m = accept_key
    elif name == "end_stream" and protocol == 2:
        m = end_stream
    elif name == "data":
        m = property(_data)
    elif name == "authorized_keys":
        m = property(_authorized_keys)
    elif name == "state_name":
        m = property(lambda self: states[self.state][0])
    else:
        raise AttributeError(name)
    setattr(type(conn), name, m)
    return getattr(conn, name)


def accept_key(self):
    """Trust the key announced by UNTRUSTED_KEY and continue the handshake.

    Raises LocalProtocolError when no decision is pending."""
    if self.state != _WAIT_APPROVAL:
        raise LocalProtocolError("no key is waiting for approval")
    self.add_authorized_key(self.remote_public_key)
    if self.is_server:
        self._enter(_ESTABLISHED)
        self._pending_done = True
    else:
        self._enter(_CLIENT_SEND_LAST)


def end_stream(self, out, off=0):
    """Half-close: write an END record into out[off:] (48 bytes of room); return its length.
    We send no more data; the peer may go on sending. LocalProtocolError when not
    established or already ended."""
    k = self._seal_records(_T2_END, b"", 0, out, off)
    self.local_ended = True
    return k


def _data(self):
    """The last DATA event's plaintext as a memoryview (allocates; see `plaintext`)."""
    return memoryview(self.plaintext)[:self.data_len]


def _authorized_keys(self):
    """The trusted peer public keys, a tuple."""
    return tuple(self._authorized)
