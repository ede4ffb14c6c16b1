# ossuary-collect: receive sensor readings from Ossuary nodes over serial ports and TCP, store them.
#
#   ossuary-collect [options] [PORT ...]        PORT: a device path or any pyserial URL
#   ossuary-collect known [-f FILE] list | add NAME HEX | remove NAME
#
# Every source (serial port, accepted TCP connection) gets its own thread running the
# sans-I/O Connection as an AUTH_SERVER with tofu_clients=True; the known-nodes file decides
# who is trusted (host_tools/known_nodes.py). A node is identified by its verified key; the
# name it sends in its readings is only needed the first time, to pin or to notice a changed
# key. Nothing an unidentified or refused node sends is stored.
#
# Trust is re-checked, not only decided at the handshake: every reading is checked against the
# known-nodes file (re-read when it changes) before it is stored, and each open session checks
# its node at least every REVOCATION_CHECK_S, so `known remove` cuts off a connected node within
# about a second and nothing it sends afterwards is stored.
#
# TCP admission (an unidentified peer must never starve identified nodes): a peer is "pending"
# until it has completed a handshake *and* been identified as a known node. Pending peers have a
# short handshake deadline, at most tcp_max_pending_per_address of them per IP address, and at
# most tcp_max_pending in total. When the pending or the overall cap (tcp_max_clients) is full,
# a newcomer takes the place of the oldest pending peer that has sent nothing at all; if every
# pending peer is talking, the newcomer is refused. So idle connections, however many and from
# however many addresses, only push out each other; a node mid-handshake and an identified node
# are never dropped for a newcomer. What this cannot stop: an attacker from many addresses that
# speaks the handshake (any key passes it under tofu_clients) competes with new nodes for the
# pending slots; the handshake deadline and identify_timeout bound how long each such peer holds
# one, and nodes retry.
#
# TOFU is bounded: at most tofu_max_per_source new pins per source (per IP address for TCP) and
# tofu_max_total per run, at most tofu_rate per minute, and no pin may grow the known-nodes file
# past what start-up accepts (known_nodes.MAX_FILE). Over a limit the node is refused, loudly.
#
# Failure handling, per source and never affecting the others:
#   * a serial port that cannot be opened or disappears is reopened with exponential backoff;
#   * a Connection that fails (garbage, reset limit, refused key, node gone) is replaced by a
#     fresh one, with backoff while the failures continue (input is discarded meanwhile);
#   * a node that resets simply handshakes again (the core's Reset protocol);
#   * a malformed reading is logged (rate-limited) and skipped;
#   * all buffers are bounded: reads of READ_CHUNK bytes, the Connection's fixed input buffer.
#
# Exit codes: 0 done (also after Ctrl-C / SIGTERM), 2 usage, 3 key file, 4 known-nodes file,
# 5 database, 6 no source could be set up (TCP listen failed).

import argparse
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time

from ossuary_micro import (Connection, AUTH_SERVER, NEED_DATA, HANDSHAKE_DONE, UNTRUSTED_KEY,
                           DATA, RESET, CLOSED)
from ossuary_micro.errors import OssuaryError, ConnectionClosed
from ossuary_micro.keys import format_key
from ossuary_micro.wire import MAX_RECORD, MAX_CONTROL_PACKET
from host_tools import known_nodes
from host_tools.known_nodes import KnownNodes, KnownNodesError
from host_tools.store import Store, StoreError, LineWriter, BadReading, parse_reading

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_KEYFILE = 3
EXIT_KNOWN = 4
EXIT_DB = 5
EXIT_SOURCE = 6

READ_CHUNK = 4096           # bytes per transport read: bounds what one source can make us hold
POLL_S = 0.1                # read timeout: how often a source thread looks at the stop flag
WRITE_TIMEOUT_S = 2.0       # a peer that takes nothing for this long is treated as gone
BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 30.0
IDENTIFY_TIMEOUT_S = 10.0   # an unknown key must send a valid reading (its name) within this
IDENTIFY_MAX_BAD = 3        # ... or at most this many malformed records first
# Readings are small JSON objects (a node sends at most port/common/node.py's MAX_RECORD, 256):
# 1024 leaves room and bounds how long a forged length field can make a session wait for a
# packet (at most 1052 bytes instead of 16 KiB); a larger length fails the Connection at once.
NODE_MAX_RECORD = 1024
MAX_TCP_CLIENTS = 256           # concurrent TCP connections, identified or not
MAX_TCP_PENDING = 128           # ... of which not yet identified (a restart brings many at once)
MAX_TCP_PENDING_PER_ADDRESS = 8  # ... not yet identified, from one IP address
TCP_HANDSHAKE_TIMEOUT_S = 10.0  # a TCP peer must complete a handshake within this
REVOCATION_CHECK_S = 1.0        # an open session re-checks its node's trust this often
TOFU_MAX_PER_SOURCE = 8         # TOFU pins per source (serial port, or TCP peer IP) per run
TOFU_MAX_TOTAL = 64             # TOFU pins per run
TOFU_RATE_PER_MIN = 10          # TOFU pins per minute (a burst of this many, then refilled)
REFUSAL_LOG_S = 60.0        # a refused key is logged loudly at most once per this period
BAD_LOG_FIRST = 3           # malformed readings logged per session before rate-limiting
BAD_LOG_EVERY = 100

