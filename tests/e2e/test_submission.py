"""Message submission (RFC 6409 / RFC 8314): AUTH required on submission and smtps, relay
after AUTH, sender ownership, header fixes, hidden client, and swaks as a real client."""
import re
import shutil
import subprocess

import pytest

from conftest import wait_for
from tlshelpers import (PASSWORDS, after_received, certs, connect, header_block,  # noqa: F401
                        password_file, received_header, send_text, submission_session,
                        tls_server)


@pytest.fixture
def srv(make_tern, certs, password_file):  # noqa: F811
    # relayed mail goes to a smarthost that is down, so it stays queued (deferred)
    return tls_server(make_tern, certs, password_file, myorigin="tern.test",
                      smtpd_auth_client_limit=0, relayhost="[127.0.0.1]:1")


def sub(t, user="alice", port="smtps"):
    """Authenticated session: smtps (implicit TLS) or submission (STARTTLS)."""
    if port == "smtps":
        return submission_session(t.smtps_port, user, tls="implicit")
    return submission_session(t.sub_port, user, tls="starttls")


# ---- AUTH required -----------------------------------------------------------

@pytest.mark.parametrize("where", ["submission-plain", "submission-tls", "smtps"])
def test_mail_before_auth_530(srv, where):
    """On submission (before or after STARTTLS) and smtps, MAIL FROM before AUTH is 530 5.7.0,
    whatever the recipient; the session stays usable."""
    if where == "smtps":
        r = connect(srv.smtps_port, tls=True)
    else:
        r = connect(srv.sub_port)
        if where == "submission-tls":
            r.ehlo()
            r.starttls()
    r.ehlo()
    assert r.cmd("MAIL FROM:<alice@tern.test>", 530) == ["530 5.7.0 Authentication required"]
    assert r.cmd("MAIL FROM:<>", 530)
    assert r.cmd("RCPT TO:<alice@tern.test>", 503)
    assert r.cmd("NOOP", 250) == ["250 2.0.0 Ok"]
    r.close()


@pytest.mark.parametrize("port", ["smtps", "submission"])
def test_relay_after_auth_queued_esmtpsa(srv, port):
    """After AUTH, mail to any domain is accepted; the remote recipient waits in the queue
    (deferred, listed by `ternctl mailq`), the queue file says proto ESMTPSA, and the log has
    'client=...[127.0.0.1], sasl_method=PLAIN, sasl_username=alice'."""
    r = sub(srv, port=port)
    qid = send_text(r, "alice@tern.test", ["bob@remote.example", "carol@elsewhere.example"],
                    b"Subject: relay\r\n\r\nx\r\n")
    r.close()
    assert wait_for(lambda: re.search(r"%s: to=<bob@remote\.example>.*status=deferred" % qid,
                                      srv.log()), 10), srv.log()
    q = srv.ternctl("mailq")
    assert q.returncode == 0
    assert re.search(r"^%s\s+\d+ .*alice@tern\.test$" % qid, q.stdout, re.M), q.stdout
    assert "bob@remote.example" in q.stdout and "carol@elsewhere.example" in q.stdout
    env = (srv.queue / "msg" / qid).read_text(errors="replace").split("\ndata\n", 1)[0]
    assert "\nproto ESMTPSA\n" in env, env
    assert "\nsender alice@tern.test\n" in env, env
    assert re.search(r"%s: client=unknown\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=alice$"
                     % qid, srv.log(), re.M), srv.log()


# ---- swaks -------------------------------------------------------------------

