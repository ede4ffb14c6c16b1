# Argument checks shared by the pure and pyca backends, so both refuse the same calls with
# the same CryptoError (docs/design.md: all backends agree on every rejection).

from ..errors import CryptoError


def need(buf, n, what):
    """The argument as bytes, if it is a buffer of exactly n bytes; else CryptoError."""
    try:
        b = bytes(memoryview(buf))
    except TypeError:
        raise CryptoError("%s is not a buffer" % what)
    if len(b) != n:
        raise CryptoError("%s must be %d bytes" % (what, n))
    return b


def window(src, soff, n, dst, doff, src_extra, dst_extra):
    """CryptoError unless the AEAD offsets address whole windows of both buffers."""
    if not (isinstance(soff, int) and isinstance(doff, int) and isinstance(n, int)):
        raise CryptoError("offsets and length must be ints")
    if soff < 0 or doff < 0 or n < 0:
        raise CryptoError("negative offset or length")
    try:
        if soff + n + src_extra > len(src):
            raise CryptoError("src too short")
        if doff + n + dst_extra > len(dst):
            raise CryptoError("dst too short")
    except TypeError:
        raise CryptoError("src/dst is not a buffer")
