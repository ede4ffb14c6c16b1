# Published vectors on a small board: the RFC tests of tests/portable/test_crypto_rfc.py and
# every Wycheproof case (X25519, ChaCha20-Poly1305, Ed25519), on the viper backend only; first,
# on ARM, the Thumb field functions against their viper twins (same limbs).
#
# Written for the Cortex-M0 emulator (tests/test_board_emulator.py), where viper.py uses the
# Thumb assembler field code: a 140 KiB heap cannot hold the Wycheproof JSON, so the host
# flattens it into `board_vectors.txt` in the mounted folder, one case per line (hex fields,
# "-" for empty), and this script reads it line by line:
#   X tcId private public shared|ERR
#   A tcId valid|invalid key iv aad msg ct tag
#   E tcId valid|invalid public msg sig
# Prints one line per failure, `cases X=n A=n E=n`, and last exactly `N passed, N failed`
# (each RFC test function and each vector case is one).

import gc
import sys
from binascii import unhexlify, hexlify

from ossuary_micro.crypto import get_backend
from ossuary_micro.errors import AuthenticationFailed, CryptoError

B = get_backend("viper")
from ossuary_micro.crypto import viper  # noqa: E402

# Which field code runs: the Thumb assembler (ARM) or viper's own.
_THUMB = "ossuary_micro.crypto._viper_thumb" in sys.modules
print("backend viper: %s" % ("thumb" if _THUMB else "viper"))
# The RFC tests that do not fit a board run: 1000 chained X25519s (~9 G instructions on the
# emulator; the single-iteration value and the Wycheproof X25519 cases check the same code),
# and the pure backend's internals (the pure backend is not what this run is about).
SKIP = ("test_x25519_rfc7748_iterated", "test_poly1305_rfc8439_2_5_2_pure",
        "test_sha512_pure_python_matches_backend")
passed = 0
failed = 0


def fail(what):
    global failed
    failed += 1
    print("FAIL " + what)


def rfc():
    global passed
    import tests.portable.test_crypto_rfc as m

    m._backends = lambda: [B]  # the backend under test only
    for name in sorted(dir(m)):
        if not name.startswith("test_") or name in SKIP:
            continue
        try:
            getattr(m, name)()
            passed += 1
        except Exception as e:  # noqa: BLE001 - any exception is a failed test
            fail(name)
            sys.print_exception(e)
        gc.collect()


def field_twins(trials):
    # The Thumb field functions against their viper twins, limb for limb, on loose elements
    # (limbs <= 8799, the bound every field operation keeps): random ones from a fixed LCG,
    # plus all-zero and all-8799. Aliased outputs (o is a) as the ladder uses them.
    global passed
    from ossuary_micro.crypto import _viper_field as V
    from ossuary_micro.crypto import _viper_thumb as T

    x = [12345]

    def elem(kind):
        e = bytearray(80)
        for i in range(20):
            x[0] = (x[0] * 1103515245 + 12345) & 0x7FFFFFFF
            v = (x[0] >> 8) % 8800 if kind == 2 else 8799 * kind
            e[4 * i] = v & 255
            e[4 * i + 1] = v >> 8
        return e

    bad = 0
    for t in range(trials):
        kind = 2 if t > 1 else t  # 0: zeros, 1: all 8799, then random
        a, b = elem(kind), elem(2)
        outs = []
        for f in (V, T):
            o = bytearray(a)
            f._mul(o, o, b)
            q = bytearray(a)
            f._mul(q, q, q)
            r = []
            for k in (1, -1, 121665):
                s = bytearray(80)
                f._addk(s, a, b, k)
                r.append(s)
            c, d = bytearray(a), bytearray(b)
            f._cswap(c, d, t & 1)
            # reduce modulo p, and modulo 2**130 - 5 on 10 limbs with limb 0 up to 2**22
            # (Poly1305's accumulator): a's limb 0 times 400 stays below that.
            m, h = bytearray(a), bytearray(b)
            f._reduce(m, 20, 8, 19)
            v = 400 * (h[0] | (h[1] << 8))
            h[0], h[1], h[2] = v & 255, (v >> 8) & 255, v >> 16
            f._reduce(h, 10, 13, 5)
            # one Poly1305 block: h (10 limbs, limb 0 as above) and a block a, with r (13-bit
            # limbs of b) at offset 8 of a buffer, after 5r
            w = bytearray(88)
            for i in range(10):
                v = (b[4 * i] | (b[4 * i + 1] << 8)) & 0x1FFF
                w[48 + 4 * i], w[49 + 4 * i] = v & 255, v >> 8
                v *= 5
                w[8 + 4 * i], w[9 + 4 * i] = v & 255, v >> 8
            g, e = bytearray(h), bytearray(a)
            f._pblock(g, e, w, 8)
            # ChaCha20's block function on a state of a's and b's bytes
            z = a[:32] + b[:32] + bytearray(64)
            f._block(z, viper._QR)
            # bytes to limbs: n = 0..32 bytes (zeros after them) at an offset; to bytes: the
            # reduced m, and h (13-bit limbs) at an offset
            src = bytes((a[i] * 7 + b[i] * 13 + t) & 255 for i in range(80))
            lf = bytearray(80)
            f._limbs(lf, src, t % 40, t % 33)
            lt = bytearray(40)
            f._limbs(m, lt, 0, -1)
            f._limbs(h, lt, 1 + t % 8, -1)
            outs.append((o, q, r[0], r[1], r[2], c, d, m, h, g, e, z, lf, lt))
        if outs[0] != outs[1]:
            bad += 1
            fail("field twins differ, trial %d" % t)
    if not bad:
        passed += 1
    print("field twins: %d trials" % trials)


