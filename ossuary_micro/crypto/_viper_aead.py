# ChaCha20-Poly1305 (RFC 8439) in MicroPython viper: no heap allocation per call.
#
# Word-size rules (the same code must give the same bytes on the 64-bit unix port, where a viper
# `uint` is 64 bits, and on 32-bit boards, where it is 32 bits):
# * ChaCha20: every add and every left shift is masked with M = 0xFFFFFFFF before the value is
#   shifted right or stored, so the 64-bit port never sees bits above 31; on a 32-bit board the
#   mask is a no-op and the hardware wraps the same way.
# * Poly1305: limbs are 13 bits (10 limbs = 130 bits, so 2**130 = 5 folds in exactly). Before a
#   multiplication every limb of h+m is <= 8196 and every limb of r is <= 8191 (5r <= 40955), so
#   one column sum is at most 8196*8191 + 9*8191*40955 < 3.1e9 < 2**32: products and their sums
#   never exceed 32 bits, no masking needed, and they are `uint` so bit 31 is never a sign.
# * M is built as (0xFFFF << 16) | 0xFFFF at run time rather than written as a literal, because
#   0xFFFFFFFF is not a small int on a 32-bit board.
#
# Importing this module raises on interpreters without the viper emitter (CPython: ImportError
# for `micropython`; the WebAssembly port: a compile error the registry catches).
#
# Not re-entrant: the state lives in module-level buffers (one caller at a time; the library
# is single-threaded).

import micropython  # ImportError on CPython: the registry then skips this backend

# ChaCha20 state: 16 little-endian words (constants, key, counter, nonce); keystream block.
_ST = bytearray(64)
_KS = bytearray(64)
# Poly1305: r as 10 limbs then 5*r as 10 limbs; accumulator h (10 limbs); s as 10 limbs;
# one padded block buffer; the computed tag.
_R = bytearray(80)
_H = bytearray(40)
_S = bytearray(40)
_BLK = bytearray(16)
_TAG = bytearray(16)


@micropython.viper
def _setup(st, key, nonce):
    # State = "expand 32-byte k" | key | counter 0 | nonce (RFC 8439 2.3).
    s = ptr8(st)
    k = ptr8(key)
    n = ptr8(nonce)
    c = ptr8(b"expand 32-byte k")
    for i in range(16):
        s[i] = c[i]
    for i in range(32):
        s[16 + i] = k[i]
    for i in range(4):
        s[48 + i] = 0
    for i in range(12):
        s[52 + i] = n[i]


