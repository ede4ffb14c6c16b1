# Ed25519 (RFC 8032) on the viper limb field and viper SHA-512.
#
# Points are extended twisted-Edwards coordinates (X, Y, Z, T), four field elements from
# _viper_fe. Scalars modulo L are handled with Python ints: a handful of operations per
# signature (MicroPython's big ints allocate there, which is fine off the data path).
# Scalar multiplication is a comb over 4-bit table entries picked with a masked select (for
# the secret scalars of signing); verification handles only public data and may branch on it.
#
# Not re-entrant: the temporaries are module-level (the library is single-threaded).

import micropython
from ubinascii import unhexlify
from ._viper_fe import (_mul, _sq, _addk, _copy, _frombytes, _reduce, _tobytes, _is_zero,
                        _FE0, _FE1)
from ._viper_x25519 import _pow_2_250_1, _invert, _sqn, _I0
from . import _viper_sha512 as _sha
from ._viper_sha512 import _copy as _bcopy

_L = 2 ** 252 + 27742317777372353535851937790883648493


def _fe():
    return bytearray(80)


def _fe_hex(text):
    o = _fe()
    _frombytes(o, unhexlify(text), 0)
    return o


_D2 = _fe_hex("59f1b226949bd6eb56b183829a14e00030d1f3eef2808e19e7fcdf56dcd90624")  # 2d
_DC = _fe_hex("a3785913ca4deb75abd841414d0a700098e879777940c78c73fe6f2bee6c0352")  # d
_SQRTM1 = _fe_hex("b0a00e4a271beec478e42fad0618432fa7d7fb3d99004d2b0bdfc14f8024832b")


def _pt():
    return (_fe(), _fe(), _fe(), _fe())


# Temporaries for point arithmetic and decoding.
_TA = _fe(); _TB = _fe(); _TC = _fe(); _TD = _fe()
_TE = _fe(); _TF = _fe(); _TG = _fe(); _TH = _fe()
_BASE = _pt()
_Q = _pt()
_R = _pt()
_P = _pt()
_ENC = bytearray(32)
_CHK = bytearray(32)
_DIG = bytearray(64)


def _p_add(o, p, q):
    # o = p + q (add-2008-hwcd-3, a = -1, complete: also right when p == q); o may alias p.
    _addk(_TA, p[1], p[0], -1); _addk(_TE, q[1], q[0], -1); _mul(_TA, _TA, _TE)   # A = (Y1-X1)(Y2-X2)
    _addk(_TB, p[1], p[0], 1); _addk(_TE, q[1], q[0], 1); _mul(_TB, _TB, _TE)   # B = (Y1+X1)(Y2+X2)
    _mul(_TC, p[3], q[3]); _mul(_TC, _TC, _D2)                           # C = T1 2d T2
    _mul(_TD, p[2], q[2]); _addk(_TD, _TD, _TD, 1)                           # D = 2 Z1 Z2
    _addk(_TE, _TB, _TA, -1); _addk(_TF, _TD, _TC, -1); _addk(_TG, _TD, _TC, 1); _addk(_TH, _TB, _TA, 1)
    _mul(o[0], _TE, _TF); _mul(o[1], _TG, _TH); _mul(o[3], _TE, _TH); _mul(o[2], _TF, _TG)


def _p_dbl(o, p):
    # o = 2p (dbl-2008-hwcd, a = -1); o may alias p.
    _sq(_TA, p[0])                        # A = X^2
    _sq(_TB, p[1])                        # B = Y^2
    _sq(_TC, p[2]); _addk(_TC, _TC, _TC, 1)   # C = 2 Z^2
    _addk(_TE, p[0], p[1], 1); _sq(_TE, _TE)
    _addk(_TE, _TE, _TA, -1); _addk(_TE, _TE, _TB, -1)  # E = (X+Y)^2 - A - B
    _addk(_TG, _TB, _TA, -1)                   # G = -A + B
    _addk(_TF, _TG, _TC, -1)                   # F = G - C
    _addk(_TH, _TA, _TB, 1); _addk(_TH, _FE0, _TH, -1)  # H = -A - B
    _mul(o[0], _TE, _TF); _mul(o[1], _TG, _TH); _mul(o[3], _TE, _TH); _mul(o[2], _TF, _TG)


