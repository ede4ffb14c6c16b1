# ossuary-keygen: create a secret key file (0600), print public keys, manage the known-nodes file.
#
#   ossuary-keygen PATH [--force]      new key pair; secret seed -> PATH (0600), public hex -> stdout
#   ossuary-keygen --public PATH       print the public key of an existing secret key file
#   ossuary-keygen known [-f FILE] list | add NAME HEX | remove NAME
#
# Exit codes: 0 ok, 2 usage, 3 key file problem (exists, unreadable, malformed),
# 4 known-nodes file problem. Errors are one line on stderr; no key material is ever logged.

import argparse
import os
import sys

from ossuary_micro.errors import OssuaryError
from ossuary_micro.keys import format_key, generate_keypair
from host_tools.keyfile import KeyFileError, read_secret_key, write_secret_key, loose_permissions
from host_tools import known_nodes

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_KEYFILE = 3


def public_from_seed(seed):
    """The Ed25519 public key (32 bytes) of a 32-byte seed."""
    from ossuary_micro.crypto import get_backend
    return get_backend().ed25519_public(seed)


def create_key_file(path, force=False):
    """Generate a key pair and write its seed to `path`, owner-only (0600) from the moment
    the file exists. Returns the public key (32 bytes).

    Without `force` an existing file is never touched. With `force` the new key is written
    to a fresh 0600 temporary file that then replaces `path` atomically, so a crash leaves
    either the old key or the new one, and the old file's permissions are not inherited.
    Raises KeyFileError (exists, cannot write) or NoRandomSource.
    """
    seed, public = generate_keypair()
    if not force:
        write_secret_key(path, seed)
        return public
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, ".%s.%d.new" % (os.path.basename(path), os.getpid()))
    try:
        os.unlink(tmp)          # a leftover from a crashed run of ours
    except FileNotFoundError:
        pass
    except OSError as e:
        raise KeyFileError("cannot prepare %s: %s" % (path, e.strerror or e))
    write_secret_key(tmp, seed)
    try:
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise KeyFileError("cannot replace %s: %s" % (path, e.strerror or e))
    return public


def load_or_create(path, create=False, log=None):
    """(seed, public, created) for the secret key file at `path`; with `create` a missing
    file is generated first. Raises KeyFileError with a hint when it is missing."""
    if not os.path.exists(path):
        if not create:
            raise KeyFileError("no key file at %s (create it with `ossuary-keygen %s` or pass --init)"
                               % (path, path))
        public = create_key_file(path)
        seed = read_secret_key(path)
        return seed, public, True
    seed = read_secret_key(path)
    if loose_permissions(path) and log is not None:
        log("key file %s is readable by group/others; run: chmod 600 %s" % (path, path))
    return seed, public_from_seed(seed), False


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "known":
        return known_nodes.known_command(argv[1:], prog="ossuary-keygen known")
    ap = argparse.ArgumentParser(
        prog="ossuary-keygen",
        description="Create an Ossuary secret key file (mode 0600) and print its public key as 64 hex "
                    "characters. `ossuary-keygen known ...` manages the known-nodes file.",
        epilog="known-nodes: ossuary-keygen known [-f FILE] list | add NAME HEX | remove NAME")
    ap.add_argument("path", help="secret key file to create (or read, with --public)")
    ap.add_argument("--force", action="store_true", help="replace an existing key file")
    ap.add_argument("--public", action="store_true",
                    help="do not create: print the public key of the existing key file PATH")
    args = ap.parse_args(argv)
    try:
        if args.public:
            seed = read_secret_key(args.path)
            if loose_permissions(args.path):
                sys.stderr.write("ossuary-keygen: warning: %s is readable by group/others; "
                                 "run: chmod 600 %s\n" % (args.path, args.path))
            print(format_key(public_from_seed(seed)))
            return EXIT_OK
        public = create_key_file(args.path, force=args.force)
    except KeyFileError as e:
        msg = str(e)
        if "already exists" in msg:
            msg += " (use --force to replace it)"
        sys.stderr.write("ossuary-keygen: error: %s\n" % msg)
        return EXIT_KEYFILE
    except OssuaryError as e:
        sys.stderr.write("ossuary-keygen: error: %s\n" % e)
        return EXIT_KEYFILE
    sys.stderr.write("wrote secret key to %s (mode 0600); public key:\n" % args.path)
    print(format_key(public))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
