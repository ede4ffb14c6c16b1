# Viper crypto backend: MicroPython native-code X25519, ChaCha20-Poly1305, Ed25519, SHA-512.
#
# Everything is accelerated with @micropython.viper: ChaCha20 and Poly1305 on buffers, field
# elements mod 2**255 - 19 as 20 limbs of 13 bits in preallocated arrays, SHA-512 on 32-bit
# halves. Every intermediate is kept within 32 bits (argued at the head of each section below),
# so a 32-bit board and the 64-bit unix port compute the same bytes.
#
# One module for all of it, written for a small .mpy (armv6m: the flash and RAM of small
# boards; the sections used to be five modules, and each module repeats its file name, its
# imports and its names in the .mpy). Sections: SHA-512, field, X25519, Ed25519, AEAD, and the
# Backend class with the argument checks.
#
# Availability: on CPython `import micropython` fails (ImportError); on a MicroPython built
# without the viper emitter (e.g. the WebAssembly port) compiling the @micropython.viper
# functions fails (SyntaxError / NotImplementedError). The registry catches those and falls
# back to the pure backend.
#
# Allocation: aead_seal / aead_open allocate nothing (tested with micropython.heap_lock()),
# X25519 allocates its small result only; Ed25519 uses a few Python big ints for scalars mod L.
# Timing: the field, ladder and AEAD code has no data-dependent branches or table lookups, and
# the tag is compared without early exit; Ed25519 verification branches on public data only.
# Python-level call overhead is constant per operation. Secrets are wiped from the module's
# scratch buffers after every AEAD call, X25519 and signature (_SECRETS, _SCRATCH).
#
# Not re-entrant (module-level scratch buffers): one caller at a time, like the library itself.

import micropython  # ImportError on CPython: the registry then skips this backend

from ..errors import AuthenticationFailed, CryptoError


# ==================== SHA-512
# SHA-512 (FIPS 180-4) in MicroPython viper, with 64-bit words as 32-bit (hi, lo) halves.
#
# MicroPython's hashlib has no sha512, and pure Python 64-bit arithmetic makes big ints on every
# board. Here each 64-bit word is a pair of 32-bit words (hi, lo) in a buffer read as ptr32.
# Written for a small .mpy rather than speed: the schedule and the rounds are Python loops over
# one viper primitive, _addf: a 64-bit addition of a word, or of the XOR of three rotations or
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
# Streaming API on one module-level context: _sinit(), _supdate(buf, off, n),
# _sfinal(out, off). Nothing is allocated per block.

_SK = bytearray(640)   # 80 round constants as (hi, lo), native little-endian 32-bit words
_SIV = bytearray(64)
_SH = bytearray(64)    # state, 8 words as (hi, lo)
_SV = bytearray(64)    # working variables a..h, rotated through by index (see _compress)
_SW = bytearray(128)   # message schedule: a window of 16 words as (hi, lo)
_SBUF = bytearray(128)  # partial input block
_SN = [0, 0]           # bytes in _SBUF, total bytes hashed (small ints)
# Rotations for Sigma1, Sigma0 (rounds), sigma0, sigma1 (schedule); 64 + n means a shift by n.
_ROT = bytes((14, 18, 41, 28, 34, 39, 1, 8, 64 + 7, 19, 61, 64 + 6))


@micropython.viper
def _bcopy(dst: ptr8, doff: int, src: ptr8, soff: int, n: int, x: int):
    # dst[doff + (i ^ x)] = src[soff + i] for i < n: a plain copy with x = 0; x = 3 turns
    # big-endian 32-bit words into native little-endian ones (SHA-512's block load). Forward,
    # one byte at a time: _wipe relies on that to fill a buffer from its first byte.
    for i in range(n):
        dst[doff + (i ^ x)] = src[soff + i]


def _wipe(bufs):
    # Zero every buffer of the tuple bufs, the secret-bearing scratch, after use: its first
    # byte, then _bcopy of the buffer onto itself one byte up, which carries that zero to the
    # end (it copies forward, byte by byte). One call per buffer, nothing allocated, and no
    # viper loop of its own in the .mpy.
    for b in bufs:
        b[0] = 0
        _bcopy(b, 1, b, 0, len(b) - 1, 0)


