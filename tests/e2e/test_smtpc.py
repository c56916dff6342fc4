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


# ---- connection reuse and the outputs the queue manager uses --------------------

def drive_multi(port, *args, body=BODY, tmp_path=None, timeout=30, unix=None):
    """Run the driver for one or more messages.  Returns (runs, lines): one dict per message
    (status, reply, rcpts, tls, session_failed, peer_dsn, reusable, times, peer_addr) and every
    output line (including "next=-1" when smtpc_next refused)."""
    f = tmp_path / "msg"
    f.write_bytes(body)
    where = ["--unix", str(unix)] if unix else ["--host", "127.0.0.1", "--port", str(port)]
    r = subprocess.run([str(DRIVE), *where, *args, str(f)], capture_output=True, timeout=timeout)
    err = r.stderr.decode("utf-8", "replace")
    assert "AddressSanitizer" not in err and "runtime error" not in err and "LeakSanitizer" not in err, err
    assert r.returncode == 0, err
    lines = r.stdout.decode().splitlines()
    runs = []
    for ln in lines:
        if ln.startswith("status="):
            status, _, reply = ln[len("status="):].partition(" reply=")
            runs.append({"status": int(status), "reply": reply, "rcpts": {}})
        elif ln.startswith("rcpt="):
            addr, rest = ln[5:].split(" code=", 1)
            code, rest = rest.split(" esc=", 1)
            esc, text = rest.split(" text=", 1)
            runs[-1]["rcpts"][addr] = (int(code), esc, text)
        elif ln.startswith("tls="):
            runs[-1]["tls"] = ln[4:]
        elif ln.startswith("session_failed="):
            head, _, relay = ln.partition(" peer_addr=")
            for kv in head.split():
                k, v = kv.split("=", 1)
                runs[-1][k] = int(v) if v.isdigit() else v
            runs[-1]["peer_addr"] = relay
    return runs, lines


def verbs(conn):
    return [ln[:4].upper() for ln in conn.lines]


