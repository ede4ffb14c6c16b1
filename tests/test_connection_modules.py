"""What a client loads: the server's handshake handlers (_server1.py for protocol 1,
_server2.py for protocol 2) are imported by the first server connection only, never by a client
(a board node is a client, and every module it loads is heap there); the members a node never
uses (_extra.py: accept_key, end_stream, data, state_name, authorized_keys) by their first use,
never by a session that does not use them; rand.py only by a connection made without a random
source of its own; the host's fast paths (_host.py) on CPython only.

Each check runs in a fresh interpreter (CPython, and the MicroPython unix port when `make venv`
installed it), since an earlier test's connections would already have loaded them.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")

SCRIPT = """
import sys
sys.path.insert(0, %(root)r)
from ossuary_micro import CLIENT, AUTH_SERVER
from ossuary_micro.connection import Connection
from ossuary_micro.connection2 import Connection2
from tests.portable._pair import make_pair, DetRandom, CLIENT_SEED
from tests.portable._pair2 import make_pair2

def loaded(what):
    print(what, [m[14:] for m in ("ossuary_micro._server1", "ossuary_micro._server2",
                                  "ossuary_micro._extra", "ossuary_micro.rand")
                 if m in sys.modules])

# A client of each protocol writes its first handshake packet.
out = bytearray(300)
for cls in (Connection, Connection2):
    c = cls(CLIENT, secret_key=CLIENT_SEED, random=DetRandom(b"c"))
    assert c.data_to_send(out) > 0
loaded("client")
# A whole session of each, as a node has it: handshake with an AUTH_SERVER, records both
# ways, a clean close.
for mk in (make_pair, make_pair2):
    link = mk(client_key=CLIENT_SEED, server_role=AUTH_SERVER).run()
    assert link.established(), link.events
    link.send("client", b"reading")
    link.send("server", b"ack")
    assert link.received == {"client": [b"ack"], "server": [b"reading"]}, link.received
    link.client.disconnect()
    link.run()
    assert link.client.closed and link.server.closed
loaded("session")
assert link.client.state_name == "Failed"
loaded("state_name")
# rand.py only for a connection made without a random source of its own (a node has one).
Connection2(CLIENT)
loaded("default random")
# The host's fast paths (_host.py) are put in place on CPython only.
print("host", "ossuary_micro._host" in sys.modules)
if "ossuary_micro._host" in sys.modules:
    from ossuary_micro import noise, connection2, _hkdf_host
    assert noise.noise_hkdf is _hkdf_host.noise_hkdf
    try:
        from ossuary_micro import _record2_host
    except ImportError:     # a CPython without pyca/cryptography: the general path
        pass
    else:
        assert connection2.Connection2 is _record2_host.Connection2
        assert isinstance(link.client, _record2_host.Connection2)
"""


def _interpreters():
    yield sys.executable
    if os.path.exists(MICROPYTHON):
        yield MICROPYTHON


@pytest.mark.parametrize("exe", list(_interpreters()), ids=os.path.basename)
def test_what_a_client_loads(exe):
    p = subprocess.run([exe, "-c", SCRIPT % {"root": ROOT}], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.split("\n")[:5] == [
        "client []",
        "session ['_server1', '_server2']",
        "state_name ['_server1', '_server2', '_extra']",
        "default random ['_server1', '_server2', '_extra', 'rand']",
        "host %s" % (exe == sys.executable)], p.stdout