def sha_twins(trials):
    # The Thumb _addf (SHA-512's primitive) against its viper twin, word for word. _viper_ed.py
    # defines the viper one only where the Thumb module has no _addf: it is loaded here a
    # second time with that module hidden, then dropped. Random contexts, every selector,
    # word indices and round numbers as _compress uses them.
    global passed
    from ossuary_micro.crypto import _viper_thumb as T
    from ossuary_micro.crypto import _viper_ed as E
    import ossuary_micro.crypto as pkg
    mods = sys.modules
    name = "ossuary_micro.crypto._viper_ed"
    del mods[name]
    mods["ossuary_micro.crypto._viper_thumb"] = fail  # an object without _addf
    try:
        from ossuary_micro.crypto import _viper_ed as E2
        twin = E2._addf
    finally:
        mods["ossuary_micro.crypto._viper_thumb"] = T
        mods[name] = E
        pkg._viper_ed = E
    del E2
    gc.collect()
    x = [4321]

    def rnd():
        x[0] = (x[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return x[0] >> 7

    bad = 0
    for t in range(trials):
        ctx = bytearray(E._SS)  # the constants (rotation table, K) as _SS holds them
        for k in range(384):
            ctx[k] = rnd() & 255
        if t < 2:  # all ones: every carry taken
            for k in range(384):
                ctx[k] = 255
        ops = [((rnd() % 64) & ~1, rnd() % 80 if r in (12, 16) else (rnd() % 64) & ~1, r)
               for r in (0, 3, 6, 9, 12, 16, 20)]
        ops.append((2 * (t % 8), 96 + 2 * (t % 80), 20))  # + K[t]
        outs = []
        for f in (twin, T._addf):
            d = bytearray(ctx)
            for i, j, r in ops:
                f(d, i, j, r)
            outs.append(d)
        if outs[0] != outs[1]:
            bad += 1
            fail("SHA-512 twins differ, trial %d" % t)
    if not bad:
        passed += 1
    print("SHA-512 twins: %d trials" % trials)


def _hex(s):
    return b"" if s == "-" else unhexlify(s)


def x25519(f):
    tc, priv, pub, want = f
    try:
        got = hexlify(B.x25519(_hex(priv), _hex(pub))).decode()
    except CryptoError:
        got = "ERR"
    return got == want


def aead(f):
    tc, result, key, iv, aad, msg, ct, tag = [f[0], f[1]] + [_hex(x) for x in f[2:]]
    n = len(msg)
    if result == "valid":
        out = bytearray(n + 16)
        B.aead_seal(key, iv, msg, 0, n, out, 0, aad)
        back = bytearray(n)
        B.aead_open(key, iv, ct + tag, 0, n, back, 0, aad)
        return bytes(out) == ct + tag and bytes(back) == msg
    sentinel = b"\x5a" * len(ct)
    back = bytearray(sentinel)
    want = CryptoError if len(iv) != 12 else AuthenticationFailed
    try:
        B.aead_open(key, iv, ct + tag, 0, len(ct), back, 0, aad)
        return False
    except want as e:
        if len(iv) != 12 and isinstance(e, AuthenticationFailed):
            return False
    return bytes(back) == sentinel


def ed25519(f):
    tc, result, pub, msg, sig = f
    return B.ed25519_verify(_hex(pub), _hex(msg), _hex(sig)) is (result == "valid")


def vectors(path):
    global passed
    kinds = {"X": x25519, "A": aead, "E": ed25519}
    counts = {"X": 0, "A": 0, "E": 0}
    with open(path) as fh:
        for line in fh:
            f = line.split()
            if not f:
                continue
            try:
                ok = kinds[f[0]](f[1:])
            except Exception as e:  # noqa: BLE001 - an unexpected exception fails the case
                ok = False
                sys.print_exception(e)
            counts[f[0]] += 1
            if ok:
                passed += 1
            else:
                fail("%s tcId %s" % (f[0], f[1]))
            gc.collect()
    print("cases X=%d A=%d E=%d" % (counts["X"], counts["A"], counts["E"]))


field_twins(300)
if _THUMB:
    sha_twins(200)
rfc()
vectors("board_vectors.txt")
print("%d passed, %d failed" % (passed, failed))
