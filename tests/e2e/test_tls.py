"""STARTTLS (RFC 3207), implicit TLS (RFC 8314), TLS versions, certificates and their reload.

The certificates are made once per test session (tlshelpers.certs); every test starts its own
ternd with a port-25 listener, a submission listener and an smtps listener.
"""
import re
import shutil
import smtplib
import ssl
import subprocess

import pytest

from conftest import TERND, wait_for
from tlshelpers import (PASSWORDS, TlsRaw, cert_der, cert_subject_cn, certs,  # noqa: F401
                        client_ctx, connect, ehlo_keywords, fingerprint, header_block, password_file,
                        peer_cert_der, plain, received_header, send_text, tls_server)

TLS_LINE_RE = (r"Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: "
               r"(TLSv1\.[23]) with cipher ([A-Z0-9_-]+) \(\d+/\d+ bits\)")


@pytest.fixture
def srv(make_tern, certs, password_file):  # noqa: F811
    return tls_server(make_tern, certs, password_file, myorigin="tern.test",
                      smtpd_auth_client_limit=0)


# ---- STARTTLS on port 25 ---------------------------------------------------

def test_starttls_smtplib_port25(srv):
    """smtplib: before TLS the EHLO offers STARTTLS and (smtpd_tls_auth_only=yes by default) no
    AUTH; after starttls() it offers exactly AUTH PLAIN LOGIN and no STARTTLS; a message sent
    over TLS is delivered."""
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=10)
    try:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert s.has_extn("starttls")
        assert not s.has_extn("auth")
        code, msg = s.starttls(context=client_ctx())
        assert code == 220 and msg == b"2.0.0 Ready to start TLS"
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert not s.has_extn("starttls")
        assert s.has_extn("auth")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        s.sendmail("someone@example.org", ["alice@tern.test"], b"Subject: over tls\r\n\r\nsecret\r\n")
        assert s.quit()[0] == 221
    finally:
        s.close()
    msg = srv.wait_mail("alice")[0]
    assert msg.endswith(b"Subject: over tls\n\nsecret\n")
    assert b"with ESMTPS id" in received_header(msg)


def test_second_starttls_refused_503(srv):
    """Once TLS is active, STARTTLS is no longer offered and a second STARTTLS gets 503; the
    session goes on over the same TLS channel."""
    r = connect(srv.port)
    r.ehlo()
    r.starttls()
    assert "STARTTLS" not in ehlo_keywords(r.ehlo())
    lines = r.cmd("STARTTLS", 503)
    assert lines == ["503 5.5.1 Error: TLS already active"]
    assert r.cmd("NOOP", 250) == ["250 2.0.0 Ok"]
    r.close()


def test_starttls_with_argument_501(srv):
    """STARTTLS takes no argument: 501 5.5.4, and the session stays in plaintext, usable."""
    r = connect(srv.port)
    r.ehlo()
    assert r.cmd("STARTTLS now", 501) == ["501 5.5.4 Syntax: STARTTLS"]
    assert r.cmd("NOOP", 250) == ["250 2.0.0 Ok"]
    r.starttls()  # a correct STARTTLS still works afterwards
    assert r.cmd("NOOP", 250) == ["250 2.0.0 Ok"]
    r.close()


def test_starttls_without_certificate_502(make_tern):
    """With no smtpd_tls_cert_file, EHLO does not offer STARTTLS and STARTTLS gets 502 5.5.1."""
    t = make_tern()
    r = t.raw()
    kws = ehlo_keywords(r.cmd("EHLO client.example", 250))
    assert "STARTTLS" not in kws and "AUTH" not in kws
    assert r.cmd("STARTTLS", 502) == ["502 5.5.1 Error: STARTTLS is not available"]
    assert r.cmd("NOOP", 250) == ["250 2.0.0 Ok"]
    r.cmd("QUIT", 221)
    r.close()


