# SHA-512 (FIPS 180-4) in MicroPython viper, with 64-bit words as 32-bit (hi, lo) halves.
#
# MicroPython's hashlib has no sha512, and pure Python 64-bit arithmetic makes big ints on every
# board. Here each 64-bit word is a pair of 32-bit words (hi, lo) in a buffer read as ptr32.
# Written for a small .mpy rather than speed: the schedule and the rounds are Python loops over
# three viper primitives, _add (one 64-bit addition; the carry out of the low halves comes from
# their top bits, so no 33rd bit is ever needed), _sigma (adds the XOR of three rotations or
# shifts taken from a table) and _choose (adds a bitwise select: Ch, and Maj as a select too).
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
# Streaming API on one module-level context (not re-entrant): init(), update(buf, off, n),
# final(out, off). Nothing is allocated per block.

import micropython

_K = bytearray(640)   # 80 round constants as (hi, lo), native little-endian 32-bit words
_IV = bytearray(64)
_H = bytearray(64)    # state, 8 words as (hi, lo)
_V = bytearray(72)    # working variables a..h, rotated through by index (see _compress), 0
_X = bytearray(16)    # scratch: two words
_W = bytearray(640)   # message schedule, 80 words as (hi, lo)
_BUF = bytearray(128)  # partial input block
_N = [0, 0]           # bytes in _BUF, total bytes hashed (small ints)
# Rotations for Sigma1, Sigma0 (rounds), sigma0, sigma1 (schedule); 64 + n means a shift by n.
_ROT = bytes((14, 18, 41, 28, 34, 39, 1, 8, 64 + 7, 19, 61, 64 + 6))


@micropython.viper
def _copy(dst: ptr8, doff: int, src: ptr8, soff: int, n: int):
    for i in range(n):
        dst[doff + i] = src[soff + i]


@micropython.viper
def _add(d: ptr32, i: int, s: ptr32, j: int):
    # Word d[i:i+2] += word s[j:j+2] modulo 2**64. The carry out of the low halves is the top
    # bit of (a & b) | ((a | b) & ~sum), the textbook carry rule, on 32-bit values only.
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    a = uint(d[i + 1])
    b = uint(s[j + 1])
    lo = (a + b) & m
    c = (((a & b) | ((a | b) & ~lo)) >> 31) & 1
    d[i + 1] = lo
    d[i] = uint(d[i]) + uint(s[j]) + c  # ptr32 store keeps 32 bits


@micropython.viper
def _sigma(d: ptr32, i: int, s: ptr32, j: int, r: int):
    # Word d[i:i+2] += the XOR of the three rotations _ROT[r:r+3] of word s[j:j+2] (a shift
    # where the table says 64 + n). Amounts are never 0 or 32, so no shift below is by 32.
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    rot = ptr8(_ROT)
    x = ptr32(_X)
    xh = uint(s[j])
    xl = uint(s[j + 1])
    oh = uint(0)
    ol = uint(0)
    for k in range(3):
        n = int(rot[r + k])
        a = xh
        b = xl
        if n >= 64:  # shift right: the high half gets zeros from above
            n -= 64
            oh ^= a >> n
        else:
            if n >= 32:  # rotating by 32 + n is swapping the halves, then rotating by n
                a = xl
                b = xh
                n -= 32
            oh ^= (a >> n) | ((b << (32 - n)) & m)
        ol ^= (b >> n) | ((a << (32 - n)) & m)
    x[0] = oh
    x[1] = ol
    _add(d, i, _X, 0)


@micropython.viper
def _choose(i: int, x: int, y: int, z: int, w: int):
    # Working word i += (x ^ y) ? w : z bitwise, i.e. z ^ ((x ^ y) & (z ^ w)), on the pairs of
    # _V: Ch(e, f, g) with y = 16 (the zero word after the eight variables), and Maj(a, b, c)
    # as Ch(a ^ b, c, b).
    v = ptr32(_V)
    t = ptr32(_X)
    for k in range(2):
        b = uint(v[z + k])
        t[k] = b ^ ((uint(v[x + k]) ^ uint(v[y + k])) & (b ^ uint(v[w + k])))
    _add(_V, i, _X, 0)


@micropython.viper
def _load(blk: ptr8, off: int):
    # W[0..15] = the block at blk[off:], as big-endian halves in native little-endian words.
    w = ptr8(_W)
    for i in range(128):
        w[i ^ 3] = blk[off + i]


