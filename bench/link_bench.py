#!/usr/bin/env python3
"""Readings over a simulated noisy 115200-baud serial line, with and without the link layer.

  .venv/bin/python bench/link_bench.py [--seconds 60] [--markdown]

A node sends one reading (a ~100-byte JSON record, one Ossuary data record each) every 25 ms
(40/s) to a collector, for --seconds of simulated time, through:
  * link: Connection -> ossuary_micro.link.Link -> line -> Link -> Connection
  * bare: Connection -> line -> Connection (protocol 1 as it is used today over a UART)
The line carries 11.52 bytes per ms each way (115200 baud, 10 bits per byte) and damages
bytes as tests/_faultline.FaultModel says: one flipped bit per damaged byte at the given byte
error rate, or the cut pattern (nothing gets through for 1 s every 10 s), in both directions.

The node keeps readings it could not hand to the channel yet (not established, or the link's
window full) in a queue of up to 400 (10 s), oldest dropped first; bare mode replaces a
Connection that has failed for good by a fresh one (what the node and the collector do).
Measured: readings lost (never delivered), duplicated, corrupted (delivered but different
from what was sent), the longest stall (longest time without a delivery, not counting time
the line was cut), and goodput (reading bytes delivered / line capacity in that direction).

Simulated time, so the figures do not depend on this machine's speed; handshakes cost no
simulated time here (on an RP2040 each costs ~2.5 s per side), which flatters bare mode.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, NEED_DATA, DATA, CLOSED,  # noqa: E402
                           UNTRUSTED_KEY)
from tests._faultline import FaultModel  # noqa: E402
from tests.portable._linkpair import LinkPair, SecurePair, Line  # noqa: E402
from tests.portable._pair import (Clock, DetRandom, SERVER_SEED, SERVER_PUB,  # noqa: E402
                                  CLIENT_SEED)

BYTES_PER_MS = 11.52
INTERVAL_MS = 25
QUEUE = 400
MAX_RECORD = 256

CASES = (
    ("byte errors 0", dict()),
    ("byte errors 1e-5", dict(ber=1e-5)),
    ("byte errors 1e-4", dict(ber=1e-4)),
    ("byte errors 1e-3", dict(ber=1e-3)),
    ("1 s cut every 10 s", dict(cut_period_ms=10000, cut_ms=1000)),
)


class BarePair:
    """Client and server Connections joined directly by two Lines: protocol 1 bare."""

    def __init__(self, clock):
        self.clock = clock
        self.ab = Line(BYTES_PER_MS)
        self.ba = Line(BYTES_PER_MS)
        self.received = {"client": [], "server": []}
        self.replaced = 0
        self.old_resets = 0             # resets counted by Connections since replaced
        self._out = bytearray(MAX_RECORD + 64)
        self._new()

    def _new(self, which=("client", "server")):
        n = self.replaced
        if "client" in which:
            self.client = Connection(CLIENT, secret_key=CLIENT_SEED,
                                     authorized_keys=(SERVER_PUB,),
                                     random=DetRandom(b"bc%d" % n), clock=self.clock,
                                     max_record=MAX_RECORD)
        if "server" in which:
            self.server = Connection(AUTH_SERVER, secret_key=SERVER_SEED, tofu_clients=True,
                                     random=DetRandom(b"bs%d" % n), clock=self.clock,
                                     max_record=MAX_RECORD)

    def established(self):
        return self.client.established and self.server.established

    def send(self, name, data):
        if not self.client.established:
            return False
        n = self.client.send_data(data, self._out)
        self.ab.put(self._out[:n])
        return True

    def step(self, ms=1):
        self.clock.now += ms
        for name, conn, inl, outl in (("client", self.client, self.ba, self.ab),
                                      ("server", self.server, self.ab, self.ba)):
            data = inl.take(ms)
            mv = memoryview(data)
            while True:
                if len(mv):
                    mv = mv[conn.receive_data(mv):]
                ev = conn.next_event()
                if ev == UNTRUSTED_KEY:
                    conn.accept_key()
                elif ev == DATA:
                    self.received[name].append(bytes(conn.plaintext[:conn.data_len]))
                k = conn.data_to_send(self._out)
                if k:
                    outl.put(self._out[:k])
                    continue
                if ev in (NEED_DATA, CLOSED) and not len(mv):
                    break
        # A side whose Connection failed for good starts over with a fresh one, each on its
        # own, as the node and the collector do.
        for name, conn in (("client", self.client), ("server", self.server)):
            if conn.closed:
                self.replaced += 1
                self.old_resets += conn.reset_count
                self._new((name,))


def reading(seq, up_ms):
    return json.dumps({"v": 1, "node": "bench-node", "seq": seq, "sensor": "room_temp",
                       "value": round(20 + (seq % 97) / 10, 2), "unit": "C", "up_ms": up_ms},
                      separators=(",", ":")).encode()


def run(mode, faults, seconds):
    clock = Clock()
    if mode == "link":
        pair = LinkPair(clock=clock, bytes_per_ms=BYTES_PER_MS, seed=b"bench")
        chan = SecurePair(pair, max_record=MAX_RECORD)
        lines = (pair.ab, pair.ba)
    else:
        chan = BarePair(clock)
        lines = (chan.ab, chan.ba)
    for i, line in enumerate(lines):
        line.fault = FaultModel(seed=11 + i, clock=clock, **faults)
    start = clock.now
    end = start + seconds * 1000
    sent = {}
    queue = []
    dropped = 0
    next_at = start + 1000               # the first second is for the handshake
    seq = 0
    last_delivery = None
    stall = 0
    seen = {}
    corrupted = 0
    delivered_bytes = 0
    cut = faults.get("cut_ms", 0)
    period = faults.get("cut_period_ms", 0)
    # Run on after the last reading so the tail can drain (up to 10 s).
    while clock.now < end + 10000:
        if clock.now >= next_at and clock.now < end:
            rec = reading(seq, clock.now)
            sent[seq] = rec
            queue.append(rec)
            if len(queue) > QUEUE:
                queue.pop(0)
                dropped += 1
            seq += 1
            next_at += INTERVAL_MS
        while queue and chan.send("client", queue[0]):
            queue.pop(0)
        chan.step(1)
        got = chan.received["server"]
        if got:
            for rec in got:
                try:
                    s = json.loads(rec)["seq"]
                except (ValueError, KeyError):
                    corrupted += 1
                    continue
                if sent.get(s) != rec:
                    corrupted += 1
                seen[s] = seen.get(s, 0) + 1
                delivered_bytes += len(rec)
                t = clock.now
                if last_delivery is not None:
                    gap_start = last_delivery
                    if period:
                        # Time the line was cut does not count as a stall.
                        k = (t // period) * period + period - cut
                        if gap_start < k + cut and t > k:
                            gap_start = max(gap_start, k + cut) if t >= k + cut else t
                    stall = max(stall, t - gap_start)
                last_delivery = t
            del got[:]
        if clock.now >= end and not queue and len(seen) == seq:
            break
    lost = sum(1 for s in range(seq) if s not in seen)
    dup = sum(n - 1 for n in seen.values() if n > 1)
    goodput = delivered_bytes / (BYTES_PER_MS * seconds * 1000)
    extra = {}
    if mode == "link":
        extra = dict(retransmits=pair.a.retransmits + pair.b.retransmits,
                     bad_frames=pair.a.bad_frames + pair.b.bad_frames,
                     resets=chan.client.reset_count + chan.server.reset_count)
    else:
        extra = dict(resets=chan.old_resets + chan.client.reset_count + chan.server.reset_count,
                     replaced=chan.replaced)
    damaged = sum(f.flipped + f.cut_bytes for f in (lines[0].fault, lines[1].fault))
    return dict(readings=seq, lost=lost, dropped=dropped, dup=dup, corrupted=corrupted,
                stall_ms=stall, goodput=goodput, damaged=damaged, **extra)


def table(results, seconds):
    rows = ["| line | mode | readings | lost | of which queue overflow | dup | corrupt "
            "| longest stall | goodput | Connection resets | retransmitted frames |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, mode, r in results:
        rows.append("| %s | %s | %d | %d (%.1f %%) | %d | %d | %d | %.2f s | %.1f %% | %d | %s |" % (
            name, mode, r["readings"], r["lost"], 100.0 * r["lost"] / max(1, r["readings"]),
            r["dropped"], r["dup"], r["corrupted"], r["stall_ms"] / 1000.0, 100 * r["goodput"],
            r["resets"], r.get("retransmits", "–")))
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=60, help="simulated seconds of readings")
    ap.add_argument("--markdown", action="store_true", help="print only the markdown table")
    args = ap.parse_args(argv)
    results = []
    t0 = time.monotonic()
    for name, faults in CASES:
        for mode in ("link", "bare"):
            r = run(mode, faults, args.seconds)
            results.append((name, mode, r))
            if not args.markdown:
                print("%-20s %-4s %s" % (name, mode, r), flush=True)
    print(table(results, args.seconds))
    if not args.markdown:
        print("(%d simulated seconds per run, %.0f s wall)" % (args.seconds, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