@micropython.viper
def _addf(d: ptr32, i: int, s: ptr32, j: int, r: int):
    # Word d[i:i+2] += f(s) modulo 2**64, where f is, by the public selector r:
    # r = 20: the word s[j:j+2] itself (a plain addition).
    # r < 12: the XOR of the three rotations _ROT[r:r+3] of word s[j:j+2] (a shift where the
    #   table says 64 + n). Amounts are never 0 or 32, so no shift below is by 32.
    # r = 12 or 16: Ch(e, f, g) or Maj(a, b, c) of round j on the working variables s = _SV
    #   (variable n of round j is the pair ((n - j) & 7) << 1, see _compress), both as
    #   z ^ ((x ^ (z & mk)) & (y ^ z)) over (x, y, z) = (e, f, g), mk = 0 (Ch) and
    #   (a, b, c), mk = ones (Maj: a == b gives a, else z decides). r & 7 is x's name.
    # One function for the three (not an _add called by the others): a smaller .mpy, and no
    # viper-to-viper call per step.
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    oh = uint(0)
    ol = uint(0)
    if r == 12 or r == 16:  # (j is a round number here, not a word: s[j] is not read)
        mk = m if r == 16 else uint(0)
        for k in range(2):
            a = uint(s[((r - j) & 7) * 2 + k])
            b = uint(s[((r + 1 - j) & 7) * 2 + k])
            c = uint(s[((r + 2 - j) & 7) * 2 + k])
            ol = c ^ ((a ^ (c & mk)) & (b ^ c))
            if k == 0:
                oh = ol
    else:
        oh = uint(s[j])
        ol = uint(s[j + 1])
    if r < 12:
        rot = ptr8(_ROT)
        xh = oh
        xl = ol
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
    # The addition: the carry out of the low halves is the top bit of
    # (a & b) | ((a | b) & ~sum), the textbook carry rule, on 32-bit values only.
    a = uint(d[i + 1])
    lo = (a + ol) & m
    c = (((a & ol) | ((a | ol) & ~lo)) >> 31) & 1
    d[i + 1] = lo
    d[i] = uint(d[i]) + oh + c  # ptr32 store keeps 32 bits


def _compress(blk, off):
    # One 128-byte block at blk[off:] into _SH. The schedule is a 16-word window: before round
    # t >= 16, slot t mod 16 holds W[t-16] and becomes W[t] = W[t-16] + W[t-7] + s1(W[t-2]) +
    # s0(W[t-15]), read from the slots of those words (offsets count 32-bit halves: slot s is
    # at 2s). Variable n (a = 0 .. h = 7) of round t sits at pair (n - t) mod 8 of _SV: a round
    # writes the new e over d and the new a over h, and the names shift by one for the next
    # round; after 80 rounds each is back at its own pair.
    w = _SW
    v = _SV
    _bcopy(w, 0, blk, off, 128, 3)  # W[0..15]: big-endian halves
    _bcopy(v, 0, _SH, 0, 64, 0)
    for t in range(80):
        s = (t & 15) << 1
        if t >= 16:
            _addf(w, s, w, (t - 7 & 15) << 1, 20)
            _addf(w, s, w, (t - 2 & 15) << 1, 9)
            _addf(w, s, w, (t - 15 & 15) << 1, 6)
        h = (7 - t & 7) << 1
        # h += S1(e) + Ch(e, f, g) + K[t] + W[t]: this is T1
        _addf(v, h, v, (4 - t & 7) << 1, 0)
        _addf(v, h, v, t, 12)
        _addf(v, h, w, s, 20)
        _addf(v, h, _SK, 2 * t, 20)
        # e' = d + T1 (over d); a' = T1 + S0(a) + Maj(a, b, c) (over h)
        _addf(v, (3 - t & 7) << 1, v, h, 20)
        _addf(v, h, v, (-t & 7) << 1, 3)
        _addf(v, h, v, t, 16)
    for i in range(0, 16, 2):
        _addf(_SH, i, v, i, 20)


def _sinit():
    """Start a new hash (the previous one, if any, is discarded)."""
    _bcopy(_SH, 0, _SIV, 0, 64, 0)
    _SN[0] = 0
    _SN[1] = 0


def _supdate(data, off=0, n=-1):
    """Hash n bytes (default: all) of data from off."""
    if n < 0:
        n = len(data) - off
    used = _SN[0]
    _SN[1] += n
    while n > 0:
        if used == 0 and n >= 128:
            _compress(data, off)  # whole blocks straight from the caller's buffer
            k = 128
        else:
            k = 128 - used
            if k > n:
                k = n
            _bcopy(_SBUF, used, data, off, k, 0)
            used += k
            if used == 128:
                _compress(_SBUF, 0)
                used = 0
        off += k
        n -= k
    _SN[0] = used


def _sfinal(out, off=0):
    """Write the 64-byte digest at out[off:]; the context must be _sinit()-ed again to reuse."""
    # Pad: 0x80, zeros, the 128-bit big-endian bit length (the total stays far below 2**61).
    b = _SBUF
    used = _SN[0]
    b[used] = 0x80
    for i in range(used + 1, 128):
        b[i] = 0
    if used >= 112:  # no room for the length: one more block
        _compress(b, 0)
        for i in range(120):
            b[i] = 0
    bits = _SN[1] * 8
    for i in range(8):
        b[127 - i] = (bits >> (8 * i)) & 255
    _compress(b, 0)
    # Big-endian words out of native little-endian halves.
    _bcopy(out, off, _SH, 0, 64, 3)


def sha512(data):
    """One-shot SHA-512 of a bytes-like object, as bytes."""
    out = bytearray(64)
    _sinit()
    _supdate(data, 0, len(data))
    _sfinal(out, 0)
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
            for tbl, k, shift, i in ((_SK, 3, 192, n), (_SIV, 2, 128, n)):
                if i < len(tbl) // 8:
                    frac = _root(p << shift, k) & ((1 << 64) - 1)
                    for j in range(4):
                        tbl[8 * i + j] = (frac >> (32 + 8 * j)) & 255
                        tbl[8 * i + 4 + j] = (frac >> (8 * j)) & 255
            n += 1
        p += 1


_init_constants()


