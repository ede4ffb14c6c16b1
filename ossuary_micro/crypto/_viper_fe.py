# Arithmetic modulo p = 2**255 - 19 in MicroPython viper, on preallocated limb arrays.
#
# A field element is a bytearray(80): 20 limbs of 13 bits (260 bits), read as ptr32.
# Why 13 bits: a limb product is 26 bits, and one column of a 20x20 schoolbook product is at
# most 20 * 9216**2 + carry < 1.8e9 < 2**31, so every intermediate fits a 32-bit word (and
# even a signed one) on boards, and the 64-bit unix port computes exactly the same numbers
# without masking.
#
# Invariant ("loose" form): every limb <= 8799 after any operation here, value < 2**261.
# _carry() restores it from limbs up to ~2**30: pass 1 leaves limbs 1..19 at 13 bits and folds
# the carry out of limb 19 (weight 2**260 = 32*19 = 608 mod p) into limb 0; pass 2 spreads
# limb 0 again, and any carry reaching the top is at most 1, so limb 0 ends <= 8191 + 608.
# Inputs to mul/sq must be loose (<= 14654 would still fit; loose gives the margin).
#
# Only fixed-length loops, no branches on limb values: timing does not depend on the data
# (the viper code has no data-dependent branches; the Python callers choose no paths by secrets).

import micropython
from ._viper_sha512 import _copy as _bcopy

_T = bytearray(160)  # 40-word product scratch for mul/sq
# 64*p with limbs >= 15168 each, so a + _BIAS - b never goes negative for loose b.
_BIAS = bytearray(80)
_FE0 = bytearray(80)  # the constants 0 and 1 (read-only by convention)
_FE1 = bytearray(80)
_FE1[0] = 1


@micropython.viper
def _carry(o):
    p = ptr32(o)
    for k in range(2):
        c = uint(0)
        for i in range(20):
            v = uint(p[i]) + c
            p[i] = v & 0x1FFF
            c = v >> 13
        p[0] = uint(p[0]) + c * 608


@micropython.viper
def _mul(o, a, b):
    # o = a * b (o may be a or b): schoolbook columns into _T with a running carry, then fold
    # columns 20..39 down with 2**260 = 608.
    x = ptr32(a)
    y = ptr32(b)
    t = ptr32(_T)
    c = uint(0)
    for k in range(39):
        acc = c
        i = k - 19 if k > 19 else 0
        e = k if k < 19 else 19
        while i <= e:
            acc += uint(x[i]) * uint(y[k - i])
            i += 1
        t[k] = acc & 0x1FFF
        c = acc >> 13
    t[39] = c
    p = ptr32(o)
    for i in range(20):
        p[i] = uint(t[i]) + uint(t[i + 20]) * 608
    _carry(o)


@micropython.viper
def _sq(o, a):
    # o = a * a: each cross product once, doubled (same bounds as _mul).
    x = ptr32(a)
    t = ptr32(_T)
    c = uint(0)
    for k in range(39):
        acc = uint(0)
        i = k - 19 if k > 19 else 0
        j = k - i
        while i < j:
            acc += uint(x[i]) * uint(x[j])
            i += 1
            j -= 1
        acc = acc + acc + c
        if i == j:
            acc += uint(x[i]) * uint(x[i])
        t[k] = acc & 0x1FFF
        c = acc >> 13
    t[39] = c
    p = ptr32(o)
    for i in range(20):
        p[i] = uint(t[i]) + uint(t[i + 20]) * 608
    _carry(o)


@micropython.viper
def _addk(o, a, b, k: int):
    # o = a + k*b for k = 1 (add), k = -1 (subtract: + 64p keeps every limb positive, since
    # each _BIAS limb exceeds a loose limb) or 0 < k < 2**17 with a = _FE0 (121665 * b).
    # Signed words: |k * b limb| <= 121665 * 8799 < 2**31, the sum stays in [0, 2**31).
    x = ptr32(a)
    y = ptr32(b)
    z = ptr32(_BIAS)
    p = ptr32(o)
    bm = 0
    if k < 0:  # which operation, not data
        bm = -1
    for i in range(20):
        p[i] = int(x[i]) + k * int(y[i]) + (int(z[i]) & bm)
    _carry(o)


