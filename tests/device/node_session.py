# Heap budget run: the whole sensor node sends N readings to a collector-side peer, one process.
#
# The node is port/common/node.py's Node, unchanged, with a board object whose transport is an
# in-memory UART-like stream (readinto / write / any, like machine.UART). Each write is handed
# to an AUTH_SERVER Connection in the same process (the collector's side: it authenticates the
# node's key, counts and checks the readings and acknowledges each); what it answers goes back
# to the node's read side. By default the node runs the bare secure channel ("link": false):
# the peer is a Connection (protocol 1) or Connection2 (protocol 2). main(link=True) runs the
# node as a UART node is configured by default, over the serial link layer (docs/LINK.md): the
# peer is then link_peer.py's, a link end in front of the Connection, as ossuary-collect runs
# on a serial line. Made to run from .mpy files on the MicroPython unix port, the i386 build
# and the Cortex-M0 emulator (tools/board_emulator.py), and from source on CPython.
#
# Every name in this file is interned when it loads (a qstr, on the heap on a board): names
# added here move the node's own names towards a qstr pool boundary, so the link-only code
# lives in link_peer.py, loaded only by a link run.
#
#   micropython -X heapsize=128K tests/device/node_session.py [N]        (cwd: an .mpy tree)
#   micropython -X heapsize=128K -c "import node_session; node_session.main(100)"  (from .mpy)
#   ... node_session.main(100, protocol=2)       protocol 2 (Noise XX) on both sides
#
# main(oom=K) makes the node's first K sessions hit a MemoryError inside the library (its
# Connection's random source raises it): the node must log it and retry after its backoff.
#
# Heap figures, printed as `key value` lines (bytes), all after gc.collect():
#   heap_start       before anything is imported (this module's own code)
#   heap_peak        the highest gc.mem_alloc() seen at every frame the node writes or reads
#                    and at every line it logs (one is logged at boot with the Ed25519 code
#                    that derives protocol 2's keys still loaded)
#   peer             what the in-process collector-side Connection and its buffers hold
#   node_peak        heap_peak - heap_start - peer: library and node code (from .mpy), the
#                    node's objects and its session
#   block_bytes      GC block size; micropython.mem_info() reports, at each new high-water
#                    mark, "max blk sz" (the largest allocated block, in blocks), which the
#                    host side (tools/board_test.py) turns into bytes
# The last line is `readings N ok` when the collector got N valid readings in order.

import sys
import gc

gc.collect()
_START = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0

for _p in ("", ".", "port/common", "../../port/common", "../.."):
    if _p not in sys.path:
        sys.path.append(_p)

import time  # noqa: E402
from binascii import unhexlify  # noqa: E402

# The boot order of port/rp2/main.py and port/esp32/main.py: the crypto backend first, on a
# heap nothing has fragmented yet, then what the board glue imports, then the node.
from ossuary_micro.crypto import get_backend  # noqa: E402
get_backend()
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


# Spec 5.5 test keys: the collector's seed, the node's public key (its seed is in CONFIG).
SERVER_SEED = unhexlify("5029049762bda60771ca2914e383190ea09ed4b71af9c9593ea31c850fc4faa2")
CLIENT_PUB = unhexlify("be1ca074f4a58bbbd262a7f9523b6fb0bb9e8662287c3389a2e163dc55de281f")
# ... and the collector's keys in the form protocol 2 uses, derived from SERVER_SEED on the
# host (clamped SHA-512 of the seed; its Ed25519 public key).
SERVER_X25519 = unhexlify("7898853908e01e2b97c9128af5544b0263bb2693dbaad5912646c0f810370a51")
SERVER_PUB = unhexlify("2088558ebd9b461dd09df000daf40f87f73840c55418576074393bb970e14698")


def _random(n):
    # Test-only bytes: os.urandom where it exists; the M0 build has none, so a 16-bit LCG
    # stands in (this harness's keys are fixed test keys anyway).
    if _urandom is not None:
        return _urandom(n)
    global _lcg
    out = bytearray(n)
    for i in range(n):
        _lcg = (_lcg * 25173 + 13849) & 0xFFFF
        out[i] = _lcg >> 8
    return bytes(out)


_lcg = 7
try:
    from os import urandom as _urandom
    _urandom(1)
except (ImportError, AttributeError, OSError, NotImplementedError):
    _urandom = None

_peak = 0          # high-water mark once the peer exists
_boot = 0          # high-water mark before (the node's boot: config, keys)
_peer = -1         # the peer's own heap, -1 until it is made
_samples = 0


def sample():
    # One heap reading after a collection; the high-water mark goes to _boot or _peak, and at
    # each new mark mem_info() prints its "max blk sz" (largest allocated block, in GC blocks).
    global _peak, _boot, _samples
    gc.collect()
    a = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    _samples += 1
    if a > (_boot if _peer < 0 else _peak):
        if _peer < 0:
            _boot = a
        else:
            _peak = a
        if a >= _boot and a >= _peak and _mem_info is not None:
            _mem_info()