def _p_zero(o):
    _copy(o[0], _FE0); _copy(o[1], _FE1); _copy(o[2], _FE1); _copy(o[3], _FE0)


def _encode(out, off, p):
    # out[off:off+32] = y with the sign of x in bit 255 (RFC 8032 5.1.2).
    _invert(_TA, p[2])
    _mul(_TB, p[0], _TA); _reduce(_TB, 20, 8, 19)
    _mul(_TC, p[1], _TA); _reduce(_TC, 20, 8, 19)
    _tobytes(out, off, _TC)
    _tobytes(_CHK, 0, _TB)
    out[off + 31] |= (_CHK[0] & 1) << 7


def _decode(o, s, off):
    # Strict decoding (RFC 8032 5.1.3): returns False for y >= p or no square root or
    # x == 0 with the sign bit set.
    _frombytes(o[1], s, off)
    _copy(_TA, o[1]); _reduce(_TA, 20, 8, 19); _tobytes(_CHK, 0, _TA)
    for i in range(31):
        if _CHK[i] != s[off + i]:
            return False
    if _CHK[31] != s[off + 31] & 0x7F:
        return False  # y was not canonical
    sign = s[off + 31] >> 7
    _sq(_TB, o[1])
    _addk(_TC, _TB, _FE1, -1)         # u = y^2 - 1
    _mul(_TD, _TB, _DC); _addk(_TD, _TD, _FE1, 1)  # v = d y^2 + 1
    # x = u v^3 (u v^7)^((p-5)/8)
    _sq(_TE, _TD); _mul(_TE, _TE, _TD)         # v^3
    _sq(_TF, _TE); _mul(_TF, _TF, _TD)         # v^7
    _mul(_TF, _TF, _TC)                        # u v^7
    _pow_2_250_1(_TF, _TG)                     # _I0 = (u v^7)^(2^250 - 1)
    _sqn(_I0, _I0, 2)
    _mul(_TF, _I0, _TF)                        # ^(2^252 - 3)
    _mul(_TF, _TF, _TE); _mul(o[0], _TF, _TC)  # x
    # check v x^2 == u, or == -u (then x *= sqrt(-1))
    _sq(_TG, o[0]); _mul(_TG, _TG, _TD)
    _addk(_TH, _TG, _TC, -1)
    if not _is_zero(_TH):
        _addk(_TH, _TG, _TC, 1)
        if not _is_zero(_TH):
            return False
        _mul(o[0], o[0], _SQRTM1)
    if _is_zero(o[0]) and sign:
        return False
    _tobytes(_CHK, 0, o[0])
    if (_CHK[0] & 1) != sign:
        _addk(o[0], _FE0, o[0], -1)
    _copy(o[2], _FE1)
    _mul(o[3], o[0], o[1])
    return True


# Comb tables (Lim-Lee, 4 teeth 64 bits apart): entry j (0..15) of the table for a point P is
# sum over the bits b of j of [2**(64 b)]P, stored one coordinate per bytearray (16 elements
# of 80 bytes: 5 KiB each table). Then [k]P = sum over i of [2**i] entry(bits i, i+64, i+128,
# i+192 of k): 63 doublings and 64 additions for a 256-bit k, instead of 252 and 64 with
# 4-bit windows. _TBL holds B's table (built at import); _TBA is rebuilt for -A per verify.
_TBL = (bytearray(1280), bytearray(1280), bytearray(1280), bytearray(1280))
_TBA = (bytearray(1280), bytearray(1280), bytearray(1280), bytearray(1280))


@micropython.viper
def _select(o, table, idx: uint):
    # o = table entry idx (0..15), reading every entry and keeping one by mask: the memory
    # access pattern does not depend on the secret idx.
    p = ptr32(o)
    t = ptr32(table)
    for i in range(20):
        p[i] = 0
    for j in range(16):
        d = uint(j) ^ idx                      # 0 only for the wanted entry; d < 16
        m = uint(0) - (((d - 1) >> 31) & 1)    # all ones when d == 0 (d - 1 wraps)
        for i in range(20):
            p[i] = uint(p[i]) | (uint(t[j * 20 + i]) & m)


def _load(o, table, idx):
    for c in range(4):
        _select(o[c], table[c], idx)


