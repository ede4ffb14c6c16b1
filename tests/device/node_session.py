# Heap budget run: the complete sensor node sends N readings to a collector-side peer, in one process.
#
# The node is port/common/node.py's Node, unchanged, with a board object whose transport is an
# in-memory UART-like stream (readinto / write / any, like machine.UART). Each write is handed
# to an AUTH_SERVER Connection in the same process (the collector's side: it authenticates the
# node's key, and counts and checks the readings); what it answers goes back to the node's read
# side. Made to run from .mpy files on the MicroPython unix port, the i386 build and the
# Cortex-M0 emulator (tools/board_emulator.py), and from source on CPython.
#
#   micropython -X heapsize=128K tests/device/node_session.py [N]        (cwd: an .mpy tree)
#   micropython -X heapsize=128K -c "import node_session; node_session.main(100)"  (from .mpy)
#
# Heap figures, printed as `key value` lines (bytes), all after gc.collect():
#   heap_start       before the library is imported (this script's own code)
#   heap_peak        the highest gc.mem_alloc() seen at every frame the node writes or reads
#   node_peak        heap_peak - heap_start - peer: library code + node + its session
#   peer             what the in-process collector-side Connection and its buffers hold
#   max_block        the largest single allocated block seen at those points (bytes;
#                    from micropython.mem_info()'s "max blk sz", where the port has it)
# The last line is `readings N ok` when the collector got N valid readings in order.

import sys
import gc

gc.collect()
_START = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0

for _p in ("", ".", "port/common", "../../port/common", "../.."):
    if _p not in sys.path:
        sys.path.append(_p)

import time  # noqa: E402

# What a board's glue (port/<board>/board.py) imports before the node starts.
from sensors import SimulatedTemperature  # noqa: E402

if not hasattr(time, "ticks_ms"):  # CPython
    def _ticks():
        return int(time.monotonic() * 1000) & 0x3FFFFFFF

    def _sleep_ms(ms):
        time.sleep(ms / 1000)

    time.ticks_ms = _ticks
    time.ticks_diff = lambda a, b: ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000
    time.ticks_add = lambda a, b: (a + b) & 0x3FFFFFFF
    time.sleep_ms = _sleep_ms

try:
    import micropython
    _mem_info = micropython.mem_info
except (ImportError, AttributeError):
    _mem_info = None

# Block size of MicroPython's GC: 4 machine words.
_BLOCK = 16 if sys.maxsize < (1 << 32) else 32


def _unhex(s):
    return bytes(int(s[i:i + 2], 16) for i in range(0, len(s), 2))


SERVER_SEED = _unhex("5029049762bda60771ca2914e383190ea09ed4b71af9c9593ea31c850fc4faa2")
SERVER_PUB = _unhex("2088558ebd9b461dd09df000daf40f87f73840c55418576074393bb970e14698")
CLIENT_SEED = _unhex("10866ec48a11f3c56d77a64b2f54aa066c0cb475d8c87d35b491eed6ac0bdebc")
CLIENT_PUB = _unhex("be1ca074f4a58bbbd262a7f9523b6fb0bb9e8662287c3389a2e163dc55de281f")


class _Random:
    # Test-only bytes: os.urandom where it exists (the M0 build has none), else a 16-bit LCG.
    def __init__(self, seed):
        self.x = seed
        try:
            import os
            self.urandom = os.urandom
            self.urandom(1)
        except (ImportError, AttributeError, OSError, NotImplementedError):
            self.urandom = None

    def __call__(self, n):
        if self.urandom is not None:
            return self.urandom(n)
        out = bytearray(n)
        x = self.x
        for i in range(n):
            x = (x * 25173 + 13849) & 0xFFFF
            out[i] = x >> 8
        self.x = x
        return bytes(out)


class Meter:
    def __init__(self):
        self.peak = 0
        self.samples = 0

    def sample(self):
        gc.collect()
        a = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
        self.samples += 1
        if a > self.peak:
            self.peak = a
            if _mem_info is not None:
                # "max blk sz" in this report is the largest allocated block, in GC blocks;
                # printed at each new high-water mark and read by the host side.
                _mem_info()


METER = Meter()


