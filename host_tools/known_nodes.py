# The known-nodes file: which sensor node keys the collector trusts, in the spirit of SSH known_hosts.
#
# Format (text, UTF-8, one entry per line):
#
#     # comment lines and blank lines are kept as they are
#     greenhouse-1  3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29  2025-06-01T12:00:00Z
#
#   NAME        1-32 characters [A-Za-z0-9_.-] (the node name from its config; unique in the file)
#   KEY         the node's Ed25519 public key, 64 hex characters (unique in the file)
#   FIRST-SEEN  when the entry was pinned or added, UTC, ISO 8601 (informational)
#
# Fields are separated by any run of spaces/tabs; `#` starts a comment, on its own line or
# after the fields. A malformed line makes the whole file
# unusable (KnownNodesError naming the line): a trust file we cannot read exactly must not
# be read approximately. Rewrites are atomic (temporary file + os.replace) and keep comments.
#
# Several processes edit the file (the collector pinning under --tofu, `known add/remove` from
# a shell). Every edit is a read-modify-write under an exclusive flock on the file's directory
# (the file itself is replaced by each rename, so it cannot carry the lock; the directory
# needs no stray lock file): the edit re-reads the file after taking the lock, so a `known
# remove` can never be undone by a concurrent pin. The temporary file is created with
# O_EXCL | O_NOFOLLOW under a random name: a planted file or symlink is never written through.
# No edit may grow the file past MAX_FILE, the size start-up accepts.

import fcntl
import os
import re
import threading
import time

from ossuary_micro.errors import KeyFormatError
from ossuary_micro.keys import parse_key, format_key

NAME_RE = re.compile(r"\A[A-Za-z0-9_.-]{1,32}\Z")
# The file is a handful of lines; anything bigger is a wrong path, not a trust file.
MAX_FILE = 1 << 20

HEADER = ("# ossuary known nodes: NAME  PUBLIC-KEY-HEX  FIRST-SEEN (UTC)\n"
          "# Managed by `ossuary-keygen known list|add|remove` and by `ossuary-collect --tofu`.\n")


class KnownNodesError(Exception):
    """The known-nodes file is unreadable or malformed, or an edit is not allowed."""


