# Noise_XX_25519_ChaChaPoly_SHA256 (Noise specification revision 34), layered as its section 5:
# CipherState (5.1) -> SymmetricState (5.2) -> HandshakeState (5.3), with the spec's method
# names and the spec's step text as a comment above each line that implements it.
#
# Only what protocol 2 needs: DH = 25519, cipher = ChaChaPoly, hash = SHA256, pattern = XX.
# X25519 and ChaCha20-Poly1305 come from the crypto backend (get_backend()); SHA-256, HMAC and
# the Noise HKDF (4.3) from hashlib, here (hkdf.py, host and tests only, adds RFC 5869's HKDF on
# top). Framing is the caller's job (connection2.py): these objects turn payloads into Noise
# messages and back, nothing more.
#
# On a board this module's code and names are heap for as long as a session runs (docs/
# boards.md), so it has only what a connection calls: sizes and tokens are private consts,
# and helpers with one caller are written into it.
#
# Errors: a failed decryption raises AuthenticationFailed and leaves the nonce unchanged (5.1);
# a bad DH (all-zero output), a short message or an exhausted nonce raise CryptoError. Nothing
# else escapes: backend errors are already ours.

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x
import hashlib

from .errors import CryptoError, LocalProtocolError

_sha256 = hashlib.sha256

_PROTOCOL_NAME = const(b"Noise_XX_25519_ChaChaPoly_SHA256")   # HASHLEN (32) bytes long
_HASHLEN = const(32)
_DHLEN = const(32)
_TAGLEN = const(16)
_KEYLEN = const(32)

# The XX pattern (section 7.5): no pre-messages; three message patterns of tokens.
#   -> e
#   <- e, ee, s, es
#   -> s, se
# Tokens as small ints (_E and _S are the key tokens; the three DH tokens follow).
_E = const(0)
_S = const(1)
_EE = const(2)
_ES = const(3)
_SE = const(4)
_XX = const(((_E,), (_E, _EE, _S, _ES), (_S, _SE)))
_N_MESSAGES = const(3)              # len(_XX)

_MAX_NONCE_BYTES = const(b"\xff\xff\xff\xff\xff\xff\xff\xff")   # n = 2^64 - 1: for Rekey (5.1)

_ZEROS = bytes(64)
_prologue_h = None                  # (prologue, h after MixHash(prologue)): HandshakeState


def _wipe(buf):
    # Zero a secret in place (one slice store; a key is at most 64 bytes here).
    if buf is not None:
        buf[:] = _ZEROS[:len(buf)]


def hmac_sha256(key, data):
    """RFC 2104 HMAC-SHA256 of `data` under `key` (any length) on hashlib alone (MicroPython
    has no `hmac` module). Returns 32 bytes."""
    if len(key) > 64:                   # longer than SHA-256's block: hashed first
        key = _sha256(key).digest()
    # The pads (ipad = 0x36, opad = 0x5c repeated) start as the pad bytes of a zero key; only
    # the key's own bytes need XOR-ing.
    ipad = bytearray(b"\x36" * 64)
    opad = bytearray(b"\x5c" * 64)
    for i in range(len(key)):
        ipad[i] ^= key[i]
        opad[i] ^= key[i]
    inner = _sha256(ipad)
    inner.update(data)
    outer = _sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def noise_hkdf(ck, ikm, n):
    """Noise rev 34 section 4.3 HKDF(chaining_key, input_key_material, num_outputs): a tuple
    of n = 2 or 3 HASHLEN-byte outputs."""
    # Sets temp_key = HMAC-HASH(chaining_key, input_key_material).
    temp_key = hmac_sha256(ck, ikm)
    # Sets output1 = HMAC-HASH(temp_key, byte(0x01)).
    output1 = hmac_sha256(temp_key, b"\x01")
    # Sets output2 = HMAC-HASH(temp_key, output1 || byte(0x02)).
    output2 = hmac_sha256(temp_key, output1 + b"\x02")
    # If num_outputs == 2 then returns the pair (output1, output2).
    if n == 2:
        return output1, output2
    # Sets output3 = HMAC-HASH(temp_key, output2 || byte(0x03)).
    # Returns the triple (output1, output2, output3).
    return output1, output2, hmac_sha256(temp_key, output2 + b"\x03")


# On CPython the package's _host.py replaces noise_hkdf with _hkdf_host.py's faster one of the
# same steps (host-only, never deployed: a board keeps the form above).
# tests/portable/test_proto2.py checks both against RFC 5869.


