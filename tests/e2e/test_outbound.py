"""Outbound delivery end to end: ternd relays to peers on 127.0.0.x found through a private
dnsmasq (MX, A, null MX), retries, bounces, success/delay reports, smarthost, LMTP."""
import email
import email.policy
import re
import time

import pytest

from conftest import wait_for
from peers import dns_zone, peer_port, peers  # noqa: F401
from postfix_peer import postfix_peer  # noqa: F401

SENDER = "alice@tern.test"


def start_tern(make_tern, zone, port, **kw):
    settings = dict(dns_nameservers=zone.nameserver, smtp_port=port, myorigin="tern.test",
                    smtp_tls_security_level="may")
    settings.update(kw)
    return make_tern(**settings)


def send(t, rcpts, sender=SENDER, params=None, body=None, mail_params=""):
    """One message over raw SMTP; returns the queue id."""
    r = t.raw()
    r.cmd("EHLO client.example", 250)
    r.cmd("MAIL FROM:<%s>%s" % (sender, mail_params), 250)
    for i, a in enumerate(rcpts):
        p = (params or {}).get(a, "")
        r.cmd("RCPT TO:<%s>%s" % (a, p), 250)
    r.cmd("DATA", 354)
    r.send(body or ("Subject: outbound test\r\nMessage-ID: <m%d@client.example>\r\n\r\n"
                    "hello\r\n..dot line\r\n" % time.time_ns()))
    r.send(".\r\n")
    qid = re.search(r"queued as ([0-9A-F]{12})", r.expect(250)[0]).group(1)
    r.cmd("QUIT", 221)
    return qid


def report_of(raw):
    """The multipart/report in a delivered Maildir message (after Return-Path/Delivered-To)."""
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m.get_content_type() == "multipart/report", raw[:500]
    parts = m.get_payload()
    status = parts[1].get_payload()
    return m, parts, status[0], status[1:]


def removed(t, qid):
    return wait_for(lambda: "%s: removed" % qid in t.log(), 15)


def test_mx_delivery_one_transaction(make_tern, dns_zone, peers, peer_port):
    """Three recipients at one domain go in one transaction to the best MX; the log has
    Postfix's relay=host[ip]:port, delays=a/b/c/d and status=sent lines."""
    dns_zone.mx("a.example", "mx1.a.example", 10).a("mx1.a.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port)
    t = start_tern(make_tern, dns_zone, peer_port)
    rcpts = ["bob@a.example", "carol@a.example", "dave@a.example"]
    qid = send(t, rcpts)
    assert removed(t, qid), t.log()
    assert len(p.transactions) == 1
    tx = p.transactions[0]
    assert sorted(tx.rcpt_tos) == sorted(rcpts)
    assert tx.mail_from == SENDER
    assert b"\r\n..dot line\r\n" not in tx.content and b"\r\n.dot line\r\n" in tx.content
    log = t.log()
    for a in rcpts:
        assert re.search(r"tern/smtp\[\d+\]: %s: to=<%s>, relay=mx1\.a\.example\[127\.0\.0\.2\]:%d, "
                         r"delay=[\d.e-]+, delays=[\d.e-]+/[\d.e-]+/[\d.e-]+/[\d.e-]+, dsn=2\.0\.0, "
                         r"status=sent \(250 " % (qid, re.escape(a), peer_port), log), log
    assert qid not in t.queued()


def test_mx_preference_and_fallback(make_tern, dns_zone, peers, peer_port):
    """The best MX is down (nothing listens on 127.0.0.3): the next one gets the mail."""
    (dns_zone.mx("b.example", "mx1.b.example", 10).mx("b.example", "mx2.b.example", 20)
     .a("mx1.b.example", "127.0.0.3").a("mx2.b.example", "127.0.0.4").start())
    p = peers(host="127.0.0.4", port=peer_port)
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, ["bob@b.example"])
    assert removed(t, qid), t.log()
    assert len(p.messages) == 1
    assert "relay=mx2.b.example[127.0.0.4]:%d" % peer_port in t.log()


