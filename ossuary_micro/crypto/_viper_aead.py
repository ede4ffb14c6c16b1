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
#
# Importing this module raises on interpreters without the viper emitter (CPython: ImportError
# for `micropython`; the WebAssembly port: a compile error the registry catches).
#
# Not re-entrant: the state lives in module-level buffers (one caller at a time; the library
# is single-threaded).

import micropython  # ImportError on CPython: the registry then skips this backend

from ._viper_sha512 import _copy
# Shared with the field code: bytes -> 13-bit limbs; the full reduction (here modulo
# 2**130 - 5); a + b as plain integers (the carry never reaches the top limb of an 80-byte
# element, so nothing folds); limbs -> 32 little-endian bytes.
from ._viper_fe import _limbs, _reduce, _addk, _tobytes

# Quarter-round word indices (RFC 8439 2.3): four column rounds, then four diagonal rounds;
# then the four rotation amounts.
_QR = bytes((0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
             0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14, 16, 12, 8, 7))
_SIGMA = b"expand 32-byte k"
_ZEROS = bytes(80)
# ChaCha20 state: 16 little-endian words (constants, key, counter, nonce); keystream block
# (also the scratch for the length block and the tag, once the keystream is not needed).
_ST = bytearray(64)
_KS = bytearray(64)
# Poly1305, as 13-bit limbs in 32-bit words: 5*r (10 limbs) then r (10 limbs), so the factor
# of a[j] in column i is _R[10 + i - j] (see _poly); accumulator h; s; a scratch. h, s and the
# scratch are field-sized (20 limbs, the top 10 zero) for the shared _addk/_tobytes.
_R = bytearray(80)
_H = bytearray(80)
_S = bytearray(80)
_A = bytearray(80)


@micropython.viper
def _block(st: ptr32, x: ptr32):
    # One ChaCha20 block (RFC 8439 2.3): x = 20 rounds of st, plus st. Then counter += 1.
    # The rounds are one quarter-round body walking _QR: 10 double rounds of 8 quarter rounds,
    # each four steps "a += b; d ^= a; d <<<= n" with the roles (a, b, c, d) -> (c, d, a, b)
    # swapped after every step (so the second step is c += d; b ^= c; b <<<= 12, and so on).
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    q = ptr8(_QR)
    for i in range(16):
        x[i] = st[i]
    for r in range(80):
        j = (r & 7) << 2
        ia = q[j]
        ib = q[j + 1]
        ic = q[j + 2]
        id = q[j + 3]
        a = uint(x[ia]); b = uint(x[ib]); c = uint(x[ic]); d = uint(x[id])
        for k in range(32, 36):
            n = q[k]
            a = (a + b) & m
            d ^= a
            d = ((d << n) & m) | (d >> (32 - n))
            t = a; a = c; c = t
            t = b; b = d; d = t
        x[ia] = a; x[ib] = b; x[ic] = c; x[id] = d
    # ptr32 stores keep the low 32 bits, which is the add modulo 2**32 the spec asks for.
    for i in range(16):
        x[i] = uint(x[i]) + uint(st[i])
    # The caller never sends 2**32 blocks under one nonce (records are <= 16 KiB).
    st[12] = st[12] + 1


@micropython.viper
def _xor(src: ptr8, soff: int, dst: ptr8, doff: int, n: int):
    # dst[doff:doff+n] = src[soff:soff+n] ^ ChaCha20 keystream, starting at the counter in _ST.
    k = ptr8(_KS)
    i = 0
    while i < n:
        _block(_ST, _KS)
        j = 0
        while j < 64 and i < n:
            dst[doff + i] = src[soff + i] ^ k[j]
            i += 1
            j += 1


@micropython.viper
def _poly(src, soff: int, n: int):
    # Absorb n bytes of src into h, the last partial block zero-padded to 16 bytes (the AEAD
    # padding of RFC 8439 2.8); every block gets the 2**128 bit (bit 11 of limb 9).
    w = ptr32(_R)
    h = ptr32(_H)
    a = ptr32(_A)
    pos = 0
    while pos < n:
        cnt = n - pos
        if cnt > 16:
            cnt = 16
        _limbs(_A, src, soff + pos, cnt, 0, 10)  # zeros after cnt bytes
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
        # h = a * r mod 2**130 - 5: column i is sum_j a[j] * _R[10 + i - j] (5r where j > i),
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


