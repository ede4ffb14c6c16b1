# One node session: a sans-I/O Connection (AUTH_SERVER, tofu_clients) driven over one open
# transport, the trust decisions about the key it proves, and the validation of its readings.
#
# A node is identified by its verified key; the name it sends in its readings is only needed
# the first time, to pin or to notice a changed key. Nothing an unidentified or refused node
# sends is stored.
#
# Trust is re-checked, not only decided at the handshake: every reading is checked against the
# known-nodes file (re-read when it changes) before it is stored, and each open session checks
# its node at least every REVOCATION_CHECK_S, so `known remove` cuts off a connected node within
# about a second and nothing it sends afterwards is stored.
#
# Exactly-once readings (docs/design.md "Sensor readings"): a validated reading goes into the
# transport's Backlog; when the input is drained (or a batch is full) the backlog is committed
# to the sink in one transaction, and only then is the node sent an ack record,
# {"v":2,"ack":N,"boot":B}: every reading of boot B up to seq N it sent in this session is
# stored. A failed commit is retried with backoff, in order; meanwhile later readings wait
# behind it, and once BACKLOG_MAX wait the session stops reading (the node keeps the rest
# queued; nothing is dropped). Duplicates (a resend of something already stored) are ignored
# by the sink and acked like the rest. v1 readings (no boot id) are stored but never acked:
# a v1 node would not understand an ack.
#
# Both wire protocols (docs/PROTOCOL.md): the session holds no Connection until the first whole
# packet has arrived; its type says the protocol (host_tools.protocol_detect), and a protocol 1
# Connection or a protocol 2 Connection2 is made for it, with the same trust model above it
# (the same Ed25519 node keys, known-nodes file, TOFU and identification by first reading) and
# the same readings and acks. Collector.protocol ("any", "1", "2") may refuse one of them. A
# node key that completed a protocol 2 session in this run is refused in protocol 1 until the
# collector restarts (a downgrade: protocol 1's Reset and Disconnect are forgeable). Protocol 2
# adds the half-close: a node's END commits and acks what it sent, then the session closes.
#
# One Connection per handshake on a serial line: the session feeds the Connection whole
# protocol-1 packets (so it always knows where one starts) and, on a persistent transport,
# hands a new ClientHandshake that arrives after this Connection has seen packets to a fresh
# Connection (result "rehandshake"). A node that reboots is therefore served at once, and the
# core's reset limit counts per session, not over the life of the port. A partial packet
# that stays incomplete for PARTIAL_PACKET_S is discarded, so a node that died mid-packet
# cannot make its next handshake look like the rest of that packet for long.

import itertools
import json
import logging
import time

from ossuary_micro import (Connection, AUTH_SERVER, NEED_DATA, HANDSHAKE_DONE, UNTRUSTED_KEY,
                           DATA, RESET, CLOSED)
from ossuary_micro.connection2 import Connection2, END_OF_STREAM
from ossuary_micro.errors import ConnectionClosed
from ossuary_micro.keys import format_key
from ossuary_micro import wire, wire2
from ossuary_micro.wire import MAX_CONTROL_PACKET
from host_tools.protocol_detect import protocol_of
from host_tools.store import BadReading, parse_reading
from host_tools.collector.logs import event, short
from host_tools.collector.sinks import SinkError
from host_tools.collector.transports import POLL_S

IDENTIFY_TIMEOUT_S = 10.0   # an unknown key must send a valid reading (its name) within this
IDENTIFY_MAX_BAD = 3        # ... or at most this many malformed records first
# Readings are small JSON objects (a node sends at most port/common/node.py's MAX_RECORD, 256):
# 1024 leaves room and bounds how long a forged length field can make a session wait for a
# packet (at most 1052 bytes instead of 16 KiB); a larger length fails the Connection at once.
NODE_MAX_RECORD = 1024
REVOCATION_CHECK_S = 1.0    # an open session re-checks its node's trust this often
BAD_LOG_FIRST = 3           # malformed readings logged per session before rate-limiting
BAD_LOG_EVERY = 100
BACKLOG_MAX = 256           # readings received, not yet committed: beyond, stop reading the source
COMMIT_BATCH = 64           # commit at once when this many wait, even if more input is there
STORE_RETRY_MIN_S = 0.1     # a failed commit is retried after this, doubling ...
STORE_RETRY_MAX_S = 5.0     # ... up to this
PARTIAL_PACKET_S = 2.0      # an incomplete packet older than this is discarded (1052 B at 9600 baud: 1.1 s)

