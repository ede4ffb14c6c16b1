# The known-nodes file: parsing, strictness, atomic edits that keep comments, and the `known` CLI.

import os
import subprocess
import sys
import time

import pytest

from host_tools.known_nodes import KnownNodes, KnownNodesError, known_command, format_list

K1 = bytes(range(32))
K2 = bytes(range(1, 33))
H1 = K1.hex()
H2 = K2.hex()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_missing_file_is_empty_and_add_creates_it(tmp_path):
    p = tmp_path / "known_nodes"
    kn = KnownNodes(str(p))
    assert kn.entries() == []
    e = kn.add("greenhouse-1", K1, "2025-06-01T12:00:00Z")
    assert e.key_hex == H1
    text = p.read_text()
    assert text.startswith("#")
    assert "greenhouse-1  %s  2025-06-01T12:00:00Z\n" % H1 in text
    again = KnownNodes(str(p))
    assert again.by_key(K1).name == "greenhouse-1"
    assert again.by_name("greenhouse-1").key == K1
    assert again.by_name("nope") is None and again.by_key(K2) is None


def test_comments_and_blank_lines_survive_edits(tmp_path):
    p = tmp_path / "kn"
    p.write_text("# my nodes\n\n  # indented comment\na  %s  2025-01-01T00:00:00Z\n"
                 "c\t%s 2025-01-02  # the shed\n" % (H1, bytes(32).hex()))
    kn = KnownNodes(str(p))
    assert kn.by_name("c").first_seen == "2025-01-02"
    kn.add("b", K2)
    kn.remove("a")
    text = p.read_text()
    assert text == ("# my nodes\n\n  # indented comment\nc\t%s 2025-01-02  # the shed\n"
                    "b  %s  %s\n" % (bytes(32).hex(), H2, kn.by_name("b").first_seen))


@pytest.mark.parametrize("line,msg", [
    ("a %s" % H1, "expected NAME KEY FIRST-SEEN"),
    ("a %s x y" % H1, "expected NAME KEY FIRST-SEEN"),
    ("bad/name %s 2025" % H1, "bad node name"),
    ("%s %s 2025" % ("x" * 33, H1), "bad node name"),
    ("a %s 2025" % H1[:-1], "not 64 hex"),
    ("a %sg 2025" % H1[:-1], "not 64 hex"),
])
def test_malformed_lines_are_refused_with_line_number(tmp_path, line, msg):
    p = tmp_path / "kn"
    p.write_text("# c\n" + line + "\n")
    with pytest.raises(KnownNodesError) as ei:
        KnownNodes(str(p))
    assert "line 2" in str(ei.value) and msg in str(ei.value)


def test_duplicates_refused(tmp_path):
    p = tmp_path / "kn"
    p.write_text("a %s d\na %s d\n" % (H1, H2))
    with pytest.raises(KnownNodesError, match="appears twice"):
        KnownNodes(str(p))
    p.write_text("a %s d\nb %s d\n" % (H1, H1.upper()))
    with pytest.raises(KnownNodesError, match="already listed"):
        KnownNodes(str(p))


def test_add_refuses_changes_remove_needs_existing(tmp_path):
    kn = KnownNodes(str(tmp_path / "kn"))
    kn.add("a", K1)
    with pytest.raises(KnownNodesError, match="different key"):
        kn.add("a", K2)
    with pytest.raises(KnownNodesError, match="already known as node 'a'"):
        kn.add("b", K1)
    with pytest.raises(KnownNodesError, match="bad node name"):
        kn.add("a b", K2)
    with pytest.raises(KnownNodesError, match="no node called"):
        kn.remove("zz")
    assert [e.name for e in kn.entries()] == ["a"]


def test_reload_sees_edits_by_another_process(tmp_path):
    p = str(tmp_path / "kn")
    a = KnownNodes(p)
    b = KnownNodes(p)
    a.add("a", K1)
    # b merges instead of clobbering a's entry
    b.add("b", K2)
    assert [e.name for e in KnownNodes(p).entries()] == ["a", "b"]
    assert a.reload_if_changed() is True
    assert a.by_name("b").key == K2
    assert a.reload_if_changed() is False


