# Pure-Python X25519 (RFC 7748) and Ed25519 (RFC 8032) on Python ints, for pure.py.
#
# Field elements are ints reduced with `% P` after each product (measured faster than a
# shift-and-fold reduction on both CPython and MicroPython). Edwards points are tuples in
# extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z (Hisil-Wong-Carter-Dawson
# 2008, a = -1). On CPython the base point uses a 6-tooth comb over a 63-point table built on
# first use; other points, and the base point on MicroPython, use a fixed 4-bit window. The
# comb table (~18.5 KB of big ints on a 32-bit board) would stay resident and fragment a
# board's heap; the window's 15-point table lives only for one multiplication. None of this is constant-time: branches and table
# indices depend on secret scalars. Python cannot offer constant time; use the
# `cryptography` backend where timing attacks matter.

P = (1 << 255) - 19
L = (1 << 252) + 27742317777372353535851937790883648493
_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
_D2 = (2 * _D) % P
_SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960
_A24 = 121665

# The comb: scalar bit i + _SPACING*j selects tooth j; _TEETH * _SPACING >= 256 bits.
_TEETH = 6
_SPACING = 43
_comb = None
try:
    import sys
    _COMB = sys.implementation.name != "micropython"
except (ImportError, AttributeError):
    _COMB = True


def _pow_loop(b, e, m):
    # Square-and-multiply, for ports built without three-argument pow().
    r = 1
    b %= m
    while e:
        if e & 1:
            r = (r * b) % m
        b = (b * b) % m
        e >>= 1
    return r


try:
    pow(2, 3, 5)
    _pow = pow
except (TypeError, NotImplementedError, ValueError):
    _pow = _pow_loop


def _inv(z):
    # Fermat inversion; _inv(0) == 0, which callers rely on never seeing for valid points.
    return _pow(z, P - 2, P)


def _bit(kb, i):
    # Bit i of the little-endian scalar in bytes kb (0 past the end): small-int ops only.
    j = i >> 3
    if j >= len(kb):
        return 0
    return (kb[j] >> (i & 7)) & 1


# ---------------------------------------------------------------------------------- X25519


def x25519(kb, ub):
    """RFC 7748 X25519: clamped scalar bytes kb (32) times u-coordinate bytes ub (32).
    Returns the 32-byte u of the result (all zero for low-order inputs: the caller checks)."""
    k = bytearray(kb)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    # Mask the top bit (RFC 7748 5); a non-canonical u >= p is reduced by the arithmetic.
    x1 = (int.from_bytes(ub, "little") & ((1 << 255) - 1)) % P
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):
        kt = (k[t >> 3] >> (t & 7)) & 1
        if swap ^ kt:
            x2, x3 = x3, x2
            z2, z3 = z3, z2
        swap = kt
        a = x2 + z2
        aa = (a * a) % P
        b = x2 - z2
        bb = (b * b) % P
        e = aa - bb
        c = x3 + z3
        d = x3 - z3
        da = (d * a) % P
        cb = (c * b) % P
        x3 = da + cb
        x3 = (x3 * x3) % P
        z3 = da - cb
        z3 = (x1 * ((z3 * z3) % P)) % P
        x2 = (aa * bb) % P
        z2 = (e * (aa + _A24 * e)) % P
    if swap:
        x2, z2 = x3, z3
    return ((x2 * _inv(z2)) % P).to_bytes(32, "little")


def x25519_base(kb):
    """X25519 of the clamped scalar kb with the base point u = 9, computed on the
    birationally equivalent Edwards curve with the comb: u = (1 + y) / (1 - y) = (Z + Y) / (Z - Y)."""
    k = bytearray(kb)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    X, Y, Z, T = _base_mul(k)
    return (((Z + Y) * _inv((Z - Y) % P)) % P).to_bytes(32, "little")


# ------------------------------------------------------------------- Edwards point arithmetic

