# Two link endpoints over an in-memory line with a fake clock, for tests on CPython and
# MicroPython alike; optionally a secure Connection pair running over the two links.
#
# The line is byte-exact: what one end's data_to_send() writes reaches the other end's
# receive_data() after `fault` (if any) had its say, in the same order (a serial line does
# not reorder). Each direction is a FIFO with a capacity in bytes per millisecond
# (`bytes_per_ms`, None: unlimited), so time spent on the wire is simulated too.

from ossuary_micro.link import Link, NEED_DATA, EVENT_NAMES
from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, NEED_DATA as C_NEED, DATA,
                           UNTRUSTED_KEY, CLOSED)
from ._pair import DetRandom, Clock, SERVER_SEED, SERVER_PUB, CLIENT_SEED


class Line:
    """One direction of the wire: a byte FIFO, an optional fault function and a rate."""

    def __init__(self, bytes_per_ms=None, latency_ms=0):
        self.fifo = bytearray()
        self.fault = None        # fault(bytes) -> bytes: corrupt what goes on the wire
        self.cut = False         # True: everything written is lost
        self.bytes_per_ms = bytes_per_ms
        self.latency_ms = latency_ms
        self.credit = 0.0
        self.sent = 0
        self._t = 0
        self._delayed = []       # (due time, bytes) still travelling, with latency_ms

    def put(self, data):
        self.sent += len(data)
        if self.cut:
            return
        if self.fault is not None:
            data = self.fault(bytes(data))
        if self.latency_ms:
            self._delayed.append((self._t + self.latency_ms, bytes(data)))
        else:
            self.fifo.extend(data)

    def take(self, ms):
        # What arrives in `ms` milliseconds (everything when the rate is unlimited).
        self._t += ms
        while self._delayed and self._delayed[0][0] <= self._t:
            self.fifo.extend(self._delayed.pop(0)[1])
        if self.bytes_per_ms is None:
            n = len(self.fifo)
        else:
            self.credit += ms * self.bytes_per_ms
            n = int(self.credit)
            if n > len(self.fifo):
                n = len(self.fifo)
                self.credit = 0.0 if not self.fifo else self.credit
            self.credit -= n
        data = bytes(self.fifo[:n])
        self.fifo = self.fifo[n:]
        return data


class LinkPair:
    """Ends "a" and "b" with one clock; events each end reported, in order."""

    def __init__(self, clock=None, bytes_per_ms=None, seed=b"link", **kw):
        self.clock = clock if clock is not None else Clock()
        self.a = Link(self.clock, random=DetRandom(seed + b"-a"), **kw)
        self.b = Link(self.clock, random=DetRandom(seed + b"-b"), **kw)
        self.ab = Line(bytes_per_ms)     # a -> b
        self.ba = Line(bytes_per_ms)     # b -> a
        self.events = {"a": [], "b": []}
        self.got = {"a": bytearray(), "b": bytearray()}
        self.reading = {"a": True, "b": True}
        self.restarts = 0
        self._out = bytearray(self.a.max_frame)
        self._buf = bytearray(512)

    def ends(self):
        return (("a", self.a, self.ab, self.ba), ("b", self.b, self.ba, self.ab))

    def restart(self, name, **kw):
        """Replace one end by a fresh Link (a reboot): new nonce, nothing remembered."""
        old = self.a if name == "a" else self.b
        self.restarts += 1      # a distinct seed each time: two ends drawing the same nonce
        seed = b"reboot-" + name.encode() + str(self.restarts).encode()   # is a loopback
        new = Link(self.clock, random=DetRandom(seed),
                   max_payload=old.max_payload, window=old.window, **kw)
        if name == "a":
            self.a = new
        else:
            self.b = new
        return new

    def step(self, ms=1):
        """Advance the clock by ms, move what the line carries in that time, let both ends
        process input, timers and output."""
        self.clock.now += ms
        for name, link, out_line, in_line in self.ends():
            data = in_line.take(ms)
            if data:
                link.receive_data(data)
            while True:
                ev = link.next_event()
                if ev == NEED_DATA:
                    break
                self.events[name].append(EVENT_NAMES[ev])
            if self.reading[name]:
                while True:
                    n = link.recv_into(self._buf)
                    if not n:
                        break
                    self.got[name].extend(self._buf[:n])
            while True:
                n = link.data_to_send(self._out)
                if not n:
                    break
                out_line.put(self._out[:n])

    def run(self, ms, tick=1):
        t = 0
        while t < ms:
            self.step(tick)
            t += tick
        return self

    def run_until(self, cond, limit_ms=60000, tick=1):
        t = 0
        while not cond():
            assert t < limit_ms, "condition not met in %d ms: %r" % (limit_ms, self.events)
            self.step(tick)
            t += tick
        return t

    def idle(self):
        return not (self.ab.fifo or self.ba.fifo or self.ab._delayed or self.ba._delayed
                    or self.a.unacked or self.b.unacked)