class Link:
    """The UART (machine.UART's shape: any / readinto / write) and, at its far end, the
    collector's side: an AUTH_SERVER Connection that knows the node's key and checks that
    the readings arrive in order."""

    def __init__(self, protocol):
        self.protocol = protocol
        if protocol == 2:
            from ossuary_micro.connection2 import Identity
            # The collector's keys, derived on the host beforehand (a collector does not run
            # on the board): the Ed25519 code the node loaded at boot is not loaded again.
            self.ident = Identity.from_keys(SERVER_X25519, SERVER_PUB)
        self.conn = self.new_conn()
        self.opened = False
        self.out = bytearray(self.conn.max_packet if self.conn.max_packet > 208 else 208)
        self.q = bytearray()       # bytes for the node; it has read q[rpos:]
        self.rpos = 0
        self.readings = 0
        self.bad = 0
        self.seq = -1

    def reopen(self):
        # The node opens its transport for a new session: like a new TCP connection, it
        # starts empty (nothing left over from the last session, such as the Disconnect that
        # answered the node's) and meets a fresh Connection, as at the collector.
        self.q = bytearray()
        self.rpos = 0
        if self.opened:
            self.conn = self.new_conn()
        self.opened = True

    def new_conn(self):
        # The collector's side of one session.
        from ossuary_micro.events import AUTH_SERVER
        if self.protocol == 2:
            from ossuary_micro.connection2 import Connection2
            return Connection2(AUTH_SERVER, secret_key=self.ident, authorized_keys=(CLIENT_PUB,),
                               max_record=256, random=_random, clock=time.ticks_ms)
        from ossuary_micro.connection import Connection
        return Connection(AUTH_SERVER, secret_key=SERVER_SEED, authorized_keys=(CLIENT_PUB,),
                          max_record=256, random=_random, clock=time.ticks_ms)

    def any(self):
        return len(self.q) - self.rpos

    def emit(self, n):
        # The Connection's answer (n bytes of `out`) onto the line (link_peer.py: into its
        # link end first).
        self.q.extend(self.out[:n])

    def readinto(self, buf, n=-1):
        if n < 0 or n > len(buf):
            n = len(buf)
        if n > self.any():
            n = self.any()
        if n == 0:
            return None
        buf[0:n] = self.q[self.rpos:self.rpos + n]
        self.rpos += n
        if self.rpos == len(self.q):
            self.q = bytearray()
            self.rpos = 0
        elif self.rpos > 512:
            # Acks keep arriving while the node reads: drop what it has read, or q would keep
            # every byte of the session and grow into allocations of several KB (a harness
            # artifact, not the node's: seen as a failed write on the M0).
            self.q = self.q[self.rpos:]
            self.rpos = 0
        sample()
        return n

    def write(self, data):
        from ossuary_micro.events import NEED_DATA, DATA
        import json
        conn = self.conn
        mv = memoryview(data)
        while len(mv):
            mv = mv[conn.receive_data(mv):]
            while True:
                ev = conn.next_event()
                n = conn.data_to_send(self.out)
                if n:
                    self.emit(n)
                if ev == DATA:
                    try:
                        r = json.loads(bytes(conn.plaintext[:conn.data_len]))
                        ok = (r["v"] == 2 and r["node"] == "heap-node"
                              and len(r["boot"]) == 16)
                    except (ValueError, KeyError, TypeError):
                        ok = False
                    if ok:
                        # New readings arrive in seq order; gaps are readings the node's
                        # queue dropped while it was backing off (counted, never renumbered).
                        # A lower or equal seq is a resend after a new session: acked again,
                        # counted once.
                        if r["seq"] > self.seq:
                            self.readings += 1
                            self.seq = r["seq"]
                        # Committed: acknowledge it, as the collector does (design.md).
                        ack = '{"v":2,"ack":%d,"boot":"%s"}' % (r["seq"], r["boot"])
                        self.emit(conn.send_data(ack.encode(), self.out))
                    else:
                        self.bad += 1
                elif ev == NEED_DATA and not n:
                    break
                if conn.closed:
                    mv = mv[len(mv):]
                    break
        sample()
        return len(data)

    def close(self):
        pass


def make_peer(protocol, link):
    # The collector's side, made when the node first opens its transport: after its boot (its
    # keys derived and the Ed25519 code unloaded), as a board meets its collector. The
    # connection module the node loads next is loaded first, so that its code is charged to
    # the node and `peer` is the peer's own objects (and the server-only code: _server1.py or
    # _server2.py).
    global _peer
    gc.collect()
    if protocol == 2:
        import ossuary_micro.connection2  # noqa: F401
    else:
        import ossuary_micro.connection  # noqa: F401
        # ... and protocol 1 signs in every handshake: the backend's Ed25519 code (viper:
        # crypto/_viper_ed.py, loaded on first use) is the node's too.
        get_backend().ed25519_public(bytes(32))
    if link:
        # ... and the link layer's, which the node loads for its transport next.
        import ossuary_micro.link  # noqa: F401
    sample()
    gc.collect()
    base = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    if link:
        import link_peer    # the harness's, charged to the peer
        link = link_peer.Link(protocol)
    else:
        link = Link(protocol)
    gc.collect()
    _peer = (gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0) - base
    return link


