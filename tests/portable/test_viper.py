# Tests of the viper backend's internals and its MicroPython-only promises.
#
# Limb arithmetic against Python ints on random and edge values, ChaCha20 / AEAD / X25519 /
# Ed25519 / SHA-512 against published vectors and values precomputed with pyca/cryptography,
# random cross-checks against the pure backend, and zero-allocation checks with
# micropython.heap_lock(). Every test returns at once on CPython or on a MicroPython without
# the viper emitter (the WebAssembly port), where the backend cannot exist.

import gc
import sys

from ossuary_micro.errors import AuthenticationFailed, CryptoError
from tests.portable._util import h, hx, raises

try:
    import micropython
    from ossuary_micro.crypto import viper as F  # field and AEAD internals
    from ossuary_micro.crypto import _viper_ed as E  # Ed25519 and SHA-512 internals
    from ossuary_micro.crypto import get_backend
    V = get_backend("viper")
    P = get_backend("pure")
except (ImportError, SyntaxError, NotImplementedError, CryptoError):
    V = None

try:
    from hashlib import sha256
except ImportError:  # pragma: no cover
    from uhashlib import sha256

_P25519 = 2 ** 255 - 19


def _rand32():
    import random
    return random.getrandbits(32)


def _rand_int(bits):
    v = 0
    for _ in range((bits + 31) // 32):
        v = (v << 32) | _rand32()
    return v & ((1 << bits) - 1)


def _rand_bytes(n):
    return bytes(_rand32() & 0xFF for _ in range(n))


def _fe(v):
    o = bytearray(80)
    s = v.to_bytes(32, "little")
    F._limbs(o, s, 0, 32)  # bytes to limbs
    o[77] &= 254  # bit 255 left out
    return o


def _limbs(o):
    return [int.from_bytes(o[4 * i:4 * i + 4], "little") for i in range(20)]


def _val(o):
    # The integer a limb array stands for (not reduced).
    v = 0
    for i, limb in enumerate(_limbs(o)):
        v += limb << (13 * i)
    return v


def _loose(o, where):
    # The invariant every field operation promises: limbs <= 8799 (see viper.py).
    m = max(_limbs(o))
    assert m <= 8799, (where, m)


def _out(o):
    F._reduce(o, 20, 8, 19)
    b = bytearray(32)
    F._limbs(o, b, 0, -1)  # to bytes
    return int.from_bytes(b, "little")


def test_field_bias_is_64p():
    # addk's subtraction adds 64p in borrowed limbs (made in code, not a table): 0 - 0 is a
    # multiple of p, and subtracting the largest loose element (every limb 8799) from zero
    # never takes a limb negative, so the value is right and the result loose.
    if V is None:
        return
    o = bytearray(80)
    F._addk(o, F._FE0, F._FE0, -1)
    _loose(o, "bias")
    assert _val(o) % _P25519 == 0 and _val(o) > 0
    top = bytearray(80)
    for i in range(20):
        top[4 * i] = 8799 & 0xFF
        top[4 * i + 1] = 8799 >> 8
    F._addk(o, F._FE0, top, -1)
    _loose(o, "bias - top")
    assert _val(o) % _P25519 == -_val(top) % _P25519


def test_field_ops_match_python_ints():
    if V is None:
        return
    edges = [0, 1, 2, 19, 8191, 8192, _P25519 - 1, _P25519, _P25519 + 1, 2 ** 255 - 1,
             2 ** 255 - 20, 2 ** 254, 2 ** 247 - 1, 121665]
    o = bytearray(80)
    for trial in range(400):
        a = edges[trial % len(edges)] if trial < 3 * len(edges) else _rand_int(255)
        b = edges[(trial * 5) % len(edges)] if trial < 3 * len(edges) else _rand_int(255)
        x = _fe(a)
        y = _fe(b)
        assert _val(x) == a % 2 ** 255
        F._mul(o, x, y)
        _loose(o, "mul")
        assert _val(o) % _P25519 == a * b % _P25519, ("mul", a, b)
        F._mul(x, o, o)  # chained: loose inputs
        _loose(x, "sq")
        assert _val(x) % _P25519 == (a * b) ** 2 % _P25519, ("sq", a, b)
        F._addk(y, o, x, -1)
        _loose(y, "sub")
        assert _val(y) % _P25519 == (a * b - (a * b) ** 2) % _P25519, ("sub", a, b)
        F._addk(o, y, x, 1)
        _loose(o, "add")
        assert _val(o) % _P25519 == a * b % _P25519, ("add", a, b)
        F._addk(y, F._FE0, o, 121665)
        _loose(y, "mul_small")
        assert _out(y) == a * b * 121665 % _P25519, ("reduce", a, b)
        F._addk(y, x, o, 121665)  # the ladder's AA + a24 * E, both loose
        _loose(y, "add_small")
        assert _out(y) == ((a * b) ** 2 + a * b * 121665) % _P25519, ("add_small", a, b)
        z = _fe(a)
        assert _out(z) == (a % 2 ** 255) % _P25519, ("tobytes", a)
        assert E._is_zero(z) == (1 if a % 2 ** 255 % _P25519 == 0 else 0)


def test_field_worst_case_limbs_stay_32_bit():
    # All-maximal loose limbs (8799) through _mul (product and square): the largest column sums the code can see.
    if V is None:
        return
    big = bytearray(80)
    for i in range(20):
        big[4 * i] = 8799 & 0xFF
        big[4 * i + 1] = 8799 >> 8
    v = _val(big)
    o = bytearray(80)
    F._mul(o, big, big)
    assert _val(o) % _P25519 == v * v % _P25519
    F._mul(o, big, big)
    assert _val(o) % _P25519 == v * v % _P25519
    F._addk(o, bytearray(80), big, -1)
    assert _val(o) % _P25519 == -v % _P25519
    F._addk(o, big, big, (1 << 17) - 1)  # the largest k _addk allows, on a loose a
    _loose(o, "addk max")
    assert _val(o) % _P25519 == (v << 17) % _P25519


def test_reduce_poly1305_modulus():
    # The shared _reduce with Poly1305's parameters (10 limbs, 2**130 - 5) on accumulators
    # as _poly leaves them (limb 0 < 2**22, limbs 1..9 of 13 bits), edges around q included.
    if V is None:
        return
    q = 2 ** 130 - 5
    vals = [0, 1, 4, 5, q - 1, q, q + 1, q + 4, 2 ** 130 - 1, 2 ** 130, 2 ** 130 + 4]
    for trial in range(200):
        o = bytearray(80)
        if trial < len(vals):
            v = vals[trial]
            limbs = [(v >> (13 * i)) & 0x1FFF for i in range(10)]
            limbs[9] = v >> 117  # the top limb keeps every bit above
        else:
            limbs = [_rand32() % (1 << 22)] + [_rand32() & 0x1FFF for _ in range(9)]
            v = sum(limb << (13 * i) for i, limb in enumerate(limbs))
        for i, limb in enumerate(limbs):
            o[4 * i:4 * i + 4] = limb.to_bytes(4, "little")
        F._reduce(o, 10, 13, 5)
        got = _limbs(o)
        assert max(got[:10]) < 8192 and max(got[10:]) == 0, (trial, got)
        assert _val(o) == v % q, (trial, v)


def test_chacha20_block_rfc8439_2_3_2():
    if V is None:
        return
    key = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    nonce = h("000000090000004a00000000")
    st = F._AE  # the state at its start: constants | key | counter 1 | nonce
    st[0:16] = b"expand 32-byte k"
    st[16:48] = key
    st[48:52] = b"\x01\x00\x00\x00"
    st[52:64] = nonce
    out = bytearray(64)
    F._xor(F._FE0, 0, out, 0, 64)  # keystream = block of zeros XOR keystream
    assert hx(out) == (
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")
    st[16:] = bytes(len(st) - 16)  # the key material, as _chacha_poly leaves it


def test_aead_rfc8439_2_8_2_with_aad():
    if V is None:
        return
    key = h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
    nonce = h("070000004041424344454647")
    aad = h("50515253c0c1c2c3c4c5c6c7")
    pt = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
          b"for the future, sunscreen would be it.")
    out = bytearray(len(pt) + 16)
    V.aead_seal(key, nonce, pt, 0, len(pt), out, 0, aad)
    assert hx(out[len(pt):]) == "1ae10b594f09e26a7e902ecbd0600691"
    assert hx(out[:16]) == "d31a8d34648e60db7b86afbc53ef7ec2"
    back = bytearray(len(pt))
    V.aead_open(key, nonce, out, 0, len(pt), back, 0, aad)
    assert bytes(back) == pt


def test_aead_matches_pyca_precomputed():
    # sha256(ciphertext || tag) from pyca/cryptography, key 00..1f, nonce 64..6f.
    if V is None:
        return
    want = {
        0: "7d5f11cc279f612abaeefde14daa5efa08cbf5fd34749152c52bfee229e79909",
        1: "d37994439690141a268b1d73797b56b65b79955c09325670b80bc6ceb8329544",
        63: "c2c0cd75b3ef86b05748489fe5945aa870b3414a0835429ae08a94bff412cbd0",
        64: "f4ef9dcd1344ba5136e0f807e214353db640e1a408605d9443526e65fe15e940",
        65: "6a4c62c3911915243549cd01395b8dc00a18c8ceb65358702352a6b0bd648ce4",
        300: "013d94abe75a6cfb371bc4d04066fb203d935823564faa6e619aa1b7594dcde6",
        1024: "d063cebeb4596bd9b7fa17d75d03a6da03c850612c5a2615011af6914f4591ab",
        4097: "88868ea6229fa8ca580795e0d9653137666781cd60073d9ab28ce37b8c824190",
    }
    key = bytes(range(32))
    nonce = bytes(range(100, 112))
    for n in want:
        msg = bytes((i * 7 + 3) & 255 for i in range(n))
        out = bytearray(n + 16)
        V.aead_seal(key, nonce, msg, 0, n, out, 0)
        assert hx(sha256(out).digest()) == want[n], n
        back = bytearray(n)
        V.aead_open(key, nonce, out, 0, n, back, 0)
        assert bytes(back) == msg, n


def test_aead_random_against_pure_with_offsets():
    if V is None:
        return
    for trial in range(40):
        n = _rand32() % 300
        soff = _rand32() % 7
        doff = _rand32() % 5
        key = _rand_bytes(32)
        nonce = _rand_bytes(12)
        src = bytearray(_rand_bytes(soff + n + 3))
        a = bytearray(doff + n + 16 + 2)
        b = bytearray(doff + n + 16 + 2)
        V.aead_seal(key, nonce, src, soff, n, a, doff)
        P.aead_seal(key, nonce, src, soff, n, b, doff)
        assert a == b, (trial, n, soff, doff)
        back = bytearray(n + 1)
        V.aead_open(key, nonce, a, doff, n, back, 1)
        assert bytes(back[1:]) == bytes(src[soff:soff + n])
        # one flipped bit anywhere: refused, dst untouched
        i = _rand32() % (n + 16)
        a[doff + i] ^= 1 << (_rand32() % 8)
        sentinel = bytearray(b"\x5a" * (n + 1))
        raises(AuthenticationFailed, V.aead_open, key, nonce, a, doff, n, sentinel, 1)
        assert sentinel == bytearray(b"\x5a" * (n + 1))


def test_aead_refuses_bad_arguments():
    if V is None:
        return
    k = bytes(32)
    iv = bytes(12)
    raises(CryptoError, V.aead_seal, bytes(31), iv, b"x", 0, 1, bytearray(17), 0)
    raises(CryptoError, V.aead_seal, k, bytes(8), b"x", 0, 1, bytearray(17), 0)
    raises(CryptoError, V.aead_seal, k, iv, b"x", 0, 1, bytearray(16), 0)
    raises(CryptoError, V.aead_seal, k, iv, b"x", 0, 2, bytearray(18), 0)
    raises(CryptoError, V.aead_seal, k, iv, b"x", -1, 1, bytearray(17), 0)
    raises(CryptoError, V.aead_seal, k, iv, b"x", 0, 1, bytes(17), 0)  # read-only dst
    raises(CryptoError, V.aead_seal, k, iv, b"x", 0, 1, memoryview(bytes(17)), 0)
    raises(CryptoError, V.aead_seal, "k" * 32, iv, b"x", 0, 1, bytearray(17), 0)
    raises(CryptoError, V.aead_seal, None, iv, b"x", 0, 1, bytearray(17), 0)
    raises(CryptoError, V.aead_open, k, iv, bytes(16), 0, 1, bytearray(1), 0)


def test_aead_allocates_nothing():
    if V is None:
        return
    key = bytes(range(32))
    nonce = bytes(12)
    for n in (0, 1, 64, 100, 1024):
        src = bytearray(n)
        ct = bytearray(n + 16)
        back = bytearray(n)
        V.aead_seal(key, nonce, src, 0, n, ct, 0)  # warm up (first-call caches)
        gc.collect()
        micropython.heap_lock()
        try:
            V.aead_seal(key, nonce, src, 0, n, ct, 0)
            V.aead_open(key, nonce, ct, 0, n, back, 0)
        finally:
            micropython.heap_unlock()
        assert back == src
        # Key material is cleared after each call: the state (all but its constant first 16
        # bytes), keystream, r, s, h and scratch.
        assert len(F._AE) == 448
        assert bytes(F._AE[0:16]) == b"expand 32-byte k" and not any(F._AE[16:])
        assert all(not any(b) for b in (F._PH, F._PS, F._PA))


def test_x25519_rfc7748_and_zero():
    if V is None:
        return
    assert hx(V.x25519(
        h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
        h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"))) == \
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    assert hx(V.x25519(
        h("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
        h("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"))) == \
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"
    # u = 0 and u = 1 are low-order: the result is all zero and must be refused.
    raises(CryptoError, V.x25519, bytes(range(32)), bytes(32))
    raises(CryptoError, V.x25519, bytes(range(32)), b"\x01" + bytes(31))
    # u = p (non-canonical 0) and the top bit set on u = 0: masked, still all zero.
    raises(CryptoError, V.x25519, bytes(range(32)), b"\xed" + b"\xff" * 30 + b"\x7f")
    raises(CryptoError, V.x25519, bytes(range(32)), bytes(31) + b"\x80")
    raises(CryptoError, V.x25519, bytes(31), bytes(32))
    raises(CryptoError, V.x25519_base, bytes(33))


def test_x25519_matches_pyca_and_pure():
    if V is None:
        return
    a = bytes((i * 13 + 1) & 255 for i in range(32))
    b = bytes((i * 29 + 7) & 255 for i in range(32))
    pub_b = V.x25519_base(b)
    assert hx(pub_b) == "54558c3f5fabc16be191bfe5d2a9f97227952a99f6f2e7286d02e6a3fe5f932b"
    assert hx(V.x25519(a, pub_b)) == \
        "04a08c1f0941c756b284c861897185fefc73b1f6ec8606349047ad3da0879e78"
    for _ in range(4):
        s = _rand_bytes(32)
        u = _rand_bytes(32)  # random u, top bit included: masking must agree
        assert V.x25519(s, u) == P.x25519(s, u)
        assert V.x25519_base(s) == P.x25519_base(s)


def test_x25519_heap_under_1k():
    if V is None:
        return
    s = bytes(range(1, 33))
    u = V.x25519_base(bytes(range(2, 34)))
    V.x25519(s, u)
    gc.collect()
    before = gc.mem_alloc()
    V.x25519(s, u)
    used = gc.mem_alloc() - before
    assert used <= 1024, used


def test_ed25519_rfc8032_and_pyca():
    if V is None:
        return
    cases = [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
         "39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67"
         "f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
        # pyca/cryptography, seed (i*13+1) & 255, message 00..c7
        ("01" + "".join("%02x" % ((i * 13 + 1) & 255) for i in range(1, 32)),
         "098f9f3908b407db2cbfb61df028acc52d5f8da74a9d7e03ab9c2f8656f6a9f0",
         "".join("%02x" % i for i in range(200)),
         "1c797118e0afcb0a129fe7d6d67260454f892f97906a72e5ddef1d71d6f42087bb67ad704e2a56585f25"
         "1bb15e36c87b2fb77d10f947b03771bd90259471d40e"),
    ]
    for seed, pub, msg, sig in cases:
        seed = h(seed)
        msg = h(msg)
        assert hx(V.ed25519_public(seed)) == pub
        s = V.ed25519_sign(seed, msg)
        assert hx(s) == sig
        assert V.ed25519_verify(h(pub), msg, s) is True
        bad = bytearray(s)
        bad[63] ^= 0x10
        assert V.ed25519_verify(h(pub), msg, bad) is False
        assert V.ed25519_verify(h(pub), msg + b"!", s) is False
    assert V.ed25519_verify(None, b"", bytes(64)) is False
    assert V.ed25519_verify(bytes(32), b"", bytes(63)) is False
    raises(CryptoError, V.ed25519_sign, bytes(31), b"")


def test_secret_scratch_wiped_after_x25519_and_ed25519():
    # Issue 9.7: the SHA-512 buffers used to keep the seed (and h, the scalar) after
    # ed25519_public / ed25519_sign; the ladder's elements kept the shared secret. Every
    # secret-bearing module buffer must read all zero after each call that used it.
    if V is None:
        return
    # The SHA-512 context (state, variables, schedule, partial block): the first 384 bytes of
    # _SS, a window of it (the constants after it are not wiped).
    sha = [x for x in E._SCRATCH if isinstance(x, memoryview) and len(x) == 384]
    assert len(sha) == 1
    # The ladder's clamped scalar and its thirteen elements, + the product scratch.
    # The field module in use: Thumb assembler (ARM) or viper.
    mods = sys.modules
    field = mods.get("ossuary_micro.crypto._viper_thumb") \
        or mods["ossuary_micro.crypto._viper_field"]
    ladder = (F._XK,) + F._TMP + F._CH + field._SCRATCH
    assert len(ladder) >= 13
    for group in (sha, ladder, (E._DIG, E._H)):
        for b in group:
            assert any(b is x for x in E._SCRATCH), "not in _SCRATCH"
    for b in ladder:
        # X25519 alone (a protocol 2 node after boot) wipes its own scratch.
        assert any(b is x for x in F._SCRATCH), "not in viper._SCRATCH"
    seed = bytes(range(7, 39))

    def dirty():
        # Leave data in every buffer (a verification uses SHA-512 and the point temporaries
        # and wipes nothing: its data is public), so a missing wipe cannot pass by luck.
        pub = V.ed25519_public(bytes(32))
        V.ed25519_verify(pub, b"m", bytes(64))
        for b in E._SCRATCH:
            b[0] = 1

    calls = (lambda: V.ed25519_public(seed), lambda: V.ed25519_sign(seed, b"message"),
             lambda: V.ed25519_sign(seed, bytes(300)),   # several SHA-512 blocks
             lambda: V.x25519(seed, bytes(range(32))), lambda: V.x25519_base(seed))
    for i, call in enumerate(calls):
        dirty()
        call()
        # X25519 (the last two) touches only viper.py's scratch; what dirty() left in the
        # SHA-512 buffers is not its to wipe.
        scratch = E._SCRATCH if i < 3 else F._SCRATCH
        left = [j for j, b in enumerate(scratch) if any(b)]
        assert not left, (i, left)


def test_ed25519_random_against_pure():
    if V is None:
        return
    for _ in range(3):
        seed = _rand_bytes(32)
        msg = _rand_bytes(_rand32() % 150)
        pub = V.ed25519_public(seed)
        assert pub == P.ed25519_public(seed)
        sig = V.ed25519_sign(seed, msg)
        assert sig == P.ed25519_sign(seed, msg)
        assert V.ed25519_verify(pub, msg, sig) and P.ed25519_verify(pub, msg, sig)


def test_ed25519_strict_public_key_decoding():
    # The identity (y = 1, x = 0) as public key: cofactorless, [S]B == R + [k]A holds for any k
    # with R = [S]B, so the signature (encode(5B), 5) verifies for the canonical encoding and
    # as a memoryview, but not for y = p + 1 (the same point, non-canonical), nor with the sign
    # bit set on x = 0, nor for y = p (non-canonical 0). The pure backend agrees on each.
    if V is None:
        return
    r = bytearray(32)
    E._comb(E._Q, (5).to_bytes(32, "little"))
    E._encode(r, E._Q)
    sig = bytes(r) + (5).to_bytes(32, "little")
    ident = (1).to_bytes(32, "little")
    msg = b"strict"
    for pub, ok in ((ident, True), (memoryview(bytearray(ident)), True),
                    ((_P25519 + 1).to_bytes(32, "little"), False),
                    ((1 + (1 << 255)).to_bytes(32, "little"), False),
                    (_P25519.to_bytes(32, "little"), False)):
        assert V.ed25519_verify(pub, msg, sig) is ok, (bytes(pub), ok)
        assert P.ed25519_verify(bytes(pub), msg, sig) is ok, (bytes(pub), ok)
    assert V.ed25519_verify(ident, msg, sig[:63] + b"\x01") is False


def test_sha512_block_boundaries_and_streaming():
    if V is None:
        return
    assert hx(V.sha512(b"abc")) == (
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
    for n in (0, 1, 111, 112, 113, 127, 128, 129, 239, 240, 255, 256, 1000):
        data = _rand_bytes(n)
        d = V.sha512(data)
        assert d == P.sha512(data), n
        # the same bytes fed in uneven pieces
        pieces = []
        i = 0
        step = 1
        while i < n:
            k = min(step, n - i)
            pieces.append(memoryview(data)[i:i + k])
            i += k
            step = step * 3 + 1
        out = bytearray(64)
        E._sha(out, pieces)
        assert bytes(out) == d, n


def test_sha512_constants_computed_at_import():
    # K and IV come from integer roots at import (FIPS 180-4 4.2.3, 5.3.5): spot-check the
    # first and last round constants and the first/last IV words against the standard.
    if V is None:
        return

    def word(buf, i):  # word i of the constants, from byte 384 of _SS on
        i = 384 + 8 * i
        hi = int.from_bytes(buf[i:i + 4], "little")
        lo = int.from_bytes(buf[i + 4:i + 8], "little")
        return (hi << 32) | lo

    assert word(E._SS, 0) == 0x428a2f98d728ae22
    assert word(E._SS, 40) == 0xa2bfe8a14cf10364
    assert word(E._SS, 79) == 0x6c44198c4a475817
    assert word(E._SS, 80) == 0x6a09e667f3bcc908
    assert word(E._SS, 87) == 0x5be0cd19137e2179
