"""Self-test of the private Postfix peer (postfix_peer.py) that tern delivers to in other tests."""
import os
import smtplib

from conftest import free_port
from postfix_peer import REQUIRED, missing_binaries, postfix_peer  # noqa: F401


def alive(pid):
    """The process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_postfix_is_installed():
    """No silent skip: without Postfix the peer tests cannot run, and that is a failure."""
    missing = missing_binaries()
    assert not missing, ("Postfix is not installed (missing: %s): run scripts/install-deps "
                         "(as root, or with sudo)" % ", ".join(missing))
    assert all(os.access(p, os.X_OK) for p in REQUIRED)


def test_receives_and_delivers_to_maildirs(postfix_peer):
    port = free_port()
    peer = postfix_peer(port=port)
    assert peer.port == port and peer.processes()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        code, banner = s.ehlo("client.tern.test")
        assert code == 250 and banner.startswith(b"peer.postfix.test")
        s.sendmail("alice@tern.test", ["bob@pf.example"],
                   b"From: alice@tern.test\r\nTo: bob@pf.example\r\nSubject: one\r\n\r\n"
                   b"first body\r\n.dot line\r\n")
        refused = s.sendmail("alice@tern.test", ["Carol@PF.example", "bob@pf.example"],
                             b"From: alice@tern.test\r\nSubject: two\r\n\r\nsecond body\r\n")
        assert refused == {}
    bob = peer.wait_mail("bob@pf.example", 2)
    carol = peer.wait_mail("carol@pf.example", 1)
    assert len(bob) == 2 and len(carol) == 1
    first, second = bob
    assert b"\nSubject: one\n" in first and first.endswith(b"\n\nfirst body\n.dot line\n")
    assert first.startswith(b"Return-Path: <alice@tern.test>\n")
    assert b"\nDelivered-To: bob@pf.example\n" in first
    assert b"\nSubject: two\n" in second and second.endswith(b"\n\nsecond body\n")
    assert b"\nSubject: two\n" in carol[0] and b"\nDelivered-To: Carol@PF.example\n" in carol[0]
    assert peer.messages("dave@pf.example") == [] and peer.mailbox("bob@PF.example") == bob
    log = peer.log()
    assert "daemon started" in log and log.count("status=sent (delivered to maildir)") == 3
    assert "connect from unknown[127.0.0.1]" in log        # no reverse lookup
    assert " relay=smtp" not in log and "relay=[" not in log

    pids = peer.processes()
    assert peer.stop() == []                            # `postfix stop` alone was enough
    assert pids and not [p for p in pids if alive(p)]
    assert peer.processes() == []
    # what arrived survives stop() in the test's tmp directory
    assert peer.messages("bob@pf.example") == bob and "stopping the Postfix" in peer.log()


def test_two_instances_other_domains(postfix_peer):
    a = postfix_peer(domains=("a.example",))
    b = postfix_peer(host="127.0.0.2", domains=("b.example", "c.example"))
    assert a.port != b.port or a.host != b.host
    for peer, rcpts in ((a, ["u@a.example"]), (b, ["u@b.example", "v@c.example"])):
        with smtplib.SMTP(peer.host, peer.port, timeout=10) as s:
            assert s.sendmail("alice@tern.test", rcpts, b"Subject: x\r\n\r\nhi\r\n") == {}
    assert len(a.wait_mail("u@a.example")) == 1
    assert len(b.wait_mail("u@b.example")) == 1 and len(b.wait_mail("v@c.example")) == 1
    assert a.messages("u@b.example") == [] and b.messages("u@a.example") == []