_handshakes = itertools.count(1)    # tags readings with the handshake they arrived in (acks)


def _ms_clock():
    return int(time.monotonic() * 1000) & 0x3FFFFFFF


def _now():
    # Seconds on the clock the backlog's retry schedule and the packet ages run on. One
    # function, so a test that drives a Session on a fake clock (tests/test_fleet_props.py)
    # replaces it as it replaces _ms_clock: a retry time taken from one clock and compared on
    # another never comes due.
    return time.monotonic()


class Packets:
    """The byte stream of one transport cut into protocol-1 packets (8-byte header, body length
    first). Bounded: holds at most one read plus one packet. Outlives a Session, so a new
    ClientHandshake found by one session is where the next one starts."""

    def __init__(self, max_packet, stats):
        self.buf = bytearray()
        self.max_packet = max_packet
        self.since = None           # when the oldest incomplete packet started to arrive
        self.stats = stats          # SourceStats: counts the bytes of packets never completed

    def add(self, data, now):
        if data:
            if not self.buf:
                self.since = now
            self.buf += data

    def _length(self):
        # Whole length of the first packet, or None while its header is incomplete.
        if len(self.buf) < wire.HEADER_LEN:
            return None
        return wire.HEADER_LEN + wire.be16(self.buf, 0)

    def has_packet(self):
        """True if next() would return a packet now."""
        n = self._length()
        return n is not None and (n > self.max_packet or len(self.buf) >= n)

    def starts_client_handshake(self):
        """True if a whole ClientHandshake or protocol 2 message 1 (msg_id 0) is next: a node
        starting a session."""
        n = self._length()
        if n is None or len(self.buf) < n or wire.be16(self.buf, 2) != 0:
            return False
        t = wire.be16(self.buf, 4)
        return ((t == wire.T_CLIENT_HANDSHAKE and n == wire.HEADER_LEN + wire.CLIENT_HS_LEN)
                or (t == wire2.T2_MSG1 and n == wire.HEADER_LEN + wire2.MSG1_LEN))

    def starts_disconnect(self):
        """True if a whole Disconnect (either protocol) is next."""
        n = self._length()
        return (n is not None and len(self.buf) >= n
                and wire.be16(self.buf, 4) in (wire.T_DISCONNECT, wire2.T2_DISCONNECT))

    def next(self, now):
        """The next whole packet (bytes) or None. A length the Connection cannot hold comes
        out at once with what follows, for the Connection to fail on as it should."""
        n = self._length()
        if n is not None and n > self.max_packet:
            n = len(self.buf)
        elif n is None or len(self.buf) < n:
            if self.buf and now - self.since > PARTIAL_PACKET_S:
                self.stats.discarded += len(self.buf)
                del self.buf[:]
            return None
        pkt = bytes(self.buf[:n])
        del self.buf[:n]
        self.since = now
        return pkt


class Backlog:
    """Readings received on one transport and not yet committed, oldest first, each with the
    handshake it arrived in; and the retry schedule while the sink fails."""

    def __init__(self):
        self.items = []             # (handshake tag, reading row)
        self.retry_at = 0.0
        self.delay = STORE_RETRY_MIN_S
        self.failures = 0           # consecutive failed commits

    def full(self):
        return len(self.items) >= BACKLOG_MAX

    def due(self, now):
        return bool(self.items) and now >= self.retry_at


