# The ossuary-collect command line: options, start-up checks (one line and a distinct exit code
# for each kind of failure), signals, the summary at the end.
#
#   ossuary-collect [options] [PORT ...]        PORT: a device path or any pyserial URL
#   ossuary-collect known [-f FILE] list | add NAME HEX | remove NAME
#
# Exit codes: 0 done (also after Ctrl-C / SIGTERM), 2 usage, 3 key file, 4 known-nodes file,
# 5 database, 6 no source could be set up (TCP listen failed), 7 MQTT broker or outbox.

import argparse
import logging
import signal
import sys
import threading

from ossuary_micro.errors import OssuaryError
from ossuary_micro.keys import format_key
from ossuary_micro.wire import MAX_RECORD
from host_tools import known_nodes
from host_tools.known_nodes import KnownNodes, KnownNodesError
from host_tools.store import StoreError, LineWriter
from host_tools.collector import fleet
from host_tools.collector.logs import event, setup_logging
from host_tools.collector.session import NODE_MAX_RECORD
from host_tools.collector.core import (Collector, MAX_TCP_CLIENTS, MAX_TCP_PENDING,
                                       MAX_TCP_PENDING_PER_ADDRESS, TCP_HANDSHAKE_TIMEOUT_S,
                                       TOFU_MAX_PER_SOURCE, TOFU_MAX_TOTAL, TOFU_RATE_PER_MIN)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_KEYFILE = 3
EXIT_KNOWN = 4
EXIT_DB = 5
EXIT_SOURCE = 6


def _parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "0.0.0.0", text
    host = host.strip("[]") or "0.0.0.0"
    try:
        p = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("--listen wants HOST:PORT or PORT")
    if not 0 <= p <= 65535:
        raise argparse.ArgumentTypeError("port must be 0..65535")
    return host, p


def _int_range(lo, hi):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("expected an integer")
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError("must be %d..%d" % (lo, hi))
        return v
    return parse


