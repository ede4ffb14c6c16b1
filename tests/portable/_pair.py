# A client/server pair over an in-memory link, with a fake clock and deterministic random
# sources, for protocol tests on CPython and MicroPython alike.

import hashlib

from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA,
                           CLOSED, DATA, UNTRUSTED_KEY, EVENT_NAMES)
from ._util import h

# Spec section 5.5 fixed test keys (seed -> public).
SERVER_SEED = h("5029049762bda60771ca2914e383190ea09ed4b71af9c9593ea31c850fc4faa2")
SERVER_PUB = h("2088558ebd9b461dd09df000daf40f87f73840c55418576074393bb970e14698")
CLIENT_SEED = h("10866ec48a11f3c56d77a64b2f54aa066c0cb475d8c87d35b491eed6ac0bdebc")
CLIENT_PUB = h("be1ca074f4a58bbbd262a7f9523b6fb0bb9e8662287c3389a2e163dc55de281f")
OTHER_PUB = h("e8359fd1c19955784a0aeac24b585e30fc760e8428e86c85b8e1a047866dd6f1")


class DetRandom:
    """Deterministic byte source (SHA-256 in counter mode). For tests only."""

    def __init__(self, seed):
        self.seed = seed
        self.ctr = 0

    def __call__(self, n):
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self.seed + self.ctr.to_bytes(4, "big")).digest()
            self.ctr += 1
        return bytes(out[:n])


class Clock:
    """A fake millisecond clock the test advances by hand."""

    def __init__(self):
        self.now = 1000

    def __call__(self):
        return self.now


def make_pair(client_key=None, server_role=UNAUTH_SERVER, server_key=SERVER_SEED,
              trust_server=True, authorize_client=True, clock=None, backend=None,
              max_record=16384, tofu_clients=False, seed=b"pair", conn=Connection, link=None,
              **extra):
    """A Link between a client and a server of class `conn` (protocol 1's Connection; _pair2
    passes Connection2 and Link2), `extra` keyword arguments going to both."""
    clock = clock if clock is not None else Clock()
    client = conn(CLIENT, secret_key=client_key,
                  authorized_keys=(SERVER_PUB,) if trust_server else (),
                  random=DetRandom(seed + b"-c"), clock=clock, backend=backend,
                  max_record=max_record, **extra)
    auth = ()
    if server_role == AUTH_SERVER and authorize_client and client_key is not None:
        auth = (client.local_public_key,)
    server = conn(server_role, secret_key=server_key, authorized_keys=auth,
                  random=DetRandom(seed + b"-s"), clock=clock, backend=backend,
                  max_record=max_record, tofu_clients=tofu_clients, **extra)
    return (link or Link)(client, server, clock)


class Link:
    """Moves bytes between two connections and records every event each one reports.

    `tamper` (optional) is called as tamper(sender_name, frame_bytearray) for every frame
    in flight and returns the bytes to deliver (or None to drop the frame)."""

    event_names = EVENT_NAMES   # the protocol's names of its events, for self.events
    out_slack = 0               # bytes of the output buffer beyond the largest packet

    def __init__(self, client, server, clock):
        self.client = client
        self.server = server
        self.clock = clock
        self.events = {"client": [], "server": []}
        self.frames = {"client": [], "server": []}
        self.received = {"client": [], "server": []}
        self.tamper = None
        self.on_untrusted = None        # callable(conn) deciding TOFU, default accept
        self._out = bytearray(max(client.max_packet, server.max_packet, 208) + self.out_slack)

    def ends(self):
        return (("client", self.client, self.server, "server"),
                ("server", self.server, self.client, "client"))

    def deliver(self, name, dst, frame):
        if self.tamper is not None:
            frame = self.tamper(name, bytearray(frame))
            if frame is None:
                return
        self.frames[name].append(bytes(frame))
        mv = memoryview(bytes(frame))
        while len(mv):
            took = dst.receive_data(mv)
            mv = mv[took:]
            if len(mv):
                self.drain(dst)

    def drain(self, conn):
        name = "client" if conn is self.client else "server"
        while True:
            ev = conn.next_event()
            if ev == NEED_DATA:
                return
            if ev == CLOSED and self.events[name][-1:] == ["CLOSED"]:
                return          # CLOSED repeats on every call once dead; record it once
            self.events[name].append(self.event_names[ev])
            if ev == DATA:
                self.received[name].append(bytes(conn.plaintext[:conn.data_len]))
            elif ev == UNTRUSTED_KEY:
                if self.on_untrusted is None:
                    conn.accept_key()
                else:
                    self.on_untrusted(conn)
            elif ev == CLOSED:
                return

    def step(self):
        """One round: each side writes what it has and drains its events. Returns True
        if any bytes moved."""
        moved = False
        for name, src, dst, _ in self.ends():
            self.drain(src)
            n = src.data_to_send(self._out)
            if n:
                moved = True
                self.deliver(name, dst, self._out[:n])
                self.drain(dst)
        return moved

    def run(self, rounds=20, tick_ms=0):
        for _ in range(rounds):
            moved = self.step()
            if tick_ms:
                self.clock.now += tick_ms
            elif not moved:
                break
        return self

    def send(self, name, data):
        src = self.client if name == "client" else self.server
        dst = self.server if name == "client" else self.client
        n = src.send_data(data, self._out)
        self.deliver(name, dst, self._out[:n])
        self.drain(dst)

    def established(self):
        return self.client.established and self.server.established