# ==================== field
# Arithmetic modulo p = 2**255 - 19 in MicroPython viper, on preallocated limb arrays.
#
# A field element is a bytearray(80): 20 limbs of 13 bits (260 bits), read as ptr32.
# Why 13 bits: a limb product is 26 bits, and one column of a 20x20 schoolbook product is at
# most 20 * 9216**2 + carry < 1.8e9 < 2**31, so every intermediate fits a 32-bit word (and
# even a signed one) on boards, and the 64-bit unix port computes exactly the same numbers
# without masking.
#
# Invariant ("loose" form): every limb <= 8799 after any operation here, value < 2**261.
# _carry() (in _viper_field.py; the Thumb code does the same) restores it from limbs up to
# ~2**30: pass 1 leaves limbs 1..19 at 13 bits and folds the carry out of limb 19 (weight
# 2**260 = 32*19 = 608 mod p) into limb 0; pass 2 spreads limb 0 again, and any carry reaching
# the top is at most 1, so limb 0 ends <= 8191 + 608. Inputs to _mul must be loose (<= 14654
# would still fit; loose gives the margin).
#
# Only fixed-length loops, no branches on limb values: timing does not depend on the data
# (the viper code has no data-dependent branches; the Python callers choose no paths by secrets).

def _fe():
    return bytearray(80)


_FE0 = bytearray(80)  # the constants 0 and 1 (read-only by convention)
_FE1 = bytearray(80)
_FE1[0] = 1

# The hot functions: product, o = a + k*b (with a 64p bias for subtraction), conditional
# swap. On ARM boards the Thumb assembler versions (crypto/_viper_thumb.py); where that
# does not compile (SyntaxError: ESP32, unix, wasm) or is not installed, the viper ones
# (crypto/_viper_field.py). Both give the same limbs; tests/test_board_emulator.py compares
# them on the M0. Only the module in use is loaded (its .mpy is RAM on a board).
try:
    from . import _viper_thumb as _fld
except (ImportError, SyntaxError):
    from . import _viper_field as _fld
_mul = _fld.mul
_addk = _fld.addk
_cswap = _fld.cswap


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
    _bcopy(o, 0, a, 0, 80, 0)


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
def _tobytes(b: ptr8, off: int, p: ptr32):
    # b[off:off+32] = little-endian p, a reduced element (_reduce).
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


# ==================== X25519
# X25519 (RFC 7748) on the viper limb field: the Montgomery ladder over preallocated elements.
#
# The ladder loop is Python calling viper field functions: each call passes only existing
# bytearrays and small ints, so a scalar multiplication allocates nothing but its 32-byte
# result. Bit selection uses _cswap (masking, no branch on secret bits).


_X1 = _fe(); _X2 = _fe(); _Z2 = _fe(); _X3 = _fe(); _Z3 = _fe()
_A = _fe(); _AA = _fe(); _B = _fe(); _BB = _fe(); _E = _fe(); _C = _fe(); _D = _fe()
_I0 = _fe(); _I1 = _fe(); _I2 = _fe(); _I3 = _fe()
_XK = bytearray(32)
_U9 = bytearray(32)
_U9[0] = 9


def _sqn(o, a, n):
    # o = a ** (2 ** n), n >= 1
    _mul(o, a, a)
    for _ in range(n - 1):
        _mul(o, o, o)


def _pow_2_250_1(z, z11):
    # Leaves z ** (2**250 - 1) in _I0 and z ** 11 in z11 (ref10's chain; shared by inversion
    # and by Ed25519's square root). Uses _I0.._I3.
    t0 = _I0; t1 = _I1; t2 = _I2; t3 = _I3
    _mul(t0, z, z)                  # z^2
    _sqn(t1, t0, 2)             # z^8
    _mul(t1, z, t1)             # z^9
    _mul(z11, t0, t1)           # z^11
    _mul(t0, z11, z11)                # z^22
    _mul(t1, t1, t0)            # z^(2^5 - 1)
    _sqn(t0, t1, 5)
    _mul(t1, t0, t1)            # 2^10 - 1
    _sqn(t0, t1, 10)
    _mul(t2, t0, t1)            # 2^20 - 1
    _sqn(t0, t2, 20)
    _mul(t0, t0, t2)            # 2^40 - 1
    _sqn(t0, t0, 10)
    _mul(t1, t0, t1)            # 2^50 - 1
    _sqn(t0, t1, 50)
    _mul(t2, t0, t1)            # 2^100 - 1
    _sqn(t0, t2, 100)
    _mul(t0, t0, t2)            # 2^200 - 1
    _sqn(t0, t0, 50)
    _mul(t0, t0, t1)            # 2^250 - 1


def _invert(o, z):
    # o = z ** (p - 2) = z ** (2**255 - 21); 0 maps to 0.
    _pow_2_250_1(z, _E)
    _sqn(_I0, _I0, 5)
    _mul(o, _I0, _E)


