"""SMTP AUTH (RFC 4954): PLAIN and LOGIN, cancellation, failures and their delays, limits.

The password file (tlshelpers.PASSWORDS, sha512-crypt) is made once per session.  Most tests
authenticate on the smtps port (implicit TLS) or after STARTTLS on port 25.
"""
import re
import time

import pytest

from conftest import wait_for
from tlshelpers import (PASSWORDS, auth_mechs, b64, certs, connect, ehlo_keywords,  # noqa: F401
                        password_file, plain, received_header, send_text, tls_server)


@pytest.fixture
def srv(make_tern, certs, password_file):  # noqa: F811
    """TLS + AUTH; no per-address failure budget, so tests do not interfere."""
    return tls_server(make_tern, certs, password_file, myorigin="tern.test",
                      smtpd_auth_client_limit=0)


def tls_session(t, port="smtps"):
    """A session after EHLO, inside TLS: implicit on smtps, STARTTLS on port 25."""
    if port == "smtps":
        r = connect(t.smtps_port, tls=True)
    else:
        r = connect(t.port)
        r.ehlo()
        r.starttls()
    r.ehlo()
    return r


def authenticated(r, t, user="alice"):
    """Proof that the session is authenticated as user: the submission-only relay works."""
    r.cmd("MAIL FROM:<%s@tern.test>" % user, 250)
    r.cmd("RCPT TO:<someone@remote.example>", 250)
    r.cmd("RSET", 250)


# ---- successful exchanges --------------------------------------------------

def test_auth_plain_initial_response(srv):
    """AUTH PLAIN with an initial response: 235 2.7.0; MAIL on smtps is then allowed, and the
    log records sasl_method=PLAIN, sasl_username=alice for the message."""
    r = tls_session(srv)
    assert r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 235) == \
        ["235 2.7.0 Authentication successful"]
    qid = send_text(r, "alice@tern.test", ["bob@tern.test"], b"Subject: p\r\n\r\nx\r\n")
    r.close()
    assert re.search(r"%s: client=unknown\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=alice$"
                     % qid, srv.log(), re.M), srv.log()


def test_auth_plain_without_initial_response(srv):
    """AUTH PLAIN alone gets an empty challenge '334 ' and takes the response on the next line;
    a password with a space works."""
    r = tls_session(srv, "starttls")
    assert r.cmd("AUTH PLAIN", 334) == ["334 "]
    assert r.cmd(plain("carol", PASSWORDS["carol"]), 235) == ["235 2.7.0 Authentication successful"]
    authenticated(r, srv, "carol")
    r.close()


def test_auth_plain_authzid_equal_to_authcid_accepted(srv):
    """PLAIN with an authorization identity equal to the authentication identity is accepted."""
    r = tls_session(srv)
    r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"], authzid="alice"), 235)
    authenticated(r, srv)
    r.close()


def test_auth_login_exact_prompts(srv):
    """AUTH LOGIN prompts with exactly '334 VXNlcm5hbWU6' (Username:) and '334 UGFzc3dvcmQ6'
    (Password:); the log names sasl_method=LOGIN."""
    r = tls_session(srv)
    assert r.cmd("AUTH LOGIN", 334) == ["334 VXNlcm5hbWU6"]
    assert r.cmd(b64("alice"), 334) == ["334 UGFzc3dvcmQ6"]
    assert r.cmd(b64(PASSWORDS["alice"]), 235) == ["235 2.7.0 Authentication successful"]
    qid = send_text(r, "alice@tern.test", ["bob@tern.test"], b"Subject: l\r\n\r\nx\r\n")
    r.close()
    assert re.search(r"%s: client=unknown\[127\.0\.0\.1\], sasl_method=LOGIN, sasl_username=alice$"
                     % qid, srv.log(), re.M), srv.log()


def test_auth_login_with_initial_user_name(srv):
    """AUTH LOGIN <base64 user> skips the Username: prompt and asks for the password."""
    r = tls_session(srv)
    assert r.cmd("AUTH LOGIN %s" % b64("bob"), 334) == ["334 UGFzc3dvcmQ6"]
    r.cmd(b64(PASSWORDS["bob"]), 235)
    authenticated(r, srv, "bob")
    r.close()


