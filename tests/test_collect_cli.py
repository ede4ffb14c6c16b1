# ossuary-collect as a process: Ctrl-C (SIGINT) gives a summary and exit 0, --count and
# --output, --init, and one-line errors with distinct exit codes.

import json
import os
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time

from ossuary_micro.keys import generate_keypair, parse_key
from host_tools.known_nodes import KnownNodes
from tests.test_collect import SimNode, SockLink, reading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")


def collect_cmd(tmp_path, *extra):
    return [sys.executable, "-m", "host_tools.collect", "--key", str(tmp_path / "c.key"),
            "--known-nodes", str(tmp_path / "kn"), "--db", str(tmp_path / "r.db")] + list(extra)


def start(tmp_path, *extra):
    p = subprocess.Popen(collect_cmd(tmp_path, *extra), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV)
    pub = port = None
    deadline = time.monotonic() + 30
    while (pub is None or port is None) and time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        m = re.search(r"public_key=([0-9a-f]{64})", line)
        if m:
            pub = parse_key(m.group(1))
        m = re.search(r"listening .*port=(\d+)", line)
        if m:
            port = int(m.group(1))
    assert pub is not None and port is not None, "collector did not start"
    return p, pub, port


def test_sigint_gives_summary_and_exit_0(tmp_path):
    seed, npub = generate_keypair()
    KnownNodes(str(tmp_path / "kn")).add("n1", npub)
    p, cpub, port = start(tmp_path, "--init", "--listen", "127.0.0.1:0")
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "c.key").st_mode) == 0o600
        node = SimNode(SockLink(("127.0.0.1", port)), seed, cpub, [reading("n1", s) for s in range(4)],
                       disconnect=False, linger=20)
        node.start()
        deadline = time.monotonic() + 20
        n = 0
        while time.monotonic() < deadline and n < 4:
            time.sleep(0.1)
            if os.path.exists(tmp_path / "r.db"):
                db = sqlite3.connect(str(tmp_path / "r.db"))
                n = db.execute("SELECT count(*) FROM readings").fetchone()[0]
                db.close()
        assert n == 4
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
        assert time.monotonic() - t0 < 10
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "stopping reason=signal" in err
    assert "ossuary-collect summary: 4 readings stored" in err
    assert re.search(r"node n1 +key [0-9a-f]{16}\.\.  readings 4  boots 0  seq 0\.\.3", err)
    node.join(5)
    assert node.told                # the node was told: clean Disconnect on the way out
    assert "Traceback" not in err


def test_count_and_jsonl_output_and_plot(tmp_path):
    seed, npub = generate_keypair()
    p, cpub, port = start(tmp_path, "--init", "--tofu", "--listen", "127.0.0.1:0", "--count", "3",
                          "--output", "jsonl", "--plot", str(tmp_path / "plots"))
    try:
        node = SimNode(SockLink(("127.0.0.1", port)), seed, cpub, [reading("fresh", s, 5.5) for s in range(3)],
                       disconnect=False, linger=5)
        node.start()
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    rows = [json.loads(l) for l in out.splitlines()]
    assert [r["seq"] for r in rows] == [0, 1, 2]
    assert rows[0]["node"] == "fresh" and rows[0]["value"] == 5.5 and rows[0]["source"].startswith("tcp:")
    assert "key_pinned" in err and "stopping reason=\"count reached\"" in err
    png = re.search(r"-> (\S+\.png)", err).group(1)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_csv_output(tmp_path):
    seed, npub = generate_keypair()
    KnownNodes(str(tmp_path / "kn")).add("c1", npub)
    p, cpub, port = start(tmp_path, "--init", "--listen", "127.0.0.1:0", "--count", "2", "--output", "csv")
    try:
        SimNode(SockLink(("127.0.0.1", port)), seed, cpub, [reading("c1", s) for s in range(2)],
                disconnect=False, linger=5).start()
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    lines = out.splitlines()
    assert lines[0] == "ts,node,node_key,source,seq,sensor,value,unit,up_ms,boot"
    assert len(lines) == 3 and lines[1].split(",")[1] == "c1"