def test_starttls_injection_discarded(srv):
    """CVE-2011-0411: an EHLO pipelined in the same packet as STARTTLS is discarded, not
    answered inside TLS: the first reply after the handshake answers the NOOP sent after it.
    The log tells about the discarded octets."""
    r = connect(srv.port)
    r.ehlo()
    r.send("STARTTLS\r\nEHLO injected\r\n")
    assert r.expect(220) == ["220 2.0.0 Ready to start TLS"]
    r.wrap()
    r.send("NOOP\r\n")
    code, lines = r.reply()
    assert (code, lines) == (250, ["250 2.0.0 Ok"]), "injected command answered: %r" % lines
    # nothing else is pending either
    r.sock.settimeout(0.5)
    try:
        extra = r.sock.recv(4096)
    except (TimeoutError, ssl.SSLError, OSError):
        extra = b""
    assert extra == b""
    r.close()
    assert wait_for(lambda: "15 octets pipelined after STARTTLS discarded" in srv.log(), 5), srv.log()
    assert re.search(r"warning: unknown\[127\.0\.0\.1\]: 15 octets pipelined after STARTTLS discarded",
                     srv.log())


def test_plaintext_after_starttls_220_is_not_answered(srv):
    """A command sent in plaintext after the 220 (a second packet, not a TLS ClientHello) is
    never answered in plaintext: the handshake fails and the server hangs up."""
    r = connect(srv.port)
    r.ehlo()
    r.cmd("STARTTLS", 220)
    r.send("EHLO injected\r\n")
    assert r.closed(5)
    assert b"250" not in r.buf, r.buf
    r.close()
    assert wait_for(lambda: "SSL_accept error from unknown[127.0.0.1]" in srv.log(), 5), srv.log()


def test_starttls_resets_session(srv):
    """After STARTTLS the server forgets the pre-TLS EHLO and transaction: RCPT without a new
    MAIL gets 503, ESMTP parameters and AUTH need a new EHLO, and the Received: header names
    the post-TLS EHLO."""
    r = connect(srv.port)
    r.ehlo("before-tls.example")
    r.cmd("MAIL FROM:<a@example.org>", 250)
    r.starttls()
    assert r.cmd("RCPT TO:<alice@tern.test>", 503) == ["503 5.5.1 Error: need MAIL command"]
    # no EHLO since TLS: the session is plain SMTP again, so no ESMTP parameter is allowed
    r.cmd("MAIL FROM:<a@example.org> SIZE=100", 555)
    # AUTH is an ESMTP command: it needs the new EHLO too
    assert r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 503) == \
        ["503 5.5.1 Error: send EHLO first"]
    # MAIL without EHLO is accepted (smtpd_helo_required=no), not "nested MAIL"
    r.cmd("MAIL FROM:<a@example.org>", 250)
    r.cmd("RSET", 250)
    r.ehlo("after-tls.example")
    send_text(r, "a@example.org", ["alice@tern.test"], b"Subject: reset\r\n\r\nx\r\n")
    r.close()
    rec = received_header(srv.wait_mail("alice")[0])
    assert rec.startswith(b"Received: from after-tls.example (unknown [127.0.0.1])"), rec
    assert b"before-tls" not in rec


def test_starttls_forgets_authentication(make_tern, certs, password_file):  # noqa: F811
    """With smtpd_tls_auth_only=no a client may AUTH in plaintext; STARTTLS then forgets the
    authentication (RFC 3207 4.2): MAIL on the submission port needs AUTH again (530)."""
    t = tls_server(make_tern, certs, password_file, smtpd_tls_auth_only="no")
    r = connect(t.sub_port)
    r.ehlo()
    r.auth_plain("alice", PASSWORDS["alice"])
    r.starttls()
    r.ehlo()
    assert r.cmd("MAIL FROM:<alice@tern.test>", 530) == ["530 5.7.0 Authentication required"]
    r.auth_plain("alice", PASSWORDS["alice"])
    r.cmd("MAIL FROM:<alice@tern.test>", 250)
    r.close()


