"""Side by side (issue 10): this project beside TLS 1.3, Noise and raw ChaCha20-Poly1305.

In one process, on CPython: full handshakes (server-auth and mutual), 16 KiB and 64 B records
sent and received in memory, bytes on the wire, heap allocated per record (tracemalloc); then
ossuary-cat against a TLS "cat" of the same shape moving data over loopback TCP. Prints a
Markdown table and the target verdicts; writes side_by_side.json and side_by_side.png.

  .venv/bin/python bench/side_by_side.py [--quick] [--tcp-mb 1000] [--out DIR]

The contenders:
  ossuary/<backend>  this project's Connection pair (protocol 1), each backend usable on CPython;
                     with cryptography, records take the host record path
                     (ossuary_micro/_record_host.py), the others connection.py's general path
  tls13              ssl.SSLObject over ssl.MemoryBIO, Ed25519 certificates made in the run,
                     no session tickets; the negotiated suite is printed (Python cannot choose
                     TLS 1.3 suites)
  noise              noiseprotocol: Noise_NX (server-auth) and Noise_XX (mutual),
                     25519_ChaChaPoly_SHA256; a record is encrypt() then decrypt(), the 2-byte
                     length framing an application needs counted on the wire only
  raw                pyca ChaCha20Poly1305, one context, encrypt_into then decrypt_into into
                     preallocated buffers: the ceiling for any record layer on this AEAD
Rates: the contenders are timed in interleaved rounds, the best round kept for each (see race).
"""

import argparse
import datetime
import json
import os
import platform
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cryptography import x509                                          # noqa: E402
from cryptography.hazmat.primitives import serialization                # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402
from cryptography.x509.oid import NameOID                               # noqa: E402

from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA,  # noqa: E402
                           DATA, UNTRUSTED_KEY)
from ossuary_micro.crypto import available_backends, get_backend        # noqa: E402
from ossuary_micro.connection2 import Connection2                        # noqa: E402

SIZES = (64, 16384)
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def _batch(fn, min_time):
    # Calls per batch so that one batch lasts about min_time.
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t >= min_time:
            return n
        n *= 2


def race(fns, min_time, rounds=5):
    """{name: calls per second} for the callables of the dict fns, timed in interleaved
    rounds (every contender once per round) and the best round kept for each: the machine
    is shared, and interleaving puts every contender under the same passing load, so the
    ratios between them hold even when the absolute figures wobble."""
    sizes = {k: _batch(f, min_time) for k, f in fns.items()}
    best = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for k, f in fns.items():
            n = sizes[k]
            t = time.perf_counter()
            for _ in range(n):
                f()
            best[k] = max(best[k], n / (time.perf_counter() - t))
    return best


def best_rate(fn, min_time):
    """Calls per second of fn() alone (see race)."""
    return race({0: fn}, min_time, 3)[0]