def run_collect(tmp_path, *extra):
    return subprocess.run(collect_cmd(tmp_path, *extra), capture_output=True, text=True, env=ENV, timeout=60)


def test_startup_errors_are_one_line_with_distinct_codes(tmp_path):
    r = run_collect(tmp_path, "--listen", "127.0.0.1:0")
    assert r.returncode == 3 and "no key file" in r.stderr and "--init" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    r = run_collect(tmp_path)
    assert r.returncode == 2
    (tmp_path / "kn").write_text("this line is broken\n")
    r = run_collect(tmp_path, "--init", "--listen", "127.0.0.1:0")
    assert r.returncode == 4 and "line 1" in r.stderr
    os.unlink(tmp_path / "kn")
    (tmp_path / "r.db").write_bytes(b"not a database at all" * 50)
    r = run_collect(tmp_path, "--init", "--listen", "127.0.0.1:0")
    assert r.returncode == 5 and "database" in r.stderr
    os.unlink(tmp_path / "r.db")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        r = run_collect(tmp_path, "--init", "--listen", "127.0.0.1:%d" % busy.getsockname()[1])
    finally:
        busy.close()
    assert r.returncode == 6 and "cannot listen" in r.stderr


def test_missing_serial_port_is_retried_not_fatal_json_logs(tmp_path):
    p = subprocess.Popen(collect_cmd(tmp_path, "--init", "--log-format", "json", str(tmp_path / "no-such-tty")),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        time.sleep(2.0)
        assert p.poll() is None
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0
    assert err.count("port_unavailable") == 1       # logged once, retries are quiet
    assert "no node delivered readings" in err
    logs = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    ev = {d["event"]: d for d in logs}
    assert ev["port_unavailable"]["level"] == "WARNING"
    assert ev["port_unavailable"]["source"] == str(tmp_path / "no-such-tty")
    assert len(ev["collector_key"]["public_key"]) == 64 and ev["stopping"]["reason"] == "signal"


def test_limits_are_options_in_help_and_bad_values_are_one_line_usage_errors(tmp_path):
    h = subprocess.run([sys.executable, "-m", "host_tools.collect", "--help"], capture_output=True,
                       text=True, env=ENV, timeout=30)
    assert h.returncode == 0
    for opt in ("--max-record", "--tcp-max-clients", "--tcp-max-pending",
                "--tcp-max-pending-per-address", "--tcp-handshake-timeout",
                "--tofu-max-per-source", "--tofu-max-total", "--tofu-rate"):
        assert opt in h.stdout, opt
    r = subprocess.run(collect_cmd(tmp_path, "--listen", "127.0.0.1:0", "--tcp-max-pending", "0"),
                       capture_output=True, text=True, env=ENV, timeout=30)
    assert r.returncode == 2
    assert "--tcp-max-pending" in r.stderr.strip().splitlines()[-1]
    r = subprocess.run(collect_cmd(tmp_path, "--listen", "127.0.0.1:0", "--max-record", "20000"),
                       capture_output=True, text=True, env=ENV, timeout=30)
    assert r.returncode == 2 and "16384" in r.stderr


def test_limit_options_reach_the_collector(tmp_path):
    # A 1-pin TOFU budget set on the command line: the second new node is refused.
    p, cpub, port = start(tmp_path, "--init", "--tofu", "--tofu-max-total", "1",
                          "--listen", "127.0.0.1:0")
    try:
        for name in ("first", "second"):
            seed, _ = generate_keypair()
            n = SimNode(SockLink(("127.0.0.1", port)), seed, cpub, [reading(name, 0)], linger=0.3)
            n.start()
            n.join(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(KnownNodes(str(tmp_path / "kn")).entries()) < 1:
            time.sleep(0.1)
        time.sleep(0.5)
        assert [e.name for e in KnownNodes(str(tmp_path / "kn")).entries()] == ["first"]
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0
    assert "refused_tofu_limit" in err and "tofu_limit 1" in err
