"""What a client loads: the server's handshake handlers (_server1.py for protocol 1,
_server2.py for protocol 2) are imported by the first server connection only, never by a client
(a board node is a client, and every module it loads is heap there).

Each check runs in a fresh interpreter (CPython, and the MicroPython unix port when `make venv`
installed it), since an earlier test's server connection would already have loaded them.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")

# A client of each protocol writes its first handshake packet; only then a server is made.
SCRIPT = """
import sys
sys.path.insert(0, %(root)r)
from os import urandom
from ossuary_micro import CLIENT, AUTH_SERVER
from ossuary_micro.connection import Connection
from ossuary_micro.connection2 import Connection2
out = bytearray(300)
for cls in (Connection, Connection2):
    c = cls(CLIENT, secret_key=bytes(range(32)), random=urandom)
    assert c.data_to_send(out) > 0
loaded = [m for m in ("ossuary_micro._server1", "ossuary_micro._server2") if m in sys.modules]
print("client loaded", loaded)
for cls in (Connection, Connection2):
    cls(AUTH_SERVER, secret_key=bytes(32), random=urandom)
loaded = [m for m in ("ossuary_micro._server1", "ossuary_micro._server2") if m in sys.modules]
print("server loaded", loaded)
"""


def _interpreters():
    yield sys.executable
    if os.path.exists(MICROPYTHON):
        yield MICROPYTHON


@pytest.mark.parametrize("exe", list(_interpreters()), ids=os.path.basename)
def test_client_never_loads_the_server_handlers(exe):
    p = subprocess.run([exe, "-c", SCRIPT % {"root": ROOT}], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "client loaded []" in p.stdout, p.stdout
    assert ("server loaded ['ossuary_micro._server1', 'ossuary_micro._server2']"
            in p.stdout), p.stdout
