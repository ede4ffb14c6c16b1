# Viper crypto backend: MicroPython native-code X25519, ChaCha20-Poly1305, Ed25519, SHA-512.
#
# Everything is accelerated with @micropython.viper: ChaCha20 and Poly1305 on buffers, field
# elements mod 2**255 - 19 as 20 limbs of 13 bits in preallocated arrays, SHA-512 on 32-bit
# halves. Every intermediate is kept within 32 bits (argued at the head of each section below),
# so a 32-bit board and the 64-bit unix port compute the same bytes.
#
# Two modules, written for a small .mpy (armv6m: the flash and RAM of small boards). This one:
# field, X25519, AEAD, and the Backend class with the argument checks. Ed25519 and SHA-512 are
# in _viper_ed.py, imported by the Backend on first use: protocol 2 needs them only once, to
# turn the node's seed into its keys at boot, and a node then drops the module
# (port/common/node.py), ~8 KB of heap on a 32-bit board.
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
# scratch buffers after every AEAD call, X25519 and signature (_AE, _SCRATCH).
#
# Not re-entrant (module-level scratch buffers): one caller at a time, like the library itself.

import micropython  # ImportError on CPython: the registry then skips this backend
from micropython import const

from ..errors import AuthenticationFailed, CryptoError



# ==================== buffer helpers (shared with _viper_ed.py)

# copy_into(dst, doff, src, soff, n): the package's viper byte copy (ossuary_micro/
# _viper_copy.py, which the connection loads anyway): one viper function on a board's heap
# for both. Forward, one byte at a time; n < 0 copies -n bytes turning big-endian 32-bit words
# into native little-endian ones (SHA-512's block load, _viper_ed.py).
from .._viper_copy import copy_into

# Wiping the secret-bearing scratch after use (_ladder, and _viper_ed.py's _ed_sign), for
# each buffer b of a tuple: b[0] = 0, then copy_into of b onto itself one byte up, which
# carries that zero to the end (it copies forward, byte by byte). Nothing allocated, and no
# viper loop (nor function) of its own in the .mpy.

# ==================== field
# Arithmetic modulo p = 2**255 - 19 in MicroPython viper, on preallocated limb arrays.
#
# A field element is a bytearray(80): 20 limbs of 13 bits (260 bits), read as ptr32.
# Why 13 bits: a limb product is 26 bits, and one column of a 20x20 schoolbook product is at
# most 20 * 9216**2 + carry < 1.8e9 < 2**31, so every intermediate fits a 32-bit word (and
# even a signed one) on boards, and the 64-bit unix port computes exactly the same numbers
# without masking.
#
# Invariant ("loose" form): every limb <= 8799 after any operation here, value < 2**261. The
# carry at the end of addk (_viper_field.py; the Thumb code does the same) restores it from
# limbs up to ~2**30: pass 1 leaves limbs 1..19 at 13 bits and folds the carry out of limb 19
# (weight 2**260 = 32*19 = 608 mod p) into limb 0; pass 2 spreads limb 0 again, and any carry
# reaching the top is at most 1, so limb 0 ends <= 8191 + 608. Inputs to _mul must be loose
# (<= 14654 would still fit; loose gives the margin).
#
# Only fixed-length loops, no branches on limb values: timing does not depend on the data
# (the viper code has no data-dependent branches; the Python callers choose no paths by secrets).

_FE0 = bytearray(80)  # the constants 0 and 1 (read-only by convention; _FE0 is also the
_FE1 = bytearray(80)  # AEAD's source of zero bytes)
_FE1[0] = 1

# The hot functions: product, o = a + k*b (with a 64p bias for subtraction), conditional
# swap; the full reduction (_reduce: modulo p, and modulo 2**130 - 5 for Poly1305); bytes <->
# limbs (_limbs); and the AEAD's Poly1305 block (_pblock) and ChaCha20 block function (_block).
# On ARM boards the Thumb assembler versions (crypto/_viper_thumb.py); where that
# does not compile (SyntaxError: ESP32, unix, wasm) or is not installed, the viper ones
# (crypto/_viper_field.py). Both give the same limbs; tests/test_board_emulator.py compares
# them on the M0. Only the module in use is loaded (its .mpy is RAM on a board).
# The names are the same in both modules and here (each name stays interned on a board).
# _SCRATCH: the field module's secret-bearing scratch, extended below with the ladder's.
try:
    from ._viper_thumb import _mul, _addk, _cswap, _reduce, _pblock, _block, _limbs, _SCRATCH
