# ossuary-plot draws real PNG files from a real SQLite database.

import os
import subprocess
import sys

from host_tools.store import Store
from host_tools.plot import plot_readings

PNG_SIG = b"\x89PNG\r\n\x1a\n"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fill(path):
    st = Store(path)
    for i in range(30):
        st.add(1700000000 + i, "node-a", "aa" * 32, "tcp", {"seq": i, "sensor": "temp", "value": 20 + i * 0.1,
                                                          "unit": "C", "up_ms": i * 1000})
        st.add(1700000000 + i, "node-b", "bb" * 32, "tcp", {"seq": i, "sensor": "hum", "value": 50 - i,
                                                          "unit": "%", "up_ms": i * 1000})
    # a hostile name in an edited database must not escape the output directory
    st.add(1700000000, "../evil", "cc" * 32, "tcp", {"seq": 0, "sensor": "x", "value": 1.0, "unit": "", "up_ms": 0})
    st.close()


def test_plot_writes_png_per_node_and_sensor(tmp_path):
    db = str(tmp_path / "r.db")
    fill(db)
    out = str(tmp_path / "plots")
    written = plot_readings(db, out)
    assert len(written) == 3
    for node, sensor, path, n in written:
        assert os.path.dirname(path) == out
        data = open(path, "rb").read()
        assert data[:8] == PNG_SIG and len(data) > 1000
    counts = {(n, s): c for n, s, _, c in written}
    assert counts[("node-a", "temp")] == 30 and counts[("../evil", "x")] == 1
    only = plot_readings(db, str(tmp_path / "p2"), node="node-b", last=5)
    assert [(n, s, c) for n, s, _, c in only] == [("node-b", "hum", 5)]


def test_plot_cli(tmp_path):
    db = str(tmp_path / "r.db")
    fill(db)
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "host_tools.plot", "--db", db, "--out", str(tmp_path / "o"),
                        "--sensor", "temp"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    path = r.stdout.split()[-1]
    assert open(path, "rb").read(8) == PNG_SIG
    r = subprocess.run([sys.executable, "-m", "host_tools.plot", "--db", str(tmp_path / "none.db")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 5 and "no database" in r.stderr
    r = subprocess.run([sys.executable, "-m", "host_tools.plot", "--db", db, "--node", "zzz",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 6 and "no readings" in r.stderr
