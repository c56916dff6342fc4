"""SMTP smuggling (CVE-2023-51764/5/6): only <CR><LF>.<CR><LF> ends DATA.

Each variant puts a fake end-of-data sequence in the message followed by a second, smuggled
transaction (MAIL FROM:<evil@...>, RCPT TO:<bob@...>, DATA, text) and then the real
<CR><LF>.<CR><LF>.  tern's policy (NOTES.md): message text with a bare CR, bare LF or NUL is
refused with 550 5.6.0 once the real end of data has been read.  So for every variant: exactly
one reply after the real end (550 5.6.0), never a 250 for the smuggled message, no reply to
the smuggled commands, and bob's mailbox stays empty.
"""
import time

import pytest

from smtphelpers import ehlo, no_more_data

SMUGGLED = (b"MAIL FROM:<evil@example.net>\r\n"
            b"RCPT TO:<bob@tern.test>\r\n"
            b"DATA\r\n"
            b"From: ceo@tern.test\r\nSubject: smuggled\r\n\r\nwire the money\r\n")

# fake end-of-data sequences (NOTES.md) and bare CR / LF lines inside the text
VARIANTS = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "crlf-dot-cr": b"\r\n.\r",
    "crlf-nul-dot-crlf": b"\r\n\x00.\r\n",
    "crlf-dot-nul-crlf": b"\r\n.\x00\r\n",
    "cr-dot-cr": b"\r.\r",
    "crlf-dot-cr-crlf": b"\r\n.\r\r\n",
    "crcrlf-dot-crcrlf": b"\r\r\n.\r\r\n",
    "bare-lf-lines": b"\nbare lf line\nanother\n",
    "bare-cr-lines": b"\rbare cr line\ranother\r",
}


def _open_data(tern):
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    raw.cmd("DATA", 354)
    return raw


def _check_outcome(tern, raw, lines):
    assert lines[0].startswith("550 5.6.0"), lines
    # nothing else: the smuggled MAIL/RCPT/DATA were message text, not commands
    assert no_more_data(raw, 0.3) == b"", "extra replies after the end of data"
    raw.cmd("NOOP", 250)
    raw.cmd("QUIT", 221)
    raw.close()
    time.sleep(0.2)
    assert tern.mailbox("bob") == []
    assert tern.mailbox("alice") == []
    assert tern.queued() == []


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_data_smuggling(tern, variant):
    """DATA: the fake end-of-data does not end the message; one 550 5.6.0 after the real end."""
    raw = _open_data(tern)
    raw.send(b"Subject: real\r\n\r\nreal body" + VARIANTS[variant] + SMUGGLED + b".\r\n")
    code, lines = raw.reply()
    assert code == 550, "smuggling variant %r answered %r" % (variant, lines)
    _check_outcome(tern, raw, lines)


@pytest.mark.parametrize("variant", ["lf-dot-lf", "crlf-dot-lf", "crlf-nul-dot-crlf", "cr-dot-cr"])
def test_data_smuggling_bytewise(tern, variant):
    """The same when every byte arrives in its own TCP segment (no reliance on packet borders)."""
    raw = _open_data(tern)
    payload = b"Subject: real\r\n\r\nreal body" + VARIANTS[variant] + SMUGGLED + b".\r\n"
    for i in range(len(payload)):
        raw.send(payload[i:i + 1])
        if i % 8 == 0:
            time.sleep(0.001)
    code, lines = raw.reply()
    assert code == 550, lines
    _check_outcome(tern, raw, lines)


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_bdat_smuggling(tern, variant):
    """BDAT: the same text in a LAST chunk is refused with one 550 5.6.0; the smuggled
    commands are chunk octets, never run."""
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    chunk = b"Subject: real\r\n\r\nreal body" + VARIANTS[variant] + SMUGGLED + b".\r\n"
    raw.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    code, lines = raw.reply()
    assert code == 550, "BDAT variant %r answered %r" % (variant, lines)
    _check_outcome(tern, raw, lines)


@pytest.mark.parametrize("variant", ["lf-dot-lf", "crlf-dot-lf", "bare-cr-lines"])
def test_bdat_smuggling_split_chunks(tern, variant):
    """BDAT over two chunks with the bad sequence in the first: never queued, bob gets nothing."""
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    first = b"Subject: real\r\n\r\nreal body" + VARIANTS[variant]
    raw.send(b"BDAT %d\r\n" % len(first) + first)
    r1 = raw.reply()
    raw.send(b"BDAT %d LAST\r\n" % len(SMUGGLED) + SMUGGLED)
    r2 = raw.reply()
    assert r1[0] in (250, 550) and r2[0] in (550, 503), (r1, r2)
    assert 550 in (r1[0], r2[0])
    assert not any("queued" in l for l in r1[1] + r2[1])
    assert no_more_data(raw, 0.5) == b""
    raw.cmd("QUIT", 221)
    time.sleep(0.2)
    assert tern.mailbox("bob") == [] and tern.mailbox("alice") == []


def test_bdat_crlf_dot_crlf_is_just_text(tern):
    """Inside BDAT, <CR><LF>.<CR><LF> is ordinary text: the whole chunk is one message
    (dot lines kept as is), the 'smuggled' lines are its body, bob gets nothing."""
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    chunk = b"Subject: real\r\n\r\nreal body\r\n.\r\n" + SMUGGLED + b".\r\n"
    raw.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    code, lines = raw.reply()
    assert code == 250 and "queued as" in lines[0], lines
    assert no_more_data(raw, 0.5) == b""
    raw.cmd("QUIT", 221)
    msg = tern.wait_mail("alice")[0]
    assert msg.endswith(chunk.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"))
    time.sleep(0.3)
    assert tern.mailbox("bob") == []
    assert len(tern.mailbox("alice")) == 1


def test_clean_message_after_rejected_one(tern):
    """After a refused smuggling attempt the same session can send a clean message."""
    raw = _open_data(tern)
    raw.send(b"Subject: real\r\n\r\nbody\n.\n" + SMUGGLED + b".\r\n")
    raw.expect(550)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    raw.cmd("DATA", 354)
    raw.send(b"Subject: clean\r\n\r\nclean\r\n.\r\n")
    assert "queued as" in raw.expect(250)[0]
    raw.cmd("QUIT", 221)
    msgs = tern.wait_mail("alice")
    time.sleep(0.3)
    assert len(tern.mailbox("alice")) == 1 and msgs[0].endswith(b"Subject: clean\n\nclean\n")
    assert tern.mailbox("bob") == []
