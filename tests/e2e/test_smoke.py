"""The basic path: receive, queue, deliver to a Maildir."""


def test_send_and_deliver(tern):
    with tern.smtp() as s:
        s.sendmail("sender@example.org", ["alice@tern.test"], b"Subject: hi\r\n\r\nhello\r\n")
    msgs = tern.wait_mail("alice")
    assert msgs[0].endswith(b"Subject: hi\n\nhello\n")
    assert b"Return-Path: <sender@example.org>\n" in msgs[0]
