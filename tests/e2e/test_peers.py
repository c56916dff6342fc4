"""Self-tests of the peers.py fixtures: DnsZone (dnsmasq) and the aiosmtpd SMTP/LMTP peers.
No ternd is involved; smtplib, raw sockets and peers.dns_query stand in for it."""
import base64
import os
import smtplib
import socket
import ssl
import time
from pathlib import Path

import pytest

from conftest import Raw, wait_for
from peers import (DnsZone, Peer, default_cert, dns_query, dns_zone, peer_port,  # noqa: F401
                   peers, shared_port)

SENDER = "sender@tern.example"
MSG = b"From: sender@tern.example\r\nSubject: hi\r\n\r\nline 1\r\n.leading dot\r\n"


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def ehlo_words(s):
    code, text = s.ehlo("client.example")
    assert code == 250
    return [ln.split(" ")[0].upper() for ln in text.decode().splitlines()[1:]]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); dnsmasq is our child and is reaped by Popen.wait
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# ---- ports ---------------------------------------------------------------

def test_shared_port_free_on_every_address(peer_port):
    hosts = ["127.0.0.%d" % i for i in (2, 3, 4)]
    port = shared_port(*hosts)
    assert 20000 <= port < 32768 and 20000 <= peer_port < 32768
    socks = []
    try:
        for h in hosts:
            s = socket.socket()
            s.bind((h, port))
            s.listen()
            socks.append(s)
    finally:
        for s in socks:
            s.close()
    for h in ("127.0.0.%d" % i for i in range(2, 10)):
        with socket.socket() as s:
            s.bind((h, peer_port))


# ---- DNS -----------------------------------------------------------------

_fixture_zone = []


def test_dns_zone_records(dns_zone):
    z = dns_zone
    assert not z.running()
    z.mx("a.example", "mx2.a.example", 20).mx("a.example", "mx1.a.example", 10)
    z.a("mx1.a.example", "127.0.0.2").a("mx2.a.example", "127.0.0.3", "127.0.0.4")
    z.aaaa("mx2.a.example", "::1")
    z.a("plain.example", "127.0.0.5")
    z.null_mx("nullmx.example")
    z.rr("txt.example", "TXT", b"\x05hello")
    z.start()
    _fixture_zone.append(z.pid)
    assert z.running()
    assert z.nameserver == "127.0.0.1:%d" % z.port and z.port < 32768

    r = z.query("a.example", "MX")
    assert r.rcode == "NOERROR" and sorted(r.answers) == [(10, "mx1.a.example"), (20, "mx2.a.example")]
    assert all(rec[2] == 0 for rec in r.records)      # TTL 0
    assert z.query("MX1.A.EXAMPLE", "A").answers == ["127.0.0.2"]
    assert sorted(z.query("mx2.a.example", "A").answers) == ["127.0.0.3", "127.0.0.4"]
    assert z.query("mx2.a.example", "AAAA").answers == ["::1"]
    # A only: NODATA for MX (the RFC 5321 5.1 implicit MX case)
    r = z.query("plain.example", "MX")
    assert (r.rcode, r.answers) == ("NOERROR", [])
    assert z.query("plain.example", "A").answers == ["127.0.0.5"]
    # MX only: NODATA for A
    assert (z.query("a.example", "A").rcode, z.query("a.example", "A").answers) == ("NOERROR", [])
    # null MX; raw-record names are NXDOMAIN for other types
    assert z.query("nullmx.example", "MX").answers == [(0, ".")]
    assert z.query("nullmx.example", "A").rcode == "NXDOMAIN"
    assert z.query("txt.example", "TXT").answers == [["hello"]]
    # unknown names, in any TLD: NXDOMAIN (not REFUSED)
    for name in ("nosuch.example", "sub.mx1.a.example", "other.org", "com"):
        assert z.query(name, "MX").rcode == "NXDOMAIN", name
    # dns_query is the same thing
    assert dns_query(z.port, "mx1.a.example", "A").answers == ["127.0.0.2"]

    assert wait_for(lambda: ("MX", "a.example") in z.queries() and ("A", "MX1.A.EXAMPLE") in z.queries())


