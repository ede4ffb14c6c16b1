# node_session.py's peer with the serial link layer: the collector's end of the link
# (ossuary_micro/link.py) in front of its Connection, as ossuary-collect runs a serial line.
#
# The node writes link frames; this end takes them off the line, hands the stream bytes it
# delivers to node_session.Link's Connection side (which queues its answers in `q`), and
# frames those answers, with its acks, keepalives and retransmissions, onto `line`, which
# the node reads. When the node reopens its port it resets its link end: its next SYN carries
# a new nonce, this end reports PEER_RESET and discards the old session's bytes, and
# node_session.Link.reopen makes a fresh Connection. Loaded only by a link run (node_session.main(link=True)), so that its names
# are interned only then.

import time

import node_session
from ossuary_micro.link import Link as End


class Link(node_session.Link):

    def __init__(self, protocol):
        super().__init__(protocol)
        self.end = End(time.ticks_ms, node_session._random)
        self.frame = bytearray(self.end.max_frame)
        self.line = bytearray()      # link frames for the node; it has read line[lpos:]
        self.lpos = 0

    def pump(self):
        # The Connection's answers into the link end; its frames onto the line.
        end = self.end
        end.next_event()
        if len(self.q) > self.rpos:
            self.rpos += end.send(self.q, self.rpos)
            if self.rpos == len(self.q):
                self.q = bytearray()
                self.rpos = 0
        while True:
            n = end.data_to_send(self.frame)
            if not n:
                break
            self.line.extend(self.frame[:n])

    def any(self):
        self.pump()
        return len(self.line) - self.lpos

    def readinto(self, buf, n=-1):
        if n < 0 or n > len(buf):
            n = len(buf)
        if n > self.any():
            n = self.any()
        if n == 0:
            return None
        buf[0:n] = self.line[self.lpos:self.lpos + n]
        self.lpos += n
        if self.lpos == len(self.line):
            self.line = bytearray()
            self.lpos = 0
        elif self.lpos > 512:
            self.line = self.line[self.lpos:]
            self.lpos = 0
        node_session.sample()
        return n

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
