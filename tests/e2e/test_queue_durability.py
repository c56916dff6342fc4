"""Queue durability: a 250 means the message is on disk (RFC 5321 6.1), whatever happens next.

Delivery is made to fail temporarily by pointing mailbox_base below a regular file (mkdir
fails with ENOTDIR, a temporary error), so acknowledged messages stay in the queue; then the
daemon is killed or restarted and mailbox_base is repaired.
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import wait_for
from smtphelpers import ehlo, no_more_data, parse_received, queued_id, send_message, transaction

MAILQ_ID_LINE = re.compile(r"^([0-9A-F]{12})\s+(\d+) (Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                           r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d "
                           r"\d\d:\d\d:\d\d\s+(\S+)$")


def broken_delivery_tern(make_tern, **settings):
    """A started tern whose local delivery fails temporarily (mailbox_base under a file)."""
    t = make_tern(start=False, **settings)
    blocker = t.dir / "not-a-directory"
    blocker.write_text("mkdir below me fails with ENOTDIR\n")
    t.good_mailbox_base = t.settings["mailbox_base"]
    t.settings["mailbox_base"] = str(blocker / "mail")
    t.write_conf()
    return t.start()


def repair_and_restart(t):
    t.settings["mailbox_base"] = t.good_mailbox_base
    t.write_conf()
    t.start()


def mailq_ids(t):
    r = t.ternctl("mailq")
    assert r.returncode == 0, r.stderr
    ids = []
    for line in r.stdout.splitlines():
        m = MAILQ_ID_LINE.match(line)
        if m:
            ids.append(m.group(1))
    return ids, r.stdout


def all_delivered(t, users):
    return [m for u in users for m in t.mailbox(u)]


def test_kill9_keeps_every_acknowledged_message(make_tern):
    """50 messages acknowledged over several connections survive kill -9: each is a file in
    queue/msg and listed by `ternctl mailq`; after a restart with working delivery every one
    is delivered exactly once."""
    t = broken_delivery_tern(make_tern)
    acked = {}  # qid -> recipient
    n = 0
    for conn in range(5):
        raw = t.raw()
        ehlo(raw)
        for i in range(10):
            rcpt = "alice@tern.test" if n % 2 == 0 else "bob@tern.test"
            code, lines = transaction(raw, "sender%d@example.org" % n, [rcpt],
                                      b"Subject: durable %d\r\n\r\nmessage %d\r\n" % (n, n))
            assert code == 250, lines
            acked[queued_id(lines)] = rcpt
            n += 1
        raw.cmd("QUIT", 221)
        raw.close()
    assert len(acked) == 50
    # delivery was attempted and deferred, so the messages are really waiting in the queue
    assert wait_for(lambda: "status=deferred" in t.log(), 10), t.log()
    t.kill9()
    on_disk = set(os.listdir(t.queue / "msg"))
    assert set(acked) <= on_disk, sorted(set(acked) - on_disk)
    ids, out = mailq_ids(t)
    assert set(acked) <= set(ids), out
    assert t.mailbox("alice") == [] and t.mailbox("bob") == []

    repair_and_restart(t)
    assert wait_for(lambda: len(all_delivered(t, ["alice", "bob"])) >= 50, 30), t.log()[-3000:]
    time.sleep(1.0)  # no duplicates trickle in
    got = {}
    for user in ("alice", "bob"):
        for m in t.mailbox(user):
            qid = parse_received(m).group("qid").decode()
            assert qid not in got, "%s delivered twice" % qid
            got[qid] = user + "@tern.test"
    assert got == acked
    assert wait_for(lambda: t.queued() == [], 10), t.queued()


def test_kill9_mid_data_leaves_nothing(tern):
    """kill -9 while a message is half received: after restart no partial message is
    delivered, none is in queue/msg and queue/tmp is cleaned."""
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    raw.cmd("DATA", 354)
    raw.send(b"Subject: half\r\n\r\n" + b"half a message line\r\n" * 5000)  # > 64 KiB: on disk
    tmp = tern.queue / "tmp"
    assert wait_for(lambda: len(os.listdir(tmp)) == 1, 10), "no queue file being written"
    tern.kill9()
    with pytest.raises((EOFError, OSError)):
        raw.send(b"more\r\n.\r\n")
        raw.reply()
    raw.close()
    assert len(os.listdir(tmp)) == 1  # the half file is there until start-up
    tern.start()
    assert wait_for(lambda: os.listdir(tmp) == [], 10), os.listdir(tmp)
    time.sleep(1.0)
    assert tern.queued() == []
    assert tern.mailbox("alice") == []
    # the restarted daemon works
    send_message(tern, "sender@example.org", ["alice@tern.test"], b"Subject: after\r\n\r\nok\r\n")
    assert tern.wait_mail("alice")[0].endswith(b"Subject: after\n\nok\n")


def test_queue_tmp_unwritable_never_250(tern):
    """queue/tmp replaced by a regular file: DATA and BDAT get 451/452, never 250, and no
    file appears in queue/msg."""
    tmp = tern.queue / "tmp"
    os.rmdir(tmp)
    tmp.write_text("not a directory\n")
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    raw.send(b"DATA\r\n")
    code, lines = raw.reply()
    if code == 354:
        raw.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        code, lines = raw.reply()
    assert code in (451, 452), lines
    assert re.match(r"45[12] 4\.3\.\d ", lines[0]), lines
    # BDAT
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    raw.send(b"BDAT 14 LAST\r\nSubject: y\r\n\r\n")
    code, lines = raw.reply()
    assert code in (451, 452), lines
    assert no_more_data(raw, 0.3) == b""
    raw.cmd("QUIT", 221)
    assert tern.queued() == []
    time.sleep(0.3)
    assert tern.mailbox("alice") == []


@pytest.fixture
def tmpfs_tern(make_tern):
    """A tern whose queue_directory is a 64 KiB tmpfs (root and mount(8) required)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    t = make_tern(start=False)
    t.queue.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(t.queue)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % r.stderr.strip())
    try:
        t.start()
        yield t
        assert t.stop() == 0
    finally:
        if t.proc and t.proc.poll() is None:
            t.proc.kill()
            t.proc.wait()
        subprocess.run(["umount", str(t.queue)], capture_output=True)
        if os.path.ismount(t.queue):
            subprocess.run(["umount", "-l", str(t.queue)], capture_output=True)