def test_quit_after_starttls_gets_221(srv):
    """QUIT inside a STARTTLS session is answered with 221 before the server closes (EHLO
    pipelined with QUIT is answered too).  Regression: the TLS filter was freed while the
    encrypted replies still waited in the socket bufferevent below it."""
    r = connect(srv.port)
    r.ehlo()
    r.starttls()
    r.send("EHLO client.example\r\nQUIT\r\n")
    try:
        assert r.expect(250)[-1] == "250 DSN"
        assert r.expect(221) == ["221 2.0.0 Bye"]
    except EOFError as e:
        pytest.fail("connection closed without the replies: %s" % e)
    assert r.closed(5)
    r.close()


def test_starttls_command_arriving_with_client_finished(srv):
    """TLS 1.3 lets the client send its first command right behind its Finished message, in the
    same packet (openssl s_client -quiet does).  That EHLO is answered as an EHLO inside TLS
    (AUTH offered, STARTTLS not), and an AUTH in the same flight is accepted.  Tried 3 times:
    every attempt must be right."""
    for attempt in range(3):
        r = connect(srv.port)
        r.ehlo()
        r.starttls_coalesced("EHLO client.example\r\nAUTH PLAIN %s\r\n"
                             % plain("alice", PASSWORDS["alice"]))
        assert r.sock.version() == "TLSv1.3"
        kws = ehlo_keywords(r.expect(250))
        assert "STARTTLS" not in kws and "AUTH" in kws, (attempt, kws)
        assert r.expect(235) == ["235 2.7.0 Authentication successful"]
        r.close()


def test_starttls_command_after_handshake_separate_packet(srv):
    """Control for the test above: the same EHLO sent in its own packet after the handshake is
    answered as inside TLS."""
    for attempt in range(3):
        r = connect(srv.port)
        r.ehlo()
        r.starttls()
        kws = ehlo_keywords(r.ehlo())
        assert "STARTTLS" not in kws and "AUTH" in kws, (attempt, kws)
        r.close()


# ---- implicit TLS ----------------------------------------------------------

def test_implicit_tls_smtps(srv):
    """On smtps_listen the greeting arrives over TLS; EHLO offers AUTH but not STARTTLS and
    STARTTLS is refused; smtplib.SMTP_SSL can authenticate and submit."""
    r = TlsRaw(srv.smtps_port, tls=True)
    assert r.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert r.expect(220) == ["220 mx.tern.test ESMTP tern"]
    kws = ehlo_keywords(r.ehlo())
    assert "STARTTLS" not in kws
    assert "AUTH" in kws
    assert r.cmd("STARTTLS", 503) == ["503 5.5.1 Error: TLS already active"]
    r.cmd("QUIT", 221)
    assert r.closed()
    r.close()

    s = smtplib.SMTP_SSL("127.0.0.1", srv.smtps_port, timeout=10, context=client_ctx())
    try:
        s.ehlo("client.example")
        assert not s.has_extn("starttls")
        s.login("alice", PASSWORDS["alice"])
        s.sendmail("alice@tern.test", ["bob@tern.test"], b"Subject: smtps\r\n\r\nhi\r\n")
        assert s.quit()[0] == 221
    finally:
        s.close()
    rec = received_header(srv.wait_mail("bob")[0])
    assert b"with ESMTPSA id" in rec
    assert re.search(rb"\n\t\(using TLSv1\.3 with cipher \S+ \(\d+/\d+ bits\)\)\n", rec), rec
    assert len(re.findall(TLS_LINE_RE, srv.log())) >= 2, srv.log()