def utc_now_text(now=None):
    """UTC time as 2025-06-01T12:00:00Z (the FIRST-SEEN field)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))


def valid_name(name):
    """True if `name` is a legal node name (1-32 characters [A-Za-z0-9_.-])."""
    return isinstance(name, str) and NAME_RE.match(name) is not None


class KnownNode:
    """One entry: name (str), key (32 bytes), first_seen (str)."""

    def __init__(self, name, key, first_seen, raw=None):
        self.name = name
        self.key = bytes(key)
        self.first_seen = first_seen
        # The line as read from the file, so a rewrite keeps its spacing and trailing comment.
        self.raw = raw

    @property
    def key_hex(self):
        return format_key(self.key)

    def line(self):
        if self.raw is not None:
            return self.raw
        return "%s  %s  %s\n" % (self.name, self.key_hex, self.first_seen)

    def __repr__(self):
        return "KnownNode(%r, %s, %r)" % (self.name, self.key_hex, self.first_seen)


class KnownNodes:
    """The known-nodes file held in memory. Thread-safe: the collector's source threads
    look up and pin keys concurrently, and every change is written back at once.

    A missing file is an empty list (it is created on the first add). Raises
    KnownNodesError from load/add/remove/save.
    """

    def __init__(self, path):
        self.path = path
        self.lock = threading.RLock()
        # _lines: the file as a list; each item is either a raw str (comment/blank line,
        # kept verbatim) or a KnownNode.
        self._lines = []
        self._mtime = None
        self.load()

    # -- reading ---------------------------------------------------------------------

    def load(self):
        """(Re)read the file. Raises KnownNodesError naming the bad line."""
        with self.lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self._lines, self._mtime = [], None
                return
            except OSError as e:
                raise KnownNodesError("cannot read known-nodes file %s: %s" % (self.path, e.strerror or e))
            try:
                with open(self.path, "rb") as f:
                    data = f.read(MAX_FILE + 1)
            except OSError as e:
                raise KnownNodesError("cannot read known-nodes file %s: %s" % (self.path, e.strerror or e))
            if len(data) > MAX_FILE:
                raise KnownNodesError("known-nodes file %s is too big (> %d bytes)" % (self.path, MAX_FILE))
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise KnownNodesError("known-nodes file %s is not UTF-8 text" % self.path)
            self._lines = self._parse(text)
            self._mtime = (st.st_mtime_ns, st.st_size, st.st_ino)

    def _parse(self, text):
        lines, names, keys = [], set(), set()
        for no, raw in enumerate(text.splitlines(), 1):
            body = raw.strip()
            if not body or body.startswith("#"):
                lines.append(raw + "\n")
                continue
            where = "%s line %d" % (self.path, no)
            # A `#` after the fields starts a comment (names, keys and dates never contain one).
            fields = body.split("#", 1)[0].split()
            if len(fields) != 3:
                raise KnownNodesError("%s: expected NAME KEY FIRST-SEEN, found %d fields" % (where, len(fields)))
            name, key_text, first_seen = fields
            if not valid_name(name):
                raise KnownNodesError("%s: bad node name (1-32 characters A-Z a-z 0-9 _ . -)" % where)
            try:
                key = parse_key(key_text)
            except KeyFormatError:
                raise KnownNodesError("%s: key is not 64 hex characters" % where)
            if name in names:
                raise KnownNodesError("%s: node name %r appears twice" % (where, name))
            if key in keys:
                raise KnownNodesError("%s: key of %r is already listed under another name" % (where, name))
            names.add(name)
            keys.add(key)
            lines.append(KnownNode(name, key, first_seen, raw=raw + "\n"))
        return lines

    def reload_if_changed(self):
        """Re-read the file if it changed on disk since we last read or wrote it, so
        `known add/remove` in another process takes effect without a restart.
        Returns True if it was re-read. Raises KnownNodesError (the old contents stay)."""
        with self.lock:
            try:
                st = os.stat(self.path)
                sig = (st.st_mtime_ns, st.st_size, st.st_ino)
            except FileNotFoundError:
                sig = None
            except OSError:
                return False
            if sig == self._mtime:
                return False
            self.load()
            return True

    def entries(self):
        """The entries (KnownNode) in file order."""
        with self.lock:
            return [x for x in self._lines if isinstance(x, KnownNode)]

    def keys(self):
        """The pinned public keys (list of 32-byte bytes)."""
        return [e.key for e in self.entries()]

    def by_key(self, key):
        key = bytes(key)
        for e in self.entries():
            if e.key == key:
                return e
        return None

    def by_name(self, name):
        for e in self.entries():
            if e.name == name:
                return e
        return None

    # -- changing --------------------------------------------------------------------

    def add(self, name, key, first_seen=None):
        """Add and save an entry. Raises KnownNodesError if the name is invalid, or the
        name or key is already listed (remove it first: a key change must be deliberate)."""
        key = bytes(key)
        if not valid_name(name):
            raise KnownNodesError("bad node name %r (1-32 characters A-Z a-z 0-9 _ . -)" % (name,))
        if len(key) != 32:
            raise KnownNodesError("a node key is 32 bytes")

        def change():
            old = self.by_name(name)
            if old is not None:
                if old.key == key:
                    raise KnownNodesError("node %r is already known with this key" % name)
                raise KnownNodesError("node %r is already known with a different key %s; "
                                      "remove it first" % (name, old.key_hex))
            other = self.by_key(key)
            if other is not None:
                raise KnownNodesError("this key is already known as node %r" % other.name)
            entry = KnownNode(name, key, first_seen or utc_now_text())
            if not self._lines:
                # A new file: say what it is, for whoever opens it in an editor.
                self._lines.append(HEADER)
            self._lines.append(entry)
            return entry

        # Another process may have edited the file since we read it: merge, not clobber.
        return self._locked_edit(change)

    def remove(self, name):
        """Remove the entry called `name` and save. Returns the removed KnownNode.
        Raises KnownNodesError if there is no such entry."""
        def change():
            entry = self.by_name(name)
            if entry is None:
                raise KnownNodesError("no node called %r in %s" % (name, self.path))
            self._lines.remove(entry)
            return entry

        return self._locked_edit(change)

    def _edit_lock(self):
        """Take the cross-process edit lock (flock on the file's directory); returns the fd
        to pass to _edit_unlock. Blocks while another process edits."""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as e:
            raise KnownNodesError("cannot open the directory of %s: %s" % (self.path, e.strerror or e))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            os.close(fd)
            raise KnownNodesError("cannot lock %s: %s" % (directory, e.strerror or e))
        return fd

    @staticmethod
    def _edit_unlock(fd):
        os.close(fd)    # closing the last descriptor releases the flock

    def _text(self):
        return "".join(x.line() if isinstance(x, KnownNode) else x for x in self._lines)

    def save(self):
        """Write the file atomically (temp file in the same directory, then rename), taking
        the edit lock. Raises KnownNodesError (also when the text would exceed MAX_FILE)."""
        with self.lock:
            fd = self._edit_lock()
            try:
                self._write(self._text())
            finally:
                self._edit_unlock(fd)

    def _write(self, text):
        # Caller holds the edit lock.
        data = text.encode("utf-8")
        if len(data) > MAX_FILE:
            raise KnownNodesError("known-nodes file %s would exceed %d bytes; not written"
                                  % (self.path, MAX_FILE))
        directory = os.path.dirname(os.path.abspath(self.path))
        tmp = os.path.join(directory, ".%s.%s.tmp" % (os.path.basename(self.path),
                                                      os.urandom(8).hex()))
        try:
            mode = os.stat(self.path).st_mode & 0o777
        except OSError:
            mode = 0o644
        created = False
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            created = True
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            if created:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            raise KnownNodesError("cannot write known-nodes file %s: %s" % (self.path, e.strerror or e))
        st = os.stat(self.path)
        self._mtime = (st.st_mtime_ns, st.st_size, st.st_ino)

    def _locked_edit(self, change):
        """Read-modify-write under the edit lock: re-read the file, apply change() (which
        edits self._lines and returns a result, or raises), write. On any failure the
        in-memory list is the file's contents as re-read."""
        with self.lock:
            fd = self._edit_lock()
            try:
                self.load()
                result = change()
                try:
                    self._write(self._text())
                except KnownNodesError:
                    self.load()
                    raise
                return result
            finally:
                self._edit_unlock(fd)


def format_list(nodes):
    """The `known list` output: one aligned line per entry."""
    rows = nodes.entries()
    if not rows:
        return ""
    width = max(len(e.name) for e in rows)
    return "".join("%-*s  %s  %s\n" % (width, e.name, e.key_hex, e.first_seen) for e in rows)


# -- the `known` command (shared by `ossuary-keygen known` and `ossuary-collect known`) --

DEFAULT_PATH = "known_nodes"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FILE = 4      # the known-nodes file is unreadable or malformed, or the edit was refused


def known_command(argv, prog="ossuary-keygen known"):
    """Run `known list | add NAME HEX | remove NAME` with argv (list of str).
    Returns the exit code; prints one clear line to stderr on failure."""
    import argparse
    import sys
    ap = argparse.ArgumentParser(prog=prog, description="List, add or remove known sensor nodes.")
    ap.add_argument("-f", "--file", default=DEFAULT_PATH,
                    help="known-nodes file (default: ./%s)" % DEFAULT_PATH)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print NAME KEY FIRST-SEEN per node")
    p_add = sub.add_parser("add", help="trust node NAME with public key HEX")
    p_add.add_argument("name")
    p_add.add_argument("key", metavar="HEX")
    p_rm = sub.add_parser("remove", help="forget node NAME")
    p_rm.add_argument("name")
    args = ap.parse_args(argv)
    try:
        nodes = KnownNodes(args.file)
        if args.cmd == "list":
            text = format_list(nodes)
            sys.stdout.write(text)
            if not text:
                sys.stderr.write("no known nodes in %s\n" % args.file)
        elif args.cmd == "add":
            try:
                key = parse_key(args.key)
            except KeyFormatError:
                sys.stderr.write("%s: error: the key must be 64 hex characters\n" % prog)
                return EXIT_USAGE
            e = nodes.add(args.name, key)
            sys.stderr.write("added %s %s to %s\n" % (e.name, e.key_hex, args.file))
        else:
            e = nodes.remove(args.name)
            sys.stderr.write("removed %s %s from %s\n" % (e.name, e.key_hex, args.file))
    except KnownNodesError as e:
        sys.stderr.write("%s: error: %s\n" % (prog, e))
        return EXIT_FILE
    return EXIT_OK
