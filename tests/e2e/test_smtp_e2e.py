"""End-to-end SMTP with real clients (smtplib, swaks, raw sockets) against a real ternd."""
import re
import signal
import smtplib
import subprocess
import threading
import time

import pytest

from smtphelpers import (check_date, ehlo, no_more_data, parse_received, queued_id,
                         send_message, split_delivered, transaction)

MSG = (b"From: Sender <sender@example.org>\r\n"
       b"To: Alice <alice@tern.test>\r\n"
       b"Subject: e2e test\r\n"
       b"Message-ID: <e2e.1@example.org>\r\n"
       b"\r\n"
       b"First line.\r\n"
       b"\tIndented line with trailing space \r\n"
       b"\r\n"
       b"Last line.\r\n")


def smtp_client(tern, helo="client.example"):
    return smtplib.SMTP("127.0.0.1", tern.port, local_hostname=helo, timeout=10)


def smtplib_send(tern, sender, rcpts, msg, helo="client.example", options=()):
    """mail/rcpt/data with smtplib; returns the queue id from the 250 after DATA."""
    with smtp_client(tern, helo) as s:
        s.ehlo()
        code, _ = s.mail(sender, list(options))
        assert code == 250
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, resp
        code, resp = s.data(msg)
        assert code == 250, resp
        m = re.fullmatch(rb"2\.0\.0 Ok: queued as ([0-9A-F]{12})", resp)
        assert m, resp
        return m.group(1).decode()


# ---------------------------------------------------------------- plain delivery

def test_plain_send_delivered_byte_for_byte(tern):
    """A message arrives as Return-Path + Delivered-To + Received + the text with CRLF -> LF,
    and the Received header has the documented layout with the queue id of the 250 reply."""
    qid = smtplib_send(tern, "sender@example.org", ["alice@tern.test"], MSG)
    msgs = tern.wait_mail("alice")
    assert len(msgs) == 1
    m = parse_received(msgs[0])
    assert m.start() == len(b"Return-Path: <sender@example.org>\nDelivered-To: alice@tern.test\n")
    assert m.group("helo") == b"client.example"
    assert m.group("name") == b"unknown"
    assert m.group("ip") == b"127.0.0.1"
    assert m.group("by") == b"mx.tern.test"
    assert m.group("proto") == b"ESMTP"
    assert m.group("qid").decode() == qid
    assert m.group("rcpt") == b"alice@tern.test"
    check_date(m.group("date"))
    expected = (b"Return-Path: <sender@example.org>\nDelivered-To: alice@tern.test\n" +
                m.group(0) + MSG.replace(b"\r\n", b"\n"))
    assert msgs[0] == expected


def test_received_header_exact_layout(tern):
    """The Received header is exactly 'Received: from H (unknown [127.0.0.1])\\n\\tby
    mx.tern.test (tern) with ESMTP id QID\\n\\tfor <rcpt>; DATE' (Postfix layout)."""
    qid = smtplib_send(tern, "sender@example.org", ["bob@tern.test"], MSG, helo="helo.example")
    msg = tern.wait_mail("bob")[0]
    lines = msg.split(b"\n")
    assert lines[0] == b"Return-Path: <sender@example.org>"
    assert lines[1] == b"Delivered-To: bob@tern.test"
    assert lines[2] == b"Received: from helo.example (unknown [127.0.0.1])"
    assert lines[3] == b"\tby mx.tern.test (tern) with ESMTP id " + qid.encode()
    assert lines[4].startswith(b"\tfor <bob@tern.test>; ")
    check_date(lines[4][len(b"\tfor <bob@tern.test>; "):])
    assert lines[5] == b"From: Sender <sender@example.org>"


def test_helo_name_is_sanitised_in_received(tern):
    """Non-ASCII bytes of the EHLO name never reach the Received header raw."""
    raw = tern.raw()
    raw.send(b"EHLO caf\xc3\xa9.example\r\n")
    raw.expect(250)
    code, lines = transaction(raw, "sender@example.org", ["alice@tern.test"],
                              b"Subject: x\r\n\r\nx\r\n")
    assert code == 250, lines
    raw.close()
    msg = tern.wait_mail("alice")[0]
    head, _ = split_delivered(msg)
    assert all(b < 0x80 for b in head), head
    assert b"Received: from caf" in head


