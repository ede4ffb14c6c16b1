# copy_into(dst, doff, src, soff, n): dst[doff:doff+n] = src[soff:soff+n] without allocating.
#
# On MicroPython a right-hand slice allocates a new object, so the data path would allocate
# once per record. Viper copies without allocating; a MicroPython without viper (the
# WebAssembly port) copies byte by byte, slow but still allocation-free, and negligible next
# to its pure-Python AEAD. CPython takes the slice, its fastest way.

import sys

try:
    from ._viper_copy import copy_into
except (ImportError, SyntaxError, NotImplementedError, ValueError):
    if sys.implementation.name == "micropython":
        def copy_into(dst, doff, src, soff, n):
            for i in range(n):
                dst[doff + i] = src[soff + i]
    else:
        def copy_into(dst, doff, src, soff, n):
            dst[doff:doff + n] = memoryview(src)[soff:soff + n]
