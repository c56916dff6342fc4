"""The outbound SMTP/LMTP client (src/smtpc.c), driven by build/tests/smtpc_drive against aiosmtpd
and scripted raw peers (smtpc_peer.py), including hostile ones.  Every run must end with a clean
status and no sanitizer report."""
import base64
import ssl
import subprocess
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from conftest import BUILD, free_port
from smtpc_peer import Peer, dialogue
from tlshelpers import openssl, self_signed

DRIVE = BUILD / "tests" / "smtpc_drive"
BODY = b"Subject: hi\n\nline one\n.leading dot\n..two dots\n.\nlast line"
BODY_WIRE = b"Subject: hi\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n"


def drive(port, *args, body=BODY, tmp_path=None, timeout=30):
    """Run the driver; returns (status, reply, {rcpt: (code, esc, text)}, tls, stderr)."""
    f = tmp_path / "msg"
    f.write_bytes(body)
    cmd = [str(DRIVE), "--host", "127.0.0.1", "--port", str(port), *args, str(f)]
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    err = r.stderr.decode("utf-8", "replace")
    assert "AddressSanitizer" not in err and "runtime error" not in err and "LeakSanitizer" not in err, err
    assert r.returncode == 0, err
    out = r.stdout.decode()
    lines = out.splitlines()
    assert lines[0].startswith("status="), out
    status, _, reply = lines[0][len("status="):].partition(" reply=")
    rcpts = {}
    tls = None
    for ln in lines[1:]:
        if ln.startswith("rcpt="):
            addr, rest = ln[5:].split(" code=", 1)
            code, rest = rest.split(" esc=", 1)
            esc, text = rest.split(" text=", 1)
            rcpts[addr] = (int(code), esc, text)
        elif ln.startswith("tls="):
            tls = ln[4:]
    return int(status), reply, rcpts, tls, err


# ---- aiosmtpd ------------------------------------------------------------

class Sink:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 2.0.0 accepted"


@pytest.fixture
def aio():
    started = []

    def start(**kw):
        sink = Sink()
        c = Controller(sink, hostname="127.0.0.1", port=free_port(), **kw)
        c.start()
        started.append(c)
        return c.port, sink
    yield start
    for c in started:
        c.stop()


def test_plain_delivery(aio, tmp_path):
    port, sink = aio()
    st, reply, rc, tls, _ = drive(port, "--from", "a@x.test", "--to", "b@y.test", "--to", "c@y.test",
                                  tmp_path=tmp_path)
    assert st == 0, reply
    assert rc["b@y.test"][0] == 250 and rc["c@y.test"][0] == 250
    assert rc["b@y.test"][1] == "2.0.0" and "accepted" in rc["b@y.test"][2]
    env, = sink.envelopes
    assert env.mail_from == "a@x.test" and env.rcpt_tos == ["b@y.test", "c@y.test"]
    assert env.original_content == BODY_WIRE
    assert tls == ""


