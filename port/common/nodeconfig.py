# Sensor-node configuration: load node_config.json, check every field before the node uses it,
# and build the node from it (make_node: the boot code node.main unloads with this module).
#
# One JSON file on the board holds everything the node needs (docs/boards.md, "Configuration"):
#
#   {"name": "greenhouse-1",
#    "transport": {"type": "uart", "id": 0, "baud": 115200, "tx": 0, "rx": 1},
#            or  {"type": "uart", "device": "/dev/ttyUSB0", "baud": 115200}      (unix port)
#            (uart: "link": false runs the secure channel bare on the line, for libossuary
#             peers; default: the link layer, docs/LINK.md)
#            or  {"type": "tcp", "host": "192.168.1.10", "port": 7700}
#    "wifi": {"ssid": "...", "password": "..."},          (boards with tcp only)
#    "interval_s": 10,
#    "secret_key": "<64 hex>"  or  "secret_key_file": "node_key.txt",
#    "collector_key": "<64 hex>",
#    "sensors": [{"type": "mcu_temp"}, {"type": "adc", "pin": 26, "name": "light"}],
#    "max_readings": 0,
#    "queue_max": 256,                                    (readings kept until acknowledged)
#    "protocol": 2}                                       (2: Noise XX, the default; 1: libossuary's)
#
# Pure logic shared by the node (MicroPython) and ossuary-deploy (CPython): it reads one file
# at most (the secret key file) and raises ConfigError, whose message is one line naming the
# field, never the key text.

import json

from ossuary_micro.keys import parse_key
from ossuary_micro.errors import KeyFormatError
from sensors import ConfigError  # noqa: F401 (part of this module's interface)

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# Largest config file we read: a real one is well under 1 KiB; bounded so a wrong path
# (a log, a firmware image) cannot exhaust a board's heap. A private const: no interned name.
_MAX_CONFIG_BYTES = const(4096)

# (The tables below are constants inside the functions that use them, not module-level
# names: every name of a loaded module stays interned on a board's heap.)


def check_name(value, what):
    """Return `value` if it is a valid node/sensor name, else raise ConfigError."""
    if not isinstance(value, str) or not 1 <= len(value) <= 32:
        raise ConfigError("%s must be a string of 1-32 characters" % what)
    # Names that go into readings: [A-Za-z0-9_.-] (docs/design.md, "Sensor readings").
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
    for c in value:
        if c not in chars:
            raise ConfigError("%s may only use letters, digits, '_', '.' and '-'" % what)
    return value


def _int(cfg, key, what, lo, hi, default=None):
    # An integer lo..hi; any number (float too) when the bounds are floats. One function for
    # both: one interned name fewer on a board's heap.
    v = cfg.get(key, default)
    num = isinstance(lo, float)
    # bool is an int subclass on CPython: "true" is not a baud rate.
    if (not (isinstance(v, int) or num and isinstance(v, float)) or isinstance(v, bool)
            or not lo <= v <= hi):
        # Whole messages, not "a number" / "an integer" pieces: a string constant of under 10
        # characters is an interned name on a board.
        raise ConfigError(("%s must be a number %s..%s" if num else "%s must be an integer %s..%s")
                          % (what, lo, hi))
    return v


def _str(cfg, key, what, hi=64, default=None):
    v = cfg.get(key, default)
    if not isinstance(v, str) or not 1 <= len(v) <= hi:
        raise ConfigError("%s must be a string of 1-%d characters" % (what, hi))
    return v