except (ImportError, SyntaxError):
    from ._viper_field import _mul, _addk, _cswap, _reduce, _pblock, _block, _limbs, _SCRATCH


# 32 little-endian bytes s[0:32] to an element o, bit 255 ignored (RFC 7748 masks it; Ed25519
# callers check it themselves), is _limbs(o, s, 0, 32) and then o[77] &= 254 (bit 255 is bit 8
# of limb 19, bit 0 of its second byte); an element copy is copy_into(o, 0, a, 0, 80). Written
# out where used, not as functions of their own: each function loaded is ~100 B of heap on a
# board, and its name stays interned.


# ==================== X25519
# X25519 (RFC 7748) on the viper limb field: the Montgomery ladder over preallocated elements.
#
# The ladder loop is Python calling viper field functions: each call passes only existing
# bytearrays and small ints, so a scalar multiplication allocates nothing but its 32-byte
# result. Bit selection uses _cswap (masking, no branch on secret bits).


# The ladder's twelve elements as two tuples, not twelve module names (every name of a loaded
# module stays interned on a board's heap); each user unpacks them into locals.
# _TMP: x1, x2, z2, x3, z3, a, aa, b; _viper_ed.py's point code uses them as its eight
# temporaries (X25519 and Ed25519 never run at the same time).
# _CH: bb, c, d, e. The inversion chain's temporaries (t0, t1, t2 in _pow_2_250_1) are bb, c,
# d, free once the ladder's loop is done (and free wherever _viper_ed.py calls the chain:
# they are not its point temporaries, and the comb's candidate sum _P, which shares them, is
# dead there); _invert's z ** 11 is e.
_TMP = tuple(bytearray(80) for _ in range(8))
_CH = tuple(bytearray(80) for _ in range(4))
_XK = bytearray(32)
_U9 = bytearray(32)
_U9[0] = 9


def _sqn(o, a, n):
    # o = a ** (2 ** n), n >= 1 (the loop's _mul a local: see _ladder)
    mul = _mul
    mul(o, a, a)
    for _ in range(n - 1):
        mul(o, o, o)


def _pow_2_250_1(z, o):
    # Returns bb (_CH[0]) holding z ** (2**250 - 1), and leaves z ** 11 in o (ref10's
    # chain; shared by inversion and by Ed25519's square root). Uses bb, c, d (_CH), which
    # must not be z or o.
    t0, t1, t2, _ = _CH
    mul = _mul; sqn = _sqn  # locals: see _ladder
    mul(t0, z, z)               # z^2
    sqn(t1, t0, 2)              # z^8
    mul(t1, z, t1)              # z^9
    mul(o, t0, t1)              # z^11
    mul(t0, o, o)               # z^22
    mul(t1, t1, t0)             # z^(2^5 - 1)
    sqn(t0, t1, 5)
    mul(t1, t0, t1)             # 2^10 - 1
    sqn(t0, t1, 10)
    mul(t2, t0, t1)             # 2^20 - 1
    sqn(t0, t2, 20)
    mul(t0, t0, t2)             # 2^40 - 1
    sqn(t0, t0, 10)
    mul(t1, t0, t1)             # 2^50 - 1
    sqn(t0, t1, 50)
    mul(t2, t0, t1)             # 2^100 - 1
    sqn(t0, t2, 100)
    mul(t0, t0, t2)             # 2^200 - 1
    sqn(t0, t0, 50)
    mul(t0, t0, t1)             # 2^250 - 1
    return t0


def _invert(o, z):
    # o = z ** (p - 2) = z ** (2**255 - 21); 0 maps to 0.
    e = _CH[3]
    t = _pow_2_250_1(z, e)
    _sqn(t, t, 5)
    _mul(o, t, e)