@pytest.mark.parametrize("pipelining", [True, False])
def test_reuse_three_messages(tmp_path, pipelining):
    peer = Peer(dialogue(ehlo=("PIPELINING", "DSN") if pipelining else ("SIZE", "DSN")))
    runs, lines = drive_multi(peer.port, "--messages", "3", "--from", "a@x.test", "--to", "b@y.test",
                              "--to", "c@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert peer.error is None, peer.error
    assert len(runs) == 3 and "next=-1" not in lines, lines
    for r in runs:
        assert r["status"] == 0 and r["rcpts"]["b@y.test"][0] == 250 and r["rcpts"]["c@y.test"][0] == 250, r
        assert (r["reusable"], r["session_failed"], r["peer_dsn"], r["times"]) == (1, 0, 1, "ok"), r
        assert r["peer_addr"] == "127.0.0.1[127.0.0.1]:%d" % peer.port
    # one connection, one EHLO, three transactions, no RSET after a completed DATA; released with QUIT
    assert conn.datas == [BODY_WIRE] * 3 and len(conn.mails) == 3
    v = verbs(conn)
    assert v.count(b"EHLO") == 1 and b"RSET" not in v and v[-1] == b"QUIT", v


@pytest.mark.parametrize("pipelining", [True, False])
def test_reuse_after_all_rcpts_rejected(tmp_path, pipelining):
    peer = Peer(dialogue(ehlo=("PIPELINING", ) if pipelining else ("SIZE", ),
                         tx_rcpt=lambda n, a: b"550 5.1.1 no\r\n" if n == 0 else b"250 2.1.5 ok\r\n"))
    runs, lines = drive_multi(peer.port, "--messages", "2", "--to", "a@y.test", "--to", "b@y.test",
                              tmp_path=tmp_path)
    conn = peer.join()
    assert peer.error is None, peer.error
    r1, r2 = runs
    assert r1["status"] == 0 and r1["rcpts"]["a@y.test"][0] == 550 and r1["rcpts"]["b@y.test"][0] == 550
    assert r1["reusable"] == 1 and r1["session_failed"] == 0
    assert r2["status"] == 0 and r2["rcpts"]["a@y.test"][0] == 250 and r2["rcpts"]["b@y.test"][0] == 250
    v = verbs(conn)
    mails = [i for i, x in enumerate(v) if x == b"MAIL"]
    assert v.count(b"RSET") == 1 and mails[0] < v.index(b"RSET") < mails[1], v
    assert conn.datas == [BODY_WIRE] and v[-1] == b"QUIT" and "next=-1" not in lines


def test_reuse_after_mail_refused(tmp_path):
    peer = Peer(dialogue(mail=lambda n: b"550 5.7.1 not you\r\n" if n == 0 else b"250 2.1.0 ok\r\n"))
    runs, _ = drive_multi(peer.port, "--messages", "2", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    r1, r2 = runs
    assert r1["status"] == 550 and r1["reply"] == "5.7.1 not you" and r1["rcpts"]["b@y.test"][0] == 0
    assert r1["session_failed"] == 0 and r1["reusable"] == 1
    assert r2["status"] == 0 and r2["rcpts"]["b@y.test"][0] == 250
    v = verbs(conn)
    assert v.count(b"RSET") == 1 and conn.datas == [BODY_WIRE]


def test_reuse_after_data_refused(tmp_path):
    peer = Peer(dialogue(data_reply=lambda n: b"451 4.3.0 not now\r\n" if n == 0 else b"354 go\r\n"))
    runs, _ = drive_multi(peer.port, "--messages", "2", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    r1, r2 = runs
    assert r1["status"] == 451 and r1["rcpts"]["b@y.test"][0] == 0 and r1["reusable"] == 1
    assert r1["session_failed"] == 0
    assert r2["status"] == 0 and r2["rcpts"]["b@y.test"][0] == 250
    assert verbs(conn).count(b"RSET") == 1 and conn.datas == [BODY_WIRE]


def test_reuse_rset_refused_quits(tmp_path):
    seen = []   # recipients over both connections

    def rcpt(n, a):
        seen.append(a)
        return b"550 5.1.1 no\r\n" if len(seen) == 1 else b"250 2.1.5 ok\r\n"
    peer = Peer(dialogue(tx_rcpt=rcpt, rset_reply=b"500 5.5.1 what\r\n"), conns=2)
    runs, lines = drive_multi(peer.port, "--messages", "2", "--to", "b@y.test", tmp_path=tmp_path)
    peer.join()
    r1, r2 = runs
    assert r1["status"] == 0 and r1["rcpts"]["b@y.test"][0] == 550 and r1["reusable"] == 0
    assert verbs(peer.conns[0])[-2:] == [b"RSET", b"QUIT"]
    assert "next=-1" not in lines   # not kept, so the driver connected afresh
    assert r2["status"] == 0 and r2["rcpts"]["b@y.test"][0] == 250 and peer.conns[1].datas == [BODY_WIRE]


def test_reuse_peer_closes_while_idle(tmp_path):
    closed = []

    def bye(conn, n):
        if closed:
            return False
        closed.append(n)
        time.sleep(0.2)
        conn.send(b"421 4.4.2 peer.test idle too long\r\n")
        return True
    peer = Peer(dialogue(after_final=bye), conns=2)
    runs, lines = drive_multi(peer.port, "--messages", "2", "--pause", "1000", "--to", "b@y.test",
                              tmp_path=tmp_path)
    peer.join()
    assert peer.error is None, peer.error
    r1, r2 = runs
    assert r1["status"] == 0 and r1["reusable"] == 1
    # smtpc_next returned -1: the driver said so and delivered over a fresh connection
    assert lines.index("next=-1") > lines.index(next(ln for ln in lines if ln.startswith("session_failed=")))
    assert lines.count("next=-1") == 1
    assert r2["status"] == 0 and r2["rcpts"]["b@y.test"][0] == 250
    assert b"QUIT" not in verbs(peer.conns[0]) and peer.conns[1].datas == [BODY_WIRE]


def test_reuse_idle_timeout(tmp_path):
    peer = Peer(dialogue(), conns=2)
    t = time.time()
    runs, lines = drive_multi(peer.port, "--messages", "2", "--pause", "1500", "--timeout-scale", "300",
                              "--to", "b@y.test", tmp_path=tmp_path)
    peer.join()
    assert runs[0]["reusable"] == 1 and "next=-1" in lines
    assert runs[1]["status"] == 0 and runs[1]["rcpts"]["b@y.test"][0] == 250
    # the idle timer (300 s / 300) closed the first connection without a word
    assert b"QUIT" not in verbs(peer.conns[0]) and peer.conns[0].datas == [BODY_WIRE]
    assert time.time() - t < 10


def test_reuse_cancel_at_shutdown(tmp_path):
    peer = Peer(dialogue())
    runs, _ = drive_multi(peer.port, "--reuse", "--at-end", "cancel", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert runs[0]["status"] == 0 and runs[0]["reusable"] == 1
    assert b"QUIT" not in verbs(conn)     # dropped at once; no leak (LeakSanitizer)


def test_reuse_after_local_refusal(tmp_path):
    """A refusal made here before MAIL (SMTPUTF8 not offered) sends nothing: no RSET needed."""
    peer = Peer(dialogue())
    runs, _ = drive_multi(peer.port, "--messages", "2", "--smtputf8", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    for r in runs:
        assert r["status"] == 550 and r["session_failed"] == 0 and r["reusable"] == 1, r
    v = verbs(conn)
    assert b"MAIL" not in v and b"RSET" not in v and v[-1] == b"QUIT"


def test_no_reuse_by_default(tmp_path):
    peer = Peer(dialogue())
    runs, _ = drive_multi(peer.port, "--to", "b@y.test", "--name", "mx.y.test", tmp_path=tmp_path)
    conn = peer.join()
    r, = runs
    assert r["status"] == 0 and r["reusable"] == 0 and r["session_failed"] == 0 and r["times"] == "ok"
    assert r["peer_addr"] == "mx.y.test[127.0.0.1]:%d" % peer.port
    assert verbs(conn)[-1] == b"QUIT"


def test_lmtp_reuse(tmp_path):
    peer = Peer(dialogue(lmtp=True, ehlo=("PIPELINING", "ENHANCEDSTATUSCODES"),
                         final=(b"250 2.0.0 saved\r\n", b"452 4.2.2 over quota\r\n")))
    runs, lines = drive_multi(peer.port, "--lmtp", "--messages", "2", "--to", "a@y.test", "--to", "b@y.test",
                              tmp_path=tmp_path)
    conn = peer.join()
    assert peer.error is None, peer.error
    for r in runs:
        assert r["status"] == 0 and r["reusable"] == 1 and r["peer_dsn"] == 0, r
        assert r["rcpts"] == {"a@y.test": (250, "2.0.0", "saved"), "b@y.test": (452, "4.2.2", "over quota")}
    v = verbs(conn)
    assert v.count(b"LHLO") == 1 and b"RSET" not in v and conn.datas == [BODY_WIRE] * 2
    assert "next=-1" not in lines


def test_lmtp_unix_socket(tmp_path):
    path = tmp_path / "lmtp.sock"
    peer = Peer(dialogue(lmtp=True, final=(b"250 2.0.0 saved\r\n", b"550 5.1.1 gone\r\n")), unix=path)
    runs, _ = drive_multi(None, "--lmtp", "--messages", "2", "--to", "a@y.test", "--to", "b@y.test",
                          tmp_path=tmp_path, unix=path)
    conn = peer.join()
    assert peer.error is None, peer.error
    for r in runs:
        assert r["status"] == 0 and r["reusable"] == 1 and r["session_failed"] == 0, r
        assert r["rcpts"]["a@y.test"][0] == 250 and r["rcpts"]["b@y.test"][0] == 550
        assert r["peer_addr"] == "localhost[%s]" % path
    assert conn.lines[0].startswith(b"LHLO ") and conn.datas == [BODY_WIRE] * 2


def test_session_failed_connect_refused(tmp_path):
    port = free_port()
    (r, ), _ = drive_multi(port, "--reuse", "--to", "b@y.test", tmp_path=tmp_path)
    assert r["status"] == 421 and r["session_failed"] == 1 and r["reusable"] == 0 and r["peer_dsn"] == 0
    assert r["times"] == "ok" and r["peer_addr"] == "127.0.0.1[127.0.0.1]:%d" % port


def test_session_failed_greeting_554(tmp_path):
    peer = Peer(lambda conn: (conn.send(b"554 5.7.1 go away\r\n"), conn.readline()))
    (r, ), _ = drive_multi(peer.port, "--reuse", "--to", "b@y.test", tmp_path=tmp_path)
    assert r["status"] == 554 and r["session_failed"] == 1 and r["reusable"] == 0


def test_session_failed_tls_required(tmp_path):
    peer = Peer(dialogue())
    (r, ), _ = drive_multi(peer.port, "--tls", "encrypt", "--to", "b@y.test", tmp_path=tmp_path)
    assert r["status"] // 100 == 4 and r["session_failed"] == 1 and r["peer_dsn"] == 1


@pytest.mark.parametrize("reuse", [False, True])
def test_session_not_failed_mail_550(tmp_path, reuse):
    peer = Peer(dialogue(mail=lambda n: b"550 5.7.1 sender rejected\r\n"))
    (r, ), _ = drive_multi(peer.port, *(["--reuse"] if reuse else []), "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    assert r["status"] == 550 and r["session_failed"] == 0 and r["reusable"] == int(reuse)
    assert (b"RSET" in verbs(conn)) == reuse and verbs(conn)[-1] == b"QUIT"


@pytest.mark.parametrize("ehlo,dsn", [(("PIPELINING", "DSN"), 1), (("PIPELINING", ), 0), (None, 0)])
def test_peer_dsn(tmp_path, ehlo, dsn):
    kw = {"ehlo": ehlo} if ehlo else {"ehlo_reply": b"502 5.5.1 no EHLO\r\n"}
    peer = Peer(dialogue(**kw))
    (r, ), _ = drive_multi(peer.port, "--to", "b@y.test", tmp_path=tmp_path)
    assert r["status"] == 0 and r["peer_dsn"] == dsn


def test_release_does_not_wait_forever(tmp_path):
    peer = Peer(dialogue(quit_reply=None))
    t = time.time()
    runs, _ = drive_multi(peer.port, "--reuse", "--timeout-scale", "5", "--to", "b@y.test", tmp_path=tmp_path)
    conn = peer.join()
    # RELEASE_WAIT (5 s) / 5: the driver's loop ends once smtpc_release gave up
    assert runs[0]["reusable"] == 1 and verbs(conn)[-1] == b"QUIT"
    assert 0.8 <= time.time() - t < 5


def test_reuse_over_starttls_and_auth(aio, tmp_path):
    cert, key = self_signed(tmp_path / "c", cn="localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    logins = []

    def auth(server, session, envelope, mechanism, data):
        logins.append(data.login)
        return AuthResult(success=True, handled=False)
    port, sink = aio(tls_context=ctx, authenticator=auth, auth_require_tls=True)
    runs, lines = drive_multi(port, "--tls", "may", "--auth", "u@x:pw", "--messages", "3", "--to", "b@y.test",
                              tmp_path=tmp_path)
    assert "next=-1" not in lines
    for r in runs:
        assert r["status"] == 0 and r["rcpts"]["b@y.test"][0] == 250 and r["reusable"] == 1, r
        assert r["tls"].startswith("TLSv1.") and r["session_failed"] == 0
    assert logins == [b"u@x"]   # one session: one STARTTLS, one AUTH
    assert [e.original_content for e in sink.envelopes] == [BODY_WIRE] * 3


def test_reuse_over_tls_wrapper(aio, tmp_path):
    cert, key = self_signed(tmp_path / "c", cn="localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    port, sink = aio(ssl_context=ctx)
    runs, lines = drive_multi(port, "--tls", "wrapper", "--messages", "2", "--to", "b@y.test", tmp_path=tmp_path)
    assert "next=-1" not in lines and len(sink.envelopes) == 2
    assert all(r["status"] == 0 and r["tls"].startswith("TLS") and r["reusable"] == 1 for r in runs), runs