_IDENTITY = (0, 1, 1, 0)
_B = (_BX, _BY, 1, (_BX * _BY) % P)


def _dbl(p):
    # dbl-2008-hwcd for a = -1: 4M + 4S.
    X1, Y1, Z1, _ = p
    a = (X1 * X1) % P
    b = (Y1 * Y1) % P
    c = (2 * Z1 * Z1) % P
    h = a + b
    e = X1 + Y1
    e = h - (e * e) % P
    g = a - b
    f = c + g
    return ((e * f) % P, (g * h) % P, (f * g) % P, (e * h) % P)


def _add(p, q):
    # add-2008-hwcd-3 for a = -1 (complete: works for doubling and the identity): 9M.
    X1, Y1, Z1, T1 = p
    X2, Y2, Z2, T2 = q
    a = ((Y1 - X1) * (Y2 - X2)) % P
    b = ((Y1 + X1) * (Y2 + X2)) % P
    c = (T1 * _D2 * T2) % P
    d = (2 * Z1 * Z2) % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return ((e * f) % P, (g * h) % P, (f * g) % P, (e * h) % P)


def _add_cached(p, q):
    # p plus q given as (Y+X, Y-X, 2Z, 2dT), precomputed once per table entry: 8M.
    X1, Y1, Z1, T1 = p
    yp, ym, z2, t2d = q
    a = ((Y1 - X1) * ym) % P
    b = ((Y1 + X1) * yp) % P
    c = (T1 * t2d) % P
    d = (Z1 * z2) % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return ((e * f) % P, (g * h) % P, (f * g) % P, (e * h) % P)


def _add_affine(p, q):
    # p plus an affine point q given as (y+x, y-x, 2dxy) ("Niels" form): 7M.
    X1, Y1, Z1, T1 = p
    yp, ym, t2d = q
    a = ((Y1 - X1) * ym) % P
    b = ((Y1 + X1) * yp) % P
    c = (T1 * t2d) % P
    d = 2 * Z1
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return ((e * f) % P, (g * h) % P, (f * g) % P, (e * h) % P)


def _cached(p):
    X, Y, Z, T = p
    return ((Y + X) % P, (Y - X) % P, (2 * Z) % P, (T * _D2) % P)


def _build_comb():
    # table[idx] = sum of 2**(_SPACING*j) * B over the bits j of idx, in affine Niels form.
    # One batch inversion (Montgomery's trick) turns all 63 points affine with one _inv.
    teeth = [_B]
    for j in range(1, _TEETH):
        q = teeth[-1]
        for _ in range(_SPACING):
            q = _dbl(q)
        teeth.append(q)
    pts = [_IDENTITY]
    for idx in range(1, 1 << _TEETH):
        # Split off the lowest set bit j: entry idx = entry (idx without bit j) + tooth j,
        # and that smaller entry is already in the list.
        j = 0
        while not (idx >> j) & 1:
            j += 1
        rest = idx ^ (1 << j)
        pts.append(_add(pts[rest], teeth[j]) if rest else teeth[j])
    n = len(pts)
    prefix = [1] * n
    acc = 1
    for i in range(1, n):
        prefix[i] = acc
        acc = (acc * pts[i][2]) % P
    inv = _inv(acc)
    table = [None] * n
    for i in range(n - 1, 0, -1):
        X, Y, Z, _ = pts[i]
        zi = (inv * prefix[i]) % P
        inv = (inv * Z) % P
        x = (X * zi) % P
        y = (Y * zi) % P
        table[i] = ((y + x) % P, (y - x) % P, (_D2 * x * y) % P)
    return table


def _base_mul(kb):
    # Scalar (little-endian bytes kb, 32 bytes) times the base point: by the comb on CPython,
    # by the window (no resident table) on MicroPython.
    global _comb
    if not _COMB:
        return _var_mul(int.from_bytes(kb, "little"), _B)
    if _comb is None:
        _comb = _build_comb()
    table = _comb
    q = _IDENTITY
    for i in range(_SPACING - 1, -1, -1):
        if i != _SPACING - 1:
            q = _dbl(q)
        idx = 0
        for j in range(_TEETH - 1, -1, -1):
            idx = (idx << 1) | _bit(kb, i + _SPACING * j)
        if idx:
            q = _add_affine(q, table[idx])
    return q


