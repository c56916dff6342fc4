"""The log is read by pflogsumm, the tool Postfix admins use for daily reports."""
import subprocess


def test_pflogsumm_counts_received_delivered_rejected(make_tern):
    t = make_tern(mynetworks="127.0.0.2/32")
    with t.smtp() as s:
        for i in range(3):
            s.sendmail("sender@example.org", ["alice@tern.test"], b"Subject: %d\r\n\r\nx\r\n" % i)
    t.wait_mail("alice", 3)
    r = t.raw()
    r.cmd("EHLO client.example", 250)
    r.cmd("MAIL FROM:<a@example.org>", 250)
    r.cmd("RCPT TO:<victim@elsewhere.example>", 554)
    r.cmd("QUIT", 221)
    from conftest import wait_for
    assert wait_for(lambda: t.log().count(": removed") == 3)
    out = subprocess.run(["pflogsumm", "--syslog-name=tern", str(t.logfile)], capture_output=True,
                         text=True, timeout=60).stdout
    def count(label):
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1] == label:
                return int(parts[0])
        raise AssertionError("no %r line in pflogsumm output:\n%s" % (label, out))
    assert count("received") == 3
    assert count("delivered") == 3
    assert count("rejected") == 1
    assert count("senders") == 1
