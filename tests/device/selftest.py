# On-device self-test: RFC vectors for every primitive, both handshake modes, data, tamper.
#
# Runs on a board or any MicroPython (also CPython) with only the project's modules on the path:
#   mpremote connect /dev/ttyACM0 mount . run tests/device/selftest.py
#   .venv/bin/micropython tests/device/selftest.py        (from the project root)
#   node tools/mpwasm/run.mjs tests/device/selftest.py
# Needs no random source: handshakes use a fixed deterministic source of its own (passed as
# `random=`), and whether the platform has a usable one is reported on its own line. The last
# line is exactly `N passed, N failed`.

import sys
import gc

try:
    import time

    _ticks = time.ticks_ms
    _diff = time.ticks_diff
except AttributeError:  # CPython
    import time

    def _ticks():
        return int(time.monotonic() * 1000)

    def _diff(a, b):
        return a - b

try:
    from binascii import unhexlify
except ImportError:
    from ubinascii import unhexlify

# With `micropython tests/device/selftest.py` the script's folder is first on the path, not the
# project root; mpremote's mount makes the root the current directory. Cover both.
for _p in ("", ".", "../.."):
    if _p not in sys.path:
        sys.path.append(_p)

from ossuary_micro import (Connection, CLIENT, AUTH_SERVER, UNAUTH_SERVER, NEED_DATA,  # noqa: E402
                           HANDSHAKE_DONE, UNTRUSTED_KEY, DATA, RESET, CLOSED, EVENT_NAMES,
                           OssuaryError, get_backend)


def h(s):
    return unhexlify(s.replace(" ", ""))


# --- RFC 7748 section 5.2 (X25519 function) and 6.1 (Diffie-Hellman) ---
X25519_VECTORS = (
    ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
    ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
)
DH_ALICE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
DH_ALICE_PUB = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
DH_BOB_PUB = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
DH_SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"

# --- RFC 8439 section 2.8.2 (AEAD_CHACHA20_POLY1305) ---
AEAD_KEY = bytes(range(0x80, 0xA0))
AEAD_NONCE = "070000004041424344454647"
AEAD_AAD = "50515253c0c1c2c3c4c5c6c7"
AEAD_PT = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
           b"the future, sunscreen would be it.")
AEAD_CT = ("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca96712"
           "82fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58"
           "fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116")
AEAD_TAG = "1ae10b594f09e26a7e902ecbd0600691"
# The protocol uses empty AAD, which the backend interface fixes. Same key, nonce and
# plaintext as 2.8.2 without the AAD: the ciphertext is unchanged, this tag was computed with
# pyca/cryptography (OpenSSL).
AEAD_TAG_NO_AAD = "6a23a4681fd59456aea1d29f82477216"

# --- RFC 8032 section 7.1, TEST 1 and TEST 2 ---
ED25519_VECTORS = (
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf"
     "9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f"
     "11d8c387b2eaeb4302aeeb00d291612bb0c00"),
)

# Fixed long-term keys (spec section 5.5 test keys).
SERVER_SEED = h("5029049762bda60771ca2914e383190ea09ed4b71af9c9593ea31c850fc4faa2")
SERVER_PUB = h("2088558ebd9b461dd09df000daf40f87f73840c55418576074393bb970e14698")
CLIENT_SEED = h("10866ec48a11f3c56d77a64b2f54aa066c0cb475d8c87d35b491eed6ac0bdebc")
CLIENT_PUB = h("be1ca074f4a58bbbd262a7f9523b6fb0bb9e8662287c3389a2e163dc55de281f")


class TestRandom:
    """Deterministic bytes for the self-test only (never for real keys): SHA-256 in counter
    mode where hashlib exists, else a 16-bit LCG (kept small so it stays in small ints)."""

    def __init__(self, seed):
        self.seed = seed
        self.ctr = 0
        try:
            import hashlib

            self.sha = hashlib.sha256
        except (ImportError, AttributeError):
            self.sha = None

    def __call__(self, n):
        out = bytearray(n)
        i = 0
        while i < n:
            self.ctr += 1
            if self.sha is not None:
                block = self.sha(self.seed + bytes((self.ctr >> 8 & 255, self.ctr & 255))).digest()
            else:
                x = (self.ctr * 7919 + len(self.seed)) & 0xFFFF
                block = bytearray(16)
                for j in range(16):
                    x = (x * 25173 + 13849) & 0xFFFF
                    block[j] = x >> 8
            for b in block:
                if i == n:
                    break
                out[i] = b
                i += 1
        return bytes(out)


# --------------------------------------------------------------------------- checks

def check_x25519(be):
    for k, u, r in X25519_VECTORS:
        got = be.x25519(h(k), h(u))
        assert got == h(r), "x25519 RFC 7748 5.2 mismatch"
    assert be.x25519_base(h(DH_ALICE)) == h(DH_ALICE_PUB), "x25519_base RFC 7748 6.1"
    assert be.x25519(h(DH_ALICE), h(DH_BOB_PUB)) == h(DH_SHARED), "x25519 DH RFC 7748 6.1"


