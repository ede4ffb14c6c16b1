# Board glue for the MicroPython unix port: serial device or TCP transport, simulated sensor.
#
# The "UART" is a serial device path: a pty slave in the demo and tests, or a USB-serial
# adapter. The unix port has no machine.UART, so the device is opened as a file. Reads must
# return what is there instead of waiting for a full buffer (MicroPython's readinto loops
# until n bytes on a blocking file), so when the termios module exists (the "standard"
# unix build has it) the line is put in raw mode with VMIN=0/VTIME=0: read() returns at once
# with what is buffered and ossuary_io's poll() does the waiting. Without termios the host
# must make the line raw (the demo does: tty.setraw on the pty) and a small wrapper reads
# one byte at a time while poll() says more is ready.

import os
import sys
import time
import select

from sensors import ConfigError, SimulatedTemperature
from netlink import tcp_connect

try:
    import termios
except ImportError:  # builds without termios: see PolledSerial
    termios = None

random = os.urandom   # the kernel's getrandom()/urandom: the unix port's cryptographic source
clock = time.ticks_ms
sleep_ms = time.sleep_ms
# Readings kept until the collector acknowledges them (17 bytes each: 17 KiB: a host has room).
QUEUE_MAX = 1024

_VMIN = 6   # indices into termios cc (Linux)
_VTIME = 5


def log(text):
    print("node: " + text, file=sys.stderr)


def log_error(text):
    print("ossuary-node: " + text, file=sys.stderr)


class PolledSerial:
    """A serial device file read without termios: readinto(buf, n) waits up to timeout_ms
    for a first byte, then takes further bytes one by one while poll() says they are ready,
    so it never blocks waiting for bytes that are not coming. Slow (a few syscalls per
    byte), which is fine at serial speeds."""

    def __init__(self, f, timeout_ms):
        self.f = f
        self.timeout_ms = timeout_ms
        self.poller = select.poll()
        self.poller.register(f, select.POLLIN)
        self.one = bytearray(1)

    def readinto(self, buf, n=-1):
        if n < 0 or n > len(buf):
            n = len(buf)
        got = 0
        wait = self.timeout_ms
        while got < n and self.poller.poll(wait):
            if self.f.readinto(self.one, 1) != 1:
                break
            buf[got] = self.one[0]
            got += 1
            wait = 0
        return got

    def write(self, data):
        return self.f.write(data)

    def close(self):
        self.f.close()


def open_serial(path, baud, timeout_ms=50, use_termios=True):
    """Open a serial device for the node. Raises OSError."""
    f = open(path, "r+b", buffering=0)
    if termios is None or not use_termios:
        return PolledSerial(f, timeout_ms)
    try:
        fd = f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        speed = getattr(termios, "B%d" % baud, None)
        if speed is not None:  # a pty ignores the speed; a real adapter needs it
            attrs[4] = speed
            attrs[5] = speed
        attrs[6][_VMIN] = 0
        attrs[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except Exception:
        f.close()
        raise
    return f


def open_transport(cfg):
    """Open the configured transport. Raises OSError, ConfigError (uart without device)."""
    t = cfg["transport"]
    if t["type"] == "tcp":
        return tcp_connect(t["host"], t["port"])
    if "device" not in t:
        raise ConfigError("transport.device (a serial device path) is required on unix")
    return open_serial(t["device"], t["baud"], t["timeout_ms"])


def close_transport(stream):
    try:
        stream.close()
    except Exception:
        pass


def make_sensors(cfgs):
    """Sensors for the unix port: only "sim_temp" (a bounded random walk). Raises ConfigError."""
    if cfgs is None:
        cfgs = [{"type": "sim_temp"}]
    out = []
    for s in cfgs:
        if s["type"] != "sim_temp":
            raise ConfigError("sensor type %s is not available on unix (only sim_temp)"
                              % s["type"])
        out.append(SimulatedTemperature(random, s.get("name", "sim_temp"), s.get("start", 21.0),
                                        s.get("step", 0.05),
                                        s.get("min", 15.0), s.get("max", 30.0)))
    return out
