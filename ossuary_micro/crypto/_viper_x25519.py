# X25519 (RFC 7748) on the viper limb field: the Montgomery ladder over preallocated elements.
#
# The ladder loop is Python calling viper field functions: each call passes only existing
# bytearrays and small ints, so a scalar multiplication allocates nothing but its 32-byte
# result. Bit selection uses _cswap (masking, no branch on secret bits).
#
# Not re-entrant: the temporaries are module-level (the library is single-threaded).

from ._viper_fe import (_mul, _sq, _addk, _copy, _cswap, _frombytes, _reduce, _tobytes,
                        _is_zero, _FE0, _FE1)


def _fe():
    return bytearray(80)


_X1 = _fe(); _X2 = _fe(); _Z2 = _fe(); _X3 = _fe(); _Z3 = _fe()
_A = _fe(); _AA = _fe(); _B = _fe(); _BB = _fe(); _E = _fe(); _C = _fe(); _D = _fe()
_I0 = _fe(); _I1 = _fe(); _I2 = _fe(); _I3 = _fe()
_K = bytearray(32)
_BASE = bytearray(32)
_BASE[0] = 9


def _sqn(o, a, n):
    # o = a ** (2 ** n), n >= 1
    _sq(o, a)
    for _ in range(n - 1):
        _sq(o, o)


def _pow_2_250_1(z, z11):
    # Leaves z ** (2**250 - 1) in _I0 and z ** 11 in z11 (ref10's chain; shared by inversion
    # and by Ed25519's square root). Uses _I0.._I3.
    t0 = _I0; t1 = _I1; t2 = _I2; t3 = _I3
    _sq(t0, z)                  # z^2
    _sqn(t1, t0, 2)             # z^8
    _mul(t1, z, t1)             # z^9
    _mul(z11, t0, t1)           # z^11
    _sq(t0, z11)                # z^22
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


def x25519(scalar, u):
    """X25519(scalar, u) as 32 bytes; inputs are 32-byte buffers (lengths checked by the
    caller). Returns (result, all_zero_flag) so the caller raises its own error."""
    k = _K
    for i in range(32):
        k[i] = scalar[i]
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
        _sq(_AA, _A)
        _addk(_B, _X2, _Z2, -1)
        _sq(_BB, _B)
        _addk(_E, _AA, _BB, -1)
        _addk(_C, _X3, _Z3, 1)
        _addk(_D, _X3, _Z3, -1)
        _mul(_D, _D, _A)       # DA
        _mul(_C, _C, _B)       # CB
        _addk(_X3, _D, _C, 1)
        _sq(_X3, _X3)          # x3 = (DA + CB)^2
        _addk(_Z3, _D, _C, -1)
        _sq(_Z3, _Z3)
        _mul(_Z3, _Z3, _X1)    # z3 = x1 * (DA - CB)^2
        _mul(_X2, _AA, _BB)    # x2 = AA * BB
        _addk(_A, _FE0, _E, 121665)
        _addk(_A, _A, _AA, 1)
        _mul(_Z2, _E, _A)      # z2 = E * (AA + a24 * E)
    _cswap(_X2, _X3, swap)
    _cswap(_Z2, _Z3, swap)
    _invert(_Z2, _Z2)
    _mul(_X2, _X2, _Z2)
    zero = _is_zero(_X2)  # reduces _X2 in place
    out = bytearray(32)
    _tobytes(out, 0, _X2)
    for i in range(32):
        k[i] = 0
    return out, zero
