# A protocol 2 client/server pair over the in-memory Link of _pair.py (same fake clock and
# deterministic random sources), for tests on CPython and MicroPython alike.

from ossuary_micro import CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA, CLOSED, DATA, UNTRUSTED_KEY
from ossuary_micro.connection2 import Connection2, EVENT_NAMES, END_OF_STREAM
from ._pair import Link, DetRandom, Clock, SERVER_SEED, SERVER_PUB, CLIENT_SEED, CLIENT_PUB


def make_pair2(client_key=None, server_role=UNAUTH_SERVER, server_key=SERVER_SEED,
               trust_server=True, authorize_client=True, clock=None, backend=None,
               max_record=16384, tofu_clients=False, seed=b"pair2", rekey_after=1 << 20,
               max_resets=5):
    clock = clock if clock is not None else Clock()
    client = Connection2(CLIENT, secret_key=client_key,
                         authorized_keys=(SERVER_PUB,) if trust_server else (),
                         random=DetRandom(seed + b"-c"), clock=clock, backend=backend,
                         max_record=max_record, rekey_after=rekey_after, max_resets=max_resets)
    auth = ()
    if server_role == AUTH_SERVER and authorize_client and client_key is not None:
        auth = (client.local_public_key,)
    server = Connection2(server_role, secret_key=server_key, authorized_keys=auth,
                         random=DetRandom(seed + b"-s"), clock=clock, backend=backend,
                         max_record=max_record, tofu_clients=tofu_clients,
                         rekey_after=rekey_after, max_resets=max_resets)
    return Link2(client, server, clock)


class Link2(Link):
    """Link with protocol 2's event names (END_OF_STREAM) and room for a REKEY record."""

    def __init__(self, client, server, clock):
        Link.__init__(self, client, server, clock)
        self._out = bytearray(max(client.max_packet, server.max_packet, 208) + 24)

    def drain(self, conn):
        name = "client" if conn is self.client else "server"
        while True:
            ev = conn.next_event()
            if ev == NEED_DATA:
                return
            if ev == CLOSED and self.events[name][-1:] == ["CLOSED"]:
                return
            self.events[name].append(EVENT_NAMES[ev])
            if ev == DATA:
                self.received[name].append(bytes(conn.plaintext[:conn.data_len]))
            elif ev == UNTRUSTED_KEY:
                if self.on_untrusted is None:
                    conn.accept_key()
                else:
                    self.on_untrusted(conn)
            elif ev == CLOSED:
                return

    def end(self, name):
        src = self.client if name == "client" else self.server
        dst = self.server if name == "client" else self.client
        n = src.end_stream(self._out)
        self.deliver(name, dst, self._out[:n])
        self.drain(dst)