@pytest.mark.parametrize("case", ["a-only", "aaaa-only-mx"])
def test_single_address_destination(make_tern, dns_zone, peers, peer_port, case):
    """A domain with only an A record is its own mail server (RFC 5321 5.1); an MX host with
    only an AAAA record is reached over IPv6."""
    if case == "a-only":
        dom, relay, host = "c.example", "c.example[127.0.0.5]", "127.0.0.5"
        dns_zone.a(dom, host)
    else:
        dom, relay, host = "v6.example", "mx.v6.example[::1]", "::1"
        dns_zone.mx(dom, "mx.v6.example").aaaa("mx.v6.example", host)
    dns_zone.start()
    p = peers(host=host, port=peer_port)
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, ["bob@" + dom])
    assert removed(t, qid), t.log()
    assert p.messages[0].rcpt_tos == ["bob@" + dom]
    assert "relay=%s:%d" % (relay, peer_port) in t.log()


def test_null_mx_bounces_at_once(make_tern, dns_zone, peers, peer_port):
    """RFC 7505: "MX 0 ." means no mail: the sender gets a report with 5.1.10 right away."""
    dns_zone.null_mx("nullmx.example").start()
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, ["bob@nullmx.example"])
    raw = t.wait_mail("alice")[0]
    m, parts, per_msg, rcpts = report_of(raw)
    assert rcpts[0]["Action"] == "failed"
    assert rcpts[0]["Status"] == "5.1.10"
    assert rcpts[0]["Final-Recipient"].replace(" ", "") == "rfc822;bob@nullmx.example"
    assert removed(t, qid)
    assert re.search(r"%s: to=<bob@nullmx\.example>, relay=none, .*dsn=5\.1\.10, status=bounced" % qid,
                     t.log())


def test_unknown_domain_bounces(make_tern, dns_zone, peers, peer_port):
    """NXDOMAIN for the recipient domain is permanent (5.4.4)."""
    dns_zone.a("other.example", "127.0.0.9").start()
    t = start_tern(make_tern, dns_zone, peer_port)
    send(t, ["bob@nosuchdomain.example"])
    raw = t.wait_mail("alice")[0]
    _, _, _, rcpts = report_of(raw)
    assert rcpts[0]["Status"] == "5.4.4"


def test_permanent_rejection_bounce_contents(make_tern, dns_zone, peers, peer_port):
    """A 550 at RCPT bounces that recipient only; the report names the remote MTA and quotes
    its reply (Diagnostic-Code: smtp), carries the ORCPT and ENVID, and returns the message."""
    dns_zone.mx("d.example", "mx.d.example").a("mx.d.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, dsn=True,
              rcpt_replies={"bad@d.example": "550 5.1.1 <bad@d.example>: no such user"})
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, ["good@d.example", "bad@d.example"], mail_params=" ENVID=env+2B1 RET=FULL",
               params={"bad@d.example": " ORCPT=rfc822;Bad@d.example"})
    raw = t.wait_mail("alice")[0]
    m, parts, per_msg, rcpts = report_of(raw)
    assert m["From"].startswith("MAILER-DAEMON@") or "MAILER-DAEMON@" in m["From"]
    assert raw.startswith(b"Return-Path: <>")
    assert per_msg["Original-Envelope-Id"] == "env+1"
    assert len(rcpts) == 1
    r = rcpts[0]
    assert r["Final-Recipient"].replace(" ", "") == "rfc822;bad@d.example"
    assert r["Original-Recipient"].replace(" ", "") == "rfc822;Bad@d.example"
    assert r["Action"] == "failed" and r["Status"] == "5.1.1"
    assert r["Remote-MTA"].replace(" ", "") == "dns;mx.d.example"
    assert r["Diagnostic-Code"].replace(" ", "").startswith("smtp;5505.1.1")
    assert b"Subject: outbound test" in parts[2].as_bytes()
    assert [tx.rcpt_tos for tx in p.messages] == [["good@d.example"]]
    assert removed(t, qid)
    log = t.log()
    assert re.search(r"to=<bad@d\.example>, relay=mx\.d\.example\[127\.0\.0\.2\]:%d, .*dsn=5\.1\.1, "
                     r"status=bounced \(host mx\.d\.example\[127\.0\.0\.2\]:%d said: 550 5\.1\.1"
                     % (peer_port, peer_port), log), log


