# The node's secret key file on the board's filesystem: read it, or create it on the board.
#
# Format (docs/design.md, "Key text format"): the 32-byte Ed25519 seed as 64 hex characters
# on one line. Creating the key ON the board is the least-exposure option: the secret never
# exists on a host or crosses a cable, only the public key is printed. The write goes to a
# temporary name first and is renamed into place, so a power cut never leaves half a key
# (littlefs and FAT renames are atomic for this purpose).
#
# Permissions: the temporary file is owner-only from the moment it exists, never narrowed
# afterwards (a reader who opens it while it is still world-readable keeps the descriptor and
# reads the key later). Where os.open exists (CPython) it is created O_EXCL | O_NOFOLLOW with
# mode 0600. The MicroPython unix port has neither os.open, os.chmod, os.umask nor a mode
# argument to open() (and its standard build has no ffi); what it has is os.system, so the
# empty file is created by the shell under `umask 077` with noclobber (`set -C`: refuses an
# existing file or symlink), checked with os.stat to be a regular file with no group/other
# bits, and only then opened and written (see _create_owner_only). Someone who can write to
# the key's directory can still race between that creation and our open(): keep the key in a
# directory only the node's user can write.
#
# What this cannot do: board filesystems (littlefs/FAT) have no permissions, so anyone with
# REPL or mpremote access can read the key. ossuary-deploy and ossuary-keygen create host
# key files 0600 themselves. docs/boards.md says this too.

import os

from ossuary_micro.keys import parse_key, format_key, KEY_LEN
from ossuary_micro.errors import KeyFormatError

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# Private constants: compiled into the code, no global and no interned name on a board.
_ENOENT = const(2)


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
        try:
            os.remove(tmp)    # a leftover from a power cut; the creation below must be fresh
        except OSError:
            pass
        f = _create_owner_only(tmp)
        with f:
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


_S_IFMT = const(0o170000)
_S_IFREG = const(0o100000)


def _create_owner_only(path):
    # A new, empty file at `path`, owner-only from its creation, open for binary writing.
    # Raises OSError if it exists already or cannot be made private.
    if hasattr(os, "open"):
        # CPython (host tests, tools): atomic create with the final mode.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o600)
        return os.fdopen(fd, "wb")
    system = getattr(os, "system", None)
    if system is None:
        return open(path, "wb")   # a board: no permissions to set (see the module comment)
    # MicroPython unix port: the shell creates the file under umask 077, refusing anything
    # that already exists (noclobber), so it is never readable by others, not even empty.
    if "'" in path:
        raise OSError("key path must not contain a quote: %s" % path)
    if system("umask 077 && set -C && : > '%s'" % path) != 0:
        raise OSError("cannot create %s owner-only" % path)
    mode = os.stat(path)[0]
    if mode & _S_IFMT != _S_IFREG or mode & 0o077:
        raise OSError("%s is not a private regular file" % path)
    return open(path, "wb")


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
