# The node's secret key file on the board's filesystem: read it, or create it on the board.
#
# Format (docs/design.md, "Key text format"): the 32-byte Ed25519 seed as 64 hex characters
# on one line. Creating the key ON the board is the least-exposure option: the secret never
# exists on a host or crosses a cable, only the public key is printed. The write goes to a
# temporary name first and is renamed into place, so a power cut never leaves half a key
# (littlefs and FAT renames are atomic for this purpose).
#
# What this cannot do: board filesystems (littlefs/FAT) have no permissions, so anyone with
# REPL or mpremote access can read the key. The unix port's open() has no mode argument and
# its os module has no chmod, so there the temporary file is created empty, narrowed to 0600
# with chmod(1), and only then written (see _owner_only). ossuary-deploy and ossuary-keygen
# create host key files 0600 themselves. docs/boards.md says this too.

import os

from ossuary_micro.keys import parse_key, format_key, KEY_LEN
from ossuary_micro.errors import KeyFormatError

_ENOENT = 2


def read_secret_key(path):
    """The 32-byte seed in `path`. Raises OSError (unreadable) or KeyFormatError."""
    with open(path, "rb") as f:
        data = f.read(4 * KEY_LEN)  # 64 hex + newline fits; more is not a key file
    if len(data) >= 4 * KEY_LEN:
        raise KeyFormatError("key file is too long")
    return parse_key(data)


def write_secret_key(path, seed):
    """Store `seed` (32 bytes) in `path` as hex, via a temporary file and a rename.

    Raises OSError, KeyFormatError (seed not 32 bytes). The hex text is built in a
    bytearray that is zeroed afterwards (the str from format_key cannot be wiped: it is
    left to the garbage collector, which is why the key is never logged or returned).
    """
    text = bytearray((format_key(seed) + "\n").encode())
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            _owner_only(tmp)          # before a single secret byte is in the file
            f.write(text)
        try:
            os.remove(path)  # FAT's rename does not replace an existing file
        except OSError:
            pass
        os.rename(tmp, path)
    finally:
        for i in range(len(text)):
            text[i] = 0
        try:
            os.remove(tmp)
        except OSError:
            pass


def _owner_only(path):
    # Only the unix port has a shell (os.system) and POSIX permissions; board filesystems
    # have neither. Refuse rather than leave a world-readable key if chmod fails.
    system = getattr(os, "system", None)
    if system is None:
        return
    if "'" in path:
        raise OSError("key path must not contain a quote: %s" % path)
    if system("chmod 600 '%s'" % path) != 0:
        raise OSError("cannot restrict permissions of %s" % path)


def read_or_create(path, random, public_of, log):
    """The seed from `path`; if the file does not exist, make a new key there first.

    random(n) -> bytes is the board's random source; public_of(seed) -> 32-byte public key
    (a backend's ed25519_public); log(text) receives the new PUBLIC key for the collector's
    known-nodes file. Raises OSError, KeyFormatError.
    """
    try:
        return read_secret_key(path)
    except OSError as e:
        if (e.args[0] if e.args else None) != _ENOENT:
            raise
    seed = bytes(random(KEY_LEN))
    if len(seed) != KEY_LEN:
        raise OSError("random source returned %d bytes" % len(seed))
    write_secret_key(path, seed)
    log("created a new node key in %s; public key: %s" % (path, format_key(public_of(seed))))
    return seed
