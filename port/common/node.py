# The sensor node: read sensors every interval and report them to the collector over Ossuary.
#
# Shared by every port. The board glue (port/<board>/board.py) supplies the hardware through a
# small object, `board`, with:
#   open_transport(cfg) -> stream      a connected UART / socket / serial device for the config's
#                                      transport (joins Wi-Fi first if needed); OSError on failure
#   close_transport(stream)            never raises
#   make_sensors(sensor_cfgs) -> list  sensor objects (port/common/sensors.py); ConfigError
#   random(n) -> bytes                 the cryptographic random source (os.urandom)
#   clock() -> int                     monotonic ms that may wrap (time.ticks_ms)
#   sleep_ms(ms), log(text)            progress lines
#   log_error(text)                    the one line for a fatal configuration error
#   QUEUE_MAX (optional)               default size of the reading queue on this board
#
# The node is an Ossuary CLIENT that trusts exactly one server key, the collector's (no TOFU:
# an unknown server key fails the session). Each reading is one data record holding one
# compact JSON object, and the collector acknowledges what it committed (docs/design.md,
# "Sensor readings"): readings wait in a bounded queue until acked and every new session
# resends what is left, so each reading is stored exactly once.
#
# A reading is identified by (node key, boot, seq): `boot` is random per node boot, `seq`
# counts from 0 per boot. The node sends each queued reading once per session, in seq order,
# from the oldest; the collector answers {"v":2,"ack":N,"boot":BOOT} after committing, and
# only then does a reading leave the queue. A new session (after a reconnect or a Reset)
# resends everything still queued. When the queue is full the OLDEST reading is dropped and
# counted in `dropped`, which every record carries, so the collector can tell readings the
# node gave up on from readings it never heard of. (A dropped reading may have been sent in
# the current session and not yet acked: then the collector may hold it too.)
#
# Memory: the queue is a ring of fixed-size slots allocated once (13 bytes per reading on a
# board with single-precision floats, 17 elsewhere: sensor index, value as the platform's
# float, uptime as an int64), not a list of records: the JSON text is made
# when a reading is sent. seq needs no slot: queued readings are consecutive (readings are
# taken in seq order and leave only from the oldest end), so the slot i places after the
# oldest holds seq `first + i`. (Every name and string constant here is a qstr that stays on
# a board's heap: the node keeps few of them.)
#
# Sampling never stops: the main loop drives the session without blocking (Node._pump,
# sends only when the transport can take a whole record at once) and sleeps at most _SLICE_MS
# between rounds, so a reading is taken when due whether the link is up, down, handshaking
# or cut. (The one thing it cannot slice is the handshake's own arithmetic, one Connection
# step: ~2.5 s per side on an RP2040; a sample that falls due meanwhile is taken right after.)
#
# Serial transports run the secure channel over the link layer (docs/LINK.md) unless the
# config says "link": false (bare protocol 1, for libossuary peers); TCP never uses it. The
# node drives its ossuary_micro.link.Link itself (_read, _write: port bytes in, link frames
# out), as it drives its Connection, so ossuary_io is never loaded on a board. The link
# survives cuts by itself; when its peer restarts (PEER_RESET) the node starts a new session
# over the same link at once.
#
# Failure handling: a Reset is retried inside the session by the core; a closed session,
# transport error, handshake timeout or rejected collector key ends the session, and the node
# reconnects after an exponential backoff (retry_min_ms .. retry_max_ms, reset to the minimum
# after a session in which readings were acknowledged).

import gc
import json
import sys
import time
from array import array
from binascii import hexlify

from ossuary_micro.errors import OssuaryError, ConnectionClosed, ConnectionFailed, ConnectionReset
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# ossuary_micro/events.py's values (tests/test_node_queue.py checks that they match), as
# private constants: compiled into the code, not looked up in this module's globals.
_CLIENT = const(0)
_NEED_DATA = const(0)
_HANDSHAKE_DONE = const(1)
_UNTRUSTED_KEY = const(2)
_DATA = const(3)
_RESET = const(4)
_CLOSED = const(5)
_END_OF_STREAM = const(6)

