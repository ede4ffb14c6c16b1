# The host's faster paths, put in place when the package loads on CPython (ossuary_micro/
# __init__.py imports this module unless it runs on MicroPython). Host-only: deploy.HOST_ONLY
# keeps this file and the three it loads off boards, so a board's connection modules carry no
# trace of them (not even a failed import: its names would stay interned on the board's heap).
#
#   noise.noise_hkdf        _hkdf_host.py's, HMAC spelled out on hashlib (any CPython)
#   connection.Connection   _record_host.py's subclass with issue 10's record path, and its
#   connection.copy_into    memoryview copy_into and loop-free _zero (CPython with
#   connection._zero        pyca/cryptography: without it the import fails, nothing changes)
#   connection2.Connection2 _record2_host.py's subclass, protocol 2's record path (likewise)
#
# Each module's own definitions stand wherever one of these is not available. The package
# loads before any of its modules can be imported, so every importer sees the replacements;
# connection.py goes first, as connection2.py takes its copy_into (when viper is missing).

from . import noise, connection

try:
    from ._hkdf_host import noise_hkdf as _noise_hkdf
    noise.noise_hkdf = _noise_hkdf
except ImportError:
    pass

try:
    from . import _record_host
    connection.Connection = _record_host.Connection
    connection.copy_into = _record_host.copy_into
    connection._zero = _record_host._zero
except ImportError:
    pass

from . import connection2  # noqa: E402 (after connection.copy_into is chosen)

try:
    from . import _record2_host
    connection2.Connection2 = _record2_host.Connection2
except ImportError:
    pass
