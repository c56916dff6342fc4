"""Scripted SMTP dialogues: one test per tests/dialogues/*.chat file.

A .chat file is a transcript the server must reproduce, line by line:

    # settings: name=value, name=value   tern.conf settings for make_tern (header comment)
    # xfail: BUG: ...                    a known server bug: the test is xfail(strict=True)
    # anything else after '#'            a comment
    C: text                              sent by the client, CRLF appended; escapes \\r \\n \\t
                                         \\xHH and \\\\ are decoded first ("C:" alone: empty line)
    C! b"exact bytes"                    a Python bytes literal sent as is (no CRLF added)
    S: regex                             the next reply line must match (re.fullmatch)
    S*: regex                            one whole reply: every line up to and including the
                                         final one ("NNN " rather than "NNN-") must match
    CLOSED                               the server closes the connection, with nothing unread
    MAILBOX: user N                      (extension) user's Maildir ends up with exactly N
                                         messages (waits for delivery)

The connection is opened before the greeting, so each file starts with "S: 220 ...".
At the end of the script the server must not have sent anything that was not expected.
"""
import ast
import re
import socket
import time
from pathlib import Path

import pytest

from conftest import ROOT, wait_for

DIALOGUES = sorted((ROOT / "tests" / "dialogues").glob("*.chat"))
REPLY_TIMEOUT = 5.0

_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|[rnt\\])")


