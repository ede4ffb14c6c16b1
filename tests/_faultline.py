"""A faulty serial line for tests: a fault model, and a relay between two ptys that applies it.

FaultModel corrupts a byte stream the way a bad cable, noise or a flaky adapter does: bit
flips (a byte error rate), dropped bytes, duplicated bytes, bursts of garbage, and cuts (all
bytes lost for cut_ms every cut_period_ms). It is deterministic for a given seed and clock,
and used both by the in-memory tests (tests/test_link_faults.py, bench/link_bench.py) and by
the pty relay.

PtyRelay opens two pty pairs and forwards bytes between their master sides in a thread,
through one FaultModel per direction (optionally with a delay). Each end of the system under
test opens one slave path as its serial port, like a node on /dev/ttyUSB0:

    with PtyRelay(FaultModel(seed=1, ber=1e-4), FaultModel(seed=2, drop=1e-4)) as relay:
        a = serial.Serial(relay.paths[0], timeout=0)
        b = serial.Serial(relay.paths[1], timeout=0)

Run as a program it relays until Ctrl-C, for trying tools by hand:

    .venv/bin/python tests/_faultline.py --ber 1e-4 --drop 1e-4 --cut 1000/10000
"""

import os
import random
import select
import threading
import time
import tty


class FaultModel:
    """Per-byte faults with given rates, garbage bursts and timed cuts. `clock` returns
    milliseconds (needed for cuts only). Counters say what was done."""

    def __init__(self, seed=0, ber=0.0, drop=0.0, dup=0.0, garbage_every=0, garbage_len=16,
                 cut_period_ms=0, cut_ms=0, clock=None):
        self.rnd = random.Random(seed)
        self.ber = ber
        self.drop = drop
        self.dup = dup
        self.garbage_every = garbage_every
        self.garbage_len = garbage_len
        self.cut_period_ms = cut_period_ms
        self.cut_ms = cut_ms
        self.clock = clock
        self.flipped = self.dropped = self.duplicated = self.garbage = self.cut_bytes = 0
        self._since_garbage = 0
        # Next faulty byte drawn geometrically, so a clean byte costs nothing.
        self._p = ber + drop + dup
        self._gap = self._draw()

    def _draw(self):
        if self._p <= 0:
            return -1
        return int(self.rnd.expovariate(self._p))

    def in_cut(self):
        if not self.cut_period_ms or self.clock is None:
            return False
        return (self.clock() % self.cut_period_ms) >= self.cut_period_ms - self.cut_ms

    def __call__(self, data):
        if self.in_cut():
            self.cut_bytes += len(data)
            return b""
        out = bytearray()
        i = 0
        n = len(data)
        while i < n:
            if self._gap < 0:
                k = n - i
            else:
                k = min(self._gap, n - i)
            if self.garbage_every:
                k = min(k, self.garbage_every - self._since_garbage)
            out += data[i:i + k]
            i += k
            self._since_garbage += k
            if self._gap >= 0:
                self._gap -= k
            if self.garbage_every and self._since_garbage >= self.garbage_every:
                self._since_garbage = 0
                out += bytes(self.rnd.randrange(256) for _ in range(self.garbage_len))
                self.garbage += 1
                continue
            if self._gap == 0 and i < n:
                b = data[i]
                i += 1
                self._since_garbage += 1
                r = self.rnd.random() * self._p
                if r < self.ber:
                    out.append(b ^ (1 << self.rnd.randrange(8)))
                    self.flipped += 1
                elif r < self.ber + self.drop:
                    self.dropped += 1
                else:
                    out += bytes((b, b))
                    self.duplicated += 1
                self._gap = self._draw()
        return bytes(out)


def _open_pty():
    master, slave = os.openpty()
    tty.setraw(slave)          # no echo, no CR/LF translation: a clean 8-bit line
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


class PtyRelay:
    """Two pty pairs joined through fault models: paths[0] <-> paths[1].

    fault_01 corrupts what the end on paths[0] writes, fault_10 the other direction.
    delay_ms holds every chunk that long before passing it on. Stop with close() (or use it
    as a context manager); the slave fds are kept open so the ptys survive ends reopening."""

    def __init__(self, fault_01=None, fault_10=None, delay_ms=0):
        self._ends = [_open_pty(), _open_pty()]
        self.paths = [e[2] for e in self._ends]
        self.faults = [fault_01, fault_10]
        self.delay_ms = delay_ms
        self.moved = [0, 0]
        self.cut = False         # True: both directions lose everything (set by tests)
        self._queues = [[], []]  # (release time, bytes) per direction
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="pty-relay", daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._stop = True
        self._thread.join(5)
        for master, slave, _ in self._ends:
            os.close(master)
            os.close(slave)

    def _run(self):
        masters = [e[0] for e in self._ends]
        while not self._stop:
            r, _, _ = select.select(masters, [], [], 0.005)
            now = time.monotonic()
            for d, fd in enumerate(masters):
                if fd not in r:
                    continue
                try:
                    data = os.read(fd, 4096)
                except (BlockingIOError, OSError):
                    continue
                if self.cut:
                    continue
                if self.faults[d] is not None:
                    data = self.faults[d](data)
                if data:
                    self._queues[d].append((now + self.delay_ms / 1000.0, data))
            for d in (0, 1):
                q = self._queues[d]
                while q and q[0][0] <= now:
                    data = q.pop(0)[1]
                    self._write(masters[1 - d], data)
                    self.moved[d] += len(data)

    def _write(self, fd, data):
        # The far end reads continuously; a full pty buffer only delays us a little.
        mv = memoryview(data)
        deadline = time.monotonic() + 2.0
        while len(mv) and not self._stop:
            try:
                mv = mv[os.write(fd, mv):]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return          # the reader is gone: the line loses the rest
                time.sleep(0.001)
            except OSError:
                return


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="relay between two ptys, injecting faults")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ber", type=float, default=0.0, help="byte error rate (one bit flipped)")
    ap.add_argument("--drop", type=float, default=0.0, help="dropped-byte rate")
    ap.add_argument("--dup", type=float, default=0.0, help="duplicated-byte rate")
    ap.add_argument("--garbage-every", type=int, default=0, help="16 random bytes every N bytes")
    ap.add_argument("--cut", default="", help="CUT_MS/PERIOD_MS, e.g. 1000/10000")
    ap.add_argument("--delay-ms", type=int, default=0)
    args = ap.parse_args(argv)
    cut_ms, period = (int(x) for x in args.cut.split("/")) if args.cut else (0, 0)
    clock = lambda: int(time.monotonic() * 1000)  # noqa: E731

    def model(seed):
        return FaultModel(seed, args.ber, args.drop, args.dup, args.garbage_every,
                          cut_period_ms=period, cut_ms=cut_ms, clock=clock)

    with PtyRelay(model(args.seed), model(args.seed + 1), args.delay_ms) as relay:
        print("%s <-> %s" % tuple(relay.paths), flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