# The connection module is imported where a session starts, not here: node.main reads the
# config with nodeconfig and drops it before the connection code is loaded, so the two are
# never on the heap together; and only the configured protocol's connection module is ever
# loaded (protocol 1: connection.py; protocol 2: connection2.py and noise.py). The node drives
# the connection itself (Node._pump and the methods after it), not with ossuary_io's general
# SecureStream: ~10 KB less heap on a 32-bit board; nor with ossuary_io's LinkStream over the
# link layer: ~5.5 KB and ~60 interned names less on a serial node.

MAX_RECORD = 256          # largest record either way (docs/design.md); our Connection's max_record
QUEUE_MAX = 16            # default queue size for a board that does not say (13-17 B a reading)
_HANDSHAKE_TIMEOUT_MS = const(15000)
_SLICE_MS = const(10)     # longest sleep between two rounds of the main loop
_WRITE_TIMEOUT_MS = const(5000)  # a transport taking no bytes for this long fails the session
_READ = const(64)         # bytes read from the transport at a time (the connection buffers)
_PEER_RESET = const(3)    # ossuary_micro/link.py's event: the collector's end restarted
# A protocol 1 data packet around a record: 8-byte header, 4-byte sub-header, 16-byte tag
# (protocol 2's is 24 bytes: no sub-header; the larger figure serves both).
_DATA_OVERHEAD = const(28)


class ReadingQueue:
    """Readings not yet acknowledged, oldest first, at most `n` of them.

    Attributes: `first` (seq of the oldest queued reading, = `next_seq` when empty),
    `next_seq` (what the next reading gets), `dropped` (readings this boot dropped because
    the queue was full: cumulative), `len(q)`."""

    def __init__(self, n):
        # Capacity n >= 1 (nodeconfig checks queue_max); len(self.sensor) is the capacity.
        # Reading `seq` is in slot seq % capacity: the queued seqs are consecutive and at
        # most a capacity of them, so no two share a slot, and first / next_seq say which
        # slots are in use. up_ms is an int64 array: a float would not do, as the boards'
        # MicroPython (rp2, esp32) has single-precision floats, exact only up to 2**24 ms
        # (4.7 hours of uptime). value is a float32 array there (all a float holds on such
        # a board, half the bytes of a double), a double elsewhere.
        self.sensor = bytearray(n)
        w = 4 if 1.0 + 2.0 ** -30 == 1.0 else 8
        self.value = array("d" if w == 8 else "f", bytearray(w * n))
        self.up_ms = array("q", bytearray(8 * n))
        self.first = 0
        self.next_seq = 0
        self.dropped = 0

    def __len__(self):
        return self.next_seq - self.first

    def append(self, sensor, value, up_ms):
        """Queue one reading of sensor index `sensor` (0..255); return its seq. A full queue
        first drops its oldest reading (counted in `dropped`)."""
        seq = self.next_seq
        cap = len(self.sensor)
        if seq - self.first == cap:
            self.first += 1
            self.dropped += 1
        i = seq % cap
        self.sensor[i] = sensor
        self.value[i] = value
        self.up_ms[i] = up_ms
        self.next_seq = seq + 1
        return seq

    def get(self, seq):
        """(sensor index, value, up_ms) of queued reading `seq`. IndexError if not queued."""
        if not self.first <= seq < self.next_seq:
            raise IndexError
        i = seq % len(self.sensor)
        return self.sensor[i], self.value[i], self.up_ms[i]

    def ack(self, seq):
        """Remove every queued reading up to and including `seq`; return how many left."""
        n = seq + 1 - self.first
        if n <= 0:
            return 0
        if n > self.next_seq - self.first:
            n = self.next_seq - self.first
        self.first += n
        return n


def format_reading(node, boot, seq, sensor, value, unit, up_ms, dropped, digits=2):
    """The v2 JSON record (bytes) of one reading, or None if `value` is not a finite number
    or the record would exceed MAX_RECORD.

    `node`, `sensor` and `unit` were validated by nodeconfig (no characters that need JSON
    escaping) and `boot` is hex, so the text is assembled directly: compact, fixed field
    order, no dict.
    """
    if value - value != 0:  # NaN or +-inf: JSON has no spelling for them
        return None
    rec = ('{"v":2,"node":"%s","boot":"%s","seq":%d,"sensor":"%s","value":%.*f,"unit":"%s",'
           '"up_ms":%d,"dropped":%d}'
           % (node, boot, seq, sensor, digits, value, unit, up_ms, dropped))
    if len(rec) > MAX_RECORD:
        return None
    return rec.encode()