def test_queue_full_never_250(tmpfs_tern):
    """A full queue file system: a message larger than the space gets 452 4.3.1 (or 451), never
    250, and leaves no file in msg/ or tmp/; a small one still fits afterwards."""
    t = tmpfs_tern
    raw = t.raw()
    ehlo(raw)
    big = b"Subject: big\r\n\r\n" + (b"z" * 98 + b"\r\n") * 1500  # 150 KB > 64 KiB
    code, lines = transaction(raw, "sender@example.org", ["alice@tern.test"], big)
    assert code in (451, 452), lines
    assert re.match(r"45[12] 4\.3\.\d ", lines[0]), lines
    assert t.queued() == []
    assert os.listdir(t.queue / "tmp") == []
    # fill the rest of the file system: even a tiny message is refused
    filler = t.queue / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    code, lines = transaction(raw, "sender@example.org", ["alice@tern.test"],
                              b"Subject: tiny\r\n\r\n" + (b"t" * 50 + b"\r\n") * 100)
    assert code in (451, 452), lines
    assert t.queued() == []
    filler.unlink()
    code, lines = transaction(raw, "sender@example.org", ["alice@tern.test"],
                              b"Subject: fits\r\n\r\nfits\r\n")
    assert code == 250, lines
    raw.cmd("QUIT", 221)
    msgs = t.wait_mail("alice")
    time.sleep(0.3)
    assert len(t.mailbox("alice")) == 1 and msgs[0].endswith(b"Subject: fits\n\nfits\n")