@micropython.viper
def _block(st, out):
    # One ChaCha20 block (RFC 8439 2.3): out = 20 rounds of st, plus st. Then counter += 1.
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    s = ptr32(st)
    o = ptr32(out)
    x0 = uint(s[0]); x1 = uint(s[1]); x2 = uint(s[2]); x3 = uint(s[3])
    x4 = uint(s[4]); x5 = uint(s[5]); x6 = uint(s[6]); x7 = uint(s[7])
    x8 = uint(s[8]); x9 = uint(s[9]); x10 = uint(s[10]); x11 = uint(s[11])
    x12 = uint(s[12]); x13 = uint(s[13]); x14 = uint(s[14]); x15 = uint(s[15])
    for i in range(10):
        # column round: QR(0,4,8,12) QR(1,5,9,13) QR(2,6,10,14) QR(3,7,11,15)
        x0 = (x0 + x4) & m; x12 ^= x0; x12 = ((x12 << 16) & m) | (x12 >> 16)
        x8 = (x8 + x12) & m; x4 ^= x8; x4 = ((x4 << 12) & m) | (x4 >> 20)
        x0 = (x0 + x4) & m; x12 ^= x0; x12 = ((x12 << 8) & m) | (x12 >> 24)
        x8 = (x8 + x12) & m; x4 ^= x8; x4 = ((x4 << 7) & m) | (x4 >> 25)
        x1 = (x1 + x5) & m; x13 ^= x1; x13 = ((x13 << 16) & m) | (x13 >> 16)
        x9 = (x9 + x13) & m; x5 ^= x9; x5 = ((x5 << 12) & m) | (x5 >> 20)
        x1 = (x1 + x5) & m; x13 ^= x1; x13 = ((x13 << 8) & m) | (x13 >> 24)
        x9 = (x9 + x13) & m; x5 ^= x9; x5 = ((x5 << 7) & m) | (x5 >> 25)
        x2 = (x2 + x6) & m; x14 ^= x2; x14 = ((x14 << 16) & m) | (x14 >> 16)
        x10 = (x10 + x14) & m; x6 ^= x10; x6 = ((x6 << 12) & m) | (x6 >> 20)
        x2 = (x2 + x6) & m; x14 ^= x2; x14 = ((x14 << 8) & m) | (x14 >> 24)
        x10 = (x10 + x14) & m; x6 ^= x10; x6 = ((x6 << 7) & m) | (x6 >> 25)
        x3 = (x3 + x7) & m; x15 ^= x3; x15 = ((x15 << 16) & m) | (x15 >> 16)
        x11 = (x11 + x15) & m; x7 ^= x11; x7 = ((x7 << 12) & m) | (x7 >> 20)
        x3 = (x3 + x7) & m; x15 ^= x3; x15 = ((x15 << 8) & m) | (x15 >> 24)
        x11 = (x11 + x15) & m; x7 ^= x11; x7 = ((x7 << 7) & m) | (x7 >> 25)
        # diagonal round: QR(0,5,10,15) QR(1,6,11,12) QR(2,7,8,13) QR(3,4,9,14)
        x0 = (x0 + x5) & m; x15 ^= x0; x15 = ((x15 << 16) & m) | (x15 >> 16)
        x10 = (x10 + x15) & m; x5 ^= x10; x5 = ((x5 << 12) & m) | (x5 >> 20)
        x0 = (x0 + x5) & m; x15 ^= x0; x15 = ((x15 << 8) & m) | (x15 >> 24)
        x10 = (x10 + x15) & m; x5 ^= x10; x5 = ((x5 << 7) & m) | (x5 >> 25)
        x1 = (x1 + x6) & m; x12 ^= x1; x12 = ((x12 << 16) & m) | (x12 >> 16)
        x11 = (x11 + x12) & m; x6 ^= x11; x6 = ((x6 << 12) & m) | (x6 >> 20)
        x1 = (x1 + x6) & m; x12 ^= x1; x12 = ((x12 << 8) & m) | (x12 >> 24)
        x11 = (x11 + x12) & m; x6 ^= x11; x6 = ((x6 << 7) & m) | (x6 >> 25)
        x2 = (x2 + x7) & m; x13 ^= x2; x13 = ((x13 << 16) & m) | (x13 >> 16)
        x8 = (x8 + x13) & m; x7 ^= x8; x7 = ((x7 << 12) & m) | (x7 >> 20)
        x2 = (x2 + x7) & m; x13 ^= x2; x13 = ((x13 << 8) & m) | (x13 >> 24)
        x8 = (x8 + x13) & m; x7 ^= x8; x7 = ((x7 << 7) & m) | (x7 >> 25)
        x3 = (x3 + x4) & m; x14 ^= x3; x14 = ((x14 << 16) & m) | (x14 >> 16)
        x9 = (x9 + x14) & m; x4 ^= x9; x4 = ((x4 << 12) & m) | (x4 >> 20)
        x3 = (x3 + x4) & m; x14 ^= x3; x14 = ((x14 << 8) & m) | (x14 >> 24)
        x9 = (x9 + x14) & m; x4 ^= x9; x4 = ((x4 << 7) & m) | (x4 >> 25)
    # ptr32 stores keep the low 32 bits, which is the add modulo 2**32 the spec asks for.
    o[0] = x0 + s[0]; o[1] = x1 + s[1]; o[2] = x2 + s[2]; o[3] = x3 + s[3]
    o[4] = x4 + s[4]; o[5] = x5 + s[5]; o[6] = x6 + s[6]; o[7] = x7 + s[7]
    o[8] = x8 + s[8]; o[9] = x9 + s[9]; o[10] = x10 + s[10]; o[11] = x11 + s[11]
    o[12] = x12 + s[12]; o[13] = x13 + s[13]; o[14] = x14 + s[14]; o[15] = x15 + s[15]
    # The caller never sends 2**32 blocks under one nonce (records are <= 16 KiB).
    s[12] = s[12] + 1


@micropython.viper
def _xor(ks, src, soff: int, dst, doff: int, n: int):
    # dst[doff:doff+n] = src[soff:soff+n] ^ ChaCha20 keystream, starting at the counter in _ST.
    k = ptr8(ks)
    s = ptr8(src)
    d = ptr8(dst)
    i = 0
    while i < n:
        _block(_ST, ks)
        j = 0
        while j < 64 and i < n:
            d[doff + i] = s[soff + i] ^ k[j]
            i += 1
            j += 1


