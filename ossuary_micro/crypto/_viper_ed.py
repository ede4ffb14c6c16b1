# Ed25519 and SHA-512 of the viper backend (crypto/viper.py loads this module on first use).
#
# Apart from viper.py because a protocol 2 board needs them only at boot (the X25519 form of
# its seed, its Ed25519 public key) and can then drop them: ~8 KB of heap on a 32-bit board
# (port/common/node.py unloads it). Protocol 1 signs and verifies in every handshake and keeps
# it. The field and its temporaries are viper.py's; the header of viper.py says how the 32-bit
# bounds are kept and what is wiped.

import micropython
from micropython import const

from .viper import (copy_into, _FE0, _FE1, _mul, _addk, _cswap, _reduce, _limbs,
                    _sqn, _pow_2_250_1, _invert, _TMP, _CH)
from .viper import _SCRATCH  # X25519's scratch; this module's is added at the end

# ==================== SHA-512
# SHA-512 (FIPS 180-4) in MicroPython viper, with 64-bit words as 32-bit (hi, lo) halves.
#
# MicroPython's hashlib has no sha512, and pure Python 64-bit arithmetic makes big ints on every
# board. Here each 64-bit word is a pair of 32-bit words (hi, lo) in a buffer read as ptr32.
# Written for a small .mpy rather than speed: the schedule and the rounds are Python loops over
# one primitive, _addf (viper; Thumb assembler on ARM, where armv6m viper code is ~5x the size
# and lives on the heap): a 64-bit addition of a word, or of the XOR of three rotations or
# shifts of it taken from a table, or of a bitwise select (Ch, and Maj as a select too); the
# carry out of the low halves comes from their top bits, so no 33rd bit is ever needed.
# A block costs about 1500 calls (~100 us on the unix port, still well ahead of pure Python);
# Ed25519 hashes a few blocks per signature.
#
# Every left shift and every sum is masked with M = 0xFFFFFFFF (built at run time: the literal
# is not a small int on a 32-bit board) or stored through ptr32 (which keeps 32 bits), and right
# shifts only ever see clean 32-bit values, so the 64-bit unix port and 32-bit boards compute
# the same bits. Branches depend on round numbers and table entries only, never on data.
#
# The round constants and initial value are computed at import from their definition (FIPS
# 180-4 4.2.3 and 5.3.5: the first 64 fractional bits of the cube roots of the first 80 primes,
# and of the square roots of the first 8), with Python big ints, instead of being stored.
#
# One module-level context: _sha(out, parts) hashes the concatenation of parts into out
# (starting from the initial value). Nothing is allocated per block.

# The hash's context and its constants, in one buffer (one name on a board's heap, where every
# name stays interned; and one buffer for _addf, whose Thumb twin takes four arguments).
# The context, offsets in 32-bit words (_addf's indices): the working variables a..h at word 0
# (where _addf's Ch and Maj read them), rotated through by index (see _compress); the state H
# at word _HW; the message schedule, a window of 16 words, at word _WW; all as (hi, lo). Then
# the partial input block, at byte _BLK. The constants, from byte _KB (word _KW) on: 80 round
# constants, then the 8 words of the initial value, as (hi, lo), native little-endian 32-bit
# words (bytes _KB..._KB + 703); then the rotations for Sigma1, Sigma0 (rounds), sigma0,
# sigma1 (schedule), 32 + n meaning the halves swapped and a rotation by n, 64 + n a shift by
# n (12 bytes at _ROT; the Thumb _addf has this offset written in).
_SS = bytearray(1100)
_HW = const(16)
_WW = const(32)
_BLK = const(256)
_KB = const(384)
_KW = const(96)
_ROT = const(1088)
_SS[_ROT:] = bytes((14, 18, 41, 28, 34, 39, 1, 8, 64 + 7, 19, 61, 64 + 6))

# _addf(d, i, j, r): on ARM the Thumb assembler's (crypto/_viper_thumb.py: same results;
# tests/device/board_vectors.py compares the two), and then the viper one below is never
# defined, so a board does not keep its code on the heap; elsewhere the viper one.
try:
    from ._viper_thumb import _addf
