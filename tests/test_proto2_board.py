"""Protocol 2 within a board's heap: a full session (handshake, records both ways, rekey,
half-close, authenticated close) run from x64 .mpy on the MicroPython unix port in the same
128 KiB heap as the node's budget test, with only the compiled tree importable.

The Cortex-M0 emulator figures (instruction counts, armv6m .mpy) are in docs/PROTOCOL.md
section 8, measured with bench/mp_proto2.py; they need ../shared tools, so they are not a test.
"""

import re

from tests.test_micropython import x64_tree, run_from_mpy  # noqa: F401 (fixture)

SESSION = r"""
import gc, hashlib
from ossuary_micro import CLIENT, AUTH_SERVER, NEED_DATA, DATA, CLOSED, get_backend
from ossuary_micro.connection2 import Connection2, END_OF_STREAM

class R:
    def __init__(self, s):
        self.s = s; self.c = 0
    def __call__(self, n):
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.s + bytes((self.c,))).digest(); self.c += 1
        return out[:n]

be = get_backend()
print("backend", be.name)
sc = bytes(range(32)); ss = bytes(range(32, 64))
c = Connection2(CLIENT, sc, (be.ed25519_public(ss),), 512, be, R(b"c"), rekey_after=4)
s = Connection2(AUTH_SERVER, ss, (be.ed25519_public(sc),), 512, be, R(b"s"), rekey_after=4)
out = bytearray(600)
got = {0: [], 1: []}
peak = 0
def pump(src, dst, i):
    global peak
    while True:
        ev = src.next_event()
        if ev == DATA:
            got[i].append(bytes(src.plaintext[:src.data_len]))
        elif ev == END_OF_STREAM:
            got[i].append("END")
        n = src.data_to_send(out)
        if n:
            dst.receive_data(out[:n])
        if ev == CLOSED:
            got[i].append("CLOSED")
            return
        if ev == NEED_DATA and not n:
            gc.collect()
            peak = max(peak, gc.mem_alloc())
            return
for _ in range(4):
    pump(c, s, 0); pump(s, c, 1)
assert c.established and s.established
for i in range(10):
    s.receive_data(out[:c.send_data(b"reading %d" % i, out)]); pump(s, c, 1)
    c.receive_data(out[:s.send_data(b"ack %d" % i, out)]); pump(c, s, 0)
s.receive_data(out[:c.end_stream(out)]); pump(s, c, 1)
c.disconnect(); pump(c, s, 0)
pump(s, c, 1)
assert got[1] == [b"reading %d" % i for i in range(10)] + ["END", "CLOSED"], got[1]
assert got[0] == [b"ack %d" % i for i in range(10)] + ["CLOSED"], got[0]
print("heap_peak", peak)
import sys
# Keys both sides trust: the pure curve module (heap on a board) was never needed.
print("pure curve loaded", "ossuary_micro.crypto._curve25519" in sys.modules)
print("p2 session ok")
"""


def test_protocol2_session_from_mpy_in_128k_heap(x64_tree):  # noqa: F811
    proc, out = run_from_mpy(x64_tree, SESSION)
    assert re.search(r"^p2 session ok$", proc.stdout, re.M), out[-6000:]
    assert "backend viper" in out, out[-3000:]
    assert "pure curve loaded False" in out, out[-3000:]
    peak = int(re.search(r"^heap_peak (\d+)$", proc.stdout, re.M).group(1))
    assert 0 < peak <= 128 * 1024, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    print("protocol 2 session from x64 .mpy, 128 KiB heap: heap_peak %d B" % peak)


RECORDS = r"""
import gc
from ossuary_micro import CLIENT, AUTH_SERVER, NEED_DATA, DATA, get_backend
from ossuary_micro.connection2 import Connection2, Identity

n = [0]
def rnd(k):
    n[0] += 1
    return bytes((n[0] + i) & 255 for i in range(k))

be = get_backend()
ic = Identity(bytes(range(32)), be); isv = Identity(bytes(range(32, 64)), be)
c = Connection2(CLIENT, ic, (isv.public_key,), 256, be, rnd, rekey_after=1000)
s = Connection2(AUTH_SERVER, isv, (ic.public_key,), 256, be, rnd, rekey_after=1000)
buf = bytearray(300)
for _ in range(4):
    for a, b in ((c, s), (s, c)):
        k = a.data_to_send(buf)
        if k:
            b.receive_data(buf, k)
        while b.next_event() != NEED_DATA:
            pass
assert c.established and s.established
msg = bytearray(200)

def one(a, b):
    # A 200-byte record a -> b: sealed into buf, fed from it, opened into b.plaintext.
    b.receive_data(buf, a.send_data(msg, buf))
    ev = b.next_event()
    if ev != DATA or b.data_len != 200:
        raise AssertionError("event %d, %d bytes" % (ev, b.data_len))
    b.next_event()

for _ in range(3):          # warm up: first calls may intern names or bind methods
    one(c, s); one(s, c)
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
for _ in range(100):
    one(c, s); one(s, c)
a1 = gc.mem_alloc()
gc.enable()
print("backend", be.name)
print("record_alloc", a1 - a0)
"""


def test_protocol2_records_allocate_nothing_on_micropython(x64_tree):  # noqa: F811
    # Issue 11 on the boards: once established, protocol 2's record path (seal, frame,
    # parse, open, with the viper backend) allocates no heap at all. gc is off while 200
    # records go both ways, so gc.mem_alloc()'s growth is exactly what they allocated.
    proc, out = run_from_mpy(x64_tree, RECORDS)
    assert "backend viper" in out, out[-3000:]
    m = re.search(r"^record_alloc (-?\d+)$", proc.stdout, re.M)
    assert m, out[-3000:]
    assert int(m.group(1)) == 0, out[-3000:]
