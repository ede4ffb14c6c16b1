# Real servers for the fleet tests (issue 12), started and stopped by the tests themselves:
# an amqtt broker (PyPI, always), Mosquitto (when installed), a throw-away PostgreSQL cluster
# (initdb/pg_ctl, when installed), an MQTT subscriber that records every reading it gets, and
# ossuary-collect processes pointed at them.

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
PG_BIN_DIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin",
               "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/14/bin")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


# -- MQTT brokers ----------------------------------------------------------------------

class AmqttBroker:
    """tests/_amqtt_broker.py in a subprocess on a free loopback port. hold(True) makes it
    refuse the collectors (client ids "ossuary-...") until hold(False); `users` (dict) makes
    it require a user name and password."""

    kind = "amqtt"

    def __init__(self, workdir, users=None):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        if users:
            with open(os.path.join(workdir, "users"), "w") as f:
                f.writelines("%s:%s\n" % kv for kv in users.items())

    def start(self):
        log = open(os.path.join(self.dir, "broker.log"), "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests._amqtt_broker", str(self.port), self.dir],
                                     cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", "amqtt did not start: %r" % line
        return self

    def hold(self, on):
        path = os.path.join(self.dir, "hold")
        if on:
            open(path, "w").close()
        elif os.path.exists(path):
            os.unlink(path)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()
        self.proc = None