@micropython.viper
def _poly_key(ks):
    # r (clamped, RFC 8439 2.5) and s from the first 32 keystream bytes, as 13-bit limbs; h = 0.
    k = ptr32(ks)
    r = ptr32(_R)
    sl = ptr32(_S)
    h = ptr32(_H)
    t0 = uint(k[0]) & 0x0FFFFFFF
    t1 = uint(k[1]) & 0x0FFFFFFC
    t2 = uint(k[2]) & 0x0FFFFFFC
    t3 = uint(k[3]) & 0x0FFFFFFC
    for w in range(2):
        if w == 1:
            t0 = uint(k[4]); t1 = uint(k[5]); t2 = uint(k[6]); t3 = uint(k[7])
            r = sl
        # 128 bits -> limbs of bits [13i, 13i+13); the shifted-in high bits are masked off.
        r[0] = t0 & 0x1FFF
        r[1] = (t0 >> 13) & 0x1FFF
        r[2] = ((t0 >> 26) | (t1 << 6)) & 0x1FFF
        r[3] = (t1 >> 7) & 0x1FFF
        r[4] = ((t1 >> 20) | (t2 << 12)) & 0x1FFF
        r[5] = (t2 >> 1) & 0x1FFF
        r[6] = (t2 >> 14) & 0x1FFF
        r[7] = ((t2 >> 27) | (t3 << 5)) & 0x1FFF
        r[8] = (t3 >> 8) & 0x1FFF
        r[9] = t3 >> 21
    r = ptr32(_R)
    for i in range(10):
        r[10 + i] = r[i] * 5
        h[i] = 0