def _ladder(scalar, u):
    """X25519(scalar, u) as 32 bytes; inputs are 32-byte buffers (lengths checked by the
    caller). Returns (result, all_zero_flag) so the caller raises its own error."""
    # The loop's functions and elements as locals: a local is a one-byte load, a global a
    # dictionary look-up (3 bytes of bytecode, and most of the loop's interpreter time on
    # a Cortex-M0). The first 16 locals (arguments included) have one-byte opcodes.
    mul = _mul; addk = _addk; cswap = _cswap
    x1, x2, z2, x3, z3, a, aa, b = _TMP
    bb, c, d, e = _CH
    k = _XK
    copy_into(k, 0, scalar, 0, 32)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    _limbs(x1, u, 0, 32)
    x1[77] &= 254  # masks bit 255 of u
    copy_into(x2, 0, _FE1, 0, 80)
    copy_into(z2, 0, _FE0, 0, 80)
    copy_into(x3, 0, x1, 0, 80)
    copy_into(z3, 0, _FE1, 0, 80)
    swap = 0
    for t in range(254, -1, -1):
        kt = (k[t >> 3] >> (t & 7)) & 1
        swap ^= kt
        cswap(x2, x3, swap)
        cswap(z2, z3, swap)
        swap = kt
        addk(a, x2, z2, 1)
        mul(aa, a, a)
        addk(b, x2, z2, -1)
        mul(bb, b, b)
        addk(e, aa, bb, -1)
        addk(c, x3, z3, 1)
        addk(d, x3, z3, -1)
        mul(d, d, a)       # DA
        mul(c, c, b)       # CB
        addk(x3, d, c, 1)
        mul(x3, x3, x3)    # x3 = (DA + CB)^2
        addk(z3, d, c, -1)
        mul(z3, z3, z3)
        mul(z3, z3, x1)    # z3 = x1 * (DA - CB)^2
        mul(x2, aa, bb)    # x2 = AA * BB
        addk(a, aa, e, 121665)
        mul(z2, e, a)      # z2 = E * (AA + a24 * E)
    cswap(x2, x3, swap)
    cswap(z2, z3, swap)
    _invert(z2, z2)
    mul(x2, x2, z2)
    _reduce(x2, 20, 8, 19)
    out = bytearray(32)
    _limbs(x2, out, 0, -1)  # to bytes
    zero = 0
    for i in range(32):  # the all-zero check: every byte read, no early exit
        zero |= out[i]
    for w in _SCRATCH:  # the wipe (see above)
        w[0] = 0
        copy_into(w, 1, w, 0, len(w) - 1)
    return out, zero == 0


# Scratch that holds secrets or values derived from them after an X25519, wiped by _ladder
# before it returns (the AEAD wipes its own, _AE below; _viper_ed.py adds its own to
# these): the ladder's elements and clamped scalar, inversion temporaries, the product
# scratch. Not wiped: on ARM the product scratch that the Thumb field code keeps on the C
# stack.
_SCRATCH = _SCRATCH + (_XK,) + _TMP + _CH




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
# * The finish shares the field code: _limbs (bytes <-> 13-bit limbs), _reduce (here modulo
#   2**130 - 5), _addk with k = 1 (h + s as plain integers: the carry never reaches the top
#   limb of an 80-byte element, so nothing folds) and _limbs again, to bytes.

# Quarter-round word indices (RFC 8439 2.3): four column rounds, then four diagonal rounds;
# then the four rotation amounts.
_QR = bytes((0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
             0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14, 16, 12, 8, 7))
# All the AEAD's key material is one bytearray, so that _chacha_poly wipes it in one call;
# _AE is a memoryview of it (viper reads a memoryview through its buffer like a bytearray).
# Its parts, at these byte offsets (multiples of 16: words stay aligned):
# ChaCha20 state at 0: 16 little-endian words (constants, key, counter, nonce). Its first four
# words are the constant "expand 32-byte k" (RFC 8439 2.3), written once here, never wiped.
# Keystream block at _KS (also the scratch for the length block and the tag, once the
# keystream is not needed).
# Poly1305, as 13-bit limbs in 32-bit words: at _PR, 5*r (10 limbs) then r (10 limbs), so the
# factor of a[j] in column i is word 10 + i - j there (see the field modules' _pblock);
# accumulator h (_PH); s (_PS); a scratch (_PA). h, s and the scratch are field-sized (20 limbs, the top 10 zero) for
# the shared _addk/_limbs, which take them as windows of their own; the state, keystream and
# r are reached by offset (no window objects, no names: each name of a loaded module stays
# interned on a board's heap).
_AE = memoryview(bytearray(448))
_AE[0:16] = b"expand 32-byte k"
_KS = const(64)
_PR = const(128)
_PH = _AE[208:288]
_PS = _AE[288:368]
_PA = _AE[368:448]