class KeyPair:
    """An X25519 key pair of a 32-byte secret: `public` (32 bytes) and `dh(public_key)`
    (Noise's DH()). Raises CryptoError for a wrong length.

    The secret stays in a bytearray that wipe() zeroes. On a backend with the optional
    `x25519_key(secret)` (pyca: one OpenSSL key object) the DHs reuse that object, one scalar
    multiplication each instead of two; Python cannot wipe OpenSSL's copy."""

    def __init__(self, backend, secret):
        if len(secret) != _DHLEN:
            raise CryptoError("X25519 secret must be 32 bytes")
        self._secret = bytearray(secret)
        make = getattr(backend, "x25519_key", None)
        if make is not None:
            self.public, self._dh = make(bytes(secret))
        else:
            self.public = backend.x25519_base(bytes(secret))
            self._dh = None
        self.backend = backend

    def dh(self, public_key):
        """DH(key_pair, public_key): X25519; CryptoError for an all-zero output."""
        if self._dh is not None:
            return self._dh(public_key)
        return self.backend.x25519(bytes(self._secret), public_key)

    def wipe(self):
        _wipe(self._secret)
        self._dh = None


class CipherState:
    """Noise 5.1: a key `k` (or none) and a 64-bit nonce `n`. CipherState(backend, key) is
    InitializeKey(key): k = key (None: empty), n = 0.

    The nonce lives as the 12-byte ChaChaPoly nonce itself (4 zero bytes, then n little-endian,
    section 12.3) and is incremented in place, so records allocate no big ints on boards
    whose small ints are 31 bits."""

    def __init__(self, backend, key=None):
        self.backend = backend
        # Sets k = key. Sets n = 0.
        self.k = None if key is None else bytearray(key)
        self._nonce = bytearray(12)

    def _aead(self, seal, ad, src, soff, n, dst, doff):
        # ENCRYPT (seal) or DECRYPT with k and n, then n++; the nonce steps only once the
        # backend returned (a failed tag check raises first). 5.1: n = 2^64-1 is reserved;
        # once n reaches it, further encryption or decryption signals an error (the caller
        # must have rekeyed or ended the session well before). (The backend's methods are
        # called here, not passed in: a bound method is an allocation per record on a board.)
        nonce = self._nonce
        if nonce[4] == 0xFF and bytes(nonce[4:12]) == _MAX_NONCE_BYTES:
            raise CryptoError("nonce exhausted")
        if seal:
            self.backend.aead_seal(self.k, nonce, src, soff, n, dst, doff, ad)
        else:
            self.backend.aead_open(self.k, nonce, src, soff, n, dst, doff, ad)
        i = 4
        while i < 12:
            v = (nonce[i] + 1) & 0xFF
            nonce[i] = v
            if v:
                return
            i += 1

    def encrypt_with_ad_into(self, ad, src, soff, n, dst, doff):
        """EncryptWithAd into dst[doff:]: writes n + 16 bytes (n bytes when k is empty)
        and returns that count. Raises CryptoError when the nonce is exhausted."""
        # If k is non-empty returns ENCRYPT(k, n++, ad, plaintext). Otherwise returns plaintext.
        if self.k is None:
            dst[doff:doff + n] = memoryview(src)[soff:soff + n]
            return n
        self._aead(True, ad, src, soff, n, dst, doff)
        return n + _TAGLEN

    def decrypt_with_ad_into(self, ad, src, soff, n, dst, doff):
        """DecryptWithAd of the n-byte ciphertext (tag included) at src[soff:], plaintext to
        dst[doff:]; returns the plaintext length. Raises AuthenticationFailed (nonce unchanged,
        nothing written) or CryptoError (too short, nonce exhausted)."""
        # If k is non-empty returns DECRYPT(k, n++, ad, ciphertext). Otherwise returns
        # ciphertext. If an authentication failure occurs in DECRYPT() then n is not
        # incremented and an error is signaled to the caller.
        if self.k is None:
            dst[doff:doff + n] = memoryview(src)[soff:soff + n]
            return n
        if n < _TAGLEN:
            raise CryptoError("ciphertext shorter than a tag")
        self._aead(False, ad, src, soff, n - _TAGLEN, dst, doff)
        return n - _TAGLEN

    def rekey(self):
        """Rekey(): k = REKEY(k), n unchanged (section 4.2: the first 32 bytes of
        ENCRYPT(k, maxnonce, zerolen, zeros))."""
        if self.k is None:
            raise LocalProtocolError("rekey without a key")
        maxnonce = bytearray(4) + _MAX_NONCE_BYTES
        out = bytearray(_KEYLEN + _TAGLEN)
        self.backend.aead_seal(self.k, maxnonce, bytes(_KEYLEN), 0, _KEYLEN, out, 0, b"")
        for i in range(_KEYLEN):
            self.k[i] = out[i]
        _wipe(out)

    def wipe(self):
        _wipe(self.k)
        self.k = None


