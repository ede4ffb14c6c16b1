# Exactly-once readings over a faulty serial line, end to end: the unix sensor node on the real
# MicroPython interpreter opens one pty, a CPython collector-side peer the other, and
# tests/_faultline.py's relay between them flips bits, drops, duplicates and inserts bytes and
# cuts the line. The node runs the secure channel over the link layer (its default on serial
# transports); the peer is the collector's side of exactly the reading/ack protocol of
# docs/design.md ("Sensor readings"): it stores each (boot, seq) once and acks after storing.
#
# Checked: every reading the node took is stored exactly once, in seq order per boot, none lost
# (the node's `dropped` stays 0); the node kept sampling on schedule through the cut (gaps in
# up_ms); a node reboot mid-stream (new boot id) is served at once, and the readings the first
# boot had stored stay stored once. `make fuzz` (OSSUARY_FUZZ=full) runs a longer, noisier form.

import json
import os
import subprocess
import time

import pytest

from ossuary_micro.link import Link
from ossuary_io.link import LinkStream, LinkReset
from ossuary_io.errors import StreamTimeout
from ossuary_micro.errors import OssuaryError
from tests._faultline import FaultModel, PtyRelay
from tests._nodepeer import Keys, MICROPYTHON, check_reading, clock, server_stream, start_node, \
    write_config

pytestmark = pytest.mark.skipif(not os.path.exists(MICROPYTHON),
                                reason="MicroPython unix port not installed (make venv)")

FULL = os.environ.get("OSSUARY_FUZZ") == "full"
# make fuzz DURATION=S: four seeds share S seconds of node sampling (20 readings/s).
SEEDS = [1, 2, 3, 4] if FULL else [1, 2]
COUNT = int(float(os.environ.get("OSSUARY_FUZZ_DURATION", "60")) * 20 / 4) if FULL else 80


class Collector:
    """The collector's end: a Link on the pty, one SecureStream per node session over it,
    a store keyed by (boot, seq), an ack after each stored reading."""

    def __init__(self, keys, path):
        self.keys = keys
        self.f = open(path, "r+b", buffering=0)
        os.set_blocking(self.f.fileno(), False)
        self.ls = LinkStream(Link(clock), self.f)
        self.stored = {}        # (boot, seq) -> reading
        self.arrivals = []      # (boot, seq) of every reading received, repeats included
        self.sessions = 0
        self.closed = 0
        self._new()

    def _new(self):
        self.s = server_stream(self.keys, self.ls)
        self.sessions += 1

    def run(self, until, timeout_s):
        """Serve until `until()` is true; False if timeout_s passed first."""
        deadline = time.monotonic() + timeout_s
        while not until():
            if time.monotonic() > deadline:
                return False
            try:
                data = self.s.recv(timeout_ms=100)
            except StreamTimeout:
                continue
            except LinkReset:
                self._new()     # the node's link restarted (a reboot): a new session
                continue
            except OssuaryError:
                self._new()     # this session failed: serve the node's next handshake
                continue
            if not data:
                self.closed += 1  # the node said goodbye (max_readings reached)
                self._new()
                continue
            r = json.loads(data)
            check_reading(r)
            key = (r["boot"], r["seq"])
            self.arrivals.append(key)
            self.stored.setdefault(key, r)
            self.s.send(json.dumps({"v": 2, "ack": r["seq"], "boot": r["boot"]}).encode())
        return True

    def by_boot(self):
        out = {}
        for (boot, seq) in self.arrivals:
            if seq not in out.setdefault(boot, []):
                out[boot].append(seq)   # first arrival order = storage order
        return out

    def close(self):
        self.f.close()


def _models(seed, ber, drop, dup, garbage_every):
    return (FaultModel(seed, ber=ber, drop=drop, dup=dup, garbage_every=garbage_every),
            FaultModel(seed + 1, ber=ber, drop=drop, dup=dup, garbage_every=garbage_every))


def _node(tmp_path, keys, path, count, interval=0.05):
    cfg = write_config(str(tmp_path / "node.json"), keys,
                       {"type": "uart", "device": path, "baud": 115200}, max_readings=count,
                       interval_s=interval)
    return start_node(cfg)


def _finished(proc):
    # The node ended by itself (max_readings acknowledged) with status 0: its log.
    proc.wait(15)
    err = _stop(proc)
    assert proc.returncode == 0, err
    return err


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
    try:
        return proc.communicate(timeout=10)[1].decode()
    except subprocess.TimeoutExpired:
        return ""