log = logging.getLogger("ossuary.collect")


def _ms_clock():
    return int(time.monotonic() * 1000) & 0x3FFFFFFF


def short(key):
    """First 16 hex characters of a key, for log lines that do not need all of it."""
    return format_key(key)[:16]


def event(level, name, msg=None, **fields):
    """Log a structured event: name, key=value fields, and an optional human message."""
    log.log(level, msg or name, extra={"event": name, "fields": fields})


# -- logging formats -------------------------------------------------------------------

class TextFormatter(logging.Formatter):
    """2025-06-01 12:00:00,123 WARNING key_changed source=... node=... | message"""

    def format(self, record):
        t = self.formatTime(record)
        ev = getattr(record, "event", None)
        fields = getattr(record, "fields", None) or {}
        parts = [t, record.levelname]
        if ev:
            parts.append(ev)
        for k, v in fields.items():
            s = str(v)
            if not s or any(c in s for c in " \"=\t\n"):
                s = json.dumps(s)
            parts.append("%s=%s" % (k, s))
        msg = record.getMessage()
        if msg and msg != ev:
            parts.append("| " + msg)
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, message and the event's fields."""

    def format(self, record):
        d = {"ts": round(record.created, 3), "level": record.levelname,
             "event": getattr(record, "event", None) or "log", "msg": record.getMessage()}
        for k, v in (getattr(record, "fields", None) or {}).items():
            d[k] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
        return json.dumps(d, separators=(",", ":"))


def setup_logging(level="info", fmt="text", stream=None):
    h = logging.StreamHandler(stream or sys.stderr)
    h.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    log.handlers[:] = [h]
    log.setLevel(getattr(logging, level.upper()))
    log.propagate = False


# -- transports ------------------------------------------------------------------------

class TransportGone(Exception):
    """The port disappeared or the peer hung up."""


class SerialTransport:
    """A pyserial port (device path or URL: rfc2217://, socket://, loop://, ...)."""

    def __init__(self, url, baud):
        import serial
        self._serial_mod = serial
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=POLL_S,
                                              write_timeout=WRITE_TIMEOUT_S)
        except (serial.SerialException, OSError, ValueError) as e:
            raise TransportGone(str(e))

    def read(self):
        try:
            waiting = self.port.in_waiting
            data = self.port.read(max(1, min(waiting, READ_CHUNK)))
        except (self._serial_mod.SerialException, OSError) as e:
            raise TransportGone(str(e) or type(e).__name__)
        return data

    def write(self, data):
        try:
            self.port.write(data)
        except (self._serial_mod.SerialException, OSError) as e:
            raise TransportGone(str(e) or type(e).__name__)

    def close(self):
        try:
            self.port.close()
        except Exception:
            pass


class FdTransport:
    """A raw file descriptor, e.g. the master side of a pty from os.openpty(). Not closed
    by us: whoever opened it owns it."""

    def __init__(self, fd):
        self.fd = fd

    def read(self):
        try:
            r, _, _ = select.select([self.fd], [], [], POLL_S)
            if not r:
                return b""
            data = os.read(self.fd, READ_CHUNK)
        except OSError as e:
            # EIO: the pty's other side is gone.
            raise TransportGone(e.strerror or str(e))
        if not data:
            raise TransportGone("end of file")
        return data

    def write(self, data):
        mv = memoryview(data)
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        while mv:
            try:
                _, w, _ = select.select([], [self.fd], [], max(0.0, deadline - time.monotonic()))
                if not w:
                    raise TransportGone("write timed out")
                n = os.write(self.fd, mv)
            except OSError as e:
                raise TransportGone(e.strerror or str(e))
            mv = mv[n:]

    def close(self):
        pass


class SocketTransport:
    """An accepted TCP connection."""

    def __init__(self, sock):
        self.sock = sock

    def read(self):
        try:
            self.sock.settimeout(POLL_S)
            data = self.sock.recv(READ_CHUNK)
        except socket.timeout:
            return b""
        except OSError as e:
            raise TransportGone(e.strerror or str(e))
        if not data:
            raise TransportGone("peer closed the TCP connection")
        return data

    def write(self, data):
        try:
            self.sock.settimeout(WRITE_TIMEOUT_S)
            self.sock.sendall(data)
        except OSError as e:
            raise TransportGone(e.strerror or str(e) or "write timed out")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# -- statistics ------------------------------------------------------------------------

class NodeStats:
    def __init__(self, name, key_hex):
        self.name = name
        self.key_hex = key_hex
        self.stored = 0
        self.malformed = 0
        self.first_seq = None
        self.last_seq = None
        self.gaps = 0
        self.restarts = 0
        self.sources = set()


