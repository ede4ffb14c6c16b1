# Test helpers for the sensor-node tests: keys, node configs, and a CPython collector-side peer.
#
# The peer is an ossuary_micro AUTH_SERVER driven by ossuary_io.SecureStream over a socket or
# a pty master, i.e. the same protocol stack the real collector uses, so the node under test
# (the MicroPython unix port, as a subprocess) talks to a real peer over a real link.

import json
import os
import subprocess
import time

from ossuary_micro import Connection, AUTH_SERVER, generate_keypair, format_key
from ossuary_io.stream import SecureStream

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
NODE_MAIN = os.path.join(ROOT, "port", "unix", "main.py")


def clock():
    return int(time.monotonic() * 1000)


class Keys:
    def __init__(self):
        self.collector_seed, self.collector_pub = generate_keypair()
        self.node_seed, self.node_pub = generate_keypair()


def write_config(path, keys, transport, **extra):
    cfg = {"name": "test-node", "transport": transport, "interval_s": 0.2,
           "secret_key": format_key(keys.node_seed),
           "collector_key": format_key(keys.collector_pub), "retry_min_ms": 100,
           "retry_max_ms": 400}
    cfg.update(extra)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def start_node(config_path, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    args = [MICROPYTHON, NODE_MAIN] + ([config_path] if config_path else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                            cwd=ROOT)


def server_stream(keys, transport, protocol=2):
    """The collector's side: an AUTH_SERVER Connection2 (protocol 2, the node's default, with
    the same keys: its X25519 form) or Connection (protocol 1) under a SecureStream on
    `transport`."""
    if protocol == 2:
        from ossuary_micro.connection2 import Connection2
        conn = Connection2(AUTH_SERVER, secret_key=keys.collector_seed,
                           authorized_keys=[keys.node_pub], clock=clock)
    else:
        conn = Connection(AUTH_SERVER, secret_key=keys.collector_seed,
                          authorized_keys=[keys.node_pub], clock=clock)
    return SecureStream(conn, transport, clock=clock)


def ack(stream, reading):
    """Acknowledge `reading` (and every earlier one of its boot sent in this session), as the
    collector does after committing (docs/design.md, "Sensor readings")."""
    stream.send(json.dumps({"v": 2, "ack": reading["seq"], "boot": reading["boot"]}).encode())


def read_readings(stream, count, timeout_ms=20000, acked=True):
    """`count` readings (parsed JSON dicts) from an established stream, each acknowledged
    as it arrives unless acked=False."""
    out = []
    deadline = time.monotonic() + timeout_ms / 1000
    while len(out) < count:
        left = int((deadline - time.monotonic()) * 1000)
        assert left > 0, "only %d of %d readings arrived" % (len(out), count)
        data = stream.recv(timeout_ms=left)
        assert data, "node closed after %d readings" % len(out)
        out.append(json.loads(data.decode("utf-8")))
        if acked:
            ack(stream, out[-1])
    return out


def check_reading(r, name="test-node"):
    """Assert that `r` is exactly the documented reading object (docs/design.md)."""
    assert set(r) == {"v", "node", "boot", "seq", "sensor", "value", "unit", "up_ms",
                      "dropped"}, r
    assert r["v"] == 2 and r["node"] == name
    assert len(r["boot"]) == 16 and set(r["boot"]) <= set("0123456789abcdef")
    assert isinstance(r["dropped"], int) and r["dropped"] >= 0
    assert isinstance(r["seq"], int) and r["seq"] >= 0
    assert r["sensor"] == "sim_temp" and r["unit"] == "C"
    assert isinstance(r["value"], float) and 15.0 <= r["value"] <= 30.0
    assert isinstance(r["up_ms"], int) and r["up_ms"] >= 0
