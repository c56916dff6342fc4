"""Outbound delivery edge cases, end to end: mixed destinations with restarts, recipient limits,
forwarded aliases, bounces of bounces, peers that drop the connection, signals during deliveries,
mail loops, bad transport maps, dead destinations.

Nine of these reproduced bugs found in review (use-after-free on SIGHUP, MX loops, worker
retirement, resolver loss...); they now guard the fixes."""
import email
import email.policy
import os
import re
import socket
import threading
import time

import pytest

from conftest import wait_for
from peers import dns_zone, peer_port, peers  # noqa: F401

SENDER = "alice@tern.test"


# ---- helpers -----------------------------------------------------------------------------

def start_tern(make_tern, zone, port, **kw):
    settings = dict(dns_nameservers=zone.nameserver, smtp_port=port, myorigin="tern.test",
                    smtp_tls_security_level="may")
    settings.update(kw)
    return make_tern(**settings)


def send(t, rcpts, sender=SENDER, body=None):
    """One message over raw SMTP; returns the queue id."""
    r = t.raw()
    r.cmd("EHLO client.example", 250)
    r.cmd("MAIL FROM:<%s>" % sender, 250)
    for a in rcpts:
        r.cmd("RCPT TO:<%s>" % a, 250)
    r.cmd("DATA", 354)
    r.send(body or ("Subject: edge test\r\nMessage-ID: <m%d@client.example>\r\n\r\nhello\r\n"
                    % time.time_ns()))
    r.send(".\r\n")
    qid = re.search(r"queued as ([0-9A-F]{12})", r.expect(250)[0]).group(1)
    r.cmd("QUIT", 221)
    return qid


def report_of(raw):
    """(message, parts, per-message fields, [per-recipient fields]) of a multipart/report."""
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m.get_content_type() == "multipart/report", raw[:500]
    parts = m.get_payload()
    status = parts[1].get_payload()
    return m, parts, status[0], status[1:]


def reports(t, user="alice"):
    return [report_of(r) for r in t.mailbox(user) if b"multipart/report" in r]


def removed(t, qid, timeout=15):
    return wait_for(lambda: "%s: removed" % qid in t.log(), timeout)


def delivered_to(peer):
    """Every recipient a peer accepted a message for, in order (duplicates kept)."""
    return [a for tx in peer.messages for a in tx.delivered]


def stop_checked(t):
    """Stop t and fail (in the test body) if it did not exit 0 or a sanitizer complained.  The
    daemon is then forgotten, so that the make_tern teardown does not report the same failure
    again (which would turn an expected failure into an error)."""
    try:
        rc = t.stop()
        err = t.read_stderr()
        i = max(err.find("ERROR: AddressSanitizer"), err.find("runtime error:"), 0)
        report = err[i:i + 5000]
        assert rc == 0, "ternd exited %s:\n%s" % (rc, report)
        assert "Sanitizer" not in err and "runtime error:" not in err, report
    finally:
        t.proc = None
        (t.dir / "stderr.txt").write_bytes(b"")


class RawServer:
    """A TCP server on (host, port) whose every connection runs script(conn_index, sock).
    The script speaks raw SMTP; helpers: line(sock) reads one CRLF line, data(sock) reads to
    the end-of-data dot.  .accepted counts connections."""

    def __init__(self, host, port, script):
        self.script = script
        self.accepted = 0
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(64)
        self.stopping = False
        self.conns = []
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            i = self.accepted
            self.accepted += 1
            self.conns.append(s)
            threading.Thread(target=self._one, args=(i, s), daemon=True).start()

    def _one(self, i, s):
        s.settimeout(20)
        try:
            self.script(i, s)
        except (OSError, EOFError):
            pass
        except Exception as e:      # noqa: BLE001 - reported by the test
            self.errors.append(e)
        finally:
            try:
                s.close()
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass


class _Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode("utf-8", "replace")

    def data(self):
        while b"\r\n.\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        d, self.buf = self.buf.split(b"\r\n.\r\n", 1)
        return d


def smtp_until_data(sock, rd, greet_delay=0):
    """Greeting, EHLO, MAIL, RCPTs, DATA -> 354.  Returns the recipients."""
    if greet_delay:
        time.sleep(greet_delay)
    sock.sendall(b"220 raw.example ESMTP\r\n")
    rcpts = []
    while True:
        ln = rd.line()
        verb = ln.split(" ")[0].upper()
        if verb in ("EHLO", "HELO"):
            sock.sendall(b"250 raw.example\r\n")
        elif verb == "MAIL":
            sock.sendall(b"250 2.1.0 ok\r\n")
        elif verb == "RCPT":
            rcpts.append(ln)
            sock.sendall(b"250 2.1.5 ok\r\n")
        elif verb == "DATA":
            sock.sendall(b"354 go\r\n")
            return rcpts
        elif verb == "RSET":
            sock.sendall(b"250 ok\r\n")
        elif verb == "QUIT":
            sock.sendall(b"221 bye\r\n")
            raise EOFError
        else:
            sock.sendall(b"502 5.5.1 no\r\n")