def parse_config(cfg, read_key=None):
    """Check a decoded config object; return a new dict with parsed values.

    Keys become bytes (`secret_key`, `collector_key`, 32 bytes each); `interval_ms` replaces
    `interval_s`. `read_key(path) -> 32 bytes` reads `secret_key_file` (default: open and
    parse it; it may raise OSError/ValueError/KeyFormatError).
    Raises ConfigError.
    """
    if not isinstance(cfg, dict):
        raise ConfigError("the config must be a JSON object")
    keys = ("name", "transport", "wifi", "interval_s", "secret_key", "secret_key_file",
            "collector_key", "sensors", "max_readings", "retry_min_ms", "retry_max_ms",
            "repl_uart", "queue_max", "protocol", "comment")
    for k in cfg:
        if k not in keys:
            # A misspelt key silently falling back to a default is worse than an error.
            raise ConfigError("unknown config key %r" % (k,))
    name = check_name(cfg.get("name"), "name")
    # The transport (checked here, not in a function of its own: on a board every function
    # name is interned).
    t = cfg.get("transport")
    if not isinstance(t, dict):
        raise ConfigError("transport must be an object with a \"type\"")
    kind = t.get("type")
    if kind == "uart":
        tr = {"type": "uart", "baud": _int(t, "baud", "transport.baud", 300, 4000000, 115200)}
        if "device" in t:
            # unix port: a serial device path (a pty slave in the demo and tests)
            tr["device"] = _str(t, "device", "transport.device", 256)
        else:
            tr["id"] = _int(t, "id", "transport.id", 0, 7, 0)
            for pin in ("tx", "rx"):
                if pin in t:
                    tr[pin] = _int(t, pin, "transport.%s" % pin, 0, 63)
        tr["timeout_ms"] = _int(t, "timeout_ms", "transport.timeout_ms", 1, 10000, 50)
        link = t.get("link", True)
        if not isinstance(link, bool):
            raise ConfigError("transport.link must be true or false")
        tr["link"] = link
    elif kind == "tcp":
        tr = {"type": "tcp", "host": _str(t, "host", "transport.host", 253),
              "port": _int(t, "port", "transport.port", 1, 65535)}
    else:
        raise ConfigError("transport.type must be \"uart\" or \"tcp\"")
    out = {"name": name, "transport": tr}
    out["interval_ms"] = int(_int(cfg, "interval_s", "interval_s", 0.05, 86400, 10) * 1000)
    out["max_readings"] = _int(cfg, "max_readings", "max_readings", 0, 1 << 30, 0)
    out["retry_min_ms"] = _int(cfg, "retry_min_ms", "retry_min_ms", 10, 600000, 500)
    out["retry_max_ms"] = _int(cfg, "retry_max_ms", "retry_max_ms", out["retry_min_ms"],
                               3600000, max(30000, out["retry_min_ms"]))
    # None: the board's default (node.py). Each queued reading takes 13 bytes of heap
    # (17 where floats are doubles).
    out["queue_max"] = (_int(cfg, "queue_max", "queue_max", 1, 100000)
                        if "queue_max" in cfg else None)
    # The secure channel's wire protocol (docs/PROTOCOL.md): 1 (libossuary 0.5.1) or 2 (Noise
    # XX, one identity for both). The collector serves both.
    out["protocol"] = _int(cfg, "protocol", "protocol", 1, 2, 2)
    rr = cfg.get("repl_uart", False)
    if not isinstance(rr, bool):
        raise ConfigError("repl_uart must be true or false")
    out["repl_uart"] = rr
    if "collector_key" not in cfg:
        raise ConfigError("collector_key is missing (the collector's public key, 64 hex)")
    try:
        out["collector_key"] = parse_key(cfg["collector_key"])
    except KeyFormatError:
        raise ConfigError("collector_key must be 64 hex characters")
    if "secret_key" in cfg and "secret_key_file" in cfg:
        raise ConfigError("give secret_key or secret_key_file, not both")
    if "secret_key" in cfg:
        try:
            out["secret_key"] = parse_key(cfg["secret_key"])
        except KeyFormatError:
            raise ConfigError("secret_key must be 64 hex characters")
    elif "secret_key_file" in cfg:
        path = _str(cfg, "secret_key_file", "secret_key_file", 256)
        try:
            if read_key is not None:
                out["secret_key"] = read_key(path)
            else:
                out["secret_key"] = parse_key(_read_small(path, 256))
        except KeyFormatError:
            raise ConfigError("secret_key_file %s does not hold 64 hex characters" % path)
        except (OSError, ValueError) as e:
            raise ConfigError("cannot read secret_key_file %s: %s" % (path, _why(e)))
    else:
        raise ConfigError("secret_key is missing (the node's secret key, 64 hex; "
                          "ossuary-deploy generates one)")
    wifi = cfg.get("wifi")
    if wifi is not None:
        if not isinstance(wifi, dict):
            raise ConfigError("wifi must be an object with ssid and password")
        # (The message whole, not a field name for _str: "wifi.ssid" would be one more
        # interned name on a board.)
        ssid = wifi.get("ssid")
        if not isinstance(ssid, str) or not 1 <= len(ssid) <= 32:
            raise ConfigError("wifi.ssid must be a string of 1-32 characters")
        out["wifi"] = {"ssid": ssid, "password": wifi.get("password", "")}
        if not isinstance(out["wifi"]["password"], str) or len(out["wifi"]["password"]) > 64:
            raise ConfigError("wifi.password must be a string of at most 64 characters")
    # The sensors: None is the board's default sensors.
    sensors = cfg.get("sensors")
    if sensors is not None:
        if not isinstance(sensors, list) or not 1 <= len(sensors) <= 8:
            raise ConfigError("sensors must be a list of 1-8 objects")
        checked = []
        names = []
        for i, s in enumerate(sensors):
            what = "sensors[%d]" % i
            at = what + "."  # + the field's name (short string constants are interned names)
            if not isinstance(s, dict):
                raise ConfigError("%s must be an object" % what)
            c = dict(s)
            c["type"] = check_name(s.get("type"), at + "type")
            if "name" in s:
                check_name(s["name"], at + "name")
                if s["name"] in names:
                    raise ConfigError("%s.name %s is used twice" % (what, s["name"]))
                names.append(s["name"])
            if "unit" in s:
                # A unit: 0-8 printable ASCII characters, no quotes (checked here, not in a
                # function of its own: one interned name fewer on a board).
                u = s["unit"]
                if not isinstance(u, str) or len(u) > 8:
                    raise ConfigError("%sunit must be a string of at most 8 characters" % at)
                for c in u:
                    c = ord(c)  # codes, not one-character strings: fewer interned strings
                    if c < 32 or c > 126 or c == 34 or c == 92:  # outside " " .. "~", '"', '\'
                        raise ConfigError("%sunit must be printable ASCII without quotes" % at)
            for k in ("scale", "offset", "start", "step", "min", "max"):
                if k in s:
                    _int(s, k, at + k, -1e9, 1e9)
            if "pin" in s:
                _int(s, "pin", at + "pin", 0, 63)
            checked.append(c)
        sensors = checked
    out["sensors"] = sensors
    return out