class SymmetricState:
    """Noise 5.2: a CipherState `cs` plus the chaining key `ck` and handshake hash `h`
    (GetHandshakeHash() is `h`)."""

    def __init__(self, backend):
        # InitializeSymmetric(protocol_name):
        # If protocol_name is less than or equal to HASHLEN bytes in length, sets h equal to
        # protocol_name with zero bytes appended to make HASHLEN bytes. (Ours is exactly
        # HASHLEN bytes: h = protocol_name.)
        self.h = _PROTOCOL_NAME
        # Sets ck = h.
        self.ck = bytearray(_PROTOCOL_NAME)
        # Calls InitializeKey(empty).
        self.cs = CipherState(backend)

    def mix_key(self, ikm):
        """MixKey(input_key_material)."""
        # Sets ck, temp_k = HKDF(ck, input_key_material, 2).
        ck, temp_k = noise_hkdf(self.ck, ikm, 2)
        self.ck[:] = ck
        # If HASHLEN is 64, then truncates temp_k to 32 bytes (not here: HASHLEN is 32).
        # Calls InitializeKey(temp_k).
        cs = self.cs
        cs.wipe()
        self.cs = CipherState(cs.backend, temp_k)

    def mix_hash(self, data):
        """MixHash(data): sets h = HASH(h || data)."""
        self.h = _sha256(self.h + data).digest()     # data: bytes or bytearray

    def encrypt_and_hash(self, plaintext):
        """EncryptAndHash(plaintext)."""
        # Sets ciphertext = EncryptWithAd(h, plaintext), calls MixHash(ciphertext), and
        # returns ciphertext.
        n = len(plaintext)
        out = bytearray(n + _TAGLEN)
        n = self.cs.encrypt_with_ad_into(self.h, plaintext, 0, n, out, 0)
        ciphertext = bytes(out[:n])
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext):
        """DecryptAndHash(ciphertext). Raises AuthenticationFailed (h unchanged)."""
        # Sets plaintext = DecryptWithAd(h, ciphertext), calls MixHash(ciphertext), and
        # returns plaintext.
        out = bytearray(len(ciphertext))
        n = self.cs.decrypt_with_ad_into(self.h, ciphertext, 0, len(ciphertext), out, 0)
        self.mix_hash(ciphertext)
        return bytes(out[:n])

    def split(self, backend):
        """Split() -> (c1, c2): c1 for initiator-to-responder, c2 for the other way."""
        # Sets temp_k1, temp_k2 = HKDF(ck, zerolen, 2).
        temp_k1, temp_k2 = noise_hkdf(self.ck, b"", 2)
        # Creates two new CipherState objects c1 and c2.
        # Calls c1.InitializeKey(temp_k1) and c2.InitializeKey(temp_k2).
        # Returns the pair (c1, c2).
        return CipherState(backend, temp_k1), CipherState(backend, temp_k2)

    def wipe(self):
        _wipe(self.ck)
        self.cs.wipe()


