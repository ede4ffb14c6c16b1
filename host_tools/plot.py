# ossuary-plot: draw stored readings to one PNG per (node, sensor), with matplotlib's Agg backend.
#
#   ossuary-plot [--db readings.db] [--out plots] [--node NAME] [--sensor NAME] [--last N]
#
# Uses matplotlib.figure.Figure + FigureCanvasAgg directly rather than pyplot: no GUI backend
# is ever touched and no global figure state is kept (it can run inside the collector).
# Exit codes: 0 ok, 2 usage, 5 database problem, 6 nothing to plot.

import argparse
import datetime
import os
import re
import sys

from host_tools.store import StoreError, open_readonly

EXIT_OK = 0
EXIT_DB = 5
EXIT_EMPTY = 6

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _file_part(name):
    # Names were validated on the way in, but the database is just a file someone may edit:
    # never let a name pick a directory.
    s = _SAFE.sub("_", name).strip(".") or "_"
    return s[:40]


def plot_readings(db_path, out_dir, node=None, sensor=None, last=None):
    """Write one PNG per (node, sensor) into out_dir. Returns a list of
    (node, sensor, path, number_of_points). Raises StoreError for a bad database, OSError
    if out_dir cannot be created."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    import matplotlib.dates as mdates

    db = open_readonly(db_path)
    try:
        where, args = [], []
        if node is not None:
            where.append("node=?")
            args.append(node)
        if sensor is not None:
            where.append("sensor=?")
            args.append(sensor)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        pairs = db.execute("SELECT DISTINCT node, sensor FROM readings%s ORDER BY node, sensor"
                           % clause, args).fetchall()
        os.makedirs(out_dir, exist_ok=True)
        written = []
        for n, s in pairs:
            q = "SELECT ts, value, unit FROM readings WHERE node=? AND sensor=? ORDER BY ts, id"
            qargs = [n, s]
            if last:
                q = ("SELECT ts, value, unit FROM (SELECT id, ts, value, unit FROM readings "
                     "WHERE node=? AND sensor=? ORDER BY ts DESC, id DESC LIMIT ?) ORDER BY ts, id")
                qargs.append(int(last))
            rows = db.execute(q, qargs).fetchall()
            if not rows:
                continue
            times = [datetime.datetime.fromtimestamp(r[0], tz=datetime.timezone.utc) for r in rows]
            values = [r[1] for r in rows]
            unit = rows[-1][2]
            fig = Figure(figsize=(8, 4), dpi=100)
            FigureCanvasAgg(fig)
            ax = fig.add_subplot(1, 1, 1)
            ax.plot(times, values, marker="o", markersize=3, linewidth=1.2)
            ax.set_title("%s / %s (%d readings)" % (n, s, len(rows)))
            ax.set_xlabel("time (UTC)")
            ax.set_ylabel("%s [%s]" % (s, unit) if unit else s)
            # The concise formatter picks labels that stay distinct from sub-second spans
            # (the demo) to months (a long-running collector).
            locator = mdates.AutoDateLocator()
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
            ax.grid(True, alpha=0.3)
            fig.tight_layout()
            path = os.path.join(out_dir, "%s__%s.png" % (_file_part(n), _file_part(s)))
            fig.savefig(path, format="png")
            written.append((n, s, path, len(rows)))
        return written
    finally:
        db.close()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="ossuary-plot",
                                 description="Draw stored readings: one PNG per node and sensor.")
    ap.add_argument("--db", default="readings.db", help="SQLite database (default: readings.db)")
    ap.add_argument("--out", default="plots", help="output directory (default: plots)")
    ap.add_argument("--node", help="only this node")
    ap.add_argument("--sensor", help="only this sensor")
    ap.add_argument("--last", type=int, metavar="N", help="only the last N readings per plot")
    args = ap.parse_args(argv)
    if args.last is not None and args.last <= 0:
        ap.error("--last must be > 0")
    try:
        written = plot_readings(args.db, args.out, args.node, args.sensor, args.last)
    except StoreError as e:
        sys.stderr.write("ossuary-plot: error: %s\n" % e)
        return EXIT_DB
    except OSError as e:
        sys.stderr.write("ossuary-plot: error: cannot write plots to %s: %s\n" % (args.out, e.strerror or e))
        return EXIT_DB
    if not written:
        sys.stderr.write("ossuary-plot: error: no readings to plot in %s\n" % args.db)
        return EXIT_EMPTY
    for n, s, path, count in written:
        print("%s %s %d readings -> %s" % (n, s, count, path))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
