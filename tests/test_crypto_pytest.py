"""pytest-only crypto checks: backend selection and fallbacks, exception translation at the
pyca boundary, pure vs cryptography agreement on random inputs and on Ed25519 edge cases
that Wycheproof does not cover (non-canonical and small-order public keys)."""

import hashlib
import importlib
import os
import sys
import types

import pytest

from ossuary_micro import crypto
from ossuary_micro.crypto import _curve25519, _sha512, available_backends, get_backend
from ossuary_micro.errors import AuthenticationFailed, CryptoError, NoRandomSource
from ossuary_micro import rand, randcheck

PURE = get_backend("pure")
PYCA = get_backend("cryptography")
BACKENDS = [PURE, PYCA]
P = _curve25519.P
L = _curve25519.L


# ----------------------------------------------------------------------- selection / fallback

def test_default_backend_on_cpython_is_cryptography():
    assert available_backends()[0] == "cryptography"
    assert get_backend().name == "cryptography"
    assert get_backend("pure").name == "pure"
    with pytest.raises(CryptoError):
        get_backend("nonsense")
    with pytest.raises(CryptoError):
        get_backend("viper")  # needs MicroPython's viper emitter


def test_without_cryptography_the_registry_falls_back_to_pure(monkeypatch):
    # Make `import cryptography` fail and forget what the registry already loaded.
    for mod in list(sys.modules):
        if mod == "cryptography" or mod.startswith("cryptography."):
            monkeypatch.setitem(sys.modules, mod, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    monkeypatch.delitem(sys.modules, "ossuary_micro.crypto.pyca", raising=False)
    # `from . import pyca` would otherwise find the package attribute left by the first import.
    monkeypatch.delattr(crypto, "pyca", raising=False)
    monkeypatch.setattr(crypto, "_cache", {})
    with pytest.raises(ImportError):
        importlib.import_module("ossuary_micro.crypto.pyca")
    assert "cryptography" not in available_backends()
    assert get_backend().name == "pure"
    with pytest.raises(CryptoError):
        get_backend("cryptography")


def test_pure_uses_python_sha512_when_hashlib_lacks_it(monkeypatch):
    # MicroPython's hashlib has no sha512: load pure.py against such a hashlib.
    fake = types.ModuleType("hashlib")
    fake.sha256 = hashlib.sha256
    monkeypatch.setitem(sys.modules, "hashlib", fake)
    from ossuary_micro.crypto import pure

    try:
        importlib.reload(pure)
        assert pure._sha512 is _sha512.sha512
        b = pure.Backend()
        seed = bytes(range(32))
        assert b.ed25519_sign(seed, b"msg") == PYCA.ed25519_sign(seed, b"msg")
        assert b.sha512(b"abc") == hashlib.sha512(b"abc").digest()
    finally:
        monkeypatch.undo()
        importlib.reload(pure)
    assert pure._sha512 is not _sha512.sha512


def test_pow_fallback_for_ports_without_three_argument_pow(monkeypatch):
    for base, exp in ((2, P - 2), (12345, (P - 5) // 8), (P - 1, 3), (0, 5)):
        assert _curve25519._pow_loop(base, exp, P) == pow(base, exp, P)
    monkeypatch.setattr(_curve25519, "_pow", _curve25519._pow_loop)
    seed = bytes(range(32))
    msg = b"pow fallback"
    sig = PURE.ed25519_sign(seed, msg)
    assert sig == PYCA.ed25519_sign(seed, msg)
    assert PURE.ed25519_verify(PYCA.ed25519_public(seed), msg, sig)
    assert PURE.x25519_base(seed) == PYCA.x25519_base(seed)


# --------------------------------------------------------------- pyca exception translation

def test_pyca_errors_are_ours():
    k = bytes(range(32))
    with pytest.raises(CryptoError) as e:
        PYCA.x25519(k, bytes(32))  # OpenSSL raises ValueError for the all-zero result
    assert type(e.value) is CryptoError
    ct = bytearray(10 + 16)
    PYCA.aead_seal(k, bytes(12), b"0123456789", 0, 10, ct, 0)
    ct[3] ^= 1
    with pytest.raises(AuthenticationFailed):  # InvalidTag
        PYCA.aead_open(k, bytes(12), ct, 0, 10, bytearray(10), 0)
    with pytest.raises(CryptoError):
        PYCA.aead_seal(k, bytes(12), "not bytes", 0, 9, bytearray(25), 0)
    with pytest.raises(CryptoError):
        PYCA.aead_seal(k, bytes(12), b"x", 0, 1, bytearray(17), 0, "aad as str")
    with pytest.raises(CryptoError):
        PYCA.ed25519_sign(k, "text, not bytes")
    with pytest.raises(CryptoError):
        PYCA.x25519(list(range(32)), bytes(32))
    assert PYCA.ed25519_verify(b"\x00" * 32, b"", bytes(64)) is False


@pytest.mark.parametrize("b", BACKENDS, ids=lambda b: b.name)
def test_wrong_types_are_crypto_errors(b):
    k = bytes(32)
    with pytest.raises(CryptoError):
        b.aead_seal(k, bytes(12), b"abc", "0", 3, bytearray(19), 0)
    with pytest.raises(CryptoError):
        b.aead_open(k, bytes(12), None, 0, 3, bytearray(3), 0)
    with pytest.raises(CryptoError):
        b.x25519_base(5)  # an int is not 32 zero bytes
    with pytest.raises(CryptoError):
        b.ed25519_public("0" * 32)


def test_pyca_without_encrypt_into_copies(monkeypatch):
    from ossuary_micro.crypto import pyca

    key = bytes(range(32))
    msg = os.urandom(100)
    want = bytearray(3 + 116)
    PYCA.aead_seal(key, bytes(12), msg, 0, 100, want, 3)
    monkeypatch.setattr(pyca, "_HAS_ENCRYPT_INTO", False)
    got = bytearray(3 + 116)
    PYCA.aead_seal(key, bytes(12), msg, 0, 100, got, 3)
    assert got == want


def test_cryptography_decrypt_into_leaks_plaintext_so_we_do_not_use_it():
    # Why pyca.aead_open uses decrypt(): decrypt_into fills the buffer before InvalidTag.
    # If a future cryptography stops doing that, this test says decrypt_into became usable.
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    aead = ChaCha20Poly1305(bytes(32))
    if not hasattr(aead, "decrypt_into"):
        pytest.skip("cryptography without decrypt_into")
    ct = bytearray(aead.encrypt(bytes(12), b"secret plaintext", None))
    ct[-1] ^= 1
    buf = bytearray(16)
    with pytest.raises(InvalidTag):
        aead.decrypt_into(bytes(12), ct, None, buf)
    assert buf == b"secret plaintext"
    # Ours leaves dst alone.
    dst = bytearray(16)
    with pytest.raises(AuthenticationFailed):
        PYCA.aead_open(bytes(32), bytes(12), ct, 0, 16, dst, 0)
    assert dst == bytes(16)


# --------------------------------------------------------------- agreement on random input

def test_backends_agree_on_random_inputs():
    for i in range(40):
        a, b_, seed = os.urandom(32), os.urandom(32), os.urandom(32)
        pub_b = PYCA.x25519_base(b_)
        assert PURE.x25519_base(a) == PYCA.x25519_base(a)
        assert PURE.x25519(a, pub_b) == PYCA.x25519(a, pub_b)
        # Random u values are on the twist half the time: RFC 7748 still defines the output.
        u = os.urandom(32)
        assert PURE.x25519(a, u) == PYCA.x25519(a, u)
        msg = os.urandom(i * 7)
        sig = PURE.ed25519_sign(seed, msg)
        assert sig == PYCA.ed25519_sign(seed, msg)
        pub = PURE.ed25519_public(seed)
        assert PURE.ed25519_verify(pub, msg, sig) and PYCA.ed25519_verify(pub, msg, sig)
        bad = bytearray(sig)
        bad[i % 64] ^= 1 << (i % 8)
        assert PURE.ed25519_verify(pub, msg, bad) == PYCA.ed25519_verify(pub, msg, bad) is False
        n = (i * 37) % 300
        ct1, ct2 = bytearray(n + 16), bytearray(n + 16)
        PURE.aead_seal(a, seed[:12], msg[:n] + bytes(max(0, n - len(msg))), 0, n, ct1, 0)
        PYCA.aead_seal(a, seed[:12], msg[:n] + bytes(max(0, n - len(msg))), 0, n, ct2, 0)
        assert ct1 == ct2


def test_verify_fuzz_agrees_and_never_raises():
    # Random public keys (mostly undecodable) and signatures, plus real keys with random
    # signatures: both backends return the same bool and nothing raises.
    seed = os.urandom(32)
    real = PURE.ed25519_public(seed)
    for i in range(300):
        pub = real if i % 3 == 0 else os.urandom(32)
        sig = bytearray(os.urandom(64))
        if i % 2:
            sig[63] &= 0x0F  # S < 2**252 < L, so the equation itself is checked
        msg = os.urandom(i % 50)
        got = PURE.ed25519_verify(pub, msg, sig)
        assert got is PYCA.ed25519_verify(pub, msg, sig) is False


def test_x25519_base_comb_matches_ladder():
    # pure computes x25519_base on the Edwards curve; the ladder with u = 9 must agree.
    nine = (9).to_bytes(32, "little")
    for k in (bytes(32), b"\xff" * 32, os.urandom(32), os.urandom(32)):
        assert PURE.x25519_base(k) == PURE.x25519(k, nine)


# ------------------------------------------------- Ed25519 edge cases beyond Wycheproof

def _enc(y, sign=0):
    return (y | (sign << 255)).to_bytes(32, "little")


def _sig_for_small_order_key(s):
    # R = [s]B, S = s: valid for A = identity (k*A = 0), and for any small-order A when k*A = 0.
    R = _curve25519.encode_point(_curve25519._base_mul(s.to_bytes(32, "little")))
    return R + s.to_bytes(32, "little")


ED_CASES = [
    # (name, public, message, signature, expected)
    ("identity public key (small order) is accepted, cofactorless like OpenSSL",
     _enc(1), b"m", _sig_for_small_order_key(12345), True),
    ("negative-zero public key (x=0, sign bit) is not canonical",
     _enc(1, 1), b"m", _sig_for_small_order_key(12345), False),
    ("public key y = p + 1 is not canonical",
     _enc(P + 1), b"m", _sig_for_small_order_key(12345), False),
    ("public key y = p is not canonical", _enc(P), b"m", _sig_for_small_order_key(7), False),
    ("undecodable public key (y = 2 has no x)", _enc(2), b"m", _sig_for_small_order_key(7), False),
    ("R = identity, S = 0, A = identity", _enc(1), b"x", _enc(1) + bytes(32), True),
    ("non-canonical R (identity as y = p + 1)", _enc(1), b"x", _enc(P + 1) + bytes(32), False),
    ("negative-zero R", _enc(1), b"x", _enc(1, 1) + bytes(32), False),
    ("S = L", _enc(1), b"x", _enc(1) + L.to_bytes(32, "little"), False),
    ("S = 2**255 + small", _enc(1), b"x", _enc(1) + (1 << 255 | 5).to_bytes(32, "little"), False),
]


@pytest.mark.parametrize("case", ED_CASES, ids=lambda c: c[0])
def test_ed25519_edge_cases_agree(case):
    name, pub, msg, sig, want = case
    assert PURE.ed25519_verify(pub, msg, sig) is want
    assert PYCA.ed25519_verify(pub, msg, sig) is want


def test_ed25519_order_two_public_key_depends_on_k_parity():
    # A = (0, -1) has order 2: [k]A vanishes exactly when k is even. Both backends must track it.
    A = _enc(P - 1)
    sig = _sig_for_small_order_key(999)
    seen = set()
    for i in range(16):
        msg = b"msg %d" % i
        k = int.from_bytes(hashlib.sha512(sig[:32] + A + msg).digest(), "little") % L
        want = k % 2 == 0
        seen.add(want)
        assert PURE.ed25519_verify(A, msg, sig) is want
        assert PYCA.ed25519_verify(A, msg, sig) is want
    assert seen == {True, False}


# ------------------------------------------------------------------------------- randomness

def test_default_random_is_os_urandom():
    r = rand.default_random()
    assert r is os.urandom
    assert len(r(33)) == 33
    assert randcheck.check_random(r) is r


def test_no_urandom_means_no_random_source(monkeypatch):
    monkeypatch.setattr(rand, "_urandom", None)
    with pytest.raises(NoRandomSource) as e:
        rand.default_random()
    assert "os.urandom" in str(e.value)


def test_check_random_refuses_broken_sources():
    with pytest.raises(NoRandomSource):
        randcheck.check_random(lambda n: bytes(n))  # constant
    with pytest.raises(NoRandomSource):
        randcheck.check_random(lambda n: os.urandom(n - 1))  # short
    with pytest.raises(NoRandomSource):
        randcheck.check_random(lambda n: 1 / 0)  # raises


def test_pyca_cached_contexts_give_the_same_bytes():
    # Issue 10: the pyca backend keeps one AEAD context per key and the ephemeral X25519 key
    # object between x25519_base and x25519. Alternating keys, and a DH after a base, must
    # give exactly what a fresh backend gives; the ephemeral key is dropped after its DH.
    pytest.importorskip("cryptography")
    from ossuary_micro.crypto import pyca
    cached = pyca.Backend()
    k1, k2, nonce = bytes(range(32)), bytes(range(1, 33)), bytes(range(12))
    msg = bytes(range(100))
    for key in (k1, k2, k1, bytearray(k2)):
        out, ref = bytearray(116), bytearray(116)
        cached.aead_seal(key, nonce, msg, 0, 100, out, 0)
        pyca.Backend().aead_seal(key, nonce, msg, 0, 100, ref, 0)
        assert out == ref
        back = bytearray(100)
        cached.aead_open(key, nonce, out, 0, 100, back, 0)
        assert back == msg
    with pytest.raises(CryptoError):
        cached.aead_seal(bytes(31), nonce, msg, 0, 100, bytearray(116), 0)
    a, b = bytes(range(5, 37)), bytes(range(9, 41))
    pb = pyca.Backend().x25519_base(b)
    cached.x25519_base(a)
    assert len(cached._eph) == 1
    assert cached.x25519(a, pb) == pyca.Backend().x25519(a, pb)
    assert not cached._eph                 # dropped after its DH
    for i in range(200):                   # bounded: handshakes that never reach their DH
        cached.x25519_base(bytes([i]) * 32)
    assert len(cached._eph) == pyca._EPH_KEPT
    cached.x25519_base(a)
    assert cached.x25519(b, cached.x25519_base(a)) == pyca.Backend().x25519(a, pb)


def test_pyca_record_open_releases_no_unauthenticated_plaintext():
    # cryptography 50's decrypt_into writes the plaintext before it raises InvalidTag;
    # aead_record's open (the Connection's record path) must zero it before raising.
    pytest.importorskip("cryptography")
    from ossuary_micro.crypto import pyca
    b = pyca.Backend()
    key, nonce, msg = bytes(range(32)), bytes(12), b"secret plaintext, 32 bytes long."
    ct = bytearray(4 + len(msg) + 16)
    b.aead_seal(key, nonce, msg, 0, len(msg), ct, 4)
    seal, open_ = b.aead_record(key)
    ct2 = bytearray(len(ct))
    seal(key, nonce, msg, 0, len(msg), ct2, 4)
    assert ct2 == ct                                     # the same AEAD as aead_seal
    dst = bytearray(b"\xa5" * 40)
    open_(key, nonce, ct, 4, len(msg), dst, 0)
    assert dst == msg + b"\xa5" * 8
    for i in (4, 4 + len(msg) - 1, 4 + len(msg), len(ct) - 1):   # ciphertext and tag bytes
        bad = bytearray(ct)
        bad[i] ^= 0x40
        dst = bytearray(b"\xa5" * 40)
        with pytest.raises(AuthenticationFailed):
            open_(key, nonce, bad, 4, len(msg), dst, 0)
        assert dst == bytes(len(msg)) + b"\xa5" * 8     # zeroed, nothing beyond n touched
    # The same buffers again (cached windows): a bad tag still wipes.
    dst[:len(msg)] = b"\x11" * len(msg)
    with pytest.raises(AuthenticationFailed):
        open_(key, nonce, bad, 4, len(msg), dst, 0)
    assert dst == bytes(len(msg)) + b"\xa5" * 8
    with pytest.raises(CryptoError):
        open_(key, nonce, ct, 4, len(msg), bytearray(31), 0)   # dst too short
    with pytest.raises(CryptoError):
        open_(key, nonce, ct, 8, len(msg), bytearray(40), 0)   # src too short
    with pytest.raises(CryptoError):
        seal(key, nonce, msg, 0, len(msg), bytearray(40), 0)   # dst too short
    with pytest.raises(CryptoError):
        seal(key, bytes(11), msg, 0, len(msg), bytearray(48), 0)   # nonce
    with pytest.raises(CryptoError):
        b.aead_record(bytes(31))


def test_pyca_record_seal_releases_a_replaced_out_buffer():
    # seal keeps its window on the last dst; another dst releases it (resizable again).
    pytest.importorskip("cryptography")
    from ossuary_micro.crypto import pyca
    seal, _ = pyca.Backend().aead_record(bytes(32))
    a, b = bytearray(64), bytearray(64)
    seal(None, bytes(12), b"x" * 10, 0, 10, a, 0)
    with pytest.raises(BufferError):
        a.extend(b"more")
    seal(None, bytes(12), b"x" * 10, 0, 10, b, 0)
    a.extend(b"more")


def test_pyca_cached_key_objects_give_the_same_bytes():
    # Issues 10/11: Ed25519 key objects kept per seed (bounded), the last X25519 peer point's
    # key object kept across x25519_key DHs. Same bytes as the pure backend, through several
    # seeds and peers alternating; wrong lengths still CryptoError, after caching too.
    pytest.importorskip("cryptography")
    from ossuary_micro.crypto import pyca
    cached, ref = pyca.Backend(), get_backend("pure")
    seeds = [bytes([i]) * 32 for i in range(1, 4)]
    for seed in seeds + seeds[::-1] + [bytearray(seeds[0]), memoryview(seeds[1])]:
        pub = cached.ed25519_public(seed)
        assert pub == ref.ed25519_public(seed)
        sig = cached.ed25519_sign(seed, b"msg")
        assert sig == ref.ed25519_sign(seed, b"msg")
        assert cached.ed25519_verify(pub, b"msg", sig)
    assert len(cached._ed) == 3
    for i in range(40):
        cached.ed25519_sign(bytes([i]) * 32, b"")
    assert len(cached._ed) == pyca._ED_KEPT
    with pytest.raises(CryptoError):
        cached.ed25519_sign(bytes(31), b"")
    with pytest.raises(CryptoError):
        cached.ed25519_public(seeds[0] + b"\x00")
    # x25519_key: two key pairs using the same two peer points alternately.
    a_pub, dh_a = cached.x25519_key(bytes(range(32)))
    b_pub, dh_b = cached.x25519_key(bytes(range(7, 39)))
    peers = [ref.x25519_base(bytes([i]) * 32) for i in (5, 6)]
    for p in peers + peers + [peers[1]]:
        assert dh_a(p) == ref.x25519(bytes(range(32)), p)
        assert dh_b(bytearray(p)) == ref.x25519(bytes(range(7, 39)), p)
    with pytest.raises(CryptoError):
        dh_a(bytes(32))                 # low-order point: all-zero result
    with pytest.raises(CryptoError):
        dh_b(peers[0][:31])
    assert dh_b(peers[0]) == ref.x25519(bytes(range(7, 39)), peers[0])