class SourceStats:
    def __init__(self, name):
        self.name = name
        self.opens = 0
        self.lost = 0
        self.sessions = 0        # completed handshakes
        self.resets = 0
        self.closed = 0          # sessions the node closed cleanly
        self.failed = 0          # Connections that failed (garbage, reset limit, node errors)
        self.bytes_in = 0
        self.discarded = 0       # bytes thrown away while backing off
        self.malformed = 0       # malformed records from not-yet-identified nodes


# -- one Ossuary session ---------------------------------------------------------------

class Session:
    """One Connection on one open transport, from first byte to CLOSED (or stop).

    run() returns "closed", "refused" or "stopped", and raises TransportGone when the
    transport fails; it never raises for anything the peer sends."""

    def __init__(self, collector, transport, source, handshake_deadline=None, slot=None, pin_source=None):
        self.c = collector
        # TCP only: the admission record, marked trusted while an identified node is served.
        self.slot = slot
        self.pin_source = pin_source or source    # what TOFU limits count per
        # TCP only: a peer that connects and never completes a handshake must not hold one of
        # the MAX_TCP_CLIENTS slots forever (an idle server Connection has no timeout).
        self.handshake_deadline = handshake_deadline
        self.t = transport
        self.source = source
        self.stats = collector.source_stats(source)
        self.conn = Connection(AUTH_SERVER, secret_key=collector.seed,
                               authorized_keys=collector.known.keys(), max_record=collector.max_record,
                               clock=_ms_clock, tofu_clients=True)
        self.out = bytearray(max(self.conn.max_packet, MAX_CONTROL_PACKET))
        self.node = None            # KnownNode once identified
        self.unknown_key = None     # verified but not (yet) trusted key
        self.unknown_since = 0.0
        self.unknown_bad = 0
        self.bad_logged = 0
        self.name_warned = False
        self.refused = False
        self.established_once = False
        self.next_trust_check = 0.0

    def _flush(self):
        n = self.conn.data_to_send(self.out)
        if n:
            self.t.write(bytes(self.out[:n]))
        return n

    def run(self):
        conn = self.conn
        pending = b""
        stuck = 0
        try:
            while True:
                self._flush()
                if conn.closed:
                    return "refused" if self.refused else "closed"
                if self.c.stop_event.is_set():
                    if conn.established:
                        conn.disconnect()       # tell the node we are going
                        self._flush()
                    return "stopped"
                ev = conn.next_event()
                if ev == NEED_DATA:
                    if self.node is not None and time.monotonic() >= self.next_trust_check:
                        self.next_trust_check = time.monotonic() + REVOCATION_CHECK_S
                        if not self.c.still_trusted(self.node):
                            self._revoked()
                            continue
                    if self.handshake_deadline is not None and not self.established_once and \
                            time.monotonic() > self.handshake_deadline:
                        event(logging.INFO, "handshake_timeout", "no handshake in time; hanging up",
                              source=self.source)
                        return "timeout"
                    if self.unknown_key is not None and \
                            time.monotonic() - self.unknown_since > self.c.identify_timeout:
                        self._refuse("unidentified", None,
                                     "node with unknown key %s sent no valid reading within %g s; refused"
                                     % (format_key(self.unknown_key), self.c.identify_timeout))
                        continue
                    if pending:
                        took = conn.receive_data(pending)
                        pending = pending[took:]
                        # The core always takes bytes once it has parsed what it holds; this
                        # guard only makes a core bug a dropped chunk, not a busy loop.
                        stuck = stuck + 1 if took == 0 else 0
                        if stuck > 2:
                            pending = b""
                        continue
                    data = self.t.read()
                    if data:
                        self.stats.bytes_in += len(data)
                        pending = data
                        if self.slot is not None:
                            self.slot.talking = True
                elif ev == DATA:
                    self._on_data(bytes(conn.plaintext[:conn.data_len]))
                elif ev == UNTRUSTED_KEY:
                    # Verified signature, key not among the pinned keys we gave the
                    # Connection. Accept for now: the decision needs the node's name, which
                    # arrives with its first reading (see _identify). Nothing is stored before.
                    conn.accept_key()
                elif ev == HANDSHAKE_DONE:
                    self._on_handshake()
                elif ev == RESET:
                    self.stats.resets += 1
                    event(logging.INFO, "session_reset", "handshake restarts",
                          source=self.source, node=self.node.name if self.node else "-",
                          reason=str(conn.error))
                    # The next handshake may be another device on the same line: identify again.
                    self._set_node(None)
                    self.unknown_key = None
                elif ev == CLOSED:
                    self._flush()
                    if not self.refused:
                        event(logging.INFO, "session_closed", source=self.source,
                              node=self.node.name if self.node else "-", reason=str(conn.error))
                        if isinstance(conn.error, ConnectionClosed):
                            self.stats.closed += 1
                        else:
                            self.stats.failed += 1
                    return "refused" if self.refused else "closed"
        finally:
            conn.close()

    # -- events --

    def _set_node(self, entry):
        self.node = entry
        if self.slot is not None:
            self.slot.trusted = entry is not None

    def _revoked(self):
        # The node's key left the known-nodes file (or now has another name) while connected.
        entry = self.node
        self.refused = True
        with self.c.lock:
            self.c.refused["revoked"] = self.c.refused.get("revoked", 0) + 1
        event(logging.WARNING, "revoked",
              "node %s was removed from %s; session closed, nothing more stored"
              % (entry.name, self.c.known.path), source=self.source, node=entry.name,
              key=entry.key_hex)
        self._set_node(None)
        self.conn.disconnect(error=True)

    def _on_handshake(self):
        key = bytes(self.conn.remote_public_key)
        self.established_once = True
        self.stats.sessions += 1
        entry = self.c.lookup_key(key)
        if entry is not None:
            self._set_node(entry)
            event(logging.INFO, "node_connected", source=self.source, node=entry.name, key=short(key))
        else:
            self.unknown_key = key
            self.unknown_since = time.monotonic()
            self.unknown_bad = 0
            event(logging.INFO, "unknown_key", "handshake done; identifying the node by its first reading",
                  source=self.source, key=format_key(key))

    def _on_data(self, raw):
        try:
            reading = parse_reading(raw)
        except BadReading as e:
            self._bad(str(e), len(raw))
            return
        if self.node is None:
            if self.unknown_key is None:
                return
            if not self._identify(reading["node"]):
                return
        if reading["node"] != self.node.name and not self.name_warned:
            self.name_warned = True
            event(logging.WARNING, "name_mismatch",
                  "readings are stored under the pinned name (the key identifies the node)",
                  source=self.source, node=self.node.name, claimed=reading["node"])
        # Checked per reading (a stat of the file, a re-read only if it changed): nothing is
        # stored once the node's key is gone from the file.
        if not self.c.still_trusted(self.node):
            self._revoked()
            return
        self.c.store_reading(self.node, self.source, reading)

    def _bad(self, why, size):
        name = self.node.name if self.node else None
        self.c.count_malformed(name, self.stats)
        self.bad_logged += 1
        if self.bad_logged <= BAD_LOG_FIRST or self.bad_logged % BAD_LOG_EVERY == 0:
            event(logging.WARNING, "bad_reading", "record skipped",
                  source=self.source, node=name or "-", reason=why, bytes=size,
                  count=self.bad_logged)
        if self.node is None and self.unknown_key is not None:
            self.unknown_bad += 1
            if self.unknown_bad >= IDENTIFY_MAX_BAD:
                self._refuse("unidentified", None,
                             "node with unknown key %s sent %d malformed records and no valid one; refused"
                             % (format_key(self.unknown_key), self.unknown_bad))

    def _identify(self, name):
        verdict, entry = self.c.decide(name, self.unknown_key, self.pin_source)
        key_hex = format_key(self.unknown_key)
        if verdict == "trusted" or verdict == "pinned":
            self._set_node(entry)
            self.unknown_key = None
            if verdict == "pinned":
                event(logging.WARNING, "key_pinned",
                      "trust on first use: node %s pinned in %s" % (name, self.c.known.path),
                      source=self.source, node=name, key=key_hex)
            else:
                event(logging.INFO, "node_connected", source=self.source, node=entry.name,
                      key=short(entry.key))
            return True
        if verdict == "changed":
            self._refuse("changed_key", name,
                         "NODE KEY CHANGED: %s presented a key that differs from the one pinned in %s; "
                         "refused, nothing stored. If the node was re-keyed on purpose: "
                         "ossuary-keygen known -f %s remove %s"
                         % (name, self.c.known.path, self.c.known.path, name),
                         pinned_key=entry.key_hex, presented_key=key_hex)
        elif verdict == "not_pinned":
            # --tofu is on but this pin was not allowed (a limit, or the file): say why, and
            # how to add the node by hand -- not "use --tofu".
            self._refuse("tofu_limit", name,
                         "node %s is not in %s and was not pinned (%s); refused, nothing stored. "
                         "To trust it: ossuary-keygen known -f %s add %s %s"
                         % (name, self.c.known.path, entry, self.c.known.path, name, key_hex),
                         key=key_hex)
        else:
            self._refuse("unknown_key", name,
                         "node %s is not in %s; refused, nothing stored. To trust it: "
                         "ossuary-keygen known -f %s add %s %s (or run with --tofu)"
                         % (name, self.c.known.path, self.c.known.path, name, key_hex),
                         key=key_hex)
        return False

    def _refuse(self, reason, name, msg, **fields):
        self.refused = True
        key = self.unknown_key
        loud, suppressed = self.c.count_refused(reason, key)
        if suppressed:
            fields["repeats_suppressed"] = suppressed
        # The first refusal of a key is a WARNING; a node retrying every second would bury
        # everything else, so repeats within REFUSAL_LOG_S are logged at DEBUG and counted.
        event(logging.WARNING if loud else logging.DEBUG, "refused_" + reason, msg,
              source=self.source, node=name or "-", **fields)
        self._set_node(None)
        self.unknown_key = None
        self.conn.disconnect(error=True)


