"""`ternctl passwd USER [FILE]`: writes crypt(3) hashes into the AUTH password file atomically."""
import os
import stat
import subprocess
import warnings

import pytest

from conftest import TERNCTL

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt  # deprecated, removed in Python 3.13; uses the system's libxcrypt
    except ImportError:  # pragma: no cover
        crypt = None


def ternctl(*args, stdin="", umask=None):
    def pre():
        if umask is not None:
            os.umask(umask)
    return subprocess.run([str(TERNCTL), *args], input=stdin, capture_output=True, text=True,
                          timeout=60, preexec_fn=pre)


def passwd(path, user, password, *extra):
    """ternctl -o smtpd_sasl_password_file=PATH passwd USER, password on stdin"""
    return ternctl("-o", "smtpd_sasl_password_file=%s" % path, "passwd", user, *extra,
                   stdin=password + "\n")


def entries(path):
    """the file's user:hash lines as a dict (comments and blank lines skipped)"""
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            user, h = line.split(":", 1)
            out[user] = h
    return out


def matches(h, password):
    if crypt is None:
        pytest.skip("no crypt module")
    return crypt.crypt(password, h) == h


def test_creates_file_with_mode_0640_and_yescrypt(tmp_path):
    """A first `passwd alice` creates the file, mode 0640 whatever the umask, with one
    yescrypt line that the system's crypt(3) verifies; no temporary file is left."""
    pw = tmp_path / "passwd"
    r = ternctl("-o", "smtpd_sasl_password_file=%s" % pw, "passwd", "alice", stdin="s3cret\n",
                umask=0o077)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr
    assert stat.S_IMODE(pw.stat().st_mode) == 0o640
    text = pw.read_text()
    assert text.startswith("alice:$y$") and text.endswith("\n") and text.count("\n") == 1
    h = entries(pw)["alice"]
    assert matches(h, "s3cret")
    assert not matches(h, "s3cret\n") and not matches(h, "s3cre")
    assert not (tmp_path / "passwd.tmp").exists()


def test_replace_and_append(tmp_path):
    """A second `passwd alice` replaces alice's line in place; `passwd bob` appends; comments,
    blank lines and other users stay as they were, in order."""
    pw = tmp_path / "passwd"
    assert passwd(pw, "alice", "one").returncode == 0
    first = entries(pw)["alice"]
    pw.write_text("# AUTH users\n\n" + pw.read_text() + "# carol left\n")
    os.chmod(pw, 0o600)
    r = passwd(pw, "alice", "two")
    assert r.returncode == 0, r.stderr
    e = entries(pw)
    assert list(e) == ["alice"] and e["alice"] != first and matches(e["alice"], "two")
    assert pw.read_text().splitlines()[:2] == ["# AUTH users", ""]
    assert pw.read_text().splitlines()[3] == "# carol left"
    assert passwd(pw, "bob", "three").returncode == 0
    lines = pw.read_text().splitlines()
    assert len(lines) == 5 and lines[0] == "# AUTH users" and lines[2].startswith("alice:$y$")
    assert lines[3] == "# carol left" and lines[4].startswith("bob:$y$")
    e = entries(pw)
    assert matches(e["alice"], "two") and matches(e["bob"], "three")
    assert stat.S_IMODE(pw.stat().st_mode) == 0o640


def test_last_line_without_newline(tmp_path):
    """An existing last line without a newline is kept, and the new line starts on its own."""
    pw = tmp_path / "passwd"
    assert passwd(pw, "alice", "one").returncode == 0
    pw.write_text(pw.read_text() + "# no newline")
    assert passwd(pw, "bob", "two").returncode == 0
    lines = pw.read_text().splitlines()
    assert lines[1] == "# no newline" and lines[2].startswith("bob:$y$")


