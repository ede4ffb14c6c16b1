# Pure-Python ChaCha20 and Poly1305 (RFC 8439) and their AEAD construction, for pure.py.
#
# ChaCha20 keeps its 16-word state in local variables (fastest on both CPython and
# MicroPython; 32-bit words are small ints on 64-bit builds and heap ints on 31-bit boards).
# Keystream blocks are XORed into the data as 512-bit integers (one int op instead of 64 byte
# ops). Poly1305 runs on Python big ints. Nothing here is constant-time except the tag
# comparison, which accumulates over all 16 bytes; Python cannot promise more.

import struct

_M32 = 0xFFFFFFFF
_P1305 = (1 << 130) - 5
_CLAMP = 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)


def chacha20_block(kw, counter, nw):
    """The 64-byte ChaCha20 block (RFC 8439 2.3) for key words kw (8), counter, nonce words nw (3)."""
    M = _M32
    x0, x1, x2, x3 = _SIGMA
    x4, x5, x6, x7, x8, x9, x10, x11 = kw
    x12 = counter
    x13, x14, x15 = nw
    for _ in range(10):
        # Column round: QR(0,4,8,12) QR(1,5,9,13) QR(2,6,10,14) QR(3,7,11,15).
        x0 = (x0 + x4) & M; x12 ^= x0; x12 = ((x12 << 16) & M) | (x12 >> 16)
        x8 = (x8 + x12) & M; x4 ^= x8; x4 = ((x4 << 12) & M) | (x4 >> 20)
        x0 = (x0 + x4) & M; x12 ^= x0; x12 = ((x12 << 8) & M) | (x12 >> 24)
        x8 = (x8 + x12) & M; x4 ^= x8; x4 = ((x4 << 7) & M) | (x4 >> 25)
        x1 = (x1 + x5) & M; x13 ^= x1; x13 = ((x13 << 16) & M) | (x13 >> 16)
        x9 = (x9 + x13) & M; x5 ^= x9; x5 = ((x5 << 12) & M) | (x5 >> 20)
        x1 = (x1 + x5) & M; x13 ^= x1; x13 = ((x13 << 8) & M) | (x13 >> 24)
        x9 = (x9 + x13) & M; x5 ^= x9; x5 = ((x5 << 7) & M) | (x5 >> 25)
        x2 = (x2 + x6) & M; x14 ^= x2; x14 = ((x14 << 16) & M) | (x14 >> 16)
        x10 = (x10 + x14) & M; x6 ^= x10; x6 = ((x6 << 12) & M) | (x6 >> 20)
        x2 = (x2 + x6) & M; x14 ^= x2; x14 = ((x14 << 8) & M) | (x14 >> 24)
        x10 = (x10 + x14) & M; x6 ^= x10; x6 = ((x6 << 7) & M) | (x6 >> 25)
        x3 = (x3 + x7) & M; x15 ^= x3; x15 = ((x15 << 16) & M) | (x15 >> 16)
        x11 = (x11 + x15) & M; x7 ^= x11; x7 = ((x7 << 12) & M) | (x7 >> 20)
        x3 = (x3 + x7) & M; x15 ^= x3; x15 = ((x15 << 8) & M) | (x15 >> 24)
        x11 = (x11 + x15) & M; x7 ^= x11; x7 = ((x7 << 7) & M) | (x7 >> 25)
        # Diagonal round: QR(0,5,10,15) QR(1,6,11,12) QR(2,7,8,13) QR(3,4,9,14).
        x0 = (x0 + x5) & M; x15 ^= x0; x15 = ((x15 << 16) & M) | (x15 >> 16)
        x10 = (x10 + x15) & M; x5 ^= x10; x5 = ((x5 << 12) & M) | (x5 >> 20)
        x0 = (x0 + x5) & M; x15 ^= x0; x15 = ((x15 << 8) & M) | (x15 >> 24)
        x10 = (x10 + x15) & M; x5 ^= x10; x5 = ((x5 << 7) & M) | (x5 >> 25)
        x1 = (x1 + x6) & M; x12 ^= x1; x12 = ((x12 << 16) & M) | (x12 >> 16)
        x11 = (x11 + x12) & M; x6 ^= x11; x6 = ((x6 << 12) & M) | (x6 >> 20)
        x1 = (x1 + x6) & M; x12 ^= x1; x12 = ((x12 << 8) & M) | (x12 >> 24)
        x11 = (x11 + x12) & M; x6 ^= x11; x6 = ((x6 << 7) & M) | (x6 >> 25)
        x2 = (x2 + x7) & M; x13 ^= x2; x13 = ((x13 << 16) & M) | (x13 >> 16)
        x8 = (x8 + x13) & M; x7 ^= x8; x7 = ((x7 << 12) & M) | (x7 >> 20)
        x2 = (x2 + x7) & M; x13 ^= x2; x13 = ((x13 << 8) & M) | (x13 >> 24)
        x8 = (x8 + x13) & M; x7 ^= x8; x7 = ((x7 << 7) & M) | (x7 >> 25)
        x3 = (x3 + x4) & M; x14 ^= x3; x14 = ((x14 << 16) & M) | (x14 >> 16)
        x9 = (x9 + x14) & M; x4 ^= x9; x4 = ((x4 << 12) & M) | (x4 >> 20)
        x3 = (x3 + x4) & M; x14 ^= x3; x14 = ((x14 << 8) & M) | (x14 >> 24)
        x9 = (x9 + x14) & M; x4 ^= x9; x4 = ((x4 << 7) & M) | (x4 >> 25)
    s0, s1, s2, s3 = _SIGMA
    k0, k1, k2, k3, k4, k5, k6, k7 = kw
    n0, n1, n2 = nw
    return struct.pack(
        "<16I",
        (x0 + s0) & M, (x1 + s1) & M, (x2 + s2) & M, (x3 + s3) & M,
        (x4 + k0) & M, (x5 + k1) & M, (x6 + k2) & M, (x7 + k3) & M,
        (x8 + k4) & M, (x9 + k5) & M, (x10 + k6) & M, (x11 + k7) & M,
        (x12 + counter) & M, (x13 + n0) & M, (x14 + n1) & M, (x15 + n2) & M)


