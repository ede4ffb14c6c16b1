# The known-nodes file: parsing, strictness, atomic edits that keep comments, and the `known` CLI.

import os
import subprocess
import sys

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