@pytest.mark.parametrize("seed", SEEDS)
def test_every_reading_stored_exactly_once_through_noise_and_a_cut(tmp_path, seed):
    count = COUNT
    keys = Keys()
    relay = PtyRelay(*_models(seed, ber=1e-3, drop=2e-4, dup=2e-4, garbage_every=3000))
    col = Collector(keys, relay.paths[1])
    proc = _node(tmp_path, keys, relay.paths[0], count)
    err = ""
    try:
        # Let some readings through, then cut the line for 1.5 s in both directions.
        assert col.run(lambda: len(col.stored) >= 15, 60), "no readings through the noise"
        relay.cut = True
        t_cut = time.monotonic()
        while time.monotonic() - t_cut < 1.5:
            col.run(lambda: False, 0.1)
        relay.cut = False
        assert col.run(lambda: len(col.stored) >= count and col.closed, 90 + count / 10), \
            "%d of %d readings stored" % (len(col.stored), count)
        err = _finished(proc)
    finally:
        err = err or _stop(proc)
        col.close()
        relay.close()
    # The line really was bad, and the link repaired it (frames dropped by CRC/COBS checks at
    # the collector's end, the cut crossed).
    f01, f10 = relay.faults
    assert f01.flipped and f10.flipped and f01.dropped + f01.duplicated, (f01.flipped,
                                                                           f10.flipped)
    assert col.ls.link.bad_frames > 0 and col.ls.downs + col.ls.link.retransmits > 0
    boots = col.by_boot()
    assert len(boots) == 1, boots.keys()
    (boot, seqs), = boots.items()
    assert seqs == list(range(count)), seqs            # in order, none lost, none twice
    last = col.stored[(boot, count - 1)]
    assert last["dropped"] == 0
    # The node kept sampling on schedule through noise, retransmissions and the cut: no gap
    # between two readings' uptimes comes near the 1.5 s cut (interval 50 ms).
    ups = [col.stored[(boot, s)]["up_ms"] for s in range(count)]
    gaps = [b - a for a, b in zip(ups, ups[1:])]
    assert max(gaps) < 1000, max(gaps)
    assert "%d readings acknowledged, done" % count in err, err


def test_node_reboot_mid_stream_new_boot_served_at_once(tmp_path):
    keys = Keys()
    relay = PtyRelay(*_models(5, ber=2e-4, drop=0, dup=0, garbage_every=0))
    col = Collector(keys, relay.paths[1])
    proc = _node(tmp_path, keys, relay.paths[0], 0)        # runs until killed
    try:
        assert col.run(lambda: len(col.stored) >= 10, 60)
        proc.kill()                                        # power cut, mid-stream
        proc.wait()
        first = set(col.by_boot())
        stored_before = len(col.stored)
        t0 = time.monotonic()
        proc = _node(tmp_path, keys, relay.paths[0], 20)
        assert col.run(lambda: len(col.by_boot()) == 2, 30), "rebooted node not served"
        back = time.monotonic() - t0
        assert col.run(lambda: col.closed, 60)
        proc.wait(15)
        assert proc.returncode == 0, _stop(proc)
    finally:
        _stop(proc)
        col.close()
        relay.close()
    boots = col.by_boot()
    (old,) = first
    new = [b for b in boots if b != old][0]
    assert old != new
    # The first boot's readings: each stored once, in order, from 0 (what was in flight at
    # the kill is gone with the node's RAM, which is what `dropped` cannot count).
    assert boots[old] == list(range(len(boots[old]))) and len(boots[old]) >= stored_before
    assert boots[new] == list(range(20))
    # Back within MicroPython start-up + handshake: no backoff, no reset round trips.
    assert back < 10, back


def test_collector_link_restart_starts_a_new_session_at_once(tmp_path):
    # The collector's end of the link restarts (a new Link: new nonce) mid-stream. The node
    # sees PEER_RESET (its link discarded both directions' data), ends the session with
    # "link peer restarted" and handshakes again over the same link at once, without the
    # reconnect backoff; readings it had not had acknowledged are sent again in the new
    # session, so none is lost.
    keys = Keys()
    relay = PtyRelay(*_models(7, ber=0, drop=0, dup=0, garbage_every=0))
    col = Collector(keys, relay.paths[1])
    proc = _node(tmp_path, keys, relay.paths[0], 40)
    err = ""
    try:
        assert col.run(lambda: len(col.stored) >= 10, 60), "no readings"
        sessions = col.sessions
        col.ls = LinkStream(Link(clock), col.f)     # the collector's link restarts
        col._new()
        assert col.run(lambda: len(col.stored) >= 40 and col.closed, 60), \
            "%d of 40 readings stored" % len(col.stored)
        assert col.sessions > sessions
        err = _finished(proc)
    finally:
        err = err or _stop(proc)
        col.close()
        relay.close()
    assert "session ended: link peer restarted" in err, err
    assert "reconnect in" not in err, err                # no backoff: the line was fine
    (boot, seqs), = col.by_boot().items()
    assert seqs == list(range(40)), seqs