def check_aead(be):
    nonce = h(AEAD_NONCE)
    n = len(AEAD_PT)
    out = bytearray(n + 16)
    be.aead_seal(AEAD_KEY, nonce, AEAD_PT, 0, n, out, 0)
    assert bytes(out) == h(AEAD_CT + AEAD_TAG_NO_AAD), "seal (empty AAD) mismatch"
    back = bytearray(n)
    be.aead_open(AEAD_KEY, nonce, out, 0, n, back, 0)
    assert bytes(back) == AEAD_PT, "open mismatch"
    # The RFC 8439 2.8.2 vector itself has AAD; backends that take an aad= argument check it.
    try:
        be.aead_seal(AEAD_KEY, nonce, AEAD_PT, 0, n, out, 0, aad=h(AEAD_AAD))
    except TypeError:
        return "no aad= argument: 2.8.2 checked as ciphertext + empty-AAD tag"
    assert bytes(out) == h(AEAD_CT + AEAD_TAG), "RFC 8439 2.8.2 mismatch"
    # A flipped ciphertext bit must fail authentication and leave dst untouched.
    out2 = bytearray(h(AEAD_CT + AEAD_TAG_NO_AAD))
    out2[5] ^= 1
    back = bytearray(b"\xaa" * n)
    try:
        be.aead_open(AEAD_KEY, nonce, out2, 0, n, back, 0)
    except OssuaryError:
        pass
    else:
        raise AssertionError("tampered ciphertext opened")
    assert back == bytearray(b"\xaa" * n), "dst written before the tag check"
    return None


def check_ed25519(be):
    for sk, pk, msg, sig in ED25519_VECTORS:
        assert be.ed25519_public(h(sk)) == h(pk), "ed25519 public key mismatch"
        assert be.ed25519_sign(h(sk), h(msg)) == h(sig), "ed25519 signature mismatch"
        assert be.ed25519_verify(h(pk), h(msg), h(sig)) is True, "ed25519 verify failed"
        bad = bytearray(h(sig))
        bad[0] ^= 1
        assert be.ed25519_verify(h(pk), h(msg), bytes(bad)) is False, "bad signature verified"


class Pair:
    """Client and server joined by in-memory byte queues (one direction each)."""

    def __init__(self, client, server):
        self.client = client
        self.server = server
        self.to_server = bytearray()
        self.to_client = bytearray()
        self.out = bytearray(max(client.max_packet, server.max_packet, 208))
        self.events = {id(client): [], id(server): []}
        self.received = {id(client): [], id(server): []}
        self.tamper = None      # callable(bytearray) applied to the next client->server data

    def _pump(self, conn, inbox, outbox):
        moved = False
        while True:
            n = conn.data_to_send(self.out)
            if n:
                outbox.extend(self.out[:n])
                moved = True
            if inbox:
                taken = conn.receive_data(inbox)
                inbox[:] = inbox[taken:]
            ev = conn.next_event()
            if ev == NEED_DATA:
                n = conn.data_to_send(self.out)
                if n:
                    outbox.extend(self.out[:n])
                    moved = True
                if not inbox:
                    return moved
                continue
            moved = True
            self.events[id(conn)].append(ev)
            if ev == UNTRUSTED_KEY:
                raise AssertionError("unexpected UNTRUSTED_KEY on %s" % conn.state_name)
            if ev == DATA:
                self.received[id(conn)].append(bytes(conn.plaintext[:conn.data_len]))
            if ev == CLOSED or ev == RESET:
                return moved

    def run(self, rounds=20):
        for _ in range(rounds):
            a = self._pump(self.client, self.to_client, self.to_server)
            b = self._pump(self.server, self.to_server, self.to_client)
            if not (a or b):
                return

    def send(self, sender, payload):
        n = sender.send_data(payload, self.out)
        frame = bytearray(self.out[:n])
        if sender is self.client:
            if self.tamper is not None:
                self.tamper(frame)
                self.tamper = None
            self.to_server.extend(frame)
        else:
            self.to_client.extend(frame)
        self.run()


def _pair(server_role, client_seed, authorize, seed):
    client = Connection(CLIENT, secret_key=client_seed, authorized_keys=(SERVER_PUB,),
                        max_record=1024, random=TestRandom(seed + b"c"))
    server = Connection(server_role, secret_key=SERVER_SEED,
                        authorized_keys=(CLIENT_PUB,) if authorize else (),
                        max_record=1024, random=TestRandom(seed + b"s"))
    assert client.local_public_key == (CLIENT_PUB if client_seed else None)
    assert server.local_public_key == SERVER_PUB
    p = Pair(client, server)
    p.run()
    assert client.established and server.established, "handshake did not finish: %s / %s" % (
        client.state_name, server.state_name)
    assert HANDSHAKE_DONE in p.events[id(client)] and HANDSHAKE_DONE in p.events[id(server)]
    assert client.remote_public_key == SERVER_PUB, "client did not learn the server key"
    return p