def smtp_full(sock, rd, got, greet_delay=0):
    """A complete well-behaved session: every transaction's text goes into got."""
    smtp_until_data(sock, rd, greet_delay)
    while True:
        got.append(rd.data())
        sock.sendall(b"250 2.0.0 ok\r\n")
        ln = rd.line()
        if ln.upper().startswith("QUIT"):
            sock.sendall(b"221 bye\r\n")
            return
        # another transaction on the same connection
        rd.buf = (ln + "\r\n").encode() + rd.buf
        while True:
            ln = rd.line()
            verb = ln.split(" ")[0].upper()
            if verb == "DATA":
                sock.sendall(b"354 go\r\n")
                break
            if verb == "QUIT":
                sock.sendall(b"221 bye\r\n")
                return
            sock.sendall(b"250 ok\r\n")


# ---- mixed destinations, exactly once, restart in the middle --------------------------------

def test_mixed_destinations_restart_exactly_once(make_tern, dns_zone, peers, peer_port, tmp_path):
    """Local + three remote destinations + an error: route.  First attempt: local and ok.example
    delivered, bad@ok.example (550) and x@refused.example (error:) bounce, later.example deferred.
    After a restart only later.example is tried again; one combined bounce names both failures."""
    (dns_zone.mx("ok.example", "mx.ok.example").a("mx.ok.example", "127.0.0.2")
     .mx("later.example", "mx.later.example").a("mx.later.example", "127.0.0.3").start())
    pok = peers(host="127.0.0.2", port=peer_port,
                rcpt_replies={"bad@ok.example": "550 5.1.1 no such user"})
    plater = peers(host="127.0.0.3", port=peer_port, defer_first=1000)
    maps = tmp_path / "transport"
    maps.write_text("refused.example error:5.7.1 go away\n")
    t = start_tern(make_tern, dns_zone, peer_port, transport_maps=maps,
                   queue_retry_interval="60s", maximal_backoff_time="60s")
    rcpts = ["bob@tern.test", "good@ok.example", "bad@ok.example", "x@refused.example",
             "y@later.example"]
    qid = send(t, rcpts)
    assert wait_for(lambda: re.search(r"%s: to=<y@later\.example>.*status=deferred" % qid, t.log()), 10)
    t.wait_mail("bob")
    time.sleep(0.3)
    assert qid in t.queued()
    assert reports(t) == []                     # no bounce before the message is finished
    assert t.stop() == 0
    plater.defer_first = 0
    t.start()
    assert removed(t, qid), t.log()
    assert wait_for(lambda: len(reports(t)) >= 1, 10)
    time.sleep(0.5)
    assert len(t.mailbox("bob")) == 1
    assert delivered_to(pok) == ["good@ok.example"]
    assert delivered_to(plater) == ["y@later.example"]
    reps = reports(t)
    assert len(reps) == 1, t.log()
    failed = sorted(r["Final-Recipient"].replace(" ", "") for r in reps[0][3])
    assert failed == ["rfc822;bad@ok.example", "rfc822;x@refused.example"]
    assert not (t.queue / "bounce" / qid).exists()


def test_mixed_kill9_after_partial_delivery(make_tern, dns_zone, peers, peer_port):
    """A crash (SIGKILL) after part of the recipients was delivered: the delivered ones are
    never sent again."""
    (dns_zone.mx("ok.example", "mx.ok.example").a("mx.ok.example", "127.0.0.2")
     .mx("later.example", "mx.later.example").a("mx.later.example", "127.0.0.3").start())
    pok = peers(host="127.0.0.2", port=peer_port)
    plater = peers(host="127.0.0.3", port=peer_port, defer_first=1000)
    t = start_tern(make_tern, dns_zone, peer_port, queue_retry_interval="60s",
                   maximal_backoff_time="60s")
    qid = send(t, ["bob@tern.test", "a@ok.example", "b@ok.example", "y@later.example"])
    assert wait_for(lambda: re.search(r"%s: to=<y@later\.example>.*status=deferred" % qid, t.log())
                    and len(pok.messages) == 1, 10)
    t.wait_mail("bob")
    time.sleep(0.3)
    t.kill9()
    plater.defer_first = 0
    t.start()
    assert removed(t, qid), t.log()
    time.sleep(0.3)
    assert sorted(delivered_to(pok)) == ["a@ok.example", "b@ok.example"]
    assert delivered_to(plater) == ["y@later.example"]
    assert len(t.mailbox("bob")) == 1


# ---- smtp_destination_recipient_limit ------------------------------------------------------

