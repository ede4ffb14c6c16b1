# Noise_XX_25519_ChaChaPoly_SHA256 (Noise specification revision 34), layered as its section 5:
# CipherState (5.1) -> SymmetricState (5.2) -> HandshakeState (5.3), with the spec's method
# names and the spec's step text as a comment above each line that implements it.
#
# Only what protocol 2 needs: DH = 25519, cipher = ChaChaPoly, hash = SHA256, pattern = XX.
# X25519 and ChaCha20-Poly1305 come from the crypto backend (get_backend()); SHA-256, HMAC and
# HKDF from hashlib via hkdf.py. Framing is the caller's job (connection2.py): these objects
# turn payloads into Noise messages and back, nothing more.
#
# Errors: a failed decryption raises AuthenticationFailed and leaves the nonce unchanged (5.1);
# a bad DH (all-zero output), a short message or an exhausted nonce raise CryptoError. Nothing
# else escapes: backend errors are already ours.

import hashlib

from .errors import CryptoError, AuthenticationFailed, LocalProtocolError
from .hkdf import sha256, noise_hkdf, HASHLEN

_sha256 = hashlib.sha256

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
DHLEN = 32
TAGLEN = 16
KEYLEN = 32

# The XX pattern (section 7.5): no pre-messages; three message patterns of tokens.
#   -> e
#   <- e, ee, s, es
#   -> s, se
XX = (("e",), ("e", "ee", "s", "es"), ("s", "se"))
_N_MESSAGES = 3                     # len(XX)

_MAX_NONCE_BYTES = b"\xff" * 8      # n = 2^64 - 1 is reserved for Rekey (5.1)


_ZEROS = bytes(64)
_ZEROS12 = bytes(12)
_prologue_h = None                  # (prologue, h after MixHash(prologue)): HandshakeState


def _wipe(buf):
    # Zero a secret in place (one slice store; a key is at most 64 bytes here).
    if buf is not None:
        buf[:] = _ZEROS[:len(buf)]


class KeyPair:
    """An X25519 key pair: `public` (32 bytes) and `dh(public_key)` (Noise's DH()).

    Made by key_pair(); the secret stays in a bytearray that wipe() zeroes. On a backend with
    the optional `x25519_key(secret)` (pyca: one OpenSSL key object) the DHs reuse that object,
    one scalar multiplication each instead of two; Python cannot wipe OpenSSL's copy."""

    def __init__(self, backend, secret):
        if len(secret) != DHLEN:
            raise CryptoError("X25519 secret must be 32 bytes")
        self._secret = bytearray(secret)
        make = getattr(backend, "x25519_key", None)
        if make is not None:
            self.public, self._dh = make(bytes(secret))
        else:
            self.public = backend.x25519_base(bytes(secret))
            self._dh = None
        self._backend = backend

    def dh(self, public_key):
        """DH(key_pair, public_key): X25519; CryptoError for an all-zero output."""
        if self._dh is not None:
            return self._dh(public_key)
        return self._backend.x25519(bytes(self._secret), public_key)

    def wipe(self):
        _wipe(self._secret)
        self._dh = None


def key_pair(backend, secret):
    """KeyPair of a 32-byte X25519 secret. Raises CryptoError for a wrong length."""
    return KeyPair(backend, secret)


