"""ternd's configuration front end: -n, -o, errors, continuation lines, --config-doc."""
import re
import subprocess

import pytest

from conftest import ROOT, TERND


def ternd(*args, timeout=30):
    return subprocess.run([str(TERND), *args], capture_output=True, text=True, timeout=timeout)


def settings_of(output):
    """'name = value' lines -> dict (fails on any other line)."""
    out = {}
    for line in output.splitlines():
        m = re.fullmatch(r"([a-z0-9_]+) = (.*)", line)
        assert m, "unexpected line in ternd -n output: %r" % line
        out[m.group(1)] = m.group(2)
    return out


def test_n_empty_file_prints_nothing(tmp_path):
    """`ternd -n` on an empty file: every setting is at its default, nothing is printed."""
    conf = tmp_path / "tern.conf"
    conf.write_text("# only a comment\n\n")
    r = ternd("-n", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""


def test_n_prints_only_non_default(tmp_path):
    """`ternd -n` prints exactly the settings that differ from the defaults, normalised
    (sizes in bytes, times in seconds, booleans yes/no), and nothing else."""
    conf = tmp_path / "tern.conf"
    conf.write_text("# comment\n"
                    "message_size_limit = 20m\n"
                    "smtpd_timeout = 2m\n"
                    "smtpd_recipient_limit = 1000\n"   # the default: not printed
                    "disable_vrfy_command = on\n"
                    "\n"
                    "smtpd_recipient_limit=200\n")     # the last assignment wins
    r = ternd("-n", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert settings_of(r.stdout) == {
        "message_size_limit": "20971520",
        "smtpd_timeout": "120s",
        "smtpd_recipient_limit": "200",
        "disable_vrfy_command": "yes",
    }


def test_n_does_not_print_derived_defaults(tmp_path):
    """Setting myhostname alone: `ternd -n` shows myhostname only, not mydomain/myorigin/
    smtpd_banner, which keep their default definitions ($myhostname-derived)."""
    conf = tmp_path / "tern.conf"
    conf.write_text("myhostname = mx.example.net\n")
    r = ternd("-n", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert settings_of(r.stdout) == {"myhostname": "mx.example.net"}


def test_unknown_setting_names_file_and_line(tmp_path):
    """An unknown setting is an error naming FILE:LINE and the name; exit status != 0."""
    conf = tmp_path / "tern.conf"
    conf.write_text("# comment\nmessage_size_limit = 1m\n\nmesage_size_limit = 2m\n")
    r = ternd("-n", "-c", str(conf))
    assert r.returncode != 0
    assert r.stdout == ""
    assert "%s:4" % conf in r.stderr, r.stderr
    assert "mesage_size_limit" in r.stderr


def test_unknown_setting_stops_the_daemon_from_starting(tmp_path):
    """The daemon itself (not only -n) refuses to start with an unknown setting."""
    conf = tmp_path / "tern.conf"
    conf.write_text("no_such_thing = 1\nqueue_directory = %s\n" % (tmp_path / "q"))
    r = ternd("-c", str(conf), timeout=10)
    assert r.returncode != 0
    assert "%s:1" % conf in r.stderr
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize("line", [
    "message_size_limit = abc",
    "message_size_limit = 10x",
    "message_size_limit = -5",
    "smtpd_timeout = forever",
    "smtpd_recipient_limit = 12.5",
    "disable_vrfy_command = maybe",
    "smtpd_recipient_limit = 99",           # RFC 5321: at least 100
    "mailbox_format = mh",
    "queue_directory = relative/path",
])
def test_bad_value_is_an_error(tmp_path, line):
    """A value of the wrong type or out of range is an error naming the file and the setting."""
    conf = tmp_path / "tern.conf"
    conf.write_text(line + "\n")
    r = ternd("-n", "-c", str(conf))
    assert r.returncode != 0, r.stdout
    assert r.stdout == ""
    assert str(conf) in r.stderr, r.stderr
    assert line.split()[0] in r.stderr, r.stderr


def test_missing_equals_is_an_error(tmp_path):
    """A line without '=' is an error naming FILE:LINE."""
    conf = tmp_path / "tern.conf"
    conf.write_text("message_size_limit 10\n")
    r = ternd("-n", "-c", str(conf))
    assert r.returncode != 0
    assert "%s:1" % conf in r.stderr, r.stderr


def test_missing_file_is_an_error(tmp_path):
    """A configuration file that does not exist is an error naming it."""
    r = ternd("-n", "-c", str(tmp_path / "nope.conf"))
    assert r.returncode != 0
    assert "nope.conf" in r.stderr


def test_o_overrides_file(tmp_path):
    """-o name=value overrides the file (and several -o are applied in order)."""
    conf = tmp_path / "tern.conf"
    conf.write_text("message_size_limit = 1m\nsmtpd_timeout = 60s\n")
    r = ternd("-n", "-c", str(conf), "-o", "message_size_limit=2k", "-o", "smtpd_timeout=1h",
              "-o", "smtpd_timeout=90")
    assert r.returncode == 0, r.stderr
    s = settings_of(r.stdout)
    assert s["message_size_limit"] == "2048"
    assert s["smtpd_timeout"] == "90s"


def test_o_unknown_or_bad_is_an_error(tmp_path):
    """-o with an unknown name or a bad value is an error too."""
    conf = tmp_path / "tern.conf"
    conf.write_text("")
    r = ternd("-n", "-c", str(conf), "-o", "no_such=1")
    assert r.returncode != 0 and "no_such" in r.stderr
    r = ternd("-n", "-c", str(conf), "-o", "message_size_limit=lots")
    assert r.returncode != 0 and "message_size_limit" in r.stderr


def test_continuation_lines(tmp_path):
    """A line starting with white space continues the previous setting; comments and blank
    lines end it; a continuation with no setting before it is an error."""
    conf = tmp_path / "tern.conf"
    conf.write_text("mydestination = a.example,\n"
                    "    b.example,\n"
                    "\tc.example\n"
                    "# a comment\n"
                    "smtpd_banner = $myhostname\n"
                    "  ESMTP continued\n")
    r = ternd("-n", "-c", str(conf), "-o", "myhostname=mx.example")
    assert r.returncode == 0, r.stderr
    s = settings_of(r.stdout)
    assert re.fullmatch(r"a\.example,\s*b\.example,\s*c\.example", s["mydestination"]), s
    assert s["smtpd_banner"] == "mx.example ESMTP continued"
    bad = tmp_path / "bad.conf"
    bad.write_text("  orphan = 1\n")
    r = ternd("-n", "-c", str(bad))
    assert r.returncode != 0
    assert "%s:1" % bad in r.stderr


def test_dollar_expansion(tmp_path):
    """$name and ${name} refer to other settings; an unknown $name is an error."""
    conf = tmp_path / "tern.conf"
    conf.write_text("myhostname = mx.example\nsmtpd_banner = ${myhostname} says $mydomain\n")
    r = ternd("-n", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert settings_of(r.stdout)["smtpd_banner"] == "mx.example says example"
    conf.write_text("smtpd_banner = $no_such_setting\n")
    r = ternd("-n", "-c", str(conf))
    assert r.returncode != 0 and "no_such_setting" in r.stderr


def test_config_doc_matches_docs(tmp_path):
    """`ternd --config-doc` is what docs/CONFIG.md holds (regenerate with `make docs`)."""
    doc = ROOT / "docs" / "CONFIG.md"
    if not doc.exists():
        pytest.skip("docs/CONFIG.md does not exist yet")
    r = ternd("--config-doc")
    assert r.returncode == 0
    assert r.stdout == doc.read_text(), "docs/CONFIG.md is stale: run `make docs`"


def test_config_doc_lists_every_setting():
    """--config-doc documents every setting `ternd -n` can print (all of config_table.h)."""
    r = ternd("--config-doc")
    assert r.returncode == 0
    names = re.findall(r"^## ([a-z0-9_]+)$", r.stdout, re.M)
    table = (ROOT / "src" / "config_table.h").read_text()
    expected = re.findall(r"^CFG\(([a-z0-9_]+),", table, re.M)
    assert names == expected