class Peer:
    """The collector's side: an AUTH_SERVER Connection that knows the node's key."""

    def __init__(self, count):
        from ossuary_micro import Connection, AUTH_SERVER
        self.conn = Connection(AUTH_SERVER, secret_key=SERVER_SEED, authorized_keys=(CLIENT_PUB,),
                               max_record=256, random=_Random(7), clock=time.ticks_ms)
        self.out = bytearray(self.conn.max_packet if self.conn.max_packet > 208 else 208)
        self.to_node = bytearray()     # bytes for the node; it has read to_node[rpos:]
        self.rpos = 0
        self.readings = 0
        self.bad = 0
        self.count = count
        self.closed = False

    def receive(self, data):
        from ossuary_micro import NEED_DATA, DATA, CLOSED
        conn = self.conn
        mv = memoryview(data)
        while True:
            took = conn.receive_data(mv)
            mv = mv[took:]
            while True:
                ev = conn.next_event()
                n = conn.data_to_send(self.out)
                if n:
                    self.to_node.extend(self.out[:n])
                if ev == DATA:
                    self.check(bytes(conn.plaintext[:conn.data_len]))
                elif ev == CLOSED:
                    self.closed = True
                    n = conn.data_to_send(self.out)
                    if n:
                        self.to_node.extend(self.out[:n])
                    return
                elif ev == NEED_DATA and not n:
                    break
            if not len(mv):
                return

    def check(self, rec):
        # Readings arrive in order, each a JSON object with the next seq.
        import json
        try:
            r = json.loads(rec)
            ok = r["node"] == "heap-node" and r["seq"] == self.readings and r["v"] == 1
        except (ValueError, KeyError, TypeError):
            ok = False
        if ok:
            self.readings += 1
        else:
            self.bad += 1


class Uart:
    """UART-like stream (machine.UART's shape) whose far end is the Peer."""

    def __init__(self, peer):
        self.peer = peer

    def any(self):
        return len(self.peer.to_node) - self.peer.rpos

    def readinto(self, buf, n=-1):
        peer = self.peer
        if n < 0 or n > len(buf):
            n = len(buf)
        if n > self.any():
            n = self.any()
        if n == 0:
            return None
        buf[0:n] = peer.to_node[peer.rpos:peer.rpos + n]
        peer.rpos += n
        if peer.rpos == len(peer.to_node):
            peer.to_node = bytearray()
            peer.rpos = 0
        METER.sample()
        return n

    def write(self, data):
        self.peer.receive(data)
        METER.sample()
        return len(data)

    def close(self):
        pass


class Board:
    """The node's board glue (port/common/node.py's interface) around the in-memory UART."""

    def __init__(self, peer):
        self.peer = peer
        self.random = _Random(3)
        self.clock = time.ticks_ms
        self.sleep_ms = time.sleep_ms

    def open_transport(self, cfg):
        return Uart(self.peer)

    def close_transport(self, stream):
        pass

    def make_sensors(self, cfgs):
        return [SimulatedTemperature(self.random, s["name"]) for s in cfgs]

    def log(self, text):
        print("node:", text)

    def log_error(self, text):
        print("node error:", text)


CONFIG = ('{"name": "heap-node", "transport": {"type": "uart", "id": 0}, "interval_s": 0.05,'
          ' "max_readings": %d,'
          ' "secret_key": "10866ec48a11f3c56d77a64b2f54aa066c0cb475d8c87d35b491eed6ac0bdebc",'
          ' "collector_key": "2088558ebd9b461dd09df000daf40f87f73840c55418576074393bb970e14698",'
          ' "sensors": [{"type": "sim_temp", "name": "t1"}, {"type": "sim_temp", "name": "t2"}]}')


def main(count=100, path="heap_node_config.json"):
    # The config file is written to `path` (default: the current directory, which is the
    # .mpy tree's temporary folder in every run of tests/ and bench/).
    with open(path, "w") as f:
        f.write(CONFIG % count)
    # The library is the node's code: imported first, so the peer's own share is only its
    # Connection and buffers.
    from ossuary_micro.crypto import get_backend
    import node
    get_backend()
    gc.collect()
    base = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    peer = Peer(count)
    gc.collect()
    peer_bytes = (gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0) - base
    METER.sample()
    t0 = time.ticks_ms()
    status = node.main(Board(peer), path)     # the node's real entry point (port/*/main.py)
    ms = time.ticks_diff(time.ticks_ms(), t0)
    METER.sample()
    sent = count if status == 0 else -1
    print("session_ms", ms)
    print("samples", METER.samples)
    print("heap_start", _START)
    print("heap_peak", METER.peak)
    print("peer", peer_bytes)
    print("node_peak", METER.peak - _START - peer_bytes)
    print("block_bytes", _BLOCK)
    print("readings %d %s" % (peer.readings, "ok" if sent == count == peer.readings and not peer.bad
                                             else "FAILED (sent %d, bad %d)" % (sent, peer.bad)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