def _var_mul(k, p):
    # Scalar int k (< 2**256) times point p: fixed 4-bit window over 15 cached multiples.
    tab = [None, _cached(p)]
    q = p
    for _ in range(14):
        q = _add_cached(q, tab[1])
        tab.append(_cached(q))
    kb = k.to_bytes(32, "little")
    q = _IDENTITY
    for i in range(63, -1, -1):
        byte = kb[i >> 1]
        nib = (byte >> 4) if i & 1 else (byte & 15)
        if i != 63:
            q = _dbl(_dbl(_dbl(_dbl(q))))
        if nib:
            q = _add_cached(q, tab[nib])
    return q


def encode_point(p):
    """RFC 8032 5.1.2: 32 bytes, y little-endian with the sign of x in the top bit."""
    X, Y, Z, _ = p
    zi = _inv(Z)
    x = (X * zi) % P
    y = (Y * zi) % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def decode_point(s):
    """RFC 8032 5.1.3, strict: None for y >= p, for x = 0 with the sign bit set, and for
    y values with no x on the curve. s must be 32 bytes."""
    v = int.from_bytes(s, "little")
    sign = v >> 255
    y = v & ((1 << 255) - 1)
    if y >= P:
        return None
    yy = (y * y) % P
    u = (yy - 1) % P
    w = (_D * yy + 1) % P
    # x = u v^3 (u v^7)^((p-5)/8), then fix up by sqrt(-1) or fail.
    w3 = (w * w * w) % P
    x = (u * w3 * _pow((u * w3 * w3 * w) % P, (P - 5) >> 3, P)) % P
    vx2 = (w * x * x) % P
    if vx2 != u:
        if vx2 != (P - u) % P:
            return None
        x = (x * _SQRT_M1) % P
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, (x * y) % P)


def _clamp(h32):
    a = bytearray(h32)
    a[0] &= 248
    a[31] = (a[31] & 127) | 64
    return a


def ed25519_public(seed, sha512):
    """RFC 8032 5.1.5 public key of a 32-byte seed; sha512 is the hash function to use."""
    return encode_point(_base_mul(_clamp(sha512(seed)[0:32])))


def ed25519_sign(seed, msg, sha512):
    """RFC 8032 5.1.6 signature (64 bytes) of msg under the 32-byte seed."""
    h = sha512(seed)
    a = _clamp(h[0:32])
    pub = encode_point(_base_mul(a))
    r = int.from_bytes(sha512(bytes(h[32:64]) + bytes(msg)), "little") % L
    R = encode_point(_base_mul(r.to_bytes(32, "little")))
    k = int.from_bytes(sha512(R + pub + bytes(msg)), "little") % L
    s = (r + k * int.from_bytes(a, "little")) % L
    return R + s.to_bytes(32, "little")


def ed25519_verify(pub, msg, sig, sha512):
    """RFC 8032 5.1.7, cofactorless like OpenSSL: [S]B - [k]A must encode to exactly R.
    Lengths are checked by the caller. Returns a bool."""
    s = int.from_bytes(sig[32:64], "little")
    if s >= L:
        return False
    a = decode_point(pub)
    if a is None:
        return False
    R = bytes(sig[0:32])
    k = int.from_bytes(sha512(R + bytes(pub) + bytes(msg)), "little") % L
    X, Y, Z, T = a
    neg_a = ((P - X) % P, Y, Z, (P - T) % P)
    q = _add(_base_mul(s.to_bytes(32, "little")), _var_mul(k, neg_a))
    # A non-canonical R (y >= p, or x = 0 with the sign bit) never equals an encoding.
    return encode_point(q) == R
