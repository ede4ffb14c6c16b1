"""The viper backend on the emulated Cortex-M0, from armv6m .mpy: RFC and Wycheproof vectors.

On ARM, viper.py swaps its field functions for the Thumb assembler ones of
crypto/_viper_thumb.py; that code runs nowhere else, so this is where it is checked: every
Wycheproof X25519, ChaCha20-Poly1305 and Ed25519 case plus the RFC tests, on the board, through
tests/device/board_vectors.py. Skipped, with the reason, where the emulator (../shared/tools/
board-emulator, qemu-system-arm) is absent. `make board-test` runs it (OSSUARY_BOARD_TESTS=1);
`make test` skips it, so it never depends on the emulator or its run time.
"""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import board_emulator  # noqa: E402

from tests.portable._util import wycheproof_dir  # noqa: E402

_RFC_MODULES = ("tests/__init__.py", "tests/portable/__init__.py", "tests/portable/_util.py",
                "tests/portable/test_crypto_rfc.py")


def _field(s):
    return s if s else "-"


def _load(name):
    with open(os.path.join(wycheproof_dir(), name)) as f:
        return json.load(f)


def flatten_wycheproof(out_path):
    """Write the three Wycheproof files as board_vectors.py's one-case-per-line format; return
    {kind: number of cases} as the files announce them."""
    want = {}
    with open(out_path, "w") as out:
        data = _load("x25519_test.json")
        want["X"] = data["numberOfTests"]
        for g in data["testGroups"]:
            for t in g["tests"]:
                shared = "ERR" if t["shared"] == "00" * 32 else t["shared"]
                out.write("X %d %s %s %s\n" % (t["tcId"], t["private"], t["public"], shared))
        data = _load("chacha20_poly1305_test.json")
        want["A"] = data["numberOfTests"]
        for g in data["testGroups"]:
            for t in g["tests"]:
                out.write("A %d %s %s\n" % (t["tcId"], t["result"], " ".join(
                    _field(t[k]) for k in ("key", "iv", "aad", "msg", "ct", "tag"))))
        data = _load("ed25519_test.json")
        want["E"] = data["numberOfTests"]
        for g in data["testGroups"]:
            for t in g["tests"]:
                out.write("E %d %s %s %s %s\n" % (t["tcId"], t["result"], g["publicKey"]["pk"],
                                                  _field(t["msg"]), _field(t["sig"])))
    return want


def test_vectors_on_m0_from_mpy(tmp_path):
    if os.environ.get("OSSUARY_BOARD_TESTS") != "1":
        pytest.skip("board emulator tests run in `make board-test` (OSSUARY_BOARD_TESTS=1)")
    missing = board_emulator.m0_missing()
    if missing:
        pytest.skip("Cortex-M0 emulator absent: " + missing)
    tree = str(tmp_path / "tree")
    board_emulator.build_mpy("armv6m", tree)
    for rel in _RFC_MODULES:
        board_emulator.compile_one("armv6m", os.path.join(ROOT, rel),
                                   os.path.join(tree, rel[:-3] + ".mpy"))
    want = flatten_wycheproof(os.path.join(tree, "board_vectors.txt"))
    ok, out = board_emulator.run_m0(tree, os.path.join(ROOT, "tests", "device", "board_vectors.py"),
                                    timeout=900)
    assert ok, out[-4000:]
    assert "backend viper: thumb" in out, out[-4000:]
    assert "field twins: 300 trials" in out and "FAIL" not in out, out[-4000:]
    assert "SHA-512 twins: 200 trials" in out, out[-4000:]
    assert "cases X=%d A=%d E=%d" % (want["X"], want["A"], want["E"]) in out, out[-4000:]
    last = out.strip().splitlines()[-1]
    assert last.endswith(" passed, 0 failed") and not last.startswith("0 "), out[-4000:]