def _why(e):
    # A short reason for an OSError/ValueError: MicroPython's OSError has no strerror.
    s = getattr(e, "strerror", None)
    if s:
        return s
    if e.args and isinstance(e.args[0], int):
        return "errno %d" % e.args[0]
    return str(e) or type(e).__name__


def _read_small(path, hi):
    # Read a text file of at most `hi` bytes; ValueError if it is bigger. In chunks:
    # f.read(hi + 1) makes MicroPython ask for hi + 1 contiguous bytes up front, whatever
    # the file's size, which a board's fragmented heap may not have.
    parts = []
    n = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(256)
            if not chunk:
                break
            n += len(chunk)
            if n > hi:
                raise ValueError("file is larger than %d bytes" % hi)
            parts.append(chunk)
    return b"".join(parts).decode()


def load_config(path, read_key=None):
    """Read and check the config file at `path`. Returns parse_config()'s dict; `read_key`
    is passed on (how to read secret_key_file).

    Raises ConfigError (missing/unreadable file, not JSON, invalid field).
    """
    try:
        text = _read_small(path, _MAX_CONFIG_BYTES)
    except (OSError, ValueError) as e:
        # UnicodeError is a ValueError on both interpreters.
        raise ConfigError("cannot read config %s: %s" % (path, _why(e)))
    try:
        cfg = json.loads(text)
    except ValueError:
        raise ConfigError("config %s is not valid JSON" % path)
    try:
        return parse_config(cfg, read_key)
    except ConfigError as e:
        raise ConfigError("config %s: %s" % (path, e))


def make_node(board, path, read_key=None):
    """The node's boot (node.main's arguments): load the config at `path` and build the Node.
    Returns it, or None after a configuration error, reported as one line with
    board.log_error. Here rather than in node.py: node.main unloads this module before the
    node runs, and this code with it (on a board a loaded module is heap)."""
    from node import Node
    if read_key is None:
        def read_key(p):
            # A missing secret_key_file is created on the spot, so the node's secret key can
            # be born on the board and never leave it (port/common/keystore.py).
            import keystore
            from ossuary_micro.crypto import get_backend
            return keystore.read_or_create(p, board.random, get_backend().ed25519_public,
                                           board.log)
    try:
        return Node(load_config(path, read_key), board)
    except ConfigError as e:
        board.log_error("config error: %s" % e)
        return None
