# Protocol 2's Noise HKDF on CPython: the package's _host.py makes it noise.noise_hkdf
# (host-only: deploy.HOST_ONLY keeps it off boards, where noise.py keeps its generic form).

import hashlib

# RFC 2104 HMAC spelled out on hashlib's one-shot SHA-256, the 32-byte keys padded
# and XORed with bytes.translate (a C loop): 3 us less per HKDF than OpenSSL's one-shot
# HMAC (_hashlib.hmac_digest sets up an HMAC context per call), and a handshake runs 4 of
# these per side (issue 11's handshake benchmark). A chaining key that is not 32 bytes
# (never, in Noise: HASHLEN) takes the one-shot HMAC. tests/portable/test_proto2.py checks
# it against the generic form.
from _hashlib import hmac_digest as _hd
_sha = hashlib.sha256
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_I32 = b"\x36" * 32          # the 32 zero bytes that pad a 32-byte key, XORed
_O32 = b"\x5c" * 32


def noise_hkdf(chaining_key, input_key_material, num_outputs):
    """Noise rev 34 section 4.3 HKDF(chaining_key, input_key_material, num_outputs).

    Returns a tuple of 2 or 3 HASHLEN-byte outputs."""
    ck = bytes(chaining_key)
    if len(ck) == 32:
        t = _sha(ck.translate(_IPAD) + _I32 + bytes(input_key_material)).digest()
        temp_key = _sha(ck.translate(_OPAD) + _O32 + t).digest()
    else:
        temp_key = _hd(ck, input_key_material, "sha256")
    ti = temp_key.translate(_IPAD) + _I32
    to = temp_key.translate(_OPAD) + _O32
    output1 = _sha(to + _sha(ti + b"\x01").digest()).digest()
    output2 = _sha(to + _sha(ti + output1 + b"\x02").digest()).digest()
    if num_outputs == 2:
        return output1, output2
    return output1, output2, _sha(to + _sha(ti + output2 + b"\x03").digest()).digest()