def test_auth_mechanism_case_insensitive(srv):
    """Mechanism names are case-insensitive (RFC 4954: 'auth plain' works)."""
    r = tls_session(srv)
    r.cmd("auth plain %s" % plain("alice", PASSWORDS["alice"]), 235)
    r.close()


def test_auth_pipelined_commands_answered_in_order(srv):
    """MAIL and RCPT pipelined right after AUTH are processed after the password check, in
    order, as the authenticated user."""
    r = tls_session(srv)
    r.send("AUTH PLAIN %s\r\nMAIL FROM:<alice@tern.test>\r\nRCPT TO:<x@remote.example>\r\n"
           % plain("alice", PASSWORDS["alice"]))
    assert r.expect(235) == ["235 2.7.0 Authentication successful"]
    assert r.expect(250) == ["250 2.1.0 Ok"]
    assert r.expect(250) == ["250 2.1.5 Ok"]
    r.close()


# ---- cancellation and malformed input -------------------------------------

@pytest.mark.parametrize("steps", [
    ["AUTH PLAIN"],
    ["AUTH LOGIN"],
    ["AUTH LOGIN", b64("alice")],
], ids=["plain", "login-user", "login-password"])
def test_auth_cancel_with_star(srv, steps):
    """'*' cancels the exchange at any step with 501 5.7.0; the session is usable and not
    authenticated, and a new AUTH works."""
    r = tls_session(srv)
    for s in steps:
        r.cmd(s, 334)
    assert r.cmd("*", 501) == ["501 5.7.0 Authentication aborted"]
    assert r.cmd("NOOP", 250) == ["250 2.0.0 Ok"]
    assert r.cmd("MAIL FROM:<alice@tern.test>", 530) == ["530 5.7.0 Authentication required"]
    r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 235)
    r.close()


@pytest.mark.parametrize("response", ["!!!!", "YWxpY2U", "YQ==YQ==", "YR==", "AGFsaWNl AGFsaWNl"],
                         ids=["bad-chars", "bad-length", "data-after-pad", "pad-bits", "space"])
def test_auth_malformed_base64_501(srv, response):
    """Malformed base64 (bad characters, length, padding, pad bits) is 501 5.5.2, as an
    initial response and as a continuation line; the session goes on."""
    r = tls_session(srv)
    if " " not in response:  # a space in an initial response is a syntax error (checked below)
        assert r.cmd("AUTH PLAIN %s" % response, 501) == ["501 5.5.2 Cannot decode response"]
    r.cmd("AUTH PLAIN", 334)
    assert r.cmd(response, 501) == ["501 5.5.2 Cannot decode response"]
    r.cmd("AUTH LOGIN", 334)
    assert r.cmd(response, 501) == ["501 5.5.2 Cannot decode response"]
    assert r.cmd("NOOP", 250) == ["250 2.0.0 Ok"]
    r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 235)
    r.close()


def test_auth_plain_authzid_different_refused(srv):
    """PLAIN with an authorization identity other than the authentication identity (proxy
    authorization) is refused, even with bob's right password, and does not authenticate."""
    r = tls_session(srv)
    r.send("AUTH PLAIN %s\r\n" % plain("bob", PASSWORDS["bob"], authzid="alice"))
    code, lines = r.reply()
    assert code in (501, 535), lines
    assert r.cmd("MAIL FROM:<alice@tern.test>", 530)
    r.close()


def test_auth_line_too_long_rejected(srv):
    """A response line over 12288 octets is refused (500) without ending or crashing the
    session; a 12000-octet line (within the limit) that decodes to too much is 501; an AUTH
    command line over 512 octets is 500 like any long command."""
    r = tls_session(srv)
    r.cmd("AUTH PLAIN", 334)
    r.send("A" * 13000 + "\r\n")
    assert r.expect(500) == ["500 5.5.2 Error: command line too long"]
    assert r.cmd("NOOP", 250) == ["250 2.0.0 Ok"]
    r.cmd("AUTH LOGIN", 334)
    r.send("QUFB" * 20000 + "\r\n")
    assert r.expect(500) == ["500 5.5.2 Error: command line too long"]
    assert r.cmd("NOOP", 250) == ["250 2.0.0 Ok"]
    r.cmd("AUTH PLAIN", 334)
    assert r.cmd("A" * 12000, 501) == ["501 5.5.2 Cannot decode response"]
    r.send("AUTH PLAIN %s\r\n" % ("A" * 600))
    assert r.expect(500) == ["500 5.5.2 Error: command line too long"]
    r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 235)
    r.close()


