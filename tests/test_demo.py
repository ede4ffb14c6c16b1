# `make demo`'s module end to end: a node on the real MicroPython unix port, a pty, the
# collector, SQLite and the PNG plots; and its Ctrl-C path.

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from host_tools.demo import find_micropython
from host_tools.known_nodes import KnownNodes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIG = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(find_micropython() is None, reason="needs .venv/bin/micropython (make venv)")
# The demo's node speaks v2 readings over the link layer; the collector side of both (acks,
# the link on a pty) is helper E's host_tools/collector/ (branch wip-e). Until that is merged
# the demo cannot complete on this branch.
try:
    import host_tools.collector  # noqa: F401
    _COLLECTOR_V2 = True
except ImportError:
    _COLLECTOR_V2 = False
pytestmark = [pytestmark, pytest.mark.skipif(
    not _COLLECTOR_V2, reason="needs the v2/link collector (host_tools/collector/, branch wip-e)")]


def test_demo_end_to_end(tmp_path):
    out = str(tmp_path / "demo")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "host_tools.demo", "--count", "6", "--interval", "0.1",
                        "--out", out, "--timeout", "60"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert took < 60
    text = r.stdout
    assert "What just happened" in text and "6 readings stored" in text
    assert text.count("    reading ") == 6
    assert "key_pinned" in r.stderr and "demo-node" in r.stderr
    db = sqlite3.connect(os.path.join(out, "readings.db"))
    rows = db.execute("SELECT node, seq, sensor, node_key FROM readings ORDER BY id").fetchall()
    db.close()
    assert [x[1] for x in rows] == [0, 1, 2, 3, 4, 5]
    assert {x[2] for x in rows} == {"room_temp", "greenhouse_temp"}
    pinned = KnownNodes(os.path.join(out, "known_nodes")).by_name("demo-node")
    assert pinned is not None and {x[3] for x in rows} == {pinned.key_hex}
    for k in ("collector.key", "node.key"):
        assert stat.S_IMODE(os.stat(os.path.join(out, k)).st_mode) == 0o600
    pngs = [l.split("-> ")[1] for l in text.splitlines() if l.startswith("plot: ")]
    assert len(pngs) == 2
    for p in pngs:
        data = open(p, "rb").read()
        assert data[:8] == PNG_SIG and len(data) > 1000


def test_demo_ctrl_c_gives_summary_and_plot(tmp_path):
    out = str(tmp_path / "demo")
    p = subprocess.Popen([sys.executable, "-u", "-m", "host_tools.demo", "--count", "100000", "--interval", "0.1",
                          "--out", out], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = 0
        deadline = time.monotonic() + 60
        while seen < 4 and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith("    reading "):
                seen += 1
        assert seen == 4
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "[Ctrl-C] stopping" in rest and "summary" in rest and "plot: " in rest