def _comb_table(table, p):
    # Entries 1, 2, 4, 8 = P, [2**64]P, [2**128]P, [2**192]P by doubling; the others are sums
    # of two of those (public data: the base point or a public key).
    for c in range(4):
        _copy(_Q[c], p[c])
    for b in range(4):
        if b:
            for _ in range(64):
                _p_dbl(_Q, _Q)
        for c in range(4):
            _bcopy(table[c], 80 << b, _Q[c], 0, 80)
    _p_zero(_Q)
    for c in range(4):
        _bcopy(table[c], 0, _Q[c], 0, 80)
    for j in range(3, 16):
        low = j & -j
        if low != j:
            _load(_Q, table, j - low)
            _load(_P, table, low)
            _p_add(_Q, _Q, _P)
            for c in range(4):
                _bcopy(table[c], 80 * j, _Q[c], 0, 80)


def _comb_nibble(k, i):
    # Bits i, i+64, i+128, i+192 of the 32-byte little-endian k (public positions).
    n = 0
    for b in range(4):
        j = i + 64 * b
        n |= ((k[j >> 3] >> (j & 7)) & 1) << b
    return n


def _comb(o, k, ka=None):
    # o = [k]B (+ [ka](-A) from _TBA when ka is given): 64 steps, each one doubling and one
    # complete addition per table of an entry picked by _select (no branch or address on
    # secret bits).
    _p_zero(o)
    for i in range(63, -1, -1):
        if i != 63:  # public loop position, not a secret
            _p_dbl(o, o)
        _load(_P, _TBL, _comb_nibble(k, i))
        _p_add(o, o, _P)
        if ka is not None:  # verify only: public data
            _load(_P, _TBA, _comb_nibble(ka, i))
            _p_add(o, o, _P)


def _hash_mod_l(*parts):
    # SHA-512 of the concatenated parts, as an int modulo L.
    _sha.init()
    for part in parts:
        _sha.update(part, 0, len(part))
    _sha.final(_DIG, 0)
    return int.from_bytes(_DIG, "little") % _L


def _expand(seed):
    # (clamped scalar a as 32 bytes, prefix) from the seed (RFC 8032 5.1.5).
    _sha.init()
    _sha.update(seed, 0, 32)
    h = bytearray(64)
    _sha.final(h, 0)
    h[0] &= 248
    h[31] = (h[31] & 127) | 64
    return h


def public(seed):
    h = _expand(seed)
    _comb(_Q, h)
    out = bytearray(32)
    _encode(out, 0, _Q)
    for i in range(64):
        h[i] = 0
    return bytes(out)


def sign(seed, msg):
    h = _expand(seed)
    a = int.from_bytes(h[0:32], "little")
    _comb(_Q, h)
    pub = bytearray(32)
    _encode(pub, 0, _Q)
    r = _hash_mod_l(memoryview(h)[32:64], msg)
    _comb(_Q, r.to_bytes(32, "little"))
    sig = bytearray(64)
    _encode(sig, 0, _Q)
    k = _hash_mod_l(memoryview(sig)[0:32], pub, msg)
    s = (r + k * a) % _L
    sig[32:64] = s.to_bytes(32, "little")
    for i in range(64):
        h[i] = 0
    return bytes(sig)


def verify(pub, msg, sig):
    # [S]B == R + [k]A, checked as encode([S]B - [k]A) == R (cofactorless, RFC 8032 5.1.7).
    s = int.from_bytes(sig[32:64], "little")
    if s >= _L:
        return False
    if not _decode(_R, pub, 0):
        return False
    # -A
    _addk(_R[0], _FE0, _R[0], -1)
    _addk(_R[3], _FE0, _R[3], -1)
    k = _hash_mod_l(memoryview(sig)[0:32], pub, msg)
    _comb_table(_TBA, _R)
    _comb(_Q, sig[32:64], k.to_bytes(32, "little"))
    _encode(_ENC, 0, _Q)
    d = 0
    for i in range(32):
        d |= _ENC[i] ^ sig[i]
    return d == 0


def _init_base():
    # B: y = 4/5 with x even (RFC 8032 5.1).
    if not _decode(_BASE, unhexlify("5866666666666666666666666666666666666666666666666666666666666666"), 0):
        raise ImportError("ed25519 base point")


_init_base()
_comb_table(_TBL, _BASE)