# ---- refusals --------------------------------------------------------------

@pytest.mark.parametrize("port", ["port", "sub_port"])
def test_auth_before_tls_538(srv, port):
    """smtpd_tls_auth_only=yes (default): before STARTTLS, EHLO does not offer AUTH and AUTH
    gets 538 5.7.11 (port 25 and submission)."""
    r = connect(getattr(srv, port))
    kws = ehlo_keywords(r.ehlo())
    assert "AUTH" not in kws and "STARTTLS" in kws
    assert r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 538) == \
        ["538 5.7.11 Encryption required for requested authentication mechanism"]
    r.cmd("AUTH LOGIN", 538)
    r.close()


def test_auth_without_tls_when_allowed(make_tern, certs, password_file):  # noqa: F811
    """smtpd_tls_auth_only=no: AUTH is offered and works in plaintext (submission port), and
    the Received: header says ESMTPA (authenticated, not TLS)."""
    t = tls_server(make_tern, certs, password_file, smtpd_tls_auth_only="no", myorigin="tern.test")
    r = connect(t.sub_port)
    lines = r.ehlo()
    assert auth_mechs(lines) == ["PLAIN", "LOGIN"]
    assert "STARTTLS" in ehlo_keywords(lines)
    r.cmd("AUTH LOGIN", 334)
    r.cmd(b64("alice"), 334)
    r.cmd(b64(PASSWORDS["alice"]), 235)
    send_text(r, "alice@tern.test", ["bob@tern.test"], b"Subject: clear\r\n\r\nx\r\n")
    r.cmd("QUIT", 221)
    r.close()
    rec = received_header(t.wait_mail("bob")[0])
    assert b"with ESMTPA id" in rec and b"(using" not in rec, rec


def test_auth_not_offered_without_password_file(make_tern, certs):  # noqa: F811
    """With TLS but no smtpd_sasl_password_file, AUTH is never offered and gets 503."""
    t = tls_server(make_tern, certs)
    r = connect(t.port)
    r.ehlo()
    r.starttls()
    assert "AUTH" not in ehlo_keywords(r.ehlo())
    assert r.cmd("AUTH PLAIN %s" % plain("alice", "x"), 503) == \
        ["503 5.5.1 Error: authentication not enabled"]
    r.close()


def test_auth_unknown_mechanism_504(srv):
    """An unsupported mechanism is 504 5.5.4; AUTH with no mechanism is 501."""
    r = tls_session(srv)
    assert r.cmd("AUTH CRAM-MD5", 504) == ["504 5.5.4 Unsupported authentication mechanism"]
    r.cmd("AUTH GSSAPI", 504)
    r.cmd("AUTH", 501)
    r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 235)
    r.close()


def test_auth_long_mechanism_name_504(srv):
    """A valid but unsupported 18-character SASL mechanism name (SCRAM-SHA-256-PLUS, RFC 7677)
    gets 504 like any other unsupported mechanism (RFC 4954 4)."""
    r = tls_session(srv)
    r.cmd("AUTH SCRAM-SHA-256-PLUS", 504)
    r.close()


def test_auth_twice_503(srv):
    """A second AUTH after a successful one is 503 5.5.1."""
    r = tls_session(srv)
    r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 235)
    assert r.cmd("AUTH PLAIN %s" % plain("bob", PASSWORDS["bob"]), 503) == \
        ["503 5.5.1 Error: already authenticated"]
    # still alice, not bob
    r.cmd("MAIL FROM:<bob@tern.test>", 553)
    r.close()


def test_auth_during_mail_transaction_503(srv):
    """AUTH inside a MAIL transaction is 503 (port 25 over STARTTLS, where MAIL needs no AUTH)."""
    r = tls_session(srv, "starttls")
    r.cmd("MAIL FROM:<someone@example.org>", 250)
    assert r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 503) == \
        ["503 5.5.1 Error: MAIL transaction in progress"]
    r.cmd("RSET", 250)
    r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 235)
    r.close()