def heap_per_record(fn, n=200):
    """Median peak heap (bytes, tracemalloc) above the level before one call of fn()."""
    fn()
    tracemalloc.start()
    try:
        peaks = []
        for _ in range(n):
            tracemalloc.reset_peak()
            cur, _ = tracemalloc.get_traced_memory()
            fn()
            peaks.append(tracemalloc.get_traced_memory()[1] - cur)
    finally:
        tracemalloc.stop()
    peaks.sort()
    return peaks[len(peaks) // 2]


# ------------------------------------------------------------------ this project

def oss_handshake(backend, mutual, keys, cls=Connection):
    """A fresh pair through a full handshake in memory; (client, server, bytes on the wire).
    Includes what the constructors do (ephemeral key, the long-term public key). cls is
    Connection (protocol 1) or Connection2 (protocol 2, Noise XX: always mutual; an
    UNAUTH_SERVER there is a server that accepts any client key)."""
    cseed, sseed, cpub, spub = keys
    if cls is not Connection:
        mutual = True           # protocol 2 clients always prove a key
    c = cls(CLIENT, secret_key=cseed if mutual else None, authorized_keys=(spub,),
            backend=backend)
    s = cls(AUTH_SERVER if mutual else UNAUTH_SERVER, secret_key=sseed,
            authorized_keys=(cpub,) if mutual else (), backend=backend)
    buf = bytearray(256)
    wire = 0
    for _ in range(8):
        for a, b in ((c, s), (s, c)):
            n = a.data_to_send(buf)
            if n:
                wire += n
                b.receive_data(buf, n)
            while True:
                ev = b.next_event()
                if ev == NEED_DATA:
                    break
                if ev == UNTRUSTED_KEY:
                    raise RuntimeError("bench keys not trusted")
        if c.established and s.established:
            return c, s, wire
    raise RuntimeError("ossuary handshake did not finish: %s / %s" % (c.state_name, s.state_name))


def oss_record(c, s, size):
    """One record client -> server: send_data into a buffer, receive_data (a copy into the
    server's input buffer), next_event until NEED_DATA."""
    data = bytes(size)
    first = bytearray(c.max_packet + 64)
    n = c.send_data(data, first)        # the frame's size, and a warm-up record
    s.receive_data(first, n)
    while s.next_event() != NEED_DATA:
        pass
    # Protocol 1 needs room for the frame; protocol 2 for a REKEY record before it as well.
    out = bytearray(n if isinstance(c, Connection) else n + 24)

    def one():
        s.receive_data(out, c.send_data(data, out))
        if s.next_event() != DATA or s.next_event() != NEED_DATA:
            raise RuntimeError("record not delivered")
    return one, n


class CountingBackend:
    """Counts the crypto calls a handshake makes (to price them one by one afterwards)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.calls = {}

    def __getattr__(self, name):
        f = getattr(self.inner, name)

        def counted(*a, **k):
            self.calls[name] = self.calls.get(name, 0) + 1
            return f(*a, **k)
        return counted


def crypto_calls(backend, mutual, keys):
    """The handshake's own crypto calls, counted in a real handshake: ({name: count},
    {name: callable making one such call}) so each can be timed alone beside it.

    What is counted: every backend call the two Connections make, constructors included
    (x25519_base for each ephemeral key, ed25519_public for each long-term key), and the
    session's AEAD context setup (aead_record). Each is priced with the inputs and cache
    state it has in the handshake: the DH right after its own x25519_base (whose key object
    it takes), seeds whose Ed25519 key objects are already loaded, a 76-byte signed message,
    128-byte AEAD messages under a key whose context exists (the handshake's seal/open reuse
    aead_record's). Everything else the handshake takes is the Connections' own Python."""
    cb = CountingBackend(backend)
    oss_handshake(cb, mutual, keys)
    seed, pub = keys[1], keys[3]
    sig = backend.ed25519_sign(seed, b"x" * 76)
    pt = bytearray(128 + 16)
    key, nonce = bytes(range(32)), bytes(12)
    backend.aead_seal(key, nonce, pt, 0, 128, pt, 0)

    def dh():
        backend.x25519_base(seed)       # as in a handshake: the DH follows its own base
        backend.x25519(seed, pub)
    price = {
        "x25519_base": lambda: backend.x25519_base(seed),
        "x25519": dh,                   # priced as (base + DH) - base below
        "ed25519_public": lambda: backend.ed25519_public(seed),
        "ed25519_sign": lambda: backend.ed25519_sign(seed, b"x" * 76),
        "ed25519_verify": lambda: backend.ed25519_verify(pub, b"x" * 76, sig),
        "aead_seal": lambda: backend.aead_seal(key, nonce, pt, 0, 128, pt, 0),
        "aead_open": lambda: backend.aead_open(key, nonce, pt, 0, 128, bytearray(128), 0),
        # the session's record AEAD context (pyca: key setup), made once per handshake
        "aead_record": lambda: backend.aead_record(key),
    }
    return cb.calls, dict((k, price[k]) for k in set(cb.calls) | {"x25519_base"})


def crypto_ms(calls, rates):
    """Milliseconds of the counted calls at the measured rates (calls per second)."""
    per = dict((k, 1000.0 / r) for k, r in rates.items())
    per["x25519"] = per["x25519"] - per["x25519_base"]
    return sum(n * per[k] for k, n in calls.items())


# ------------------------------------------------------------------ TLS 1.3 (MemoryBIO)

def _self_signed(tmp, name):
    key = Ed25519PrivateKey.generate()
    subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, None))
    cpath, kpath = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
    with open(cpath, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(tmp, name + ".key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cpath, kpath


class Tls:
    """Client and server SSL contexts (TLS 1.3 only) with certificates made for this run."""

    def __init__(self, tmp):
        self.server_cert = _self_signed(tmp, "server.test")
        self.client_cert = _self_signed(tmp, "client.test")

    def contexts(self, mutual):
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.minimum_version = sctx.maximum_version = ssl.TLSVersion.TLSv1_3
        sctx.load_cert_chain(*self.server_cert)
        sctx.num_tickets = 0
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.minimum_version = cctx.maximum_version = ssl.TLSVersion.TLSv1_3
        cctx.load_verify_locations(self.server_cert[0])
        if mutual:
            sctx.verify_mode = ssl.CERT_REQUIRED
            sctx.load_verify_locations(self.client_cert[0])
            cctx.load_cert_chain(*self.client_cert)
        return cctx, sctx

    def handshake(self, mutual, ctxs=None):
        cctx, sctx = ctxs or self.contexts(mutual)
        cin, cout, sin, sout = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
        c = cctx.wrap_bio(cin, cout, server_hostname="server.test")
        s = sctx.wrap_bio(sin, sout, server_side=True)
        done = [False, False]
        wire = 0
        for _ in range(10):
            for i, (x, src, dst) in enumerate(((c, cout, sin), (s, sout, cin))):
                if not done[i]:
                    try:
                        x.do_handshake()
                        done[i] = True
                    except ssl.SSLWantReadError:
                        pass
                b = src.read()
                wire += len(b)
                dst.write(b)
            if all(done) and not cout.pending and not sout.pending:
                return TlsPair(c, s, cin, cout, sin, sout), wire
        raise RuntimeError("TLS handshake did not finish")


class TlsPair:
    def __init__(self, c, s, cin, cout, sin, sout):
        self.c, self.s, self.cin, self.cout, self.sin, self.sout = c, s, cin, cout, sin, sout

    def record(self, size):
        data = bytes(size)
        buf = bytearray(size)
        # One write is one TLS record up to 16 KiB of plaintext.
        self.c.write(data)
        wire = self.cout.pending
        self.sin.write(self.cout.read())
        self.s.read(size, buf)

        def one():
            self.c.write(data)
            self.sin.write(self.cout.read())
            if self.s.read(size, buf) != size:
                raise RuntimeError("TLS record split")
        return one, wire


# ------------------------------------------------------------------ Noise

def noise_handshake(mutual, keys):
    from noise.connection import NoiseConnection, Keypair
    name = b"Noise_XX_25519_ChaChaPoly_SHA256" if mutual else b"Noise_NX_25519_ChaChaPoly_SHA256"
    i = NoiseConnection.from_name(name)
    r = NoiseConnection.from_name(name)
    i.set_as_initiator()
    r.set_as_responder()
    if mutual:
        i.set_keypair_from_private_bytes(Keypair.STATIC, keys[0])
    r.set_keypair_from_private_bytes(Keypair.STATIC, keys[1])
    i.start_handshake()
    r.start_handshake()
    wire = 0
    a, b = i, r
    while not (i.handshake_finished and r.handshake_finished):
        m = a.write_message()
        wire += len(m) + 2         # the 2-byte length framing Noise leaves to the application
        b.read_message(m)
        a, b = b, a
    return i, r, wire


def noise_record(i, r, size):
    data = bytes(size)
    ct = i.encrypt(data)

    def one():
        if len(r.decrypt(i.encrypt(data))) != size:
            raise RuntimeError("noise record")
    r.decrypt(ct)
    return one, len(ct) + 2


# ------------------------------------------------------------------ raw AEAD

def raw_record(size):
    aead = ChaCha20Poly1305(bytes(range(32)))
    nonce = bytes(12)
    data = bytes(size)
    ct = bytearray(size + 16)
    pt = bytearray(size)

    def one():
        aead.encrypt_into(nonce, data, None, ct)
        aead.decrypt_into(nonce, ct, None, pt)
    return one, size + 16


# ------------------------------------------------------------------ loopback TCP

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pump(cmd_server, cmd_client, nbytes, env):
    """Start the server, then the client; feed nbytes of stdin to the client and count what
    the server writes to stdout. Returns (seconds from client start to server EOF, bytes)."""
    srv = subprocess.Popen(cmd_server, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    got = [0]

    def drain():
        while True:
            b = srv.stdout.read1(1 << 20)
            if not b:
                return
            got[0] += len(b)
    th = threading.Thread(target=drain)
    th.start()
    time.sleep(0.5)        # the server is listening well before this (it prints nothing)
    t0 = time.perf_counter()
    cli = subprocess.Popen(cmd_client, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env=env)
    chunk = bytes(1 << 20)
    left = nbytes
    try:
        while left > 0:
            k = min(left, len(chunk))
            cli.stdin.write(chunk[:k] if k < len(chunk) else chunk)
            left -= k
        cli.stdin.close()
    except BrokenPipeError:
        pass
    th.join(600)
    dt = time.perf_counter() - t0
    for p in (cli, srv):
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if got[0] != nbytes:
        raise RuntimeError("%s moved %d of %d bytes: %s %s" % (
            os.path.basename(cmd_client[0]), got[0], nbytes, cli.stderr.read()[-300:],
            srv.stderr.read()[-300:]))
    cli.stderr.close()
    srv.stderr.close()
    return dt, got[0]


def tcp_runs(nbytes, tmp):
    env = dict(os.environ)
    out = {}
    cat = os.path.join(VENV_BIN, "ossuary-cat")
    port = _free_port()
    dt, n = _pump([cat, "--listen", "127.0.0.1:%d" % port],
                  [cat, "--connect", "127.0.0.1:%d" % port, "--tofu", "--linger", "0"],
                  nbytes, env)
    out["ossuary-cat"] = n / dt / 1e6
    port = _free_port()
    me = [sys.executable, os.path.abspath(__file__), "tls-cat", "--dir", tmp]
    dt, n = _pump(me + ["--listen", str(port)], me + ["--connect", str(port)], nbytes, env)
    out["tls-cat"] = n / dt / 1e6
    return out


def tls_cat(args):
    # The TLS side of the TCP run, shaped like ossuary-cat: stdin to the socket (client),
    # the socket to stdout (server), one connection, 64 KiB reads.
    tls = Tls.__new__(Tls)
    tls.server_cert = (os.path.join(args.dir, "server.test.crt"),
                       os.path.join(args.dir, "server.test.key"))
    tls.client_cert = (os.path.join(args.dir, "client.test.crt"),
                       os.path.join(args.dir, "client.test.key"))
    cctx, sctx = tls.contexts(False)
    if args.listen:
        with socket.create_server(("127.0.0.1", int(args.listen))) as ls:
            conn, _ = ls.accept()
            with sctx.wrap_socket(conn, server_side=True) as s:
                out = sys.stdout.buffer
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    out.write(b)
                out.flush()
    else:
        with socket.create_connection(("127.0.0.1", int(args.connect))) as raw:
            with cctx.wrap_socket(raw, server_hostname="server.test") as s:
                inp = sys.stdin.buffer
                while True:
                    b = inp.read1(65536)
                    if not b:
                        break
                    s.sendall(b)
    return 0


# ------------------------------------------------------------------ the run

def measure(min_time, tcp_mb):
    res = {"machine": "%s, %d cores, %s, Python %s, cryptography %s, %s" % (
        platform.machine(), os.cpu_count(), _cpu(), platform.python_version(),
        __import__("cryptography").__version__, ssl.OPENSSL_VERSION),
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rows": {}}
    seeds = (bytes(range(1, 33)), bytes(range(33, 65)))
    rows = res["rows"]
    tmp = tempfile.mkdtemp(prefix="ossuary-sbs-")
    try:
        tls = Tls(tmp)
        hs = {}          # contender -> {tag: handshake callable}
        prices = {}      # ossuary contender -> {tag: (crypto call counts, callables)}
        recs = {}        # contender -> {size: (record callable, wire bytes)}
        for name in available_backends():
            if name == "viper":
                continue
            b = get_backend(name)
            keys = (seeds[0], seeds[1], b.ed25519_public(seeds[0]), b.ed25519_public(seeds[1]))
            row = rows["ossuary/" + name] = {}
            for mutual in (False, True):
                tag = "mutual" if mutual else "server_auth"
                hs.setdefault("ossuary/" + name, {})[tag] = (
                    lambda b=b, m=mutual, k=keys: oss_handshake(b, m, k))
                row["hs_wire_" + tag] = oss_handshake(b, mutual, keys)[2]
                prices.setdefault("ossuary/" + name, {})[tag] = crypto_calls(b, mutual, keys)
                row["hs_crypto_calls_" + tag] = prices["ossuary/" + name][tag][0]
            c, s, _ = oss_handshake(b, False, keys)
            recs["ossuary/" + name] = {size: oss_record(c, s, size) for size in SIZES}

        # Protocol 2 (Noise XX, always mutual), cryptography backend: its records and its
        # handshake beside the others (no crypto-call pricing: its calls differ).
        if "cryptography" in available_backends():
            b = get_backend("cryptography")
            keys = (seeds[0], seeds[1], b.ed25519_public(seeds[0]), b.ed25519_public(seeds[1]))
            row = rows["ossuary2/cryptography"] = {}
            hs["ossuary2/cryptography"] = {"mutual": lambda b=b, k=keys: oss_handshake(
                b, True, k, Connection2)}
            c, s, row["hs_wire_mutual"] = oss_handshake(b, True, keys, Connection2)
            recs["ossuary2/cryptography"] = {size: oss_record(c, s, size) for size in SIZES}

        row = rows["tls13"] = {}
        for mutual in (False, True):
            tag = "mutual" if mutual else "server_auth"
            ctxs = tls.contexts(mutual)
            hs.setdefault("tls13", {})[tag] = lambda m=mutual, x=ctxs: tls.handshake(m, x)
            pair, row["hs_wire_" + tag] = tls.handshake(mutual, ctxs)
        row["cipher"] = "%s (%s)" % pair.c.cipher()[:2]
        recs["tls13"] = {size: pair.record(size) for size in SIZES}

        row = rows["noise"] = {}
        for mutual in (False, True):
            tag = "mutual" if mutual else "server_auth"
            hs.setdefault("noise", {})[tag] = lambda m=mutual: noise_handshake(m, seeds)
            i, r, row["hs_wire_" + tag] = noise_handshake(mutual, seeds)
        row["protocol"] = "Noise_NX / Noise_XX _25519_ChaChaPoly_SHA256 (noiseprotocol)"
        recs["noise"] = {size: noise_record(i, r, size) for size in SIZES}
        rows["raw"] = {}
        recs["raw"] = {size: raw_record(size) for size in SIZES}

        # The pure backend is ~100x slower: it is timed on its own, not in the races.
        slow = [k for k in recs if k == "ossuary/pure"]
        for tag in ("server_auth", "mutual"):
            # The handshakes and, in the same rounds, each crypto call they make.
            fast = dict((k, v[tag]) for k, v in hs.items() if k not in slow and tag in v)
            for k, per in prices.items():
                if k not in slow:
                    fast.update(((k, c), f) for c, f in per[tag][1].items())
            got = race(fast, min_time)
            for k in hs:
                if tag not in hs[k]:
                    continue
                if k in slow:
                    got[k] = best_rate(hs[k][tag], min_time)
                    got.update(((k, c), best_rate(f, min_time / 2))
                               for c, f in prices[k][tag][1].items())
                rows[k]["hs_ms_" + tag] = 1000.0 / got[k]
                if k in prices:
                    calls = prices[k][tag][0]
                    rows[k]["hs_crypto_ms_" + tag] = crypto_ms(
                        calls, dict((c, got[(k, c)]) for c in prices[k][tag][1]))
        for size in SIZES:
            fast = dict((k, v[size][0]) for k, v in recs.items() if k not in slow)
            for k, r in race(fast, min_time).items():
                rows[k]["rec_per_s_%d" % size] = r
            for k in slow:
                rows[k]["rec_per_s_%d" % size] = best_rate(recs[k][size][0], min_time / 10)
            for k, v in recs.items():
                rows[k]["rec_wire_%d" % size] = v[size][1]
                rows[k]["rec_heap_%d" % size] = heap_per_record(v[size][0],
                                                                20 if k in slow else 200)

        if tcp_mb:
            res["tcp_mb"] = tcp_mb
            res["tcp_MBps"] = tcp_runs(tcp_mb * 1000000, tmp)
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    res["targets"] = targets(rows)
    return res


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def targets(rows):
    """Issue 10's targets for the cryptography backend, as ratios within this run."""
    o, raw, noise = rows.get("ossuary/cryptography"), rows["raw"], rows["noise"]
    out = []
    if o is None:
        return out

    def add(what, value, goal, ok, show):
        out.append({"target": what, "value": value, "goal": goal, "verdict": "MET" if ok else
                    "MISSED", "show": show})
    r = o["rec_per_s_16384"] / raw["rec_per_s_16384"]
    add("16 KiB records >= 0.85x raw AEAD enc+dec", r, 0.85, r >= 0.85, "%.2fx" % r)
    r = o["rec_per_s_64"] / noise["rec_per_s_64"]
    add("64 B records >= 1.0x Noise", r, 1.0, r >= 1.0, "%.2fx" % r)
    # The record path's AEAD calls (encrypt_into, decrypt_into) return nothing, as in the raw
    # column: any peak heap above raw's is the record path's own (memoryview windows).
    extra = o["rec_heap_64"] - raw["rec_heap_64"]
    add("no heap per record beyond the crypto call's own (64 B records)", extra, 0, extra <= 0,
        "%d B peak per record (raw AEAD: %d B)" % (o["rec_heap_64"], raw["rec_heap_64"]))
    for tag in ("server_auth", "mutual"):
        r = o["hs_ms_" + tag] / o["hs_crypto_ms_" + tag]
        add("handshake (%s) <= 1.1x the sum of its own crypto calls" % tag.replace("_", "-"),
            r, 1.1, r <= 1.1, "%.2fx (%.3f ms vs %.3f ms)" % (r, o["hs_ms_" + tag],
                                                          o["hs_crypto_ms_" + tag]))
    return out


def markdown(res):
    rows = res["rows"]
    names = list(rows)
    out = ["## Side by side: this project, TLS 1.3, Noise, raw AEAD (CPython, in memory)", "",
           "Machine: %s; %s. Contenders timed in interleaved rounds, best round each." % (res["machine"], res["when"]), ""]
    tls = rows.get("tls13", {})
    out.append("TLS 1.3 negotiated %s over ssl.MemoryBIO (Ed25519 certificates, no tickets). "
               "Noise: %s. Raw: pyca ChaCha20Poly1305 encrypt_into + decrypt_into, one context."
               % (tls.get("cipher", "-"), rows.get("noise", {}).get("protocol", "-")))
    out.append("")
    out.append("| figure | " + " | ".join(names) + " |")
    out.append("|---|" + "---:|" * len(names))

    def line(label, key, f):
        vals = []
        for n in names:
            v = rows[n].get(key)
            vals.append("-" if v is None else f(v))
        out.append("| %s | %s |" % (label, " | ".join(vals)))
    line("handshake, server-auth (ms)", "hs_ms_server_auth", lambda v: "%.3g" % v)
    line("handshake, mutual (ms)", "hs_ms_mutual", lambda v: "%.3g" % v)
    line("sum of own crypto calls, mutual (ms)", "hs_crypto_ms_mutual", lambda v: "%.3g" % v)
    line("handshake bytes on the wire, server-auth", "hs_wire_server_auth", lambda v: "%d" % v)
    line("handshake bytes on the wire, mutual", "hs_wire_mutual", lambda v: "%d" % v)
    line("16 KiB records (MB/s, send + receive)", "rec_per_s_16384",
         lambda v: "%.0f" % (v * 16384 / 1e6))
    line("64 B records (k/s, send + receive)", "rec_per_s_64", lambda v: "%.0f" % (v / 1000))
    line("bytes on the wire per 64 B record", "rec_wire_64", lambda v: "%d" % v)
    line("bytes on the wire per 16 KiB record", "rec_wire_16384", lambda v: "%d" % v)
    line("peak heap per 64 B record (B, tracemalloc)", "rec_heap_64", lambda v: "%d" % v)
    line("peak heap per 16 KiB record (B, tracemalloc)", "rec_heap_16384", lambda v: "%d" % v)
    out.append("")
    if "tcp_MBps" in res:
        t = res["tcp_MBps"]
        out.append("Loopback TCP, %d MB from stdin to stdout through two processes (client and "
                   "server, process start and handshake included): ossuary-cat %.0f MB/s, "
                   "the TLS 1.3 cat of bench/side_by_side.py %.0f MB/s."
                   % (res["tcp_mb"], t["ossuary-cat"], t["tls-cat"]))
        out.append("")
    out.append("| target (issue 10, cryptography backend) | measured | verdict |")
    out.append("|---|---|---|")
    for t in res["targets"]:
        out.append("| %s | %s | %s |" % (t["target"], t["show"], t["verdict"]))
    out.append("")
    return "\n".join(out)


def chart(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = res["rows"]
    names = list(rows)
    panels = (("64 B records (k/s)", lambda r: r.get("rec_per_s_64", 0) / 1000),
              ("16 KiB records (MB/s)", lambda r: r.get("rec_per_s_16384", 0) * 16384 / 1e6),
              ("mutual handshake (ms, lower is better)", lambda r: r.get("hs_ms_mutual", 0)))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, (title, f) in zip(axes, panels):
        vals = [f(rows[n]) for n in names]
        ax.bar(range(len(names)), vals, color=["#3b6ea5" if n.startswith("ossuary") else "#999999"
                                               for n in names])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        for x, v in enumerate(vals):
            if v:
                ax.text(x, v, "%.3g" % v if v < 100 else "%.0f" % v, ha="center",
                        va="bottom", fontsize=7)
    fig.suptitle("ossuary-micro side by side (%s)" % res["when"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    tc = sub.add_parser("tls-cat", help="(internal) the TLS side of the TCP run")
    tc.add_argument("--dir", required=True)
    tc.add_argument("--listen")
    tc.add_argument("--connect")
    ap.add_argument("--quick", action="store_true", help="short timing batches (rough figures)")
    ap.add_argument("--tcp-mb", type=int, default=None,
                    help="MB moved over loopback TCP per contender (default 1000, the issue's "
                         "1 GB; --quick 32; 0 skips)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench"),
                    help="directory for side_by_side.json and side_by_side.png")
    args = ap.parse_args(argv)
    if args.cmd == "tls-cat":
        return tls_cat(args)
    tcp_mb = args.tcp_mb if args.tcp_mb is not None else (32 if args.quick else 1000)
    res = measure(0.05 if args.quick else 0.3, tcp_mb)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "side_by_side.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    chart(res, os.path.join(args.out, "side_by_side.png"))
    print(markdown(res))
    print("side_by_side: wrote %s/side_by_side.json and .png" % args.out, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