def test_several_recipients(tern):
    """One message to three recipients: each mailbox gets one copy with its own Delivered-To,
    all with the queue id of the single 250."""
    qid = smtplib_send(tern, "sender@example.org",
                       ["alice@tern.test", "bob@tern.test", "carol@tern.test"], MSG)
    for user in ("alice", "bob", "carol"):
        msgs = tern.wait_mail(user)
        assert len(msgs) == 1, user
        assert msgs[0].startswith(b"Return-Path: <sender@example.org>\nDelivered-To: %s@tern.test\n"
                                  % user.encode())
        m = parse_received(msgs[0])
        assert m.group("qid").decode() == qid
        assert msgs[0].endswith(MSG.replace(b"\r\n", b"\n"))
    time.sleep(0.3)
    assert [len(tern.mailbox(u)) for u in ("alice", "bob", "carol")] == [1, 1, 1]


def test_smtplib_sendmail_with_size(tern):
    """smtplib.sendmail (which sends SIZE=) works and delivers once."""
    with smtp_client(tern) as s:
        refused = s.sendmail("sender@example.org", ["alice@tern.test"], MSG)
    assert refused == {}
    msgs = tern.wait_mail("alice")
    time.sleep(0.2)
    assert len(tern.mailbox("alice")) == 1
    assert msgs[0].endswith(MSG.replace(b"\r\n", b"\n"))


def test_dot_stuffing_round_trip(tern):
    """Lines beginning with '.' and '..' (sent stuffed) are delivered exactly as written."""
    body_lines = [b"Subject: dots", b"", b".", b"..", b"...", b".hidden", b"..double",
                  b"text . with dot", b". leading dot space", b"end"]
    stuffed = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in body_lines)
    qid = send_message(tern, "sender@example.org", ["alice@tern.test"], stuffed)
    msg = tern.wait_mail("alice")[0]
    head, rest = split_delivered(msg)
    assert parse_received(msg).group("qid").decode() == qid
    assert rest == b"".join(l + b"\n" for l in body_lines)


def test_smtplib_dot_stuffing(tern):
    """smtplib's own dot-stuffing round-trips through the server unchanged."""
    text = b"Subject: s\r\n\r\n.\r\n..\r\n.x\r\n"
    smtplib_send(tern, "sender@example.org", ["alice@tern.test"], text)
    _, rest = split_delivered(tern.wait_mail("alice")[0])
    assert rest == b"Subject: s\n\n.\n..\n.x\n"


# ---------------------------------------------------------------- BDAT

def test_bdat_chunks(tern):
    """BDAT chunks (split mid-line and mid-CRLF) are joined exactly; LAST commits and the
    text is delivered with CRLF -> LF and no dot processing."""
    text = b"Subject: chunks\r\n\r\nline one\r\n.\r\n..two\r\nthree\r\n"
    cuts = [5, 18, 19, 31, len(text)]  # 18 splits a CRLF between two chunks
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    start = 0
    for i, end in enumerate(cuts):
        chunk = text[start:end]
        last = i == len(cuts) - 1
        raw.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
        code, lines = raw.reply()
        assert code == 250, lines
        if not last:
            assert ("%d octets" % len(chunk)) in lines[0]
        start = end
    qid = queued_id(lines)
    raw.cmd("QUIT", 221)
    msg = tern.wait_mail("alice")[0]
    head, rest = split_delivered(msg)
    assert parse_received(msg).group("qid").decode() == qid
    assert rest == text.replace(b"\r\n", b"\n")


def test_bdat_zero_last(tern):
    """'BDAT 0 LAST' after data chunks ends the message."""
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    chunk = b"Subject: zero\r\n\r\nbody\r\n"
    raw.send(b"BDAT %d\r\n" % len(chunk) + chunk)
    raw.expect(250)
    raw.send(b"BDAT 0 LAST\r\n")
    qid = queued_id(raw.expect(250))
    msg = tern.wait_mail("alice")[0]
    assert parse_received(msg).group("qid").decode() == qid
    assert split_delivered(msg)[1] == b"Subject: zero\n\nbody\n"


def test_bdat_without_mail_reads_chunk_then_503(tern):
    """BDAT without MAIL: the chunk (here holding command-like text) is read and discarded,
    then 503; the session stays in sync."""
    raw = tern.raw()
    ehlo(raw)
    chunk = b"MAIL FROM:<evil@example.net>\r\nQUIT\r\n"
    raw.send(b"BDAT %d\r\n" % len(chunk) + chunk)
    assert raw.expect(503)[0].startswith("503 5.5.1")
    raw.send(b"BDAT 4 LAST\r\nQUIT")
    raw.expect(503)
    raw.cmd("NOOP", 250)
    assert no_more_data(raw, 0.3) == b""
    raw.cmd("QUIT", 221)
    time.sleep(0.3)
    assert tern.queued() == []