def test_dns_zone_fixture_stopped_the_zone():
    """The zone of the previous test was stopped by its fixture."""
    assert _fixture_zone and not pid_alive(_fixture_zone[0])


def test_dns_zone_rejects_unbound_local_zones():
    z = DnsZone()
    try:
        for name in ("a.test", "test", "x.invalid", "localhost", "b.home.arpa", "c.onion"):
            with pytest.raises(ValueError):
                z.a(name, "127.0.0.2")
        with pytest.raises(ValueError):
            z.mx("a.example", "mx.test")
    finally:
        z.close()


def test_dns_zone_restart_and_stop(tmp_path):
    with DnsZone(tmp_path / "z") as z:
        z.mx("b.example", "mx.b.example", 5)
        assert z.query("c.example", "MX").rcode == "NXDOMAIN"
        port, pid = z.port, z.pid
        z.mx("c.example", "mx.c.example", 7)
        z.restart()
        assert z.port == port and z.pid != pid and not pid_alive(pid)
        assert z.query("c.example", "MX").answers == [(7, "mx.c.example")]
        pid = z.pid
    assert not pid_alive(pid) and z.proc is None
    with pytest.raises(OSError):
        dns_query(port, "b.example", "MX", timeout=0.3)
    z.stop()   # idempotent


# ---- SMTP peers ----------------------------------------------------------

def test_transactions_over_one_connection(peers):
    port = shared_port("127.0.0.2", "127.0.0.3")
    p = peers(host="127.0.0.2", port=port)
    other = peers(host="127.0.0.3", port=port, hostname="other.example")
    with smtplib.SMTP("127.0.0.2", port, timeout=5) as s:
        s.ehlo("tern.example")
        s.sendmail(SENDER, ["a@a.example", "b@a.example"], MSG)
        s.rset()
        s.sendmail("", ["c@a.example"], MSG, mail_options=["BODY=8BITMIME"])
        s.sendmail(SENDER, ["d@a.example"], b"Subject: 3\r\n\r\nthird\r\n")
    assert p.wait_messages(3)
    assert len(p.connections) == 1
    c = p.connections[0]
    assert wait_for(lambda: c.closed)
    assert c.helo == "tern.example" and c.esmtp and c.tls is None and c.peer[0] == "127.0.0.1"
    assert c.verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA",
                       "MAIL", "RCPT", "DATA", "QUIT"]
    assert c.commands[0] == "ehlo tern.example"     # as sent (smtplib sends lower case)
    assert len(c.transactions) == 3 and p.transactions == c.transactions
    t0, t1, t2 = p.messages
    assert (t0.mail_from, t0.rcpt_tos, t0.content) == (SENDER, ["a@a.example", "b@a.example"], MSG)
    assert t0.data_reply.startswith("250 ") and t0.delivered == ["a@a.example", "b@a.example"]
    assert t0.message()["Subject"] == "hi"
    assert (t1.mail_from, t1.mail_options) == ("", ["size=%d" % len(MSG), "BODY=8BITMIME"])
    assert t1.mail_params == {"SIZE": str(len(MSG)), "BODY": "8BITMIME"}
    assert t2.content.endswith(b"third\r\n") and t2.helo == "tern.example" and t2.index == 2
    # the peer on the other address of the same port saw nothing
    assert other.connections == [] and other.address == ("127.0.0.3", port)
    with smtplib.SMTP("127.0.0.3", port, timeout=5) as s:
        assert s.ehlo()[1].startswith(b"other.example")
    assert other.wait_connections(1)