def test_plaintext_on_smtps_port_gets_no_smtp(srv):
    """A plaintext client on the smtps port gets no SMTP greeting in clear: the server waits
    for a ClientHello and drops the connection on plaintext."""
    r = TlsRaw(srv.smtps_port)
    r.sock.settimeout(0.5)
    try:
        early = r.sock.recv(100)
    except (TimeoutError, OSError):
        early = b""
    assert not early.startswith(b"220"), early
    r.send("EHLO client.example\r\n")
    assert r.closed(5)
    assert b"250" not in r.buf
    r.close()


# ---- TLS versions ----------------------------------------------------------

def _openssl_offers(flag, port):
    """Try `openssl s_client <flag>` against the smtps port: 'refused', 'accepted' or
    'cannot-offer'."""
    p = subprocess.run(["openssl", "s_client", flag, "-cipher", "DEFAULT@SECLEVEL=0", "-connect",
                        "127.0.0.1:%d" % port], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=20)
    out = p.stdout + p.stderr
    if "no protocols available" in out or "unknown option" in out:
        return "cannot-offer", out
    if re.search(r"New, TLSv1(\.[0-3])?, Cipher is (?!\(NONE\))", out) or "220 mx.tern.test" in out:
        return "accepted", out
    return "refused", out


@pytest.mark.parametrize("version,flag", [(ssl.TLSVersion.TLSv1_1, "-tls1_1"),
                                          (ssl.TLSVersion.TLSv1, "-tls1")], ids=["TLSv1.1", "TLSv1.0"])
def test_old_tls_versions_refused(srv, version, flag):
    """TLS 1.1 and 1.0 clients are refused (smtpd_tls_min_version=TLSv1.2 by default): the
    handshake fails with a protocol_version alert and the server logs 'unsupported protocol'.
    The client offers the old version at security level 0; if Python cannot offer it,
    `openssl s_client` is tried; skipped only if neither can."""
    proof = None
    for ciphers in (None, "DEFAULT@SECLEVEL=0"):
        ctx = client_ctx(minimum=ssl.TLSVersion.TLSv1, maximum=version, ciphers=ciphers)
        try:
            r = TlsRaw(srv.smtps_port, tls=True, ctx=ctx)
        except ssl.SSLError as e:
            text = str(e)
            if "NO_PROTOCOLS_AVAILABLE" in text.upper() or "no protocols available" in text:
                continue  # this client cannot offer the version: try harder
            proof = text
            break
        else:
            got = r.sock.version()
            r.close()
            pytest.fail("handshake succeeded with %s" % got)
    if proof is None:
        verdict, out = _openssl_offers(flag, srv.smtps_port)
        if verdict == "cannot-offer":
            pytest.skip("neither Python ssl nor openssl s_client can offer %s here" % flag)
        assert verdict == "refused", out
        proof = out
    assert "protocol version" in proof.lower() or "unsupported protocol" in proof.lower(), proof
    assert wait_for(lambda: re.search(r"SSL_accept error from unknown\[127\.0\.0\.1\]: .*"
                                      r"unsupported protocol", srv.log()), 5), srv.log()


def test_tls12_accepted(srv):
    """A TLS 1.2-only client negotiates TLS 1.2 with an ECDHE AEAD cipher (STARTTLS on port
    25); the Received: header and the log name TLSv1.2 and the cipher."""
    ctx = client_ctx(maximum=ssl.TLSVersion.TLSv1_2)
    r = connect(srv.port)
    r.ehlo()
    r.starttls(ctx)
    assert r.sock.version() == "TLSv1.2"
    cipher = r.sock.cipher()[0]
    assert cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher), cipher
    r.ehlo()
    send_text(r, "a@example.org", ["alice@tern.test"], b"Subject: 1.2\r\n\r\nx\r\n")
    r.close()
    rec = received_header(srv.wait_mail("alice")[0])
    assert ("\t(using TLSv1.2 with cipher %s (" % cipher).encode() in rec, rec
    m = re.search(TLS_LINE_RE, srv.log())
    assert m and m.group(1) == "TLSv1.2" and m.group(2) == cipher, srv.log()