def test_stray_cr_and_no_final_newline(tmp_path):
    peer = Peer(dialogue())
    st, reply, rc, _, _ = drive(peer.port, "--to", "b@y.test", body=b"a\rb\n.\r\nend", tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0 and rc["b@y.test"][0] == 250, reply
    assert conn.data == b"a b\r\n. \r\nend\r\n"
    assert b"\r" not in conn.data.replace(b"\r\n", b"")


def test_starttls_opportunistic(aio, tmp_path):
    cert, key = self_signed(tmp_path / "c", cn="localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    port, sink = aio(tls_context=ctx)
    st, reply, rc, tls, _ = drive(port, "--tls", "may", "--to", "b@y.test", tmp_path=tmp_path)
    assert st == 0 and rc["b@y.test"][0] == 250, reply
    assert tls.startswith("TLSv1.") and "cipher" in tls
    assert sink.envelopes[0].original_content == BODY_WIRE


def test_auth_plain_over_tls(aio, tmp_path):
    cert, key = self_signed(tmp_path / "c", cn="localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    seen = []

    def auth(server, session, envelope, mechanism, data):
        seen.append((mechanism, data.login, data.password))
        return AuthResult(success=data.password == b"s3cret", handled=False)
    port, sink = aio(tls_context=ctx, authenticator=auth, auth_require_tls=True)
    st, reply, rc, tls, _ = drive(port, "--tls", "may", "--auth", "u@x:s3cret", "--to", "b@y.test",
                                  tmp_path=tmp_path)
    assert st == 0 and rc["b@y.test"][0] == 250, reply
    assert seen == [("PLAIN", b"u@x", b"s3cret")]
    st, reply, rc, _, _ = drive(port, "--tls", "may", "--auth", "u@x:wrong", "--to", "b@y.test",
                                tmp_path=tmp_path)
    assert st == 535 and "5.7.8" in reply, reply
    assert rc["b@y.test"][0] == 0
    assert len(sink.envelopes) == 1


# ---- certificates for verify ------------------------------------------------

@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    d = tmp_path_factory.mktemp("ca")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=smtpc test CA", "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"))
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", str(d / "leaf.key"), "-out", str(d / "leaf.csr"))
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(d / "leaf.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", str(d / "ext.cnf"), "-out", str(d / "leaf.crt"))
    return d


def test_tls_verify(aio, ca, tmp_path):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(ca / "leaf.crt", ca / "leaf.key")
    port, sink = aio(tls_context=ctx)
    st, reply, rc, tls, _ = drive(port, "--tls", "verify", "--ca", str(ca / "ca.crt"), "--name", "localhost",
                                  "--to", "b@y.test", tmp_path=tmp_path)
    assert st == 0 and rc["b@y.test"][0] == 250 and tls, reply
    st, reply, rc, tls, _ = drive(port, "--tls", "verify", "--ca", str(ca / "ca.crt"), "--name", "mx.other.test",
                                  "--to", "b@y.test", tmp_path=tmp_path)
    assert st // 100 == 4 and "TLS handshake" in reply and "mismatch" in reply, reply
    assert rc["b@y.test"][0] == 0 and len(sink.envelopes) == 1
    # the right name but a CA that did not sign it
    st, reply, _, _, _ = drive(port, "--tls", "verify", "--ca", str(ca / "leaf.crt"), "--name", "localhost",
                               "--to", "b@y.test", tmp_path=tmp_path)
    assert st // 100 == 4 and "TLS handshake" in reply, reply


def test_tls_wrapper(aio, tmp_path):
    cert, key = self_signed(tmp_path / "c", cn="localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    port, sink = aio(ssl_context=ctx)
    st, reply, rc, tls, _ = drive(port, "--tls", "wrapper", "--to", "b@y.test", tmp_path=tmp_path)
    assert st == 0 and rc["b@y.test"][0] == 250 and tls.startswith("TLS"), reply
    assert sink.envelopes[0].original_content == BODY_WIRE


def test_starttls_injection_discarded(tmp_path):
    """Bytes sent in plain text after "220" must not be read as replies over TLS (CVE-2011-0411)."""
    cert, key = self_signed(tmp_path / "c", cn="localhost")
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sctx.load_cert_chain(cert, key)

    def handler(conn):
        conn.send(b"220 hi\r\n")
        conn.readline()
        conn.send(b"250-peer\r\n250 STARTTLS\r\n")
        conn.readline()
        conn.send(b"220 go ahead\r\n250-injected\r\n250 PIPELINING\r\n")
        conn.sock = sctx.wrap_socket(conn.sock, server_side=True)
        conn.buf = b""
        dialogue(greeting=b"")(conn)
    peer = Peer(handler)
    st, reply, rc, tls, _ = drive(peer.port, "--tls", "may", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert peer.error is None, peer.error
    assert st == 0 and rc["b@y.test"][0] == 250 and tls, reply
    assert conn.data == BODY_WIRE


def test_tls_encrypt_not_offered(tmp_path):
    peer = Peer(dialogue())
    st, reply, rc, _, _ = drive(peer.port, "--tls", "encrypt", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert st // 100 == 4 and "TLS is required but was not offered by 127.0.0.1" in reply
    assert not any(ln.startswith(b"MAIL") for ln in conn.lines)


def test_starttls_handshake_fails_with_may(tmp_path):
    def handler(conn):
        conn.send(b"220 hi\r\n")
        conn.readline()
        conn.send(b"250-peer\r\n250 STARTTLS\r\n")
        conn.readline()
        conn.send(b"220 go ahead\r\n")
        conn.send(b"this is not TLS\r\n" * 4)
        conn.readline()
    peer = Peer(handler)
    st, reply, _, _, _ = drive(peer.port, "--tls", "may", "--to", "b@y.test", tmp_path=tmp_path)
    assert st // 100 == 4 and "TLS handshake" in reply, reply


def test_auth_refused_without_tls(tmp_path):
    peer = Peer(dialogue(ehlo=("AUTH PLAIN LOGIN", )))
    st, reply, _, _, _ = drive(peer.port, "--tls", "may", "--auth", "u:p", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert st // 100 == 4 and "without TLS" in reply
    assert not any(ln.upper().startswith(b"AUTH") for ln in conn.lines)


def test_auth_login_plaintext_when_tls_none(tmp_path):
    def handler(conn):
        conn.send(b"220 hi\r\n")
        conn.readline()
        conn.send(b"250-peer\r\n250 AUTH LOGIN\r\n")
        assert conn.readline() == b"AUTH LOGIN"
        conn.send(b"334 VXNlcm5hbWU6\r\n")
        conn.user = base64.b64decode(conn.readline())
        conn.send(b"334 UGFzc3dvcmQ6\r\n")
        conn.pw = base64.b64decode(conn.readline())
        conn.send(b"454 4.7.0 try later\r\n")
        conn.readline()
        conn.send(b"221 bye\r\n")
    peer = Peer(handler)
    st, reply, _, _, _ = drive(peer.port, "--auth", "bob:pw pw", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert peer.error is None, peer.error
    assert (conn.user, conn.pw) == (b"bob", b"pw pw")
    assert st == 454 and "try later" in reply


# ---- protocol behaviour with the scripted peer --------------------------------

def test_pipelining_one_write(tmp_path):
    peer = Peer(dialogue())
    st, reply, rc, _, _ = drive(peer.port, "--from", "a@x.test", "--to", "b@y.test", "--to", "c@y.test",
                                tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0 and rc["c@y.test"][0] == 250, reply
    chunk = next(r for r in conn.reads if r.startswith(b"MAIL"))
    assert chunk == (b"MAIL FROM:<a@x.test> SIZE=%d BODY=8BITMIME\r\n" % len(BODY_WIRE)).replace(
        b" BODY=8BITMIME", b"") + b"RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
    assert conn.data == BODY_WIRE


def test_no_pipelining_one_at_a_time(tmp_path):
    peer = Peer(dialogue(ehlo=("SIZE", )))
    st, reply, rc, _, _ = drive(peer.port, "--to", "b@y.test", "--to", "c@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0 and rc["b@y.test"][0] == 250, reply
    assert all(r.count(b"\r\n") == 1 for r in conn.reads if r[:4] in (b"MAIL", b"RCPT", b"DATA"))


def test_helo_fallback(tmp_path):
    peer = Peer(dialogue(ehlo_reply=b"500 5.5.1 what is EHLO\r\n"))
    st, reply, rc, _, _ = drive(peer.port, "--to", "b@y.test", "--8bit", tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0 and rc["b@y.test"][0] == 250, reply
    assert conn.lines[1] == b"HELO client.tern.test"
    assert conn.mail == b"MAIL FROM:<>"   # no parameters without EHLO; 8-bit sent anyway
    assert conn.data == BODY_WIRE


RCPT_REPLIES = {"ok@y.test": b"250 2.1.5 ok\r\n", "bad@y.test": b"550 5.1.1 no such user\r\n",
                "later@y.test": b"451 4.3.0 try \x01later\r\n"}


@pytest.mark.parametrize("pipelining", [True, False])
def test_recipients_partly_rejected(tmp_path, pipelining):
    peer = Peer(dialogue(ehlo=("PIPELINING", ) if pipelining else ("SIZE", ),
                         rcpt=lambda a: RCPT_REPLIES[a], final=(b"250 2.0.0 queued as X\r\n", )))
    st, reply, rc, _, _ = drive(peer.port, "--to", "bad@y.test", "--to", "ok@y.test", "--to", "later@y.test",
                                tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0, reply
    assert rc["ok@y.test"] == (250, "2.0.0", "queued as X")
    assert rc["bad@y.test"] == (550, "5.1.1", "no such user")
    assert rc["later@y.test"] == (451, "4.3.0", "try  later")
    assert conn.data == BODY_WIRE


@pytest.mark.parametrize("pipelining", [True, False])
def test_all_rejected(tmp_path, pipelining):
    peer = Peer(dialogue(ehlo=("PIPELINING", ) if pipelining else ("SIZE", ),
                         rcpt=lambda a: b"550 5.1.1 no\r\n"))
    st, reply, rc, _, _ = drive(peer.port, "--to", "a@y.test", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0, reply
    assert rc["a@y.test"][0] == 550 and rc["b@y.test"][0] == 550
    assert conn.data is None
    assert (b"DATA" in conn.lines) == pipelining
    assert conn.lines[-1] == b"QUIT"


def test_dsn_parameters(tmp_path):
    peer = Peer(dialogue(ehlo=("DSN", "SMTPUTF8", "8BITMIME")))
    st, reply, rc, _, _ = drive(peer.port, "--from", "a@x.test", "--to", "b@y.test,SUCCESS+FAILURE,rfc822;B+x=@y.test",
                                "--to", "c@y.test,NEVER", "--envid", "id 1=+", "--ret", "hdrs", "--8bit",
                                "--smtputf8", tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0, reply
    assert conn.mail == b"MAIL FROM:<a@x.test> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+201+3D+2B"
    assert conn.rcpts == [b"RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2Bx+3D@y.test",
                          b"RCPT TO:<c@y.test> NOTIFY=NEVER"]


def test_no_dsn_parameters_without_dsn(tmp_path):
    peer = Peer(dialogue(ehlo=("PIPELINING", )))
    st, reply, rc, _, _ = drive(peer.port, "--to", "b@y.test,SUCCESS,rfc822;b@y.test", "--envid", "x",
                                "--ret", "full", tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0, reply
    assert conn.mail == b"MAIL FROM:<>" and conn.rcpts == [b"RCPT TO:<b@y.test>"]


def test_size_refused_locally(tmp_path):
    peer = Peer(dialogue(ehlo=("SIZE 20", )))
    st, reply, rc, _, _ = drive(peer.port, "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert st == 552 and "message too big for 127.0.0.1" in reply
    assert conn.mail is None and rc["b@y.test"][0] == 0


def test_smtputf8_not_offered(tmp_path):
    peer = Peer(dialogue())
    st, reply, _, _, _ = drive(peer.port, "--smtputf8", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert st == 550 and reply == "5.6.7 SMTPUTF8 required but not offered by 127.0.0.1"
    assert conn.mail is None


def test_mail_refused(tmp_path):
    def handler(conn):
        conn.send(b"220 hi\r\n")
        conn.readline()
        conn.send(b"250 peer\r\n")
        conn.readline()
        conn.send(b"553 5.7.1 sender\trejected\r\n")
        conn.readline()
    peer = Peer(handler)
    st, reply, rc, _, _ = drive(peer.port, "--to", "b@y.test", tmp_path=tmp_path)
    assert st == 553 and reply == "5.7.1 sender rejected" and rc["b@y.test"][0] == 0


def test_greeting_refused(tmp_path):
    peer = Peer(lambda conn: (conn.send(b"554 5.7.1 go away\r\n"), conn.readline()))
    st, reply, _, _, _ = drive(peer.port, "--to", "b@y.test", tmp_path=tmp_path)
    assert st == 554 and "go away" in reply


def test_lmtp_per_recipient(tmp_path):
    peer = Peer(dialogue(lmtp=True, ehlo=("PIPELINING", "ENHANCEDSTATUSCODES"),
                         final=(b"250 2.0.0 saved\r\n", b"452 4.2.2 over quota\r\n", b"550 5.1.1 gone\r\n")))
    st, reply, rc, _, _ = drive(peer.port, "--lmtp", "--to", "a@y.test", "--to", "b@y.test", "--to", "c@y.test",
                                tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0, reply
    assert conn.lines[0].startswith(b"LHLO ")
    assert rc == {"a@y.test": (250, "2.0.0", "saved"), "b@y.test": (452, "4.2.2", "over quota"),
                  "c@y.test": (550, "5.1.1", "gone")}


def test_lmtp_lost_after_first_reply(tmp_path):
    def handler(conn):
        dialogue(lmtp=True, final=(b"250 2.0.0 saved\r\n", ))(conn)
    peer = Peer(handler)
    st, reply, rc, _, _ = drive(peer.port, "--lmtp", "--to", "a@y.test", "--to", "b@y.test", tmp_path=tmp_path,
                                *["--timeout-scale", "100"])
    assert st // 100 == 4, reply
    assert rc["a@y.test"][0] == 250 and rc["b@y.test"][0] == 0


def test_connection_refused(tmp_path):
    st, reply, _, _, _ = drive(free_port(), "--to", "b@y.test", tmp_path=tmp_path)
    assert st == 421 and "connect to 127.0.0.1: Connection refused" in reply


def test_large_message(tmp_path):
    body = b"".join(b"%06d %s\n" % (i, b"." * (i % 90)) for i in range(20000)) + b".\n"
    expect = b"".join(b"%06d %s\r\n" % (i, b"." * (i % 90)) for i in range(20000)) + b".\r\n"
    peer = Peer(dialogue())
    st, reply, rc, _, _ = drive(peer.port, "--to", "b@y.test", body=body, tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0 and rc["b@y.test"][0] == 250, reply
    assert conn.data == expect


# ---- hostile peers ------------------------------------------------------------

def test_short_multiline_then_close(tmp_path):
    peer = Peer(lambda conn: conn.send(b"250-"))
    st, reply, _, _, _ = drive(peer.port, "--to", "b@y.test", tmp_path=tmp_path)
    assert st // 100 == 4 and "lost connection with 127.0.0.1 while greeting" in reply, reply


def test_ehlo_short_multiline_then_close(tmp_path):
    def handler(conn):
        conn.send(b"220 hi\r\n")
        conn.readline()
        conn.send(b"250-\r\n")
    peer = Peer(handler)
    st, reply, _, _, _ = drive(peer.port, "--to", "b@y.test", tmp_path=tmp_path)
    assert st // 100 == 4 and "while EHLO" in reply, reply


def test_huge_reply_line(tmp_path):
    def handler(conn):
        conn.send(b"220 " + b"x" * 100000 + b"\r\n")
        conn.readline()
    peer = Peer(handler)
    st, reply, _, _, _ = drive(peer.port, "--to", "b@y.test", tmp_path=tmp_path)
    assert st // 100 == 4 and "malformed reply" in reply, reply


def test_endless_continuation_lines(tmp_path):
    def handler(conn):
        conn.send(b"220 hi\r\n")
        conn.readline()
        try:
            for _ in range(3000):
                conn.sock.sendall(b"250-" + b"y" * 200 + b"\r\n")
        except OSError:
            pass
    peer = Peer(handler)
    t = time.time()
    st, reply, _, _, _ = drive(peer.port, "--to", "b@y.test", tmp_path=tmp_path)
    assert st // 100 == 4 and "malformed reply" in reply, reply
    assert time.time() - t < 10


def test_bare_lf_replies(tmp_path):
    peer = Peer(dialogue(greeting=b"220 peer\n", eol=b"\n", final=(b"250 ok\n", )))
    st, reply, rc, _, _ = drive(peer.port, "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert st == 0 and rc["b@y.test"][0] == 250, reply
    assert conn.data == BODY_WIRE


def test_greeting_timeout(tmp_path):
    peer = Peer(lambda conn: conn.readline())
    t = time.time()
    st, reply, _, _, _ = drive(peer.port, "--to", "b@y.test", "--timeout-scale", "100", tmp_path=tmp_path)
    assert st == 421 and reply == "4.4.2 timeout after greeting with 127.0.0.1", reply
    assert 2 <= time.time() - t < 10


def test_eof_after_354(tmp_path):
    def handler(conn):
        conn.send(b"220 hi\r\n")
        conn.readline()
        conn.send(b"250-peer\r\n250 PIPELINING\r\n")
        conn.readline()
        conn.readline()
        conn.readline()
        conn.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
    peer = Peer(handler)
    st, reply, rc, _, _ = drive(peer.port, "--to", "b@y.test", tmp_path=tmp_path,
                                body=b"x" * 3000000 + b"\n")
    assert st // 100 == 4 and "lost connection" in reply, reply
    assert rc["b@y.test"][0] == 0


def test_garbage_and_nul(tmp_path):
    peer = Peer(lambda conn: (conn.send(b"220 a\x00b\r\n"), conn.readline()))
    st, reply, _, _, _ = drive(peer.port, "--to", "b@y.test", tmp_path=tmp_path)
    assert st // 100 == 4 and "malformed" in reply
