#!/usr/bin/env python3
"""One collector, 64 nodes over TCP: readings per second into SQLite, PostgreSQL and MQTT.

  .venv/bin/python bench/fleet_bench.py [--seconds 10] [--nodes 64] [--markdown]

ossuary-collect runs as a process, as in production. The 64 nodes are tests/
test_collect_readings.V2Node (the v2 reading protocol over a real protocol-1 Connection,
CPython backend) in 2 load processes of 32 threads; each node sends its readings in windows
of --window and waits for the ack before the next, so the rate is what the collector
commits and acknowledges, end to end. Per target:
  * sqlite      --db FILE
  * postgres    --db postgresql://... on a throw-away cluster (initdb/pg_ctl; skipped, saying
                why, when absent)
  * mqtt        --db FILE --mqtt to an amqtt broker (a second run against Mosquitto when it is
                installed); "published/s" counts readings a subscriber received, up to the
                moment the outbox was drained
The collector's CPU (user+system seconds per wall second, from /proc via psutil) and its peak
RSS are sampled during the run. Everything shares this machine's cores with the load
processes and the servers, so the figures are a floor, not the collector's ceiling.
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import psutil  # noqa: E402

from ossuary_micro.keys import generate_keypair, format_key  # noqa: E402
from host_tools.known_nodes import KnownNodes  # noqa: E402
from tests._fleet import (AmqttBroker, MosquittoBroker, CollectorProc, PgCluster, Subscriber,  # noqa: E402
                          pg_bin, mosquitto_missing, wait_for)


def _load(port, cpub, seeds, seconds, window, out):
    # One load process: a thread per node, windows of readings, each window acked.
    from tests.test_collect import SockLink
    from tests.test_collect_readings import V2Node
    counts = []
    errors = []

    def run(name, seed):
        n = V2Node(name, seed)
        try:
            n.connect(SockLink(("127.0.0.1", port)), cpub, timeout=60)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                n.take(window)
                n.send_queue()
                n.wait_acked(timeout=60)
            counts.append(n.seq)
            n.link.close()
        except Exception as e:       # reported, the others go on
            errors.append("%s: %r" % (name, e))
    threads = [threading.Thread(target=run, args=a) for a in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((sum(counts), errors))


def run_target(name, db, extra, nodes, seconds, window, workdir, broker=None):
    known = os.path.join(workdir, "known_nodes")
    kn = KnownNodes(known)
    seeds = []
    for i in range(nodes):
        seed, pub = generate_keypair()
        kn.add("bench%02d" % i, pub)
        seeds.append(("bench%02d" % i, seed))
    # Our own collector key, so the collector can log at WARNING (no line per reading).
    cseed, cpub = generate_keypair()
    keyfile = os.path.join(workdir, "c.key")
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (format_key(cseed) + "\n").encode())
    os.close(fd)
    # All 64 nodes come from 127.0.0.1 at once: lift the per-address cap on unidentified peers.
    col = CollectorProc(os.path.join(workdir, name), keyfile, known, db, "--log-level", "warning",
                        "--tcp-max-pending-per-address", str(nodes), *extra)
    sub = Subscriber(broker.port, client_id="bench-sub") if broker else None
    col.start(wait_log=False)
    try:
        proc = psutil.Process(col.proc.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        q = multiprocessing.Queue()
        half = len(seeds) // 2
        loads = [multiprocessing.Process(target=_load, args=(col.port, cpub, part, seconds, window, q))
                 for part in (seeds[:half], seeds[half:])]
        t0 = time.monotonic()
        for p in loads:
            p.start()
        rss = 0
        while any(p.is_alive() for p in loads):
            rss = max(rss, proc.memory_info().rss)
            time.sleep(0.2)
        stored, errors = 0, []
        for _ in loads:
            s, e = q.get(timeout=60)
            stored += s
            errors += e
        wall = time.monotonic() - t0
        published = None
        if sub is not None:
            wait_for(lambda: len(sub.keys()) >= stored, 600, "the subscriber to get every reading")
            published = (len(sub.keys()), time.monotonic() - t0)
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        rss = max(rss, proc.memory_info().rss)
    finally:
        rc, log = col.stop()
        if sub is not None:
            sub.close()
    return {"target": name, "nodes": nodes, "stored": stored, "wall": wall, "rate": stored / wall,
            "cpu": cpu / (published[1] if published else wall), "rss": rss, "errors": errors,
            "published": published, "rc": rc}


def table(rows, markdown):
    head = ("target", "nodes", "readings acked", "s", "acked/s", "published/s", "collector CPU",
            "collector RSS (MiB)")
    lines = []
    if markdown:
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
    else:
        lines.append("  ".join(head))
    for r in rows:
        if "skipped" in r:
            cells = (r["target"], "-", "-", "-", "skipped: " + r["skipped"], "-", "-", "-")
        else:
            pub = "%.0f" % (r["published"][0] / r["published"][1]) if r["published"] else "-"
            cells = (r["target"], str(r["nodes"]), str(r["stored"]), "%.1f" % r["wall"], "%.0f" % r["rate"],
                     pub, "%.0f%% of a core" % (100 * r["cpu"]), "%.1f" % (r["rss"] / 2 ** 20))
        lines.append(("| " + " | ".join(cells) + " |") if markdown else "  ".join(cells))
    for r in rows:
        for e in r.get("errors", [])[:5]:
            lines.append("  error in %s: %s" % (r["target"], e))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--window", type=int, default=16, help="readings a node sends per ack (default 16)")
    ap.add_argument("--only", default="sqlite,postgres,mqtt")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    only = args.only.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        def go(name, db, extra=(), broker=None):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            rows.append(run_target(name, db, list(extra), args.nodes, args.seconds, args.window, d, broker))
            print(table(rows[-1:], False).splitlines()[-1], file=sys.stderr)

        if "sqlite" in only:
            go("sqlite", os.path.join(tmp, "r.db"))
        if "postgres" in only:
            if pg_bin() is None:
                rows.append({"target": "postgres", "skipped": "no initdb/pg_ctl on this machine"})
            else:
                pg = PgCluster()
                try:
                    go("postgres", pg.create_db("bench"))
                finally:
                    pg.destroy()
        if "mqtt" in only:
            kinds = [("mqtt (amqtt)", AmqttBroker)]
            if mosquitto_missing() is None:
                kinds.append(("mqtt (mosquitto)", MosquittoBroker))
            else:
                rows.append({"target": "mqtt (mosquitto)", "skipped": mosquitto_missing()})
            for label, cls in kinds:
                broker = cls(os.path.join(tmp, "broker-" + cls.kind)).start()
                try:
                    go(label, os.path.join(tmp, "m-%s.db" % cls.kind),
                       ["--mqtt", "mqtt://127.0.0.1:%d" % broker.port], broker)
                finally:
                    broker.stop()
    print(table(rows, args.markdown))
    return 0 if all(not r.get("errors") and r.get("rc", 0) == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