def test_known_cli_list_add_remove(tmp_path, capsys):
    f = str(tmp_path / "kn")
    assert known_command(["-f", f, "add", "node-1", H1.upper()]) == 0
    assert known_command(["-f", f, "add", "node-2", H2]) == 0
    capsys.readouterr()
    assert known_command(["-f", f, "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [l.split()[:2] for l in out] == [["node-1", H1], ["node-2", H2]]
    assert known_command(["-f", f, "add", "node-1", H2]) == 4
    assert "different key" in capsys.readouterr().err
    assert known_command(["-f", f, "add", "node-3", "abc"]) == 2
    assert known_command(["-f", f, "remove", "node-1"]) == 0
    assert known_command(["-f", f, "remove", "node-1"]) == 4
    assert [e.name for e in KnownNodes(f).entries()] == ["node-2"]


def test_known_cli_as_subprocess_both_entry_points(tmp_path):
    f = str(tmp_path / "kn")
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "host_tools.keygen", "known", "-f", f, "add", "n1", H1],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "host_tools.collect", "known", "-f", f, "list"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["n1", H1]
    p = tmp_path / "bad"
    p.write_text("garbage line here and more\n")
    r = subprocess.run([sys.executable, "-m", "host_tools.keygen", "known", "-f", str(p), "list"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 4
    assert r.stderr.count("\n") == 1 and "line 1" in r.stderr


# -- concurrency, temporary file, size bound (issue 9 items 4, 5, 10) ---------------------

def _blocked_on_flock(pid):
    # /proc/locks lists a process waiting for a lock as "N: -> FLOCK ADVISORY WRITE PID ...".
    with open("/proc/locks") as f:
        return any("->" in line and " %d " % pid in line for line in f)


def test_remove_from_another_process_during_a_pin_is_not_undone(tmp_path, monkeypatch):
    # The interleaving of issue 9.5, made deterministic: the collector's pin (add) has re-read
    # the file and is about to write it when `known remove` runs in another process. Without
    # a cross-process lock the remove completes first and the pin's write resurrects the
    # removed node; with it, the remove waits for the pin and then applies to its result.
    p = tmp_path / "known_nodes"
    KnownNodes(str(p)).add("revoked", K1, "2025-01-01T00:00:00Z")
    collector = KnownNodes(str(p))
    real_replace = os.replace
    other = []

    def replace_with_remove_in_between(src, dst):
        # The pin has re-read the file and written its temporary copy: now the other process.
        cmd = [sys.executable, "-m", "host_tools.keygen", "known", "-f", str(p), "remove", "revoked"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE)
        other.append(proc)
        # Wait until the other process has either finished (no lock) or is blocked on ours.
        while proc.poll() is None and not _blocked_on_flock(proc.pid):
            time.sleep(0.005)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_with_remove_in_between)
    collector.add("newcomer", K2, "2025-01-02T00:00:00Z")
    monkeypatch.setattr(os, "replace", real_replace)
    assert other[0].wait(10) == 0, other[0].stderr.read()
    final = KnownNodes(str(p))
    assert final.by_name("revoked") is None, p.read_text()
    assert final.by_name("newcomer").key == K2


def test_temporary_file_is_never_written_through_a_planted_symlink(tmp_path, monkeypatch):
    p = tmp_path / "kn"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    kn = KnownNodes(str(p))
    monkeypatch.setattr(os, "urandom", lambda n: b"\x01" * n)
    # The old predictable name (pid) and the name this run will pick (random, pinned here).
    for name in (".kn.%d.tmp" % os.getpid(), ".kn.%s.tmp" % ("01" * 8)):
        os.symlink(str(victim), str(tmp_path / name))
    with pytest.raises(KnownNodesError):
        kn.add("a", K1)
    assert victim.read_text() == "precious\n"
    assert not p.exists() and kn.entries() == []


def test_an_edit_never_grows_the_file_past_what_loading_accepts(tmp_path):
    from host_tools.known_nodes import MAX_FILE
    p = tmp_path / "kn"
    p.write_text("#" * (MAX_FILE - 51) + "\n")      # 50 bytes short: one entry is ~100
    before = p.read_bytes()
    kn = KnownNodes(str(p))
    with pytest.raises(KnownNodesError, match="exceed"):
        kn.add("a", K1)
    assert p.read_bytes() == before
    assert KnownNodes(str(p)).entries() == []