@micropython.viper
def _xor(src: ptr8, soff: int, dst: ptr8, doff: int, n: int):
    # dst[doff:doff+n] = src[soff:soff+n] ^ ChaCha20 keystream, from the counter in the state
    # (_AE's words 0..15). Each 64 bytes take one block (RFC 8439 2.3) into the keystream block
    # (words 16..31, bytes _KS..) and step the counter: the field module's _block (Thumb
    # assembler on ARM, viper elsewhere). The caller never sends 2**32 blocks under one nonce
    # (records are <= 16 KiB). dst may be the keystream block itself (the Poly1305 key: the
    # keystream of zeros).
    ks = ptr8(uint(ptr8(_AE)) + _KS)  # the keystream block
    i = 0
    while i < n:
        _block(_AE, _QR)
        j = 0
        while j < 64 and i < n:
            dst[doff + i] = src[soff + i] ^ ks[j]
            i += 1
            j += 1


def _poly(src, soff, n):
    # Absorb n bytes of src into h, the last partial block zero-padded to 16 bytes (the AEAD
    # padding of RFC 8439 2.8): each block as limbs into _PA, then the field module's _pblock
    # (h = (h + block + 2**128) * r mod 2**130 - 5; Thumb assembler on ARM, viper elsewhere).
    # Python small ints only: no allocation.
    pos = 0
    while pos < n:
        _limbs(_PA, src, soff + pos, min(n - pos, 16))  # zeros after the block
        _pblock(_PH, _PA, _AE, _PR)
        pos += 16


def _chacha_poly(tag_in, key, nonce, src, soff, n, dst, doff, aad, alen):
    # Seal (tag_in = 0: ciphertext and then the tag into dst) or open (tag_in = 16: the tag
    # follows the ciphertext in src; plaintext is written only when it matches). Returns True
    # for a seal or a matching tag. Arguments are checked by the caller (records and AAD are
    # < 2**30 bytes). Python small ints only: no allocation.
    # State = "expand 32-byte k" (in place) | key | counter 0 | nonce (RFC 8439 2.3).
    ae = _AE
    copy_into(ae, 16, key, 0, 32)
    copy_into(ae, 48, _FE0, 0, 4)
    copy_into(ae, 52, nonce, 0, 12)
    # Block 0 (the keystream itself, at ae[_KS:]): the one-time Poly1305 key.
    _xor(_FE0, 0, ae, _KS, 64)
    # r (clamped, RFC 8439 2.5) and s as limbs; h = 0. At _PR: 5r then r (see _pblock); 5 * a
    # 13-bit limb < 2**16, so two bytes per word.
    for i in (3, 7, 11, 15):
        ae[_KS + i] &= 15
    for i in (4, 8, 12):
        ae[_KS + i] &= 252
    _limbs(_PA, ae, _KS, 16)
    _limbs(_PS, ae, _KS + 16, 16)
    copy_into(ae, _PR, _FE0, 0, 40)
    copy_into(ae, _PR + 40, _PA, 0, 40)
    for i in range(0, 40, 4):
        v = 5 * (_PA[i] | (_PA[i + 1] << 8))
        ae[_PR + i] = v & 255
        ae[_PR + i + 1] = v >> 8
    copy_into(_PH, 0, _FE0, 0, 80)
    _poly(aad, 0, alen)
    if tag_in:  # which call this is, public
        t = src
        off = soff
    else:
        _xor(src, soff, dst, doff, n)  # counter 1.. -> ciphertext
        t = dst
        off = doff
    _poly(t, off, n)
    # The last block, in the keystream block's place: le64(aad length) | le64(ciphertext
    # length), both < 2**30.
    for i in range(4):
        ae[_KS + i] = (alen >> (8 * i)) & 255
        ae[_KS + i + 4] = 0
        ae[_KS + i + 8] = (n >> (8 * i)) & 255
        ae[_KS + i + 12] = 0
    _poly(ae, _KS, 16)
    # tag = (h mod 2**130 - 5) + s mod 2**128, little-endian, into ae[_KS:_KS + 16]; written
    # after the ciphertext (seal), or compared with the received one without an early exit.
    _reduce(_PH, 10, 13, 5)
    _addk(_PA, _PH, _PS, 1)  # < 2**131: bits above 128 are dropped by taking 16 bytes
    _limbs(_PA, ae, _KS, -1)  # to bytes
    off += n
    d = 0
    if tag_in:
        for i in range(16):
            d |= t[off + i] ^ ae[_KS + i]
        if d == 0:
            _xor(src, soff, dst, doff, n)
    else:
        copy_into(t, off, ae, _KS, 16)
    # Wipe _AE from the key on: all of the key material (state, keystream, r, s, h, scratch),
    # as the wipe does (a zero byte, carried forward by the byte-by-byte copy_into); nothing is
    # allocated.
    ae[16] = 0
    copy_into(ae, 17, ae, 16, len(ae) - 17)
    return d == 0