def test_tls12_weak_ciphers_refused(srv):
    """TLS 1.2 clients that offer only non-forward-secret or legacy ciphers (RSA key exchange,
    CBC, 3DES) find no shared cipher with the default smtpd_tls_ciphers."""
    ctx = client_ctx(maximum=ssl.TLSVersion.TLSv1_2,
                     ciphers="AES128-SHA:AES256-SHA:AES128-GCM-SHA256:DES-CBC3-SHA:@SECLEVEL=0")
    r = connect(srv.port)
    r.ehlo()
    with pytest.raises(ssl.SSLError):
        r.starttls(ctx)
    r.close()
    assert wait_for(lambda: re.search(r"SSL_accept error from unknown\[127\.0\.0\.1\]: .*"
                                      r"no shared cipher", srv.log()), 5), srv.log()


def test_tls_ciphers_setting_honoured(make_tern, certs):  # noqa: F811
    """smtpd_tls_ciphers restricts the TLS 1.2 ciphers: with ECDHE+CHACHA20 only, a TLS 1.2
    client negotiates ECDHE-RSA-CHACHA20-POLY1305 even though it prefers AES-GCM."""
    t = tls_server(make_tern, certs, smtpd_tls_ciphers="ECDHE+CHACHA20")
    ctx = client_ctx(maximum=ssl.TLSVersion.TLSv1_2,
                     ciphers="ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305")
    r = connect(t.smtps_port, tls=True, ctx=ctx)
    assert r.sock.version() == "TLSv1.2"
    assert r.sock.cipher()[0] == "ECDHE-RSA-CHACHA20-POLY1305"
    r.close()


def test_tls13_accepted(srv):
    """A TLS 1.3-only client negotiates TLS 1.3, on STARTTLS and on smtps."""
    ctx = client_ctx(minimum=ssl.TLSVersion.TLSv1_3)
    r = connect(srv.port)
    r.ehlo()
    r.starttls(ctx)
    assert r.sock.version() == "TLSv1.3"
    assert r.cmd("NOOP", 250) == ["250 2.0.0 Ok"]
    r.close()
    r = connect(srv.smtps_port, tls=True, ctx=ctx)
    assert r.sock.version() == "TLSv1.3"
    r.close()


def test_min_version_tls13_refuses_tls12(make_tern, certs):  # noqa: F811
    """smtpd_tls_min_version=TLSv1.3: a TLS 1.2-only client fails the handshake (STARTTLS
    and smtps); a TLS 1.3 client still works."""
    t = tls_server(make_tern, certs, smtpd_tls_min_version="TLSv1.3")
    ctx12 = client_ctx(maximum=ssl.TLSVersion.TLSv1_2)
    r = connect(t.port)
    r.ehlo()
    with pytest.raises(ssl.SSLError):
        r.starttls(ctx12)
    r.close()
    with pytest.raises(ssl.SSLError):
        TlsRaw(t.smtps_port, tls=True, ctx=ctx12)
    r = connect(t.smtps_port, tls=True)
    assert r.sock.version() == "TLSv1.3"
    r.close()
    assert wait_for(lambda: t.log().count("unsupported protocol") >= 2, 5), t.log()