def test_bdat_bare_lf_rejected_at_last(tern):
    """A bare LF inside a BDAT message is refused (550 5.6.0) when LAST arrives; nothing is
    delivered and the session goes on."""
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    body = b"Subject: lf\r\n\r\nbare\nlf\r\n"
    raw.send(b"BDAT %d LAST\r\n" % len(body) + body)
    lines = raw.expect(550)
    assert lines[0].startswith("550 5.6.0"), lines
    raw.cmd("RCPT TO:<alice@tern.test>", 503)  # transaction is over
    raw.cmd("NOOP", 250)
    raw.close()
    time.sleep(0.5)
    assert tern.mailbox("alice") == []
    assert tern.queued() == []


def test_bdat_bare_lf_in_early_chunk_never_queued(tern):
    """A bare LF in a non-LAST chunk: that chunk or the LAST one is refused, never queued."""
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    raw.send(b"BDAT 8\r\nab\ncd\r\nx")
    first = raw.reply()
    raw.send(b"BDAT 3 LAST\r\nyz\n")
    second = raw.reply()
    assert first[0] in (250, 550), first
    assert second[0] in (550, 503), second
    assert 550 in (first[0], second[0])
    assert "queued" not in " ".join(first[1] + second[1])
    raw.cmd("NOOP", 250)
    raw.close()
    time.sleep(0.5)
    assert tern.mailbox("alice") == []


# ---------------------------------------------------------------- pipelining

def test_pipelining_replies_in_order(tern):
    """EHLO+MAIL+RCPT+RCPT+DATA in one write, then text+QUIT in one write: every reply comes,
    in order, and the message is delivered to both recipients."""
    raw = tern.raw()
    raw.send(b"EHLO client.example\r\nMAIL FROM:<sender@example.org>\r\n"
             b"RCPT TO:<alice@tern.test>\r\nRCPT TO:<bob@tern.test>\r\nDATA\r\n")
    assert "250-PIPELINING" in raw.expect(250)
    assert raw.expect(250)[0].startswith("250 2.1.0")
    assert raw.expect(250)[0].startswith("250 2.1.5")
    assert raw.expect(250)[0].startswith("250 2.1.5")
    raw.expect(354)
    raw.send(b"Subject: pipe\r\n\r\npipelined\r\n.\r\nQUIT\r\n")
    qid = queued_id(raw.expect(250))
    raw.expect(221)
    assert raw.closed()
    for user in ("alice", "bob"):
        msg = tern.wait_mail(user)[0]
        assert parse_received(msg).group("qid").decode() == qid
        assert msg.endswith(b"Subject: pipe\n\npipelined\n")


def test_pipelining_many_transactions_one_write(tern):
    """Twenty complete transactions written at once are all answered in order and delivered."""
    n = 20
    data = b"EHLO client.example\r\n"
    for i in range(n):
        data += (b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@tern.test>\r\nDATA\r\n"
                 b"Subject: %d\r\n\r\nbody %d\r\n.\r\n" % (i, i))
    data += b"QUIT\r\n"
    raw = tern.raw()
    raw.send(data)
    raw.expect(250)
    qids = []
    for i in range(n):
        raw.expect(250)
        raw.expect(250)
        raw.expect(354)
        qids.append(queued_id(raw.expect(250)))
    raw.expect(221)
    assert len(set(qids)) == n
    msgs = tern.wait_mail("alice", n)
    got = sorted(parse_received(m).group("qid").decode() for m in msgs)
    assert got == sorted(qids)


def _swaks(tern, *args):
    return subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(tern.port),
                           "--helo", "swaks.example", *args],
                          capture_output=True, text=True, timeout=60)


def test_swaks_pipeline(tern):
    """swaks --pipeline sends a message that is queued and delivered."""
    r = _swaks(tern, "--from", "sender@example.org", "--to", "alice@tern.test,bob@tern.test",
               "--pipeline", "--header", "Subject: swaks pipeline")
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"queued as ([0-9A-F]{12})", r.stdout)
    assert m, r.stdout
    for user in ("alice", "bob"):
        msg = tern.wait_mail(user)[0]
        assert parse_received(msg).group("qid").decode() == m.group(1)
        assert b"Subject: swaks pipeline\n" in msg


def test_swaks_data_from_file(tern, tmp_path):
    """swaks --data @file: the file's text is delivered unchanged (LF line ends).  The file
    has no final newline: swaks ends the text with its own CRLF before the dot."""
    text = (b"From: file@example.org\nTo: alice@tern.test\nSubject: from a file\n\n"
            b"Line 1\n\nLine 3 with \xc3\xa9 8bit\n")
    f = tmp_path / "msg.eml"
    f.write_bytes(text[:-1])
    r = _swaks(tern, "--from", "file@example.org", "--to", "alice@tern.test",
               "--data", "@%s" % f)
    assert r.returncode == 0, r.stdout + r.stderr
    msg = tern.wait_mail("alice")[0]
    assert split_delivered(msg)[1] == text