@micropython.viper
def _cswap(a, b, bit: uint):
    # Swap a and b when bit == 1, without a branch.
    x = ptr32(a)
    y = ptr32(b)
    m = uint(0) - bit
    for i in range(20):
        t = (uint(x[i]) ^ uint(y[i])) & m
        x[i] = uint(x[i]) ^ t
        y[i] = uint(y[i]) ^ t


@micropython.viper
def _limbs(o: ptr32, b: ptr8, off: int, n: int, top: uint, count: int):
    # o = count limbs of 13 bits from the little-endian bytes b[off:off+n], then the byte
    # `top`, then zeros (shared with Poly1305). The accumulator stays below 2**21.
    acc = uint(0)
    bits = 0
    i = 0
    for k in range(count):
        while bits < 13:
            v = top if i == n else uint(0)
            if i < n:
                v = uint(b[off + i])
            acc |= v << bits
            bits += 8
            i += 1
        o[k] = acc & 0x1FFF
        acc >>= 13
        bits -= 13


def _frombytes(o, s, off):
    # 32 little-endian bytes at s[off:] -> limbs, bit 255 ignored (RFC 7748 masks it; Ed25519
    # callers check it themselves).
    _limbs(o, s, off, 31, s[off + 31] & 0x7F, 20)


def _copy(o, a):
    _bcopy(o, 0, a, 0, 80)


@micropython.viper
def _reduce(o, n: int, tb: int, f: uint):
    # Fully reduce o modulo q = 2**K - f, K = 13 (n - 1) + tb, in place: n limbs of 13 bits,
    # value < q. Used for p (n = 20, tb = 8, f = 19) on a loose o, and for Poly1305's
    # 2**130 - 5 (n = 10, tb = 13, f = 5) on its accumulator (limb 0 < 2**22, the others 13
    # bits). Every carry pass leaves limbs 0..n-2 at 13 bits and the rest in the top limb.
    # Passes 0 and 1 fold the top limb's bits from tb up as * f: then value < q + 2**K < 2q.
    # Pass 2 only computes the bit K of value + f: set (b = 1) exactly when value >= q.
    # Pass 3 adds b * f and drops bit K: value - q when b = 1, value when b = 0 (ref10's
    # freeze). No branch or address depends on the data; every word stays below 2**23.
    p = ptr32(o)
    top = n - 1
    mk = (1 << tb) - 1
    b = uint(0)
    for k in range(4):
        c = b * f
        if k < 2:  # pass number, not data
            c = (uint(p[top]) >> tb) * f
            p[top] = uint(p[top]) & mk
        if k == 2:
            c = f
        v = uint(0)
        for i in range(n):
            v = uint(p[i]) + c
            c = v >> 13
            if i < top:
                v &= 0x1FFF
            if k != 2:
                p[i] = v
        b = v >> tb
    p[top] = uint(p[top]) & mk


@micropython.viper
def _tobytes(out, off: int, a):
    # out[off:off+32] = little-endian a; a must be reduced (_reduce).
    b = ptr8(out)
    p = ptr32(a)
    acc = uint(0)
    bits = 0
    j = 0
    for i in range(20):
        acc |= uint(p[i]) << bits
        bits += 13
        while bits >= 8 and j < 32:
            b[off + j] = acc & 0xFF
            acc >>= 8
            bits -= 8
            j += 1


def _is_zero(a):
    # 1 when a is 0 modulo p (a is reduced in place); reads every byte, no early exit.
    _reduce(a, 20, 8, 19)
    d = 0
    for i in range(80):
        d |= a[i]
    return 1 if d == 0 else 0


def _init_bias():
    # 64p = 2**261 - 1216 written with borrowed limbs: limb0 = 8191-1215+8192, limbs 1..18 =
    # 8191+8192-1, limb 19 = 2**14-1-1 (bits 247..260). Checked against the integer in tests.
    limbs = [6976 + 8192] + [8191 + 8192 - 1] * 18 + [16383 - 1]
    for i in range(20):
        v = limbs[i]
        _BIAS[4 * i] = v & 0xFF
        _BIAS[4 * i + 1] = v >> 8


_init_bias()
