# Viper field functions of the viper backend: product, o = a + k*b, conditional swap, full
# reduction (modulo p, and modulo 2**130 - 5 for Poly1305), one Poly1305 block, ChaCha20's
# block function, bytes <-> limbs, on viper.py's
# elements (20 limbs of 13 bits in 32-bit words, bounds argued in its field section). Used
# where the Thumb assembler versions (_viper_thumb.py, same signatures and limbs) do not
# exist: ESP32 (xtensa), the unix ports. Only fixed-length loops, no branch or address that
# depends on limb values or the swap bit.

import micropython

_TL = bytearray(80)  # the 40-word product scratch for mul: columns 0..19, and 20..39
_TH = bytearray(80)
# Scratch holding values of secret computations, for viper.py's wipe.
_SCRATCH = (_TL, _TH)


@micropython.viper
def _mul(o, x: ptr32, y: ptr32):
    # o = x * y (o may be x or y): schoolbook columns into _TL (0..19) and _TH (20..39) with a
    # running carry, then fold columns 20..39 down with 2**260 = 608, by addk (column 39 <
    # 2**15, so 608 times it is within its bounds; the same sums and carries as the Thumb
    # mul's). Column k pairs x[i] y[j] with x[j] y[i] (i < j, i + j = k), plus x[i] y[i] when
    # k is even; a square (x is y) takes each pair's product once and doubles the sum. Whether
    # it is a square is the caller's choice, not data.
    s = int(x) == int(y)
    tl = ptr32(_TL)
    th = ptr32(_TH)
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
        if k < 20:  # the column number, not data
            tl[k] = acc & 0x1FFF
        else:
            th[k - 20] = acc & 0x1FFF
        c = acc >> 13
    th[19] = c
    _addk(o, _TL, _TH, 608)  # the fold: o = T[0:20] + 608 T[20:40], carried


@micropython.viper
def _addk(o, x: ptr32, y: ptr32, k: int):
    # o = x + k*y for k = 1 (add), k = -1 (subtract: + 64p keeps every limb positive) or
    # 0 < k < 2**17 (x = _FE0 for k * y; the ladder's AA + 121665 * E; mul's fold, k = 608).
    # 64p = 2**261 - 1216 is written with borrowed limbs, each above a loose limb: 16382
    # (8191 + 8192 - 1), limb 0 1214 less (15168), as the Thumb addk makes them; checked
    # against the integer in tests. Signed words: k * y limb < 2**17 * 8799 < 1.16e9, plus a
    # loose limb, so the sum stays in [0, 2**31).
    p = ptr32(o)
    bias = 0
    if k < 0:  # which operation, not data
        bias = 16382
    for i in range(20):
        p[i] = int(x[i]) + k * int(y[i]) + bias
    if k < 0:
        p[0] = p[0] - 1214
    # The carry (see viper.py's field section): two passes, each leaving limbs 1..19 at 13 bits
    # and folding the carry out of limb 19 (2**260 = 608 mod p) into limb 0.
    for r in range(2):
        c = uint(0)
        for i in range(20):
            v = uint(p[i]) + c
            p[i] = v & 0x1FFF
            c = v >> 13
        p[0] = uint(p[0]) + c * 608


@micropython.viper
def _cswap(x: ptr32, y: ptr32, bit: uint):
    # Swap the elements x and y when bit == 1, without a branch.
    m = uint(0) - bit
    for i in range(20):
        t = (uint(x[i]) ^ uint(y[i])) & m
        x[i] = uint(x[i]) ^ t
        y[i] = uint(y[i]) ^ t