# ---------------------------------------------------------------- 8bit and UTF-8

def test_8bitmime_body_unchanged(tern):
    """BODY=8BITMIME: every octet 0x01-0xFF except CR and LF survives unchanged."""
    octets = bytes(b for b in range(1, 256) if b not in (10, 13))
    text = b"Subject: 8bit\r\nContent-Type: text/plain; charset=latin1\r\n\r\n" + \
        b"caf\xe9 \xc3\xa9t\xc3\xa9 \xff\xfe\r\n" + octets[:120] + b"\r\n" + octets[120:] + b"\r\n"
    assert b"\x00" not in text
    qid = send_message(tern, "sender@example.org", ["alice@tern.test"], text,
                       mail_params="BODY=8BITMIME")
    msg = tern.wait_mail("alice")[0]
    assert parse_received(msg).group("qid").decode() == qid
    assert split_delivered(msg)[1] == text.replace(b"\r\n", b"\n")


def test_smtputf8_sender_delivered(tern):
    """A UTF-8 sender with SMTPUTF8 is delivered; Return-Path carries it as UTF-8 and the
    Received header says UTF8SMTP (RFC 6531 3.7.3)."""
    sender = "josé@exämple.org"
    raw = tern.raw()
    ehlo(raw)
    raw.send(("MAIL FROM:<%s> SMTPUTF8\r\n" % sender).encode())
    raw.expect(250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    raw.cmd("DATA", 354)
    raw.send("Subject: olé\r\nFrom: José <josé@exämple.org>\r\n\r\nçà\r\n.\r\n".encode())
    qid = queued_id(raw.expect(250))
    msg = tern.wait_mail("alice")[0]
    assert msg.startswith(("Return-Path: <%s>\n" % sender).encode())
    m = parse_received(msg)
    assert m.group("qid").decode() == qid
    assert m.group("proto") == b"UTF8SMTP"
    assert split_delivered(msg)[1] == "Subject: olé\nFrom: José <josé@exämple.org>\n\nçà\n".encode()


# ---------------------------------------------------------------- aliases

def test_alias_list_expands(tern):
    """team: alice, bob -> one copy each, Delivered-To naming the final mailbox."""
    qid = smtplib_send(tern, "sender@example.org", ["team@tern.test"], MSG)
    for user in ("alice", "bob"):
        msgs = tern.wait_mail(user)
        assert len(msgs) == 1
        assert b"\nDelivered-To: %s@tern.test\n" % user.encode() in msgs[0]
        assert parse_received(msgs[0]).group("qid").decode() == qid
    time.sleep(0.3)
    assert tern.mailbox("team") == []


def test_plus_extension_goes_to_user(tern):
    """user+tag@domain is delivered to user's mailbox (recipient_delimiter '+')."""
    smtplib_send(tern, "sender@example.org", ["alice+lists@tern.test"], MSG)
    msg = tern.wait_mail("alice")[0]
    assert b"\nDelivered-To: alice+lists@tern.test\n" in msg
    time.sleep(0.2)
    assert tern.mailbox("alice+lists") == []


def test_plus_extension_on_alias(tern):
    """team+x@domain expands the alias team."""
    smtplib_send(tern, "sender@example.org", ["team+x@tern.test"], MSG)
    tern.wait_mail("alice")
    tern.wait_mail("bob")


def test_postmaster_chain(tern):
    """postmaster -> root -> alice; also with the domain-less <postmaster>."""
    smtplib_send(tern, "sender@example.org", ["postmaster@tern.test"], MSG)
    smtplib_send(tern, "sender@example.org", ["postmaster"], MSG)
    msgs = tern.wait_mail("alice", 2)
    time.sleep(0.3)
    assert len(tern.mailbox("alice")) == 2
    assert tern.mailbox("root") == [] and tern.mailbox("postmaster") == []


# ---------------------------------------------------------------- mbox

FROM_LINE = re.compile(rb"From (\S+)  (Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                       rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                       rb"[ 1-3]\d \d\d:\d\d:\d\d \d{4}")


def test_mbox_format(make_tern):
    """mbox delivery: From_ line 'From sender  Www Mmm dd hh:mm:ss yyyy', mboxrd quoting of
    '>*From ' body lines, a blank line after each message, later messages appended."""
    t = make_tern(mailbox_format="mbox")
    text1 = (b"Subject: one\r\n\r\nFrom x\r\n>From y\r\n>>From z\r\nFromage\r\n"
             b" From indented\r\nlast\r\n")
    q1 = send_message(t, "sender@example.org", ["alice@tern.test"], text1)
    path = t.mail / "alice"
    from conftest import wait_for
    assert wait_for(lambda: path.is_file() and path.stat().st_size > 0, 10), t.log()
    q2 = send_message(t, "second@example.org", ["alice@tern.test"], b"Subject: two\r\n\r\nbody2\r\n")
    assert wait_for(lambda: path.read_bytes().count(b"\nFrom ") >= 1 and
                    b"body2" in path.read_bytes(), 10), t.log()
    mbox = path.read_bytes()
    # two From_ lines, each at the start of a line
    starts = [m.start() for m in re.finditer(rb"^From ", mbox, re.M)]
    assert len(starts) == 2, mbox
    first, second = mbox[starts[0]:starts[1]], mbox[starts[1]:]
    for part, sender, qid in ((first, b"sender@example.org", q1), (second, b"second@example.org", q2)):
        line = part.split(b"\n", 1)[0]
        m = FROM_LINE.fullmatch(line)
        assert m, line
        assert m.group(1) == sender
        rest = part.split(b"\n", 1)[1]
        assert rest.startswith(b"Return-Path: <" + sender + b">\nDelivered-To: alice@tern.test\n")
        assert parse_received(rest).group("qid").decode() == qid
        assert part.endswith(b"\n\n") and not part.endswith(b"\n\n\n")
    _, body1 = split_delivered(first.split(b"\n", 1)[1])
    assert body1 == (b"Subject: one\n\n>From x\n>>From y\n>>>From z\nFromage\n"
                     b" From indented\nlast\n\n")
    _, body2 = split_delivered(second.split(b"\n", 1)[1])
    assert body2 == b"Subject: two\n\nbody2\n\n"


def test_mbox_quoting_across_read_chunks(make_tern):
    """mboxrd quoting is exact for every line of a 200 KB body of From_ lines (the mbox writer
    copies the message in 64 KiB chunks, so some lines straddle chunk borders)."""
    t = make_tern(mailbox_format="mbox", message_size_limit="1m")
    pattern = [b"From a", b">From b", b">>From c", b"Fro", b"From", b"From  d", b"x"]
    lines = [pattern[i % len(pattern)] + b" %d" % i for i in range(20000)]
    text = b"Subject: many From lines\r\n\r\n" + b"".join(l + b"\r\n" for l in lines)
    send_message(t, "sender@example.org", ["alice@tern.test"], text)
    from conftest import wait_for
    path = t.mail / "alice"
    assert wait_for(lambda: path.is_file() and path.read_bytes().endswith(b" 19999\n\n"), 15)
    body = split_delivered(path.read_bytes().split(b"\n", 1)[1])[1]
    want = [(b">" + l if re.match(rb">*From ", l) else l) for l in lines]
    got = body.split(b"\n")
    assert got[:2] == [b"Subject: many From lines", b""]
    assert got[2:-2] == want
    assert got[-2:] == [b"", b""]


# ---------------------------------------------------------------- limits and timeouts

def test_size_limit_enforced_in_data(make_tern):
    """A message over message_size_limit (no SIZE given) is 552 5.3.4 after the final dot;
    the session stays usable and nothing of the big message is delivered."""
    t = make_tern(message_size_limit=2000)
    raw = t.raw()
    ehlo(raw)
    big = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 40
    code, lines = transaction(raw, "sender@example.org", ["alice@tern.test"], big)
    assert code == 552 and lines[0].startswith("552 5.3.4"), lines
    code, lines = transaction(raw, "sender@example.org", ["alice@tern.test"],
                              b"Subject: small\r\n\r\nsmall\r\n")
    assert code == 250, lines
    raw.cmd("QUIT", 221)
    msgs = t.wait_mail("alice")
    time.sleep(0.5)
    assert len(t.mailbox("alice")) == 1
    assert msgs[0].endswith(b"Subject: small\n\nsmall\n")


def _sized_message(n):
    """A message of exactly n octets on the wire (CRLF line ends, no dot lines)."""
    head = b"Subject: size\r\n\r\n"
    rem, body = n - len(head), b""
    while rem > 100:
        body += b"x" * 98 + b"\r\n"
        rem -= 100
    body += b"y" * (rem - 2) + b"\r\n"
    assert len(head + body) == n
    return head + body


def test_size_limit_exact_boundary(make_tern):
    """message_size_limit=2000: a 2000-octet message is accepted, 2001 octets is 552 5.3.4,
    both with DATA and with BDAT."""
    t = make_tern(message_size_limit=2000)
    raw = t.raw()
    ehlo(raw)
    code, lines = transaction(raw, "sender@example.org", ["alice@tern.test"], _sized_message(2000))
    assert code == 250, lines
    code, lines = transaction(raw, "sender@example.org", ["alice@tern.test"], _sized_message(2001))
    assert code == 552, lines
    for n, want in ((2000, 250), (2001, 552)):
        raw.cmd("MAIL FROM:<sender@example.org>", 250)
        raw.cmd("RCPT TO:<alice@tern.test>", 250)
        m = _sized_message(n)
        raw.send(b"BDAT %d LAST\r\n" % len(m) + m)
        code, lines = raw.reply()
        assert code == want, (n, lines)
    raw.cmd("QUIT", 221)
    t.wait_mail("alice", 2)
    time.sleep(0.3)
    assert len(t.mailbox("alice")) == 2


def test_long_text_line_rejected(tern):
    """A text line over 1000 octets (incl. CRLF) gets 550 after the dot; nothing delivered;
    a 1000-octet line is fine."""
    raw = tern.raw()
    ehlo(raw)
    code, lines = transaction(raw, "sender@example.org", ["alice@tern.test"],
                              b"Subject: long\r\n\r\n" + b"y" * 999 + b"\r\nafter\r\n")
    assert code == 550, lines
    code, lines = transaction(raw, "sender@example.org", ["bob@tern.test"],
                              b"Subject: ok\r\n\r\n" + b"z" * 998 + b"\r\n")
    assert code == 250, lines
    raw.cmd("QUIT", 221)
    msg = tern.wait_mail("bob")[0]
    assert msg.endswith(b"z" * 998 + b"\n")
    time.sleep(0.3)
    assert tern.mailbox("alice") == []


def test_idle_timeout(make_tern):
    """smtpd_timeout=1s: an idle client gets 421 4.4.2 and the connection is closed."""
    t = make_tern(smtpd_timeout="1s")
    raw = t.raw()
    ehlo(raw)
    start = time.time()
    lines = raw.expect(421)
    assert lines[0].startswith("421 4.4.2 mx.tern.test"), lines
    assert 0.5 < time.time() - start < 5
    assert raw.closed()


def test_timeout_during_data_delivers_nothing(make_tern):
    """A client that stalls in the middle of DATA is timed out; the partial message is
    neither delivered nor left in the queue."""
    t = make_tern(smtpd_timeout="1s")
    raw = t.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    raw.cmd("DATA", 354)
    raw.send(b"Subject: stalled\r\n\r\nhalf a message\r\n")
    lines = raw.expect(421)
    assert lines[0].startswith("421 4.4.2"), lines
    assert raw.closed()
    time.sleep(0.5)
    assert t.mailbox("alice") == []
    assert t.queued() == []
    assert list((t.queue / "tmp").iterdir()) == []


def test_concurrent_sessions(tern):
    """Ten clients sending at the same time: every 250 is delivered exactly once."""
    qids, errors = [], []

    def client(i):
        try:
            for j in range(3):
                qids.append(send_message(tern, "c%d@example.org" % i, ["alice@tern.test"],
                                         b"Subject: %d-%d\r\n\r\nbody\r\n" % (i, j)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert len(qids) == 30 and len(set(qids)) == 30
    msgs = tern.wait_mail("alice", 30, timeout=30)
    time.sleep(0.3)
    msgs = tern.mailbox("alice")
    assert sorted(parse_received(m).group("qid").decode() for m in msgs) == sorted(qids)


# ---------------------------------------------------------------- more delivery details

def test_session_limit(make_tern):
    """smtpd_session_limit=2: a third simultaneous client gets 421 4.3.2 and is disconnected;
    once a slot is free new clients are served again."""
    t = make_tern(smtpd_session_limit=2)
    a, b = t.raw(), t.raw()
    from conftest import Raw
    c = Raw(t.port)
    lines = c.expect(421)
    assert lines[0].startswith("421 4.3.2 mx.tern.test"), lines
    assert c.closed()
    a.cmd("QUIT", 221)
    a.close()
    time.sleep(0.3)
    d = t.raw()
    d.cmd("NOOP", 250)
    b.cmd("NOOP", 250)


def test_null_sender(make_tern):
    """MAIL FROM:<> (a bounce) is accepted and delivered with Return-Path: <>; mbox writes
    the From_ line with MAILER-DAEMON."""
    t = make_tern(mailbox_format="mbox")
    send_message(t, "", ["alice@tern.test"], b"Subject: bounce\r\n\r\nundeliverable\r\n")
    from conftest import wait_for
    path = t.mail / "alice"
    assert wait_for(lambda: path.is_file() and b"undeliverable" in path.read_bytes(), 10), t.log()
    mbox = path.read_bytes()
    first, rest = mbox.split(b"\n", 1)
    assert FROM_LINE.fullmatch(first) and FROM_LINE.fullmatch(first).group(1) == b"MAILER-DAEMON"
    assert rest.startswith(b"Return-Path: <>\nDelivered-To: alice@tern.test\n")


def test_mbox_strips_private_headers(make_tern):
    """mbox: Status, X-Status, X-Keywords, X-UID, X-IMAP, X-IMAPbase and Content-Length headers
    (with their continuation lines) are dropped; look-alikes and body lines are kept."""
    t = make_tern(mailbox_format="mbox")
    text = (b"Status: RO\r\nX-Status: A\r\nContent-Length: 5\r\n  continued\r\nSubject: s\r\n"
            b"X-UID: 7\r\nx-keywords: k\r\nX-IMAP: 1\r\nX-IMAPbase: 1 2\r\nStatusX: keep\r\n"
            b"X-UID-Other: keep\r\n\r\nStatus: body keeps\r\nContent-Length: 99\r\n")
    qid = send_message(t, "sender@example.org", ["alice@tern.test"], text)
    from conftest import wait_for
    path = t.mail / "alice"
    assert wait_for(lambda: path.is_file() and b"body keeps" in path.read_bytes(), 10), t.log()
    part = path.read_bytes().split(b"\n", 1)[1]
    assert parse_received(part).group("qid").decode() == qid
    assert split_delivered(part)[1] == (b"Subject: s\nStatusX: keep\nX-UID-Other: keep\n\n"
                                        b"Status: body keeps\nContent-Length: 99\n\n")


def test_maildir_layout(tern):
    """Maildir delivery: new/ holds time.V<dev>I<ino>M<usec>.host,S=<size> with S= the file
    size; tmp/ is left empty and cur/ exists."""
    send_message(tern, "sender@example.org", ["alice@tern.test"], b"Subject: md\r\n\r\nbody\r\n")
    tern.wait_mail("alice")
    md = tern.mail / "alice"
    files = list((md / "new").iterdir())
    assert len(files) == 1
    m = re.fullmatch(r"(\d+)\.V([0-9a-f]+)I([0-9a-f]+)M(\d+)\.([^/:]+),S=(\d+)", files[0].name)
    assert m, files[0].name
    assert int(m.group(6)) == files[0].stat().st_size
    assert abs(int(m.group(1)) - time.time()) < 300
    assert int(m.group(3), 16) == files[0].stat().st_ino
    assert list((md / "tmp").iterdir()) == []
    assert (md / "cur").is_dir()


def test_delivered_to_loop_is_not_delivered(tern):
    """A message that already carries 'Delivered-To: alice@tern.test' is not delivered to
    alice again (mail loop, 5.4.6), while a clean one is."""
    send_message(tern, "sender@example.org", ["alice@tern.test"],
                 b"Delivered-To: alice@tern.test\r\nSubject: loop\r\n\r\nloop\r\n")
    send_message(tern, "sender@example.org", ["bob@tern.test"],
                 b"Delivered-To: alice@tern.test\r\nSubject: not a loop for bob\r\n\r\nok\r\n")
    tern.wait_mail("bob")
    time.sleep(0.5)
    assert tern.mailbox("alice") == []
    assert "dsn=5.4.6" in tern.log()


# ---------------------------------------------------------------- known server bugs

def test_quoted_local_part_is_the_same_mailbox(tern):
    """The quoted form "alice"@tern.test names the same mailbox as alice@tern.test (RFC 5321
    4.1.2: quoting that is not needed does not change it): accepted means delivered to alice."""
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.send('RCPT TO:<"alice"@tern.test>\r\n')
    code, lines = raw.reply()
    assert code == 250, "quoted local part refused: %r" % lines
    raw.cmd("DATA", 354)
    raw.send(b"Subject: quoted\r\n\r\nquoted\r\n.\r\n")
    raw.expect(250)
    raw.cmd("QUIT", 221)
    from conftest import wait_for
    assert wait_for(lambda: len(tern.mailbox("alice")) == 1, 3), tern.log()[-2000:]


@pytest.fixture
def unchecked_tern(tmp_path):
    """A tern for tests that expect the daemon may crash: stopped without the make_tern
    exit-code and sanitizer checks (the test itself asserts what it needs)."""
    from conftest import Tern
    servers = []

    def make(**settings):
        d = tmp_path / ("u%d" % len(servers))
        d.mkdir()
        t = Tern(d, **settings)
        servers.append(t)
        return t.start()

    yield make
    for t in servers:
        if t.proc and t.proc.poll() is None:
            t.proc.send_signal(signal.SIGTERM)
            try:
                t.proc.wait(20)
            except subprocess.TimeoutExpired:
                t.proc.kill()
                t.proc.wait()


def daemon_healthy(t):
    err = t.read_stderr()
    return t.proc.poll() is None and "AddressSanitizer" not in err and "runtime error:" not in err


def drop_after_dot(t, n, subject=b"gone"):
    """n clients that send a whole transaction and hang up without waiting for the 250."""
    import socket
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", t.port), timeout=10)
        s.sendall(b"EHLO client.example\r\nMAIL FROM:<sender@example.org>\r\n"
                  b"RCPT TO:<alice@tern.test>\r\nDATA\r\nSubject: %s %d\r\n\r\nbody\r\n.\r\n"
                  % (subject, i))
        s.close()
        if t.proc.poll() is not None:
            break


def test_disconnect_before_250_does_not_crash(unchecked_tern):
    """30 clients that hang up right after their final dot leave the daemon running, with no
    sanitizer report, and it still accepts mail and exits 0 on SIGTERM."""
    t = unchecked_tern()
    drop_after_dot(t, 30)
    time.sleep(0.5)
    assert daemon_healthy(t), t.read_stderr()[-3000:]
    send_message(t, "sender@example.org", ["bob@tern.test"], b"Subject: still up\r\n\r\nok\r\n")
    t.wait_mail("bob")
    assert t.stop() == 0
    assert "AddressSanitizer" not in t.read_stderr(), t.read_stderr()[-3000:]


def test_disconnect_before_250_does_not_strand_the_message(unchecked_tern):
    """A client that drops the connection right after the final dot: whatever tern decides
    (deliver the message or discard it), nothing may sit in the queue unscheduled."""
    from conftest import wait_for
    t = unchecked_tern()
    drop_after_dot(t, 3)
    assert wait_for(lambda: t.log().count("from=<sender@example.org>") == 3, 10), t.log()
    assert wait_for(lambda: t.queued() == [], 5), \
        "stranded in the queue: %s\n%s" % (t.queued(), t.ternctl("mailq").stdout)
    assert len(t.mailbox("alice")) <= 3
    assert daemon_healthy(t)


def test_half_closed_client_gets_every_reply(unchecked_tern):
    """EOF from the client after QUIT must not cut the replies still owed: the 250 for the
    message and the 221 are sent, and the message is delivered."""
    import socket
    t = unchecked_tern()
    s = socket.create_connection(("127.0.0.1", t.port), timeout=10)
    s.sendall(b"EHLO client.example\r\nMAIL FROM:<sender@example.org>\r\n"
              b"RCPT TO:<alice@tern.test>\r\nDATA\r\nSubject: hc\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    s.shutdown(socket.SHUT_WR)
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    assert re.search(rb"\r\n250 2\.0\.0 Ok: queued as [0-9A-F]{12}\r\n221 ", buf), buf
    t.wait_mail("alice")
    assert daemon_healthy(t)


def test_recipient_overshoot_does_not_end_session(make_tern):
    """A pipelined transaction with 125 recipients against smtpd_recipient_limit=100: 100 x 250,
    25 x 452 4.5.3, then DATA proceeds and the 100 accepted recipients get the message."""
    t = make_tern(smtpd_recipient_limit=100)
    raw = t.raw()
    ehlo(raw)
    raw.send(b"MAIL FROM:<sender@example.org>\r\n" +
             b"".join(b"RCPT TO:<alice+%d@tern.test>\r\n" % i for i in range(125)) + b"DATA\r\n")
    raw.expect(250)
    codes = [raw.reply()[0] for _ in range(125)]
    assert codes == [250] * 100 + [452] * 25
    raw.expect(354)
    raw.send(b"Subject: many\r\n\r\nmany\r\n.\r\n")
    raw.expect(250)
    t.wait_mail("alice", 100, timeout=30)


def test_hopcount_limit(make_tern):
    """More than hopcount_limit Received: headers (with tern's own) is a loop: 554 5.4.6 at the
    end of DATA, nothing queued; one fewer is accepted."""
    t = make_tern(hopcount_limit=5)
    for n, code in ((4, 250), (5, 554)):
        r = t.raw()
        r.cmd("EHLO client.example", 250)
        r.cmd("MAIL FROM:<a@example.org>", 250)
        r.cmd("RCPT TO:<alice@tern.test>", 250)
        r.cmd("DATA", 354)
        r.send("".join("Received: from hop%d.example by x.example; Sun, 22 Nov 2026 09:00:00 +0000\r\n" % i
                       for i in range(n)) + "Subject: loop\r\n\r\nbody\r\n.\r\n")
        lines = r.expect(code)
        if code == 554:
            assert lines[0].startswith("554 5.4.6 ")
        r.cmd("QUIT", 221)
    t.wait_mail("alice", 1)
    import time
    time.sleep(0.3)
    assert len(t.mailbox("alice")) == 1
