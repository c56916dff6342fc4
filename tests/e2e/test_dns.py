"""Client name lookup: forward-confirmed reverse DNS against a local DNS server."""
import pytest

from dnsserver import DNSServer


@pytest.fixture
def dns():
    server = DNSServer({
        ("1.0.0.127.in-addr.arpa", "PTR"): ["client.tern.test"],
        ("client.tern.test", "A"): ["127.0.0.1"],
        ("2.0.0.127.in-addr.arpa", "PTR"): ["liar.tern.test"],
        ("liar.tern.test", "A"): ["192.0.2.1"],
    })
    yield server
    server.stop()


def test_confirmed_name_in_log_and_received(make_tern, dns):
    """A PTR name that maps back to the client is used in the log and Received:."""
    t = make_tern(smtpd_peername_lookup="yes", dns_nameservers="127.0.0.1:%d" % dns.port)
    with t.smtp() as s:
        s.sendmail("a@example.org", ["alice@tern.test"], b"Subject: x\r\n\r\nx\r\n")
    msg = t.wait_mail("alice")[0]
    assert b"Received: from " in msg and b"(client.tern.test [127.0.0.1])" in msg
    assert "connect from client.tern.test[127.0.0.1]" in t.log()
    assert ("1.0.0.127.in-addr.arpa", 12) in dns.queries


def test_unconfirmed_name_is_unknown(make_tern, dns):
    """A PTR name whose A record is another address is not trusted."""
    import socket
    t = make_tern(smtpd_peername_lookup="yes", dns_nameservers="127.0.0.1:%d" % dns.port)
    # connect from 127.0.0.2 so the PTR is liar.tern.test
    s = socket.create_connection(("127.0.0.1", t.port), source_address=("127.0.0.2", 0))
    assert s.recv(100).startswith(b"220 ")
    s.close()
    from conftest import wait_for
    assert wait_for(lambda: "connect from unknown[127.0.0.2]" in t.log())
    assert ("liar.tern.test", 1) in dns.queries
