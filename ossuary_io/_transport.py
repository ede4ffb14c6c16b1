# Transport helpers shared by stream.py (SecureStream) and link.py (LinkStream): which
# transport exceptions only mean "not now" (would block, timed out), and a millisecond clock
# and sleep on both interpreters. Their own module so that a serial node, which loads the
# link's LinkStream but drives its connection itself, does not load SecureStream.

import sys

try:
    import time
except ImportError:  # pragma: no cover
    time = None

try:
    import errno as _errno
    _EAGAIN = _errno.EAGAIN
    _ETIMEDOUT = _errno.ETIMEDOUT
    _CLOSED_ERRNOS = (_errno.ECONNRESET, _errno.EPIPE, _errno.ENOTCONN, _errno.ECONNABORTED)
    _EINTR = getattr(_errno, "EINTR", 4)
    _EWOULDBLOCK = getattr(_errno, "EWOULDBLOCK", _EAGAIN)
except (ImportError, AttributeError):  # pragma: no cover - Linux values
    _EAGAIN, _ETIMEDOUT, _EINTR, _EWOULDBLOCK = 11, 110, 4, 11
    _CLOSED_ERRNOS = (104, 32, 107, 103)

_MICROPYTHON = sys.implementation.name == "micropython"

# "Not now" errnos. MicroPython reports a socket timeout as OSError(ETIMEDOUT); on CPython the
# same errno is a real TCP failure, and timeouts come as socket.timeout (no errno) instead.
if _MICROPYTHON:
    _RETRY_ERRNOS = (_EAGAIN, _EWOULDBLOCK, _EINTR, _ETIMEDOUT)
else:
    _RETRY_ERRNOS = (_EAGAIN, _EWOULDBLOCK, _EINTR)

# Exception types that mean "not now", where the interpreter has them.
try:
    _RETRY_TYPES = (BlockingIOError, InterruptedError, TimeoutError)
except NameError:  # pragma: no cover - MicroPython
    _RETRY_TYPES = ()

def _default_clock():
    # Monotonic milliseconds: ticks_ms on boards, time.monotonic on CPython.
    if time is None:  # pragma: no cover
        return None
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms
    return lambda: int(time.monotonic() * 1000)


def _sleep_ms(ms):
    if time is None:  # pragma: no cover
        return
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


def _errno_of(e):
    n = getattr(e, "errno", None)
    if n is None and e.args and isinstance(e.args[0], int):
        n = e.args[0]  # MicroPython: OSError(11)
    return n


def _would_block(e):
    # True if the transport exception only means "no data / no room right now".
    if _RETRY_TYPES and isinstance(e, _RETRY_TYPES):
        return True
    if _errno_of(e) in _RETRY_ERRNOS:
        return True
    # socket.timeout before Python 3.10, and pyserial's write timeout: named, not numbered.
    return type(e).__name__ in ("timeout", "SerialTimeoutException")