def test_recipient_limit_splits_transactions(make_tern, dns_zone, peers, peer_port):
    """limit 2, five recipients: three transactions, each recipient delivered exactly once."""
    dns_zone.mx("lim.example", "mx.lim.example").a("mx.lim.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port)
    t = start_tern(make_tern, dns_zone, peer_port, smtp_destination_recipient_limit=2)
    rcpts = ["u%d@lim.example" % i for i in range(5)]
    qid = send(t, rcpts)
    assert removed(t, qid), t.log()
    time.sleep(0.2)
    assert sorted(delivered_to(p)) == rcpts
    assert sorted(len(tx.rcpt_tos) for tx in p.messages) == [1, 2, 2]


def test_recipient_limit_one_chunk_deferred(make_tern, dns_zone, peers, peer_port):
    """limit 2, five recipients, concurrency 1; the first transaction is deferred at DATA: only
    its two recipients are tried again, the others are not duplicated."""
    dns_zone.mx("lim.example", "mx.lim.example").a("mx.lim.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, defer_first=1)
    t = start_tern(make_tern, dns_zone, peer_port, smtp_destination_recipient_limit=2,
                   smtp_destination_concurrency_limit=1)
    rcpts = ["u%d@lim.example" % i for i in range(5)]
    qid = send(t, rcpts)
    assert removed(t, qid), t.log()
    time.sleep(0.2)
    assert sorted(delivered_to(p)) == rcpts
    assert len(p.transactions) == 4


def test_recipient_limit_error_route(make_tern, dns_zone, peers, peer_port, tmp_path):
    """Five recipients of an error: route with limit 2 (three error jobs answered at once) plus
    a remote one: one bounce naming the five."""
    dns_zone.mx("ok.example", "mx.ok.example").a("mx.ok.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port)
    maps = tmp_path / "transport"
    maps.write_text("refused.example error:5.7.1 go away\n")
    t = start_tern(make_tern, dns_zone, peer_port, transport_maps=maps,
                   smtp_destination_recipient_limit=2)
    bad = ["r%d@refused.example" % i for i in range(5)]
    qid = send(t, bad + ["good@ok.example"])
    assert removed(t, qid), t.log()
    assert wait_for(lambda: len(reports(t)) == 1, 10)
    time.sleep(0.3)
    reps = reports(t)
    assert len(reps) == 1
    assert sorted(r["Final-Recipient"].replace(" ", "") for r in reps[0][3]) == \
        sorted("rfc822;" + a for a in bad)
    assert delivered_to(p) == ["good@ok.example"]


def test_recipient_limit_with_connection_reuse_limit(make_tern, dns_zone, peers, peer_port):
    """limit 1, six recipients, reuse count limit 2, concurrency 1: all delivered once."""
    dns_zone.mx("lim.example", "mx.lim.example").a("mx.lim.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port)
    t = start_tern(make_tern, dns_zone, peer_port, smtp_destination_recipient_limit=1,
                   smtp_destination_concurrency_limit=1, smtp_connection_reuse_count_limit=2)
    rcpts = ["u%d@lim.example" % i for i in range(6)]
    qid = send(t, rcpts)
    assert removed(t, qid), t.log()
    time.sleep(0.2)
    assert sorted(delivered_to(p)) == rcpts
    assert len(p.connections) == 3
    assert p.max_open == 1


# ---- aliases to remote addresses -----------------------------------------------------------

def test_alias_to_remote_is_relayed(make_tern, dns_zone, peers, peer_port):
    """An alias with a local and a remote target: the local copy is delivered, a forwarded copy
    (same sender) is queued and relayed, and both queue files go away."""
    dns_zone.mx("far.example", "mx.far.example").a("mx.far.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port)
    t = start_tern(make_tern, dns_zone, peer_port, start=False)
    t.aliases.write_text("postmaster: root\nroot: alice\nfwd: carol, bob@far.example\n")
    t.start()
    qid = send(t, ["fwd@tern.test", "dave@far.example"])
    assert removed(t, qid), t.log()
    m = re.search(r"%s: to=<fwd@tern\.test>.*forwarded as ([0-9A-F]{12})" % qid, t.log())
    assert m, t.log()
    assert removed(t, m.group(1)), t.log()
    t.wait_mail("carol")
    time.sleep(0.3)
    assert sorted(delivered_to(p)) == ["bob@far.example", "dave@far.example"]
    fwd = [tx for tx in p.messages if tx.delivered == ["bob@far.example"]][0]
    assert fwd.mail_from == SENDER
    assert t.queued() == []


def test_alias_to_failing_remote_bounces_to_sender(make_tern, dns_zone, peers, peer_port):
    """The forwarded copy's target refuses (550): the original sender gets the bounce."""
    dns_zone.mx("far.example", "mx.far.example").a("mx.far.example", "127.0.0.2").start()
    peers(host="127.0.0.2", port=peer_port, rcpt_replies={"gone@far.example": "550 5.1.1 gone"})
    t = start_tern(make_tern, dns_zone, peer_port, start=False)
    t.aliases.write_text("postmaster: root\nroot: alice\nfwd: gone@far.example\n")
    t.start()
    send(t, ["fwd@tern.test"])
    assert wait_for(lambda: len(reports(t)) == 1, 10), t.log()
    r = reports(t)[0][3][0]
    assert r["Final-Recipient"].replace(" ", "") == "rfc822;gone@far.example"
    assert wait_for(lambda: t.queued() == [], 10)


# ---- bounce to a remote sender that fails --------------------------------------------------

def test_bounce_to_failing_remote_sender_no_loop(make_tern, dns_zone, peers, peer_port):
    """The message bounces, and the bounce to the remote sender is refused too: no report of the
    report, both queue files removed, the peer sees exactly two transactions."""
    dns_zone.mx("snd.example", "mx.snd.example").a("mx.snd.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port,
              rcpt_replies={"nobody@snd.example": "550 5.1.1 no",
                            "sender@snd.example": "550 5.1.1 no"})
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, ["nobody@snd.example"], sender="sender@snd.example")
    assert removed(t, qid), t.log()
    m = re.search(r"%s: sender non-delivery notification: ([0-9A-F]{12})" % qid, t.log())
    assert m, t.log()
    assert removed(t, m.group(1)), t.log()
    time.sleep(1.5)
    assert "not bouncing to the null sender" in t.log()
    assert len(p.transactions) == 2
    assert p.transactions[1].mail_from in ("", "<>")
    assert t.queued() == []


def test_bounce_to_deferring_remote_sender_retried(make_tern, dns_zone, peers, peer_port):
    """The bounce to a remote sender whose server defers first is retried and delivered once."""
    dns_zone.mx("snd.example", "mx.snd.example").a("mx.snd.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port,
              rcpt_replies={"nobody@snd.example": "550 5.1.1 no",
                            "sender@snd.example": "451 4.3.0 later"})
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, ["nobody@snd.example"], sender="sender@snd.example")
    assert removed(t, qid), t.log()
    assert wait_for(lambda: re.search(r"to=<sender@snd\.example>.*status=deferred", t.log()), 10)
    p.rcpt_replies = {"nobody@snd.example": "550 5.1.1 no"}
    assert wait_for(lambda: "sender@snd.example" in delivered_to(p), 15), t.log()
    assert wait_for(lambda: t.queued() == [], 10)
    time.sleep(0.5)
    assert delivered_to(p) == ["sender@snd.example"]


# ---- peers that drop the connection --------------------------------------------------------

@pytest.mark.parametrize("when", ["in-data", "before-final-reply"])
def test_peer_drops_connection_then_retry(make_tern, dns_zone, peer_port, when):
    """The first connection is dropped in the middle of the text, or after the final dot with
    no reply: deferred ("lost connection"), never bounced or lost, delivered by the retry."""
    dns_zone.mx("drop.example", "mx.drop.example").a("mx.drop.example", "127.0.0.2").start()
    got = []

    def script(i, sock):
        rd = _Reader(sock)
        if i == 0:
            smtp_until_data(sock, rd)
            if when == "in-data":
                sock.recv(10)
            else:
                rd.data()
            sock.shutdown(socket.SHUT_RDWR)
            return
        smtp_full(sock, rd, got)

    srv = RawServer("127.0.0.2", peer_port, script)
    try:
        t = start_tern(make_tern, dns_zone, peer_port)
        qid = send(t, ["bob@drop.example", "carol@drop.example"])
        assert removed(t, qid), t.log()
        assert re.search(r"%s: to=<bob@drop\.example>.*status=deferred" % qid, t.log()), t.log()
        assert "status=bounced" not in t.log()
        assert len(got) == 1
        assert reports(t) == []
    finally:
        srv.stop()
    assert not srv.errors, srv.errors


def test_peer_closes_idle_reused_connection(make_tern, dns_zone, peer_port):
    """The peer closes the connection right after the first transaction's 250 (no QUIT): the
    next waiting message gets a fresh connection and nothing is lost."""
    dns_zone.mx("idle.example", "mx.idle.example").a("mx.idle.example", "127.0.0.2").start()
    got = []

    def script(i, sock):
        rd = _Reader(sock)
        smtp_until_data(sock, rd, greet_delay=0.1)
        got.append(rd.data())
        sock.sendall(b"250 2.0.0 ok\r\n")
        time.sleep(0.05)

    srv = RawServer("127.0.0.2", peer_port, script)
    try:
        t = start_tern(make_tern, dns_zone, peer_port, smtp_destination_concurrency_limit=1)
        qids = [send(t, ["u%d@idle.example" % i]) for i in range(4)]
        for q in qids:
            assert removed(t, q), t.log()
        assert len(got) == 4
    finally:
        srv.stop()
    assert not srv.errors, srv.errors


def test_peer_one_message_per_connection_no_deferral(make_tern, dns_zone, peer_port):
    """The server takes one message per connection: it closes right after the 250 (no QUIT, no
    421).  Messages waiting for the destination should just get new connections; tern hands the
    next one to the closing connection at once, and every other message is deferred with
    "lost connection with ... while MAIL FROM" (a 421 sent together with the 250 is handled).
    No mail is lost (test_peer_closes_idle_reused_connection), but a retry costs a backoff."""
    dns_zone.mx("once.example", "mx.once.example").a("mx.once.example", "127.0.0.2").start()
    got = []

    def script(i, sock):
        rd = _Reader(sock)
        smtp_until_data(sock, rd, greet_delay=0.1)
        got.append(rd.data())
        sock.sendall(b"250 2.0.0 ok\r\n")
        time.sleep(0.05)        # then close, no QUIT

    srv = RawServer("127.0.0.2", peer_port, script)
    try:
        t = start_tern(make_tern, dns_zone, peer_port, smtp_destination_concurrency_limit=1)
        qids = [send(t, ["u%d@once.example" % i]) for i in range(3)]
        wait_for(lambda: "status=deferred" in t.log() or
                 all("%s: removed" % q in t.log() for q in qids), 5)
        assert "status=deferred" not in t.log(), t.log()
    finally:
        srv.stop()


# ---- signals while deliveries are in flight -------------------------------------------------

def test_sighup_while_jobs_wait(make_tern, dns_zone, peers, peer_port):
    """SIGHUP while one transaction runs (slow peer) and others wait for the destination: every
    message delivered exactly once."""
    dns_zone.mx("hup.example", "mx.hup.example").a("mx.hup.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, data_delay=0.5)
    t = start_tern(make_tern, dns_zone, peer_port, smtp_destination_concurrency_limit=1)
    qids = [send(t, ["u%d@hup.example" % i]) for i in range(4)]
    assert wait_for(lambda: len(p.transactions) >= 1, 10)
    t.reload()
    time.sleep(0.2)
    t.reload()
    for q in qids:
        assert removed(t, q), t.log()
    time.sleep(0.3)
    assert sorted(delivered_to(p)) == ["u%d@hup.example" % i for i in range(4)]


def test_sighup_before_peer_greeting(make_tern, dns_zone, peer_port):
    """SIGHUP while an outbound connection waits for the server's greeting.  on_sighup frees the
    old configuration, but the smtpc job still points at its strings (helo_name): EHLO is then
    built from freed memory (AddressSanitizer: heap-use-after-free in smtpc.c command())."""
    dns_zone.mx("greet.example", "mx.greet.example").a("mx.greet.example", "127.0.0.2").start()
    got, helos = [], []
    connected = threading.Event()

    def script(i, sock):
        rd = _Reader(sock)
        connected.set()
        time.sleep(1.0)
        sock.sendall(b"220 raw.example ESMTP\r\n")
        helos.append(rd.line())
        sock.sendall(b"250 raw.example\r\n")
        while True:
            ln = rd.line()
            verb = ln.split(" ")[0].upper()
            if verb == "DATA":
                sock.sendall(b"354 go\r\n")
                got.append(rd.data())
                sock.sendall(b"250 2.0.0 ok\r\n")
            elif verb == "QUIT":
                sock.sendall(b"221 bye\r\n")
                return
            else:
                sock.sendall(b"250 ok\r\n")

    srv = RawServer("127.0.0.2", peer_port, script)
    try:
        t = start_tern(make_tern, dns_zone, peer_port)
        try:
            qid = send(t, ["bob@greet.example"])
            assert connected.wait(10)
            t.reload()
            assert removed(t, qid, timeout=4), t.log()
            assert helos == ["EHLO mx.tern.test"], helos
            assert len(got) == 1
        finally:
            stop_checked(t)
    finally:
        srv.stop()


def test_sigterm_during_slow_transaction(make_tern, dns_zone, peers, peer_port):
    """SIGTERM while the peer takes 1 s to answer the end of data: ternd waits for the answer,
    records it, exits 0; after a restart nothing is sent again."""
    dns_zone.mx("slow.example", "mx.slow.example").a("mx.slow.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, data_delay=1)
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, ["bob@slow.example", "carol@tern.test"])
    assert wait_for(lambda: len(p.transactions) == 1 and p.transactions[0].content is not None, 10)
    assert t.stop() == 0
    assert len(p.messages) == 1
    t.start()
    assert removed(t, qid) or qid not in t.queued(), t.log()
    time.sleep(1)
    assert len(p.transactions) == 1
    assert len(t.mailbox("carol")) == 1


def test_sigterm_while_jobs_wait_then_restart(make_tern, dns_zone, peers, peer_port):
    """SIGTERM while one slow transaction runs and three more messages wait for the destination:
    exit 0, and after a restart each message is delivered exactly once."""
    dns_zone.mx("slow.example", "mx.slow.example").a("mx.slow.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, data_delay=1)
    t = start_tern(make_tern, dns_zone, peer_port, smtp_destination_concurrency_limit=1)
    qids = [send(t, ["u%d@slow.example" % i]) for i in range(4)]
    assert wait_for(lambda: len(p.transactions) >= 1, 10)
    assert t.stop() == 0
    p.data_delay = 0
    t.start()
    for q in qids:
        assert removed(t, q), t.log()
    time.sleep(0.3)
    assert sorted(delivered_to(p)) == ["u%d@slow.example" % i for i in range(4)]


# ---- mail loops ----------------------------------------------------------------------------

def test_mx_is_myself_bounces_546(make_tern, dns_zone, peers, peer_port):
    """The best MX is myhostname: bounce 5.4.6 ("loops back to myself"), no connection."""
    (dns_zone.mx("loop.example", "mx.me.example", 10).a("mx.me.example", "127.0.0.2")
     .mx("second.example", "mx.other.example", 10).mx("second.example", "mx.me.example", 20)
     .a("mx.other.example", "127.0.0.3").start())
    p = peers(host="127.0.0.2", port=peer_port)
    p3 = peers(host="127.0.0.3", port=peer_port)
    t = start_tern(make_tern, dns_zone, peer_port, myhostname="mx.me.example",
                   mydestination="$myhostname, tern.test, localhost")
    qid = send(t, ["bob@loop.example"])
    assert removed(t, qid), t.log()
    r = reports(t)[0][3][0] if wait_for(lambda: reports(t), 10) else None
    assert r is not None and r["Status"] == "5.4.6"
    assert "loops back to myself" in t.log()
    assert p.connections == []
    q2 = send(t, ["bob@second.example"])
    assert removed(t, q2), t.log()
    assert delivered_to(p3) == ["bob@second.example"]


def test_mx_equal_preference_with_myself_is_deterministic(make_tern, dns_zone, peers, peer_port):
    """myhostname shares the best preference with another host.  The MX list is shuffled first
    and the loop check looks only at the position of myhostname, so the same MX list is bounced
    (5.4.6) or relayed at random.  (Postfix drops every host whose preference is >= its own, so
    this always bounces there.)  Twelve domains with that MX list, one message."""
    doms = ["eq%d.example" % i for i in range(12)]
    for d in doms:
        dns_zone.mx(d, "mx.me.example", 10).mx(d, "mx.other.example", 10)
    dns_zone.a("mx.me.example", "127.0.0.2").a("mx.other.example", "127.0.0.3").start()
    p3 = peers(host="127.0.0.3", port=peer_port)
    t = start_tern(make_tern, dns_zone, peer_port, myhostname="mx.me.example",
                   mydestination="$myhostname, tern.test, localhost")
    qid = send(t, ["u@" + d for d in doms])
    assert removed(t, qid), t.log()
    bounced = len(re.findall(r"status=bounced \(mail for \S+ loops back to myself", t.log()))
    relayed = len(delivered_to(p3))
    assert (bounced, relayed) in ((12, 0), (0, 12)), (bounced, relayed)


# ---- no resolver -------------------------------------------------------------------------

def test_resolver_unavailable_defers(make_tern):
    """dns_nameservers names no usable server: the outbound resolver cannot start ("MX lookups
    will fail temporarily").  A message to a remote domain must simply be deferred (4.4.3)."""
    t = make_tern(dns_nameservers="no-such-server", myorigin="tern.test")
    try:
        assert wait_for(lambda: "outbound DNS resolver unavailable" in t.log(), 5), t.log()
        qid = send(t, ["bob@remote.example"])
        assert wait_for(lambda: re.search(r"%s: to=<bob@remote\.example>.*dsn=4\.4\.3, "
                                          r"status=deferred" % qid, t.log()), 5), t.log()
        assert qid in t.queued()
    finally:
        stop_checked(t)


# ---- local delivery workers and SIGHUP --------------------------------------------------

@pytest.fixture
def cmd_out():
    """A world-writable directory outside pytest's private tmp tree: alias commands run as
    default_privs (nobody) when tern runs as root."""
    import shutil
    import tempfile
    from pathlib import Path
    out = Path(tempfile.mkdtemp(prefix="tern-edge-", dir="/tmp"))
    os.chmod(out, 0o777)
    yield out
    shutil.rmtree(out, ignore_errors=True)


def slow_aliases(t, out):
    """Aliases short (0.3 s) and mid (1 s) running a command that appends a line to
    out/count."""
    t.aliases.write_text('postmaster: root\nroot: alice\n'
                         'short: "|sleep 0.3; echo short >> %s/count"\n'
                         'mid: "|sleep 1; echo mid >> %s/count"\n' % (out, out))
    return out / "count"


def runs(count):
    return count.read_text().split() if count.exists() else []


def test_sighup_fewer_workers_no_duplicate(make_tern, cmd_out):
    """Worker 0 is idle, worker 1 runs a slow command; SIGHUP lowers local_delivery_workers to 1.
    Worker 1 is shut down while busy: it still runs the command to the end (the master even
    waits for it in waitpid), but its result is thrown away as "local delivery process exited"
    and the recipient is retried, so the command runs twice for one message."""
    t = make_tern(start=False, local_delivery_workers=2)
    count = slow_aliases(t, cmd_out)
    t.start()
    try:
        q1 = send(t, ["short@tern.test"])    # worker 0, done after 0.3 s
        q2 = send(t, ["mid@tern.test"])      # worker 1, busy for 1 s
        assert wait_for(lambda: runs(count) == ["short"], 5)
        t.settings["local_delivery_workers"] = "1"
        t.write_conf()
        t.reload()
        assert removed(t, q1) and removed(t, q2), t.log()
        time.sleep(0.5)
        assert sorted(runs(count)) == ["mid", "short"], (runs(count), t.log())
    finally:
        stop_checked(t)


def test_sighup_more_workers_while_busy(make_tern, cmd_out):
    """A worker runs a slow command; SIGHUP raises local_delivery_workers from 1 to 3.  When the
    busy worker answers, its callback gets a pointer into the freed old worker array."""
    t = make_tern(start=False, local_delivery_workers=1)
    count = slow_aliases(t, cmd_out)
    t.start()
    try:
        qid = send(t, ["mid@tern.test"])
        time.sleep(0.5)
        t.settings["local_delivery_workers"] = "3"
        t.write_conf()
        t.reload()
        assert removed(t, qid, timeout=4), t.log()
        time.sleep(0.3)
        assert runs(count) == ["mid"]
    finally:
        stop_checked(t)


def test_sighup_same_workers_while_busy(make_tern, cmd_out):
    """The same SIGHUP with an unchanged worker count: the busy worker finishes its message
    (retire), nothing is delivered twice."""
    t = make_tern(start=False, local_delivery_workers=2)
    count = slow_aliases(t, cmd_out)
    t.start()
    q1 = send(t, ["mid@tern.test"])
    q2 = send(t, ["mid@tern.test"])
    time.sleep(0.5)
    t.reload()
    q3 = send(t, ["short@tern.test"])
    for q in (q1, q2, q3):
        assert removed(t, q), t.log()
    time.sleep(0.3)
    assert sorted(runs(count)) == ["mid", "mid", "short"]


# ---- transport_maps errors -----------------------------------------------------------------

def test_bad_transport_maps_refuses_start(make_tern, tmp_path):
    """A bad line in transport_maps: ternd does not start and names FILE:LINE."""
    maps = tmp_path / "transport"
    maps.write_text("# comment\ngood.example smtp:[127.0.0.7]\nbad.example frobnicate:x\n")
    t = make_tern(start=False, transport_maps=maps)
    try:
        t.start()       # may see the listener before ternd reads the maps and exits
    except RuntimeError:
        pass
    rc = t.proc.wait(10)
    assert rc != 0
    out = t.read_stderr() + t.log()
    assert "%s:3" % maps in out, out
    t.proc = None
    (t.dir / "stderr.txt").write_bytes(b"")


def test_bad_transport_maps_on_sighup_keeps_old(make_tern, dns_zone, peers, peer_port, tmp_path):
    """SIGHUP with a broken transport_maps: logged with FILE:LINE, the old maps stay in use."""
    dns_zone.a("unused.example", "127.0.0.9").start()
    p = peers(host="127.0.0.7", port=peer_port)
    maps = tmp_path / "transport"
    maps.write_text("routed.example smtp:[127.0.0.7]\n")
    t = start_tern(make_tern, dns_zone, peer_port, transport_maps=maps)
    maps.write_text("routed.example smtp:[127.0.0.7]\nrouted.example smtp:[127.0.0.8]\n")
    t.reload()
    assert wait_for(lambda: "reloaded configuration" in t.log(), 5)
    assert "%s:2" % maps in t.log(), t.log()
    assert "keeping the old maps" in t.log()
    qid = send(t, ["bob@routed.example"])
    assert removed(t, qid), t.log()
    assert delivered_to(p) == ["bob@routed.example"]
    # a good file is taken at the next SIGHUP
    maps.write_text("routed.example error:5.7.1 closed now\n")
    t.reload()
    assert wait_for(lambda: t.log().count("reloaded configuration") == 2, 5)
    send(t, ["bob@routed.example"])
    assert wait_for(lambda: len(reports(t)) == 1, 10), t.log()
    assert reports(t)[0][3][0]["Status"] == "5.7.1"


# ---- dead destinations -----------------------------------------------------------------------

def test_dead_destination_no_connection_storm(make_tern, dns_zone, peer_port):
    """Twelve messages for a destination whose server greets with 421: all deferred quickly
    ("delivery temporarily suspended"), with at most smtp_destination_concurrency_limit
    connections per round, not one per message."""
    dns_zone.mx("dead.example", "mx.dead.example").a("mx.dead.example", "127.0.0.2").start()

    def script(i, sock):
        time.sleep(0.2)
        sock.sendall(b"421 4.3.2 service not available\r\n")

    srv = RawServer("127.0.0.2", peer_port, script)
    try:
        t = start_tern(make_tern, dns_zone, peer_port, smtp_destination_concurrency_limit=2,
                       queue_retry_interval="60s", maximal_backoff_time="60s", start=False)
        # queue first, then start: every message is waiting when the first attempt begins
        t.settings["smtp_port"] = "1"
        t.write_conf()
        t.start()
        qids = [send(t, ["u%d@dead.example" % i]) for i in range(12)]
        assert wait_for(lambda: t.log().count("status=deferred") >= 12, 10), t.log()
        assert t.stop() == 0
        t.settings["smtp_port"] = str(peer_port)
        t.settings["queue_retry_interval"] = "60s"
        t.write_conf()
        before = srv.accepted
        t.start()
        assert wait_for(lambda: t.log().count("status=deferred") >= 24, 10), t.log()
        assert srv.accepted - before <= 2, srv.accepted - before
        assert "delivery temporarily suspended" in t.log()
        assert all(q in t.queued() for q in qids)
    finally:
        srv.stop()


# ---- mail loops through another name of this host ------------------------------------------

def test_mx_alias_of_myself_loop_is_stopped(make_tern, dns_zone):
    """The MX host of loop.example has another name than myhostname but is this server (same
    address and port).  tern relays the message to itself again and again, each pass adding a
    Received: header; nothing ever stops it.  Postfix bounces such a message after
    hopcount_limit (50) Received: headers with 5.4.6, and also recognises its own addresses in
    the MX list ("loops back to myself")."""
    dns_zone.mx("loop.example", "alias.me.example").a("alias.me.example", "127.0.0.1").start()
    t = make_tern(start=False, dns_nameservers=dns_zone.nameserver, myhostname="mx.me.example",
                  mydestination="$myhostname, tern.test, localhost", myorigin="tern.test")
    t.settings["smtp_port"] = str(t.port)
    t.write_conf()
    t.start()
    send(t, ["bob@loop.example"])
    stopped = wait_for(lambda: len(reports(t)) >= 1 and t.queued() == [], 3)
    hops = len(re.findall(r"to=<bob@loop\.example>.*status=sent", t.log()))
    assert stopped and hops <= 60, (hops, t.queued()[:3])


def test_sigterm_stops_dispatching_local_jobs(make_tern, cmd_out):
    """One worker, three messages for a 1 s command: SIGTERM while the first runs.  ternd should
    finish that one and stop (the others stay queued for the next start); it runs all three
    first, so a long local queue holds the shutdown up to its 10 s limit, after which results
    of the messages still running are lost (delivered again after the restart)."""
    t = make_tern(start=False, local_delivery_workers=1)
    count = slow_aliases(t, cmd_out)
    t.start()
    try:
        qids = [send(t, ["mid@tern.test"]) for _ in range(3)]
        time.sleep(0.3)
        assert t.stop() == 0
        assert runs(count) == ["mid"], runs(count)
        t.start()
        for q in qids:
            assert removed(t, q), t.log()
        assert runs(count) == ["mid"] * 3
    finally:
        stop_checked(t)


def test_rcpt_452_too_many_recipients_retried(make_tern, dns_zone, peers, peer_port):
    """The peer answers 452 4.5.3 to some recipients: those are deferred and sent alone later,
    the accepted ones are not sent again."""
    dns_zone.mx("many.example", "mx.many.example").a("mx.many.example", "127.0.0.2").start()
    rcpts = ["u%d@many.example" % i for i in range(4)]
    p = peers(host="127.0.0.2", port=peer_port,
              rcpt_replies={a: "452 4.5.3 too many recipients" for a in rcpts[2:]})
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, rcpts)
    assert wait_for(lambda: "status=deferred" in t.log(), 10)
    p.rcpt_replies = {}
    assert removed(t, qid), t.log()
    time.sleep(0.2)
    assert sorted(delivered_to(p)) == rcpts
    assert [sorted(tx.delivered) for tx in p.messages] == [rcpts[:2], rcpts[2:]]


# ---- DNS lookups in flight -------------------------------------------------------------------

def blackhole_dns():
    """A UDP socket on 127.0.0.1 that never answers: lookups stay in flight."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def test_sigterm_during_mx_lookup(make_tern, dns_zone, peers, peer_port):
    """SIGTERM while the MX lookup hangs: ternd exits 0 at once (lookups are abandoned), the
    message stays queued and is delivered after a restart with a working resolver."""
    dns_zone.mx("dns.example", "mx.dns.example").a("mx.dns.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port)
    hole = blackhole_dns()
    try:
        t = start_tern(make_tern, dns_zone, peer_port,
                       dns_nameservers="127.0.0.1:%d" % hole.getsockname()[1])
        qid = send(t, ["bob@dns.example"])
        time.sleep(0.5)
        t0 = time.time()
        assert t.stop() == 0
        assert time.time() - t0 < 3
        assert qid in t.queued()
        t.settings["dns_nameservers"] = dns_zone.nameserver
        t.write_conf()
        t.start()
        assert removed(t, qid), t.log()
        assert delivered_to(p) == ["bob@dns.example"]
    finally:
        hole.close()


def test_sighup_applies_dns_nameservers(make_tern, dns_zone, peers, peer_port):
    """Start with a resolver that never answers, fix dns_nameservers and SIGHUP: the next
    attempt should use the new server."""
    dns_zone.mx("dns.example", "mx.dns.example").a("mx.dns.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port)
    hole = blackhole_dns()
    try:
        t = start_tern(make_tern, dns_zone, peer_port,
                       dns_nameservers="127.0.0.1:%d" % hole.getsockname()[1])
        t.settings["dns_nameservers"] = dns_zone.nameserver
        t.write_conf()
        t.reload()
        assert wait_for(lambda: "reloaded configuration" in t.log(), 5)
        qid = send(t, ["bob@dns.example"])
        assert removed(t, qid, timeout=3), t.log()
        assert delivered_to(p) == ["bob@dns.example"]
    finally:
        hole.close()
