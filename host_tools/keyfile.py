# Key files on the host: read/write a secret key file, read lists of authorized public keys.
#
# Formats (docs/design.md, "Key text format"):
#   secret key file  the 32-byte Ed25519 seed as 64 hex characters on one line, created 0600
#   key list file    public keys, one per line as 64 hex characters; blank lines and `#`
#                    comments (whole line or after the key) are ignored
#   --trust value    either 64 hex characters (one key) or the path of a key list file
#
# Every failure is a KeyFileError (a KeyFormatError) whose message names the file and line,
# never the key material.

import os

from ossuary_micro.errors import KeyFormatError
from ossuary_micro.keys import parse_key, format_key, check_key

# A key file is tiny; refuse to read anything bigger (a wrong path pointing at a disk image).
MAX_KEY_FILE = 1 << 20


class KeyFileError(KeyFormatError):
    """A key file is missing, unreadable, too big or malformed."""


def _read_text(path, what):
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as e:
        raise KeyFileError("cannot read %s %s: %s" % (what, path, e.strerror or e))
    if len(data) > MAX_KEY_FILE:
        raise KeyFileError("%s %s is too big to be a key file" % (what, path))
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError("%s %s is not ASCII text" % (what, path))


def _key_lines(text):
    # (line number, key text) for every line that holds something besides a comment.
    for no, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].strip()
        if body:
            yield no, body


def read_secret_key(path):
    """The 32-byte seed from a secret key file (exactly one key line; comments allowed).

    Raises KeyFileError. Does not complain about permissions: see loose_permissions().
    """
    lines = list(_key_lines(_read_text(path, "key file")))
    if len(lines) != 1:
        raise KeyFileError("key file %s must hold exactly one key line (64 hex characters), found %d"
                           % (path, len(lines)))
    no, body = lines[0]
    try:
        return parse_key(body)
    except KeyFormatError:
        # Do not repeat the parser's detail: it could describe secret text.
        raise KeyFileError("key file %s line %d is not 64 hex characters" % (path, no))


def loose_permissions(path):
    """True if a secret key file can be read by the group or others (POSIX only)."""
    try:
        return bool(os.stat(path).st_mode & 0o077)
    except (OSError, AttributeError):
        return False


def read_key_list(path):
    """A list of 32-byte public keys from a key list file. Raises KeyFileError."""
    keys = []
    for no, body in _key_lines(_read_text(path, "key list")):
        try:
            keys.append(parse_key(body))
        except KeyFormatError:
            raise KeyFileError("key list %s line %d is not 64 hex characters" % (path, no))
    return keys


def parse_trust(value):
    """Keys named by one --trust value: 64 hex characters, or the path of a key list file.

    Raises KeyFileError when it is neither (or the file is bad or holds no key).
    """
    v = value.strip()
    if len(v) == 64 and not os.path.exists(value):
        try:
            return [parse_key(v)]
        except KeyFormatError:
            pass
    if not os.path.exists(value):
        raise KeyFileError("--trust %s: neither 64 hex characters nor an existing file" % value)
    keys = read_key_list(value)
    if not keys:
        raise KeyFileError("key list %s holds no key" % value)
    return keys


def _write_new(path, text, mode):
    # Create the file (never overwrite: losing a secret key is not undoable) with `mode`
    # from the start, so there is no window where a secret is world-readable.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeyFileError("%s already exists; not overwriting it" % path)
    except OSError as e:
        raise KeyFileError("cannot create %s: %s" % (path, e.strerror or e))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except OSError as e:
        raise KeyFileError("cannot write %s: %s" % (path, e.strerror or e))


def write_secret_key(path, seed):
    """Create `path` (mode 0600, must not exist) holding the seed as one hex line.

    Raises KeyFileError (exists, cannot create) or KeyFormatError (seed not 32 bytes).
    """
    check_key(seed, "secret key")
    _write_new(path, format_key(seed) + "\n", 0o600)


def write_public_key(path, public):
    """Create `path` (mode 0644, must not exist) holding a public key as one hex line."""
    check_key(public, "public key")
    _write_new(path, format_key(public) + "\n", 0o644)
