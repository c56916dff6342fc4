"""Permanent local failures come back to the sender as an RFC 3464 report."""
import email
import email.policy
import re

from conftest import wait_for

ALIASES = "postmaster: root\nroot: alice\nbroken: \"|exit 67\"\n"


def bounce_tern(make_tern):
    t = make_tern(start=False, myorigin="tern.test")
    t.aliases.write_text(ALIASES)
    return t.start()


def send(t, sender, rcpt, params=""):
    r = t.raw()
    r.cmd("EHLO client.example", 250)
    r.cmd("MAIL FROM:<%s>" % sender, 250)
    r.cmd("RCPT TO:<%s>%s" % (rcpt, params), 250)
    r.cmd("DATA", 354)
    r.send("Subject: will fail\r\nMessage-ID: <orig@example>\r\n\r\nbody\r\n.\r\n")
    qid = re.search(r"queued as ([0-9A-F]{12})", r.expect(250)[0]).group(1)
    r.cmd("QUIT", 221)
    return qid


def test_permanent_failure_bounces_to_sender(make_tern):
    """A command exiting EX_NOUSER fails the recipient permanently: the sender gets one
    multipart/report with the failed recipient, the original is removed from the queue."""
    t = bounce_tern(make_tern)
    qid = send(t, "alice@tern.test", "broken@tern.test", " NOTIFY=FAILURE ORCPT=rfc822;broken+2Bx@tern.test")
    msg = t.wait_mail("alice")[0]
    m = email.message_from_bytes(msg.split(b"\n", 2)[2], policy=email.policy.default)
    assert m.get_content_type() == "multipart/report"
    assert m.get_param("report-type") == "delivery-status"
    parts = m.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status",
                                                     "message/rfc822"]
    blocks = parts[1].get_payload()
    assert blocks[0]["Reporting-MTA"] == "dns; mx.tern.test"
    rcpt = blocks[1]
    assert rcpt["Final-Recipient"].replace(" ", "") == "rfc822;broken@tern.test"
    assert rcpt["Original-Recipient"].replace(" ", "") == "rfc822;broken+x@tern.test"
    assert rcpt["Action"] == "failed"
    assert rcpt["Status"].startswith("5.")
    assert b"Subject: will fail" in parts[2].as_bytes()
    assert msg.startswith(b"Return-Path: <>\n")
    assert wait_for(lambda: "%s: removed" % qid in t.log())
    assert "%s: sender non-delivery notification:" % qid in t.log()
    assert qid not in t.queued()
    assert not (t.queue / "bounce" / qid).exists()


def test_notify_never_and_null_sender_get_no_bounce(make_tern):
    """NOTIFY=NEVER suppresses the report; a message from <> is never bounced."""
    t = bounce_tern(make_tern)
    q1 = send(t, "alice@tern.test", "broken@tern.test", " NOTIFY=NEVER")
    q2 = send(t, "", "broken@tern.test")
    assert wait_for(lambda: "%s: removed" % q1 in t.log() and "%s: removed" % q2 in t.log())
    assert "%s: not bouncing to the null sender" % q2 in t.log()
    assert t.mailbox("alice") == []
    assert t.queued() == []