@micropython.viper
def _poly(src, soff: int, n: int):
    # Absorb n bytes of src into h, the last partial block zero-padded to 16 bytes (the AEAD
    # padding of RFC 8439 2.8); every block gets the 2**128 bit.
    r = ptr32(_R)
    hp = ptr32(_H)
    src8 = ptr8(src)
    b = ptr8(_BLK)
    b32 = ptr32(_BLK)
    r0 = uint(r[0]); r1 = uint(r[1]); r2 = uint(r[2]); r3 = uint(r[3]); r4 = uint(r[4])
    r5 = uint(r[5]); r6 = uint(r[6]); r7 = uint(r[7]); r8 = uint(r[8]); r9 = uint(r[9])
    s1 = uint(r[11]); s2 = uint(r[12]); s3 = uint(r[13]); s4 = uint(r[14])
    s5 = uint(r[15]); s6 = uint(r[16]); s7 = uint(r[17]); s8 = uint(r[18]); s9 = uint(r[19])
    h0 = uint(hp[0]); h1 = uint(hp[1]); h2 = uint(hp[2]); h3 = uint(hp[3]); h4 = uint(hp[4])
    h5 = uint(hp[5]); h6 = uint(hp[6]); h7 = uint(hp[7]); h8 = uint(hp[8]); h9 = uint(hp[9])
    pos = 0
    while pos < n:
        # Copy the block (zero-padded) into _BLK so it can be read as aligned words.
        j = 0
        while j < 16:
            if pos + j < n:
                b[j] = src8[soff + pos + j]
            else:
                b[j] = 0
            j += 1
        pos += 16
        t0 = uint(b32[0]); t1 = uint(b32[1]); t2 = uint(b32[2]); t3 = uint(b32[3])
        # a = h + m, m as limbs plus 2**128 (bit 11 of limb 9).
        a0 = h0 + (t0 & 0x1FFF)
        a1 = h1 + ((t0 >> 13) & 0x1FFF)
        a2 = h2 + (((t0 >> 26) | (t1 << 6)) & 0x1FFF)
        a3 = h3 + ((t1 >> 7) & 0x1FFF)
        a4 = h4 + (((t1 >> 20) | (t2 << 12)) & 0x1FFF)
        a5 = h5 + ((t2 >> 1) & 0x1FFF)
        a6 = h6 + ((t2 >> 14) & 0x1FFF)
        a7 = h7 + (((t2 >> 27) | (t3 << 5)) & 0x1FFF)
        a8 = h8 + ((t3 >> 8) & 0x1FFF)
        a9 = h9 + ((t3 >> 21) & 0x7FF) + 0x800
        # Carry a to 13-bit limbs (2**130 = 5 mod p) so every limb is <= 8196 before multiplying.
        c = a0 >> 13; a0 &= 0x1FFF; a1 += c
        c = a1 >> 13; a1 &= 0x1FFF; a2 += c
        c = a2 >> 13; a2 &= 0x1FFF; a3 += c
        c = a3 >> 13; a3 &= 0x1FFF; a4 += c
        c = a4 >> 13; a4 &= 0x1FFF; a5 += c
        c = a5 >> 13; a5 &= 0x1FFF; a6 += c
        c = a6 >> 13; a6 &= 0x1FFF; a7 += c
        c = a7 >> 13; a7 &= 0x1FFF; a8 += c
        c = a8 >> 13; a8 &= 0x1FFF; a9 += c
        c = a9 >> 13; a9 &= 0x1FFF; a0 += c * 5
        # d = a * r mod 2**130 - 5: each column < 3.1e9 (see the header).
        d0 = a0 * r0 + a1 * s9 + a2 * s8 + a3 * s7 + a4 * s6 + a5 * s5 + a6 * s4 + a7 * s3 + a8 * s2 + a9 * s1
        d1 = a0 * r1 + a1 * r0 + a2 * s9 + a3 * s8 + a4 * s7 + a5 * s6 + a6 * s5 + a7 * s4 + a8 * s3 + a9 * s2
        d2 = a0 * r2 + a1 * r1 + a2 * r0 + a3 * s9 + a4 * s8 + a5 * s7 + a6 * s6 + a7 * s5 + a8 * s4 + a9 * s3
        d3 = a0 * r3 + a1 * r2 + a2 * r1 + a3 * r0 + a4 * s9 + a5 * s8 + a6 * s7 + a7 * s6 + a8 * s5 + a9 * s4
        d4 = a0 * r4 + a1 * r3 + a2 * r2 + a3 * r1 + a4 * r0 + a5 * s9 + a6 * s8 + a7 * s7 + a8 * s6 + a9 * s5
        d5 = a0 * r5 + a1 * r4 + a2 * r3 + a3 * r2 + a4 * r1 + a5 * r0 + a6 * s9 + a7 * s8 + a8 * s7 + a9 * s6
        d6 = a0 * r6 + a1 * r5 + a2 * r4 + a3 * r3 + a4 * r2 + a5 * r1 + a6 * r0 + a7 * s9 + a8 * s8 + a9 * s7
        d7 = a0 * r7 + a1 * r6 + a2 * r5 + a3 * r4 + a4 * r3 + a5 * r2 + a6 * r1 + a7 * r0 + a8 * s9 + a9 * s8
        d8 = a0 * r8 + a1 * r7 + a2 * r6 + a3 * r5 + a4 * r4 + a5 * r3 + a6 * r2 + a7 * r1 + a8 * r0 + a9 * s9
        d9 = a0 * r9 + a1 * r8 + a2 * r7 + a3 * r6 + a4 * r5 + a5 * r4 + a6 * r3 + a7 * r2 + a8 * r1 + a9 * r0
        # Carry: carries are < 2**19, so d + carry stays < 2**32; afterwards limbs 1..9 are
        # 13 bits and limb 0 is < 2**22 (it absorbs 5 * the top carry).
        c = d0 >> 13; h0 = d0 & 0x1FFF; d1 += c
        c = d1 >> 13; h1 = d1 & 0x1FFF; d2 += c
        c = d2 >> 13; h2 = d2 & 0x1FFF; d3 += c
        c = d3 >> 13; h3 = d3 & 0x1FFF; d4 += c
        c = d4 >> 13; h4 = d4 & 0x1FFF; d5 += c
        c = d5 >> 13; h5 = d5 & 0x1FFF; d6 += c
        c = d6 >> 13; h6 = d6 & 0x1FFF; d7 += c
        c = d7 >> 13; h7 = d7 & 0x1FFF; d8 += c
        c = d8 >> 13; h8 = d8 & 0x1FFF; d9 += c
        c = d9 >> 13; h9 = d9 & 0x1FFF; h0 += c * 5
    hp[0] = h0; hp[1] = h1; hp[2] = h2; hp[3] = h3; hp[4] = h4
    hp[5] = h5; hp[6] = h6; hp[7] = h7; hp[8] = h8; hp[9] = h9


@micropython.viper
def _len_block(alen: int, n: int):
    # The final Poly1305 block of the AEAD: le64(aad length) | le64(ciphertext length).
    b = ptr8(_BLK)
    for i in range(16):
        b[i] = 0
    b[0] = alen & 0xFF
    b[1] = (alen >> 8) & 0xFF
    b[2] = (alen >> 16) & 0xFF
    b[3] = (alen >> 24) & 0xFF
    b[8] = n & 0xFF
    b[9] = (n >> 8) & 0xFF
    b[10] = (n >> 16) & 0xFF
    b[11] = (n >> 24) & 0xFF


