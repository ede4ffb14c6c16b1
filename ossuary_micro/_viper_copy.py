# Byte copy between buffers at offsets, in viper: no slice object, no heap allocation.
#
# Imported by ossuary_micro/connection.py and connection2.py, which fall back to a plain copy
# where there is no viper emitter (CPython, the WebAssembly port).

import micropython


@micropython.viper
def copy_into(dst, doff: int, src, soff: int, n: int):
    # Ascending copy: also correct for the overlapping dst < src move of Connection._compact.
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[doff + i] = s[soff + i]
        i += 1