def _finish(out, off, check):
    # tag = (h mod 2**130 - 5) + s mod 2**128, little-endian, into _KS[0:16]. check == 0:
    # write it at out[off:off+16] (returns 0). check == 1: compare it with out[off:off+16]
    # instead, without an early exit (constant time), returning 0 only when all 16 bytes are
    # equal. Python small ints only: no allocation.
    _reduce(_H, 10, 13, 5)
    _addk(_A, _H, _S, 1)  # < 2**131: bits above 128 are dropped by taking 16 bytes
    t = _KS
    _tobytes(t, 0, _A)
    d = 0
    if check:  # public flag: which call this is, not a secret
        for i in range(16):
            d |= out[off + i] ^ t[i]
    else:
        _copy(out, off, t, 0, 16)
    return d


def _zero(buf, n):
    _copy(buf, 0, _ZEROS, 0, n)


def _poly_key():
    # r (clamped, RFC 8439 2.5) and s from the first 32 keystream bytes, as limbs; h = 0.
    # _R = 5r then r (see _poly); 5 * a 13-bit limb < 2**16, so two bytes per word.
    k = _KS
    for i in (3, 7, 11, 15):
        k[i] &= 15
    for i in (4, 8, 12):
        k[i] &= 252
    _limbs(_A, k, 0, 16, 0, 10)
    _limbs(_S, k, 16, 16, 0, 20)
    _zero(_R, 40)
    _copy(_R, 40, _A, 0, 40)
    for i in range(0, 40, 4):
        v = 5 * (_A[i] | (_A[i + 1] << 8))
        _R[i] = v & 255
        _R[i + 1] = v >> 8
    _zero(_H, 80)


def _start(key, nonce, aad):
    # State = "expand 32-byte k" | key | counter 0 | nonce (RFC 8439 2.3). Block 0 gives the
    # one-time Poly1305 key; then absorb the AAD.
    _copy(_ST, 0, _SIGMA, 0, 16)
    _copy(_ST, 16, key, 0, 32)
    _copy(_ST, 48, _ZEROS, 0, 4)
    _copy(_ST, 52, nonce, 0, 12)
    _block(_ST, _KS)
    _poly_key()
    _poly(aad, 0, len(aad))


def _lengths(alen, n):
    # The last Poly1305 block: le64(aad length) | le64(ciphertext length), both < 2**30.
    b = _KS
    for i in range(4):
        b[i] = (alen >> (8 * i)) & 255
        b[i + 4] = 0
        b[i + 8] = (n >> (8 * i)) & 255
        b[i + 12] = 0
    _poly(b, 0, 16)


def _wipe():
    # Clear key material (state, keystream, r, s, h, scratch) from the module buffers.
    _zero(_ST, 64)
    _zero(_KS, 64)
    _zero(_R, 80)
    _zero(_H, 80)
    _zero(_S, 80)
    _zero(_A, 80)


def seal(key, nonce, src, soff, n, dst, doff, aad):
    """Encrypt n bytes of src at soff into dst at doff, then the 16-byte tag. Lengths are
    checked by the caller (records and AAD are < 2**30 bytes)."""
    _start(key, nonce, aad)
    _xor(src, soff, dst, doff, n)  # counter 1.. -> ciphertext
    _poly(dst, doff, n)
    _lengths(len(aad), n)
    _finish(dst, doff + n, 0)
    _wipe()


def open_(key, nonce, src, soff, n, dst, doff, aad):
    """Check the tag at src[soff+n:] and only then decrypt into dst. Returns False (dst
    untouched) when the tag does not match."""
    _start(key, nonce, aad)
    _poly(src, soff, n)
    _lengths(len(aad), n)
    ok = _finish(src, soff + n, 1) == 0
    if ok:
        _xor(src, soff, dst, doff, n)
    _wipe()
    return ok
