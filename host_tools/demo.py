# `make demo`: a simulated sensor node on the real MicroPython interpreter reports to the collector.
#
# No board needed. The pieces are the real ones: ossuary-keygen makes the keys, the node is
# port/unix/main.py running on .venv/bin/micropython with port/common/node.py, its "UART" is
# the slave side of a pty pair from os.openpty(), and the collector (host_tools/collector/,
# the code behind ossuary-collect) serves the master side, pins the node's key on first sight
# (--tofu), stores readings in SQLite and draws a PNG per sensor at the end. The secure channel
# runs over the serial link layer (docs/LINK.md) on both ends, as on a real UART; each reading
# is acknowledged by the collector after it is stored (exactly once, docs/design.md).
#
#   python -m host_tools.demo [--count 20] [--interval 0.2] [--out out/demo] [--timeout S]
#
# Exit codes: 0 done (count reached, or Ctrl-C with at least one reading), 1 the demo did not
# complete (node failed to start, no readings in time), 2 usage.

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tty

from ossuary_micro.keys import format_key
from host_tools.collect import Collector, setup_logging
from host_tools.keygen import create_key_file
from host_tools.keyfile import read_secret_key
from host_tools.known_nodes import KnownNodes
from host_tools.plot import plot_readings
from host_tools.store import Store
from host_tools.collector.sinks import SqliteSink

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_NAME = "demo-node"
# Two simulated sensors, so the plot step has more than one PNG to draw.
SENSORS = [{"type": "sim_temp", "name": "room_temp", "start": 21.0, "step": 0.08},
           {"type": "sim_temp", "name": "greenhouse_temp", "start": 27.5, "step": 0.15}]
# Files this demo owns in its output directory (removed at the start of each run so every
# run starts from nothing: new keys, empty known-nodes file, empty database).
OWN_FILES = ("collector.key", "node.key", "known_nodes", "node_config.json", "readings.db",
             "readings.db-wal", "readings.db-shm")


def find_micropython(explicit=None):
    """Path of the MicroPython unix interpreter `make venv` installs, or None."""
    cands = [explicit] if explicit else [
        os.path.join(os.path.dirname(sys.executable), "micropython"),
        os.path.join(ROOT, ".venv", "bin", "micropython")]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def say(text=""):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _pipe_lines(stream, prefix, sink):
    # Forward the node's stderr line by line (in its own thread: a pipe must keep draining).
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        sink.append(line)
        say("%s%s" % (prefix, line))


def prepare(out):
    os.makedirs(out, exist_ok=True)
    for f in OWN_FILES:
        try:
            os.unlink(os.path.join(out, f))
        except FileNotFoundError:
            pass
    shutil.rmtree(os.path.join(out, "plots"), ignore_errors=True)