def _ladder(scalar, u):
    """X25519(scalar, u) as 32 bytes; inputs are 32-byte buffers (lengths checked by the
    caller). Returns (result, all_zero_flag) so the caller raises its own error."""
    k = _XK
    _bcopy(k, 0, scalar, 0, 32, 0)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    _frombytes(_X1, u, 0)  # masks bit 255 of u
    _copy(_X2, _FE1)
    _copy(_Z2, _FE0)
    _copy(_X3, _X1)
    _copy(_Z3, _FE1)
    swap = 0
    for t in range(254, -1, -1):
        kt = (k[t >> 3] >> (t & 7)) & 1
        swap ^= kt
        _cswap(_X2, _X3, swap)
        _cswap(_Z2, _Z3, swap)
        swap = kt
        _addk(_A, _X2, _Z2, 1)
        _mul(_AA, _A, _A)
        _addk(_B, _X2, _Z2, -1)
        _mul(_BB, _B, _B)
        _addk(_E, _AA, _BB, -1)
        _addk(_C, _X3, _Z3, 1)
        _addk(_D, _X3, _Z3, -1)
        _mul(_D, _D, _A)       # DA
        _mul(_C, _C, _B)       # CB
        _addk(_X3, _D, _C, 1)
        _mul(_X3, _X3, _X3)          # x3 = (DA + CB)^2
        _addk(_Z3, _D, _C, -1)
        _mul(_Z3, _Z3, _Z3)
        _mul(_Z3, _Z3, _X1)    # z3 = x1 * (DA - CB)^2
        _mul(_X2, _AA, _BB)    # x2 = AA * BB
        _addk(_A, _AA, _E, 121665)
        _mul(_Z2, _E, _A)      # z2 = E * (AA + a24 * E)
    _cswap(_X2, _X3, swap)
    _cswap(_Z2, _Z3, swap)
    _invert(_Z2, _Z2)
    _mul(_X2, _X2, _Z2)
    zero = _is_zero(_X2)  # reduces _X2 in place
    out = bytearray(32)
    _tobytes(out, 0, _X2)
    _wipe(_SCRATCH)
    return out, zero


# ==================== Ed25519
# Ed25519 (RFC 8032) on the viper limb field and viper SHA-512.
#
# Points are extended twisted-Edwards coordinates (X, Y, Z, T), four field elements from
# the field section. Scalars modulo L are handled with Python ints: a handful of operations per
# signature (MicroPython's big ints allocate there, which is fine off the data path).
# Scalar multiplication: a comb over the base point's teeth, sums kept by cswap (for the secret
# scalars of signing); verification handles only public data and may branch on it.

_L = 2 ** 252 + 27742317777372353535851937790883648493


_D2 = _fe()  # 2d
_DC = _fe()  # d = -121665 / 121666
_SQRTM1 = _fe()  # 2 ** ((p - 1) / 4), a square root of -1


def _pt():
    return (_fe(), _fe(), _fe(), _fe())


# Temporaries for point arithmetic and decoding.
# X25519 and Ed25519 never run at the same time: the point temporaries are the ladder's
# elements under other names (11 fewer resident elements; _E and _I0.._I3 stay apart, since
# _encode's inversion uses them).
_TA = _X1; _TB = _X2; _TC = _Z2; _TD = _X3
_TE = _Z3; _TF = _A; _TG = _AA; _TH = _B
_Q = _pt()
_R = _pt()
_P = (_BB, _C, _D, _fe())
_ENC = bytearray(32)
_CHK = bytearray(32)
_DIG = bytearray(64)
_H = bytearray(64)  # SHA-512 of the seed: the secret scalar a, then the nonce prefix


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
    _mul(_TA, p[0], p[0])                        # A = X^2
    _mul(_TB, p[1], p[1])                        # B = Y^2
    _mul(_TC, p[2], p[2]); _addk(_TC, _TC, _TC, 1)   # C = 2 Z^2
    _addk(_TE, p[0], p[1], 1); _mul(_TE, _TE, _TE)
    _addk(_TE, _TE, _TA, -1); _addk(_TE, _TE, _TB, -1)  # E = (X+Y)^2 - A - B
    _addk(_TG, _TB, _TA, -1)                   # G = -A + B
    _addk(_TF, _TG, _TC, -1)                   # F = G - C
    _addk(_TH, _TA, _TB, 1); _addk(_TH, _FE0, _TH, -1)  # H = -A - B
    _mul(o[0], _TE, _TF); _mul(o[1], _TG, _TH); _mul(o[3], _TE, _TH); _mul(o[2], _TF, _TG)


def _p_zero(o):
    _copy(o[0], _FE0); _copy(o[1], _FE1); _copy(o[2], _FE1); _copy(o[3], _FE0)


def _encode(out, p):
    # out[0:32] = y with the sign (parity) of x in bit 255 (RFC 8032 5.1.2). A reduced
    # element's parity is bit 0 of its first limb, the first byte of the (little-endian) array.
    _invert(_TA, p[2])
    _mul(_TB, p[0], _TA); _reduce(_TB, 20, 8, 19)
    _mul(_TC, p[1], _TA); _reduce(_TC, 20, 8, 19)
    _tobytes(out, 0, _TC)
    out[31] |= (_TB[0] & 1) << 7