class CipherState:
    """Noise 5.1: a key `k` (or none) and a 64-bit nonce `n`.

    The nonce lives as the 12-byte ChaChaPoly nonce itself (4 zero bytes, then n little-endian,
    section 12.3) and is incremented in place, so records allocate no big ints on boards
    whose small ints are 31 bits."""

    def __init__(self, backend):
        self.backend = backend
        self.k = None
        self._nonce = bytearray(12)

    def initialize_key(self, key):
        """InitializeKey(key): sets k = key and n = 0."""
        # Sets k = key. Sets n = 0.
        if key is None:
            self.k = None
        else:
            self.k = bytearray(key)
        self._nonce[:] = _ZEROS12

    def has_key(self):
        """HasKey(): true if k is non-empty."""
        return self.k is not None

    def set_nonce(self, nonce):
        """SetNonce(nonce): sets n = nonce (an int 0 .. 2^64-1)."""
        if not 0 <= nonce < (1 << 64):
            raise LocalProtocolError("nonce out of range")
        for i in range(8):
            self._nonce[4 + i] = (nonce >> (8 * i)) & 0xFF

    @property
    def n(self):
        """The current nonce as an int (allocates a big int on boards: for tests and docs)."""
        return int.from_bytes(bytes(self._nonce[4:12]), "little")

    def _check_nonce(self):
        # 5.1: n = 2^64-1 is reserved; once n reaches it, further encryption or decryption
        # signals an error (the caller must have rekeyed or ended the session well before).
        if self._nonce[4] == 0xFF and bytes(self._nonce[4:12]) == _MAX_NONCE_BYTES:
            raise CryptoError("nonce exhausted")

    def _increment(self):
        i = 4
        while i < 12:
            v = (self._nonce[i] + 1) & 0xFF
            self._nonce[i] = v
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
        self._check_nonce()
        self.backend.aead_seal(self.k, self._nonce, src, soff, n, dst, doff, ad)
        self._increment()
        return n + TAGLEN

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
        if n < TAGLEN:
            raise CryptoError("ciphertext shorter than a tag")
        self._check_nonce()
        self.backend.aead_open(self.k, self._nonce, src, soff, n - TAGLEN, dst, doff, ad)
        self._increment()
        return n - TAGLEN

    def encrypt_with_ad(self, ad, plaintext):
        """EncryptWithAd(ad, plaintext) -> bytes (allocating form, for the handshake)."""
        # The steps of encrypt_with_ad_into, inline: the handshake runs this four times per
        # side, and a call less each time is measurable (issue 11's handshake benchmark).
        if self.k is None:
            return bytes(plaintext)
        self._check_nonce()
        n = len(plaintext)
        out = bytearray(n + TAGLEN)
        self.backend.aead_seal(self.k, self._nonce, plaintext, 0, n, out, 0, ad)
        self._increment()
        return bytes(out)

    def decrypt_with_ad(self, ad, ciphertext):
        """DecryptWithAd(ad, ciphertext) -> bytes (allocating form, for the handshake)."""
        # decrypt_with_ad_into's steps, inline (see encrypt_with_ad).
        if self.k is None:
            return bytes(ciphertext)
        n = len(ciphertext) - TAGLEN
        if n < 0:
            raise CryptoError("ciphertext shorter than a tag")
        self._check_nonce()
        out = bytearray(n)
        self.backend.aead_open(self.k, self._nonce, ciphertext, 0, n, out, 0, ad)
        self._increment()
        return bytes(out)

    def rekey(self):
        """Rekey(): k = REKEY(k), n unchanged (section 4.2: the first 32 bytes of
        ENCRYPT(k, maxnonce, zerolen, zeros))."""
        if self.k is None:
            raise LocalProtocolError("rekey without a key")
        maxnonce = bytearray(4) + bytearray(_MAX_NONCE_BYTES)
        out = bytearray(KEYLEN + TAGLEN)
        self.backend.aead_seal(self.k, maxnonce, bytes(KEYLEN), 0, KEYLEN, out, 0, b"")
        for i in range(KEYLEN):
            self.k[i] = out[i]
        _wipe(out)

    def wipe(self):
        _wipe(self.k)
        self.k = None


