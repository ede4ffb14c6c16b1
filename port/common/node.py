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
#
# The node is an Ossuary CLIENT that trusts exactly one server key, the collector's (no TOFU:
# an unknown server key fails the session). Each reading is one data record holding one
# compact JSON object (docs/design.md, "Sensor readings"). Readings keep being taken while the
# link is down; the newest QUEUE_MAX wait in a queue and go out after the next handshake, so
# a gap in `seq` at the collector means readings were dropped, never renumbered.
#
# Failure handling: a Reset is retried inside the session by the core; a closed session,
# transport error, handshake timeout or rejected collector key ends the session, and the node
# reconnects after an exponential backoff (retry_min_ms .. retry_max_ms, reset to the minimum
# after a session that delivered readings).

import sys
import time

from ossuary_micro import Connection, CLIENT
from ossuary_micro.errors import OssuaryError
from ossuary_io.stream import SecureStream
from ossuary_io.errors import StreamTimeout, UntrustedKey

FORMAT_VERSION = 1
MAX_RECORD = 256          # largest reading record (docs/design.md); also our Connection's max_record
QUEUE_MAX = 16            # readings kept while the link is down (16 * <=256 bytes)
HANDSHAKE_TIMEOUT_MS = 15000
SEND_TIMEOUT_MS = 10000   # a send that waits for a re-handshake longer than this ends the session


def format_reading(node, seq, sensor, value, unit, up_ms, digits=2):
    """The JSON record (bytes) for one reading, or None if `value` is not a finite number.

    `node`, `sensor` and `unit` were validated by nodeconfig (no characters that need JSON
    escaping), so the text is assembled directly: compact, fixed field order, no dict.
    """
    if value - value != 0:  # NaN or +-inf: JSON has no spelling for them
        return None
    rec = ('{"v":%d,"node":"%s","seq":%d,"sensor":"%s","value":%s,"unit":"%s","up_ms":%d}'
           % (FORMAT_VERSION, node, seq, sensor, "%.*f" % (digits, value), unit, up_ms))
    if len(rec) > MAX_RECORD:
        return None
    return rec.encode()


class _Done(Exception):
    # max_readings reached: unwinds out of the session loop.
    pass