def _decode(o, s, neg):
    # Strict decoding (RFC 8032 5.1.3) of the 32 bytes s into the point o, negated when neg
    # is 1 (verification wants -A): False for y >= p, no square root, or x == 0 with the
    # sign bit set. Public data only, so plain comparisons.
    y = o[1]
    _frombytes(y, s, 0)
    _reduce(y, 20, 8, 19)  # a reduced element is loose too
    sign = s[31] >> 7
    _tobytes(_CHK, 0, y)
    _CHK[31] |= sign << 7
    if _CHK != s:
        return False  # y was not canonical
    _mul(_TB, y, y)
    _addk(_TC, _TB, _FE1, -1)         # u = y^2 - 1
    _mul(_TD, _TB, _DC); _addk(_TD, _TD, _FE1, 1)  # v = d y^2 + 1
    # x = u v^3 (u v^7)^((p-5)/8)
    _mul(_TE, _TD, _TD); _mul(_TE, _TE, _TD)         # v^3
    _mul(_TF, _TE, _TE); _mul(_TF, _TF, _TD)         # v^7
    _mul(_TF, _TF, _TC)                        # u v^7
    _pow_2_250_1(_TF, _TG)                     # _I0 = (u v^7)^(2^250 - 1)
    _sqn(_I0, _I0, 2)
    _mul(_TF, _I0, _TF)                        # ^(2^252 - 3)
    _mul(_TF, _TF, _TE); _mul(o[0], _TF, _TC)  # x
    # check v x^2 == u, or == -u (then x *= sqrt(-1))
    _mul(_TG, o[0], o[0]); _mul(_TG, _TG, _TD)
    _addk(_TH, _TG, _TC, -1)
    if not _is_zero(_TH):
        _addk(_TH, _TG, _TC, 1)
        if not _is_zero(_TH):
            return False
        _mul(o[0], o[0], _SQRTM1)
    if _is_zero(o[0]) and sign:  # reduces x: its parity is bit 0 of byte 0
        return False
    if o[0][0] & 1 != sign ^ neg:
        _addk(o[0], _FE0, o[0], -1)
    _copy(o[2], _FE1)
    _mul(o[3], o[0], y)
    return True


# Fixed-base comb (Lim-Lee, 4 teeth 64 bits apart) without a table of the teeth's sums: _BT[t]
# = [2**(64 t)]B (4 points, 1.3 KB, built at import; a 16-entry table of the sums would be
# 5 KB resident). [k]B = sum over i of [2**i] (sum over t of bit i + 64 t of k times _BT[t]):
# 63 doublings and 256 complete additions for a 256-bit k.
_BT = (_pt(), _pt(), _pt(), _pt())


def _comb(o, k):
    # o = [k]B for the secret 32-byte little-endian k: every step adds each tooth and keeps or
    # drops the sum by cswap, so neither branches nor addresses depend on the bits of k.
    _p_zero(o)
    for i in range(63, -1, -1):
        if i != 63:  # public loop position, not a secret
            _p_dbl(o, o)
        for t in range(4):
            j = i + 64 * t
            _p_add(_P, o, _BT[t])
            b = (k[j >> 3] >> (j & 7)) & 1
            for c in range(4):
                _cswap(o[c], _P[c], b)


def _hash_mod_l(*parts):
    # SHA-512 of the concatenated parts, as an int modulo L.
    _sinit()
    for part in parts:
        _supdate(part, 0, len(part))
    _sfinal(_DIG, 0)
    return int.from_bytes(_DIG, "little") % _L


_NOMSG = bytearray(0)  # the "message" of a public key request (an object no caller has)


def _ed_sign(seed, msg):
    # RFC 8032 5.1.5 / 5.1.6: the 64-byte signature of msg, or the 32-byte public key when
    # msg is _NOMSG: both start from h = SHA-512(seed) (clamped scalar a, prefix) and A = [a]B.
    _sinit()
    _supdate(seed, 0, 32)
    h = _H
    _sfinal(h, 0)
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
    _wipe(_SCRATCH)
    return bytes(out)


def _ed_verify(pub, msg, sig):
    # [S]B == R + [k]A, checked as encode([S]B - [k]A) == R (cofactorless, RFC 8032 5.1.7).
    s = int.from_bytes(sig[32:64], "little")
    if s >= _L:
        return False
    if not _decode(_R, pub, 1):  # -A
        return False
    k = _hash_mod_l(memoryview(sig)[0:32], pub, msg).to_bytes(32, "little")
    # [S]B + [k](-A) in one double-and-add over both scalars (Straus; both < L < 2**253):
    # public data, so it branches on their bits and needs no table.
    _p_zero(_Q)
    for i in range(252, -1, -1):
        _p_dbl(_Q, _Q)
        if (sig[32 + (i >> 3)] >> (i & 7)) & 1:
            _p_add(_Q, _Q, _BT[0])
        if (k[i >> 3] >> (i & 7)) & 1:
            _p_add(_Q, _Q, _R)
    _encode(_ENC, _Q)
    return _ENC == bytes(sig[0:32])