def make_tls(workdir):
    """A self-signed certificate for 127.0.0.1 (it is its own CA) as workdir/cert.pem with
    its key in workdir/key.pem; returns the certificate's path (the client's --mqtt-ca)."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    os.makedirs(workdir, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ossuary test broker")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = os.path.join(workdir, "cert.pem")
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(workdir, "key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return path


class MosquittoBroker:
    """mosquitto on a free loopback port, with persistence (a subscriber's persistent session
    and its queued QoS 1 messages survive a restart, so hold() need not do anything)."""

    kind = "mosquitto"

    def __init__(self, workdir, users=None):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.conf = os.path.join(workdir, "mosquitto.conf")
        lines = ["listener %d 127.0.0.1" % self.port, "persistence true",
                 "persistence_location %s/" % workdir, "user root",
                 "max_queued_messages 100000"]
        if users:
            pw = os.path.join(workdir, "passwd")
            with open(pw, "w") as f:
                f.writelines("%s:%s\n" % kv for kv in users.items())
            subprocess.run(["mosquitto_passwd", "-U", pw], check=True, capture_output=True)
            lines += ["allow_anonymous false", "password_file " + pw]
        else:
            lines.append("allow_anonymous true")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        log = open(os.path.join(self.dir, "broker.log"), "a")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=log, stderr=log)
        log.close()
        wait_for(lambda: _port_open(self.port) or self.proc.poll() is not None, 20, "mosquitto")
        assert self.proc.poll() is None, open(os.path.join(self.dir, "broker.log")).read()
        return self

    def hold(self, on):
        pass

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def mosquitto_missing():
    """Why the Mosquitto variant cannot run here, or None."""
    if shutil.which("mosquitto") is None:
        return "mosquitto is not installed (apt-get install mosquitto)"
    if shutil.which("mosquitto_passwd") is None:
        return "mosquitto_passwd is not installed"
    return None


class Subscriber:
    """A paho subscriber with a persistent session (QoS 1) on ossuary/# and homeassistant/#:
    `readings` maps (node, boot, seq) to how many times it arrived; `retained` holds the last
    payload of each availability/discovery topic. Reconnects by itself."""

    def __init__(self, port, client_id="test-subscriber", auth=None):
        import paho.mqtt.client as mqtt
        self.lock = threading.Lock()
        self.readings = {}
        self.payloads = []
        self.status = {}            # topic -> last payload, for availability/status/config
        self.history = []           # (topic, payload) of those, in arrival order
        self.subscribed = threading.Event()
        self.subacks = 0            # SUBACKs so far: one per (re)connection
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if auth:
            self.c.username_pw_set(*auth)
        self.c.reconnect_delay_set(0.05, 0.5)
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = lambda *a: self.subscribed.clear()
        self.c.on_message = self._on_message
        self.c.connect_async("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        assert self.subscribed.wait(20), "subscriber did not subscribe"

    def _on_subscribe(self, *args):
        with self.lock:
            self.subacks += 1
        self.subscribed.set()

    def wait_resubscribed(self, before, timeout=30):
        """Wait until subscribed again after a broker restart: `before` is `subacks` read
        while the old broker was still up (an Event could still be set from then)."""
        wait_for(lambda: self.subacks > before, timeout, "the subscriber to subscribe again")

    def _on_connect(self, client, userdata, flags, rc, props):
        client.subscribe([("ossuary/#", 1), ("homeassistant/#", 1)])

    def _on_message(self, client, userdata, msg):
        with self.lock:
            if msg.topic.endswith(("/availability", "/status", "/config")):
                self.status[msg.topic] = msg.payload.decode()
                self.history.append((msg.topic, msg.payload.decode()))
                return
            d = json.loads(msg.payload)
            k = (d["node"], d["boot"], d["seq"])
            self.readings[k] = self.readings.get(k, 0) + 1
            self.payloads.append((msg.topic, d))

    def keys(self):
        with self.lock:
            return set(self.readings)

    def repeats(self):
        with self.lock:
            return {k: n for k, n in self.readings.items() if n > 1}

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


# -- PostgreSQL --------------------------------------------------------------------------

def pg_bin():
    """The directory of initdb/pg_ctl/postgres, or None."""
    for d in PG_BIN_DIRS:
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    initdb = shutil.which("initdb")
    if initdb:
        d = os.path.dirname(os.path.realpath(initdb))
        if os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    return None


class PgCluster:
    """A throw-away cluster on a free loopback port, password authentication over TCP
    (user postgres, password `password`). PostgreSQL refuses to run as root, so as root it
    runs as `nobody` (via runuser) in a directory of its own under /tmp."""

    password = "fleet-test-pw"

    def __init__(self):
        self.bin = pg_bin()
        self.dir = tempfile.mkdtemp(prefix="ossuary-pg-")
        self.port = free_port()
        self.prefix = []
        if os.geteuid() == 0:
            self.prefix = ["runuser", "-u", "nobody", "--"]
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, "nobody")
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self.prefix:
            shutil.chown(pwfile, "nobody")
        self._run("initdb", "-D", self.data, "-U", "postgres", "--pwfile", pwfile, "--no-sync",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8")
        self.start()

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    def _run(self, tool, *args):
        r = subprocess.run(self.prefix + [os.path.join(self.bin, tool)] + list(args),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, "%s failed: %s %s" % (tool, r.stdout, r.stderr)

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "-t", "60",
                  "-o", "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off"
                        " -c max_connections=200" % (self.port, self.dir), "start")

    def stop(self):
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def url(self, db="postgres", password=None):
        return "postgresql://postgres:%s@127.0.0.1:%d/%s" % (password or self.password, self.port, db)

    def create_db(self, name):
        import psycopg
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute("CREATE DATABASE %s" % name)
        return self.url(name)

    def destroy(self):
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        except AssertionError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# -- collectors --------------------------------------------------------------------------

class CollectorProc:
    """ossuary-collect in a subprocess, listening on a free TCP port, logging to a file.
    Restartable with the same key, known-nodes file, outbox and port."""

    def __init__(self, workdir, key, known, db, *extra):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.args = [sys.executable, "-m", "host_tools.collect", "--key", key, "--known-nodes", known,
                     "--db", db, "--listen", "127.0.0.1:%d" % self.port, "--init"] + list(extra)
        self.proc = None
        self.runs = 0
        self.env = dict(ENV)

    def log_path(self, run=None):
        return os.path.join(self.dir, "collector-%d.log" % (self.runs if run is None else run))

    def start(self, wait_log=True):
        """Start it; wait for its `listening` log line (wait_log=False: for the port to accept,
        when it logs only warnings)."""
        self.runs += 1
        f = open(self.log_path(), "w")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=f, env=self.env, cwd=self.dir)
        f.close()
        if wait_log:
            ready = lambda: re.search(r"listening .*port=%d" % self.port, open(self.log_path()).read())  # noqa: E731
        else:
            ready = lambda: _port_open(self.port)  # noqa: E731
        wait_for(lambda: ready() or self.proc.poll() is not None, 60, "collector start")
        assert self.proc.poll() is None, open(self.log_path()).read()
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        """SIGINT; returns (exit code, log text)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        return rc, open(self.log_path()).read()

    def logs(self):
        return "".join(open(self.log_path(i)).read() for i in range(1, self.runs + 1))