def parse_ack(data, boot):
    """The N of an ack record {"v":2,"ack":N,"boot":BOOT} for our `boot` (a str), or -1 if
    `data` is anything else: not JSON, another shape, or an ack for another boot (a stale
    one from before our reboot). Never raises for what the peer sent."""
    try:
        obj = json.loads(data)
    except ValueError:  # also UnicodeError, and MicroPython's json errors
        return -1
    if not isinstance(obj, dict) or obj.get("v") != 2 or obj.get("boot") != boot:
        return -1
    n = obj.get("ack")
    # bool is an int on CPython: true is not a sequence number.
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return -1
    return n


class Node:
    """One sensor node. `cfg` is nodeconfig.parse_config()'s dict, `board` the glue object.

    Raises ConfigError from the constructor (sensors the board does not have).
    Counters: `sessions` (handshakes done), `sent` (records written, resends included),
    `acked` (readings acknowledged); the queue's `dropped` (oldest readings dropped from the
    full queue).
    """

    def __init__(self, cfg, board):
        self.cfg = cfg
        self.board = board
        self.sensors = board.make_sensors(cfg["sensors"])
        cap = cfg.get("queue_max") or getattr(board, "QUEUE_MAX", QUEUE_MAX)
        self.queue = ReadingQueue(cap)
        # Random per boot: (node key, boot, seq) names a reading across reboots.
        self.boot = hexlify(board.random(8)).decode()
        self._identity = None  # protocol 2: the node's keys, derived when run() starts
        self.sessions = 0
        self.sent = 0
        self.acked = 0
        self._cursor = 0       # seq of the next reading to send in this session
        self._acked_to = 0     # seqs below this are acknowledged (or were never sent)
        self._skips = []       # seqs the cursor skipped this session (see _ack)
        # Internal state under names the node's modules intern anyway (port, out, link,
        # up_ms: config keys and argument names): each distinct name is a qstr that stays on
        # a board's heap. Not an interface.
        self._conn = self.port = self.out = None   # the session's (_session)
        self.link = None      # the link layer, made on first use and reused (reset) after
        self.up_ms = 0
        self._last_tick = board.clock()
        self._next_due = self._last_tick

    # -- readings --------------------------------------------------------------------------

    def sample(self):
        """Read every sensor once and queue one reading per sensor that gave a number. With
        max_readings set, no reading beyond that many is taken."""
        most = self.cfg["max_readings"]
        for i in range(len(self.sensors)):
            if most and self.queue.next_seq >= most:
                return
            s = self.sensors[i]
            try:
                value = s.read()
                ok = value - value == 0   # not NaN or +-inf: JSON cannot carry those
            except Exception as e:  # a flaky sensor must not stop the node
                self.board.log("sensor %s failed: %s" % (s.name, _why(e)))
                ok = False
            if not ok:
                continue  # no reading, so no seq: a gap in seq always means a drop
            # up_ms: milliseconds since the Node was made, accumulated so that ticks_ms
            # wrap-around is harmless.
            now = self.board.clock()
            self.up_ms += time.ticks_diff(now, self._last_tick)
            self._last_tick = now
            self.queue.append(i, value, self.up_ms)

    def _idle(self, ms):
        # Sleep `ms` while no session is up, still sampling on schedule; _idle(0) only takes a
        # sample if one is due (a round of the session loop). True if the last round took one.
        board = self.board
        end = time.ticks_add(board.clock(), ms)
        while True:
            # A sample if the interval has passed, and the next one scheduled. After a long
            # stall (more than one interval late) the schedule restarts instead of sampling in
            # a burst.
            late = time.ticks_diff(board.clock(), self._next_due)
            took = late >= 0
            if took:
                self.sample()
                every = self.cfg["interval_ms"]
                if late >= every:
                    self._next_due = time.ticks_add(board.clock(), every)
                else:
                    self._next_due = time.ticks_add(self._next_due, every)
            left = time.ticks_diff(end, board.clock())
            if left <= 0:
                return took
            due = time.ticks_diff(self._next_due, board.clock())
            board.sleep_ms(max(1, min(left, due)))

    # -- the session -----------------------------------------------------------------------

    def run(self):
        """Report readings forever, or until max_readings were taken and acknowledged (then
        return the count acknowledged).

        Transport and protocol failures (and any unexpected exception from a session) are
        logged and retried with backoff; only KeyboardInterrupt / SystemExit leave this method.
        """
        gc.collect()  # the config's garbage goes before the connection code loads
        log = self.board.log
        backoff = self.cfg["retry_min_ms"]
        while self.cfg.get("protocol", 2) == 2 and self._identity is None:
            # Protocol 2's keys (the X25519 form of the seed, the Ed25519 public key it
            # announces), derived once before the connection code loads and kept in an
            # Identity. The Ed25519/SHA-512 code that takes is the largest module the node ever
            # loads, and is unloaded after (a protocol 2 handshake uses neither).
            try:
                try:
                    from ossuary_micro.identity import Identity
                    self._identity = Identity(self.cfg["secret_key"])
                    log("protocol 2 keys derived")
                finally:
                    _unload("ossuary_micro.crypto._viper_ed")
                    gc.collect()
            except Exception as e:
                # A full heap above all ("out of memory"); anything else (re-importing the
                # Ed25519 module on a nearly full i386 heap once gave an ImportError) is
                # retried the same way rather than ending the node.
                log("cannot derive the node's keys: %s; retry in %d ms" % (_why(e), backoff))
                self._idle(backoff)
                backoff = min(backoff * 2, self.cfg["retry_max_ms"])
        while True:
            try:
                port = self.board.open_transport(self.cfg)
            except (OSError, OssuaryError, MemoryError) as e:
                log("cannot open transport: %s; retry in %d ms" % (_why(e), backoff))
                self._idle(backoff)
                backoff = min(backoff * 2, self.cfg["retry_max_ms"])
                continue
            acked_before = self.acked
            try:
                # The connection's code (and the link's) loads on first use; on a full heap
                # that import is one more out-of-memory failure, retried after the backoff.
                t = self.cfg["transport"]
                if t["type"] == "uart" and t.get("link", True):
                    # Imported here: a TCP or bare node never loads the link's code (heap on a
                    # board).
                    if self.link is None:
                        from ossuary_micro.link import Link
                        link = Link(self.board.clock, self.board.random, baud=t["baud"])
                        # Port bytes in, one link frame out: made once, as the link's own.
                        self._raw = bytearray(_READ)
                        self._frame = memoryview(bytearray(link.max_frame))
                        self.link = link
                    else:
                        # A reopened port: a new link session, so the collector's end discards
                        # whatever of the last session was still in flight (a half-written
                        # packet included).
                        self.link.reset()
                while True:
                    try:
                        if self._session(port):
                            log("%d readings acknowledged, done" % self.acked)
                            return self.acked
                        break
                    except ConnectionReset:
                        # The collector's end of the link restarted (_link_io; the
                        # Connection itself reports a Reset as an event, never raises this).
                        # Nothing is wrong with the line, so handshake again over it at once.
                        log("session ended: link peer restarted")
            except (MemoryError, OssuaryError) as e:
                # A full heap (MemoryError, or the library's OutOfMemory) is "out of memory".
                log("session ended: %s" % _why(e))
            except OSError as e:
                log("transport error: %s" % _why(e))
            except Exception as e:
                # A bug below us must not end a node in the field: log it by type, reconnect.
                log("unexpected %s: %s" % (type(e).__name__, _why(e)))
            finally:
                self.board.close_transport(port)
            if self.acked > acked_before:
                # Only a session that got readings acknowledged proves the link works; a
                # collector that refuses us right after the handshake must not be retried at
                # full speed.
                backoff = self.cfg["retry_min_ms"]
            log("reconnect in %d ms" % backoff)
            self._idle(backoff)
            backoff = min(backoff * 2, self.cfg["retry_max_ms"])

    def _session(self, port):
        # One Ossuary session over an open transport: handshake, then send what is queued and
        # take acks, never blocking longer than a slice. Returns when the collector closed
        # the session (or proved another key than collector_key), True after max_readings
        # were taken and acknowledged; raises OssuaryError/OSError on failure, MemoryError
        # when the Connection cannot be made (a full heap: the caller logs it and retries
        # after its backoff).
        board = self.board
        log = board.log
        q = self.queue
        cfg = self.cfg
        # A client Connection (protocol 1) or Connection2 (protocol 2, with the Identity
        # run() derived).
        if cfg.get("protocol", 2) == 1:
            from ossuary_micro.connection import Connection
            conn = Connection(_CLIENT, secret_key=cfg["secret_key"],
                              authorized_keys=(cfg["collector_key"],),
                              max_record=MAX_RECORD, random=board.random, clock=board.clock)
        else:
            from ossuary_micro.connection2 import Connection2
            conn = Connection2(_CLIENT, secret_key=self._identity,
                               authorized_keys=(cfg["collector_key"],),
                               max_record=MAX_RECORD, random=board.random, clock=board.clock)
        self._conn = conn
        self.port = port
        self._in_start = self._in_end = 0
        if self.out is None:
            # Made once per node: one packet out (a handshake message, or a data record and
            # a REKEY record before it: 24 bytes more), and a small read window.
            self.out = memoryview(bytearray(max(conn.max_packet, 208) + 24))
            self._in = memoryview(bytearray(_READ))
        done = False
        up = False                 # established, readings may be sent
        refused = False            # the collector proved another key than collector_key
        since = board.clock()      # start of the current handshake
        try:
            while True:
                busy = self._idle(0)
                while True:
                    # Every event the line has for us now: all acks waiting are taken before
                    # anything else is sent, so the queue never fills with readings the
                    # collector has already acknowledged.
                    ev = self._pump()
                    if ev == _NEED_DATA:
                        break
                    busy = True
                    if ev == _DATA:
                        # An ack covers only readings sent in this session (below the
                        # cursor). Anything else (another boot's ack, a record of a later
                        # protocol version) is ignored.
                        self._ack(parse_ack(bytes(conn.plaintext[:conn.data_len]), self.boot))
                    elif ev == _HANDSHAKE_DONE:
                        up = True
                        self.sessions += 1
                        # A new session: everything still queued goes again, oldest first.
                        self._cursor = self._acked_to = q.first
                        self._skips = []
                        log("connected to collector (session %d, %d readings queued)"
                            % (self.sessions, len(q)))
                    elif ev == _UNTRUSTED_KEY:
                        # No TOFU on a node: the only key it trusts is collector_key.
                        refused = True
                        conn.reject_key()
                    elif ev == _RESET:
                        up = False
                        since = board.clock()
                        log("session reset (%d so far); handshaking again" % conn.reset_count)
                    elif ev == _CLOSED:
                        err = conn.error
                        if refused:
                            log("collector key is not the configured collector_key: "
                                "session refused")
                        elif err is None or isinstance(err, ConnectionClosed):
                            log("collector closed the session")
                        else:
                            raise err
                        return
                    elif ev == _END_OF_STREAM:
                        # Protocol 2: the collector half-closed, so no more acks will come.
                        # End the session (our close follows in `finally`); unacked readings
                        # stay queued for the next one.
                        log("collector ended its stream")
                        return
                if not up:
                    if time.ticks_diff(board.clock(), since) > _HANDSHAKE_TIMEOUT_MS:
                        raise ConnectionFailed("handshake not complete after %d ms"
                                               % _HANDSHAKE_TIMEOUT_MS)
                else:
                    self._catch_up()
                    while self._cursor < q.next_seq:
                        try:
                            # The record of the reading at the cursor, carrying the drop
                            # count as of now.
                            idx, value, up_ms = q.get(self._cursor)
                            s = self.sensors[idx]
                            rec = format_reading(cfg["name"], self.boot, self._cursor, s.name,
                                                 value, s.unit, up_ms, q.dropped, s.digits)
                        except MemoryError:
                            # A full heap (garbage not yet collected): the reading stays
                            # queued and goes next round; the node carries on.
                            gc.collect()
                            break
                        if rec is not None:
                            # Over the link, only when its window takes the whole packet now:
                            # a full window would make the write wait for the collector's
                            # acks. Sockets and UARTs buffer a record at once.
                            link = self.link
                            if link and link.writable < len(rec) + _DATA_OVERHEAD:
                                break
                            self._write(conn.send_data(rec, self.out))
                            self.sent += 1
                        self._cursor += 1
                        busy = True
                    most = cfg["max_readings"]
                    if most and q.next_seq >= most and not len(q):
                        done = True
                        self._close(1000)  # Disconnect, then take the collector's echo
                        return True
                if not busy:
                    due = time.ticks_diff(self._next_due, board.clock())
                    board.sleep_ms(_SLICE_MS if due > _SLICE_MS else (due if due > 1 else 1))
        finally:
            if not done:
                # Tell the collector we are going (best effort: never raises); no lingering,
                # the transport may be dead.
                try:
                    self._close(0)
                except Exception:
                    pass
            conn.close()        # wipes the session keys
            self._conn = self.port = None

    def _catch_up(self):
        # The full queue dropped readings this session had not sent yet: the cursor skips
        # them, and remembers them so that an ack above them does not count them (_ack).
        q = self.queue
        if self._cursor >= q.first:
            return
        k = self._skips
        if k and k[-1] == self._cursor:
            k[-1] = q.first
        elif len(k) < 16:
            k += [self._cursor, q.first]
        else:
            k[-1] = q.first   # bounded: beyond 8 separate gaps, acked may undercount
        self._cursor = q.first

    def _ack(self, n):
        # The collector acknowledged every reading up to seq n (-1: not an ack of ours).
        # `acked` counts each reading this session sent and had acknowledged once, those the
        # full queue dropped meanwhile included (the collector has them); only a reading
        # still queued leaves the queue.
        if n >= self._cursor:
            n = self._cursor - 1
        if n < self._acked_to:
            return
        self.queue.ack(n)
        got = n + 1 - self._acked_to
        k = self._skips         # [lo, hi, lo, hi...]: seqs this session skipped, ascending
        while k and k[0] <= n:
            if k[1] <= n + 1:
                got -= k[1] - k[0]
                del k[0:2]
            else:
                got -= n + 1 - k[0]
                k[0] = n + 1
        self.acked += got
        self._acked_to = n + 1

    # -- the session's I/O (what ossuary_io's SecureStream does for a host, cut to a node) --

    def _pump(self):
        # One round without waiting: write what the connection has to send, feed it what the
        # transport has, and return its next event (_NEED_DATA: nothing more for now).
        conn = self._conn
        while True:
            self._flush()
            ev = conn.next_event()
            self._flush()
            if ev != _NEED_DATA:
                return ev
            if self._in_start >= self._in_end:
                self._in_start = 0
                self._in_end = self._read()
                if not self._in_end:
                    return _NEED_DATA
            took = conn.receive_data(self._in[self._in_start:self._in_end])
            if not took:
                return _NEED_DATA
            self._in_start += took

    def _read(self):
        # Read what the transport has into the read window, without waiting; the count. Over
        # the link: what the link delivered, after one round of its I/O. Raises
        # ConnectionFailed on end of file, OSError when the transport fails, ConnectionReset.
        link = self.link
        if link is None:
            return self._take(self._in)
        self._link_io()
        return link.recv_into(self._in)

    def _take(self, buf):
        # What the port has, into buf, without waiting; the count.
        t = self.port
        n = len(buf)
        try:
            # A transport that says how much is waiting (a UART) is asked first.
            if hasattr(t, "any"):
                a = t.any()
                if a < n:
                    n = a
                if n <= 0:
                    return 0
            n = t.readinto(buf, n)
        except OSError as e:
            # EAGAIN, EINTR or ETIMEDOUT (how MicroPython reports a socket timeout): only
            # "not now".
            if (e.args[0] if e.args else 0) in (11, 4, 110):
                return 0
            raise
        if n is None:
            return 0        # a non-blocking socket with nothing to read
        if not n and hasattr(t, "recv"):
            # End of file on a socket (a UART or a raw tty returns 0 when idle).
            raise ConnectionFailed("transport closed before the session was closed")
        return n

    def _link_io(self):
        # One round of the link layer's I/O: what the port has goes in, its timers and events
        # run, every frame it has (data, acks, retransmissions, keepalives) goes out. The
        # stream bytes it delivered wait in it for recv_into. Raises ConnectionReset when the
        # collector's end restarted (the link then discarded both directions' data).
        link = self.link
        n = self._take(self._raw)
        if n:
            link.receive_data(self._raw, n)
        while True:
            ev = link.next_event()
            if ev == _PEER_RESET:
                raise ConnectionReset("link peer restarted")
            if ev == _NEED_DATA:
                break
        while True:
            n = link.data_to_send(self._frame)
            if not n:
                return
            self._put(self._frame, n)

    def _flush(self):
        # Write every handshake, Reset or Disconnect packet the connection has.
        while True:
            n = self._conn.data_to_send(self.out)
            if not n:
                return
            self._write(n)

    def _write(self, n):
        # Write the first n bytes of the output buffer whole: to the port, or into the link
        # (a full window takes more once the collector's acks came in). ConnectionFailed
        # when nothing is taken for _WRITE_TIMEOUT_MS.
        link = self.link
        if link is None:
            return self._put(self.out, n)
        off = 0
        since = self.board.clock()
        while True:
            k = link.send(self.out, off, n - off)
            off += k
            self._link_io()
            if off >= n:
                return
            if k:
                since = self.board.clock()
            elif time.ticks_diff(self.board.clock(), since) > _WRITE_TIMEOUT_MS:
                raise ConnectionFailed("transport accepts no data")
            else:
                self.board.sleep_ms(1)

    def _put(self, buf, n):
        # Write buf[:n] whole to the port, looping over partial writes (a non-blocking
        # socket, a busy UART). ConnectionFailed when the port takes nothing for
        # _WRITE_TIMEOUT_MS.
        off = 0
        since = self.board.clock()
        while off < n:
            try:
                w = self.port.write(buf[off:n])
            except OSError as e:
                if (e.args[0] if e.args else 0) not in (11, 4, 110):  # as in _take
                    raise
                w = 0
            if w:
                off += w
                since = self.board.clock()
            elif time.ticks_diff(self.board.clock(), since) > _WRITE_TIMEOUT_MS:
                raise ConnectionFailed("transport accepts no data")
            else:
                self.board.sleep_ms(1)

    def _close(self, ms):
        # Send Disconnect (protocol 2, established: the authenticated CLOSE record); then, for
        # `ms` milliseconds, read and drop what arrives (the collector's echo), so that it does not
        # meet the next session on a serial line. Stops early on end of file.
        conn = self._conn
        if not conn.closed:
            conn.disconnect()
        self._flush()
        end = time.ticks_add(self.board.clock(), ms)
        while ms and time.ticks_diff(end, self.board.clock()) > 0:
            try:
                if not self._read():
                    self.board.sleep_ms(_SLICE_MS)
            except ConnectionFailed:
                return