def _init_constants_ed():
    # d, 2d and sqrt(-1) from their definitions (RFC 8032 5.1, 5.1.3), then the base point B:
    # y = 4/5 with x even. Checked against the RFC's values by the Ed25519 test vectors.
    _addk(_DC, _FE0, _FE1, 121666)
    _invert(_DC, _DC)
    _addk(_DC, _FE0, _DC, 121665)
    _addk(_DC, _FE0, _DC, -1)
    _addk(_D2, _DC, _DC, 1)
    _addk(_SQRTM1, _FE0, _FE1, 2)
    _pow_2_250_1(_SQRTM1, _TG)          # _I0 = 2 ** (2**250 - 1)
    _sqn(_I0, _I0, 3)                   # 2 ** (2**253 - 8)
    _addk(_SQRTM1, _FE0, _I0, 8)        # 2 ** (2**253 - 5) = 2 ** ((p - 1) / 4)
    _addk(_TA, _FE0, _FE1, 5)
    _invert(_TA, _TA)
    _addk(_TA, _FE0, _TA, 4)
    _reduce(_TA, 20, 8, 19)
    _tobytes(_ENC, 0, _TA)
    if not _decode(_BT[0], _ENC, 0):
        raise ImportError("ed25519 base point")
    for t in range(1, 4):
        for c in range(4):
            _copy(_BT[t][c], _BT[t - 1][c])
        for _ in range(64):
            _p_dbl(_BT[t], _BT[t])


_init_constants_ed()

# Scratch that holds secrets or values derived from them after an X25519 or a signature, wiped
# by _ladder and _ed_sign before they return (the AEAD wipes its own, _SECRETS below): the
# SHA-512 state, schedule and block (the seed, h, the nonce r), the ladder's elements and
# clamped scalar, inversion and point temporaries, the comb's last candidate sum (_P), the
# product scratch. Not wiped: the public results (_Q: A or R, _ENC, _CHK, _R: -A of
# verification), Python ints holding the scalars mod L (immutable, freed by the
# collector), and on ARM the product scratch that the Thumb field code keeps on the C stack.
_SCRATCH = _fld.SCRATCH + (_SH, _SV, _SW, _SBUF, _DIG, _H, _XK, _X1, _X2, _Z2, _X3, _Z3, _A,
                           _AA, _B, _E, _I0, _I1, _I2, _I3) + _P


# ==================== AEAD
# ChaCha20-Poly1305 (RFC 8439) in MicroPython viper: no heap allocation per call.
#
# Written for size (an .mpy that fits small boards) with loops instead of unrolled rounds; on
# the unix port it still runs at tens of MB/s.
#
# Word-size rules (the same code must give the same bytes on the 64-bit unix port, where a viper
# `uint` is 64 bits, and on 32-bit boards, where it is 32 bits):
# * ChaCha20: every add and every left shift is masked with M = 0xFFFFFFFF before the value is
#   shifted right or stored, so the 64-bit port never sees bits above 31; on a 32-bit board the
#   mask is a no-op and the hardware wraps the same way. M is built as (0xFFFF << 16) | 0xFFFF
#   at run time, because 0xFFFFFFFF is not a small int on a 32-bit board.
# * Poly1305: limbs are 13 bits (10 limbs = 130 bits, so 2**130 = 5 folds in exactly). Before a
#   multiplication every limb of h+m is <= 8196 (limb 0; the others <= 8191) and every limb of r
#   is <= 8191 (5r <= 40955), so one column sum is at most 8196*8191 + 9*8191*40955 plus a
#   carry < 2**19, under 3.1e9 < 2**32: products and their sums never exceed 32 bits, no masking
#   is needed, and they are `uint` so bit 31 is never a sign.
# * Byte <-> limb conversions keep an accumulator below 2**21.
# * The finish shares the field code: _limbs (bytes -> 13-bit limbs), _reduce (here modulo
#   2**130 - 5), _addk with k = 1 (h + s as plain integers: the carry never reaches the top
#   limb of an 80-byte element, so nothing folds) and _tobytes.

# Quarter-round word indices (RFC 8439 2.3): four column rounds, then four diagonal rounds;
# then the four rotation amounts.
_QR = bytes((0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
             0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14, 16, 12, 8, 7))
_SIGMA = b"expand 32-byte k"
_ZEROS = bytes(80)
# ChaCha20 state: 16 little-endian words (constants, key, counter, nonce); keystream block
# (also the scratch for the length block and the tag, once the keystream is not needed).
# All the AEAD's key material (these six) is one bytearray, so that _chacha_poly wipes it in
# one call; _AE is a memoryview of it and each name a window (viper reads a memoryview through
# its buffer like a bytearray; every window starts at a multiple of 16: words stay aligned).
_AE = memoryview(bytearray(448))
_ST = _AE[0:64]
_KS = _AE[64:128]
# Poly1305, as 13-bit limbs in 32-bit words: 5*r (10 limbs) then r (10 limbs), so the factor
# of a[j] in column i is _PR[10 + i - j] (see _poly); accumulator h; s; a scratch. h, s and the
# scratch are field-sized (20 limbs, the top 10 zero) for the shared _addk/_tobytes.
_PR = _AE[128:208]
_PH = _AE[208:288]
_PS = _AE[288:368]
_PA = _AE[368:448]


