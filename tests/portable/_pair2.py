# A protocol 2 client/server pair over the in-memory Link of _pair.py (same fake clock and
# deterministic random sources), for tests on CPython and MicroPython alike.

from ossuary_micro.connection2 import Connection2, EVENT_NAMES
from ._pair import make_pair, Link


def make_pair2(seed=b"pair2", rekey_after=1 << 20, max_resets=5, **kw):
    """make_pair's pair in protocol 2 (make_pair's arguments, and Connection2's own two)."""
    return make_pair(seed=seed, conn=Connection2, link=Link2, rekey_after=rekey_after,
                     max_resets=max_resets, **kw)


class Link2(Link):
    """Link with protocol 2's event names (END_OF_STREAM) and room for a REKEY record."""

    event_names = EVENT_NAMES
    out_slack = 24

    def end(self, name):
        src = self.client if name == "client" else self.server
        dst = self.server if name == "client" else self.client
        n = src.end_stream(self._out)
        self.deliver(name, dst, self._out[:n])
        self.drain(dst)