@pytest.mark.parametrize("settings,why", [
    ({"smtpd_tls_min_version": "TLSv1.1"}, "smtpd_tls_min_version"),
    ({"smtpd_tls_key_file": "OTHER_KEY"}, "cannot load private key"),
    ({"smtpd_tls_cert_file": "", "smtpd_tls_key_file": ""}, "smtps_listen needs smtpd_tls_cert_file"),
], ids=["min-version-1.1", "key-mismatch", "smtps-without-cert"])
def test_bad_tls_configuration_refused_at_start(make_tern, certs, settings, why):  # noqa: F811
    """ternd refuses to start with an unusable TLS setup (an unsupported minimum version, a key
    that does not match the certificate, smtps without a certificate) and says why."""
    settings = {k: (str(certs["other_key"]) if v == "OTHER_KEY" else v) for k, v in settings.items()}
    t = tls_server(make_tern, certs, start=False, **settings)
    p = subprocess.run([str(TERND), "-c", str(t.conf)], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert why in p.stderr + t.log(), p.stderr + t.log()


# ---- tools: openssl s_client ----------------------------------------------

@pytest.mark.parametrize("mode", ["-ign_eof", "-quiet"])
def test_openssl_s_client_starttls(srv, mode):
    """`openssl s_client -starttls smtp -crlf` negotiates TLS on port 25 and talks SMTP over
    it: the EHLO fed on stdin is answered with 250 lines, QUIT with 221, and (not in -quiet
    mode) the protocol line names TLSv1.3."""
    p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-crlf", mode, "-connect",
                        "127.0.0.1:%d" % srv.port], input="EHLO x\nQUIT\n", capture_output=True,
                       text=True, timeout=30)
    lines = p.stdout.splitlines()
    ehlo = [ln for ln in lines if re.match(r"^250[- ]", ln)]
    assert ehlo and ehlo[0] == "250-mx.tern.test", p.stdout
    assert ehlo[-1] == "250 DSN"
    # which extensions this EHLO lists depends on timing (s_client -quiet sends it along with
    # its Finished): see test_starttls_command_arriving_with_client_finished
    assert "221 2.0.0 Bye" in lines, p.stdout
    assert p.returncode == 0, p.stdout + p.stderr
    if mode != "-quiet":
        assert any(re.match(r"^New, TLSv1\.3, Cipher is TLS_", ln) for ln in lines), p.stdout
        assert any(re.match(r"^\s+Protocol\s*: TLSv1\.3$", ln) for ln in lines), p.stdout
    assert wait_for(lambda: re.search(TLS_LINE_RE, srv.log()), 5), srv.log()


def test_certificate_chain_sent(make_tern, certs):  # noqa: F811
    """A chain file (leaf, then intermediate CA) is sent whole: `openssl s_client -showcerts`
    sees 2 certificates, the leaf first; Python sees the leaf as the peer certificate."""
    t = tls_server(make_tern, certs, smtpd_tls_cert_file=str(certs["chain"]),
                   smtpd_tls_key_file=str(certs["chain_key"]))
    for args in (["-connect", "127.0.0.1:%d" % t.smtps_port],
                 ["-starttls", "smtp", "-connect", "127.0.0.1:%d" % t.port]):
        p = subprocess.run(["openssl", "s_client", "-showcerts", *args], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=20)
        out = p.stdout
        assert out.count("-----BEGIN CERTIFICATE-----") == 2, out
        assert re.search(r"^ 0 s:\s*CN\s*=\s*chain\.tern\.test", out, re.M), out
        assert re.search(r"^ 1 s:\s*CN\s*=\s*Tern Test Intermediate CA", out, re.M), out
    der = peer_cert_der(t.smtps_port, "implicit")
    assert der == cert_der(certs["chain_leaf"])


# ---- Received: header and log ---------------------------------------------