def build_parser():
    ap = argparse.ArgumentParser(
        prog="ossuary-collect",
        description="Collect sensor readings from Ossuary nodes over serial ports and/or TCP "
                    "into SQLite. `ossuary-collect known list|add|remove` manages the known-nodes file.")
    ap.add_argument("ports", nargs="*", metavar="PORT",
                    help="serial device path or pyserial URL (rfc2217://, socket://, loop://)")
    ap.add_argument("--listen", type=_parse_listen, action="append", default=[], metavar="HOST:PORT",
                    help="accept nodes over TCP (repeatable)")
    ap.add_argument("--baud", type=int, default=115200, help="serial baud rate (default 115200)")
    ap.add_argument("--link", choices=("on", "off"), default="on",
                    help="serial ports carry the link layer (docs/LINK.md: resynchronising frames, "
                         "retransmission) under the secure channel; off for peers that speak bare "
                         "protocol 1 on the line, such as libossuary (default on; never used over TCP)")
    ap.add_argument("--protocol", choices=("any", "1", "2"), default="any",
                    help="wire protocols served: any (default: each connection's first packet says "
                         "which), 1 (libossuary 0.5.1 only) or 2 (Noise XX only; docs/PROTOCOL.md)")
    ap.add_argument("--key", default="collector.key", help="collector secret key file (default collector.key)")
    ap.add_argument("--init", action="store_true", help="create the key file if it does not exist")
    ap.add_argument("--known-nodes", default=known_nodes.DEFAULT_PATH,
                    help="known-nodes file (default ./%s)" % known_nodes.DEFAULT_PATH)
    ap.add_argument("--tofu", action="store_true",
                    help="trust on first use: pin the key of a node seen for the first time")
    ap.add_argument("--db", default="readings.db",
                    help="SQLite database file, or a postgresql://USER@HOST/DB URL (default readings.db)")
    ap.add_argument("--output", choices=("jsonl", "csv"), help="also write readings to stdout")
    ap.add_argument("--count", type=int, default=0, metavar="N", help="stop after N readings")
    ap.add_argument("--plot", metavar="DIR", help="on exit, draw one PNG per node and sensor into DIR")
    lim = ap.add_argument_group("limits (README: \"Limits\")")
    lim.add_argument("--max-record", type=_int_range(16, MAX_RECORD), default=NODE_MAX_RECORD, metavar="BYTES",
                     help="largest reading record accepted (default %d; a longer length field "
                          "fails the session at once)" % NODE_MAX_RECORD)
    lim.add_argument("--tcp-max-clients", type=_int_range(1, 100000), default=MAX_TCP_CLIENTS, metavar="N",
                     help="concurrent TCP connections (default %d)" % MAX_TCP_CLIENTS)
    lim.add_argument("--tcp-max-pending", type=_int_range(1, 100000), default=MAX_TCP_PENDING, metavar="N",
                     help="of which not yet identified; beyond it the oldest such one is dropped "
                          "(default %d)" % MAX_TCP_PENDING)
    lim.add_argument("--tcp-max-pending-per-address", type=_int_range(1, 100000),
                     default=MAX_TCP_PENDING_PER_ADDRESS, metavar="N",
                     help="not yet identified connections per IP address (default %d)"
                          % MAX_TCP_PENDING_PER_ADDRESS)
    lim.add_argument("--tcp-handshake-timeout", type=float, default=TCP_HANDSHAKE_TIMEOUT_S, metavar="SECONDS",
                     help="a TCP peer must complete its handshake within this (default %g)"
                          % TCP_HANDSHAKE_TIMEOUT_S)
    lim.add_argument("--tofu-max-per-source", type=_int_range(0, 1 << 20), default=TOFU_MAX_PER_SOURCE,
                     metavar="N", help="TOFU pins per serial port or TCP peer address per run (default %d)"
                                       % TOFU_MAX_PER_SOURCE)
    lim.add_argument("--tofu-max-total", type=_int_range(0, 1 << 20), default=TOFU_MAX_TOTAL, metavar="N",
                     help="TOFU pins per run (default %d)" % TOFU_MAX_TOTAL)
    lim.add_argument("--tofu-rate", type=float, default=TOFU_RATE_PER_MIN, metavar="PER_MIN",
                     help="TOFU pins per minute, as a burst that refills (default %d)" % TOFU_RATE_PER_MIN)
    fleet.add_options(ap)
    ap.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    ap.add_argument("--log-format", default="text", choices=("text", "json"))
    return ap


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "known":
        return known_nodes.known_command(argv[1:], prog="ossuary-collect known")
    ap = build_parser()
    args = ap.parse_args(argv)
    if not args.ports and not args.listen:
        ap.error("give at least one serial PORT or --listen HOST:PORT")
    if args.count < 0:
        ap.error("--count must be >= 0")
    if args.tcp_handshake_timeout <= 0 or args.tofu_rate < 0:
        ap.error("--tcp-handshake-timeout must be positive and --tofu-rate not negative")
    setup_logging(args.log_level, args.log_format)

    def fail(code, msg):
        sys.stderr.write("ossuary-collect: error: %s\n" % msg)
        return code

    from host_tools.keygen import load_or_create
    from host_tools.keyfile import KeyFileError
    try:
        seed, public, created = load_or_create(
            args.key, create=args.init,
            log=lambda m: event(logging.WARNING, "key_permissions", m, path=args.key))
    except KeyFileError as e:
        return fail(EXIT_KEYFILE, str(e))
    except OssuaryError as e:
        return fail(EXIT_KEYFILE, "cannot create key file %s: %s" % (args.key, e))
    event(logging.INFO, "collector_key", "put this public key in each node's config as collector_key",
          path=args.key, created=created, public_key=format_key(public))
    try:
        known = KnownNodes(args.known_nodes)
    except KnownNodesError as e:
        return fail(EXIT_KNOWN, str(e))
    try:
        sink = fleet.open_sink(args)
    except fleet.StartupError as e:
        return fail(e.code, str(e))
    writer = LineWriter(sys.stdout, args.output) if args.output else None
    col = Collector(seed, known, sink, tofu=args.tofu, writer=writer, max_readings=args.count,
                    log_readings=writer is None)
    col.max_record = args.max_record
    col.tcp_max_clients = args.tcp_max_clients
    col.tcp_max_pending = args.tcp_max_pending
    col.tcp_max_pending_per_address = args.tcp_max_pending_per_address
    col.tcp_handshake_timeout = args.tcp_handshake_timeout
    col.tofu_max_per_source = args.tofu_max_per_source
    col.tofu_max_total = args.tofu_max_total
    col.tofu_rate = args.tofu_rate
    col.protocol = args.protocol

    # Ctrl-C and SIGTERM only set a flag: threads finish their current step and the summary
    # is printed. A second Ctrl-C while stopping is ignored (the stop is bounded anyway).
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    event(logging.INFO, "start", db=sink.name, known_nodes=args.known_nodes,
          nodes=len(known.entries()), tofu=args.tofu, protocol=args.protocol)
    try:
        for host, port in args.listen:
            col.add_tcp(host, port)
    except OSError as e:
        col.stop()
        sink.close()
        return fail(EXIT_SOURCE, "cannot listen on %s:%d: %s" % (host, port, e.strerror or e))
    for url in args.ports:
        col.add_serial(url, args.baud, link=args.link == "on")

    while not stopping.is_set() and not col.done_event.is_set():
        stopping.wait(0.2)
    why = "signal" if stopping.is_set() else "count reached"
    event(logging.INFO, "stopping", reason=why)
    col.stop()
    sink.close()
    sys.stderr.write(col.summary() + "\n")
    if args.plot and not fleet.is_file_db(args.db):
        sys.stderr.write("ossuary-collect: --plot reads a SQLite --db; chart PostgreSQL with "
                         "Grafana (README \"Fleet\")\n")
    elif args.plot:
        from host_tools.plot import plot_readings
        try:
            for node, sensor, path, n in plot_readings(args.db, args.plot):
                sys.stderr.write("plot: %s %s (%d readings) -> %s\n" % (node, sensor, n, path))
        except (StoreError, OSError) as e:
            sys.stderr.write("ossuary-collect: plot failed: %s\n" % e)
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    return EXIT_OK