class Board:
    """The node's board glue (port/common/node.py's interface) around the in-memory link.
    `oom` > 0: that many sessions fail with MemoryError inside the library (issue 7)."""

    def __init__(self, protocol, oom, link):
        self.protocol = protocol
        self.link = link      # True/False until the peer is made: with the link layer or not
        self.oom = oom
        self.clock = time.ticks_ms
        self.sleep_ms = time.sleep_ms
        self.failures = 0
        self.acked = -1

    def random(self, n):
        # The node's Connection draws its keys and challenge here (32 bytes each): a
        # MemoryError raised inside the library, as a too-small heap would. The node's own
        # 8-byte boot id is drawn once at start and is not what this run is about.
        if self.oom > 0 and n == 32:
            self.oom -= 1
            raise MemoryError("memory allocation failed (forced)")
        return _random(n)

    def open_transport(self, cfg):
        if isinstance(self.link, bool):
            self.link = make_peer(self.protocol, self.link)
        self.link.reopen()
        return self.link

    def close_transport(self, stream):
        pass

    def make_sensors(self, cfgs):
        return [SimulatedTemperature(_random, s["name"]) for s in cfgs]

    def log(self, text):
        # A heap sample at every line the node logs too: it logs "protocol 2 keys derived"
        # while the Ed25519 code that took is still loaded (the boot's own high-water mark).
        sample()
        if "out of memory" in text:
            self.failures += 1
            if self.failures > self.oom + 8:
                # The heap is too small for this node: it would log and back off for ever.
                # Ending it (node.main returns 130) makes the run fail now, not at a timeout.
                raise KeyboardInterrupt
        if text.endswith("acknowledged, done"):
            self.acked = int(text.split()[0])   # the node's own count: must be all of them
        print("node:", text)

    def log_error(self, text):
        print("node error:", text)


# queue_max 24: the oom=2 run backs off 1.5 s while readings are due at 40/s, and its 20
# readings must all wait in the queue (a smaller one would drop, and count, the oldest).
# retry_max_ms 2000: in a heap too small for the node, its 8 "out of memory" retries (then the
# harness ends it) take ~15 s, not minutes of 30 s backoffs.
CONFIG = ('{"name": "heap-node", "transport": {"type": "uart", "id": 0, "link": %s}, "interval_s": 0.05,'
          ' "max_readings": %d, "queue_max": 24, "protocol": %d, "retry_max_ms": 2000,'
          ' "secret_key": "10866ec48a11f3c56d77a64b2f54aa066c0cb475d8c87d35b491eed6ac0bdebc",'
          ' "collector_key": "2088558ebd9b461dd09df000daf40f87f73840c55418576074393bb970e14698",'
          ' "sensors": [{"type": "sim_temp", "name": "t1"}, {"type": "sim_temp", "name": "t2"}]}')


def main(count=100, path="heap_node_config.json", oom=0, protocol=1, link=False):
    # The config file is written to `path` (default: the current directory, which is the
    # .mpy tree's temporary folder in every run of tests/ and bench/).
    with open(path, "w") as f:
        f.write(CONFIG % (repr(link).lower(), count, protocol))
    # As port/rp2/main.py does: collect before the node's modules load. Without it, importing
    # them on the M0 emulator fails ("allocating 640 bytes") with 67 KB free in runs of up to
    # 4 KB; the cause inside the firmware's loader was not established.
    gc.collect()
    import node
    board = Board(protocol, oom, link)
    sample()
    t0 = time.ticks_ms()
    status = node.main(board, path)     # the node's real entry point (port/*/main.py)
    ms = time.ticks_diff(time.ticks_ms(), t0)
    sample()
    # One format string, not eight labels: every string constant is a qstr, and qstrs live in
    # pools on the heap that double in size when full, so the harness's own names could push
    # the run over a pool boundary and charge a pool to the node.
    link = board.link
    # (a bool: the node never opened its transport, out of memory before that)
    got, bad = (0, 0) if isinstance(link, bool) else (link.readings, link.bad)
    node_peak = max(_boot - _START, _peak - _START - _peer)
    print("session_ms %d\nsamples %d\nheap_start %d\nheap_peak %d\nboot_peak %d\npeer %d\n"
          "node_peak %d\nblock_bytes %d\noom_failures %d"
          % (ms, _samples, _START, max(_peak, _boot), _boot, _peer, node_peak, _BLOCK,
             board.failures))
    if _mem_info is not None:
        # "qstr pool: n_pool=.., n_qstr=N, ..": the names interned so far (the node's, the
        # harness's and the peer's); tools/board_test.py reads n_qstr.
        micropython.qstr_info()
    ok = (status == 0 and got == count and not bad and board.failures == oom
          and board.acked == count)
    print("readings %d %s" % (got, "ok" if ok else "FAILED (status %d, bad %d, acked %d)"
                                   % (status, bad, board.acked)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100,
         protocol=int(sys.argv[2]) if len(sys.argv) > 2 else 1)