# -- the collector ---------------------------------------------------------------------

class _TcpSlot:
    """One accepted TCP connection, as the accept loop sees it for admission decisions."""

    def __init__(self, sock, name, ip):
        self.sock = sock
        self.fileno = sock.fileno()
        self.name = name
        self.ip = ip
        self.since = time.monotonic()
        self.trusted = False        # an identified node is being served (Session sets it)
        self.talking = False        # the peer has sent at least one byte
        self.evicted = False
        self.thread = None

    def evict(self):
        # Wake the serving thread's recv with EOF; the thread closes the socket itself.
        self.evicted = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Collector:
    """Serves any number of sources concurrently, one thread each.

    `seed`: the collector's 32-byte secret key. `known`: a KnownNodes. `store`: a Store.
    `tofu`: pin unknown nodes on first sight. `writer`: optional LineWriter. `max_readings`:
    stop after storing this many (0: never). `on_reading(node, source, reading)`: optional
    callback, called in the source's thread after a reading was stored.

    Limits (attributes, set before adding sources; module comment and README): max_record,
    tcp_max_clients, tcp_max_pending, tcp_max_pending_per_address, tcp_handshake_timeout,
    identify_timeout, tofu_max_per_source, tofu_max_total, tofu_rate (pins per minute).
    """

    def __init__(self, seed, known, store, tofu=False, writer=None, max_readings=0,
                 on_reading=None, log_readings=False):
        self.seed = seed
        self.known = known
        self.store = store
        self.tofu = tofu
        self.writer = writer
        self.max_readings = max_readings
        self.on_reading = on_reading
        self.log_readings = log_readings
        self.identify_timeout = IDENTIFY_TIMEOUT_S
        self.tcp_handshake_timeout = TCP_HANDSHAKE_TIMEOUT_S
        self.max_record = NODE_MAX_RECORD
        self.tcp_max_clients = MAX_TCP_CLIENTS
        self.tcp_max_pending = MAX_TCP_PENDING
        self.tcp_max_pending_per_address = MAX_TCP_PENDING_PER_ADDRESS
        self.tofu_max_per_source = TOFU_MAX_PER_SOURCE
        self.tofu_max_total = TOFU_MAX_TOTAL
        self.tofu_rate = TOFU_RATE_PER_MIN
        self._pins_by_source = {}     # pin source -> TOFU pins this run
        self._pins_total = 0
        self._pin_tokens = None       # token bucket for tofu_rate (filled on first use)
        self._pin_tokens_at = 0.0
        self.stop_event = threading.Event()
        self.done_event = threading.Event()     # max_readings reached
        self.lock = threading.Lock()
        self.threads = []
        self.nodes = {}           # name -> NodeStats
        self.sources = {}         # source name -> SourceStats
        self.refused = {}         # reason -> count
        self._refusal_log = {}    # (reason, key) -> (last loud log time, repeats since)
        self.stored = 0
        self.store_errors = 0
        self.started = time.time()
        self.listeners = []

    # -- shared state (called from source threads) --

    def source_stats(self, name):
        with self.lock:
            s = self.sources.get(name)
            if s is None:
                s = self.sources[name] = SourceStats(name)
            return s

    def _node_stats(self, entry):
        s = self.nodes.get(entry.name)
        if s is None:
            s = self.nodes[entry.name] = NodeStats(entry.name, entry.key_hex)
        return s

    def _reload_known(self):
        try:
            if self.known.reload_if_changed():
                event(logging.INFO, "known_nodes_reloaded", path=self.known.path,
                      nodes=len(self.known.entries()))
        except KnownNodesError as e:
            event(logging.ERROR, "known_nodes_unreadable", "keeping the previous contents: %s" % e,
                  path=self.known.path)

    def lookup_key(self, key):
        """The KnownNode pinned for `key`, or None (re-reading the file if it changed)."""
        with self.known.lock:
            self._reload_known()
            return self.known.by_key(key)

    def still_trusted(self, entry):
        """True if `entry`'s key is still in the known-nodes file under the same name
        (re-reading the file if it changed; an unreadable file keeps the previous contents)."""
        with self.known.lock:
            self._reload_known()
            now = self.known.by_key(entry.key)
            return now is not None and now.name == entry.name

    def _pin_allowed(self, source):
        # TOFU limits (module comment). Returns None, or why the pin is not allowed.
        # Caller holds self.lock.
        if self._pins_total >= self.tofu_max_total:
            return "TOFU limit of %d pins per run reached" % self.tofu_max_total
        if self._pins_by_source.get(source, 0) >= self.tofu_max_per_source:
            return "TOFU limit of %d pins from %s reached" % (self.tofu_max_per_source, source)
        now = time.monotonic()
        if self._pin_tokens is None:
            self._pin_tokens = float(self.tofu_rate)
        else:
            self._pin_tokens = min(float(self.tofu_rate),
                                   self._pin_tokens + (now - self._pin_tokens_at) * self.tofu_rate / 60.0)
        self._pin_tokens_at = now
        if self._pin_tokens < 1.0:
            return "TOFU rate limit of %g pins per minute" % self.tofu_rate
        return None

    def decide(self, name, key, source="-"):
        """Verdict for a verified but unpinned key whose node calls itself `name`:
        ("trusted", entry) pinned meanwhile, ("pinned", entry) newly pinned (TOFU),
        ("changed", entry_with_the_old_key), ("not_pinned", why) (TOFU on, but a limit or
        the file refused the pin), or ("unknown", None). `source` is what per-source TOFU
        limits count."""
        with self.known.lock:
            self._reload_known()
            entry = self.known.by_key(key)
            if entry is not None:
                return "trusted", entry
            entry = self.known.by_name(name)
            if entry is not None:
                return "changed", entry
            if not self.tofu:
                return "unknown", None
            with self.lock:
                why = self._pin_allowed(source)
            if why is not None:
                return "not_pinned", why
            try:
                pinned = self.known.add(name, key)
            except KnownNodesError as e:
                event(logging.ERROR, "pin_failed", str(e), node=name)
                return "not_pinned", str(e)
            with self.lock:
                self._pins_total += 1
                self._pins_by_source[source] = self._pins_by_source.get(source, 0) + 1
                self._pin_tokens -= 1.0
            return "pinned", pinned

    def count_refused(self, reason, key):
        """Count a refusal; returns (log_loudly, repeats suppressed since the last loud one)."""
        with self.lock:
            self.refused[reason] = self.refused.get(reason, 0) + 1
            now = time.monotonic()
            tag = (reason, bytes(key) if key is not None else None)
            last, quiet = self._refusal_log.get(tag, (None, 0))
            if last is not None and now - last < REFUSAL_LOG_S:
                self._refusal_log[tag] = (last, quiet + 1)
                return False, 0
            if len(self._refusal_log) > 1000:       # bounded: forget old keys
                self._refusal_log.clear()
            self._refusal_log[tag] = (now, 0)
            return True, quiet

    def count_malformed(self, name, source_stats):
        with self.lock:
            if name is not None and name in self.nodes:
                self.nodes[name].malformed += 1
            else:
                source_stats.malformed += 1

    def store_reading(self, entry, source, reading):
        ts = time.time()
        try:
            self.store.add(ts, entry.name, entry.key_hex, source, reading)
        except StoreError as e:
            with self.lock:
                self.store_errors += 1
            event(logging.ERROR, "store_failed", str(e), source=source, node=entry.name)
            return
        with self.lock:
            st = self._node_stats(entry)
            st.sources.add(source)
            seq = reading["seq"]
            if st.last_seq is not None:
                if seq < st.last_seq:
                    st.restarts += 1
                    event(logging.INFO, "node_restarted", "seq went back", node=entry.name,
                          seq=seq, previous=st.last_seq)
                elif seq > st.last_seq + 1:
                    st.gaps += 1
            if st.first_seq is None:
                st.first_seq = seq
            st.last_seq = seq
            st.stored += 1
            self.stored += 1
            total = self.stored
        if self.writer is not None:
            self.writer.write(ts, entry.name, entry.key_hex, source, reading)
        if self.log_readings:
            event(logging.INFO, "reading", source=source, node=entry.name, seq=reading["seq"],
                  sensor=reading["sensor"], value=reading["value"], unit=reading["unit"])
        if self.on_reading is not None:
            try:
                self.on_reading(entry.name, source, reading)
            except Exception as e:      # a display callback must not kill a source thread
                event(logging.ERROR, "callback_failed", repr(e))
        if self.max_readings and total >= self.max_readings:
            self.done_event.set()

    # -- sources --

    def _spawn(self, target, name, *args):
        t = threading.Thread(target=self._guard, args=(target, name) + args, name=name, daemon=True)
        self.threads.append(t)
        t.start()
        return t

    def _guard(self, target, name, *args):
        # Last line of defence: a bug in one source thread is logged; the others go on.
        try:
            target(*args)
        except Exception:
            log.exception("source thread %s crashed", name, extra={"event": "thread_crashed",
                                                                   "fields": {"source": name}})

    def _wait(self, seconds, transport=None, stats=None):
        # Sleep up to `seconds` (stop-aware). With a transport, keep reading and discard what
        # comes (a garbage spewer must not fill OS buffers while we back off).
        end = time.monotonic() + seconds
        while not self.stop_event.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            if transport is None:
                self.stop_event.wait(min(left, POLL_S))
            else:
                data = transport.read()
                if data and stats is not None:
                    stats.discarded += len(data)

    def _serve_transport(self, transport, source, persistent, slot=None):
        # Sessions back to back on one open transport. Raises TransportGone.
        backoff = BACKOFF_MIN_S
        while not self.stop_event.is_set():
            deadline = None if persistent else time.monotonic() + self.tcp_handshake_timeout
            s = Session(self, transport, source, deadline, slot,
                        pin_source=("tcp:" + slot.ip) if slot is not None else None)
            result = s.run()
            if result == "stopped" or not persistent:
                return
            if s.established_once and not s.refused:
                # A node that was served and left (or reset itself out of the Connection's
                # reset budget): take its next handshake at once, nothing to back off from.
                backoff = BACKOFF_MIN_S
                event(logging.DEBUG, "new_connection", source=source, result=result)
                continue
            # Failures without a useful session (garbage, refused key, handshake errors):
            # back off, discarding input meanwhile, doubling up to BACKOFF_MAX_S.
            event(logging.DEBUG, "new_connection", "fresh Connection after %.2f s" % backoff,
                  source=source, result=result)
            self._wait(backoff, transport, self.source_stats(source))
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _serial_loop(self, url, baud):
        stats = self.source_stats(url)
        backoff = BACKOFF_MIN_S
        warned = False
        while not self.stop_event.is_set():
            try:
                t = SerialTransport(url, baud)
            except TransportGone as e:
                event(logging.WARNING if not warned else logging.DEBUG, "port_unavailable",
                      "retrying in %.1f s" % backoff, source=url, reason=str(e))
                warned = True
                self._wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            stats.opens += 1
            warned = False
            backoff = BACKOFF_MIN_S
            event(logging.INFO, "port_open", source=url, baud=baud)
            try:
                self._serve_transport(t, url, persistent=True)
            except TransportGone as e:
                stats.lost += 1
                event(logging.WARNING, "port_lost", "reopening", source=url, reason=str(e))
                self._wait(BACKOFF_MIN_S)
            finally:
                t.close()

    def _fd_loop(self, fd, name):
        stats = self.source_stats(name)
        stats.opens += 1
        t = FdTransport(fd)
        while not self.stop_event.is_set():
            try:
                self._serve_transport(t, name, persistent=True)
            except TransportGone as e:
                stats.lost += 1
                event(logging.WARNING, "port_lost", "retrying", source=name, reason=str(e))
                self._wait(1.0)

    def _tcp_accept_loop(self, lsock):
        active = []         # _TcpSlot, one per connection being served
        while not self.stop_event.is_set():
            try:
                r, _, _ = select.select([lsock], [], [], POLL_S)
                if not r:
                    continue
                sock, addr = lsock.accept()
            except OSError as e:
                if self.stop_event.is_set():
                    break
                event(logging.WARNING, "accept_failed", source="tcp", reason=str(e))
                self._wait(BACKOFF_MIN_S)
                continue
            active = [s for s in active if s.thread.is_alive() and not s.evicted]
            name = "tcp:%s:%d" % (addr[0], addr[1])
            ip = addr[0]
            pending = [s for s in active if not s.trusted]
            if sum(1 for s in pending if s.ip == ip) >= self.tcp_max_pending_per_address:
                event(logging.WARNING, "tcp_refused", "too many unidentified connections from this address",
                      source=name, limit=self.tcp_max_pending_per_address)
                sock.close()
                continue
            if len(active) >= self.tcp_max_clients or len(pending) >= self.tcp_max_pending:
                victim = self._eviction_victim(pending)
                if victim is None:
                    event(logging.WARNING, "tcp_refused", "no slot free and none to reclaim",
                          source=name, limit=self.tcp_max_clients, pending=len(pending))
                    sock.close()
                    continue
                victim.evict()
                active.remove(victim)
                event(logging.INFO, "tcp_evicted", "oldest unidentified connection dropped for a newcomer",
                      source=victim.name)
            event(logging.INFO, "tcp_accepted", source=name)
            slot = _TcpSlot(sock, name, ip)
            active.append(slot)
            slot.thread = self._spawn(self._tcp_peer, name, sock, name, slot)
        lsock.close()

    @staticmethod
    def _eviction_victim(pending):
        # The oldest pending connection that never sent a byte, or None (module comment).
        silent = [s for s in pending if not s.talking]
        if silent:
            # "Sent nothing" includes bytes not read yet: a node whose thread has not got to
            # its ClientHandshake is talking already.
            p = select.poll()
            for s in silent:
                try:
                    p.register(s.sock, select.POLLIN)
                except (OSError, ValueError):
                    pass
            ready = {fd for fd, _ in p.poll(0)}
            silent = [s for s in silent if s.fileno not in ready]
        return min(silent, key=lambda s: s.since) if silent else None

    def _tcp_peer(self, sock, name, slot=None):
        stats = self.source_stats(name)
        stats.opens += 1
        t = SocketTransport(sock)
        try:
            self._serve_transport(t, name, persistent=False, slot=slot)
            event(logging.INFO, "tcp_closed", source=name)
        except TransportGone as e:
            event(logging.INFO, "tcp_closed", source=name, reason=str(e))
        finally:
            t.close()

    def add_serial(self, url, baud=115200):
        """Serve a serial port (path or pyserial URL), reopening it whenever it fails."""
        self._spawn(self._serial_loop, "serial:" + url, url, baud)

    def add_fd(self, fd, name):
        """Serve an already-open file descriptor (e.g. a pty master). The caller owns it."""
        self._spawn(self._fd_loop, name, fd, name)

    def add_tcp(self, host, port):
        """Listen on host:port and serve each connecting node. Returns the bound port.
        Raises OSError if the address cannot be bound."""
        lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            lsock.bind((host, port))
            lsock.listen(128)      # many nodes may reconnect at once after a collector restart
        except OSError:
            lsock.close()
            raise
        bound = lsock.getsockname()[1]
        self.listeners.append((host, bound))
        event(logging.INFO, "listening", source="tcp", host=host, port=bound)
        self._spawn(self._tcp_accept_loop, "tcp-listen", lsock)
        return bound

    def stop(self, timeout=5.0):
        """Ask every source to finish (established nodes get a clean Disconnect) and wait."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in list(self.threads):
            t.join(max(0.0, deadline - time.monotonic()))

    # -- the end --

    def summary(self):
        """A multi-line text: readings per node, refusals, per-source counters."""
        with self.lock:
            lines = ["ossuary-collect summary: %d readings stored in %s in %.1f s"
                     % (self.stored, self.store.path, time.time() - self.started)]
            if self.nodes:
                for name in sorted(self.nodes):
                    n = self.nodes[name]
                    lines.append("  node %-16s key %s..  readings %d  seq %s..%s  gaps %d  restarts %d"
                                 "  malformed %d  via %s"
                                 % (name, n.key_hex[:16], n.stored, n.first_seq, n.last_seq, n.gaps,
                                    n.restarts, n.malformed, ", ".join(sorted(n.sources))))
            else:
                lines.append("  no node delivered readings")
            if self.refused:
                lines.append("  refused sessions: " + ", ".join(
                    "%s %d" % (k, v) for k, v in sorted(self.refused.items())))
            if self.store_errors:
                lines.append("  store errors: %d" % self.store_errors)
            for name in sorted(self.sources):
                s = self.sources[name]
                lines.append("  source %s: handshakes %d, clean closes %d, resets %d, failed connections %d, "
                             "port lost %d, bytes in %d (+%d discarded), malformed from unidentified %d"
                             % (name, s.sessions, s.closed, s.resets, s.failed, s.lost, s.bytes_in,
                                s.discarded, s.malformed))
            return "\n".join(lines)


# -- command line ----------------------------------------------------------------------

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
    ap.add_argument("--key", default="collector.key", help="collector secret key file (default collector.key)")
    ap.add_argument("--init", action="store_true", help="create the key file if it does not exist")
    ap.add_argument("--known-nodes", default=known_nodes.DEFAULT_PATH,
                    help="known-nodes file (default ./%s)" % known_nodes.DEFAULT_PATH)
    ap.add_argument("--tofu", action="store_true",
                    help="trust on first use: pin the key of a node seen for the first time")
    ap.add_argument("--db", default="readings.db", help="SQLite database (default readings.db)")
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
        store = Store(args.db)
    except StoreError as e:
        return fail(EXIT_DB, str(e))
    writer = LineWriter(sys.stdout, args.output) if args.output else None
    col = Collector(seed, known, store, tofu=args.tofu, writer=writer, max_readings=args.count,
                    log_readings=writer is None)
    col.max_record = args.max_record
    col.tcp_max_clients = args.tcp_max_clients
    col.tcp_max_pending = args.tcp_max_pending
    col.tcp_max_pending_per_address = args.tcp_max_pending_per_address
    col.tcp_handshake_timeout = args.tcp_handshake_timeout
    col.tofu_max_per_source = args.tofu_max_per_source
    col.tofu_max_total = args.tofu_max_total
    col.tofu_rate = args.tofu_rate

    # Ctrl-C and SIGTERM only set a flag: threads finish their current step and the summary
    # is printed. A second Ctrl-C while stopping is ignored (the stop is bounded anyway).
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    event(logging.INFO, "start", db=args.db, known_nodes=args.known_nodes,
          nodes=len(known.entries()), tofu=args.tofu)
    try:
        for host, port in args.listen:
            col.add_tcp(host, port)
    except OSError as e:
        col.stop()
        store.close()
        return fail(EXIT_SOURCE, "cannot listen on %s:%d: %s" % (host, port, e.strerror or e))
    for url in args.ports:
        col.add_serial(url, args.baud)

    while not stopping.is_set() and not col.done_event.is_set():
        stopping.wait(0.2)
    why = "signal" if stopping.is_set() else "count reached"
    event(logging.INFO, "stopping", reason=why)
    col.stop()
    store.close()
    sys.stderr.write(col.summary() + "\n")
    if args.plot:
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


if __name__ == "__main__":
    sys.exit(main())