def test_auth_after_helo_503(srv):
    """AUTH is an ESMTP command: after HELO (not EHLO) it is 503."""
    r = connect(srv.smtps_port, tls=True)
    r.cmd("HELO client.example", 250)
    assert r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 503) == \
        ["503 5.5.1 Error: send EHLO first"]
    r.close()


# ---- failures --------------------------------------------------------------

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_wrong_password_535_after_delay(srv, mech):
    """A wrong password is 535 5.7.8, answered only after a delay; the failure is logged as a
    warning with the client address and user name (the line fail2ban matches)."""
    r = tls_session(srv)
    t0 = time.monotonic()
    if mech == "PLAIN":
        r.send("AUTH PLAIN %s\r\n" % plain("alice", "wrong"))
    else:
        r.cmd("AUTH LOGIN", 334)
        r.cmd(b64("alice"), 334)
        t0 = time.monotonic()
        r.send(b64("wrong") + "\r\n")
    assert r.expect(535) == ["535 5.7.8 Error: authentication failed: authentication failure"]
    assert time.monotonic() - t0 >= 0.4
    assert r.cmd("MAIL FROM:<alice@tern.test>", 530)
    r.close()
    assert re.search(r"warning: unknown\[127\.0\.0\.1\]: SASL %s authentication failed: "
                     r"authentication failure, sasl_username=alice$" % mech, srv.log(), re.M), srv.log()


def test_unknown_user_535(srv):
    """An unknown user gets the same 535 5.7.8 after the same delay as a wrong password."""
    r = tls_session(srv)
    t0 = time.monotonic()
    r.send("AUTH PLAIN %s\r\n" % plain("mallory", "whatever"))
    assert r.expect(535) == ["535 5.7.8 Error: authentication failed: authentication failure"]
    assert time.monotonic() - t0 >= 0.4
    r.close()
    assert "SASL PLAIN authentication failed: authentication failure, sasl_username=mallory" in srv.log()


def test_auth_failure_limit_ends_session(make_tern, certs, password_file):  # noqa: F811
    """smtpd_auth_failure_limit=2: the 2nd failure is answered 535 and then 421 4.7.0, and the
    server closes the connection (smtps); the log says so."""
    t = tls_server(make_tern, certs, password_file, smtpd_auth_failure_limit=2,
                   smtpd_auth_client_limit=0)
    r = tls_session(t)
    r.cmd("AUTH PLAIN %s" % plain("alice", "bad1"), 535)
    r.cmd("AUTH LOGIN", 334)
    r.cmd(b64("alice"), 334)
    r.send(b64("bad2") + "\r\n")
    assert r.expect(535)[0].startswith("535 5.7.8 ")
    lines = r.expect(421)
    assert re.fullmatch(r"421 4\.7\.0 mx\.tern\.test Error: too many errors", lines[0]), lines
    assert r.closed(5)
    r.close()
    log = t.log()
    assert "SASL PLAIN authentication failed" in log and "SASL LOGIN authentication failed" in log
    assert "too many AUTH failures from unknown[127.0.0.1]" in log


def test_auth_failure_limit_ends_starttls_session_with_421(make_tern, certs, password_file):  # noqa: F811
    """Over STARTTLS on port 25, smtpd_auth_failure_limit=1: 535 then 421 4.7.0, then close
    (regression: the last replies of a STARTTLS session were lost)."""
    t = tls_server(make_tern, certs, password_file, smtpd_auth_failure_limit=1,
                   smtpd_auth_client_limit=0)
    r = tls_session(t, "starttls")
    r.send("AUTH PLAIN %s\r\n" % plain("alice", "bad"))
    try:
        r.expect(535)
        r.expect(421)
    except EOFError as e:
        pytest.fail("connection closed without the replies: %s" % e)
    assert r.closed(5)
    r.close()