def test_file_argument_and_config(tmp_path):
    """FILE on the command line wins over smtpd_sasl_password_file, which -c can set."""
    conf = tmp_path / "tern.conf"
    set_pw = tmp_path / "from-conf"
    conf.write_text("smtpd_sasl_password_file = %s\n" % set_pw)
    r = ternctl("-c", str(conf), "passwd", "alice", stdin="x\n")
    assert r.returncode == 0, r.stderr
    assert "alice" in entries(set_pw)
    arg_pw = tmp_path / "from-arg"
    r = ternctl("-c", str(conf), "passwd", "bob", str(arg_pw), stdin="y\n")
    assert r.returncode == 0, r.stderr
    assert list(entries(arg_pw)) == ["bob"] and list(entries(set_pw)) == ["alice"]


def test_no_file_is_an_error(tmp_path):
    """Neither FILE nor smtpd_sasl_password_file: an error, nothing written."""
    r = ternctl("passwd", "alice", stdin="x\n")
    assert r.returncode != 0
    assert "smtpd_sasl_password_file" in r.stderr


def test_only_first_line_of_stdin(tmp_path):
    """The password is the first line of standard input (CRLF or LF stripped)."""
    pw = tmp_path / "passwd"
    r = ternctl("-o", "smtpd_sasl_password_file=%s" % pw, "passwd", "alice",
                stdin="first pass\r\nsecond\n")
    assert r.returncode == 0, r.stderr
    h = entries(pw)["alice"]
    assert matches(h, "first pass") and not matches(h, "second")
    r = ternctl("-o", "smtpd_sasl_password_file=%s" % pw, "passwd", "bob", stdin="no newline")
    assert r.returncode == 0, r.stderr
    assert matches(entries(pw)["bob"], "no newline")


@pytest.mark.parametrize("user", ["a:b", "a b", "a\tb", "#x", "", "a\x01b", "x" * 256])
def test_bad_user_names_refused(tmp_path, user):
    """User names with ':', white space, controls, a leading '#' (a comment), or longer than
    AUTH accepts are refused and the file is not touched."""
    pw = tmp_path / "passwd"
    assert passwd(pw, "alice", "one").returncode == 0
    before = pw.read_bytes()
    r = passwd(pw, user, "pw")
    assert r.returncode != 0
    assert pw.read_bytes() == before
    assert not (tmp_path / "passwd.tmp").exists()


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n", "x" * 256 + "\n"])
def test_bad_passwords_refused(tmp_path, stdin):
    """An empty password, or one longer than AUTH accepts (255 bytes), is refused."""
    pw = tmp_path / "passwd"
    r = ternctl("-o", "smtpd_sasl_password_file=%s" % pw, "passwd", "alice", stdin=stdin)
    assert r.returncode != 0
    assert not pw.exists() and not (tmp_path / "passwd.tmp").exists()


def test_longest_password(tmp_path):
    pw = tmp_path / "passwd"
    assert passwd(pw, "alice", "p" * 255).returncode == 0
    assert matches(entries(pw)["alice"], "p" * 255)


def test_stale_tmp_refused(tmp_path):
    """A FILE.tmp left by another (or a crashed) run is not clobbered: an error naming it."""
    pw = tmp_path / "passwd"
    (tmp_path / "passwd.tmp").write_text("other\n")
    r = passwd(pw, "alice", "x")
    assert r.returncode != 0 and "passwd.tmp" in r.stderr
    assert (tmp_path / "passwd.tmp").read_text() == "other\n" and not pw.exists()


def test_warns_when_file_is_broken(tmp_path):
    """passwd still writes, but says so when ternd would refuse the resulting file."""
    pw = tmp_path / "passwd"
    pw.write_text("carol:hunter2\n")
    r = passwd(pw, "alice", "x")
    assert r.returncode == 0
    assert "warning" in r.stderr and "%s:1:" % pw in r.stderr and "hunter2" not in r.stderr
    assert pw.read_text().startswith("carol:hunter2\nalice:$y$")


def test_usage_mentions_passwd():
    r = ternctl()
    assert r.returncode == 2 and "passwd USER [FILE]" in r.stderr
    r = ternctl("passwd")
    assert r.returncode == 2 and "passwd USER [FILE]" in r.stderr