@micropython.viper
def _reduce(p: ptr32, n: int, tb: int, f: uint):
    # Fully reduce p modulo q = 2**K - f, K = 13 (n - 1) + tb, in place: n limbs of 13 bits,
    # value < q. Used for p (n = 20, tb = 8, f = 19) on a loose element, and for Poly1305's
    # 2**130 - 5 (n = 10, tb = 13, f = 5) on its accumulator (limb 0 < 2**22, the others 13
    # bits). Every carry pass leaves limbs 0..n-2 at 13 bits and the rest in the top limb.
    # Passes 0 and 1 fold the top limb's bits from tb up as * f: then value < q + 2**K < 2q.
    # Pass 2 only computes the bit K of value + f: set (b = 1) exactly when value >= q.
    # Pass 3 adds b * f and drops bit K: value - q when b = 1, value when b = 0 (ref10's
    # freeze). No branch or address depends on the data; every word stays below 2**23.
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
def _pblock(h: ptr32, a: ptr32, ae: ptr8, off: int):
    # One Poly1305 block (RFC 8439 2.5), for viper.py's _poly: h = (h + a + 2**128) * r
    # modulo 2**130 - 5, on 10 limbs of 13 bits. a: the block's limbs (overwritten with
    # h + a); ae + off: 5r (10 limbs) then r (10 limbs), so the factor of a[j] in column i
    # is word 10 + i - j there. Bounds: viper.py's AEAD section.
    w = ptr32(uint(ae) + off)
    # a = h + m + 2**128 (bit 11 of limb 9), carried to limbs <= 8191 (limb 0 <= 8196:
    # 2**130 = 5 mod q).
    c = uint(0)
    for i in range(10):
        v = uint(a[i]) + uint(h[i]) + c
        if i == 9:
            v += 2048
        a[i] = v & 0x1FFF
        c = v >> 13
    a[0] = uint(a[0]) + c * 5
    # h = a * r: column i is sum_j a[j] * w[10 + i - j] (5r where j > i), each < 3.1e9,
    # carried as it goes; limbs 1..9 end at 13 bits and limb 0 below 2**22 (it absorbs 5 *
    # the top carry, < 2**19).
    c = uint(0)
    for i in range(10):
        v = c
        for j in range(10):
            v += uint(a[j]) * uint(w[10 + i - j])
        h[i] = v & 0x1FFF
        c = v >> 13
    h[0] = uint(h[0]) + c * 5


@micropython.viper
def _block(ae: ptr8, q: ptr8):
    # The ChaCha20 block function (RFC 8439 2.3), for viper.py's _xor, on its _AE: the
    # keystream block (the 16 words at ae + 64) = the state (the 16 words at ae) after its 20
    # rounds, plus the state; then the state's counter (word 12) += 1. q: viper.py's _QR, the
    # quarter rounds' word indices and the rotations. One quarter-round body walks it: 10
    # double rounds of 8 quarter rounds, each four steps "a += b; d ^= a; d <<<= n" with the
    # roles (a, b, c, d) -> (c, d, a, b) swapped after every step (so the second step is
    # c += d; b ^= c; b <<<= 12, and so on).
    # Every add and left shift is masked to 32 bits (viper.py's AEAD section): M is built at
    # run time, 0xFFFFFFFF not being a small int on a 32-bit board. ptr32 stores keep the low
    # 32 bits, which is the add modulo 2**32 the spec asks for.
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    st = ptr32(ae)
    x = ptr32(uint(ae) + 64)
    for w in range(16):
        x[w] = st[w]
    for r in range(80):
        j = (r & 7) << 2
        ia = q[j]
        ib = q[j + 1]
        ic = q[j + 2]
        id = q[j + 3]
        a = uint(x[ia]); b = uint(x[ib]); c = uint(x[ic]); d = uint(x[id])
        for k in range(32, 36):
            e = q[k]
            a = (a + b) & m
            d ^= a
            d = ((d << e) & m) | (d >> (32 - e))
            t = a; a = c; c = t
            t = b; b = d; d = t
        x[ia] = a; x[ib] = b; x[ic] = c; x[id] = d
    for w in range(16):
        x[w] = uint(x[w]) + uint(st[w])
    # The caller never sends 2**32 blocks under one nonce (records are <= 16 KiB).
    st[12] = st[12] + 1


@micropython.viper
def _limbs(o: ptr32, b: ptr8, off: int, n: int):
    # Bytes <-> limbs, for viper.py (shared with Poly1305). n >= 0: o = the 20 limbs of 13 bits
    # of the little-endian bytes b[off:off+n] (n <= 32), zeros after them. n < 0, "to bytes":
    # b[off:off+32] = the little-endian value of o, a reduced element (_reduce) or a Poly1305
    # value (13-bit limbs). One function for both directions: one function object fewer. The
    # accumulator stays below 2**21.
    acc = uint(0)
    bits = 0
    i = 0
    if n < 0:  # the direction, not data
        for k in range(20):
            acc |= uint(o[k]) << bits
            bits += 13
            while bits >= 8 and i < 32:
                b[off + i] = acc & 0xFF
                acc >>= 8
                bits -= 8
                i += 1
        return
    for k in range(20):
        while bits < 13:
            v = uint(0)
            if i < n:  # the length, public
                v = uint(b[off + i])
            acc |= v << bits
            bits += 8
            i += 1
        o[k] = acc & 0x1FFF
        acc >>= 13
        bits -= 13