def main(board, path, read_key=None):
    """Load the config at `path`, build the Node and run it. Returns an exit status:
    0 (max_readings sent), 2 (configuration error, reported as one line), 130 (Ctrl-C).
    `read_key(path) -> 32 bytes` reads secret_key_file (default: keystore.read_or_create)."""
    from nodeconfig import make_node
    node = make_node(board, path, read_key)
    # The config is checked and the key read: their modules (and the boot code in nodeconfig)
    # are not needed again, and on a board a loaded module is heap (nodeconfig alone is ~6 KB
    # on a 32-bit port). Only ConfigError, which sensors.py holds, stays alive.
    del make_node
    for m in ("nodeconfig", "keystore"):
        _unload(m)
    if node is None:
        return 2
    cfg = node.cfg
    board.log("node %s starting: %d sensor(s), every %d ms"
              % (cfg["name"], len(node.sensors), cfg["interval_ms"]))
    try:
        node.run()
    except KeyboardInterrupt:
        return 130
    return 0


def _unload(name):
    # Forget a loaded module so that the collector can free it (on a board a module's code is
    # heap): MicroPython keeps a submodule in sys.modules and as an attribute of its package.
    # A later import loads it again.
    if name in sys.modules:
        del sys.modules[name]
    i = name.rfind(".")
    p = sys.modules.get(name[:i]) if i > 0 else None
    if p is not None:
        try:
            delattr(p, name[i + 1:])
        except (AttributeError, KeyError):
            pass


def _why(e):  # (nodeconfig's name for its own: one interned name for both)
    # One short line for a log: the message, or the class name if there is none.
    if isinstance(e, MemoryError):
        return "out of memory"
    s = str(e)
    return s if s else type(e).__name__
