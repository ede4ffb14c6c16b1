# SHA-512 (FIPS 180-4) in MicroPython viper, with 64-bit words as 32-bit (hi, lo) halves.
#
# MicroPython's hashlib has no sha512, and pure Python 64-bit arithmetic makes big ints on every
# board. Here each 64-bit word is two uint halves; every left shift and every sum is masked with
# M = 0xFFFFFFFF (built at run time: the literal is not a small int on a 32-bit board), right
# shifts only ever see clean 32-bit values, so the 64-bit unix port and 32-bit boards compute the
# same bits. Sums of several words add the low halves as 16-bit pieces (each partial sum stays
# below 2**20) to get the carry into the high half without needing a 33rd bit.
#
# Streaming API on one module-level context (not re-entrant): init(), update(buf, off, n),
# final(out, off). Nothing is allocated per call.

import micropython
from ubinascii import unhexlify

# Round constants and initial value, each 64-bit word stored as hi then lo (32-bit, native
# little-endian, read through ptr32).
_K = unhexlify(
    "982f8a4222ae28d791443771cd65ef23cffbc0b52f3b4deca5dbb5e9bcdb89815bc2563938b548f3f111f15919d005b6"
    "a4823f929b4f19afd55e1cab18816dda98aa07d8420203a3015b8312be6f7045be8531248cb2e44ec37d0c55e2b4ffd5"
    "745dbe726f897bf2feb1de80b196163ba706dc9b3512c72574f19bc1942669cfc1699be4d24af19e8647beefe3254f38"
    "c69dc10fb5d58c8bcca10c24659cac776f2ce92d75022b59aa84744a83e4a66edca9b05cd4fb41bdda88f976b5531183"
    "52513e98abdf66ee6dc631a81032b42dc82703b03f21fb98c77f59bfe40eefbef30be0c6c28fa83d4791a7d525a70a93"
    "5163ca066f8203e067292914706e0e0a850ab727fc2fd24638211b2e26c9265cfc6d2c4ded2ac45a130d3853dfb3959d"
    "54730a65de63af8bbb0a6a76a8b2773c2ec9c281e6aeed47852c72923b358214a1e8bfa26403f14c4b661aa8013042bc"
    "708b4bc29197f8d0a3516cc730be540619e892d11852efd6240699d610a9655585350ef42a20715770a06a10b8d1bb32"
    "16c1a419c8d0d2b8086c371e53ab41514c77482799eb8edfb5bcb034a8489be1b30c1c39635ac9c54aaad84ecb8a41e3"
    "4fca9c5b73e36377f36f2e68a3b8b2d6ee828f74fcb2ef5d6f63a578602f17431478c88472abf0a10802c78cec39641a"
    "faffbe90281e6323eb6c50a4e9bd82def7a3f9be1579c6b2f27871c62b5372e3ce3e27ca9c6126eac7b886d107c2c021"
    "d67ddaea1eebe0cd7f4f7df578d16eeeaa67f006ba6f1772c57d630aa698c8a204983f11ae0df9be350b711b1b471c13"
    "f577db28847d04237babca329324c7400abe9e3cbcbec915c4671d434c0d109cbed4c54cb6423ecb9c297f592a7e65fc"
    "ab6fcb5fecfad63a8c19446c1758474a"
)
_IV = unhexlify(
    "67e6096a08c9bcf385ae67bb3ba7ca8472f36e3c2bf894fe3af54fa5f1361d5f7f520e51d182e6ad8c68059b1f6c3e2b"
    "abd9831f6bbd41fb19cde05b79217e13"
)
_H = bytearray(64)    # state, 8 words as (hi, lo)
_W = bytearray(640)   # message schedule, 80 words as (hi, lo)
_BUF = bytearray(128)  # partial input block
_CTX = bytearray(8)   # [0..3]: bytes in _BUF; [4..7]: total length in bytes (< 2**32)