class SymmetricState:
    """Noise 5.2: a CipherState plus the chaining key `ck` and handshake hash `h`."""

    def __init__(self, backend, protocol_name=PROTOCOL_NAME):
        # InitializeSymmetric(protocol_name):
        # If protocol_name is less than or equal to HASHLEN bytes in length, sets h equal to
        # protocol_name with zero bytes appended to make HASHLEN bytes. Otherwise sets
        # h = HASH(protocol_name).
        if len(protocol_name) <= HASHLEN:
            self.h = bytes(protocol_name) + bytes(HASHLEN - len(protocol_name))
        else:
            self.h = sha256(protocol_name)
        # Sets ck = h.
        self.ck = bytearray(self.h)
        # Calls InitializeKey(empty).
        self.cs = CipherState(backend)
        self.cs.initialize_key(None)

    def mix_key(self, input_key_material):
        """MixKey(input_key_material)."""
        # Sets ck, temp_k = HKDF(ck, input_key_material, 2).
        ck, temp_k = noise_hkdf(self.ck, input_key_material, 2)
        self.ck[:] = ck
        # If HASHLEN is 64, then truncates temp_k to 32 bytes (not here: HASHLEN is 32).
        # Calls InitializeKey(temp_k).
        self.cs.initialize_key(temp_k)

    def mix_hash(self, data):
        """MixHash(data): sets h = HASH(h || data)."""
        self.h = _sha256(self.h + data).digest()     # data: bytes or bytearray

    def get_handshake_hash(self):
        """GetHandshakeHash(): h (a channel binding value once the handshake is done)."""
        return self.h

    def encrypt_and_hash(self, plaintext):
        """EncryptAndHash(plaintext)."""
        # Sets ciphertext = EncryptWithAd(h, plaintext), calls MixHash(ciphertext), and
        # returns ciphertext.
        ciphertext = self.cs.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext):
        """DecryptAndHash(ciphertext). Raises AuthenticationFailed (h unchanged)."""
        # Sets plaintext = DecryptWithAd(h, ciphertext), calls MixHash(ciphertext), and
        # returns plaintext.
        plaintext = self.cs.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self, backend):
        """Split() -> (c1, c2): c1 for initiator-to-responder, c2 for the other way."""
        # Sets temp_k1, temp_k2 = HKDF(ck, zerolen, 2).
        temp_k1, temp_k2 = noise_hkdf(self.ck, b"", 2)
        # Creates two new CipherState objects c1 and c2.
        c1 = CipherState(backend)
        c2 = CipherState(backend)
        # Calls c1.InitializeKey(temp_k1) and c2.InitializeKey(temp_k2).
        c1.initialize_key(temp_k1)
        c2.initialize_key(temp_k2)
        # Returns the pair (c1, c2).
        return c1, c2

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
        # Sets message_patterns to the message patterns from handshake_pattern.
        self.message_patterns = XX
        self._next = 0

    @property
    def finished(self):
        return self._next == len(self.message_patterns)

    @property
    def my_turn(self):
        """True when the next message is ours to write."""
        return (self._next % 2 == 0) == self.initiator

    def _generate_keypair(self):
        # GENERATE_KEYPAIR(): a fresh X25519 key pair from the random source.
        sk = self._random(DHLEN)
        if sk is None or len(sk) != DHLEN:
            raise CryptoError("random source returned a wrong length")
        return KeyPair(self.backend, sk)

    def _token_dh(self, token):
        # "ee": Calls MixKey(DH(e, re)).
        # "es": Calls MixKey(DH(e, rs)) if initiator, MixKey(DH(s, re)) if responder.
        # "se": Calls MixKey(DH(s, re)) if initiator, MixKey(DH(e, rs)) if responder.
        if token == "ee":
            self.ss.mix_key(self.e.dh(self.re))
        elif (token == "es") == self.initiator:
            self.ss.mix_key(self.e.dh(self.rs))
        else:
            self.ss.mix_key(self.s.dh(self.re))

    def write_message(self, payload):
        """WriteMessage(payload) -> (message bytes, split pair or None).

        Raises LocalProtocolError when it is not our turn, CryptoError for a bad DH."""
        nxt = self._next
        if nxt >= _N_MESSAGES or (nxt % 2 == 0) != self.initiator:        # finished, or not my_turn
            raise LocalProtocolError("not our turn to write a handshake message")
        out = bytearray()
        # Fetches and deletes the next message pattern from message_patterns, then
        # sequentially processes each token from the message pattern:
        for token in self.message_patterns[nxt]:
            if token == "e":
                # Sets e (which must be empty) to GENERATE_KEYPAIR(). Appends e.public_key to
                # the buffer. Calls MixHash(e.public_key).
                if self.e is None:
                    self.e = self._generate_keypair()
                out += self.e.public
                self.ss.mix_hash(self.e.public)
            elif token == "s":
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
        if nxt >= _N_MESSAGES or (nxt % 2 == 0) == self.initiator:        # finished, or my_turn
            raise LocalProtocolError("not our turn to read a handshake message")
        message = bytes(message)
        p = 0
        has_key = self.ss.cs.has_key()
        # Fetches and deletes the next message pattern from message_patterns, then
        # sequentially processes each token from the message pattern:
        for token in self.message_patterns[nxt]:
            if token == "e":
                # Sets re (which must be empty) to the next DHLEN bytes from the message.
                # Calls MixHash(re.public_key).
                if len(message) - p < DHLEN:
                    raise CryptoError("handshake message too short")
                self.re = message[p:p + DHLEN]
                p += DHLEN
                self.ss.mix_hash(self.re)
            elif token == "s":
                # Sets temp to the next DHLEN + 16 bytes of the message if HasKey() == True,
                # or to the next DHLEN bytes otherwise. Sets rs (which must be empty) to
                # DecryptAndHash(temp).
                n = DHLEN + (TAGLEN if has_key else 0)
                if len(message) - p < n:
                    raise CryptoError("handshake message too short")
                self.rs = self.ss.decrypt_and_hash(message[p:p + n])
                p += n
            else:
                self._token_dh(token)
            has_key = self.ss.cs.has_key()
        # Calls DecryptAndHash() on the remaining bytes of the message and stores the output
        # into payload_buffer.
        if has_key and len(message) - p < TAGLEN:
            raise CryptoError("handshake message too short")
        payload = self.ss.decrypt_and_hash(message[p:])
        self._next = nxt = nxt + 1
        # If there are no more message patterns returns two new CipherState objects by
        # calling Split().
        return payload, (self.ss.split(self.backend) if nxt == _N_MESSAGES else None)

    def get_handshake_hash(self):
        return self.ss.get_handshake_hash()

    def wipe(self):
        """Wipe the secrets this object holds: the ephemeral secret, ck and k (not `s`, which
        belongs to the caller)."""
        self.ss.wipe()
        if self.e is not None:
            self.e.wipe()
