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

import logging
import time

from ossuary_micro import (Connection, AUTH_SERVER, NEED_DATA, HANDSHAKE_DONE, UNTRUSTED_KEY,
                           DATA, RESET, CLOSED)
from ossuary_micro.errors import ConnectionClosed
from ossuary_micro.keys import format_key
from ossuary_micro.wire import MAX_CONTROL_PACKET
from host_tools.store import BadReading, parse_reading
from host_tools.collector.logs import event, short

IDENTIFY_TIMEOUT_S = 10.0   # an unknown key must send a valid reading (its name) within this
IDENTIFY_MAX_BAD = 3        # ... or at most this many malformed records first
# Readings are small JSON objects (a node sends at most port/common/node.py's MAX_RECORD, 256):
# 1024 leaves room and bounds how long a forged length field can make a session wait for a
# packet (at most 1052 bytes instead of 16 KiB); a larger length fails the Connection at once.
NODE_MAX_RECORD = 1024
REVOCATION_CHECK_S = 1.0    # an open session re-checks its node's trust this often
BAD_LOG_FIRST = 3           # malformed readings logged per session before rate-limiting
BAD_LOG_EVERY = 100


def _ms_clock():
    return int(time.monotonic() * 1000) & 0x3FFFFFFF


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