def test_scripted_replies(peers):
    p = peers(rcpt_replies={"Bad@A.example": "550 5.1.1 no such user",
                            "full@a.example": "452 4.2.2 mailbox full"},
              data_reply="250 2.0.0 custom id 42")
    with smtplib.SMTP(*p.address, timeout=5) as s:
        refused = s.sendmail(SENDER, ["ok@a.example", "bad@a.example", "full@a.example"], MSG)
        assert refused == {"bad@a.example": (550, b"5.1.1 no such user"),
                           "full@a.example": (452, b"4.2.2 mailbox full")}
        p.mail_reply = "553 5.7.1 sender refused"     # behaviour changes while running
        with pytest.raises(smtplib.SMTPSenderRefused) as e:
            s.sendmail(SENDER, ["ok@a.example"], MSG)
        assert e.value.smtp_code == 553
        p.mail_reply = None
        p.data_reply = "554 5.6.0 content refused"
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail(SENDER, ["ok@a.example"], MSG)
        assert e.value.smtp_code == 554
    t0, t1, t2 = p.transactions
    assert t0.rcpt_tos == ["ok@a.example"] and t0.data_reply == "250 2.0.0 custom id 42"
    assert t0.rcpt_replies == [("ok@a.example", "250 2.1.5 Ok"), ("bad@a.example", "550 5.1.1 no such user"),
                               ("full@a.example", "452 4.2.2 mailbox full")]
    assert t1.mail_reply.startswith("553") and t1.rcpt_tos == [] and t1.content is None
    assert t2.content == MSG and not t2.accepted and t2.delivered == []
    assert p.messages == [t0]


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
def test_defer_first_transactions(peers, stage):
    p = peers(defer_first=2, defer_at=stage)
    codes = []
    for _ in range(3):
        with smtplib.SMTP(*p.address, timeout=5) as s:
            try:
                s.sendmail(SENDER, ["x@a.example"], MSG)
                codes.append(250)
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
                codes.append(e.smtp_code)
            except smtplib.SMTPRecipientsRefused as e:
                codes.append(e.recipients["x@a.example"][0])
    assert codes == [451, 451, 250]
    assert len(p.connections) == 3 and len(p.transactions) == 3 and len(p.messages) == 1
    assert p.messages[0].index == 2
    assert [t.conn.index for t in p.transactions] == [0, 1, 2]


def test_refusing_greetings(peers):
    p = peers(greeting="554 5.3.2 go away")
    r = Raw(p.port, host=p.host)
    assert r.reply() == (554, ["554 5.3.2 go away"])
    r.cmd("EHLO tern.example", 503)
    r.cmd("MAIL FROM:<a@b.example>", 503)
    r.cmd("QUIT", 221)
    assert r.closed()
    r.close()
    assert p.connections[0].verbs == ["EHLO", "MAIL", "QUIT"] and p.transactions == []

    p2 = peers(host="127.0.0.3", greeting="421 4.3.2 shutting down")
    r = Raw(p2.port, host=p2.host)
    assert r.reply()[0] == 421 and r.closed()
    r.close()

    p3 = peers(host="127.0.0.4", greeting="220 custom.example ESMTP hello")
    with smtplib.SMTP(*p3.address, timeout=5) as s:
        assert s.docmd("NOOP")[0] == 250
    r = Raw(p3.port, host=p3.host)
    assert r.reply() == (220, ["220 custom.example ESMTP hello"])
    r.close()