class Node:
    """One sensor node. `cfg` is nodeconfig.parse_config()'s dict, `board` the glue object.

    Raises ConfigError from the constructor (sensors the board does not have).
    """

    def __init__(self, cfg, board):
        self.cfg = cfg
        self.board = board
        self.name = cfg["name"]
        self.interval_ms = cfg["interval_ms"]
        self.max_readings = cfg["max_readings"]
        self.sensors = board.make_sensors(cfg["sensors"])
        self.seq = 0           # next reading's sequence number, from 0 at boot
        self.sent = 0          # readings delivered to the transport
        self.dropped = 0       # readings lost to a full queue or an unreadable sensor
        self.queue = []        # encoded records not yet sent, oldest first
        self.sessions = 0      # successful handshakes
        self._up_ms = 0
        self._last_tick = board.clock()
        self._next_due = self._last_tick

    # -- time ------------------------------------------------------------------------------

    def uptime_ms(self):
        """Milliseconds since the Node was made; accumulated so ticks_ms wrap-around is harmless."""
        now = self.board.clock()
        self._up_ms += time.ticks_diff(now, self._last_tick)
        self._last_tick = now
        return self._up_ms

    def _ms_until_due(self):
        return time.ticks_diff(self._next_due, self.board.clock())

    # -- readings --------------------------------------------------------------------------

    def sample(self):
        """Read every sensor once and queue one record per sensor."""
        for s in self.sensors:
            try:
                value = s.read()
            except Exception as e:  # a flaky sensor must not stop the node
                self.board.log("sensor %s failed: %s" % (s.name, e))
                value = float("nan")
            rec = format_reading(self.name, self.seq, s.name, value, s.unit,
                                 self.uptime_ms(), s.digits)
            self.seq += 1
            if rec is None:
                self.dropped += 1
                continue
            if len(self.queue) >= QUEUE_MAX:
                self.queue.pop(0)
                self.dropped += 1
            self.queue.append(rec)

    def _sample_if_due(self):
        # Take a sample if the interval has passed; schedule the next one. After a long stall
        # (more than one interval late) restart the schedule instead of sampling in a burst.
        late = -self._ms_until_due()
        if late < 0:
            return False
        self.sample()
        if late >= self.interval_ms:
            self._next_due = time.ticks_add(self.board.clock(), self.interval_ms)
        else:
            self._next_due = time.ticks_add(self._next_due, self.interval_ms)
        return True

    def _idle(self, ms):
        # Sleep `ms` while no session is up, still sampling on schedule.
        end = time.ticks_add(self.board.clock(), ms)
        while True:
            self._sample_if_due()
            left = time.ticks_diff(end, self.board.clock())
            if left <= 0:
                return
            due = self._ms_until_due()
            self.board.sleep_ms(max(1, min(left, due)))

    # -- the session -----------------------------------------------------------------------

    def run(self):
        """Report readings forever, or until max_readings were sent (then return that count).

        Transport and protocol failures (and any unexpected exception from a session) are
        logged and retried with backoff; only KeyboardInterrupt / SystemExit leave this method.
        """
        log = self.board.log
        backoff = self.cfg["retry_min_ms"]
        while True:
            try:
                stream = self.board.open_transport(self.cfg)
            except (OSError, OssuaryError) as e:
                log("cannot open transport: %s; retry in %d ms" % (_reason(e), backoff))
                self._idle(backoff)
                backoff = min(backoff * 2, self.cfg["retry_max_ms"])
                continue
            sent_before = self.sent
            try:
                self._session(stream)
            except _Done:
                log("sent %d readings, done" % self.sent)
                return self.sent
            except UntrustedKey:
                log("collector key is not the configured collector_key: session refused")
            except OssuaryError as e:
                log("session ended: %s" % _reason(e))
            except OSError as e:
                log("transport error: %s" % _reason(e))
            except Exception as e:
                # A bug below us must not end a node in the field: log it by type, reconnect.
                log("unexpected %s: %s" % (type(e).__name__, _reason(e)))
            finally:
                self.board.close_transport(stream)
            if self.sent > sent_before:
                # Only a session that delivered readings proves the link works; a collector
                # that refuses us right after the handshake must not be retried at full speed.
                backoff = self.cfg["retry_min_ms"]
            log("reconnect in %d ms" % backoff)
            self._idle(backoff)
            backoff = min(backoff * 2, self.cfg["retry_max_ms"])

    def _session(self, stream):
        # One Ossuary session over an open transport; returns when the peer closed cleanly,
        # raises OssuaryError/OSError on failure, _Done after max_readings.
        board = self.board
        conn = Connection(CLIENT, secret_key=self.cfg["secret_key"],
                          authorized_keys=(self.cfg["collector_key"],),
                          max_record=MAX_RECORD, random=board.random, clock=board.clock)
        s = SecureStream(conn, stream, clock=board.clock)
        done = False
        try:
            s.handshake(HANDSHAKE_TIMEOUT_MS)
            self.sessions += 1
            board.log("connected to collector (session %d)" % self.sessions)
            resets = conn.reset_count
            scratch = bytearray(64)
            while True:
                self._sample_if_due()
                while self.queue:
                    s.send(self.queue[0], SEND_TIMEOUT_MS)
                    self.queue.pop(0)
                    self.sent += 1
                    if self.max_readings and self.sent >= self.max_readings:
                        done = True
                        s.close()  # Disconnect, then wait briefly for the collector's echo
                        raise _Done()
                wait = self._ms_until_due()
                if wait > 0:
                    # Wait for the next sample while still reading, so Resets and a
                    # Disconnect from the collector are handled promptly.
                    try:
                        if s.recv_into(scratch, wait) == 0:
                            board.log("collector closed the session")
                            return
                        # The collector sends nothing in protocol v1: ignore stray data.
                    except StreamTimeout:
                        pass
                if conn.reset_count != resets:
                    resets = conn.reset_count
                    board.log("session reset (%d so far); handshaking again" % resets)
        finally:
            if not done:
                # Tell the collector we are going (best effort: never raises) and wipe the
                # session keys; no lingering, the transport may be dead.
                s.close(linger_ms=0)


def main(board, path, read_key=None):
    """Load the config at `path`, build the Node and run it. Returns an exit status:
    0 (max_readings sent), 2 (configuration error, reported as one line), 130 (Ctrl-C).
    `read_key(path) -> 32 bytes` reads secret_key_file (default: keystore.read_or_create)."""
    from nodeconfig import ConfigError, load_config
    if read_key is None:
        def read_key(p):
            # A missing secret_key_file is created on the spot, so the node's secret key can
            # be born on the board and never leave it (port/common/keystore.py).
            import keystore
            from ossuary_micro.crypto import get_backend
            return keystore.read_or_create(p, board.random, get_backend().ed25519_public,
                                           board.log)
    try:
        cfg = load_config(path, read_key)
        node = Node(cfg, board)
    except ConfigError as e:
        board.log_error("config error: %s" % e)
        return 2
    # The config is checked and the key read: their modules are not needed again, and on a
    # board a loaded module is heap (nodeconfig alone is ~6 KB on a 32-bit port). Only
    # ConfigError, which sensors.py holds, stays alive.
    del load_config
    for m in ("nodeconfig", "keystore"):
        if m in sys.modules:
            del sys.modules[m]
    board.log("node %s starting: %d sensor(s), every %d ms"
              % (cfg["name"], len(node.sensors), cfg["interval_ms"]))
    try:
        node.run()
    except KeyboardInterrupt:
        return 130
    return 0


def _reason(e):
    # One short line for a log: the message, or the class name if there is none.
    s = str(e)
    return s if s else type(e).__name__