# ==================== backend: argument checks, the interface of docs/design.md

# The record path's argument checks take the builtins they use as default arguments (bound
# once, read as locals). A builtin is found only after a miss in this module's globals, and
# MicroPython grows a dict only when it is full: with the wrong number of names here a miss
# reads the whole table (measured: 59 names in 59 slots cost a 64-byte seal 17% more
# instructions on the M0). These calls then cost the same whatever the table's fill.


def _len(buf, n, what, isinstance=isinstance, str=str, len=len):
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


def _aead(tag_in, key, nonce, src, soff, n, dst, doff, aad, isinstance=isinstance, int=int,
          str=str, len=len):
    # Both AEAD directions: tag_in = 16 for open (the tag follows the ciphertext in src), 0 for
    # seal (it follows in dst). The same refusals as the pure backend: int offsets and length,
    # in range, buffers (not str), dst writable. Allocates nothing unless it raises.
    _len(key, 32, "key")
    _len(nonce, 12, "nonce")
    alen = _len(aad, -1, "aad")
    try:
        if not (isinstance(soff, int) and isinstance(doff, int) and isinstance(n, int)) \
                or soff < 0 or doff < 0 or n < 0 or isinstance(src, str) \
                or soff + n + tag_in > len(src) or doff + n + 16 - tag_in > len(dst):
            raise CryptoError("AEAD offsets, length or buffers out of range")
        if n + 16 - tag_in:
            # A read-only dst (bytes, memoryview of bytes) fails here, before anything is
            # written; storing the byte back leaves dst unchanged.
            dst[doff] = dst[doff]
        return _chacha_poly(tag_in, key, nonce, src, soff, n, dst, doff, aad, alen)
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

    # Ed25519 and SHA-512 come from _viper_ed.py, imported by each method on first use (see
    # the header). A MemoryError while loading it escapes as such; the library's callers turn
    # it into OutOfMemory.

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
        from . import _viper_ed as e
        return _call(e._ed_sign, seed, 32, e._NOMSG, 0, "Ed25519")

    def ed25519_sign(self, seed, msg):
        """64-byte RFC 8032 signature. Raises CryptoError for a wrong seed length or a
        seed or message that is not a buffer."""
        from . import _viper_ed as e
        return _call(e._ed_sign, seed, 32, msg, -1, "Ed25519")

    def ed25519_verify(self, public, msg, sig):
        """Strict RFC 8032 verification (cofactorless): False for S >= L, a non-canonical or
        undecodable public key, a non-canonical R, wrong lengths or non-buffers. Never raises."""
        from . import _viper_ed as e
        try:
            return _len(public, 32, "") + _len(sig, 64, "") + _len(msg, -1, "") > 0 and \
                e._ed_verify(public, msg, sig)
        except Exception:
            # Not a buffer (e.g. None, an int), a wrong length: not a valid signature either.
            return False

    def sha512(self, data):
        """SHA-512 digest (64 bytes) of a bytes-like object."""
        from . import _viper_ed as e
        out = bytearray(64)
        e._sha(out, (data,))
        return bytes(out)