def test_ehlo_refused_helo_fallback_and_keywords(peers):
    p = peers(ehlo_reply="502 5.5.2 EHLO not here")
    with smtplib.SMTP(*p.address, timeout=5) as s:
        assert s.ehlo("tern.example")[0] == 502
        assert s.helo("tern.example")[0] == 250
        s.sendmail(SENDER, ["x@a.example"], MSG)
    c = p.connections[0]
    assert c.verbs[:2] == ["EHLO", "HELO"] and c.helo == "tern.example" and not c.esmtp
    assert p.messages[0].helo == "tern.example"

    q = peers(host="127.0.0.3", ehlo_extra=["PIPELINING", "CHUNKING"], ehlo_drop=["8BITMIME"])
    with smtplib.SMTP(*q.address, timeout=5) as s:
        words = ehlo_words(s)
    assert "PIPELINING" in words and "CHUNKING" in words and "8BITMIME" not in words
    assert "SIZE" in words and "DSN" not in words and "AUTH" not in words and "STARTTLS" not in words
    # pipelined commands in one write
    r = Raw(q.port, host=q.host)
    r.expect(220)
    r.send("EHLO p.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
    for code in (250, 250, 250, 354):
        r.expect(code)
    r.send("Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    r.expect(250)
    r.expect(221)
    r.close()
    assert q.wait_messages(1)[0].content == b"Subject: p\r\n\r\nbody\r\n"


def test_dsn_parameters(peers):
    p = peers(dsn=True)
    with smtplib.SMTP(*p.address, timeout=5) as s:
        assert "DSN" in ehlo_words(s)
        assert s.docmd("MAIL FROM:<%s> RET=HDRS ENVID=QQ+2Bx.Id SIZE=%d" % (SENDER, len(MSG)))[0] == 250
        assert s.docmd("RCPT TO:<Bob@a.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@A.example")[0] == 250
        assert s.docmd("RCPT TO:<carol@a.example> NOTIFY=NEVER")[0] == 250
        assert s.data(MSG)[0] == 250
    t = p.wait_messages(1)[0]
    assert t.mail_options == ["RET=HDRS", "ENVID=QQ+2Bx.Id", "SIZE=%d" % len(MSG)]
    assert t.mail_params == {"RET": "HDRS", "ENVID": "QQ+2Bx.Id", "SIZE": str(len(MSG))}
    assert t.rcpt_tos == ["Bob@a.example", "carol@a.example"]
    assert t.rcpt_options[0] == ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Bob@A.example"]
    assert t.rcpt_params[0] == {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;Bob@A.example"}
    assert t.rcpt_params[1] == {"NOTIFY": "NEVER"}
    assert "MAIL FROM:<%s> RET=HDRS ENVID=QQ+2Bx.Id SIZE=%d" % (SENDER, len(MSG)) in p.connections[0].commands

    # without dsn the parameters are refused like any unknown one (555)
    q = peers(host="127.0.0.3")
    with smtplib.SMTP(*q.address, timeout=5) as s:
        assert "DSN" not in ehlo_words(s)
        assert s.docmd("MAIL FROM:<a@b.example> RET=FULL")[0] == 555
        assert s.docmd("MAIL FROM:<a@b.example>")[0] == 250
        assert s.docmd("RCPT TO:<c@d.example> NOTIFY=NEVER")[0] == 555
    assert [t.mail_reply[:3] for t in q.transactions] == ["250"]


def test_smtputf8_and_size(peers):
    p = peers(smtputf8=True, size_limit=1000)
    with smtplib.SMTP(*p.address, timeout=5) as s:
        words = ehlo_words(s)
        assert "SMTPUTF8" in words and s.esmtp_features["size"] == "1000"
        assert s.docmd("MAIL FROM:<a@b.example> SIZE=5000")[0] == 552
        s.sendmail("jörg@b.example", ["ürsula@a.example"], "Subject: ü\r\n\r\nü\r\n".encode(),
                   mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    t = p.wait_messages(1)[0]
    assert t.mail_from == "jörg@b.example" and t.rcpt_tos == ["ürsula@a.example"]
    assert t.mail_params["SMTPUTF8"] is True and t.mail_params["BODY"] == "8BITMIME"
    q = peers(host="127.0.0.3", size_limit=None)
    with smtplib.SMTP(*q.address, timeout=5) as s:
        assert "SIZE" not in ehlo_words(s) and "SMTPUTF8" not in ehlo_words(s)


def test_starttls(peers):
    p = peers(starttls=True)
    with smtplib.SMTP(*p.address, timeout=5) as s:
        words = ehlo_words(s)
        assert "STARTTLS" in words and "AUTH" not in words
        s.starttls(context=client_ctx())
        assert s.sock.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(
            Path(default_cert()[0]).read_text())
        assert "STARTTLS" not in ehlo_words(s)
        s.sendmail(SENDER, ["x@a.example"], MSG)
    c = p.connections[0]
    assert c.tls and c.tls.startswith("TLS") and c.cipher
    assert c.verbs == ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    t = p.wait_messages(1)[0]
    assert t.tls == c.tls and t.content == MSG

    q = peers(host="127.0.0.3", starttls=True, starttls_reply="454 4.7.0 TLS not available")
    with smtplib.SMTP(*q.address, timeout=5) as s:
        assert "STARTTLS" in ehlo_words(s)
        with pytest.raises(smtplib.SMTPResponseException) as e:
            s.starttls(context=client_ctx())
        assert e.value.smtp_code == 454
        s.sendmail(SENDER, ["x@a.example"], MSG)      # goes on in plain text
    assert q.wait_messages(1)[0].tls is None

    r = peers(host="127.0.0.4", starttls=True, require_starttls=True)
    with smtplib.SMTP(*r.address, timeout=5) as s:
        s.ehlo()
        assert s.docmd("MAIL FROM:<a@b.example>")[0] == 530
        s.starttls(context=client_ctx())
        s.sendmail(SENDER, ["x@a.example"], MSG)
    assert r.wait_messages(1)[0].tls


def test_own_certificate_and_idle_timeout(peers, tmp_path):
    from tlshelpers import self_signed
    cert, key = self_signed(tmp_path, "own.example", "own")
    p = peers(implicit_tls=True, cert=cert, key=key, timeout=0.5)
    with smtplib.SMTP_SSL(*p.address, timeout=5, context=client_ctx()) as s:
        assert s.sock.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(Path(cert).read_text())
    # an idle connection is closed after `timeout` seconds
    sock = client_ctx().wrap_socket(socket.create_connection(p.address, timeout=5))
    assert sock.recv(100).startswith(b"220 ")
    t0 = time.monotonic()
    try:
        assert sock.recv(100) == b""
    except (ssl.SSLError, OSError):
        pass
    assert 0.3 < time.monotonic() - t0 < 4
    sock.close()


def test_implicit_tls_with_auth(peers):
    p = peers(implicit_tls=True, auth="alice:s3cret pw", auth_required=True)
    with smtplib.SMTP_SSL(*p.address, timeout=5, context=client_ctx()) as s:
        words = ehlo_words(s)
        assert "STARTTLS" not in words and "AUTH" in words
        assert s.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        assert s.docmd("MAIL FROM:<a@b.example>")[0] == 530
        s.login("alice", "s3cret pw")
        s.sendmail(SENDER, ["x@a.example"], MSG)
    c = p.connections[0]
    assert c.tls and c.auth_user == "alice" and c.auth_attempts[-1][1:] == ("alice", True)
    assert p.wait_messages(1)[0].auth_user == "alice"
    # a plain-text client gets no greeting it can read
    with socket.create_connection(p.address, timeout=2) as sock:
        sock.sendall(b"EHLO x\r\n")
        try:
            data = sock.recv(100)
        except OSError:
            data = b""
        assert not data.startswith(b"220")


def test_auth_over_starttls(peers):
    p = peers(starttls=True, auth={"alice": "pw-a", "bob": "pw-b"}, auth_required=True)
    with smtplib.SMTP(*p.address, timeout=5) as s:
        assert "AUTH" not in ehlo_words(s)           # not before TLS
        assert s.docmd("AUTH PLAIN %s" % base64.b64encode(b"\0bob\0pw-b").decode())[0] == 538
        s.starttls(context=client_ctx())
        assert "AUTH" in ehlo_words(s)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("bob", "wrong")
        s.auth("PLAIN", lambda challenge=None: "\0bob\0pw-b", initial_response_ok=True)
        s.sendmail(SENDER, ["x@a.example"], MSG)
    c = p.connections[0]
    assert c.auth_user == "bob" and c.auth_mechanism == "PLAIN"
    # smtplib's login() tries PLAIN, then LOGIN
    assert c.auth_attempts == [("PLAIN", "bob", False), ("LOGIN", "bob", False), ("PLAIN", "bob", True)]

    # optional AUTH in plain text, LOGIN only
    q = peers(host="127.0.0.3", auth=("carol", "pw-c"), auth_require_tls=False, auth_mechanisms=["LOGIN"])
    with smtplib.SMTP(*q.address, timeout=5) as s:
        s.ehlo()
        assert s.esmtp_features["auth"].split() == ["LOGIN"]
        s.sendmail(SENDER, ["x@a.example"], MSG)        # optional: no AUTH needed
        s.login("carol", "pw-c")
        s.sendmail(SENDER, ["y@a.example"], MSG)
    t0, t1 = q.wait_messages(2)
    assert t0.auth_user is None and t1.auth_user == "carol"
    assert q.connections[0].auth_mechanism == "LOGIN"


def lmtp_session(sock_or_raw, rcpts):
    r = sock_or_raw
    r.expect(220)
    r.cmd("EHLO tern.example", 500)
    r.cmd("LHLO tern.example", 250)
    r.cmd("MAIL FROM:<%s>" % SENDER, 250)
    for rc in rcpts:
        r.send("RCPT TO:<%s>\r\n" % rc)
        r.reply()
    r.cmd("DATA", 354)
    r.send(MSG.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    return [r.reply() for _ in rcpts]


def test_lmtp_tcp_per_recipient_replies(peers):
    p = peers(lmtp=True, lmtp_replies={"full@a.example": "452 4.2.2 mailbox full",
                                       "gone@a.example": "550 5.1.1 gone"},
              data_reply="250 2.0.0 stored")      # for the recipients not listed
    r = Raw(p.port, host=p.host)
    replies = lmtp_session(r, ["ok@a.example", "full@a.example", "gone@a.example"])
    assert [c for c, _ in replies] == [250, 452, 550]
    r.cmd("QUIT", 221)
    r.close()
    t = p.wait_messages(1)[0]
    assert t.content == MSG and t.delivered == ["ok@a.example"]
    assert t.lmtp_replies[0] == ("ok@a.example", "250 2.0.0 stored")
    assert t.lmtp_replies[1] == ("full@a.example", "452 4.2.2 mailbox full")
    assert p.connections[0].verbs[:2] == ["EHLO", "LHLO"] and p.connections[0].helo == "tern.example"


class UnixRaw(Raw):
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.buf = b""


def test_lmtp_unix_socket_and_defer(peers, tmp_path):
    path = str(tmp_path / "lmtp.sock")
    p = peers(path=path, lmtp=True, defer_first=1)
    assert p.address == path and os.path.exists(path)
    r = UnixRaw(path)
    assert [c for c, _ in lmtp_session(r, ["a@a.example", "b@a.example"])] == [451, 451]
    r.close()
    r = UnixRaw(path)
    assert [c for c, _ in lmtp_session(r, ["a@a.example", "b@a.example"])] == [250, 250]
    r.close()
    assert len(p.messages) == 1 and p.messages[0].delivered == ["a@a.example", "b@a.example"]
    p.stop()
    assert not os.path.exists(path)


_fixture_peer = []


def test_peers_fixture_records_errors_and_open_connection(peers):
    p = peers(host="127.0.0.5")
    # a peer-side bug (a non-string reply) is answered 451 and kept in p.errors
    p.rcpt_replies = {"x@a.example": 123}
    with smtplib.SMTP(*p.address, timeout=5) as s:
        s.docmd("EHLO x")
        s.docmd("MAIL FROM:<a@b.example>")
        assert s.docmd("RCPT TO:<x@a.example>")[0] == 451
    assert len(p.errors) == 1 and isinstance(p.errors[0], AttributeError)
    p.errors.clear()
    # a connection left open at teardown is closed by the fixture
    s = socket.create_connection(p.address, timeout=5)
    assert s.recv(100).startswith(b"220 ")
    _fixture_peer.append((p, s))


def test_peers_fixture_stopped_everything():
    p, s = _fixture_peer[0]
    s.settimeout(5)
    assert s.recv(100) == b""          # closed by the fixture's stop()
    s.close()
    with socket.socket() as t:
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT of the closed one
        t.bind(p.address)              # the port is free again
        t.listen()
    assert p._thread is not None and not p._thread.is_alive()


def test_peer_context_manager_and_explicit_port():
    port = shared_port("127.0.0.6")
    with Peer("127.0.0.6", port) as p:
        assert p.address == ("127.0.0.6", port)
        with smtplib.SMTP("127.0.0.6", port, timeout=5) as s:
            assert s.noop()[0] == 250
        with pytest.raises(OSError):
            Peer("127.0.0.6", port).start()        # already taken
    with socket.socket() as t:
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind(("127.0.0.6", port))
        t.listen()