def chacha20_xor(key, nonce, counter, src, soff, n, dst, doff):
    """XOR n bytes of src[soff:] with the ChaCha20 keystream (starting at block `counter`)
    into dst[doff:]. key is 32 bytes, nonce 12 (checked by the caller). src and dst may be
    the same buffer at the same offset."""
    kw = struct.unpack("<8I", key)
    nw = struct.unpack("<3I", nonce)
    mv = memoryview(src)
    i = 0
    while i < n:
        ks = chacha20_block(kw, counter & _M32, nw)
        counter += 1
        m = n - i if n - i < 64 else 64
        if m < 64:
            ks = ks[:m]
        v = int.from_bytes(mv[soff + i:soff + i + m], "little") ^ int.from_bytes(ks, "little")
        dst[doff + i:doff + i + m] = v.to_bytes(m, "little")
        i += m


def poly1305_mac(key32, src, soff, n, aad=b""):
    """The RFC 8439 2.8 AEAD tag input: Poly1305 over aad, pad, src[soff:soff+n], pad,
    and the two little-endian 64-bit lengths, keyed with the 32-byte one-time key."""
    r = int.from_bytes(key32[0:16], "little") & _CLAMP
    s = int.from_bytes(key32[16:32], "little")
    P = _P1305
    acc = 0
    # Padded segments: a partial last block is zero-padded to 16 bytes, so its "1" bit sits
    # at 2**128 like a full block's (the AEAD construction pads, unlike bare Poly1305).
    for buf, off, ln in ((aad, 0, len(aad)), (src, soff, n)):
        mv = memoryview(buf)
        j = 0
        while j < ln:
            m = ln - j if ln - j < 16 else 16
            acc = ((acc + int.from_bytes(mv[off + j:off + j + m], "little") + (1 << 128)) * r) % P
            j += m
    acc = ((acc + (len(aad) | (n << 64)) + (1 << 128)) * r) % P
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def poly1305(key32, msg):
    """Bare Poly1305 (RFC 8439 2.5) of msg: used by the RFC test vectors."""
    r = int.from_bytes(key32[0:16], "little") & _CLAMP
    s = int.from_bytes(key32[16:32], "little")
    acc = 0
    mv = memoryview(msg)
    j = 0
    ln = len(msg)
    while j < ln:
        m = ln - j if ln - j < 16 else 16
        acc = ((acc + int.from_bytes(mv[j:j + m], "little") + (1 << (8 * m))) * r) % _P1305
        j += m
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def _otk(key, nonce):
    # Poly1305 one-time key: the first 32 bytes of ChaCha20 block 0 (RFC 8439 2.6).
    return chacha20_block(struct.unpack("<8I", key), 0, struct.unpack("<3I", nonce))[:32]


def aead_seal(key, nonce, src, soff, n, dst, doff, aad=b""):
    """Encrypt n bytes src[soff:] into dst[doff:], then the 16-byte tag. Lengths are the
    caller's job (pure.Backend checks them)."""
    chacha20_xor(key, nonce, 1, src, soff, n, dst, doff)
    dst[doff + n:doff + n + 16] = poly1305_mac(_otk(key, nonce), dst, doff, n, aad)


def aead_open(key, nonce, src, soff, n, dst, doff, aad=b""):
    """Check the tag at src[soff+n:], then decrypt into dst[doff:]. Returns False (and writes
    nothing) when the tag does not match."""
    tag = poly1305_mac(_otk(key, nonce), src, soff, n, aad)
    # Accumulate the difference over all 16 bytes: no early exit on the first mismatch.
    diff = 0
    t = soff + n
    for i in range(16):
        diff |= tag[i] ^ src[t + i]
    if diff:
        return False
    chacha20_xor(key, nonce, 1, src, soff, n, dst, doff)
    return True