def run(count=20, interval=0.2, out=None, timeout=None, micropython=None):
    """Run the demo; returns the exit code. Prints a walkthrough to stdout."""
    out = os.path.abspath(out or os.path.join(ROOT, "out", "demo"))
    mp = find_micropython(micropython)
    if mp is None:
        sys.stderr.write("demo: error: MicroPython unix port not found (.venv/bin/micropython); run `make venv`\n")
        return 1
    node_main = os.path.join(ROOT, "port", "unix", "main.py")
    if not os.path.isfile(node_main):
        sys.stderr.write("demo: error: %s is missing\n" % node_main)
        return 1
    if timeout is None:
        timeout = 30 + count * interval * 2

    prepare(out)
    say("== ossuary-micro demo: one simulated sensor node on MicroPython -> ossuary-collect ==")
    say("output directory: %s" % out)

    # 1. Keys, exactly as `ossuary-keygen PATH` makes them (0600 files, public key printed).
    col_key = os.path.join(out, "collector.key")
    node_key = os.path.join(out, "node.key")
    col_pub = create_key_file(col_key)
    node_pub = create_key_file(node_key)
    say("[1] keys generated (secret key files are mode 0600):")
    say("    collector %s  public %s" % (col_key, format_key(col_pub)))
    say("    node      %s  public %s" % (node_key, format_key(node_pub)))

    # 2. The virtual serial line. Raw mode on the slave before anyone uses it: no echo, no
    #    newline translation (the node's board.py sets raw mode too; this closes the gap
    #    before it opens the line). We keep the slave fd open for the whole run so the pty
    #    lives on even if the node closes and reopens it.
    master, slave = os.openpty()
    tty.setraw(slave)
    slave_path = os.ttyname(slave)
    say("[2] virtual serial line: pty pair, node opens %s, collector holds the master side;"
        " both run the link layer on it (CRC-32 + COBS frames, retransmission)" % slave_path)

    # 3. The node's config: the collector's public key is what the node trusts.
    cfg = {"name": NODE_NAME,
           "transport": {"type": "uart", "device": slave_path, "baud": 115200, "link": True},
           "interval_s": interval,
           "secret_key_file": node_key,
           "collector_key": format_key(col_pub),
           "sensors": SENSORS,
           "max_readings": count,
           "retry_min_ms": 200}
    cfg_path = os.path.join(out, "node_config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=1)
    say("[3] node config %s (name %s, %d readings, every %g s per sensor round)"
        % (cfg_path, NODE_NAME, count, interval))

    # 4. The collector: known-nodes file empty, trust on first use on, SQLite store.
    setup_logging("info", "text")
    known = KnownNodes(os.path.join(out, "known_nodes"))
    db_path = os.path.join(out, "readings.db")
    store = Store(db_path)
    received = []

    first = []

    def show(node, source, reading):
        if not received:
            first.append(time.monotonic())
        received.append(reading)
        say("    reading %3d  %-10s seq=%-3d %-16s %8.2f %s" % (
            len(received), node, reading["seq"], reading["sensor"], reading["value"], reading["unit"]))

    col = Collector(read_secret_key(col_key), known, SqliteSink(store), tofu=True, max_readings=count,
                    on_reading=show)
    col.add_fd(master, "pty:" + slave_path, link=True)
    say("[4] collector running (AUTH_SERVER, --tofu, db %s); log lines go to stderr" % db_path)

    # 5. The node on the real MicroPython interpreter.
    say("[5] starting the node: %s port/unix/main.py %s" % (os.path.relpath(mp, ROOT), cfg_path))
    node_log = []
    proc = subprocess.Popen([mp, node_main, cfg_path], cwd=out, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pump = threading.Thread(target=_pipe_lines, args=(proc.stdout, "    node | ", node_log), daemon=True)
    pump.start()

    # Ctrl-C sets a flag rather than raising KeyboardInterrupt somewhere in the wind-down;
    # in a terminal the node (same process group) gets the SIGINT too and exits on its own.
    stop = threading.Event()
    old_handler = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    t0 = time.monotonic()
    while not col.done_event.is_set() and not stop.is_set():
        if proc.poll() is not None and proc.returncode != 0:
            break
        if time.monotonic() - t0 > timeout:
            say("demo: timed out after %.0f s" % timeout)
            break
        stop.wait(0.1)
    interrupted = stop.is_set()
    if interrupted:
        say("\n[Ctrl-C] stopping")
    elapsed = time.monotonic() - t0

    # 6. Wind down: the node ends by itself after max_readings (it sends Disconnect); give it
    #    a moment, then interrupt it. The collector stops its source threads.
    try:
        proc.wait(timeout=0.2 if interrupted else 3)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    col.stop()
    store.close()
    pump.join(2)
    os.close(master)
    os.close(slave)
    signal.signal(signal.SIGINT, old_handler)

    say("")
    say(col.summary())
    say("node exit status: %s" % proc.returncode)
    if first:
        say("node start -> first stored reading (MicroPython start-up + handshake): %.2f s"
            % (first[0] - t0))
    pinned = known.by_name(NODE_NAME)
    if pinned is not None:
        say("known-nodes %s now pins %s -> %s" % (known.path, NODE_NAME, pinned.key_hex))
    plots = []
    if col.stored:
        for node, sensor, path, n in plot_readings(db_path, os.path.join(out, "plots")):
            plots.append(path)
            say("plot: %s / %s, %d readings -> %s" % (node, sensor, n, path))
    ok = col.stored >= count or (interrupted and col.stored > 0)
    if col.stored and ok:
        rate = col.stored / elapsed if elapsed > 0 else 0.0
        say("")
        say(walkthrough(out, slave_path, col.stored, elapsed, rate, plots))
        return 0
    sys.stderr.write("demo: error: %d of %d readings arrived; node output above%s\n"
                     % (col.stored, count, "" if node_log else " (the node printed nothing)"))
    return 1


def walkthrough(out, slave_path, stored, elapsed, rate, plots):
    return "\n".join([
        "What just happened:",
        "  1. ossuary-keygen code made two Ed25519 key pairs: the collector's and the node's",
        "     (secret key files, mode 0600, in %s)." % out,
        "  2. A pty pair became a virtual serial cable; the node opened %s as its UART." % slave_path,
        "  3. The node, running on the real MicroPython unix port, did the Ossuary handshake as",
        "     the client: X25519 key exchange, the collector proved its key (the one in the",
        "     node's config), the node proved its own.",
        "  4. The collector did not know the node's key. With --tofu it accepted it, waited for",
        "     the first reading to learn the node's name, and pinned name + key in known_nodes.",
        "     A different key under the same name would now be refused loudly.",
        "  5. Each reading travelled as one ChaCha20-Poly1305 record holding one JSON object,",
        "     inside link-layer frames that a noisy line would have retransmitted; the collector",
        "     validated it, stored it in SQLite once (key: node, boot id, seq) and acknowledged",
        "     it, and only then did the node drop it from its queue (%d readings in %.1f s, %.1f/s)."
        % (stored, elapsed, rate),
        "  6. After its last reading the node closed the session; the collector printed the",
        "     summary above and drew %d PNG plot(s)." % len(plots),
        "Look at the data:  sqlite3 %s 'SELECT node, seq, sensor, value FROM readings'"
        % os.path.join(out, "readings.db"),
        "Again by hand:     ossuary-collect --key %s --known-nodes %s --db %s PORT"
        % (os.path.join(out, "collector.key"), os.path.join(out, "known_nodes"),
           os.path.join(out, "readings.db")),
    ])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.demo",
                                 description="Simulated MicroPython sensor node -> collector over a pty.")
    ap.add_argument("--count", type=int, default=20, help="readings to collect (default 20)")
    ap.add_argument("--interval", type=float, default=0.2,
                    help="node sampling interval in seconds (default 0.2)")
    ap.add_argument("--out", help="output directory (default out/demo in the checkout)")
    ap.add_argument("--timeout", type=float, help="give up after this many seconds")
    ap.add_argument("--micropython", help="MicroPython unix interpreter to run the node with")
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error("--count must be >= 1")
    if not 0.05 <= args.interval <= 60:
        ap.error("--interval must be 0.05..60 seconds")
    return run(args.count, args.interval, args.out, args.timeout, args.micropython)


if __name__ == "__main__":
    sys.exit(main())