def _exchange(p):
    c, s = p.client, p.server
    p.send(c, b"hello from the client")
    p.send(s, b"hello from the server")
    p.send(c, bytes(range(256)) * 4)          # one full 1 KiB record
    p.send(s, b"")                            # an empty record is legal
    assert p.received[id(s)] == [b"hello from the client", bytes(range(256)) * 4], \
        "server got %r" % (p.received[id(s)],)
    assert p.received[id(c)] == [b"hello from the server", b""], "client got wrong data"


def check_auth_server():
    p = _pair(AUTH_SERVER, CLIENT_SEED, True, b"auth")
    assert p.server.remote_public_key == CLIENT_PUB, "server did not verify the client key"
    _exchange(p)


def check_unauth_server():
    p = _pair(UNAUTH_SERVER, None, False, b"unauth")
    assert p.server.remote_public_key is None
    _exchange(p)


def check_tamper():
    p = _pair(AUTH_SERVER, CLIENT_SEED, True, b"tamper")
    p.send(p.client, b"before")

    def flip(frame):
        frame[12 + 2] ^= 0x40          # a ciphertext byte (header 8 + msg len 2 + pad 2)

    p.tamper = flip
    p.send(p.client, b"this record is tampered with")
    assert p.received[id(p.server)] == [b"before"], "tampered record was delivered"
    assert RESET in p.events[id(p.server)], "no RESET after a flipped ciphertext byte: %r" % (
        [EVENT_NAMES[e] for e in p.events[id(p.server)]],)
    # The reset restarts the handshake by itself, and data flows again.
    p.run()
    assert p.client.established and p.server.established, "no recovery after the reset"
    p.send(p.client, b"after")
    assert p.received[id(p.server)][-1] == b"after"


def random_source_report():
    try:
        from ossuary_micro.rand import default_random
        from ossuary_micro.randcheck import check_random

        check_random(default_random())
        return "random source: os.urandom OK"
    except OssuaryError as e:
        return "random source: NONE (%s) - pass random= to Connection" % (e,)


def main():
    impl = sys.implementation
    print("selftest: %s %s on %s" % (impl.name, ".".join(str(x) for x in impl.version[:3]),
                                    sys.platform))
    print(random_source_report())
    default = get_backend().name
    # The default backend first; each other one is loaded only for its own checks and
    # dropped afterwards (_unload), since on a board a second backend's code may not fit
    # beside the first. The handshakes use the default backend.
    names = [default] + [n for n in BACKENDS if n != default]
    counts = [0, 0]
    tested = []
    for name in names:
        try:
            be = get_backend(name)
        except OssuaryError:
            continue    # not available on this interpreter
        tested.append(name)
        _run("x25519 RFC 7748 [%s]" % name, check_x25519, be, counts)
        _run("chacha20-poly1305 RFC 8439 [%s]" % name, check_aead, be, counts)
        _run("ed25519 RFC 8032 [%s]" % name, check_ed25519, be, counts)
        if name == default:
            _run("handshake AUTH_SERVER + data", check_auth_server, None, counts)
            _run("handshake UNAUTH_SERVER keyless client + data", check_unauth_server, None,
                 counts)
            _run("tamper -> RESET -> recovery", check_tamper, None, counts)
        else:
            be = None
            _unload(name)
    print("backends: %s (default %s)" % (", ".join(tested), default))
    print("%d passed, %d failed" % (counts[0], counts[1]))
    return counts[1]


BACKENDS = ("cryptography", "viper", "pure")
# The modules each backend loads (ossuary_micro/crypto/), dropped again by _unload.
_BACKEND_MODULES = {"cryptography": ("pyca",), "viper": ("viper",),
                    "pure": ("pure", "_chacha", "_curve25519", "_sha512")}


def _unload(name):
    # Forget a checked backend so its code can be collected: the registry's cache (a private
    # detail of ossuary_micro.crypto, fair game for its own self-test) and the modules.
    import ossuary_micro.crypto as crypto
    crypto._cache.pop(name, None)
    for m in _BACKEND_MODULES[name]:
        full = "ossuary_micro.crypto." + m
        if full in sys.modules:
            del sys.modules[full]
        if hasattr(crypto, m):
            delattr(crypto, m)
    gc.collect()


def _run(label, fn, arg, counts):
    t0 = _ticks()
    try:
        note = fn(arg) if arg is not None else fn()
    except Exception as e:  # any exception is a failed check; show it and go on
        counts[1] += 1
        print("FAIL %s" % label)
        sys.print_exception(e) if hasattr(sys, "print_exception") else print(repr(e))
    else:
        counts[0] += 1
        print("ok   %s (%d ms)%s" % (label, _diff(_ticks(), t0), "; " + note if note else ""))
    gc.collect()


if __name__ == "__main__":
    if main() and sys.platform != "webassembly":
        sys.exit(1)