def test_temporary_failure_is_retried(make_tern, dns_zone, peers, peer_port):
    """451 at DATA twice: deferred (visible in mailq), retried with backoff, then sent once."""
    dns_zone.mx("e.example", "mx.e.example").a("mx.e.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, defer_first=2)
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, ["bob@e.example"])
    assert wait_for(lambda: "status=deferred" in t.log(), 10), t.log()
    out = t.ternctl("mailq").stdout
    assert qid in out or "%s: removed" % qid in t.log()
    assert removed(t, qid), t.log()
    assert len(p.messages) == 1
    assert len(p.transactions) == 3
    assert re.search(r"%s: to=<bob@e\.example>, .*dsn=4\.3\.0, status=deferred \(host "
                     r"mx\.e\.example\[127\.0\.0\.2\]:%d said: 451 4\.3\.0" % (qid, peer_port), t.log())


def test_lifetime_expiry_bounces(make_tern, dns_zone, peers, peer_port):
    """A recipient that keeps failing temporarily bounces after maximal_queue_lifetime."""
    dns_zone.mx("f.example", "mx.f.example").a("mx.f.example", "127.0.0.2").start()
    peers(host="127.0.0.2", port=peer_port, defer_first=1000, defer_at="RCPT")
    t = start_tern(make_tern, dns_zone, peer_port, maximal_queue_lifetime="3s")
    qid = send(t, ["bob@f.example"])
    raw = t.wait_mail("alice", timeout=20)[0]
    _, _, _, rcpts = report_of(raw)
    assert rcpts[0]["Action"] == "failed"
    assert rcpts[0]["Status"].startswith("4.")   # the last reason, as Postfix reports it
    assert removed(t, qid)