@micropython.viper
def _compress(blk, off: int):
    # One 128-byte block at blk[off:] into _H.
    m = (uint(0xFFFF) << 16) | uint(0xFFFF)
    lo16 = uint(0xFFFF)
    b = ptr8(blk)
    w = ptr32(_W)
    k = ptr32(_K)
    hs = ptr32(_H)
    for t in range(16):
        p = off + 8 * t
        w[2 * t] = (uint(b[p]) << 24) | (uint(b[p + 1]) << 16) | (uint(b[p + 2]) << 8) | uint(b[p + 3])
        w[2 * t + 1] = (uint(b[p + 4]) << 24) | (uint(b[p + 5]) << 16) | (uint(b[p + 6]) << 8) | uint(b[p + 7])
    for t in range(16, 80):
        # W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16]
        xh = uint(w[2 * t - 4]); xl = uint(w[2 * t - 3])
        s1h = ((xh >> 19) | (xl << 13)) ^ ((xl >> 29) | (xh << 3)) ^ (xh >> 6)
        s1l = ((xl >> 19) | (xh << 13)) ^ ((xh >> 29) | (xl << 3)) ^ ((xl >> 6) | (xh << 26))
        xh = uint(w[2 * t - 30]); xl = uint(w[2 * t - 29])
        s0h = ((xh >> 1) | (xl << 31)) ^ ((xh >> 8) | (xl << 24)) ^ (xh >> 7)
        s0l = ((xl >> 1) | (xh << 31)) ^ ((xl >> 8) | (xh << 24)) ^ ((xl >> 7) | (xh << 25))
        s1l &= m; s0l &= m
        al = uint(w[2 * t - 13]); bl = uint(w[2 * t - 31])
        c = (s1l & lo16) + (s0l & lo16) + (al & lo16) + (bl & lo16)
        d = (s1l >> 16) + (s0l >> 16) + (al >> 16) + (bl >> 16) + (c >> 16)
        w[2 * t + 1] = ((d & lo16) << 16) | (c & lo16)
        w[2 * t] = s1h + s0h + uint(w[2 * t - 14]) + uint(w[2 * t - 32]) + (d >> 16)
    ah = uint(hs[0]); al = uint(hs[1]); bh = uint(hs[2]); bl = uint(hs[3])
    ch = uint(hs[4]); cl = uint(hs[5]); dh = uint(hs[6]); dl = uint(hs[7])
    eh = uint(hs[8]); el = uint(hs[9]); fh = uint(hs[10]); fl = uint(hs[11])
    gh = uint(hs[12]); gl = uint(hs[13]); hh = uint(hs[14]); hl = uint(hs[15])
    for t in range(80):
        # T1 = h + S1(e) + Ch(e, f, g) + K[t] + W[t]
        s1h = ((eh >> 14) | (el << 18)) ^ ((eh >> 18) | (el << 14)) ^ ((el >> 9) | (eh << 23))
        s1l = ((el >> 14) | (eh << 18)) ^ ((el >> 18) | (eh << 14)) ^ ((eh >> 9) | (el << 23))
        s1l &= m
        xh = (eh & fh) ^ (~eh & gh)
        xl = (el & fl) ^ (~el & gl)
        kl = uint(k[2 * t + 1]); wl = uint(w[2 * t + 1])
        c = (hl & lo16) + (s1l & lo16) + (xl & lo16) + (kl & lo16) + (wl & lo16)
        d = (hl >> 16) + (s1l >> 16) + (xl >> 16) + (kl >> 16) + (wl >> 16) + (c >> 16)
        t1l = ((d & lo16) << 16) | (c & lo16)
        t1h = (hh + s1h + xh + uint(k[2 * t]) + uint(w[2 * t]) + (d >> 16)) & m
        # T2 = S0(a) + Maj(a, b, c)
        s0h = ((ah >> 28) | (al << 4)) ^ ((al >> 2) | (ah << 30)) ^ ((al >> 7) | (ah << 25))
        s0l = ((al >> 28) | (ah << 4)) ^ ((ah >> 2) | (al << 30)) ^ ((ah >> 7) | (al << 25))
        s0l &= m
        xh = (ah & bh) ^ (ah & ch) ^ (bh & ch)
        xl = (al & bl) ^ (al & cl) ^ (bl & cl)
        c = (s0l & lo16) + (xl & lo16)
        d = (s0l >> 16) + (xl >> 16) + (c >> 16)
        t2l = ((d & lo16) << 16) | (c & lo16)
        t2h = s0h + xh + (d >> 16)
        hh = gh; hl = gl; gh = fh; gl = fl; fh = eh; fl = el
        # e = d + T1
        c = (dl & lo16) + (t1l & lo16)
        d = (dl >> 16) + (t1l >> 16) + (c >> 16)
        el = ((d & lo16) << 16) | (c & lo16)
        eh = (dh + t1h + (d >> 16)) & m
        dh = ch; dl = cl; ch = bh; cl = bl; bh = ah; bl = al
        # a = T1 + T2
        c = (t1l & lo16) + (t2l & lo16)
        d = (t1l >> 16) + (t2l >> 16) + (c >> 16)
        al = ((d & lo16) << 16) | (c & lo16)
        ah = (t1h + t2h + (d >> 16)) & m
    # H += working variables, word by word (hi, lo pairs).
    for i in range(8):
        if i == 0:
            xh = ah; xl = al
        elif i == 1:
            xh = bh; xl = bl
        elif i == 2:
            xh = ch; xl = cl
        elif i == 3:
            xh = dh; xl = dl
        elif i == 4:
            xh = eh; xl = el
        elif i == 5:
            xh = fh; xl = fl
        elif i == 6:
            xh = gh; xl = gl
        else:
            xh = hh; xl = hl
        yl = uint(hs[2 * i + 1])
        c = (xl & lo16) + (yl & lo16)
        d = (xl >> 16) + (yl >> 16) + (c >> 16)
        hs[2 * i + 1] = ((d & lo16) << 16) | (c & lo16)
        hs[2 * i] = xh + uint(hs[2 * i]) + (d >> 16)  # ptr32 store keeps 32 bits


