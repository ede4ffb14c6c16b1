# MQTT out (paho-mqtt): a publisher thread that drains the outbox (outbox.py) to a broker with
# QoS 1, removing a row only once the broker acknowledged it (PUBACK), plus availability and
# optional Home Assistant discovery.
#
# Topics (README "MQTT out"):
#   readings       --mqtt-topic template, default ossuary/{node}/{sensor} ({key}: fingerprint)
#   node status    {base}/{node}/availability   "online" / "offline", retained
#   collector      {base}/collector/{client_id}/status  "online", retained; the broker publishes
#                  "offline" as the client's last will when the collector dies, and the collector
#                  itself on a clean stop
#   HA discovery   {ha_prefix}/sensor/ossuary_{fingerprint}_{sensor}/config, retained (opt-in)
#
# A node is "online" from its first stored reading in this run and "offline" after
# node_timeout seconds without one, or when the collector stops. With several collectors the
# one a node left says "offline" after the timeout: the collector now serving it hears that
# (it subscribes to the availability topics) and says "online" again.
#
# Connection handling: one paho Client per connection attempt, driven by paho's network
# thread (loop_start). When it is lost, the client is dropped whole (so paho never re-sends
# anything of its own) and a new one connects after a backoff (0.25 s doubling to 30 s); rows
# still in the outbox were not acknowledged and go out again from the oldest. An outage is
# logged once as a WARNING (mqtt_lost; failed attempts and drops within STABLE_S of
# reconnecting at DEBUG), each reconnection at INFO. Passwords are
# never logged: URLs pass through redact() first.

import hashlib
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from urllib.parse import urlsplit, unquote

from host_tools.collector.logs import event
from host_tools.collector.outbox import OutboxError, fingerprint

DEFAULT_TOPIC = "ossuary/{node}/{sensor}"
DEFAULT_BASE = "ossuary"
DEFAULT_HA_PREFIX = "homeassistant"
NODE_TIMEOUT_S = 300.0
CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 30
WINDOW = 64                 # QoS 1 messages in flight (published, not yet PUBACKed)
STABLE_S = 10.0             # a connection up this long ends an outage (the next loss is logged)
BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 30.0
ENV_USER = "OSSUARY_MQTT_USER"
ENV_PASSWORD = "OSSUARY_MQTT_PASSWORD"


class MqttError(Exception):
    """A bad broker URL or credentials file, or a broker that cannot be reached or refuses
    us; the message is one line without the password."""