def decode_escapes(text):
    """C: line text -> bytes, with \\r \\n \\t \\xHH \\\\ decoded (UTF-8 otherwise)."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += text[pos:m.start()].encode("utf-8")
        e = m.group(1)
        if e[0] == "x":
            out.append(int(e[1:], 16))
        else:
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}[e]
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return bytes(out)


def parse_settings(text):
    """'a=b, c=d e' -> {'a': 'b', 'c': 'd e'}; a comma only separates before 'name='."""
    settings = {}
    for item in re.split(r",\s*(?=[A-Za-z0-9_]+\s*=)", text.strip()):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        settings[name.strip()] = value.strip()
    return settings


def parse_chat(path):
    """Returns (settings, xfail reason or None, steps)."""
    settings, xfail, steps = {}, None, []
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.rstrip("\n")
        where = "%s:%d" % (Path(path).name, n)
        if not line.strip():
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if body.startswith("settings:"):
                settings.update(parse_settings(body[len("settings:"):]))
            elif body.startswith("xfail:"):
                xfail = body[len("xfail:"):].strip()
            continue
        if line.startswith("C: ") or line == "C:":  # "C:" alone: an empty line
            steps.append((where, "send", decode_escapes(line[3:]) + b"\r\n"))
        elif line.startswith("C! "):
            data = ast.literal_eval(line[3:].strip())
            assert isinstance(data, bytes), "%s: C! needs a bytes literal" % where
            steps.append((where, "send", data))
        elif line.startswith("S: "):
            steps.append((where, "line", re.compile(line[3:])))
        elif line.startswith("S*: "):
            steps.append((where, "reply", re.compile(line[4:])))
        elif line.strip() == "CLOSED":
            steps.append((where, "closed", None))
        elif line.startswith("MAILBOX: "):
            user, count = line[len("MAILBOX: "):].split()
            steps.append((where, "mailbox", (user, int(count))))
        else:
            raise ValueError("%s: cannot parse %r" % (where, line))
    return settings, xfail, steps


def read_line(raw, timeout=REPLY_TIMEOUT):
    """One CRLF-terminated line from the server (text, CRLF stripped)."""
    deadline = time.time() + timeout
    while b"\r\n" not in raw.buf:
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError("no reply line within %.1fs (unread: %r)" % (timeout, raw.buf))
        raw.sock.settimeout(left)
        try:
            chunk = raw.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise EOFError("connection closed (unread: %r)" % raw.buf)
        raw.buf += chunk
    line, raw.buf = raw.buf.split(b"\r\n", 1)
    return line.decode("utf-8", "replace")


def unexpected_data(raw, wait=0.3):
    """Bytes the server sent beyond the script (b'' if none); EOF is not data."""
    raw.sock.settimeout(wait)
    try:
        chunk = raw.sock.recv(65536)
        raw.buf += chunk
    except (socket.timeout, TimeoutError, ConnectionResetError):
        pass
    return raw.buf


def run_dialogue(tern, steps, name):
    from conftest import Raw
    raw = Raw(tern.port)
    log = []

    def fail(where, msg):
        pytest.fail("%s: %s\n--- transcript ---\n%s" % (where, msg, "\n".join(log[-40:])))

    closed = False
    try:
        for where, kind, arg in steps:
            if kind == "send":
                log.append("C: %r" % arg[:200])
                try:
                    raw.send(arg)
                except OSError as e:
                    fail(where, "send failed: %s" % e)
            elif kind == "line":
                try:
                    got = read_line(raw)
                except (EOFError, TimeoutError) as e:
                    fail(where, "expected a line matching %r: %s" % (arg.pattern, e))
                log.append("S: " + got)
                if not arg.fullmatch(got):
                    fail(where, "line %r does not match %r" % (got, arg.pattern))
            elif kind == "reply":
                while True:
                    try:
                        got = read_line(raw)
                    except (EOFError, TimeoutError) as e:
                        fail(where, "expected a reply matching %r: %s" % (arg.pattern, e))
                    log.append("S: " + got)
                    if not arg.fullmatch(got):
                        fail(where, "reply line %r does not match %r" % (got, arg.pattern))
                    if len(got) < 4 or got[3] != "-":
                        break
            elif kind == "closed":
                if not raw.closed(REPLY_TIMEOUT):
                    fail(where, "the server did not close the connection")
                if raw.buf:
                    fail(where, "unexpected data before the close: %r" % raw.buf)
                log.append("(closed)")
                closed = True
            elif kind == "mailbox":
                user, count = arg
                if count > 0:
                    wait_for(lambda: len(tern.mailbox(user)) >= count, 15)
                else:
                    time.sleep(0.5)
                got = len(tern.mailbox(user))
                if got != count:
                    fail(where, "%s has %d message(s), expected %d; log:\n%s" %
                         (user, got, count, tern.log()[-3000:]))
                time.sleep(0.2)  # nothing more arrives later
                got = len(tern.mailbox(user))
                if got != count:
                    fail(where, "%s has %d message(s), expected %d" % (user, got, count))
        if not closed:
            extra = unexpected_data(raw)
            if extra:
                fail("%s:end" % name, "unexpected data from the server: %r" % extra[:500])
    finally:
        raw.close()


def _params():
    out = []
    for p in DIALOGUES:
        _, xfail, _ = parse_chat(p)
        marks = [pytest.mark.xfail(reason=xfail, strict=True)] if xfail else []
        out.append(pytest.param(p, id=p.stem, marks=marks))
    return out


def test_dialogue_files_exist():
    """The dialogue corpus is present (a missing directory would silently run nothing)."""
    assert len(DIALOGUES) >= 25, DIALOGUES


@pytest.mark.parametrize("path", _params())
def test_dialogue(make_tern, path):
    """The server reproduces the scripted dialogue in tests/dialogues/<name>.chat exactly."""
    settings, _, steps = parse_chat(path)
    tern = make_tern(**settings)
    run_dialogue(tern, steps, path.name)


def test_runner_detects_a_wrong_reply(tern, tmp_path):
    """The runner itself is not vacuous: a wrong expectation fails the dialogue."""
    chat = tmp_path / "wrong.chat"
    chat.write_text("S: 220 .*\nC: NOOP\nS: 500 .*\n")
    _, _, steps = parse_chat(chat)
    with pytest.raises(pytest.fail.Exception, match="does not match"):
        run_dialogue(tern, steps, chat.name)


def test_runner_detects_unexpected_replies(tern, tmp_path):
    """Replies the script did not expect (here the second NOOP's) fail the dialogue."""
    chat = tmp_path / "extra.chat"
    chat.write_text("S: 220 .*\nC! b\"NOOP\\r\\nNOOP\\r\\n\"\nS: 250 .*\n")
    _, _, steps = parse_chat(chat)
    with pytest.raises(pytest.fail.Exception, match="unexpected data"):
        run_dialogue(tern, steps, chat.name)


def test_chat_parser():
    """Escapes, C! literals, settings with commas inside values and the xfail header parse."""
    assert decode_escapes(r"a\r\n\t\x00\\b é") == b"a\r\n\t\x00\\b \xc3\xa9"
    assert parse_settings("mynetworks=127.0.0.2/32, mydestination=a.example, b.example, "
                          "smtpd_timeout=2s") == {
        "mynetworks": "127.0.0.2/32", "mydestination": "a.example, b.example",
        "smtpd_timeout": "2s"}
