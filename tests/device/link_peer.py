# node_session.py's peer with the serial link layer: the collector's end of the link
# (ossuary_micro/link.py) in front of its Connection, as ossuary-collect runs a serial line.
#
# The node writes link frames; this end takes them off the line and hands the stream bytes
# it delivers to node_session.Link's Connection side, whose answers (`emit`) it frames, with
# its acks, keepalives and retransmissions, onto the line the node reads (`q`). When the node
# reopens its port it resets its link end: its next SYN carries a new nonce, this end reports
# PEER_RESET and discards the old session's bytes, and node_session.Link.reopen makes a fresh
# Connection. Loaded only by a link run (node_session.main(link=True)), so that its names are
# interned only then.

import time

import node_session
from ossuary_micro.link import Link as End


class Link(node_session.Link):

    def __init__(self, protocol):
        super().__init__(protocol)
        self.end = End(time.ticks_ms, node_session._random)
        self.frame = bytearray(self.end.max_frame)
        self.pend = bytearray()      # the Connection's bytes the link end has not taken yet

    def reopen(self):
        super().reopen()
        self.pend = bytearray()

    def emit(self, n):
        self.pend.extend(self.out[:n])

    def pump(self):
        # The Connection's answers into the link end; its frames onto the line (`q`, which
        # node_session.Link.readinto gives the node).
        end = self.end
        end.next_event()
        if self.pend:
            self.pend = self.pend[end.send(self.pend):]
        while True:
            n = end.data_to_send(self.frame)
            if not n:
                break
            self.q.extend(self.frame[:n])

    def any(self):
        self.pump()
        return super().any()

    def write(self, data):
        end = self.end
        end.receive_data(data)
        end.next_event()
        while True:
            n = end.recv_into(self.frame)
            if not n:
                break
            # node_session.Link.write feeds the Connection and samples the heap.
            super().write(bytes(self.frame[:n]))
        self.pump()
        return len(data)