@micropython.viper
def _xor(src: ptr8, soff: int, dst: ptr8, doff: int, n: int):
    # dst[doff:doff+n] = src[soff:soff+n] ^ ChaCha20 keystream, from the counter in _ST. Each
    # 64 bytes take one block (RFC 8439 2.3) into _KS: 20 rounds of _ST, plus _ST; counter += 1.
    # The rounds are one quarter-round body walking _QR: 10 double rounds of 8 quarter rounds,
    # each four steps "a += b; d ^= a; d <<<= n" with the roles (a, b, c, d) -> (c, d, a, b)
    # swapped after every step (so the second step is c += d; b ^= c; b <<<= 12, and so on).
    # dst may be _KS itself (the Poly1305 key: the keystream of zeros).
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    q = ptr8(_QR)
    st = ptr32(_ST)
    x = ptr32(_KS)
    ks = ptr8(x)  # the same buffer, bytewise (a cast: no second global look-up)
    i = 0
    while i < n:
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
        # ptr32 stores keep the low 32 bits, which is the add modulo 2**32 the spec asks for.
        for w in range(16):
            x[w] = uint(x[w]) + uint(st[w])
        # The caller never sends 2**32 blocks under one nonce (records are <= 16 KiB).
        st[12] = st[12] + 1
        j = 0
        while j < 64 and i < n:
            dst[doff + i] = src[soff + i] ^ ks[j]
            i += 1
            j += 1


@micropython.viper
def _poly(src, soff: int, n: int):
    # Absorb n bytes of src into h, the last partial block zero-padded to 16 bytes (the AEAD
    # padding of RFC 8439 2.8); every block gets the 2**128 bit (bit 11 of limb 9).
    w = ptr32(_PR)
    h = ptr32(_PH)
    a = ptr32(_PA)
    pos = 0
    while pos < n:
        cnt = n - pos
        if cnt > 16:
            cnt = 16
        _limbs(_PA, src, soff + pos, cnt, 0, 10)  # zeros after cnt bytes
        pos += 16
        # a = h + m, carried to limbs <= 8191 (limb 0 <= 8196: 2**130 = 5 mod p).
        c = uint(0)
        for i in range(10):
            v = uint(a[i]) + uint(h[i]) + c
            if i == 9:
                v += 2048
            a[i] = v & 0x1FFF
            c = v >> 13
        a[0] = uint(a[0]) + c * 5
        # h = a * r mod 2**130 - 5: column i is sum_j a[j] * _PR[10 + i - j] (5r where j > i),
        # each < 3.1e9 (see the header), carried as it goes; limbs 1..9 end at 13 bits and
        # limb 0 below 2**22 (it absorbs 5 * the top carry, < 2**19).
        c = uint(0)
        for i in range(10):
            v = c
            for j in range(10):
                v += uint(a[j]) * uint(w[10 + i - j])
            h[i] = v & 0x1FFF
            c = v >> 13
        h[0] = uint(h[0]) + c * 5


def _zero(buf, n):
    _bcopy(buf, 0, _ZEROS, 0, n, 0)


# What _chacha_poly wipes after use: _AE, all of the key material (state, keystream, r, s, h,
# scratch); a module-level tuple, so nothing is allocated.
_SECRETS = (_AE,)


def _chacha_poly(tag_in, key, nonce, src, soff, n, dst, doff, aad):
    # Seal (tag_in = 0: ciphertext and then the tag into dst) or open (tag_in = 16: the tag
    # follows the ciphertext in src; plaintext is written only when it matches). Returns True
    # for a seal or a matching tag. Arguments are checked by the caller (records and AAD are
    # < 2**30 bytes). Python small ints only: no allocation.
    # State = "expand 32-byte k" | key | counter 0 | nonce (RFC 8439 2.3).
    _bcopy(_ST, 0, _SIGMA, 0, 16, 0)
    _bcopy(_ST, 16, key, 0, 32, 0)
    _bcopy(_ST, 48, _ZEROS, 0, 4, 0)
    _bcopy(_ST, 52, nonce, 0, 12, 0)
    k = _KS
    _xor(_ZEROS, 0, k, 0, 64)  # block 0 (the keystream itself): the one-time Poly1305 key
    # r (clamped, RFC 8439 2.5) and s as limbs; h = 0. _PR = 5r then r (see _poly); 5 * a
    # 13-bit limb < 2**16, so two bytes per word.
    for i in (3, 7, 11, 15):
        k[i] &= 15
    for i in (4, 8, 12):
        k[i] &= 252
    _limbs(_PA, k, 0, 16, 0, 10)
    _limbs(_PS, k, 16, 16, 0, 20)
    _zero(_PR, 40)
    _bcopy(_PR, 40, _PA, 0, 40, 0)
    for i in range(0, 40, 4):
        v = 5 * (_PA[i] | (_PA[i + 1] << 8))
        _PR[i] = v & 255
        _PR[i + 1] = v >> 8
    _zero(_PH, 80)
    alen = len(aad)
    _poly(aad, 0, alen)
    if tag_in:  # which call this is, public
        t = src
        off = soff
    else:
        _xor(src, soff, dst, doff, n)  # counter 1.. -> ciphertext
        t = dst
        off = doff
    _poly(t, off, n)
    # The last block: le64(aad length) | le64(ciphertext length), both < 2**30.
    for i in range(4):
        k[i] = (alen >> (8 * i)) & 255
        k[i + 4] = 0
        k[i + 8] = (n >> (8 * i)) & 255
        k[i + 12] = 0
    _poly(k, 0, 16)
    # tag = (h mod 2**130 - 5) + s mod 2**128, little-endian, into _KS[0:16]; written after
    # the ciphertext (seal), or compared with the received one without an early exit.
    _reduce(_PH, 10, 13, 5)
    _addk(_PA, _PH, _PS, 1)  # < 2**131: bits above 128 are dropped by taking 16 bytes
    _tobytes(k, 0, _PA)
    off += n
    d = 0
    if tag_in:
        for i in range(16):
            d |= t[off + i] ^ k[i]
        if d == 0:
            _xor(src, soff, dst, doff, n)
    else:
        _bcopy(t, off, k, 0, 16, 0)
    _wipe(_SECRETS)
    return d == 0