except (ImportError, SyntaxError):
    @micropython.viper
    def _addf(d: ptr32, i: int, j: int, r: int):
        # Word d[i:i+2] += f modulo 2**64, d the context (_SS), where f is, by the public
        # selector r:
        # r = 20: the word d[j:j+2] itself (a plain addition).
        # r < 12: the XOR of the three rotations _SS[_ROT + r:_ROT + r + 3] of word d[j:j+2]
        #   (a shift where the table says 64 + n). Amounts are never 0 or 32, so no shift
        #   below is by 32.
        # r = 12 or 16: Ch(e, f, g) or Maj(a, b, c) of round j on the working variables
        #   (variable n of round j is the pair ((n - j) & 7) << 1 of d, see _compress), both
        #   as z ^ ((x ^ (z & mk)) & (y ^ z)) over (x, y, z) = (e, f, g), mk = 0 (Ch) and
        #   (a, b, c), mk = ones (Maj: a == b gives a, else z decides). r & 7 is x's name.
        # One function for the three (not an _add called by the others): a smaller .mpy, and
        # no viper-to-viper call per step.
        m = (uint(0xFFFF) << 16) | uint(0xFFFF)
        oh = uint(0)
        ol = uint(0)
        if r == 12 or r == 16:  # (j is a round number here, not a word: d[j] is not read)
            mk = m if r == 16 else uint(0)
            for k in range(2):
                a = uint(d[((r - j) & 7) * 2 + k])
                b = uint(d[((r + 1 - j) & 7) * 2 + k])
                c = uint(d[((r + 2 - j) & 7) * 2 + k])
                ol = c ^ ((a ^ (c & mk)) & (b ^ c))
                if k == 0:
                    oh = ol
        else:
            oh = uint(d[j])
            ol = uint(d[j + 1])
        if r < 12:
            rot = ptr8(d)
            xh = oh
            xl = ol
            oh = uint(0)
            ol = uint(0)
            for k in range(3):
                n = int(rot[_ROT + r + k])
                a = xh
                b = xl
                if n >= 64:  # shift right: the high half gets zeros from above
                    n -= 64
                    oh ^= a >> n
                else:
                    if n >= 32:  # rotating by 32 + n is swapping the halves, then by n
                        a = xl
                        b = xh
                        n -= 32
                    oh ^= (a >> n) | ((b << (32 - n)) & m)
                ol ^= (b >> n) | ((a << (32 - n)) & m)
        # The addition: the carry out of the low halves is the top bit of
        # (a & b) | ((a | b) & ~sum), the textbook carry rule, on 32-bit values only.
        a = uint(d[i + 1])
        lo = (a + ol) & m
        c = (((a & ol) | ((a | ol) & ~lo)) >> 31) & 1
        d[i + 1] = lo
        d[i] = uint(d[i]) + oh + c  # ptr32 store keeps 32 bits


def _compress(buf, off):
    # One 128-byte block at buf[off:] into H. The schedule is a 16-word window: before round
    # t >= 16, slot t mod 16 holds W[t-16] and becomes W[t] = W[t-16] + W[t-7] + s1(W[t-2]) +
    # s0(W[t-15]), read from the slots of those words (offsets count 32-bit halves: slot s is
    # at 2s). Variable n (a = 0 .. h = 7) of round t sits at pair (n - t) mod 8 of _SS: a round
    # writes the new e over d and the new a over h, and the names shift by one for the next
    # round; after 80 rounds each is back at its own pair.
    # All of the context is _SS (ss): W at word _WW, H at word _HW, the variables at word 0,
    # K at word _KW.
    ss = _SS
    addf = _addf  # a local: see _TMP
    copy_into(ss, 4 * _WW, buf, off, -128)  # W[0..15]: big-endian halves
    copy_into(ss, 0, ss, 4 * _HW, 64)       # a..h = H
    for t in range(80):
        s = _WW + ((t & 15) << 1)
        if t >= 16:
            addf(ss, s, _WW + ((t - 7 & 15) << 1), 20)
            addf(ss, s, _WW + ((t - 2 & 15) << 1), 9)
            addf(ss, s, _WW + ((t - 15 & 15) << 1), 6)
        h = (7 - t & 7) << 1
        # h += S1(e) + Ch(e, f, g) + K[t] + W[t]: this is T1
        addf(ss, h, (4 - t & 7) << 1, 0)
        addf(ss, h, t, 12)
        addf(ss, h, s, 20)
        addf(ss, h, _KW + 2 * t, 20)
        # e' = d + T1 (over d); a' = T1 + S0(a) + Maj(a, b, c) (over h)
        addf(ss, (3 - t & 7) << 1, h, 20)
        addf(ss, h, (-t & 7) << 1, 3)
        addf(ss, h, t, 16)
    for i in range(0, 16, 2):
        addf(ss, _HW + i, i, 20)