@micropython.viper
def _copy(dst, doff: int, src, soff: int, n: int):
    d = ptr8(dst)
    s = ptr8(src)
    for i in range(n):
        d[doff + i] = s[soff + i]


@micropython.viper
def _update(src, off: int, n: int):
    # Append src[off:off+n]: fill _BUF, compress full blocks (straight from src when aligned
    # with a block boundary), keep the remainder.
    ctx = ptr32(_CTX)
    buf = ptr8(_BUF)
    s = ptr8(src)
    used = int(ctx[0])
    ctx[1] = ctx[1] + n
    i = 0
    if used > 0:
        while used < 128 and i < n:
            buf[used] = s[off + i]
            used += 1
            i += 1
        if used == 128:
            _compress(_BUF, 0)
            used = 0
    while n - i >= 128:
        _compress(src, off + i)
        i += 128
    while i < n:
        buf[used] = s[off + i]
        used += 1
        i += 1
    ctx[0] = used


@micropython.viper
def _final(out, ooff: int):
    # Pad (0x80, zeros, 128-bit big-endian bit length), compress, write the 64-byte digest.
    ctx = ptr32(_CTX)
    buf = ptr8(_BUF)
    used = int(ctx[0])
    total = uint(ctx[1])
    buf[used] = 0x80
    used += 1
    if used > 112:
        while used < 128:
            buf[used] = 0
            used += 1
        _compress(_BUF, 0)
        used = 0
    while used < 128:
        buf[used] = 0
        used += 1
    # bit length = total * 8 (total < 2**32 bytes): bytes 123..127 of the block
    buf[127] = (total << 3) & 0xFF
    buf[126] = (total >> 5) & 0xFF
    buf[125] = (total >> 13) & 0xFF
    buf[124] = (total >> 21) & 0xFF
    buf[123] = (total >> 29) & 0xFF
    _compress(_BUF, 0)
    h = ptr32(_H)
    o = ptr8(out)
    for i in range(16):
        v = uint(h[i])
        o[ooff + 4 * i] = v >> 24
        o[ooff + 4 * i + 1] = (v >> 16) & 0xFF
        o[ooff + 4 * i + 2] = (v >> 8) & 0xFF
        o[ooff + 4 * i + 3] = v & 0xFF


def init():
    """Start a new hash (the previous one, if any, is discarded)."""
    _copy(_H, 0, _IV, 0, 64)
    for i in range(8):
        _CTX[i] = 0


def update(data, off=0, n=-1):
    """Hash n bytes (default: all) of data from off."""
    if n < 0:
        n = len(data) - off
    _update(data, off, n)


def final(out, off=0):
    """Write the 64-byte digest at out[off:]; the context must be init()-ed again to reuse."""
    _final(out, off)


def sha512(data):
    """One-shot SHA-512 of a bytes-like object, as bytes."""
    out = bytearray(64)
    init()
    _update(data, 0, len(data))
    _final(out, 0)
    return bytes(out)