def _compress(blk, off):
    # One 128-byte block at blk[off:] into _H. The schedule: W[t] = W[t-7] + W[t-16] +
    # s1(W[t-2]) + s0(W[t-15]) (offsets count 32-bit halves: word t is at 2t). Variable n
    # (a = 0 .. h = 7) of round t sits at pair (n - t) mod 8 of _V: a round writes the new e over
    # d and the new a over h, and the names shift by one for the next round; after 80 rounds
    # each is back at its own pair.
    w = _W
    v = _V
    _load(blk, off)
    for t in range(32, 160, 2):
        _copy(w, 4 * t, w, 4 * t - 56, 8)
        _add(w, t, w, t - 32)
        _sigma(w, t, w, t - 4, 9)
        _sigma(w, t, w, t - 30, 6)
    _copy(v, 0, _H, 0, 64)
    for t in range(80):
        a = (-t & 7) << 1
        b = (1 - t & 7) << 1
        c = (2 - t & 7) << 1
        e = (4 - t & 7) << 1
        h = (7 - t & 7) << 1
        # h += S1(e) + Ch(e, f, g) + K[t] + W[t]: this is T1
        _sigma(v, h, v, e, 0)
        _choose(h, e, 16, (6 - t & 7) << 1, (5 - t & 7) << 1)
        _add(v, h, _W, 2 * t)
        _add(v, h, _K, 2 * t)
        # e' = d + T1 (over d); a' = T1 + S0(a) + Maj(a, b, c) (over h)
        _add(v, (3 - t & 7) << 1, v, h)
        _sigma(v, h, v, a, 3)
        _choose(h, a, b, b, c)
    for i in range(0, 16, 2):
        _add(_H, i, v, i)


def init():
    """Start a new hash (the previous one, if any, is discarded)."""
    _copy(_H, 0, _IV, 0, 64)
    _N[0] = 0
    _N[1] = 0


def update(data, off=0, n=-1):
    """Hash n bytes (default: all) of data from off."""
    if n < 0:
        n = len(data) - off
    used = _N[0]
    _N[1] += n
    while n > 0:
        if used == 0 and n >= 128:
            _compress(data, off)  # whole blocks straight from the caller's buffer
            k = 128
        else:
            k = 128 - used
            if k > n:
                k = n
            _copy(_BUF, used, data, off, k)
            used += k
            if used == 128:
                _compress(_BUF, 0)
                used = 0
        off += k
        n -= k
    _N[0] = used


def final(out, off=0):
    """Write the 64-byte digest at out[off:]; the context must be init()-ed again to reuse."""
    # Pad: 0x80, zeros, the 128-bit big-endian bit length (the total stays far below 2**61).
    b = _BUF
    used = _N[0]
    b[used] = 0x80
    for i in range(used + 1, 128):
        b[i] = 0
    if used >= 112:  # no room for the length: one more block
        _compress(b, 0)
        for i in range(120):
            b[i] = 0
    bits = _N[1] * 8
    for i in range(8):
        b[127 - i] = (bits >> (8 * i)) & 255
    _compress(b, 0)
    # Big-endian words out of native little-endian halves.
    for i in range(64):
        out[off + i] = _H[i ^ 3]


def sha512(data):
    """One-shot SHA-512 of a bytes-like object, as bytes."""
    out = bytearray(64)
    init()
    update(data, 0, len(data))
    final(out, 0)
    return bytes(out)


def _root(v, k):
    # floor(v ** (1 / k)) for k = 2 or 3 by integer Newton steps from above (v < 2**201,
    # so 2**70 is above the root); the sequence decreases until it reaches the floor.
    x = 1 << 70
    while True:
        y = ((k - 1) * x + v // x ** (k - 1)) // k
        if y >= x:
            return x
        x = y


def _init_constants():
    # FIPS 180-4 4.2.3 / 5.3.5, as (hi, lo) little-endian 32-bit words.
    p = 2
    n = 0
    while n < 80:
        q = 2
        while p % q:
            q += 1
        if q == p:  # p is prime
            for tbl, k, shift, i in ((_K, 3, 192, n), (_IV, 2, 128, n)):
                if i < len(tbl) // 8:
                    frac = _root(p << shift, k) & ((1 << 64) - 1)
                    for j in range(4):
                        tbl[8 * i + j] = (frac >> (32 + 8 * j)) & 255
                        tbl[8 * i + 4 + j] = (frac >> (8 * j)) & 255
            n += 1
        p += 1


_init_constants()