class Session:
    """One Connection on one open transport, from first byte to CLOSED (or stop).

    run() returns "closed", "refused", "stopped", "timeout" or (persistent transports)
    "rehandshake", and raises TransportGone when the transport fails; it never raises for
    anything the peer sends. `packets` and `backlog` belong to the transport and are handed
    from one session to the next. `protocol`: 1 or 2 makes that Connection at once (for a
    caller that feeds `conn` itself); None (what the collector's sources pass) makes it from
    the first packet, in the protocol that packet says."""

    def __init__(self, collector, transport, source, handshake_deadline=None, slot=None, pin_source=None,
                 packets=None, backlog=None, persistent=False, protocol=1):
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
        self.conn = None            # made when the first packet says the protocol (_start)
        self.protocol = None
        self.out = None
        if protocol is not None:    # known in advance (a caller driving the Connection itself)
            self._make_conn(protocol)
        self.node = None            # KnownNode once identified
        self.unknown_key = None     # verified but not (yet) trusted key
        self.unknown_since = 0.0
        self.unknown_bad = 0
        self.bad_logged = 0
        self.name_warned = False
        self.refused = False
        self.established_once = False
        self.next_trust_check = 0.0
        self.packets = packets if packets is not None else \
            Packets(wire.max_packet(collector.max_record), self.stats)
        self.backlog = backlog if backlog is not None else Backlog()
        self.persistent = persistent
        self.fed = 0                # packets given to this Connection
        self.handshake = None       # tag of the current established handshake (acks)
        self.acked_in = None        # the handshake whose highest acked seqs `acked` holds
        self.acked = {}             # boot -> highest seq acked in that handshake

    def _flush(self):
        n = self.conn.data_to_send(self.out)
        if n:
            self.t.write(bytes(self.out[:n]))
        return n

    def _start(self, pkt):
        # The first whole packet: make the Connection of its protocol and give it the packet.
        # Returns None, or "refused" when this collector does not serve that protocol.
        c = self.c
        protocol = protocol_of(pkt)
        if c.protocol != "any" and str(protocol) != c.protocol:
            self.refused = True
            loud, suppressed = c.count_refused("protocol", None)
            event(logging.WARNING if loud else logging.DEBUG, "refused_protocol",
                  "the peer speaks wire protocol %d; this collector serves only %s (--protocol)"
                  % (protocol, c.protocol), source=self.source, protocol=protocol)
            return "refused"
        self._make_conn(protocol)
        self.fed = 1
        self.conn.receive_data(pkt)
        return None

    def _drop_stale_disconnect(self, now):
        # A Disconnect before this session's first packet can close nothing of it: it is the
        # previous session's last word on this line (a node's echo of our Disconnect, say).
        # Fed to a fresh Connection it would fail it, whose own Disconnect would then end the
        # node's next session, and so on for ever (tests/test_fleet_props.py found this).
        if self.fed or not self.packets.starts_disconnect():
            return False
        pkt = self.packets.next(now)
        self.stats.stale += 1
        event(logging.DEBUG, "stale_disconnect", "a Disconnect before any handshake; ignored",
              source=self.source, size=len(pkt))
        return True

    def feed_packet(self, now):
        """Give the Connection the next whole packet of the transport's bytes: "fed" if one
        was fed or a stale Disconnect dropped (_drop_stale_disconnect), None if no whole
        packet is there, "rehandshake" if a node starts a new session on a persistent line:
        a fresh Connection takes it from there, and this one sends nothing more (a Disconnect
        would hit the new session)."""
        if self.persistent and self.fed and self.packets.starts_client_handshake():
            return "rehandshake"
        if self._drop_stale_disconnect(now):
            return "fed"
        pkt = self.packets.next(now)
        if pkt is None:
            return None
        self.fed += 1
        # The Connection holds a whole packet, so it takes all of this one (an oversized one
        # fails it, and a failed Connection takes anything).
        self.conn.receive_data(pkt)
        return "fed"

    def _make_conn(self, protocol):
        c = self.c
        if protocol == 2:
            self.conn = Connection2(AUTH_SERVER, secret_key=c.identity2(),
                                    authorized_keys=c.known.keys(), max_record=c.max_record,
                                    clock=_ms_clock, tofu_clients=True)
            room = wire2.RECORD_OVERHEAD        # a REKEY record may precede a data record
        else:
            self.conn = Connection(AUTH_SERVER, secret_key=c.seed,
                                   authorized_keys=c.known.keys(), max_record=c.max_record,
                                   clock=_ms_clock, tofu_clients=True)
            room = 0
        self.protocol = protocol
        self.out = bytearray(max(self.conn.max_packet, MAX_CONTROL_PACKET) + room)

    def _await_first_packet(self):
        # Before the Connection exists: read until a whole packet is there (honouring stop,
        # the TCP handshake deadline and a backlog left by the previous session on this
        # transport). Returns None once self.conn is made, else run()'s result.
        while True:
            if self.c.stop_event.is_set():
                self._commit_now()
                return "stopped"
            now = _now()
            if self.handshake_deadline is not None and now > self.handshake_deadline:
                event(logging.INFO, "handshake_timeout", "no handshake in time; hanging up",
                      source=self.source)
                return "timeout"
            b = self.backlog
            if b.due(now):
                self._commit(now)
                continue
            if b.full():
                self.c.stop_event.wait(min(POLL_S, max(0.0, b.retry_at - now)))
                continue
            if self._drop_stale_disconnect(now):
                continue
            pkt = self.packets.next(now)
            if pkt is not None:
                return self._start(pkt)
            data = self.t.read()
            if data:
                self.stats.bytes_in += len(data)
                self.packets.add(data, _now())
                if self.slot is not None:
                    self.slot.talking = True

    def run(self):
        if self.conn is None:
            first = self._await_first_packet()
            if first is not None:
                return first
        conn = self.conn
        try:
            while True:
                self._flush()
                if conn.closed:
                    return "refused" if self.refused else "closed"
                if self.c.stop_event.is_set():
                    self._commit_now()
                    if conn.established:
                        conn.disconnect()       # tell the node we are going
                        self._flush()
                    return "stopped"
                ev = conn.next_event()
                if ev == NEED_DATA:
                    now = _now()
                    if self.node is not None and now >= self.next_trust_check:
                        self.next_trust_check = now + REVOCATION_CHECK_S
                        if not self.c.still_trusted(self.node):
                            self._revoked()
                            continue
                    if self.handshake_deadline is not None and not self.established_once and \
                            now > self.handshake_deadline:
                        event(logging.INFO, "handshake_timeout", "no handshake in time; hanging up",
                              source=self.source)
                        return "timeout"
                    if self.unknown_key is not None and \
                            now - self.unknown_since > self.c.identify_timeout:
                        self._refuse("unidentified", None,
                                     "node with unknown key %s sent no valid reading within %g s; refused"
                                     % (format_key(self.unknown_key), self.c.identify_timeout))
                        continue
                    b = self.backlog
                    if b.due(now) and (b.full() or len(b.items) >= COMMIT_BATCH
                                       or not self.packets.has_packet()):
                        self._commit(now)
                        continue
                    if b.full():
                        # The sink is failing and BACKLOG_MAX readings wait: read nothing more
                        # (the node keeps its queue) until a retry gets them in.
                        self.c.stop_event.wait(min(POLL_S, max(0.0, b.retry_at - now)))
                        continue
                    r = self.feed_packet(now)
                    if r == "rehandshake":
                        event(logging.INFO, "new_handshake", "a node starts a new session on this line",
                              source=self.source, node=self.node.name if self.node else "-")
                        return r
                    if r:
                        continue
                    data = self.t.read()
                    if data:
                        self.stats.bytes_in += len(data)
                        self.packets.add(data, _now())
                        if self.slot is not None:
                            self.slot.talking = True
                elif ev == DATA:
                    self._on_data(bytes(conn.plaintext[:conn.data_len]))
                elif ev == END_OF_STREAM:
                    # Protocol 2 half-close: the node sends no more readings. Commit and ack
                    # what it sent, then close the session (authenticated CLOSE).
                    event(logging.INFO, "node_ended", "the node ended its stream",
                          source=self.source, node=self.node.name if self.node else "-")
                    self._commit_now()
                    conn.disconnect()
                    self.stats.closed += 1
                    event(logging.INFO, "session_closed", source=self.source,
                          node=self.node.name if self.node else "-", reason="node ended its stream")
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
                    # Readings of the old session are still committed, but no longer acked
                    # (the node resends what it holds; the sink ignores the repeats).
                    self.handshake = None
                    self._set_node(None)
                    self.unknown_key = None
                elif ev == CLOSED:
                    self._flush()
                    self._commit_now()
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
        if entry is not None:
            self.c.note_protocol(entry, self.protocol)

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
        self.handshake = next(_handshakes)
        self.stats.sessions += 1
        if self.protocol == 1 and self.c.used_protocol_2(key):
            self.unknown_key = key
            self._refuse("downgrade", None,
                         "node key %s completed a protocol 2 session in this run and now speaks "
                         "protocol 1; refused, nothing stored (protocol 1's Reset and Disconnect "
                         "can be forged; restart the collector to accept the change)"
                         % format_key(key), key=format_key(key))
            return
        entry = self.c.lookup_key(key)
        if entry is not None:
            self._set_node(entry)
            event(logging.INFO, "node_connected", source=self.source, node=entry.name, key=short(key),
                  protocol=self.protocol)
        else:
            self.unknown_key = key
            self.unknown_since = _now()
            self.unknown_bad = 0
            event(logging.INFO, "unknown_key", "handshake done; identifying the node by its first reading",
                  source=self.source, key=format_key(key), protocol=self.protocol)

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
        row = dict(reading, ts=time.time(), node=self.node.name, node_key=self.node.key_hex,
                   source=self.source)
        self.backlog.items.append((self.handshake, row))

    # -- commits and acks --

    def _commit(self, now):
        # Everything waiting, in one transaction; acks only after it is in.
        b = self.backlog
        rows = [r for _, r in b.items]
        try:
            self.c.commit(rows)
        except SinkError as e:
            b.failures += 1
            b.retry_at = now + b.delay
            self.c.store_failed(rows, e, b.failures, b.delay, self.source)
            b.delay = min(b.delay * 2, STORE_RETRY_MAX_S)
            return
        if b.failures:
            event(logging.WARNING, "store_recovered", "readings committed after failed attempts",
                  source=self.source, retries=b.failures, readings=len(rows))
        b.failures = 0
        b.delay = STORE_RETRY_MIN_S
        b.retry_at = 0.0
        items, b.items = b.items, []
        self._ack(items)

    def _commit_now(self):
        # One last attempt when the session ends (the schedule no longer matters).
        if self.backlog.items:
            self.backlog.retry_at = 0.0
            self._commit(_now())

    def _ack(self, items):
        # Cumulative ack per boot: the highest seq committed among the v2 readings that arrived
        # in the current handshake. Within one handshake records arrive in order and none can
        # go missing unnoticed (a lost record fails the next one's nonce and resets), and all
        # of them up to here are committed; readings from before a Reset are not acked.
        # The ack never goes back within a handshake: a repeat of an older seq committed in a
        # later batch (a duplicate the node resent) re-acks the highest seq acked so far.
        if self.handshake is None or not self.conn.established:
            return
        if self.acked_in != self.handshake:
            self.acked_in, self.acked = self.handshake, {}
        last = {}
        for tag, r in items:
            if tag == self.handshake and r["boot"]:
                b = r["boot"]
                last[b] = max(r["seq"], last.get(b, -1), self.acked.get(b, -1))
        self.acked.update(last)
        for boot, seq in last.items():
            rec = json.dumps({"v": 2, "ack": seq, "boot": boot}, separators=(",", ":")).encode()
            n = self.conn.send_data(rec, self.out)
            self.t.write(bytes(self.out[:n]))
            self.stats.acks += 1

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
                      key=short(entry.key), protocol=self.protocol)
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