def redact(url):
    """`url` without its password (for logs and errors)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class MqttConfig:
    """What the publisher needs, from parse(): host, port, tls, ca, username, password,
    client_id, topic, base, ha (bool), ha_prefix, node_timeout, url (redacted)."""

    def __init__(self, url, credentials=None, ca=None, topic=DEFAULT_TOPIC, base=DEFAULT_BASE,
                 client_id=None, ha=False, ha_prefix=DEFAULT_HA_PREFIX,
                 node_timeout=NODE_TIMEOUT_S, env=None, id_seed=""):
        env = os.environ if env is None else env
        self.url = redact(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise MqttError("bad MQTT URL %s: %s" % (self.url, e))
        if parts.scheme not in ("mqtt", "mqtts"):
            raise MqttError("bad MQTT URL %s: the scheme must be mqtt:// or mqtts://" % self.url)
        if not parts.hostname:
            raise MqttError("bad MQTT URL %s: no host" % self.url)
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise MqttError("bad MQTT URL %s: only mqtt[s]://[user[:pass]@]host[:port]" % self.url)
        self.host = parts.hostname
        self.tls = parts.scheme == "mqtts"
        self.port = port or (8883 if self.tls else 1883)
        self.ca = ca
        if ca is not None and not os.path.isfile(ca):
            raise MqttError("no CA file at %s" % ca)
        # Credentials, first found wins: the URL, the file, the environment.
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password is not None else None
        if self.username is None and credentials:
            self.username, self.password = _read_credentials(credentials)
        if self.username is None and env.get(ENV_USER):
            self.username, self.password = env.get(ENV_USER), env.get(ENV_PASSWORD)
        try:
            topic.format(node="n", sensor="s", key="k")
        except (KeyError, IndexError, ValueError):
            raise MqttError("bad --mqtt-topic %r: only {node}, {sensor} and {key} may appear" % topic)
        if any(c in topic for c in "+#") or any(c in base for c in "+#/") or not base:
            raise MqttError("MQTT topics may not contain + or #, and the base is one topic level")
        self.topic = topic
        self.base = base
        self.ha = ha
        self.ha_prefix = ha_prefix
        self.node_timeout = node_timeout
        if client_id is None:
            h = hashlib.sha256(os.path.abspath(id_seed).encode()).hexdigest()[:8]
            client_id = "ossuary-%s-%s" % (socket.gethostname()[:32], h)
        self.client_id = client_id

    def collector_topic(self):
        return "%s/collector/%s/status" % (self.base, self.client_id)

    def node_topic(self, node):
        return "%s/%s/availability" % (self.base, node)


def _read_credentials(path):
    # One line "user:password" (or "user" alone); '#' comments and blank lines are skipped.
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f.read(4096).splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise MqttError("cannot read MQTT credentials %s: %s" % (path, getattr(e, "strerror", None) or e))
    try:
        if os.stat(path).st_mode & 0o077:
            event(logging.WARNING, "mqtt_credentials_permissions",
                  "the MQTT credentials file is readable by others: chmod 600 it", path=path)
    except OSError:
        pass
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(lines) != 1:
        raise MqttError("MQTT credentials file %s must hold one line user:password" % path)
    user, sep, password = lines[0].partition(":")
    if not user:
        raise MqttError("MQTT credentials file %s: no user name" % path)
    return user, (password if sep else None)


class MqttPublisher:
    """Publishes the outbox. start() connects once (raises MqttError: unreachable, refused,
    TLS failure) and starts the thread; saw() tells it about new readings (any thread);
    close() says offline, disconnects and waits. status() is one summary line."""

    def __init__(self, cfg, outbox):
        self.cfg = cfg
        self.outbox = outbox
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.client = None
        self.connected = False
        self.thread = None
        self.lost = threading.Event()       # set by paho's thread on a disconnect
        self.acked = deque()                # mids PUBACKed (appended by paho's thread)
        self.inflight = {}                  # mid -> outbox row id
        self.nodes = {}                     # node -> [node_key, last reading (monotonic), online?]
        self.sensors = {}                   # (node, sensor) -> (node_key, unit, announced?)
        self.connects = 0
        self.losses = 0
        self.connected_at = 0.0
        self.warned = False                 # a loss was logged loudly and not followed by STABLE_S up
        self.published = 0

    # -- one connection --

    def _new_client(self):
        import paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.cfg.client_id,
                        clean_session=True, protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        if self.cfg.username is not None:
            c.username_pw_set(self.cfg.username, self.cfg.password)
        if self.cfg.tls:
            c.tls_set(ca_certs=self.cfg.ca)
        c.will_set(self.cfg.collector_topic(), "offline", qos=1, retain=True)
        c.max_inflight_messages_set(WINDOW)
        c.max_queued_messages_set(0)
        c.connect_timeout = CONNECT_TIMEOUT_S
        result = {}
        done = threading.Event()

        def on_connect(client, userdata, flags, reason_code, properties):
            result["rc"] = reason_code
            done.set()

        def on_disconnect(client, userdata, flags, reason_code, properties):
            self.lost.set()
            done.set()

        def on_publish(client, userdata, mid, reason_code, properties):
            self.acked.append(mid)
            self.wake.set()

        def on_message(client, userdata, msg):
            # Another collector (one the node left) said a node we serve is offline: say
            # online again at the next step.
            node = msg.topic[len(self.cfg.base) + 1:-len("/availability")]
            if msg.payload == b"offline":
                with self.lock:
                    n = self.nodes.get(node)
                    if n is not None and n[2]:
                        n[2] = False
                self.wake.set()

        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        c.on_publish = on_publish
        c.on_message = on_message
        return c, result, done

    def _connect(self):
        # Connect a fresh client; returns it, or raises MqttError saying why (one line).
        c, result, done = self._new_client()
        where = "MQTT broker %s%s" % (self.cfg.url, " over TLS" if self.cfg.tls else "")
        self.lost.clear()
        try:
            c.connect(self.cfg.host, self.cfg.port, keepalive=KEEPALIVE_S)
        except ssl.SSLCertVerificationError as e:
            raise MqttError("cannot connect to %s: certificate verify failed: %s (its CA goes in "
                            "--mqtt-ca)" % (where, e.verify_message))
        except ssl.SSLError as e:
            raise MqttError("cannot connect to %s: TLS failed: %s" % (where, e.reason or e))
        except socket.gaierror as e:
            raise MqttError("cannot resolve %s: %s" % (where, e.strerror or e))
        except (OSError, ValueError) as e:
            raise MqttError("cannot reach %s: %s" % (where, getattr(e, "strerror", None) or e))
        c.loop_start()
        if not done.wait(CONNECT_TIMEOUT_S) or "rc" not in result:
            self._drop(c)
            raise MqttError("%s did not accept the connection within %g s"
                            % (where, CONNECT_TIMEOUT_S))
        rc = result["rc"]
        if rc.is_failure:
            self._drop(c)
            raise MqttError("%s refused the connection: %s" % (where, rc))
        return c

    @staticmethod
    def _drop(c):
        try:
            c.disconnect()
        except Exception:
            pass
        try:
            c.loop_stop()
        except Exception:
            pass

    def _publish(self, topic, text, retain=False):
        info = self.client.publish(topic, text, qos=1, retain=retain)
        return info.mid

    def _on_connected(self):
        # Everything a fresh connection needs: who is online, discovery, then the outbox
        # from its oldest row.
        self.connected = True
        self.connected_at = time.monotonic()
        self.connects += 1
        self.inflight.clear()
        self.acked.clear()
        self._publish(self.cfg.collector_topic(), "online", retain=True)
        self.client.subscribe(self.cfg.node_topic("+"), qos=1)
        with self.lock:
            nodes = [(n, v[2]) for n, v in self.nodes.items()]
            for k in self.sensors:
                self.sensors[k] = self.sensors[k][:2] + (False,)
        for n, online in nodes:
            self._publish(self.cfg.node_topic(n), "online" if online else "offline", retain=True)

    # -- the thread --

    def start(self):
        """Connect (raises MqttError) and start publishing in a thread."""
        self.client = self._connect()
        self._on_connected()
        event(logging.INFO, "mqtt_connected", broker=self.cfg.url, client_id=self.cfg.client_id,
              backlog=self.outbox.size()[0])
        self.thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self.thread.start()

    def saw(self, rows):
        """New readings were stored and queued (called by the sink, in any thread)."""
        now = time.monotonic()
        with self.lock:
            for r in rows:
                n = self.nodes.get(r["node"])
                if n is None:
                    self.nodes[r["node"]] = [r["node_key"], now, False]
                else:
                    n[0], n[1] = r["node_key"], now
                k = (r["node"], r["sensor"])
                if k not in self.sensors:
                    self.sensors[k] = (r["node_key"], r["unit"], False)
        self.wake.set()

    def _run(self):
        backoff = BACKOFF_MIN_S
        while not self.stop_event.is_set():
            if self.client is None:
                try:
                    self.client = self._connect()
                except MqttError as e:
                    event(logging.DEBUG, "mqtt_retry", "%s; retrying in %.1f s" % (e, backoff),
                          broker=self.cfg.url)
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
                backoff = BACKOFF_MIN_S
                self._on_connected()
                event(logging.INFO, "mqtt_connected", "broker back, publishing the outbox",
                      broker=self.cfg.url, backlog=self.outbox.size()[0])
            try:
                self._step()
            except OutboxError as e:
                event(logging.ERROR, "mqtt_outbox_failed", str(e))
                self.stop_event.wait(1.0)
            if self.lost.is_set() and not self.stop_event.is_set():
                self.losses += 1
                self.connected = False
                # Once per outage: a connection that drops again within STABLE_S of the last
                # loss (a broker accepting while it shuts down, a flapping link) is not news.
                again = time.monotonic() - self.connected_at < STABLE_S and self.warned
                event(logging.DEBUG if again else logging.WARNING, "mqtt_lost",
                      "broker connection lost; readings wait in the outbox, retrying with backoff",
                      broker=self.cfg.url)
                self.warned = True
                self._drop(self.client)
                self.client = None
                continue
            self.wake.wait(0.2)
            self.wake.clear()

    def _step(self):
        # Acknowledged rows leave the outbox; availability and discovery go out; then the
        # window is topped up from the outbox.
        done = []
        while self.acked:
            rid = self.inflight.pop(self.acked.popleft(), None)
            if rid is not None:
                done.append(rid)
        self.outbox.remove(done)
        self.published += len(done)
        self._announce()
        room = WINDOW - len(self.inflight)
        if room <= 0 or self.lost.is_set():
            return
        # The oldest ready rows not in flight. Not a watermark: sessions commit concurrently,
        # so a row can become ready after a younger one was published.
        busy = set(self.inflight.values())
        for rid, topic, text in self.outbox.next_ready(WINDOW + room):
            if rid in busy:
                continue
            mid = self._publish(topic, text)
            self.inflight[mid] = rid
            room -= 1
            if room == 0:
                break

    def _announce(self):
        now = time.monotonic()
        todo = []
        with self.lock:
            for name, n in self.nodes.items():
                online = now - n[1] < self.cfg.node_timeout
                if online != n[2]:
                    n[2] = online
                    todo.append((self.cfg.node_topic(name), "online" if online else "offline"))
            if self.cfg.ha:
                for (node, sensor), (key, unit, done) in self.sensors.items():
                    if not done:
                        self.sensors[(node, sensor)] = (key, unit, True)
                        todo.append(self._discovery(node, sensor, key, unit))
        for topic, text in todo:
            self._publish(topic, text, retain=True)

    def _discovery(self, node, sensor, key, unit):
        fp = fingerprint(key)
        uid = "ossuary_%s_%s" % (fp, sensor)
        cfg = {
            "name": sensor, "unique_id": uid, "object_id": "%s_%s" % (node, sensor),
            "state_topic": self.cfg.topic.format(node=node, sensor=sensor, key=fp),
            "value_template": "{{ value_json.value }}", "unit_of_measurement": unit,
            "state_class": "measurement",
            "availability": [{"topic": self.cfg.collector_topic()},
                             {"topic": self.cfg.node_topic(node)}],
            "availability_mode": "all",
            "device": {"identifiers": ["ossuary_%s" % fp], "name": node,
                       "manufacturer": "ossuary-micro"},
        }
        if unit in ("C", "°C"):
            cfg["device_class"] = "temperature"
            cfg["unit_of_measurement"] = "°C"
        return ("%s/sensor/%s/config" % (self.cfg.ha_prefix, uid),
                json.dumps(cfg, separators=(",", ":")))

    def status(self):
        state = "connected" if self.connected else "disconnected"
        return ("mqtt %s (%s, client id %s): published %d, in flight %d, connections %d,"
                " lost %d" % (self.cfg.url, state, self.cfg.client_id, self.published,
                              len(self.inflight), self.connects, self.losses))

    def close(self, timeout=3.0):
        """Stop: publish what is ready and acknowledged within `timeout`, mark the nodes and
        this collector offline, disconnect. The outbox keeps the rest for the next run."""
        end = time.monotonic() + timeout
        # Let the thread drain the outbox while the broker answers (readings committed just
        # before the stop would otherwise wait for the next run).
        try:
            while self.connected and not self.lost.is_set() and time.monotonic() < end:
                if self.outbox.size()[0] == 0:
                    break
                self.wake.set()
                time.sleep(0.02)
        except OutboxError:
            pass
        self.stop_event.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(max(0.1, end - time.monotonic()))
        c = self.client
        if c is None or self.lost.is_set():
            return
        try:
            with self.lock:
                names = list(self.nodes)
            mids = [self._publish(self.cfg.node_topic(n), "offline", retain=True) for n in names]
            mids.append(self._publish(self.cfg.collector_topic(), "offline", retain=True))
            want = set(mids) | set(self.inflight)
            end = max(end, time.monotonic() + 1.0)
            while want and time.monotonic() < end and not self.lost.is_set():
                while self.acked:
                    want.discard(self.acked[0])
                    mid = self.acked.popleft()
                    rid = self.inflight.pop(mid, None)
                    if rid is not None:
                        self.outbox.remove([rid])
                        self.published += 1
                time.sleep(0.02)
        except (OutboxError, Exception) as e:
            event(logging.DEBUG, "mqtt_close", str(e))
        self._drop(c)
        self.connected = False