@micropython.viper
def _poly_finish(out, off: int):
    # tag = (h mod 2**130 - 5) + s mod 2**128, written little-endian at out[off:off+16].
    hp = ptr32(_H)
    sp = ptr32(_S)
    tg = ptr32(_TAG)
    o = ptr8(out)
    # Two full carry passes leave every limb < 2**13, i.e. h < 2**130.
    for k in range(2):
        c = uint(0)
        for i in range(10):
            v = uint(hp[i]) + c
            hp[i] = v & 0x1FFF
            c = v >> 13
        hp[0] = uint(hp[0]) + c * 5
    # g = h + 5; if g >= 2**130 then h - p = g - 2**130, selected without a branch.
    g = ptr32(_KS)  # scratch: the keystream block is no longer needed here
    c = uint(5)
    for i in range(10):
        v = uint(hp[i]) + c
        g[i] = v & 0x1FFF
        c = v >> 13
    mask = uint(0) - c  # all ones when g >= 2**130 (c == 1), else 0
    for i in range(10):
        hp[i] = (uint(hp[i]) & ~mask) | (uint(g[i]) & mask)
    # + s, carry, keep 128 bits.
    c = uint(0)
    for i in range(10):
        v = uint(hp[i]) + uint(sp[i]) + c
        hp[i] = v & 0x1FFF
        c = v >> 13
    h0 = uint(hp[0]); h1 = uint(hp[1]); h2 = uint(hp[2]); h3 = uint(hp[3]); h4 = uint(hp[4])
    h5 = uint(hp[5]); h6 = uint(hp[6]); h7 = uint(hp[7]); h8 = uint(hp[8]); h9 = uint(hp[9])
    # ptr32 stores drop bits above 31.
    tg[0] = h0 | (h1 << 13) | (h2 << 26)
    tg[1] = (h2 >> 6) | (h3 << 7) | (h4 << 20)
    tg[2] = (h4 >> 12) | (h5 << 1) | (h6 << 14) | (h7 << 27)
    tg[3] = (h7 >> 5) | (h8 << 8) | (h9 << 21)
    t = ptr8(_TAG)
    for i in range(16):
        o[off + i] = t[i]


@micropython.viper
def _tag_diff(src, off: int) -> int:
    # 0 iff src[off:off+16] equals the computed tag; no early exit (constant time).
    s = ptr8(src)
    t = ptr8(_TAG)
    d = 0
    for i in range(16):
        d |= s[off + i] ^ t[i]
    return d


@micropython.viper
def _zero(buf, n: int):
    p = ptr8(buf)
    for i in range(n):
        p[i] = 0


def _wipe():
    # Clear key material (state, keystream, r, s, h) from the module buffers after each call.
    _zero(_ST, 64)
    _zero(_KS, 64)
    _zero(_R, 80)
    _zero(_H, 40)
    _zero(_S, 40)
    _zero(_BLK, 16)


def seal(key, nonce, src, soff, n, dst, doff, aad):
    """Encrypt n bytes of src at soff into dst at doff, then the 16-byte tag. Lengths are
    checked by the caller (records and AAD are < 2**32 bytes)."""
    _setup(_ST, key, nonce)
    _block(_ST, _KS)  # counter 0 -> the one-time Poly1305 key
    _poly_key(_KS)
    _xor(_KS, src, soff, dst, doff, n)  # counter 1.. -> ciphertext
    alen = len(aad)
    _poly(aad, 0, alen)
    _poly(dst, doff, n)
    _len_block(alen, n)
    _poly(_BLK, 0, 16)
    _poly_finish(dst, doff + n)
    _wipe()


def open_(key, nonce, src, soff, n, dst, doff, aad):
    """Check the tag at src[soff+n:] and only then decrypt into dst. Returns False (dst
    untouched) when the tag does not match."""
    _setup(_ST, key, nonce)
    _block(_ST, _KS)
    _poly_key(_KS)
    alen = len(aad)
    _poly(aad, 0, alen)
    _poly(src, soff, n)
    _len_block(alen, n)
    _poly(_BLK, 0, 16)
    _poly_finish(_TAG, 0)
    if _tag_diff(src, soff + n) != 0:
        _wipe()
        return False
    _xor(_KS, src, soff, dst, doff, n)
    _wipe()
    return True
