# host_tools.keyfile: secret key files (0600, never overwritten), key lists, --trust values.

import os
import stat

import pytest

from ossuary_micro import generate_keypair, format_key
from ossuary_micro.errors import KeyFormatError
from host_tools.keyfile import (KeyFileError, read_secret_key, write_secret_key,
                                write_public_key, read_key_list, parse_trust,
                                loose_permissions)


def test_secret_key_round_trip_is_owner_only(tmp_path):
    seed, _ = generate_keypair()
    path = tmp_path / "node.key"
    write_secret_key(str(path), seed)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text() == format_key(seed) + "\n"
    assert read_secret_key(str(path)) == seed
    assert not loose_permissions(str(path))


def test_secret_key_file_is_created_0600_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        write_secret_key(str(tmp_path / "k"), bytes(32))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600


def test_never_overwrites(tmp_path):
    path = tmp_path / "k"
    path.write_text("precious\n")
    with pytest.raises(KeyFileError, match="already exists"):
        write_secret_key(str(path), bytes(32))
    with pytest.raises(KeyFileError, match="already exists"):
        write_public_key(str(path), bytes(32))
    assert path.read_text() == "precious\n"


def test_wrong_seed_length_refused(tmp_path):
    with pytest.raises(KeyFormatError):
        write_secret_key(str(tmp_path / "k"), bytes(31))
    assert not (tmp_path / "k").exists()


def test_secret_key_accepts_upper_case_whitespace_and_comments(tmp_path):
    seed, _ = generate_keypair()
    path = tmp_path / "k"
    path.write_text("# my node\n  %s  \r\n\n" % format_key(seed).upper())
    assert read_secret_key(str(path)) == seed


@pytest.mark.parametrize("text", ["", "# only a comment\n", "ab" * 31, "ab" * 33, "zz" * 32,
                                  "ab" * 32 + "\n" + "cd" * 32 + "\n"])
def test_bad_secret_key_files(tmp_path, text):
    path = tmp_path / "k"
    path.write_text(text)
    with pytest.raises(KeyFileError) as ei:
        read_secret_key(str(path))
    assert str(path) in str(ei.value)
    assert "zz" * 4 not in str(ei.value) and "ab" * 4 not in str(ei.value)  # no key text


def test_unreadable_binary_and_huge_files(tmp_path):
    with pytest.raises(KeyFileError, match="cannot read"):
        read_secret_key(str(tmp_path / "missing"))
    (tmp_path / "bin").write_bytes(b"\xff\xfe" * 40)
    with pytest.raises(KeyFileError, match="not ASCII"):
        read_secret_key(str(tmp_path / "bin"))
    (tmp_path / "big").write_bytes(b"#" * (2 << 20))
    with pytest.raises(KeyFileError, match="too big"):
        read_key_list(str(tmp_path / "big"))


def test_loose_permissions_detected(tmp_path):
    path = tmp_path / "k"
    path.write_text("ab" * 32)
    os.chmod(path, 0o644)
    assert loose_permissions(str(path))


def test_key_list_with_comments_and_blank_lines(tmp_path):
    keys = [generate_keypair()[1] for _ in range(3)]
    path = tmp_path / "trusted"
    path.write_text("# trusted\n\n%s\n%s   # laptop\n   %s\n"
                    % tuple(format_key(k) for k in keys))
    assert read_key_list(str(path)) == keys


def test_key_list_bad_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "trusted"
    path.write_text("%s\n# fine\nnot-a-key\n" % ("ab" * 32))
    with pytest.raises(KeyFileError, match="line 3"):
        read_key_list(str(path))


def test_parse_trust_hex_or_file(tmp_path):
    k = generate_keypair()[1]
    assert parse_trust(format_key(k)) == [k]
    assert parse_trust(format_key(k).upper()) == [k]
    path = tmp_path / "t"
    path.write_text(format_key(k) + "\n")
    assert parse_trust(str(path)) == [k]
    with pytest.raises(KeyFileError, match="neither 64 hex"):
        parse_trust("zz" * 32)
    with pytest.raises(KeyFileError, match="neither 64 hex"):
        parse_trust(str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("# nothing yet\n")
    with pytest.raises(KeyFileError, match="holds no key"):
        parse_trust(str(tmp_path / "empty"))