def test_received_header_and_log_over_tls(srv):
    """Port 25 over STARTTLS without AUTH: Received: has the '(using TLSv1.3 with cipher ...)'
    line and 'with ESMTPS'; the log says 'Anonymous TLS connection established from ...'."""
    r = connect(srv.port)
    r.ehlo()
    r.starttls()
    cipher = r.sock.cipher()[0]
    r.ehlo("tls.example")
    qid = send_text(r, "a@example.org", ["alice@tern.test"], b"Subject: rcvd\r\n\r\nx\r\n")
    r.close()
    msg = srv.wait_mail("alice")[0]
    rec = received_header(msg).decode()
    assert re.fullmatch(
        r"Received: from tls\.example \(unknown \[127\.0\.0\.1\]\)\n"
        r"\t\(using TLSv1\.3 with cipher %s \(\d+/\d+ bits\)\)\n"
        r"\tby mx\.tern\.test \(tern\) with ESMTPS id %s\n"
        r"\tfor <alice@tern\.test>; .+" % (re.escape(cipher), qid), rec), rec
    # unauthenticated port-25 mail: nothing added to the header block
    assert b"Message-ID:" not in header_block(msg) and b"\nDate:" not in header_block(msg)
    m = re.search(TLS_LINE_RE, srv.log())
    assert m and m.group(1) == "TLSv1.3" and m.group(2) == cipher, srv.log()
    assert re.search(r"%s: client=unknown\[127\.0\.0\.1\]$" % qid, srv.log(), re.M), srv.log()


# ---- certificate reload ----------------------------------------------------

def _copy_cert(certs, d, which=""):  # noqa: F811
    d.mkdir(exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    shutil.copy(certs[which + "cert"], cert)
    shutil.copy(certs[which + "key"], key)
    return cert, key


def test_sighup_reloads_certificate(make_tern, certs, tmp_path):  # noqa: F811
    """SIGHUP reloads the certificate: after replacing cert and key with another certificate
    (another CN), new STARTTLS and smtps connections see it; a session established before
    the reload keeps working and can still submit a message."""
    cert, key = _copy_cert(certs, tmp_path / "live")
    t = tls_server(make_tern, certs, password_file=None, smtpd_tls_cert_file=str(cert),
                   smtpd_tls_key_file=str(key))
    old_fp = fingerprint(cert_der(certs["cert"]))
    new_fp = fingerprint(cert_der(certs["other_cert"]))
    assert fingerprint(peer_cert_der(t.port)) == old_fp
    old = connect(t.port)
    old.ehlo()
    old.starttls()
    old.ehlo()
    shutil.copy(certs["other_cert"], cert)
    shutil.copy(certs["other_key"], key)
    t.reload()
    assert wait_for(lambda: "reloaded configuration" in t.log(), 5), t.log()
    for port, mode in ((t.port, "starttls"), (t.smtps_port, "implicit")):
        der = peer_cert_der(port, mode)
        assert fingerprint(der) == new_fp
        assert cert_subject_cn(der) == "reloaded.tern.test"
    # the session from before the reload still works (it holds the old context)
    assert old.sock.getpeercert(binary_form=True) and fingerprint(
        old.sock.getpeercert(binary_form=True)) == old_fp
    send_text(old, "a@example.org", ["alice@tern.test"], b"Subject: across reload\r\n\r\nx\r\n")
    old.close()
    t.wait_mail("alice")


def test_sighup_with_broken_key_keeps_old_certificate(make_tern, certs, tmp_path):  # noqa: F811
    """A reload with a broken key file logs a warning and keeps the old certificate: new
    connections still complete the handshake with it."""
    cert, key = _copy_cert(certs, tmp_path / "live")
    t = tls_server(make_tern, certs, smtpd_tls_cert_file=str(cert), smtpd_tls_key_file=str(key))
    old_fp = fingerprint(cert_der(certs["cert"]))
    shutil.copy(certs["other_cert"], cert)
    key.write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    t.reload()
    assert wait_for(lambda: "reload failed" in t.log(), 5), t.log()
    assert re.search(r"warning: reload failed, keeping the old configuration: TLS: "
                     r"cannot load private key", t.log()), t.log()
    for port, mode in ((t.port, "starttls"), (t.smtps_port, "implicit")):
        assert fingerprint(peer_cert_der(port, mode)) == old_fp
    r = connect(t.port)
    r.ehlo()
    r.starttls()
    r.ehlo()
    send_text(r, "a@example.org", ["alice@tern.test"], b"Subject: still\r\n\r\nx\r\n")
    r.close()
    t.wait_mail("alice")