class Feeder:
    """Pushes a byte string into one link end as fast as its window allows."""

    def __init__(self, link_of, data):
        self.link_of = link_of           # callable returning the current Link
        self.data = data
        self.off = 0

    def pump(self):
        if self.off < len(self.data):
            self.off += self.link_of().send(self.data, self.off)

    @property
    def done(self):
        return self.off == len(self.data)


class SecurePair:
    """A client Connection on end "a" and an AUTH_SERVER Connection on end "b", each moving
    its packets through its link end: what the secure channel would see over a UART."""

    def __init__(self, pair, max_record=256):
        self.pair = pair
        clock = pair.clock
        self.client = Connection(CLIENT, secret_key=CLIENT_SEED, authorized_keys=(SERVER_PUB,),
                                 random=DetRandom(b"sc-c"), clock=clock, max_record=max_record)
        self.server = Connection(AUTH_SERVER, secret_key=SERVER_SEED,
                                 authorized_keys=(self.client.local_public_key,),
                                 random=DetRandom(b"sc-s"), clock=clock, max_record=max_record)
        self.received = {"client": [], "server": []}
        self.events = {"client": [], "server": []}
        n = max(self.client.max_packet, 208)
        self._out = {"client": bytearray(n), "server": bytearray(n)}
        self._pend = {"client": b"", "server": b""}   # packet bytes the link has not taken
        self._in = bytearray(512)
        self._rest = {"client": b"", "server": b""}   # link bytes the Connection has not taken
        for name in ("a", "b"):
            pair.reading[name] = False    # the Connections read the links

    def conns(self):
        return (("client", self.client, lambda: self.pair.a),
                ("server", self.server, lambda: self.pair.b))

    def _push(self, name, link):
        p = self._pend[name]
        if p:
            k = link.send(p)
            self._pend[name] = p[k:]
        return not self._pend[name]

    def send(self, name, data):
        """Encrypt one record on `name` and queue it on its link (False: not established
        or the previous packet is still waiting for link window)."""
        conn = self.client if name == "client" else self.server
        link = self.pair.a if name == "client" else self.pair.b
        if not conn.established or not self._push(name, link):
            return False
        n = conn.send_data(data, self._out[name])
        self._pend[name] = bytes(self._out[name][:n])
        self._push(name, link)
        return True

    def step(self, ms=1):
        self.pair.step(ms)
        for name, conn, link_of in self.conns():
            link = link_of()
            for _ in range(64):             # bounded work per step
                self._drain(name, conn, link)
                rest = self._rest[name]
                if not rest:
                    k = link.recv_into(self._in)
                    if not k:
                        break
                    rest = bytes(self._in[:k])
                took = conn.receive_data(rest)
                self._rest[name] = rest[took:]
                if not took:
                    break                   # the Connection is full: next step
            self._drain(name, conn, link)

    def _drain(self, name, conn, link):
        # Events until the Connection needs input. Its control packets go to the link as
        # far as the window allows; one that does not fit waits in _pend (and the
        # Connection keeps any later one until data_to_send is called again).
        while True:
            pushed = self._push(name, link)
            ev = conn.next_event()
            if ev == UNTRUSTED_KEY:
                conn.accept_key()
            elif ev == DATA:
                self.received[name].append(bytes(conn.plaintext[:conn.data_len]))
            if ev != C_NEED and (ev != CLOSED or self.events[name][-1:] != [ev]):
                self.events[name].append(ev)
            if pushed:
                n = conn.data_to_send(self._out[name])
                if n:
                    self._pend[name] = bytes(self._out[name][:n])
                    continue
            if ev == C_NEED or ev == CLOSED:
                return

    def run_until(self, cond, limit_ms=60000, tick=1):
        t = 0
        while not cond():
            assert t < limit_ms, "condition not met in %d ms: %r %r" % (
                limit_ms, self.events, self.pair.events)
            self.step(tick)
            t += tick
        return t

    def established(self):
        return self.client.established and self.server.established
