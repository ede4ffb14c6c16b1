# Every Wycheproof case for X25519, ChaCha20-Poly1305 and Ed25519, on every available backend.
#
# Portable (no pytest): the MicroPython runner calls these test_* functions too. "valid" and
# "invalid" cases must come out as Wycheproof says; "acceptable" ones (X25519 low-order and
# twist points) must come out the same on all backends. Each backend's case count goes into
# _util.WYCHEPROOF_TALLY and must equal the file's numberOfTests, so a skipped case fails.

from ossuary_micro.crypto import available_backends, get_backend
from ossuary_micro.errors import AuthenticationFailed, CryptoError
from tests.portable._util import h, hx, load_wycheproof, tally


def _backends():
    names = available_backends()
    assert "pure" in names, names
    return [get_backend(n) for n in names]


def _cases(data):
    # (group, test) pairs in file order.
    out = []
    for g in data["testGroups"]:
        for t in g["tests"]:
            out.append((g, t))
    return out


def _aead(fn, b, key, iv, src, soff, n, dst, doff, aad):
    # Cases without AAD go through the exact 7-argument interface of docs/design.md; the others
    # need the optional trailing `aad` argument, and a backend without it is named plainly.
    if not aad:
        return fn(key, iv, src, soff, n, dst, doff)
    try:
        return fn(key, iv, src, soff, n, dst, doff, aad)
    except TypeError as e:
        raise AssertionError("backend %s: %s does not take the optional aad argument (%s)" % (
            b.name, getattr(fn, "__name__", "aead call"), e))


def _x25519_outcome(b, priv, pub):
    try:
        return hx(b.x25519(priv, pub))
    except CryptoError:
        return "CryptoError"


def test_wycheproof_x25519():
    name = "x25519_test.json"
    data = load_wycheproof(name)
    cases = _cases(data)
    backends = _backends()
    counts = [0] * len(backends)
    for g, t in cases:
        assert g["curve"] == "curve25519"
        priv = h(t["private"])
        pub = h(t["public"])
        shared = t["shared"]
        assert t["result"] in ("valid", "acceptable"), t["tcId"]
        # An all-zero shared secret must be refused (design.md); anything else must match.
        want = "CryptoError" if shared == "00" * 32 else shared
        got = []
        for i in range(len(backends)):
            got.append(_x25519_outcome(backends[i], priv, pub))
            counts[i] += 1
        for i in range(len(backends)):
            # "acceptable" too: RFC 7748 fixes the output for twist and non-canonical points.
            if got[i] != want:
                raise AssertionError("x25519 tcId %d (%s) on %s: got %s want %s" % (
                    t["tcId"], t["result"], backends[i].name, got[i], want))
            if got[i] != got[0]:
                raise AssertionError("x25519 tcId %d: backends disagree: %s=%s %s=%s" % (
                    t["tcId"], backends[0].name, got[0], backends[i].name, got[i]))
    for i in range(len(backends)):
        tally(name, backends[i].name, counts[i])
        assert counts[i] == data["numberOfTests"], (backends[i].name, counts[i])


def test_wycheproof_chacha20_poly1305():
    name = "chacha20_poly1305_test.json"
    data = load_wycheproof(name)
    cases = _cases(data)
    for b in _backends():
        count = 0
        for g, t in cases:
            key = h(t["key"])
            iv = h(t["iv"])
            aad = h(t["aad"])
            msg = h(t["msg"])
            ct = h(t["ct"])
            tag = h(t["tag"])
            n = len(msg)
            where = "chacha20_poly1305 tcId %d on %s" % (t["tcId"], b.name)
            if t["result"] == "valid":
                out = bytearray(n + 16)
                _aead(b.aead_seal, b, key, iv, msg, 0, n, out, 0, aad)
                if bytes(out) != ct + tag:
                    raise AssertionError(where + ": seal gave " + hx(out))
                back = bytearray(n)
                _aead(b.aead_open, b, key, iv, ct + tag, 0, n, back, 0, aad)
                if bytes(back) != msg:
                    raise AssertionError(where + ": open gave " + hx(back))
            else:
                assert t["result"] == "invalid", where
                sentinel = b"\x5a" * len(ct)
                back = bytearray(sentinel)
                if len(iv) != 12:
                    # Wrong nonce size: a usage error on both sides, never a tag failure.
                    _expect(CryptoError, where + " seal", _aead, b.aead_seal, b, key, iv, msg,
                            0, n, bytearray(n + 16), 0, aad)
                    e = _expect(CryptoError, where + " open", _aead, b.aead_open, b, key, iv,
                                ct + tag, 0, len(ct), back, 0, aad)
                    assert not isinstance(e, AuthenticationFailed), where
                else:
                    _expect(AuthenticationFailed, where, _aead, b.aead_open, b, key, iv,
                            ct + tag, 0, len(ct), back, 0, aad)
                if bytes(back) != sentinel:
                    raise AssertionError(where + ": dst written on failure")
            count += 1
        tally(name, b.name, count)
        assert count == data["numberOfTests"], (b.name, count)


def _expect(exc, where, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError(where + ": did not raise " + exc.__name__)


def test_wycheproof_ed25519():
    name = "ed25519_test.json"
    data = load_wycheproof(name)
    cases = _cases(data)
    backends = _backends()
    counts = [0] * len(backends)
    for g, t in cases:
        pub = h(g["publicKey"]["pk"])
        msg = h(t["msg"])
        sig = h(t["sig"])
        assert t["result"] in ("valid", "invalid"), t["tcId"]
        want = t["result"] == "valid"
        for i in range(len(backends)):
            got = backends[i].ed25519_verify(pub, msg, sig)
            counts[i] += 1
            # Same answer everywhere: valid and invalid leave no room for disagreement.
            if got is not want:
                raise AssertionError("ed25519 tcId %d (%s, %s) on %s: verify returned %r" % (
                    t["tcId"], t["result"], ",".join(t["flags"]), backends[i].name, got))
    for i in range(len(backends)):
        tally(name, backends[i].name, counts[i])
        assert counts[i] == data["numberOfTests"], (backends[i].name, counts[i])