def _sha(out, parts):
    # out[0:64] = SHA-512 of the concatenation of parts (bytes-like objects). One function for
    # feeding and finishing (each function loaded is heap on a board, and its name stays
    # interned); the counts are locals. Whole blocks go straight from a part to _compress,
    # the rest through the partial block. Nothing is allocated per block.
    b = _SS  # the partial block is b[_BLK:_BLK + 128]
    copy_into(b, 4 * _HW, b, _KB + 640, 64)  # H = the initial value (a new hash)
    used = 0   # bytes in the partial block
    total = 0  # bytes hashed (a small int: far below 2**61)
    for data in parts:
        off = 0
        n = len(data)
        total += n
        while n > 0:
            if used == 0 and n >= 128:
                _compress(data, off)  # a whole block straight from the caller's buffer
                k = 128
            else:
                k = 128 - used
                if k > n:
                    k = n
                copy_into(b, _BLK + used, data, off, k)
                used += k
                if used == 128:
                    _compress(b, _BLK)
                    used = 0
            off += k
            n -= k
    # Pad: 0x80, zeros, the 128-bit big-endian bit length.
    b[_BLK + used] = 0x80
    for i in range(_BLK + used + 1, _BLK + 128):
        b[i] = 0
    if used >= 112:  # no room for the length: one more block
        _compress(b, _BLK)
        for i in range(_BLK, _BLK + 120):
            b[i] = 0
    bits = total * 8
    for i in range(8):
        b[_BLK + 127 - i] = (bits >> (8 * i)) & 255
    _compress(b, _BLK)
    # Big-endian words out of native little-endian halves.
    copy_into(out, 0, b, 4 * _HW, -64)