def test_restart_recovery_and_mailq_format(make_tern):
    """Messages deferred at a clean shutdown are delivered after the restart; `ternctl mailq`
    lines start with the uppercase-hex queue id (as mailq parsers expect)."""
    t = broken_delivery_tern(make_tern)
    qids = [send_message(t, "s%d@example.org" % i, ["alice@tern.test"],
                         b"Subject: r%d\r\n\r\nbody\r\n" % i) for i in range(5)]
    assert wait_for(lambda: "status=deferred" in t.log(), 10), t.log()
    assert t.stop() == 0
    ids, out = mailq_ids(t)
    assert sorted(ids) == sorted(qids), out
    for line in out.splitlines():
        m = MAILQ_ID_LINE.match(line)
        if m:
            assert m.group(5).startswith("s") and m.group(5).endswith("@example.org"), line
    assert re.search(r"^\s+alice@tern\.test$", out, re.M), out
    assert out.rstrip().splitlines()[-1].startswith("-- "), out
    shown = t.ternctl("show", qids[0])
    assert shown.returncode == 0 and "Subject: r0" in shown.stdout, shown.stdout + shown.stderr
    bad = t.ternctl("show", "../../../etc/passwd")
    assert bad.returncode != 0 and "root:" not in bad.stdout
    repair_and_restart(t)
    msgs = t.wait_mail("alice", 5, timeout=20)
    time.sleep(0.5)
    assert sorted(parse_received(m).group("qid").decode() for m in t.mailbox("alice")) == sorted(qids)
    assert wait_for(lambda: t.queued() == [], 10)
    r = t.ternctl("mailq")
    assert r.returncode == 0 and "Mail queue is empty" in r.stdout, r.stdout


def test_sigterm_idle_session_gets_421(tern):
    """SIGTERM with an idle client: the client is told 421 4.3.2 and disconnected, and the
    daemon exits 0."""
    raw = tern.raw()
    ehlo(raw)
    tern.proc.send_signal(signal.SIGTERM)
    lines = raw.expect(421)
    assert lines[0].startswith("421 4.3.2 mx.tern.test"), lines
    assert raw.closed()
    assert tern.proc.wait(15) == 0
    # the listener is gone
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", tern.port), timeout=1).close()


def test_sigterm_during_data_keeps_the_message(tern):
    """SIGTERM while a message is being received: the client may finish it, gets 250 (the
    message is queued) and then 421; the daemon exits 0 and the message is delivered (now
    or after the restart), exactly once."""
    raw = tern.raw()
    ehlo(raw)
    raw.cmd("MAIL FROM:<sender@example.org>", 250)
    raw.cmd("RCPT TO:<alice@tern.test>", 250)
    raw.cmd("DATA", 354)
    raw.send(b"Subject: during shutdown\r\n\r\nfirst half\r\n")
    time.sleep(0.2)
    tern.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    raw.send(b"second half\r\n.\r\n")
    qid = queued_id(raw.expect(250))
    lines = raw.expect(421)
    assert lines[0].startswith("421 4.3.2"), lines
    assert tern.proc.wait(15) == 0
    tern.start()
    msgs = tern.wait_mail("alice")
    time.sleep(0.5)
    assert len(tern.mailbox("alice")) == 1
    assert parse_received(msgs[0]).group("qid").decode() == qid
    assert msgs[0].endswith(b"first half\nsecond half\n")


def test_sighup_reload(tern):
    """SIGHUP rereads tern.conf: new sessions see the new banner and SIZE."""
    tern.settings["smtpd_banner"] = "$myhostname ESMTP reloaded"
    tern.settings["message_size_limit"] = "5000"
    tern.write_conf()
    tern.reload()
    assert wait_for(lambda: "reloaded configuration" in tern.log(), 10), tern.log()
    raw = tern.raw(greet=False)
    assert raw.expect(220) == ["220 mx.tern.test ESMTP reloaded"]
    assert "250-SIZE 5000" in ehlo(raw)
    code, lines = transaction(raw, "sender@example.org", ["alice@tern.test"],
                              b"Subject: big\r\n\r\n" + (b"b" * 98 + b"\r\n") * 60)
    assert code == 552, lines
    raw.cmd("QUIT", 221)


def test_sighup_with_broken_config_keeps_old(tern):
    """A reload with an invalid tern.conf keeps the running configuration and the daemon."""
    tern.conf.write_text(tern.conf.read_text() + "no_such_setting = 1\n")
    tern.reload()
    assert wait_for(lambda: "reload failed" in tern.log(), 10), tern.log()
    assert tern.proc.poll() is None
    raw = tern.raw(greet=False)
    assert raw.expect(220) == ["220 mx.tern.test ESMTP tern"]
    assert "250-SIZE 10240000" in ehlo(raw)
    raw.cmd("QUIT", 221)
    tern.write_conf()  # valid again for a clean stop