def test_auth_client_limit_per_address(make_tern, certs, password_file):  # noqa: F811
    """smtpd_auth_client_limit=3: after 3 failures from 127.0.0.1 (over several sessions),
    a new AUTH is refused with 454 4.7.0 even with the right password, and logged."""
    t = tls_server(make_tern, certs, password_file, smtpd_auth_client_limit=3)
    r = tls_session(t)
    r.cmd("AUTH PLAIN %s" % plain("alice", "bad1"), 535)
    r.cmd("AUTH PLAIN %s" % plain("bob", "bad2"), 535)
    r.close()
    r = tls_session(t, "starttls")
    r.cmd("AUTH PLAIN %s" % plain("mallory", "bad3"), 535)
    r.close()
    r = tls_session(t)
    assert r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 454) == \
        ["454 4.7.0 Temporary authentication failure: too many failures from your address"]
    r.cmd("AUTH LOGIN", 454)
    assert r.cmd("MAIL FROM:<alice@tern.test>", 530)
    r.close()
    assert wait_for(lambda: "unknown[127.0.0.1]: AUTH refused: too many failures from this address"
                    in t.log(), 5), t.log()


def test_auth_client_limit_not_reached(make_tern, certs, password_file):  # noqa: F811
    """Below smtpd_auth_client_limit (2 failures, limit 3) the right password still works."""
    t = tls_server(make_tern, certs, password_file, smtpd_auth_client_limit=3)
    r = tls_session(t)
    r.cmd("AUTH PLAIN %s" % plain("alice", "bad1"), 535)
    r.cmd("AUTH PLAIN %s" % plain("alice", "bad2"), 535)
    r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 235)
    r.close()


def test_auth_client_window_expires(make_tern, certs, password_file):  # noqa: F811
    """smtpd_auth_client_window: the per-address block (limit 1) lifts once the window (1s) has
    passed, and the right password works again."""
    t = tls_server(make_tern, certs, password_file, smtpd_auth_client_limit=1,
                   smtpd_auth_client_window="1s")
    r = tls_session(t)
    r.cmd("AUTH PLAIN %s" % plain("alice", "bad"), 535)
    r.cmd("AUTH PLAIN %s" % plain("alice", PASSWORDS["alice"]), 454)
    r.close()

    def unblocked():
        s = tls_session(t)
        try:
            s.send("AUTH PLAIN %s\r\n" % plain("alice", PASSWORDS["alice"]))
            code, lines = s.reply()
            assert code in (235, 454), lines
            return code == 235
        finally:
            s.close()

    t0 = time.monotonic()
    assert wait_for(unblocked, 6, interval=0.25)
    assert time.monotonic() - t0 < 4


def test_password_file_reloaded_on_sighup(make_tern, certs, tmp_path):  # noqa: F811
    """SIGHUP rereads the password file: a new user can log in and a removed one cannot; a
    password file readable by others is refused at reload (warning) and the old one kept."""
    from tlshelpers import write_passwords
    pw = write_passwords(tmp_path / "passwd", {"alice": "one"})
    t = tls_server(make_tern, certs, pw)
    write_passwords(pw, {"dave": "two"})
    t.reload()
    assert wait_for(lambda: "reloaded configuration" in t.log(), 5)
    r = tls_session(t)
    r.cmd("AUTH PLAIN %s" % plain("dave", "two"), 235)
    r.close()
    r = tls_session(t)
    r.cmd("AUTH PLAIN %s" % plain("alice", "one"), 535)
    r.close()
    write_passwords(pw, {"mallory": "three"})
    pw.chmod(0o644)
    t.reload()
    assert wait_for(lambda: t.log().count("reloaded configuration") >= 2, 5), t.log()
    assert "readable by others" in t.log()
    assert "keeping the old AUTH password file" in t.log()
    r = tls_session(t)
    r.cmd("AUTH PLAIN %s" % plain("dave", "two"), 235)
    r.close()
    r = tls_session(t)
    r.cmd("AUTH PLAIN %s" % plain("mallory", "three"), 535)
    r.close()


def test_world_readable_password_file_refused_at_start(make_tern, certs, tmp_path):  # noqa: F811
    """ternd does not start with a password file readable by others, and says why."""
    import subprocess
    from conftest import TERND
    from tlshelpers import write_passwords
    pw = write_passwords(tmp_path / "passwd", {"alice": "one"})
    pw.chmod(0o644)
    t = tls_server(make_tern, certs, pw, start=False)
    p = subprocess.run([str(TERND), "-c", str(t.conf)], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "readable by others" in p.stderr + t.log(), p.stderr + t.log()