def test_delay_warning(make_tern, dns_zone, peers, peer_port):
    """delay_warning_time: one "delayed" report while the recipient is still being retried."""
    dns_zone.mx("g.example", "mx.g.example").a("mx.g.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, defer_first=1000)
    t = start_tern(make_tern, dns_zone, peer_port, delay_warning_time="2s")
    qid = send(t, ["bob@g.example"])
    raw = t.wait_mail("alice", timeout=20)[0]
    m, parts, _, rcpts = report_of(raw)
    assert rcpts[0]["Action"] == "delayed"
    assert rcpts[0]["Status"] == "4.3.0"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    time.sleep(3)
    assert len(t.mailbox("alice")) == 1        # only once
    assert qid in t.queued()
    p.defer_first = 0
    assert removed(t, qid)


def test_success_dsn_relayed_and_delivered(make_tern, dns_zone, peers, peer_port):
    """NOTIFY=SUCCESS: a peer without DSN means tern says "relayed"; a local delivery says
    "delivered"; to a DSN-capable peer the request is passed on and tern says nothing."""
    (dns_zone.mx("h.example", "mx.h.example").a("mx.h.example", "127.0.0.2")
     .mx("i.example", "mx.i.example").a("mx.i.example", "127.0.0.3").start())
    peers(host="127.0.0.2", port=peer_port)
    pi = peers(host="127.0.0.3", port=peer_port, dsn=True)
    t = start_tern(make_tern, dns_zone, peer_port)
    n = " NOTIFY=SUCCESS,FAILURE"
    q1 = send(t, ["bob@h.example"], params={"bob@h.example": n})
    raw = t.wait_mail("alice")[0]
    _, _, _, rcpts = report_of(raw)
    assert rcpts[0]["Action"] == "relayed" and rcpts[0]["Status"].startswith("2.")
    assert removed(t, q1)
    q2 = send(t, ["carol@tern.test"], params={"carol@tern.test": n})
    raws = t.wait_mail("alice", 2)
    reports = [report_of(r) for r in raws if b"multipart/report" in r]
    assert any(r[3][0]["Action"] == "delivered" for r in reports)
    assert removed(t, q2)
    q3 = send(t, ["dave@i.example"], params={"dave@i.example": n})
    assert removed(t, q3)
    assert pi.messages[0].rcpt_params[0].get("NOTIFY") == "SUCCESS,FAILURE"
    time.sleep(0.5)
    assert len(t.mailbox("alice")) == 2


def test_restart_never_resends_done_recipients(make_tern, dns_zone, peers, peer_port):
    """One recipient is delivered, the other deferred; after a restart only the deferred one
    is sent, exactly once."""
    (dns_zone.mx("j.example", "mx.j.example").a("mx.j.example", "127.0.0.2")
     .mx("k.example", "mx.k.example").a("mx.k.example", "127.0.0.3").start())
    pj = peers(host="127.0.0.2", port=peer_port)
    pk = peers(host="127.0.0.3", port=peer_port, defer_first=1000)
    t = start_tern(make_tern, dns_zone, peer_port, queue_retry_interval="60s")
    qid = send(t, ["bob@j.example", "bob@k.example"])
    assert wait_for(lambda: len(pj.messages) == 1 and "status=deferred" in t.log(), 10), t.log()
    time.sleep(0.3)
    assert t.stop() == 0
    pk.defer_first = 0
    t.start()
    assert removed(t, qid), t.log()
    assert len(pj.messages) == 1
    assert len(pk.messages) == 1


def test_connection_reuse(make_tern, dns_zone, peers, peer_port):
    """Messages waiting for the same destination share one connection."""
    dns_zone.mx("l.example", "mx.l.example").a("mx.l.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, defer_first=1000)
    t = start_tern(make_tern, dns_zone, peer_port, smtp_destination_concurrency_limit=1,
                   queue_retry_interval="3s", maximal_backoff_time="3s")
    qids = [send(t, ["u%d@l.example" % i]) for i in range(5)]
    assert wait_for(lambda: t.log().count("status=deferred") >= 5, 10)
    p.defer_first = 0
    for q in qids:
        assert removed(t, q), t.log()
    ok = [c for c in p.connections if any(tx.accepted for tx in c.transactions)]
    assert len(p.messages) == 5
    assert len(ok) < 5, [len(c.transactions) for c in p.connections]


def test_dead_destination_defers_everything(make_tern, dns_zone, peer_port):
    """No server answers: the recipients are deferred with the connection error."""
    dns_zone.mx("m.example", "mx.m.example").a("mx.m.example", "127.0.0.6").start()
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, ["bob@m.example"])
    assert wait_for(lambda: "status=deferred" in t.log(), 10)
    assert re.search(r"%s: to=<bob@m\.example>, relay=none, .*status=deferred \(connect to "
                     r"mx\.m\.example\[127\.0\.0\.6\]:%d: Connection refused\)" % (qid, peer_port),
                     t.log()), t.log()
    assert qid in t.queued()
    assert "Connection refused" in t.ternctl("mailq").stdout


def test_transport_maps_and_error_transport(make_tern, dns_zone, peers, peer_port, tmp_path):
    """transport_maps sends a domain to a fixed next hop (no MX) and refuses another."""
    dns_zone.a("unused.example", "127.0.0.9").start()
    p = peers(host="127.0.0.7", port=peer_port)
    maps = tmp_path / "transport"
    maps.write_text("routed.example smtp:[127.0.0.7]\nrefused.example error:5.7.1 no mail for you\n")
    t = start_tern(make_tern, dns_zone, peer_port, transport_maps=maps)
    q1 = send(t, ["bob@routed.example"])
    assert removed(t, q1), t.log()
    assert p.messages[0].rcpt_tos == ["bob@routed.example"]
    send(t, ["bob@refused.example"])
    _, _, _, rcpts = report_of(t.wait_mail("alice")[0])
    assert rcpts[0]["Status"] == "5.7.1"
    assert "no mail for you" in rcpts[0]["Diagnostic-Code"]


def test_smarthost_auth_over_starttls(make_tern, dns_zone, peers, peer_port, tmp_path):
    """relayhost with AUTH credentials from smtp_sasl_password_maps, sent only inside TLS."""
    dns_zone.a("unused.example", "127.0.0.9").start()
    p = peers(host="127.0.0.8", port=peer_port, starttls=True, auth="relayuser:s3cret pass",
              auth_required=True)
    pw = tmp_path / "sasl"
    pw.write_text("[127.0.0.8]:%d relayuser:s3cret pass\n" % peer_port)
    t = start_tern(make_tern, dns_zone, peer_port, relayhost="[127.0.0.8]:%d" % peer_port,
                   smtp_sasl_password_maps=pw)
    qid = send(t, ["bob@anywhere.example", "carol@elsewhere.example"])
    assert removed(t, qid), t.log()
    tx = p.messages[0]
    assert sorted(tx.rcpt_tos) == ["bob@anywhere.example", "carol@elsewhere.example"]
    assert tx.tls and tx.auth_user == "relayuser"


def test_smarthost_implicit_tls(make_tern, dns_zone, peers, peer_port, tmp_path):
    """A smarthost on a port-465 style listener: smtp_tls_policy_maps says wrapper."""
    dns_zone.a("unused.example", "127.0.0.9").start()
    p = peers(host="127.0.0.8", port=peer_port, implicit_tls=True, auth="u:p", auth_required=True)
    pw = tmp_path / "sasl"
    pw.write_text("[127.0.0.8]:%d u:p\n" % peer_port)
    pol = tmp_path / "tls"
    pol.write_text("[127.0.0.8]:%d wrapper\n" % peer_port)
    t = start_tern(make_tern, dns_zone, peer_port, relayhost="[127.0.0.8]:%d" % peer_port,
                   smtp_sasl_password_maps=pw, smtp_tls_policy_maps=pol)
    qid = send(t, ["bob@anywhere.example"])
    assert removed(t, qid), t.log()
    assert p.messages[0].tls and p.messages[0].auth_user == "u"


def test_tls_encrypt_required_but_not_offered(make_tern, dns_zone, peers, peer_port, tmp_path):
    """smtp_tls_policy_maps "encrypt" for a domain whose server has no STARTTLS: deferred,
    never sent in clear text."""
    dns_zone.mx("n.example", "mx.n.example").a("mx.n.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port)
    pol = tmp_path / "tls"
    pol.write_text("n.example encrypt\n")
    t = start_tern(make_tern, dns_zone, peer_port, smtp_tls_policy_maps=pol)
    qid = send(t, ["bob@n.example"])
    assert wait_for(lambda: "status=deferred" in t.log(), 10)
    assert "TLS is required" in t.log()
    assert p.messages == []
    assert qid in t.queued()


def test_lmtp_local_transport_per_recipient(make_tern, dns_zone, peers, tmp_path):
    """local_transport = lmtp:unix:/path: one reply per recipient after the data; 250 is
    delivered, 452 deferred, 550 bounced."""
    dns_zone.a("unused.example", "127.0.0.9").start()
    sock = tmp_path / "lmtp.sock"
    p = peers(path=sock, lmtp=True, lmtp_replies={"carol@tern.test": "452 4.2.2 mailbox full",
                                                   "dave@tern.test": "550 5.1.1 no such user"})
    t = start_tern(make_tern, dns_zone, 25, local_transport="lmtp:unix:%s" % sock)
    qid = send(t, ["bob@tern.test", "carol@tern.test", "dave@tern.test"])
    assert wait_for(lambda: "status=bounced" in t.log() and "status=deferred" in t.log(), 10), t.log()
    log = t.log()
    assert re.search(r"tern/lmtp\[\d+\]: %s: to=<bob@tern\.test>, .*status=sent" % qid, log), log
    assert re.search(r"to=<carol@tern\.test>, .*dsn=4\.2\.2, status=deferred", log)
    assert re.search(r"to=<dave@tern\.test>, .*dsn=5\.1\.1, status=bounced", log)
    assert len(p.transactions) >= 1
    assert sorted(p.transactions[0].rcpt_tos) == ["bob@tern.test", "carol@tern.test", "dave@tern.test"]
    # the retry carries only carol
    p.lmtp_replies = {}
    assert removed(t, qid), t.log()
    retries = [tx for tx in p.transactions[1:] if "carol@tern.test" in tx.rcpt_tos]
    assert [tx.rcpt_tos for tx in retries] == [["carol@tern.test"]]
    # dave's bounce to alice@tern.test went the same way
    assert wait_for(lambda: any(tx.rcpt_tos == [SENDER] and tx.mail_from == ""
                                for tx in p.transactions), 10)


def test_8bit_and_smtputf8_need_the_extensions(make_tern, dns_zone, peers, peer_port):
    """RFC 6152/6531: 8-bit text goes only to a server offering 8BITMIME (7-bit text declared
    8BITMIME goes anyway), an SMTPUTF8 message only to one offering SMTPUTF8; else a bounce."""
    dns_zone.mx("o.example", "mx.o.example").a("mx.o.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, ehlo_drop=["8BITMIME"])
    t = start_tern(make_tern, dns_zone, peer_port)
    q7 = send(t, ["seven@o.example"], mail_params=" BODY=8BITMIME")
    assert removed(t, q7)
    assert p.messages[0].rcpt_tos == ["seven@o.example"]
    send(t, ["eight@o.example"], mail_params=" BODY=8BITMIME",
         body="Subject: caf\xc3\xa9\r\n\r\ncaf\xc3\xa9\r\n".encode("latin-1"))
    _, _, _, rcpts = report_of(t.wait_mail("alice")[0])
    assert rcpts[0]["Status"] == "5.6.3"
    send(t, ["j\xc3\xb6rg@o.example".encode("latin-1").decode("utf-8")], mail_params=" SMTPUTF8")
    raws = t.wait_mail("alice", 2)
    assert any(b"5.6.7" in r for r in raws)
    assert [tx.rcpt_tos for tx in p.messages] == [["seven@o.example"]]


def test_relay_to_a_real_postfix(make_tern, dns_zone, postfix_peer, peer_port):
    """A private Postfix is the MX: it accepts tern's transaction (EHLO, PIPELINING, SIZE, DSN
    parameters) and delivers each recipient once; its log names tern's client and the sizes."""
    dns_zone.mx("pf.example", "mx.pf.example").a("mx.pf.example", "127.0.0.3").start()
    pf = postfix_peer(host="127.0.0.3", port=peer_port)
    t = start_tern(make_tern, dns_zone, peer_port)
    qid = send(t, ["bob@pf.example", "carol@pf.example"], mail_params=" ENVID=pf1 RET=HDRS",
               params={"bob@pf.example": " NOTIFY=FAILURE ORCPT=rfc822;bob@pf.example"})
    assert removed(t, qid), t.log()
    bob = pf.wait_mail("bob@pf.example")
    carol = pf.wait_mail("carol@pf.example")
    assert len(bob) == 1 and len(carol) == 1
    assert b"Subject: outbound test" in bob[0] and b"\n.dot line\n" in bob[0]
    assert b"by mx.tern.test (tern)" in bob[0]
    assert re.search(r"status=sent \(250 2\.0\.0 Ok: queued as ", t.log())
    assert "from=<alice@tern.test>" in pf.log()


def test_tls_verify_level(make_tern, dns_zone, peers, peer_port, tmp_path):
    """verify: the server's certificate must chain to smtp_tls_CAfile and name the MX host;
    a name mismatch defers and sends nothing."""
    from tlshelpers import ca_chain
    chain, key, ca, _ = ca_chain(tmp_path / "pki", cn="mx.v.example")
    (dns_zone.mx("v.example", "mx.v.example").a("mx.v.example", "127.0.0.2")
     .mx("w.example", "mx.w.example").a("mx.w.example", "127.0.0.2").start())
    p = peers(host="127.0.0.2", port=peer_port, starttls=True, cert=chain, key=key)
    pol = tmp_path / "tls"
    pol.write_text("v.example verify\nw.example verify\n")
    t = start_tern(make_tern, dns_zone, peer_port, smtp_tls_policy_maps=pol, smtp_tls_CAfile=ca)
    q1 = send(t, ["bob@v.example"])
    assert removed(t, q1), t.log()
    assert p.messages[0].tls
    q2 = send(t, ["bob@w.example"])
    assert wait_for(lambda: re.search(r"%s: to=<bob@w\.example>.*status=deferred" % q2, t.log()), 10)
    assert len(p.messages) == 1
    assert q2 in t.queued()


def test_lmtp_over_tcp_by_transport_maps(make_tern, dns_zone, peers, peer_port, tmp_path):
    """transport_maps "lmtp:[host]:port" for a virtual domain (Dovecot style)."""
    dns_zone.a("unused.example", "127.0.0.9").start()
    p = peers(host="127.0.0.4", port=peer_port, lmtp=True)
    maps = tmp_path / "transport"
    maps.write_text("virt.example lmtp:[127.0.0.4]:%d\n" % peer_port)
    t = start_tern(make_tern, dns_zone, peer_port, transport_maps=maps)
    qid = send(t, ["bob@virt.example", "carol@virt.example"])
    assert removed(t, qid), t.log()
    assert sorted(p.messages[0].rcpt_tos) == ["bob@virt.example", "carol@virt.example"]
    assert re.search(r"tern/lmtp\[\d+\]: %s: to=<bob@virt\.example>, relay=127\.0\.0\.4\[127\.0\.0\.4\]:%d"
                     % (qid, peer_port), t.log()), t.log()


def test_destination_concurrency_limit(make_tern, dns_zone, peers, peer_port):
    """smtp_destination_concurrency_limit bounds the connections open at once to one
    destination, whatever waits in the queue."""
    dns_zone.mx("p.example", "mx.p.example").a("mx.p.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, data_delay=0.3)
    t = start_tern(make_tern, dns_zone, peer_port, smtp_destination_concurrency_limit=2)
    qids = [send(t, ["u%d@p.example" % i]) for i in range(8)]
    for q in qids:
        assert removed(t, q), t.log()
    assert len(p.messages) == 8
    assert p.max_open == 2, p.max_open


def test_pflogsumm_reads_outbound_lines(make_tern, dns_zone, peers, peer_port):
    """pflogsumm counts relayed deliveries, deferrals and bounces from tern/smtp lines and
    lists the destination domain."""
    import subprocess
    dns_zone.mx("r.example", "mx.r.example").a("mx.r.example", "127.0.0.2").start()
    p = peers(host="127.0.0.2", port=peer_port, defer_first=1,
              rcpt_replies={"bad@r.example": "550 5.1.1 no such user"})
    t = start_tern(make_tern, dns_zone, peer_port)
    q1 = send(t, ["bob@r.example"])
    assert wait_for(lambda: "status=deferred" in t.log(), 10)   # the first transaction
    q2 = send(t, ["bad@r.example"])
    assert removed(t, q1) and removed(t, q2), t.log()
    t.wait_mail("alice")
    assert len(p.messages) == 1
    out = subprocess.run(["pflogsumm", "--syslog-name=tern", str(t.logfile)], capture_output=True,
                         text=True, timeout=60).stdout

    def count(label):
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1] == label:
                return int(parts[0])
        raise AssertionError("no %r line in pflogsumm output:\n%s" % (label, out))
    assert count("delivered") == 2          # bob relayed, the bounce delivered locally
    assert count("deferred") == 1
    assert count("bounced") == 1
    assert "r.example" in out.split("Host/Domain Summary: Message Delivery", 1)[1]
