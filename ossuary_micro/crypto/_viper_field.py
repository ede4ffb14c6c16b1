# Viper field functions of the viper backend: product, o = a + k*b, conditional swap, table
# select, on viper.py's elements (20 limbs of 13 bits in 32-bit words, bounds argued in its
# field section). Used where the Thumb assembler versions (_viper_thumb.py, same signatures
# and limbs) do not exist: ESP32 (xtensa), the unix ports. Only fixed-length loops, no branch
# or address that depends on limb values, the swap bit or the table index.

import micropython

_T = bytearray(160)  # 40-word product scratch for mul
# 64*p with limbs >= 15168 each, so a + _BIAS - b never goes negative for loose b.
_BIAS = bytearray(80)
# Scratch holding values of secret computations, for viper.py's wipe.
SCRATCH = (_T,)
# Arguments typed ptr32 where the function only reads or writes through them (a smaller .mpy
# than ptr32() inside); the output o stays an object where it goes on to _carry, because a
# pointer passed from viper to viper is boxed as an int (a big int, allocated, for addresses
# at or above 2**30 on a 32-bit board).


@micropython.viper
def _carry(p: ptr32):
    for k in range(2):
        c = uint(0)
        for i in range(20):
            v = uint(p[i]) + c
            p[i] = v & 0x1FFF
            c = v >> 13
        p[0] = uint(p[0]) + c * 608


@micropython.viper
def mul(o, x: ptr32, y: ptr32):
    # o = x * y (o may be x or y): schoolbook columns into _T with a running carry, then fold
    # columns 20..39 down with 2**260 = 608. Column k pairs x[i] y[j] with x[j] y[i] (i < j,
    # i + j = k), plus x[i] y[i] when k is even; a square (x is y) takes each pair's product
    # once and doubles the sum. Whether it is a square is the caller's choice, not data.
    s = int(x) == int(y)
    t = ptr32(_T)
    c = uint(0)
    for k in range(39):
        acc = uint(0)
        i = k - 19 if k > 19 else 0
        j = k - i
        if s:
            while i < j:
                acc += uint(x[i]) * uint(y[j])
                i += 1
                j -= 1
            acc += acc
        else:
            while i < j:
                acc += uint(x[i]) * uint(y[j]) + uint(x[j]) * uint(y[i])
                i += 1
                j -= 1
        if i == j:
            acc += uint(x[i]) * uint(y[i])
        acc += c
        t[k] = acc & 0x1FFF
        c = acc >> 13
    t[39] = c
    p = ptr32(o)
    for i in range(20):
        p[i] = uint(t[i]) + uint(t[i + 20]) * 608
    _carry(o)


@micropython.viper
def addk(o, x: ptr32, y: ptr32, k: int):
    # o = x + k*y for k = 1 (add), k = -1 (subtract: + 64p keeps every limb positive, since
    # each _BIAS limb exceeds a loose limb) or 0 < k < 2**17 (x = _FE0 for k * y; the ladder's
    # AA + 121665 * E). Signed words: k * y limb < 2**17 * 8799 < 1.16e9, plus a loose limb,
    # so the sum stays in [0, 2**31).
    z = ptr32(_BIAS)
    p = ptr32(o)
    bm = 0
    if k < 0:  # which operation, not data
        bm = -1
    for i in range(20):
        p[i] = int(x[i]) + k * int(y[i]) + (int(z[i]) & bm)
    _carry(o)


@micropython.viper
def cswap(x: ptr32, y: ptr32, bit: uint):
    # Swap x and y when bit == 1, without a branch.
    m = uint(0) - bit
    for i in range(20):
        t = (uint(x[i]) ^ uint(y[i])) & m
        x[i] = uint(x[i]) ^ t
        y[i] = uint(y[i]) ^ t


@micropython.viper
def select(p: ptr32, t: ptr32, idx: uint):
    # p = entry idx (0..15) of the table t, reading every entry and keeping one by mask (the
    # memory access pattern does not depend on the secret idx): a masked move from each entry,
    # of which exactly one has the full mask, so p's previous value never shows through.
    for j in range(16):
        d = uint(j) ^ idx                      # 0 only for the wanted entry; d < 16
        m = uint(0) - (((d - 1) >> 31) & 1)    # all ones when d == 0 (d - 1 wraps)
        for i in range(20):
            p[i] = uint(p[i]) ^ ((uint(p[i]) ^ uint(t[j * 20 + i])) & m)


def _init_bias():
    # 64p = 2**261 - 1216 written with borrowed limbs: limb0 = 8191-1215+8192, limbs 1..18 =
    # 8191+8192-1, limb 19 = 2**14-1-1 (bits 247..260). Checked against the integer in tests.
    limbs = [6976 + 8192] + [8191 + 8192 - 1] * 18 + [16383 - 1]
    for i in range(20):
        v = limbs[i]
        _BIAS[4 * i] = v & 0xFF
        _BIAS[4 * i + 1] = v >> 8


_init_bias()