# ==================== backend: argument checks, the interface of docs/design.md

def _len(buf, n, what):
    # len() of a bytes-like buf, which must be n when n >= 0; else CryptoError. str is refused
    # explicitly: MicroPython lets viper read a str through its buffer protocol. Allocates
    # nothing on success.
    try:
        if not isinstance(buf, str):
            k = len(buf)
            if n < 0 or k == n:
                return k
    except TypeError:
        pass
    raise CryptoError("%s: not a buffer of the right length" % what)


def _aead(tag_in, key, nonce, src, soff, n, dst, doff, aad):
    # Both AEAD directions: tag_in = 16 for open (the tag follows the ciphertext in src), 0 for
    # seal (it follows in dst). The same refusals as the pure backend: int offsets and length,
    # in range, buffers (not str), dst writable. Allocates nothing unless it raises.
    _len(key, 32, "key")
    _len(nonce, 12, "nonce")
    _len(aad, -1, "aad")
    try:
        if not (isinstance(soff, int) and isinstance(doff, int) and isinstance(n, int)) \
                or soff < 0 or doff < 0 or n < 0 or isinstance(src, str) \
                or soff + n + tag_in > len(src) or doff + n + 16 - tag_in > len(dst):
            raise CryptoError("AEAD offsets, length or buffers out of range")
        if n + 16 - tag_in:
            # A read-only dst (bytes, memoryview of bytes) fails here, before anything is
            # written; storing the byte back leaves dst unchanged.
            dst[doff] = dst[doff]
        return _chacha_poly(tag_in, key, nonce, src, soff, n, dst, doff, aad)
    except (TypeError, ValueError):
        raise CryptoError("AEAD buffer not usable")


def _call(f, a, na, b, nb, what):
    # f(a, b) once a and b have lengths na and nb (-1: any; str refused), else CryptoError;
    # a non-buffer with a length (a list) makes viper's ptr8 raise TypeError inside f, which
    # becomes CryptoError too.
    _len(a, na, what)
    _len(b, nb, what)
    try:
        return f(a, b)
    except TypeError:
        raise CryptoError(what + ": not a buffer")


class Backend:
    """Viper-accelerated X25519, ChaCha20-Poly1305, Ed25519 and SHA-512 (interface:
    docs/design.md)."""

    name = "viper"

    def x25519(self, scalar, point):
        """RFC 7748 X25519 (scalar clamped, top bit of u masked). Raises CryptoError for wrong
        lengths or an all-zero result (a low-order peer point)."""
        out, zero = _call(_ladder, scalar, 32, point, 32, "X25519")
        if zero:
            raise CryptoError("X25519 result is all zero")
        return bytes(out)

    def x25519_base(self, scalar):
        """X25519 public key of a 32-byte secret. Raises CryptoError for a wrong length."""
        return bytes(_call(_ladder, scalar, 32, _U9, 32, "X25519")[0])

    def aead_seal(self, key, nonce, src, soff, n, dst, doff, aad=b""):
        """ChaCha20-Poly1305: n bytes of src[soff:] -> ciphertext + 16-byte tag at dst[doff:].
        `aad` (default empty, as the protocol uses it) exists for the Wycheproof vectors.
        Raises CryptoError for a key not 32 / nonce not 12 bytes, short or read-only buffers.
        Allocates nothing."""
        _aead(0, key, nonce, src, soff, n, dst, doff, aad)

    def aead_open(self, key, nonce, src, soff, n, dst, doff, aad=b""):
        """Check the tag at src[soff+n:soff+n+16] (constant time) before writing anything, then
        write the n plaintext bytes at dst[doff:]. Raises AuthenticationFailed (dst untouched)
        or CryptoError (lengths, buffers). Allocates nothing unless it raises."""
        if not _aead(16, key, nonce, src, soff, n, dst, doff, aad):
            raise AuthenticationFailed("AEAD tag mismatch")

    def ed25519_public(self, seed):
        """RFC 8032 public key of a 32-byte seed. Raises CryptoError for a wrong length."""
        return _call(_ed_sign, seed, 32, _NOMSG, 0, "Ed25519")

    def ed25519_sign(self, seed, msg):
        """64-byte RFC 8032 signature. Raises CryptoError for a wrong seed length or a
        seed or message that is not a buffer."""
        return _call(_ed_sign, seed, 32, msg, -1, "Ed25519")

    def ed25519_verify(self, public, msg, sig):
        """Strict RFC 8032 verification (cofactorless): False for S >= L, a non-canonical or
        undecodable public key, a non-canonical R, wrong lengths or non-buffers. Never raises."""
        try:
            return _len(public, 32, "") + _len(sig, 64, "") + _len(msg, -1, "") > 0 and \
                _ed_verify(public, msg, sig)
        except Exception:
            # Not a buffer (e.g. None, an int), a wrong length: not a valid signature either.
            return False

    def sha512(self, data):
        """SHA-512 digest (64 bytes) of a bytes-like object."""
        return sha512(data)
