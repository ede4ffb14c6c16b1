# The collector: serves any number of sources (serial ports, TCP connections) concurrently,
# one thread each, running back-to-back sessions (session.py) on each, and hands validated
# readings to its sink (sinks.py).
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

import logging
import select
import socket
import threading
import time

from ossuary_micro import wire
from host_tools.known_nodes import KnownNodesError
from host_tools.collector.logs import log, event
from host_tools.collector.transports import (TransportGone, LinkRestarted, SerialTransport,
                                             FdTransport, SocketTransport, LinkTransport, POLL_S)
from host_tools.collector.session import (Session, Packets, Backlog, IDENTIFY_TIMEOUT_S,
                                          NODE_MAX_RECORD)

BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 30.0
MAX_TCP_CLIENTS = 256           # concurrent TCP connections, identified or not
MAX_TCP_PENDING = 128           # ... of which not yet identified (a restart brings many at once)
MAX_TCP_PENDING_PER_ADDRESS = 8  # ... not yet identified, from one IP address
TCP_HANDSHAKE_TIMEOUT_S = 10.0  # a TCP peer must complete a handshake within this
TOFU_MAX_PER_SOURCE = 8         # TOFU pins per source (serial port, or TCP peer IP) per run
TOFU_MAX_TOTAL = 64             # TOFU pins per run
TOFU_RATE_PER_MIN = 10          # TOFU pins per minute (a burst of this many, then refilled)
REFUSAL_LOG_S = 60.0        # a refused key is logged loudly at most once per this period


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
        self.boots = {}           # boot id -> highest seq stored (v2 readings)
        self.dropped = {}         # boot id -> readings the node dropped from its full queue
        self.duplicates = 0       # readings delivered again and ignored (already stored)
        self.store_retries = 0    # failed commits of this node's readings (all retried)


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
        self.stale = 0           # Disconnects dropped before a session's first packet
        self.malformed = 0       # malformed records from not-yet-identified nodes
        self.acks = 0            # ack records sent
        # Serial link layer counters (docs/LINK.md), summed over the port's links so far.
        self.link_retransmits = 0
        self.link_bad_frames = 0
        self.link_restarts = 0   # the peer started a new link session (a node reboot)
        self.live_link = None    # the Link in use now, or None
        self.link_used = False

    def link_counters(self):
        """(retransmits, bad frames, peer restarts), or None if no link layer ran here."""
        if not self.link_used:
            return None
        r, b = self.link_retransmits, self.link_bad_frames
        if self.live_link is not None:
            r += self.live_link.retransmits
            b += self.live_link.bad_frames
        return r, b, self.link_restarts

    def link_closed(self, link):
        self.link_retransmits += link.retransmits
        self.link_bad_frames += link.bad_frames
        self.live_link = None



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

    `seed`: the collector's 32-byte secret key. `known`: a KnownNodes. `sink`: where readings go (sinks.Sink).
    `tofu`: pin unknown nodes on first sight. `writer`: optional LineWriter. `max_readings`:
    stop after storing this many (0: never). `on_reading(node, source, reading)`: optional
    callback, called in the source's thread after a reading was stored.

    Limits (attributes, set before adding sources; module comment and README): max_record,
    tcp_max_clients, tcp_max_pending, tcp_max_pending_per_address, tcp_handshake_timeout,
    identify_timeout, tofu_max_per_source, tofu_max_total, tofu_rate (pins per minute).
    """

    def __init__(self, seed, known, sink, tofu=False, writer=None, max_readings=0,
                 on_reading=None, log_readings=False):
        self.seed = seed
        self.known = known
        self.sink = sink
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
        self.protocol = "any"         # wire protocols served: "any", "1" or "2"
        self._identity2 = None        # protocol 2's form of `seed`, made once (identity2())
        self._p2_keys = set()         # node keys that completed a protocol 2 session this run
        self.node_protocols = {}      # node name -> set of wire protocols it used
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

    def identity2(self):
        """The collector key's protocol 2 Identity (its X25519 form), shared by sessions."""
        with self.lock:
            if self._identity2 is None:
                from ossuary_micro.connection2 import Identity
                self._identity2 = Identity(self.seed)
            return self._identity2

    def note_protocol(self, entry, protocol):
        """An identified node `entry` is served in wire protocol `protocol`."""
        with self.lock:
            self.node_protocols.setdefault(entry.name, set()).add(protocol)
            if protocol == 2:
                self._p2_keys.add(bytes(entry.key))

    def used_protocol_2(self, key):
        """True if node key `key` completed an identified protocol 2 session in this run."""
        with self.lock:
            return bytes(key) in self._p2_keys

    def source_stats(self, name):
        with self.lock:
            s = self.sources.get(name)
            if s is None:
                s = self.sources[name] = SourceStats(name)
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

    def commit(self, rows):
        """Store reading rows (dicts: a parsed reading plus ts, node, node_key, source) through
        the sink, all or nothing, then count, echo and report them. Raises SinkError."""
        new = self.sink.store(rows)
        fresh = set(map(id, new))
        with self.lock:
            for r in rows:
                self._count_stored(r, id(r) in fresh)
            total = self.stored
        for r in new:
            if self.writer is not None:
                self.writer.write(r["ts"], r["node"], r["node_key"], r["source"], r)
            if self.log_readings:
                event(logging.INFO, "reading", source=r["source"], node=r["node"], boot=r["boot"] or "-",
                      seq=r["seq"], sensor=r["sensor"], value=r["value"], unit=r["unit"])
            if self.on_reading is not None:
                try:
                    self.on_reading(r["node"], r["source"], r)
                except Exception as e:      # a display callback must not kill a source thread
                    event(logging.ERROR, "callback_failed", repr(e))
        if self.max_readings and total >= self.max_readings:
            self.done_event.set()
        return new

    def _count_stored(self, r, new):
        # Caller holds self.lock.
        st = self.nodes.get(r["node"])
        if st is None:
            st = self.nodes[r["node"]] = NodeStats(r["node"], r["node_key"])
        st.sources.add(r["source"])
        seq, boot = r["seq"], r["boot"]
        if not new:
            st.duplicates += 1
            return
        if boot:
            # v2: (boot, seq) identifies the reading; a new boot id is a restart.
            if boot not in st.boots:
                st.boots[boot] = seq
                if len(st.boots) > 1:
                    st.restarts += 1
                    event(logging.INFO, "node_restarted", "new boot id", node=r["node"], boot=boot)
            elif seq > st.boots[boot] + 1:
                st.gaps += 1
            st.boots[boot] = max(st.boots[boot], seq)
            st.dropped[boot] = max(st.dropped.get(boot, 0), r["dropped"])
        elif st.last_seq is not None:
            # v1: no boot id; a seq that goes back is taken as a restart.
            if seq < st.last_seq:
                st.restarts += 1
                event(logging.INFO, "node_restarted", "seq went back", node=r["node"],
                      seq=seq, previous=st.last_seq)
            elif seq > st.last_seq + 1:
                st.gaps += 1
        if st.first_seq is None:
            st.first_seq = seq
        st.last_seq = seq
        st.stored += 1
        self.stored += 1

    def store_failed(self, rows, err, failures, retry_in, source):
        """Count a failed commit of `rows` (retried by the session in `retry_in` s). Logged
        loudly the first time in a row, then at DEBUG until it succeeds."""
        with self.lock:
            self.store_errors += 1
            for name in {r["node"] for r in rows}:
                st = self.nodes.get(name)
                if st is None:
                    r = next(r for r in rows if r["node"] == name)
                    st = self.nodes[name] = NodeStats(name, r["node_key"])
                st.store_retries += 1
        event(logging.ERROR if failures == 1 else logging.DEBUG, "store_failed",
              "%s; %d reading(s) kept, retrying in %.1f s" % (err, len(rows), retry_in),
              source=source, readings=len(rows), attempt=failures)

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
                try:
                    data = transport.read()
                except LinkRestarted:
                    continue
                if data and stats is not None:
                    stats.discarded += len(data)

    def _serve_transport(self, transport, source, persistent, slot=None, backlog=None):
        # Sessions back to back on one open transport. Raises TransportGone. `backlog`:
        # uncommitted readings, kept across reopenings of a serial port by the caller.
        backoff = BACKOFF_MIN_S
        stats = self.source_stats(source)
        packets = Packets(wire.max_packet(self.max_record), stats)
        backlog = backlog if backlog is not None else Backlog()
        while not self.stop_event.is_set():
            deadline = None if persistent else time.monotonic() + self.tcp_handshake_timeout
            s = Session(self, transport, source, deadline, slot,
                        pin_source=("tcp:" + slot.ip) if slot is not None else None,
                        packets=packets, backlog=backlog, persistent=persistent,
                        protocol=None)      # from the first packet (session.py)
            try:
                result = s.run()
            except LinkRestarted:
                # The node restarted its link (a reboot): the session over it is gone; the
                # next one starts on a clean byte stream, at once.
                stats.link_restarts += 1
                event(logging.INFO, "link_restarted", "the peer started a new link session",
                      source=source)
                packets = Packets(wire.max_packet(self.max_record), stats)
                continue
            if result == "rehandshake":
                continue        # a node starts over on this line: serve it at once
            if result == "stopped" or not persistent:
                if backlog.items:
                    # The sink failed to the end: these were never acked, so a v2 node still
                    # holds them and resends them to the next session.
                    event(logging.WARNING, "readings_not_committed",
                          "left to the node to resend (v1 readings are lost)",
                          source=source, readings=len(backlog.items))
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
            self._wait(backoff, transport, stats)
            stats.discarded += len(packets.buf)
            packets = Packets(wire.max_packet(self.max_record), stats)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _serial_loop(self, url, baud, link):
        stats = self.source_stats(url)
        backlog = Backlog()
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
            event(logging.INFO, "port_open", source=url, baud=baud, link="on" if link else "off")
            try:
                self._serve_transport(self._linked(t, t.port, baud, link, stats), url,
                                      persistent=True, backlog=backlog)
            except TransportGone as e:
                stats.lost += 1
                event(logging.WARNING, "port_lost", "reopening", source=url, reason=str(e))
                self._wait(BACKOFF_MIN_S)
            finally:
                if stats.live_link is not None:
                    stats.link_closed(stats.live_link)
                t.close()

    def _fd_loop(self, fd, name, link):
        stats = self.source_stats(name)
        stats.opens += 1
        t = self._linked(FdTransport(fd), fd, 115200, link, stats)
        backlog = Backlog()
        while not self.stop_event.is_set():
            try:
                self._serve_transport(t, name, persistent=True, backlog=backlog)
            except TransportGone as e:
                stats.lost += 1
                event(logging.WARNING, "port_lost", "retrying", source=name, reason=str(e))
                self._wait(1.0)

    @staticmethod
    def _linked(transport, port, baud, link, stats):
        # The transport itself (bare protocol 1), or the link layer on its port.
        if not link:
            return transport
        lt = LinkTransport(port, baud)
        stats.live_link = lt.link
        stats.link_used = True
        return lt

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

    def add_serial(self, url, baud=115200, link=True):
        """Serve a serial port (path or pyserial URL), reopening it whenever it fails.
        `link`: run the serial link layer (docs/LINK.md) under the secure channel; False for
        peers that speak bare protocol 1 on the line (libossuary)."""
        self._spawn(self._serial_loop, "serial:" + url, url, baud, link)

    def add_fd(self, fd, name, link=False):
        """Serve an already-open file descriptor (e.g. a pty master). The caller owns it.
        `link`: as for add_serial (off by default here: a raw fd is usually a test's pty)."""
        self._spawn(self._fd_loop, name, fd, name, link)

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
                     % (self.stored, self.sink.name, time.time() - self.started)]
            if self.nodes:
                for name in sorted(self.nodes):
                    n = self.nodes[name]
                    protos = "/".join(str(p) for p in sorted(self.node_protocols.get(name, ()))) or "-"
                    lines.append("  node %-16s key %s..  readings %d  boots %d  seq %s..%s  gaps %d"
                                 "  duplicates ignored %d  dropped by node %d  store retries %d"
                                 "  restarts %d  malformed %d  via %s  protocol %s"
                                 % (name, n.key_hex[:16], n.stored, len(n.boots), n.first_seq,
                                    n.last_seq, n.gaps, n.duplicates, sum(n.dropped.values()),
                                    n.store_retries, n.restarts, n.malformed,
                                    ", ".join(sorted(n.sources)), protos))
            else:
                lines.append("  no node delivered readings")
            if self.refused:
                lines.append("  refused sessions: " + ", ".join(
                    "%s %d" % (k, v) for k, v in sorted(self.refused.items())))
            if self.store_errors:
                lines.append("  store errors: %d" % self.store_errors)
            lines.extend(getattr(self.sink, "summary_lines", list)())
            for name in sorted(self.sources):
                s = self.sources[name]
                lines.append("  source %s: handshakes %d, clean closes %d, resets %d, failed connections %d, "
                             "port lost %d, bytes in %d (+%d discarded), malformed from unidentified %d, acks sent %d"
                             % (name, s.sessions, s.closed, s.resets, s.failed, s.lost, s.bytes_in,
                                s.discarded, s.malformed, s.acks))
                lc = s.link_counters()
                if lc is not None:
                    lines.append("    link layer on %s: retransmitted frames %d, bad frames %d, "
                                 "peer restarts %d" % ((name,) + lc))
            return "\n".join(lines)

