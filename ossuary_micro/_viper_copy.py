# Byte copy between buffers at offsets, in viper: no slice object, no heap allocation.
#
# Imported by ossuary_micro/connection.py, connection2.py and link.py, which fall back to a
# plain copy where there is no viper emitter (CPython, the WebAssembly port), and by the viper
# crypto backend (crypto/viper.py, _viper_ed.py): one viper function on a board's heap for all.

import micropython


@micropython.viper
def copy_into(dst, doff: int, src, soff: int, n: int):
    # dst[doff:doff+n] = src[soff:soff+n]. Ascending, one byte at a time: also correct for the
    # overlapping dst < src move of Connection._compact, and the crypto backend's wipe relies
    # on it (a copy one byte up carries a zero byte to the end of a buffer).
    # n < 0, for SHA-512 only (crypto/_viper_ed.py): copies -n bytes, reversing the bytes of
    # each 32-bit word (big-endian words to the native little-endian ones, and back); the
    # other callers' lengths are never negative.
    d = ptr8(dst)
    s = ptr8(src)
    x = 0
    if n < 0:  # the caller's choice, not data
        n = 0 - n
        x = 3
    i = 0
    while i < n:
        d[doff + (i ^ x)] = s[soff + i]
        i += 1
