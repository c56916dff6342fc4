"""DSN parameters and relayed recipients are stored in the queue file for later use."""
import re

from conftest import wait_for


def test_dsn_parameters_stored_and_relay_mail_deferred(make_tern):
    # the smarthost is down: the remote recipient stays queued
    tern = make_tern(relayhost="[127.0.0.1]:1")
    r = tern.raw()
    r.cmd("EHLO client.example", 250)
    r.cmd("MAIL FROM:<a@example.org> RET=HDRS ENVID=abc+2Bdef BODY=8BITMIME", 250)
    r.cmd("RCPT TO:<bob@remote.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx@remote.example", 250)
    r.cmd("RCPT TO:<alice@tern.test> NOTIFY=NEVER", 250)
    r.cmd("DATA", 354)
    r.send("Subject: dsn\r\n\r\nbody\r\n.\r\n")
    qid = re.search(r"queued as ([0-9A-F]{12})", r.expect(250)[0]).group(1)
    r.cmd("QUIT", 221)
    tern.wait_mail("alice")
    # the local recipient is done, the remote one waits
    assert wait_for(lambda: "status=deferred" in tern.log())
    show = tern.ternctl("show", qid)
    assert show.returncode == 0
    env = show.stdout.split("\ndata\n", 1)[0].splitlines()
    assert "ret HDRS" in env
    assert "envid abc+2Bdef" in env
    assert "body 8BITMIME" in env
    assert "rcpt Q 6 rfc822 bob+2Bx@remote.example bob@remote.example" in env
    assert "rcpt D 1 - - alice@tern.test" in env
    q = tern.ternctl("mailq").stdout
    assert re.search(r"^%s\s+\d+ " % qid, q, re.M)
    assert "bob@remote.example" in q and "alice@tern.test" not in q
    assert "Connection refused" in q