def swaks(*args):
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed")
    return subprocess.run(["swaks", "--helo", "swaks.example", *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth_submission(srv, mech):
    """`swaks --tls --auth PLAIN|LOGIN` on the submission port succeeds (exit 0, QUIT answered)
    and the relayed message is queued with proto ESMTPSA."""
    p = swaks("--server", "127.0.0.1:%d" % srv.sub_port, "--tls", "--auth", mech, "--auth-user",
              "alice", "--auth-password", PASSWORDS["alice"], "--from", "alice@tern.test",
              "--to", "bob@remote.example")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "<~  235 2.7.0 Authentication successful" in out
    assert "<~  221 2.0.0 Bye" in out
    qid = re.search(r"<~  250 2\.0\.0 Ok: queued as ([0-9A-F]{12})", out).group(1)
    assert "\nproto ESMTPSA\n" in (srv.queue / "msg" / qid).read_text(errors="replace")
    assert re.search(r"%s: client=unknown\[127\.0\.0\.1\], sasl_method=%s, sasl_username=alice$"
                     % (qid, mech), srv.log(), re.M), srv.log()


def test_swaks_implicit_tls_smtps(srv):
    """`swaks --tlsc` (TLS on connect) against smtps authenticates and submits."""
    p = swaks("--server", "127.0.0.1:%d" % srv.smtps_port, "--tlsc", "--auth", "PLAIN",
              "--auth-user", "bob", "--auth-password", PASSWORDS["bob"], "--from",
              "bob@tern.test", "--to", "someone@remote.example")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    qid = re.search(r"<~  250 2\.0\.0 Ok: queued as ([0-9A-F]{12})", out).group(1)
    assert qid in srv.queued()


def test_swaks_wrong_password_fails(srv):
    """swaks with a wrong password is refused (535) and nothing is queued."""
    p = swaks("--server", "127.0.0.1:%d" % srv.sub_port, "--tls", "--auth", "LOGIN",
              "--auth-user", "alice", "--auth-password", "nope", "--from", "alice@tern.test",
              "--to", "bob@remote.example")
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert "535 5.7.8" in out
    assert srv.queued() == []


# ---- sender ownership --------------------------------------------------------

@pytest.mark.parametrize("sender", ["alice@tern.test", "alice+tag@tern.test", "Alice@TERN.test",
                                    "alice@mx.tern.test", "alice@localhost", ""])
def test_sender_owned_by_default(srv, sender):
    """Without smtpd_sender_login_maps, alice may use alice@ (or alice+ext@) any
    $mydestination/$myorigin domain, and the null sender."""
    r = sub(srv)
    assert r.cmd("MAIL FROM:<%s>" % sender, 250) == ["250 2.1.0 Ok"]
    r.cmd("RCPT TO:<bob@remote.example>", 250)
    r.close()


@pytest.mark.parametrize("sender", ["bob@tern.test", "alice@remote.example", "alicex@tern.test",
                                    "bob+alice@tern.test", "alice@tern.test.evil.example"])
def test_sender_not_owned_553(srv, sender):
    """A sender alice does not own is 553 5.7.1 and logged as a NOQUEUE reject."""
    r = sub(srv, port="submission")
    lines = r.cmd("MAIL FROM:<%s>" % sender, 553)
    assert lines == ["553 5.7.1 <%s>: Sender address rejected: not owned by user alice" % sender]
    r.cmd("MAIL FROM:<alice@tern.test>", 250)  # the session goes on
    r.close()
    assert re.search(r"NOQUEUE: reject: MAIL from unknown\[127\.0\.0\.1\]: 553 5\.7\.1 <%s>: "
                     r"Sender address rejected: not owned by user" % re.escape(sender),
                     srv.log()), srv.log()


def test_sender_login_maps(make_tern, certs, password_file, tmp_path):  # noqa: F811
    """smtpd_sender_login_maps: 'shared@tern.test alice, bob' lets both alice and bob (not
    carol) send as shared@tern.test (also with an extension); '@other.example carol' lets
    carol use any address of other.example, and nobody else."""
    m = tmp_path / "senders"
    m.write_text("# who may send as whom\nshared@tern.test alice, bob\n@other.example carol\n")
    t = tls_server(make_tern, certs, password_file, smtpd_sender_login_maps=str(m),
                   smtpd_auth_client_limit=0)
    cases = [
        ("alice", "shared@tern.test", 250), ("bob", "SHARED@tern.test", 250),
        ("alice", "shared+x@tern.test", 250), ("carol", "shared@tern.test", 553),
        ("carol", "anyone@other.example", 250), ("carol", "x.y@Other.Example", 250),
        ("alice", "anyone@other.example", 553), ("carol", "a@sub.other.example", 553),
        ("bob", "", 250),
    ]
    sessions = {}
    for user, sender, code in cases:
        r = sessions.get(user) or sessions.setdefault(user, sub(t, user))
        r.cmd("MAIL FROM:<%s>" % sender, code)
        if code == 250:
            r.cmd("RSET", 250)
    for r in sessions.values():
        r.close()


def test_null_sender_after_auth_delivered(srv):
    """The null sender is allowed after AUTH and the message is delivered."""
    r = sub(srv)
    send_text(r, "", ["bob@tern.test"], b"Subject: null\r\n\r\nx\r\n")
    r.close()
    assert srv.wait_mail("bob")[0].startswith(b"Return-Path: <>\n")


# ---- port 25 is not submission ---------------------------------------------------

def test_port25_without_auth(make_tern, certs, password_file):  # noqa: F811
    """On port 25 without AUTH (client outside mynetworks=127.0.0.2/32): mail to local users
    is accepted, relay is denied 554 5.7.1 (also inside TLS); after STARTTLS + AUTH the same
    client may relay."""
    t = tls_server(make_tern, certs, password_file, mynetworks="127.0.0.2/32",
                   smtpd_auth_client_limit=0)
    r = t.raw()
    r.cmd("EHLO client.example", 250)
    r.cmd("MAIL FROM:<someone@example.org>", 250)
    assert r.cmd("RCPT TO:<bob@remote.example>", 554) == \
        ["554 5.7.1 <bob@remote.example>: Relay access denied"]
    r.cmd("RCPT TO:<alice@tern.test>", 250)
    r.cmd("DATA", 354)
    r.send("Subject: local\r\n\r\nx\r\n.\r\n")
    r.expect(250)
    r.close()
    t.wait_mail("alice")
    r = connect(t.port)
    r.ehlo()
    r.starttls()
    r.ehlo()
    r.cmd("MAIL FROM:<someone@example.org>", 250)
    r.cmd("RCPT TO:<bob@remote.example>", 554)
    r.cmd("RSET", 250)
    r.auth_plain("alice", PASSWORDS["alice"])
    r.cmd("MAIL FROM:<alice@tern.test>", 250)
    r.cmd("RCPT TO:<bob@remote.example>", 250)
    r.close()


# ---- header fixes (RFC 6409 8) -----------------------------------------------

def fields(block, name):
    return [ln for ln in block.split(b"\n") if ln.lower().startswith(name.lower() + b":")]


def test_header_fixes_added(srv):
    """An authenticated submission without Date, Message-ID and From gets each exactly once, in
    the header block (before the blank line): 'Date: ...', 'Message-ID: <...@mx.tern.test>',
    'From: <alice@tern.test>' (myorigin = tern.test); the body is untouched."""
    r = sub(srv)
    qid = send_text(r, "alice@tern.test", ["alice@tern.test"],
                    b"Subject: fix me\r\nTo: alice@tern.test\r\n\r\nbody line\r\nDate: not a header\r\n")
    r.close()
    msg = srv.wait_mail("alice")[0]
    head, body = msg.split(b"\n\n", 1)
    assert body == b"body line\nDate: not a header\n"
    dates, ids, froms = fields(head, b"Date"), fields(head, b"Message-ID"), fields(head, b"From")
    assert len(dates) == 1 and len(ids) == 1 and len(froms) == 1, head
    assert re.fullmatch(rb"Date: \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", dates[0])
    assert re.fullmatch(rb"Message-ID: <[^<>@\s]+@mx\.tern\.test>", ids[0]), ids
    assert qid.encode() in ids[0]
    assert froms[0] == b"From: <alice@tern.test>"
    assert head.endswith(b"Subject: fix me\nTo: alice@tern.test\n" + dates[0] + b"\n" + ids[0] +
                         b"\n" + froms[0])


def test_header_fixes_only_missing_ones(srv):
    """Only what is missing is added: a message with From (any case) and Message-ID but no
    Date gets only Date."""
    r = sub(srv, port="submission")
    send_text(r, "alice@tern.test", ["bob@tern.test"],
              b"from: Alice <alice@tern.test>\r\nmessage-id: <own@client>\r\nSubject: s\r\n\r\nx\r\n")
    r.close()
    head = header_block(srv.wait_mail("bob")[0])
    assert len(fields(head, b"Date")) == 1
    assert fields(head, b"Message-ID") == [b"message-id: <own@client>"]
    assert fields(head, b"From") == [b"from: Alice <alice@tern.test>"]


def test_header_fixes_message_without_headers(srv):
    """A submission with no header at all gets the three headers and a blank line before its
    first line, which stays in the body."""
    r = sub(srv)
    send_text(r, "alice@tern.test", ["bob@tern.test"], b"just text\r\nsecond line\r\n")
    r.close()
    rest = after_received(srv.wait_mail("bob")[0])
    head, body = rest.split(b"\n\n", 1)
    assert body == b"just text\nsecond line\n"
    assert [ln.split(b":")[0] for ln in head.split(b"\n")] == [b"Date", b"Message-ID", b"From"]


def test_header_fixes_bdat(srv):
    """BDAT submissions get the same fixes as DATA."""
    r = sub(srv)
    text = b"Subject: chunked\r\n\r\nbody\r\n"
    r.cmd("MAIL FROM:<alice@tern.test>", 250)
    r.cmd("RCPT TO:<bob@tern.test>", 250)
    r.send(b"BDAT %d LAST\r\n" % len(text) + text)
    r.expect(250)
    r.close()
    head, body = srv.wait_mail("bob")[0].split(b"\n\n", 1)
    assert body == b"body\n"
    for name in (b"Date", b"Message-ID", b"From"):
        assert len(fields(head, name)) == 1, head


def test_complete_message_unchanged(srv):
    """A submitted message that has Date, Message-ID and From is delivered byte for byte as
    sent (after the Return-Path/Delivered-To/Received lines; CRLF stored as LF)."""
    text = (b"From: Alice <alice@tern.test>\r\nTo: bob@tern.test\r\n"
            b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <unchanged@client.example>\r\n"
            b"Subject: as is\r\nX-Folded: a\r\n\tb\r\n\r\nbody\r\n\r\nmore\r\n")
    r = sub(srv)
    send_text(r, "alice@tern.test", ["bob@tern.test"], text)
    r.close()
    assert after_received(srv.wait_mail("bob")[0]) == text.replace(b"\r\n", b"\n")


def test_port25_unauthenticated_never_changed(srv):
    """Unauthenticated port-25 mail (plain or over TLS) is never given Date, Message-ID or
    From: it is delivered exactly as sent."""
    text = b"Subject: no fixes\r\n\r\nbody\r\n"
    r = srv.raw()
    r.cmd("EHLO client.example", 250)
    send_text(r, "someone@example.org", ["alice@tern.test"], text)
    r.close()
    r = connect(srv.port)
    r.ehlo()
    r.starttls()
    r.ehlo()
    send_text(r, "someone@example.org", ["alice@tern.test"], b"no headers at all\r\n")
    r.close()
    msgs = srv.wait_mail("alice", 2)
    got = sorted(after_received(m) for m in msgs)
    assert got == sorted([text.replace(b"\r\n", b"\n"), b"no headers at all\n"])


# ---- submission_hide_client ----------------------------------------------------

def test_submission_hide_client(make_tern, certs, password_file):  # noqa: F811
    """submission_hide_client=yes: the Received: header of an authenticated submission has no
    'from' clause and no client address; unauthenticated port-25 mail still shows the client."""
    t = tls_server(make_tern, certs, password_file, submission_hide_client="yes",
                   myorigin="tern.test", smtpd_auth_client_limit=0)
    r = sub(t)
    qid = send_text(r, "alice@tern.test", ["bob@tern.test"], b"Subject: hidden\r\n\r\nx\r\n")
    r.close()
    msg = t.wait_mail("bob")[0]
    rec = received_header(msg)
    assert b"127.0.0.1" not in msg and b"client.example" not in msg, msg
    assert not rec.startswith(b"Received: from"), rec
    assert re.fullmatch(rb"Received: by mx\.tern\.test \(tern\) with ESMTPSA id %s\n"
                        rb"\tfor <bob@tern\.test>; .+" % qid.encode(), rec), rec
    r = t.raw()
    r.cmd("EHLO client.example", 250)
    send_text(r, "someone@example.org", ["carol@tern.test"], b"Subject: shown\r\n\r\nx\r\n")
    r.close()
    rec = received_header(t.wait_mail("carol")[0])
    assert rec.startswith(b"Received: from client.example (unknown [127.0.0.1])"), rec


def test_login_that_is_an_address(srv):
    """A login that is itself an address (erin@other.example) may send as exactly that address
    (any case), not as erin@ a local domain nor another address of its domain; a submission
    without From gets 'From: <erin@other.example>', not the login @ $myorigin."""
    r = submission_session(srv.smtps_port, "erin@other.example", tls="implicit")
    r.cmd("MAIL FROM:<Erin@Other.Example>", 250)
    r.cmd("RSET", 250)
    r.cmd("MAIL FROM:<erin@tern.test>", 553)
    r.cmd("MAIL FROM:<alice@other.example>", 553)
    send_text(r, "erin@other.example", ["bob@tern.test"], b"Subject: erin\r\n\r\nx\r\n")
    r.close()
    head = header_block(srv.wait_mail("bob")[0])
    assert fields(head, b"From") == [b"From: <erin@other.example>"], head
