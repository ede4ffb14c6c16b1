# The collector's serial ports over the link layer (docs/LINK.md): readings through a faulty
# line (pty relay flipping, dropping and duplicating bytes, with garbage bursts) arrive exactly
# once with no secure-session reset, and a node that reboots (a new link session) is served at
# once. Real ptys, real pyserial, real SQLite; the node is tests/test_collect_readings.V2Node
# over ossuary_io.LinkStream.

import os
import select
import time

import serial

from ossuary_micro.link import Link
from ossuary_io.link import LinkStream
from tests._faultline import FaultModel, PtyRelay
from tests.test_collect import env, logs, events  # noqa: F401 (fixtures)
from tests.test_collect_readings import V2Node, keys_of


def clock():
    return int(time.monotonic() * 1000)


class FdPort:
    """A pty master as a non-blocking port for LinkStream (any / read / write)."""

    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd

    def any(self):
        return 4096 if select.select([self.fd], [], [], 0)[0] else 0

    def read(self, n):
        return os.read(self.fd, n)

    def write(self, data):
        return os.write(self.fd, data)

    def close(self):
        pass


class LinkedPort:
    """The node's serial port (a device path, or a pty master fd) with the link layer on it,
    as V2Node's link (read / write)."""

    def __init__(self, port):
        self.port = FdPort(port) if isinstance(port, int) else serial.Serial(port, 115200, timeout=0)
        self.boot()

    def boot(self):
        # A node's start: a new link session on the same port.
        self.stream = LinkStream(Link(clock), self.port)

    def read(self, timeout):
        end = time.monotonic() + timeout
        while True:
            data = self.stream.read()
            if data or time.monotonic() >= end:
                return data
            select.select([self.port.fileno()], [], [], 0.005)

    def write(self, data):
        mv = memoryview(bytes(data))
        end = time.monotonic() + 20
        while mv:
            mv = mv[self.stream.write(mv):]
            if mv:
                assert time.monotonic() < end, "link window stayed full"
                select.select([self.port.fileno()], [], [], 0.005)

    def close(self):
        self.port.close()


def serve(e, path):
    e.col.add_serial(path, 115200, link=True)
    end = time.monotonic() + 10
    while path not in e.col.sources or e.col.sources[path].opens == 0:
        assert time.monotonic() < end, "the collector did not open the port"
        time.sleep(0.01)


def test_readings_cross_a_faulty_line_exactly_once_without_a_session_reset(env):
    e = env()
    faults = dict(ber=1e-4, drop=1e-4, dup=1e-4, garbage_every=3000, garbage_len=20)
    with PtyRelay(FaultModel(11, **faults), FaultModel(12, **faults)) as relay:
        serve(e, relay.paths[1])
        seed, _ = e.node_key("noisy")
        node = V2Node("noisy", seed)
        port = LinkedPort(relay.paths[0])
        try:
            node.connect(port, e.pub, timeout=20)
            for _ in range(150):            # ~ 40 readings/s, sending before acks come
                node.take(1)
                node.send([node.queue[-1][1]])
                node.pump(0.025)
            node.wait_acked(timeout=30)
        finally:
            port.close()
        hits = sum(f.flipped + f.dropped + f.duplicated + f.garbage for f in relay.faults)
    assert hits > 0, "the relay injected no fault"
    assert keys_of(e) == [(node.boot, s) for s in range(150)]
    src = e.col.sources[relay.paths[1]]
    assert src.resets == 0 and src.sessions == 1, "the link did not hide the line errors"
    retrans, bad, restarts = src.link_counters()
    assert retrans + bad > 0 and restarts == 0
    assert "link layer on %s: retransmitted frames" % relay.paths[1] in e.col.summary()


def test_node_reboot_on_a_linked_line_is_served_at_once(env, logs):
    e = env()
    with PtyRelay(FaultModel(1), FaultModel(2)) as relay:
        serve(e, relay.paths[1])
        seed, _ = e.node_key("booter")
        port = LinkedPort(relay.paths[0])
        boots = []
        try:
            for i in range(4):
                t_boot = time.monotonic()
                if i:
                    port.boot()             # power cut and restart: new link session
                node = V2Node("booter", seed)
                boots.append(node.boot)
                node.take(2)
                node.connect(port, e.pub)
                node.send_queue()
                node.wait_acked()
                first = e.rows("SELECT min(ts) FROM readings WHERE boot='%s'" % node.boot)[0][0]
                assert first is not None
                # Boot to first stored reading, including the new link session's sync.
                assert time.monotonic() - t_boot < 2.0, "boot %d took too long" % i
        finally:
            port.close()
    assert keys_of(e) == [(b, s) for b in boots for s in range(2)]
    src = e.col.sources[relay.paths[1]]
    assert src.link_counters()[2] == 3 and len(events(logs, "link_restarted")) == 3


def test_cli_link_option_on_by_default_and_off_for_bare_peers(tmp_path):
    import signal
    import sqlite3
    import tty
    from ossuary_micro.keys import generate_keypair
    from host_tools.known_nodes import KnownNodes
    from tests.test_collect import FdLink
    from tests.test_collect_cli import start
    seed, npub = generate_keypair()
    KnownNodes(str(tmp_path / "kn")).add("cli", npub)
    for mode in ("on", "off"):
        master, slave = os.openpty()
        tty.setraw(slave)
        extra = () if mode == "on" else ("--link", "off")
        p, cpub, _ = start(tmp_path, "--init", "--listen", "127.0.0.1:0", os.ttyname(slave), *extra)
        try:
            link = LinkedPort(master) if mode == "on" else FdLink(master)
            opened = ""
            while "port_open" not in opened:   # pyserial's open flushes what came before
                opened = p.stderr.readline()
                assert opened, "the collector exited"
            node = V2Node("cli", seed)
            node.take(3)
            node.connect(link, cpub)
            node.send_queue()
            node.wait_acked()
            p.send_signal(signal.SIGINT)
            err = p.communicate(timeout=20)[1]
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            if mode == "on":
                link.close()
            os.close(master)
            os.close(slave)
        assert p.returncode == 0, err
        assert ("link=%s" % mode) in opened
        assert ("link layer on" in err) == (mode == "on")
        db = sqlite3.connect(str(tmp_path / "r.db"))
        assert db.execute("SELECT count(*) FROM readings WHERE boot=?", (node.boot,)).fetchone()[0] == 3
        db.close()