def _init_constants():
    # FIPS 180-4 4.2.3 / 5.3.5, as (hi, lo) little-endian 32-bit words.
    p = 2
    n = 0
    while n < 80:
        q = 2
        while p % q:
            q += 1
        if q == p:  # p is prime
            for k, shift, i, top in ((3, 192, n, 80), (2, 128, n + 80, 88)):
                if i < top:
                    # floor(v ** (1 / k)) for k = 2 or 3 by integer Newton steps from above
                    # (v < 2**201, so 2**70 is above the root); the sequence decreases until
                    # it reaches the floor. (Inline: a function's name would stay interned.)
                    v = p << shift
                    x = 1 << 70
                    while True:
                        y = ((k - 1) * x + v // x ** (k - 1)) // k
                        if y >= x:
                            break
                        x = y
                    frac = x & ((1 << 64) - 1)
                    for j in range(4):
                        _SS[_KB + 8 * i + j] = (frac >> (32 + 8 * j)) & 255
                        _SS[_KB + 8 * i + 4 + j] = (frac >> (8 * j)) & 255
            n += 1
        p += 1


_init_constants()
del _init_constants  # run once: its bytecode need not stay on the heap


# ==================== Ed25519
# Ed25519 (RFC 8032) on the viper limb field and viper SHA-512.
#
# Points are extended twisted-Edwards coordinates (X, Y, Z, T), four field elements from
# the field section. Scalars modulo L are handled with Python ints: a handful of operations per
# signature (MicroPython's big ints allocate there, which is fine off the data path).
# Scalar multiplication: a comb over the base point's teeth, sums kept by cswap (for the secret
# scalars of signing); verification handles only public data and may branch on it.

_L = 2 ** 252 + 27742317777372353535851937790883648493


# The curve's constants: 2d, d = -121665 / 121666, and 2 ** ((p - 1) / 4), a square root of
# -1 (one tuple: one name on a board's heap, where every name stays interned).
_EC = (bytearray(80), bytearray(80), bytearray(80))


# Temporaries for point arithmetic and decoding.
# X25519 and Ed25519 never run at the same time: the point temporaries are the ladder's
# elements (viper.py's _TMP; 11 fewer resident elements). viper.py's _CH (bb, c, d: the
# inversion chain's temporaries, and the comb's candidate sum _P below; e) is left alone,
# since _encode's and _decode's exponentiations use it while the point temporaries hold live
# values. Verification keeps -A in _P (see _ed_verify).
_Q = tuple(bytearray(80) for _ in range(4))
_P = _CH[0:3] + (bytearray(80),)
_DIG = bytearray(64)
_H = bytearray(64)  # SHA-512 of the seed: the secret scalar a, then the nonce prefix


# The point functions and the loops that call them keep functions and elements in locals (a
# one-byte load; a global is a dictionary look-up, much of the interpreter's time on a
# Cortex-M0): the temporaries come in one unpacking of _TMP, viper.py's tuple of the ladder's
# x1, x2, z2, x3, z3, a, aa, b, called ta .. th here.


def _p_add(o, p, q):
    # o = p + q (add-2008-hwcd-3, a = -1, complete: also right when p == q); o may alias p.
    mul = _mul; addk = _addk
    ta, tb, tc, td, te, tf, tg, th = _TMP
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    addk(ta, y1, x1, -1); addk(te, y2, x2, -1); mul(ta, ta, te)   # A = (Y1-X1)(Y2-X2)
    addk(tb, y1, x1, 1); addk(te, y2, x2, 1); mul(tb, tb, te)     # B = (Y1+X1)(Y2+X2)
    mul(tc, t1, t2); mul(tc, tc, _EC[0])                          # C = T1 2d T2
    mul(td, z1, z2); addk(td, td, td, 1)                          # D = 2 Z1 Z2
    addk(te, tb, ta, -1); addk(tf, td, tc, -1); addk(tg, td, tc, 1); addk(th, tb, ta, 1)
    mul(o[0], te, tf); mul(o[1], tg, th); mul(o[3], te, th); mul(o[2], tf, tg)


def _p_dbl(o, p):
    # o = 2p (dbl-2008-hwcd, a = -1); o may alias p.
    mul = _mul; addk = _addk
    ta, tb, tc, td, te, tf, tg, th = _TMP
    x, y, z, _ = p
    mul(ta, x, x)                               # A = X^2
    mul(tb, y, y)                               # B = Y^2
    mul(tc, z, z); addk(tc, tc, tc, 1)          # C = 2 Z^2
    addk(te, x, y, 1); mul(te, te, te)
    addk(te, te, ta, -1); addk(te, te, tb, -1)  # E = (X+Y)^2 - A - B
    addk(tg, tb, ta, -1)                        # G = -A + B
    addk(tf, tg, tc, -1)                        # F = G - C
    addk(th, ta, tb, 1); addk(th, _FE0, th, -1)  # H = -A - B
    mul(o[0], te, tf); mul(o[1], tg, th); mul(o[3], te, th); mul(o[2], tf, tg)


def _p_zero(o):
    # o = the neutral point (0, 1, 1, 0)
    copy_into(o[0], 0, _FE0, 0, 80); copy_into(o[1], 0, _FE1, 0, 80)
    copy_into(o[2], 0, _FE1, 0, 80); copy_into(o[3], 0, _FE0, 0, 80)


def _is_zero(a):
    # 1 when a is 0 modulo p (a is reduced in place); reads every byte, no early exit.
    _reduce(a, 20, 8, 19)
    d = 0
    for i in range(80):
        d |= a[i]
    return 1 if d == 0 else 0


def _encode(out, p):
    # out[0:32] = y with the sign (parity) of x in bit 255 (RFC 8032 5.1.2). A reduced
    # element's parity is bit 0 of its first limb, the first byte of the (little-endian) array.
    ta, tb, tc, td, te, tf, tg, th = _TMP
    _invert(ta, p[2])
    _mul(tb, p[0], ta); _reduce(tb, 20, 8, 19)
    _mul(tc, p[1], ta); _reduce(tc, 20, 8, 19)
    _limbs(tc, out, 0, -1)  # to bytes
    out[31] |= (tb[0] & 1) << 7


def _decode(o, s, neg):
    # Strict decoding (RFC 8032 5.1.3) of the 32 bytes s into the point o, negated when neg
    # is 1 (verification wants -A): False for y >= p, no square root, or x == 0 with the
    # sign bit set. Public data only, so plain comparisons.
    ta, tb, tc, td, te, tf, tg, th = _TMP
    mul = _mul; addk = _addk  # locals: see _TMP
    y = o[1]
    _limbs(y, s, 0, 32)
    y[77] &= 254  # bit 255, the sign, left out (viper.py: bit 8 of limb 19)
    _reduce(y, 20, 8, 19)  # a reduced element is loose too
    sign = s[31] >> 7
    chk = _DIG  # its first 32 bytes (free here: the hashes that use it come later)
    _limbs(y, chk, 0, -1)  # to bytes
    chk[31] |= sign << 7
    if chk[0:32] != s:
        return False  # y was not canonical
    mul(tb, y, y)
    addk(tc, tb, _FE1, -1)                # u = y^2 - 1
    mul(td, tb, _EC[1]); addk(td, td, _FE1, 1)  # v = d y^2 + 1
    # x = u v^3 (u v^7)^((p-5)/8)
    mul(te, td, td); mul(te, te, td)  # v^3
    mul(tf, te, te); mul(tf, tf, td)  # v^7
    mul(tf, tf, tc)                      # u v^7
    t = _pow_2_250_1(tf, tg)              # (u v^7)^(2^250 - 1)
    _sqn(t, t, 2)
    mul(tf, t, tf)                        # ^(2^252 - 3)
    mul(tf, tf, te); mul(o[0], tf, tc)  # x
    # check v x^2 == u, or == -u (then x *= sqrt(-1))
    mul(tg, o[0], o[0]); mul(tg, tg, td)
    addk(th, tg, tc, -1)
    if not _is_zero(th):
        addk(th, tg, tc, 1)
        if not _is_zero(th):
            return False
        mul(o[0], o[0], _EC[2])  # sqrt(-1)
    if _is_zero(o[0]) and sign:  # reduces x: its parity is bit 0 of byte 0
        return False
    if o[0][0] & 1 != sign ^ neg:
        addk(o[0], _FE0, o[0], -1)
    copy_into(o[2], 0, _FE1, 0, 80)
    mul(o[3], o[0], y)
    return True


# Fixed-base comb (Lim-Lee, 4 teeth 64 bits apart) without a table of the teeth's sums: _BT[t]
# = [2**(64 t)]B (4 points, ~1 KB, built at import; a 16-entry table of the sums would be
# 5 KB resident). Each tooth is kept with Z = 1, as (X/Z, Y/Z, 1, T/Z): the same point, and
# _p_add reads it unchanged, but its Z is _FE1 itself, one element fewer each. [k]B = sum over i of [2**i] (sum over t of bit i + 64 t of k times _BT[t]):
# 63 doublings and 256 complete additions for a 256-bit k.
_BT = tuple((bytearray(80), bytearray(80), _FE1, bytearray(80)) for _ in range(4))  # read-only once built


def _comb(o, k):
    # o = [k]B for the secret 32-byte little-endian k: every step adds each tooth and keeps or
    # drops the sum by cswap, so neither branches nor addresses depend on the bits of k.
    add = _p_add; cswap = _cswap; s = _P; bt = _BT
    x, y, z, w = o
    sx, sy, sz, sw = s
    _p_zero(o)
    for i in range(63, -1, -1):
        if i != 63:  # public loop position, not a secret
            _p_dbl(o, o)
        for t in range(4):
            j = i + 64 * t
            add(s, o, bt[t])
            b = (k[j >> 3] >> (j & 7)) & 1
            cswap(x, sx, b); cswap(y, sy, b); cswap(z, sz, b); cswap(w, sw, b)


def _hash_mod_l(*parts):
    # SHA-512 of the concatenated parts, as an int modulo L.
    _sha(_DIG, parts)
    return int.from_bytes(_DIG, "little") % _L


_NOMSG = bytearray(0)  # the "message" of a public key request (an object no caller has)


def _ed_sign(seed, msg):
    # RFC 8032 5.1.5 / 5.1.6: the 64-byte signature of msg, or the 32-byte public key when
    # msg is _NOMSG: both start from h = SHA-512(seed) (clamped scalar a, prefix) and A = [a]B.
    h = _H
    _sha(h, (seed,))
    h[0] &= 248
    h[31] = (h[31] & 127) | 64
    _comb(_Q, h)
    out = pub = bytearray(32)
    _encode(pub, _Q)
    if msg is not _NOMSG:
        r = _hash_mod_l(memoryview(h)[32:64], msg)
        _comb(_Q, r.to_bytes(32, "little"))
        out = bytearray(64)
        _encode(out, _Q)
        k = _hash_mod_l(memoryview(out)[0:32], pub, msg)
        out[32:64] = ((r + k * int.from_bytes(h[0:32], "little")) % _L).to_bytes(32, "little")
    for w in _SCRATCH:  # the wipe (viper.py's buffer helpers)
        w[0] = 0
        copy_into(w, 1, w, 0, len(w) - 1)
    return bytes(out)


def _ed_verify(pub, msg, sig):
    # [S]B == R + [k]A, checked as encode([S]B - [k]A) == R (cofactorless, RFC 8032 5.1.7).
    s = int.from_bytes(sig[32:64], "little")
    if s >= _L:
        return False
    q = _Q; a = _P; b = _BT[0]; add = _p_add; dbl = _p_dbl
    # -A, decoded into q and then moved to a (the comb's candidate sum, unused here: its
    # first three elements are the chain temporaries that _decode itself uses; the point
    # code below does not touch them).
    if not _decode(q, pub, 1):
        return False
    for c in range(4):
        copy_into(a[c], 0, q[c], 0, 80)
    k = _hash_mod_l(memoryview(sig)[0:32], pub, msg).to_bytes(32, "little")
    # [S]B + [k](-A) in one double-and-add over both scalars (Straus; both < L < 2**253):
    # public data, so it branches on their bits and needs no table.
    _p_zero(q)
    for i in range(252, -1, -1):
        dbl(q, q)
        if (sig[32 + (i >> 3)] >> (i & 7)) & 1:
            add(q, q, b)
        if (k[i >> 3] >> (i & 7)) & 1:
            add(q, q, a)
    out = _DIG  # its first 32 bytes: free again (k is made)
    _encode(out, q)
    return out[0:32] == bytes(sig[0:32])


def _init_constants():  # the SHA-512 one's name again: one name fewer on the heap
    # d, 2d and sqrt(-1) from their definitions (RFC 8032 5.1, 5.1.3), then the base point B:
    # y = 4/5 with x even. Checked against the RFC's values by the Ed25519 test vectors.
    ta, tb, tc, td, te, tf, tg, th = _TMP
    d2, d, sqrtm1 = _EC
    _addk(d, _FE0, _FE1, 121666)
    _invert(d, d)
    _addk(d, _FE0, d, 121665)
    _addk(d, _FE0, d, -1)
    _addk(d2, d, d, 1)
    _addk(sqrtm1, _FE0, _FE1, 2)
    t = _pow_2_250_1(sqrtm1, tg)       # 2 ** (2**250 - 1)
    _sqn(t, t, 3)                       # 2 ** (2**253 - 8)
    _addk(sqrtm1, _FE0, t, 8)           # 2 ** (2**253 - 5) = 2 ** ((p - 1) / 4)
    _addk(ta, _FE0, _FE1, 5)
    _invert(ta, ta)
    _addk(ta, _FE0, ta, 4)
    _reduce(ta, 20, 8, 19)
    enc = bytearray(32)
    _limbs(ta, enc, 0, -1)  # to bytes
    q = _Q  # B, then each tooth in turn, in full (X, Y, Z, T)
    if not _decode(q, enc, 0):
        raise ImportError("ed25519 base point")
    for t in range(4):
        for _ in range(64 if t else 0):
            _p_dbl(q, q)
        # The tooth with Z = 1: X, Y and T times 1/Z (ta is free: the doublings are done).
        _invert(ta, q[2])
        bt = _BT[t]
        for c in (0, 1, 3):
            _mul(bt[c], q[c], ta)


_init_constants()
del _init_constants

# Scratch that holds secrets or values derived from them after a signature, wiped by _ed_sign
# before it returns: X25519's (viper.py: the ladder's elements, which the point code uses under
# other names, inversion temporaries, product scratch), and the SHA-512 state, schedule and
# block (the seed, h, the nonce r: the first _KB bytes of _SS, a window of it, not the
# constants after them), the comb's last candidate sum (_P). Not wiped: the public
# results (_Q: A or R; verification's -A in _P and the encoding of [S]B - [k]A that it leaves
# in _DIG), Python ints holding the scalars mod L (immutable, freed by the collector).
_SCRATCH = _SCRATCH + (memoryview(_SS)[0:_KB], _DIG, _H, _P[3])
