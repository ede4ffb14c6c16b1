# The collector's logging: structured events (name + key=value fields) as text or JSON lines.
#
# Every module of the collector logs through `event` on the one logger "ossuary.collect", so
# tests and operators see one stream whatever part of the collector speaks.

import json
import logging
import sys

from ossuary_micro.keys import format_key

log = logging.getLogger("ossuary.collect")


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