class HandshakeState:
    """Noise 5.3 for the XX pattern: write_message / read_message in turn, then split.

    `s` is the local static KeyPair and is required (XX sends it); the caller owns it (wipe()
    here leaves it alone, so one identity serves many handshakes). `e` may be given for test
    vectors, otherwise it is generated from `random` when needed."""

    def __init__(self, backend, random, initiator, prologue, s, e=None):
        # Initialize(handshake_pattern, initiator, prologue, s, e, rs, re):
        self.backend = backend
        self._random = random
        # Derives a protocol_name byte sequence ... Calls InitializeSymmetric(protocol_name).
        self.ss = SymmetricState(backend)
        # Calls MixHash(prologue). (Its result depends only on the prologue: kept for the
        # last one seen, as every handshake of a program uses the same.)
        global _prologue_h
        if _prologue_h is not None and _prologue_h[0] == prologue:
            self.ss.h = _prologue_h[1]
        else:
            self.ss.mix_hash(prologue)
            _prologue_h = (bytes(prologue), self.ss.h)
        # Sets the initiator, s, e, rs, and re variables to the corresponding arguments.
        self.initiator = initiator
        self.s = s
        self.e = e
        self.rs = None
        self.re = None
        # Calls MixHash() once for each public key listed in the pre-messages (XX: none).
        # Sets message_patterns to the message patterns from handshake_pattern (_XX; _next
        # is the index of the next one).
        self._next = 0

    def _token_dh(self, token):
        # "ee": Calls MixKey(DH(e, re)).
        # "es": Calls MixKey(DH(e, rs)) if initiator, MixKey(DH(s, re)) if responder.
        # "se": Calls MixKey(DH(s, re)) if initiator, MixKey(DH(e, rs)) if responder.
        if token == _EE:
            self.ss.mix_key(self.e.dh(self.re))
        elif (token == _ES) == self.initiator:
            self.ss.mix_key(self.e.dh(self.rs))
        else:
            self.ss.mix_key(self.s.dh(self.re))

    def write_message(self, payload):
        """WriteMessage(payload) -> (message bytes, split pair or None).

        Raises LocalProtocolError when it is not our turn, CryptoError for a bad DH."""
        nxt = self._next
        if nxt >= _N_MESSAGES or (nxt % 2 == 0) != self.initiator:    # finished, or not my turn
            raise LocalProtocolError("not our turn to write a handshake message")
        out = bytearray()
        # Fetches and deletes the next message pattern from message_patterns, then
        # sequentially processes each token from the message pattern:
        for token in _XX[nxt]:
            if token == _E:
                # Sets e (which must be empty) to GENERATE_KEYPAIR(). Appends e.public_key to
                # the buffer. Calls MixHash(e.public_key).
                if self.e is None:
                    # GENERATE_KEYPAIR(): a fresh X25519 key pair from the random source.
                    sk = self._random(_DHLEN)
                    if sk is None or len(sk) != _DHLEN:
                        raise CryptoError("random source returned a wrong length")
                    self.e = KeyPair(self.backend, sk)
                out += self.e.public
                self.ss.mix_hash(self.e.public)
            elif token == _S:
                # Appends EncryptAndHash(s.public_key) to the buffer.
                out += self.ss.encrypt_and_hash(self.s.public)
            else:
                self._token_dh(token)
        # Appends EncryptAndHash(payload) to the buffer.
        out += self.ss.encrypt_and_hash(payload)
        self._next = nxt = nxt + 1
        # If there are no more message patterns returns two new CipherState objects by
        # calling Split().
        return bytes(out), (self.ss.split(self.backend) if nxt == _N_MESSAGES else None)

    def read_message(self, message):
        """ReadMessage(message) -> (payload bytes, split pair or None).

        Raises LocalProtocolError when it is our turn to write, CryptoError when the message
        is too short or a DH is all zero, AuthenticationFailed when a tag does not verify.
        After an error the handshake state is unusable: start a new one."""
        nxt = self._next
        if nxt >= _N_MESSAGES or (nxt % 2 == 0) == self.initiator:        # finished, or my turn
            raise LocalProtocolError("not our turn to read a handshake message")
        message = bytes(message)
        p = 0
        # Fetches and deletes the next message pattern from message_patterns, then
        # sequentially processes each token from the message pattern:
        for token in _XX[nxt]:
            if token == _E:
                # Sets re (which must be empty) to the next DHLEN bytes from the message.
                # Calls MixHash(re.public_key).
                if len(message) - p < _DHLEN:
                    raise CryptoError("handshake message too short")
                self.re = message[p:p + _DHLEN]
                p += _DHLEN
                self.ss.mix_hash(self.re)
            elif token == _S:
                # Sets temp to the next DHLEN + 16 bytes of the message if HasKey() == True,
                # or to the next DHLEN bytes otherwise. Sets rs (which must be empty) to
                # DecryptAndHash(temp).
                n = _DHLEN + (_TAGLEN if self.ss.cs.k is not None else 0)
                if len(message) - p < n:
                    raise CryptoError("handshake message too short")
                self.rs = self.ss.decrypt_and_hash(message[p:p + n])
                p += n
            else:
                self._token_dh(token)
        # Calls DecryptAndHash() on the remaining bytes of the message and stores the output
        # into payload_buffer.
        if self.ss.cs.k is not None and len(message) - p < _TAGLEN:     # HasKey()
            raise CryptoError("handshake message too short")
        payload = self.ss.decrypt_and_hash(message[p:])
        self._next = nxt = nxt + 1
        # If there are no more message patterns returns two new CipherState objects by
        # calling Split().
        return payload, (self.ss.split(self.backend) if nxt == _N_MESSAGES else None)

    def get_handshake_hash(self):
        """GetHandshakeHash(): h (a channel binding value once the handshake is done)."""
        return self.ss.h

    def wipe(self):
        """Wipe the secrets this object holds: the ephemeral secret, ck and k (not `s`, which
        belongs to the caller)."""
        self.ss.wipe()
        if self.e is not None:
            self.e.wipe()
