"""Remote peers for the outbound delivery tests: a private DNS zone (dnsmasq) and scriptable
SMTP / LMTP servers (aiosmtpd) on loopback addresses.

DNS
---
    zone = DnsZone()                       # or the `dns_zone` fixture (unstarted, stopped at teardown)
    zone.mx("a.example", "mx1.a.example", 10).a("mx1.a.example", "127.0.0.2")
    zone.aaaa("v6.a.example", "::1")
    zone.a("plain.example", "127.0.0.3")   # a domain without MX: RFC 5321 5.1 fallback to A
    zone.null_mx("nullmx.example")         # "MX 0 ." (RFC 7505)
    zone.rr("bad.example", "MX", "000a03612a6200")   # any raw record (type, rdata in hex)
    zone.start()
    make_tern(dns_nameservers=zone.nameserver)       # "127.0.0.1:PORT" (mx.c takes ip, ip@port, ip:port)
    zone.query("a.example", "MX")   -> DnsReply(rcode="NOERROR", answers=[(10, "mx1.a.example")])
    zone.queries()                  -> [("MX", "a.example"), ...] as dnsmasq logged them

What the zone answers (dnsmasq 2.90, no upstream, --local=/#/):
  * a configured name and type: the records, TTL 0 (nothing is cached for long);
  * a name configured with --mx-host or --host-record, other type: NOERROR with no answer
    (NODATA), e.g. plain.example MX when only an A is set, or a.example A when only MX is set;
  * a name that only has raw records (rr(), null_mx()): NXDOMAIN for every other type
    (dnsmasq does not count --dns-rr names as existing), e.g. nullmx.example A;
  * any other name, in any TLD: NXDOMAIN.  (Without --local=/#/ dnsmasq with no upstream
    answers REFUSED for everything it does not know, even NODATA cases.)
Names must not be under test., invalid., localhost., onion. or home.arpa.: libunbound (tern's
resolver) answers those RFC 6761 zones itself and never asks the forwarder.  Use example.,
example.org., etc.

SMTP / LMTP peers
-----------------
    port = shared_port("127.0.0.2", "127.0.0.3")     # free on every address: tern's smtp_port
    p = peers(host="127.0.0.2", port=port, rcpt_replies={"bad@a.example": "550 5.1.1 no such user"})
    ... tern delivers ...
    p.wait_messages(1)
    p.messages[0].rcpt_tos, p.messages[0].content, p.connections[0].verbs

`Peer(host, port, **behaviour)` (see Peer.__init__ for every option) records
  peer.connections   [Connection]: .commands (every command line, as sent, without CRLF; the
                     text of DATA and AUTH continuation lines are not commands), .verbs (their
                     first words, upper case), .helo (last EHLO/HELO/LHLO name), .esmtp,
                     .tls (e.g. "TLSv1.3" once STARTTLS or implicit TLS is up), .cipher,
                     .auth_user / .auth_mechanism (successful AUTH), .auth_attempts
                     [(mechanism, user, ok)], .transactions, .closed, .peer (address)
  peer.transactions  [Transaction] for every MAIL command that reached the reply logic
                     (accepted or not): .mail_from ("" for <>), .mail_reply, .mail_options
                     (parameters exactly as sent, e.g. "ENVID=QQ+2Bx"), .mail_params
                     ({"RET": "HDRS", "SMTPUTF8": True}), .rcpt_tos (accepted recipients),
                     .rcpt_options / .rcpt_params (one list / dict per accepted recipient),
                     .rcpt_replies [(address, reply)] for every RCPT, .content (raw bytes after
                     dot-unstuffing, CRLF line ends; None before the end of DATA),
                     .data_reply (SMTP), .lmtp_replies [(rcpt, reply)] (LMTP), .delivered
                     (recipients that got a 2xx at the end of DATA), .accepted, .helo, .tls,
                     .auth_user, .conn, .index (0-based across the peer)
  peer.messages      transactions with at least one delivered recipient
  peer.errors        exceptions raised inside the peer's own code (the `peers` fixture fails the
                     test if there are any)
Behaviour options are plain attributes and may be changed while the peer runs
(e.g. `p.data_reply = "451 4.3.0 later"`); TLS, AUTH user lists and LMTP mode are fixed at start().

aiosmtpd 1.4 notes (handled here): it refuses every MAIL/RCPT parameter it does not know with
555 (so without dsn=True a peer refuses RET/ENVID/NOTIFY/ORCPT like a server without DSN), it
upper-cases the parameters it passes on (we record the originals), it stores the null sender as
"<>", it neither advertises nor needs PIPELINING (pipelined commands work; add
ehlo_extra=["PIPELINING"] to advertise it), it neither offers nor accepts AUTH without TLS unless
auth_require_tls=False, and it treats implicit TLS as no TLS for AUTH (fixed here).  A 5-argument
handle_EHLO hook must set session.host_name itself, or MAIL gets "503 send HELO first".  Every
successful AUTH logs a harmless "Session.login_data is deprecated" warning.
"""
import asyncio
import atexit
import email
import email.policy
import os
import random
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import warnings
import weakref
from pathlib import Path

import pytest

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import DATA_SIZE_DEFAULT, MISSING, SMTP, AuthResult, TLSSetupException

from conftest import wait_for

DNSMASQ = "/usr/sbin/dnsmasq"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"

# libunbound answers these itself (RFC 6761 / 8375 default local zones)
UNBOUND_LOCAL_ZONES = ("test", "invalid", "localhost", "onion", "home.arpa")

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
          "SRV": 33, "TLSA": 52, "ANY": 255}
QTYPE_NAMES = {v: k for k, v in QTYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


# ---- ports ---------------------------------------------------------------

def _bindable(host, port, udp=False):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def shared_port(*hosts, udp=False):
    """One port that is free for TCP (and UDP if udp=True) on every given address right now
    (default 127.0.0.2 ... 127.0.0.9), below the ephemeral range like conftest.free_port, so
    that several peers can listen on it, each on its own address: tern's `smtp_port`."""
    hosts = hosts or tuple("127.0.0.%d" % i for i in range(2, 10))
    for _ in range(500):
        port = random.randint(20000, 32000)
        if all(_bindable(h, port) and (not udp or _bindable(h, port, udp=True)) for h in hosts):
            return port
    raise RuntimeError("no port free on all of %s" % (hosts, ))


@pytest.fixture
def peer_port():
    """A port free on 127.0.0.2 ... 127.0.0.9 (see shared_port)."""
    return shared_port()


# ---- a minimal DNS client ------------------------------------------------

class DnsReply:
    """rcode ("NOERROR", "NXDOMAIN", ...), aa (authoritative flag), answers (the values of the
    answer records of the asked type: "127.0.0.2" for A/AAAA, (pref, host) for MX with "." for the
    null MX, [strings] for TXT, names for CNAME/PTR/NS, hex strings otherwise) and records (every
    answer record as (name, type name, ttl, value))."""

    def __init__(self, rcode, aa, answers, records):
        self.rcode, self.aa, self.answers, self.records = rcode, aa, answers, records

    def __repr__(self):
        return "DnsReply(rcode=%r, answers=%r)" % (self.rcode, self.answers)


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _decode_name(pkt, off):
    """(name, offset after the name), following compression pointers."""
    labels, end, hops = [], None, 0
    while True:
        n = pkt[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | pkt[off + 1]
            hops += 1
            if hops > 64:
                raise ValueError("DNS compression loop")
            continue
        if n == 0:
            return ".".join(labels), (end if end is not None else off + 1)
        labels.append(pkt[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def _rdata_value(pkt, rtype, off, rdlen):
    rd = pkt[off:off + rdlen]
    if rtype == 1:
        return socket.inet_ntop(socket.AF_INET, rd)
    if rtype == 28:
        return socket.inet_ntop(socket.AF_INET6, rd)
    if rtype == 15:
        host = _decode_name(pkt, off + 2)[0]
        return (struct.unpack(">H", rd[:2])[0], host or ".")
    if rtype in (2, 5, 12):
        return _decode_name(pkt, off)[0] or "."
    if rtype == 16:
        out, i = [], 0
        while i < len(rd):
            out.append(rd[i + 1:i + 1 + rd[i]].decode("utf-8", "replace"))
            i += 1 + rd[i]
        return out
    return rd.hex()


def dns_query(port, name, qtype="A", host="127.0.0.1", timeout=2.0):
    """One UDP query (RD set) to host:port; a DnsReply.  Raises socket.timeout if nobody answers."""
    t = QTYPES[qtype.upper()] if isinstance(qtype, str) else int(qtype)
    qid = random.randint(0, 0xFFFF)
    pkt = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name) + struct.pack(">HH", t, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(pkt, (host, port))
        end = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, end - time.monotonic()))
            r = s.recv(65535)
            if len(r) >= 12 and struct.unpack(">H", r[:2])[0] == qid:
                break
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", r[:12])
    off = 12
    for _ in range(qd):
        off = _decode_name(r, off)[1] + 4
    answers, records = [], []
    for _ in range(an):
        rname, off = _decode_name(r, off)
        rtype, _, ttl, rdlen = struct.unpack(">HHIH", r[off:off + 10])
        off += 10
        value = _rdata_value(r, rtype, off, rdlen)
        off += rdlen
        records.append((rname, QTYPE_NAMES.get(rtype, str(rtype)), ttl, value))
        if rtype == t:
            answers.append(value)
    return DnsReply(RCODES.get(flags & 0xF, str(flags & 0xF)), bool(flags & 0x0400), answers, records)


# ---- DnsZone -------------------------------------------------------------

_live_zones = weakref.WeakSet()


@atexit.register
def _kill_leftover_zones():
    for z in list(_live_zones):
        z.stop()


class DnsZone:
    """A private dnsmasq on 127.0.0.1 with the given records and no upstream.

    Add records (mx, a, aaaa, null_mx, rr; each returns the zone), then start().  Records added
    later take effect at restart() (same port).  stop() is idempotent.  dnsmasq also gets SIGTERM
    at interpreter exit (atexit) and when the thread that started it dies, even by SIGKILL:
    Python has no PR_SET_PDEATHSIG, so it runs under `setpriv --pdeathsig TERM`, with --user= and
    --group= so that dnsmasq (as root) changes no credentials, which would clear that signal."""

    def __init__(self, directory=None, port=None):
        self._own_dir = directory is None
        self.dir = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="dnszone-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self._fixed_port = port is not None
        self.proc = None
        self.records = []          # dnsmasq options, in order
        self.logfile = self.dir / "dnsmasq.log"
        self.stderr_path = self.dir / "dnsmasq.stderr"

    # -- records
    @staticmethod
    def _check(name):
        n = name.lower().rstrip(".")
        if not n or " " in n:
            raise ValueError("bad DNS name %r" % name)
        for z in UNBOUND_LOCAL_ZONES:
            if n == z or n.endswith("." + z):
                raise ValueError("%r is under %s.: libunbound answers that zone itself and never "
                                 "asks dns_nameservers; use example. instead" % (name, z))
        return n

    def mx(self, domain, host, pref=10):
        """An MX record domain -> host with preference pref."""
        self.records.append("--mx-host=%s,%s,%d" % (self._check(domain), self._check(host), pref))
        return self

    def a(self, name, *addrs):
        """A records (one or more IPv4 addresses; also makes the PTR records)."""
        for addr in addrs:
            socket.inet_pton(socket.AF_INET, addr)
            self.records.append("--host-record=%s,%s" % (self._check(name), addr))
        return self

    def aaaa(self, name, *addrs):
        """AAAA records (one or more IPv6 addresses)."""
        for addr in addrs:
            socket.inet_pton(socket.AF_INET6, addr)
            self.records.append("--host-record=%s,%s" % (self._check(name), addr))
        return self

    def null_mx(self, domain):
        """The null MX "MX 0 ." (RFC 7505): the domain accepts no mail."""
        return self.rr(domain, "MX", "000000")

    def rr(self, name, rtype, rdata):
        """A raw record: rtype a type name or number, rdata hex (or bytes) in wire format."""
        t = QTYPES[rtype.upper()] if isinstance(rtype, str) else int(rtype)
        if isinstance(rdata, (bytes, bytearray)):
            rdata = bytes(rdata).hex()
        self.records.append("--dns-rr=%s,%d,%s" % (self._check(name), t, rdata))
        return self

    # -- process
    @property
    def nameserver(self):
        """The dns_nameservers value for tern: "127.0.0.1:PORT"."""
        assert self.port, "zone not started"
        return "127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _argv(self):
        argv = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--no-poll", "--bind-interfaces", "--listen-address=127.0.0.1",
                "--port=%d" % self.port, "--pid-file=", "--user=", "--group=",
                "--local=/#/",          # no upstream: NXDOMAIN (not REFUSED) for unknown names
                "--log-facility=%s" % self.logfile, "--log-queries"] + self.records
        if os.access(SETPRIV, os.X_OK):
            argv = [SETPRIV, "--pdeathsig", "TERM", "--"] + argv
        return argv

    def start(self, timeout=10):
        if self.running():
            return self
        for attempt in range(10):
            if not self._fixed_port:
                self.port = self.port if (attempt == 0 and self.port) else shared_port("127.0.0.1", udp=True)
            with open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL,
                                             stdout=err, stderr=err)
            _live_zones.add(self)
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    break
                try:
                    dns_query(self.port, "probe.example", "A", timeout=0.1)
                    return self
                except OSError:     # timeout, or ICMP port unreachable before the bind
                    time.sleep(0.02)
            rc = self.proc.poll()
            text = self.stderr_path.read_text(errors="replace")
            self.stop()
            if rc is not None and "in use" in text and not self._fixed_port:
                continue            # lost the race for the port: another one
            raise RuntimeError("dnsmasq did not start (rc %s):\n%s" % (rc, text[-2000:]))
        raise RuntimeError("dnsmasq: no free port")

    def stop(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        _live_zones.discard(self)

    def restart(self):
        """Stop and start again on the same port, with the records as they are now."""
        self.stop()
        fixed, self._fixed_port = self._fixed_port, True
        try:
            return self.start()
        finally:
            self._fixed_port = fixed

    def close(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- inspection
    def query(self, name, qtype="A", timeout=2.0):
        """Ask the zone directly; a DnsReply."""
        return dns_query(self.port, name, qtype, timeout=timeout)

    def queries(self):
        """[(type, name)] of every query dnsmasq logged, oldest first (names as asked)."""
        if not self.logfile.exists():
            return []
        out = []
        for line in self.logfile.read_text(errors="replace").splitlines():
            i = line.find(" query[")
            if i < 0:
                continue
            rest = line[i + 7:]
            qtype, _, rest = rest.partition("] ")
            out.append((qtype, rest.split(" ", 1)[0]))
        return out


@pytest.fixture
def dns_zone(tmp_path):
    """An unstarted DnsZone (files in tmp_path/dns); stopped at teardown."""
    zone = DnsZone(tmp_path / "dns")
    yield zone
    zone.stop()


# ---- SMTP / LMTP peers ---------------------------------------------------

_default_cert_lock = threading.Lock()
_default_cert_files = None


def default_cert():
    """(cert, key) of a self-signed "peer.example" certificate made once per process."""
    global _default_cert_files
    with _default_cert_lock:
        if _default_cert_files is None:
            from tlshelpers import self_signed
            d = tempfile.mkdtemp(prefix="peer-cert-")
            atexit.register(shutil.rmtree, d, True)
            _default_cert_files = self_signed(d, "peer.example", "peer")
        return _default_cert_files


class Connection:
    """What one accepted connection saw."""

    def __init__(self, index, peer):
        self.index = index
        self.peer = peer
        self.commands = []
        self.helo = None
        self.esmtp = False
        self.tls = None
        self.cipher = None
        self.auth_user = None
        self.auth_mechanism = None
        self.auth_attempts = []
        self.transactions = []
        self.closed = False

    @property
    def verbs(self):
        return [c.split(" ", 1)[0].upper() for c in self.commands]

    def __repr__(self):
        return "Connection(%d, %r)" % (self.index, self.commands)


class Transaction:
    """One MAIL ... (RCPT ...) (DATA ...) sequence."""

    def __init__(self, index, conn, mail_from, options):
        self.index = index
        self.conn = conn
        self.helo, self.tls, self.auth_user = conn.helo, conn.tls, conn.auth_user
        self.mail_from = "" if mail_from == "<>" else mail_from
        self.mail_options = list(options)
        self.mail_params = _params(options)
        self.mail_reply = None
        self.rcpt_tos, self.rcpt_options, self.rcpt_params = [], [], []
        self.rcpt_replies = []
        self.content = None
        self.data_reply = None
        self.lmtp_replies = []

    @property
    def delivered(self):
        """Recipients that got a 2xx for the message."""
        if self.lmtp_replies:
            return [r for r, reply in self.lmtp_replies if reply.startswith("2")]
        if self.data_reply and self.data_reply.startswith("2"):
            return list(self.rcpt_tos)
        return []

    @property
    def accepted(self):
        return bool(self.delivered)

    def message(self):
        """The content as an email.message.EmailMessage."""
        return email.message_from_bytes(self.content, policy=email.policy.default)

    def __repr__(self):
        return "Transaction(%d, from=%r, to=%r, data_reply=%r)" % (
            self.index, self.mail_from, self.rcpt_tos, self.data_reply or self.lmtp_replies)


def _params(options):
    out = {}
    for p in options:
        k, eq, v = p.partition("=")
        out[k.upper()] = v if eq else True
    return out


def _split_params(proto, keyword, arg, hidden):
    """(arg without the parameters in `hidden`, every parameter as sent) for MAIL/RCPT."""
    s = proto._strip_command_keyword(keyword, arg)
    if s is None:
        return arg, []
    address, rest = proto._getaddr(s)
    if address is None or rest is None:
        return arg, []
    params = rest.split()
    keep = [p for p in params if p.partition("=")[0].upper() not in hidden]
    return keyword + s[:len(s) - len(rest)].rstrip() + "".join(" " + p for p in keep), params


class _ImplicitTLS:
    """Stands in for aiosmtpd's _tls_protocol on an implicit-TLS connection (so AUTH works)."""

    def __bool__(self):
        return True


class _Recorder:
    """Mixed into aiosmtpd's SMTP / LMTP: records commands and connections, scripted greeting,
    DSN parameters, STARTTLS refusal, implicit TLS."""

    def __init__(self, handler, *, peer, **kw):
        self._peer = peer
        self._conn = None
        self._sent_params = []
        self._greeting_pending = True
        super().__init__(handler, **kw)

    def connection_made(self, transport):
        after_starttls = self._original_transport is not None
        super().connection_made(transport)
        ssl_obj = transport.get_extra_info("ssl_object")
        if after_starttls:
            if self._conn is not None and ssl_obj is not None:
                self._conn.tls, self._conn.cipher = ssl_obj.version(), ssl_obj.cipher()[0]
            return
        self._conn = self._peer._connected(self, transport)
        if ssl_obj is not None:
            self._conn.tls, self._conn.cipher = ssl_obj.version(), ssl_obj.cipher()[0]
            self._tls_protocol = _ImplicitTLS()

    def connection_lost(self, error):
        try:
            super().connection_lost(error)
        finally:
            if self._conn is not None:
                self._conn.closed = True
                self._peer.open_now -= 1
            self._peer._protocols.discard(self)

    def _client_connected_cb(self, reader, writer):
        super()._client_connected_cb(reader, writer)
        if getattr(reader, "_peer_recording", False):
            return
        orig = reader.readuntil

        async def readuntil(separator=b"\n"):
            line = await orig(separator)
            if separator == b"\n" and self._conn is not None:   # command lines, not DATA
                self._conn.commands.append(line.rstrip(b"\r\n").decode("utf-8", "replace"))
            return line

        reader.readuntil = readuntil
        reader._peer_recording = True

    async def push(self, status):
        if self._greeting_pending:
            self._greeting_pending = False
            if self._peer.greeting is not None:
                status = self._peer.greeting
        await super().push(status)

    async def _handle_client(self):
        g = self._peer.greeting
        if g is None or g.startswith("2"):
            return await super()._handle_client()
        # a refusing greeting (RFC 5321 3.1): wait for QUIT, 503 to anything else; 421 closes
        await self.push(g)
        if g.startswith("421"):
            self.transport.close()
            return
        try:
            while self.transport is not None:
                line = await self._reader.readuntil()
                if line.strip().split(b" ")[0].upper() == b"QUIT":
                    await self.push("221 2.0.0 Bye")
                    self.transport.close()
                    return
                await self.push("503 5.5.1 Bad sequence of commands")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            if self.transport is not None:
                self.transport.close()

    async def smtp_MAIL(self, arg):
        self._sent_params = []
        if arg and self.session.extended_smtp:
            hidden = {"RET", "ENVID"} if self._peer.dsn else set()
            arg, self._sent_params = _split_params(self, "FROM:", arg, hidden)
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        self._sent_params = []
        if arg and self.session.extended_smtp:
            hidden = {"NOTIFY", "ORCPT"} if self._peer.dsn else set()
            arg, self._sent_params = _split_params(self, "TO:", arg, hidden)
        await super().smtp_RCPT(arg)

    async def smtp_STARTTLS(self, arg):
        if self._peer.starttls_reply is not None and not arg:
            await self.push(self._peer.starttls_reply)
            return
        await super().smtp_STARTTLS(arg)


class _SmtpProto(_Recorder, SMTP):
    pass


class _LmtpProto(_Recorder, LMTP):
    pass


class _Handler:
    """aiosmtpd hooks.  (No attribute may start with auth_: aiosmtpd would take it for an AUTH
    mechanism.)"""

    def __init__(self, peer):
        self.peer = peer

    async def handle_exception(self, error):
        if not isinstance(error, TLSSetupException):
            self.peer.errors.append(error)
        return "451 4.3.0 peer fixture error: %s: %s" % (type(error).__name__, error)

    async def handle_HELO(self, server, session, envelope, hostname):
        server._conn.helo, server._conn.esmtp = hostname, False
        return MISSING

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        p = self.peer
        conn = server._conn
        conn.helo = hostname
        if p.ehlo_reply is not None:
            session.extended_smtp = False
            conn.esmtp = False
            return [p.ehlo_reply]
        conn.esmtp = True
        session.host_name = hostname    # the 5-argument hook must do this itself
        words = [r[4:] for r in responses[1:] if r[4:] != "HELP"]
        drop = {d.upper() for d in p.ehlo_drop}
        if p.auth is None or not server._auth_methods:
            drop.add("AUTH")
        words = [w for w in words if w.split(" ")[0].upper() not in drop]
        if p.dsn:
            words.append("DSN")
        words += list(p.ehlo_extra)
        lines = [server.hostname] + words
        return ["250-" + ln for ln in lines[:-1]] + ["250 " + lines[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        p = self.peer
        conn = server._conn
        tx = Transaction(len(p.transactions), conn, address, server._sent_params or mail_options)
        p.transactions.append(tx)
        conn.transactions.append(tx)
        if p.defer_at == "MAIL" and tx.index < p.defer_first:
            reply = p.defer_reply
        elif p.mail_reply is not None:
            reply = p.mail_reply
        else:
            reply = "250 2.1.0 Ok"
        tx.mail_reply = reply
        if reply.startswith("2"):
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
            envelope.peer_tx = tx
        return reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        p = self.peer
        tx = envelope.peer_tx
        if p.defer_at == "RCPT" and tx.index < p.defer_first:
            reply = p.defer_reply
        else:
            replies = {k.lower(): v for k, v in (p.rcpt_replies or {}).items()}
            reply = replies.get(address.lower(), "250 2.1.5 Ok")
        tx.rcpt_replies.append((address, reply))
        if reply.startswith("2"):
            opts = server._sent_params or rcpt_options
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            tx.rcpt_tos.append(address)
            tx.rcpt_options.append(list(opts))
            tx.rcpt_params.append(_params(opts))
        return reply

    async def handle_DATA(self, server, session, envelope):
        p = self.peer
        tx = envelope.peer_tx
        tx.content = bytes(envelope.original_content)
        if p.data_delay:
            await asyncio.sleep(p.data_delay)
        deferred = p.defer_at == "DATA" and tx.index < p.defer_first
        if p.lmtp:
            replies = {k.lower(): v for k, v in (p.lmtp_replies or {}).items()}
            for r in tx.rcpt_tos:
                if deferred:
                    reply = p.defer_reply
                else:
                    reply = replies.get(r.lower(), p.data_reply or "250 2.0.0 <%s> delivered" % r)
                tx.lmtp_replies.append((r, reply))
            return "\r\n".join(reply for _, reply in tx.lmtp_replies)
        if deferred:
            tx.data_reply = p.defer_reply
        else:
            tx.data_reply = p.data_reply or "250 2.0.0 Ok: queued as P%05d" % tx.index
        return tx.data_reply


class Peer:
    """A scriptable SMTP or LMTP server in its own thread (see the module docstring)."""

    def __init__(self, host="127.0.0.1", port=None, *, path=None, hostname="peer.example",
                 lmtp=False, greeting=None, ehlo_reply=None, ehlo_extra=(), ehlo_drop=(),
                 dsn=False, smtputf8=False, size_limit=DATA_SIZE_DEFAULT,
                 mail_reply=None, rcpt_replies=None, data_reply=None, lmtp_replies=None,
                 defer_first=0, defer_reply="451 4.3.0 Try again later", defer_at="DATA",
                 starttls=False, starttls_reply=None, require_starttls=False, implicit_tls=False,
                 cert=None, key=None, auth=None, auth_required=False, auth_require_tls=True,
                 auth_mechanisms=None, timeout=300, data_delay=0):
        """
        host, port      TCP address (port None: a free one); or path: a unix socket (LMTP style)
        hostname        name in the greeting and the first EHLO line
        lmtp            speak LMTP (LHLO; one reply per recipient after DATA)
        greeting        replaces the 220 greeting: "220 ..." goes on normally; "554 go away"
                        answers 503 to everything but QUIT; "421 ..." closes at once
        ehlo_reply      refuse EHLO with this reply (e.g. "502 5.5.2 no"): HELO still works
        ehlo_extra      keywords to add to the EHLO reply (e.g. ["PIPELINING", "CHUNKING"])
        ehlo_drop       keywords to remove (e.g. ["8BITMIME", "SIZE"])
        dsn             advertise DSN and accept RET=/ENVID= (MAIL), NOTIFY=/ORCPT= (RCPT);
                        without it those parameters get 555 like any unknown one
        smtputf8        advertise SMTPUTF8 and accept UTF-8 addresses
        size_limit      advertised SIZE and enforced message size (None: no limit, no SIZE)
        mail_reply      reply to MAIL (a non-2xx one refuses it)
        rcpt_replies    {address: reply} (case-insensitive); others get 250
        data_reply      reply after the message (SMTP), default for unlisted recipients (LMTP)
        lmtp_replies    {address: reply} after the message in LMTP mode; others get 250
        defer_first     the first N transactions (counting every MAIL) get defer_reply at
                        defer_at: "MAIL", "RCPT" (every recipient) or "DATA"
        starttls        offer STARTTLS with cert/key (default: a self-signed "peer.example")
        starttls_reply  answer STARTTLS with this (e.g. "454 4.7.0 TLS not available")
        require_starttls   530 to mail commands before STARTTLS
        implicit_tls    TLS from the first byte (port 465 style)
        auth            "user:password", (user, password) or {user: password}: PLAIN and LOGIN
        auth_required   530 to MAIL before AUTH
        auth_require_tls   aiosmtpd's default True: AUTH is neither offered nor accepted
                        before TLS (STARTTLS or implicit)
        auth_mechanisms restrict to these, e.g. ["LOGIN"]
        timeout         idle timeout in seconds
        data_delay      seconds to wait before answering the end of the data
        """
        if defer_at not in ("MAIL", "RCPT", "DATA"):
            raise ValueError("defer_at must be MAIL, RCPT or DATA")
        self.host, self.port, self.path = host, port, (str(path) if path is not None else None)
        self.hostname = hostname
        self.lmtp = lmtp
        self.greeting, self.ehlo_reply = greeting, ehlo_reply
        self.ehlo_extra, self.ehlo_drop = list(ehlo_extra), list(ehlo_drop)
        self.dsn, self.smtputf8, self.size_limit = dsn, smtputf8, size_limit
        self.mail_reply, self.rcpt_replies = mail_reply, dict(rcpt_replies or {})
        self.data_reply, self.lmtp_replies = data_reply, dict(lmtp_replies or {})
        self.defer_first, self.defer_reply, self.defer_at = defer_first, defer_reply, defer_at
        self.starttls, self.starttls_reply = starttls, starttls_reply
        self.require_starttls, self.implicit_tls = require_starttls, implicit_tls
        if (starttls or implicit_tls) and cert is None:
            cert, key = default_cert()
        self.cert, self.key = cert, key
        if isinstance(auth, str):
            auth = dict([auth.split(":", 1)])
        elif isinstance(auth, (tuple, list)):
            auth = {auth[0]: auth[1]}
        self.auth = auth
        self.auth_required, self.auth_require_tls = auth_required, auth_require_tls
        self.auth_mechanisms = auth_mechanisms
        self.timeout = timeout
        self.data_delay = data_delay
        self.open_now = self.max_open = 0   # connections open at once: now, and the most seen

        self.connections = []
        self.transactions = []
        self.errors = []
        self._protocols = set()
        self._handler = _Handler(self)
        self._loop = self._thread = self._server = None

    # -- records
    @property
    def messages(self):
        return [t for t in self.transactions if t.accepted]

    def wait_messages(self, n=1, timeout=10):
        assert wait_for(lambda: len(self.messages) >= n, timeout), \
            "expected %d message(s) at %s; transactions: %r" % (n, self.address, self.transactions)
        return self.messages

    def wait_connections(self, n=1, timeout=10):
        assert wait_for(lambda: len(self.connections) >= n, timeout), \
            "expected %d connection(s) at %s, got %d" % (n, self.address, len(self.connections))
        return self.connections

    @property
    def address(self):
        return self.path if self.path else (self.host, self.port)

    def _connected(self, proto, transport):
        conn = Connection(len(self.connections), transport.get_extra_info("peername"))
        self.connections.append(conn)
        self._protocols.add(proto)
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        return conn

    # -- server
    def _tls_context(self):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def _factory(self):
        kw = dict(peer=self, loop=self._loop, hostname=self.hostname, timeout=self.timeout,
                  data_size_limit=self.size_limit, enable_SMTPUTF8=self.smtputf8,
                  tls_context=self._starttls_ctx, require_starttls=self.require_starttls,
                  auth_required=self.auth_required, auth_require_tls=self.auth_require_tls,
                  authenticator=self._authenticate, ident="tern test peer")
        if self.auth is None:
            kw["auth_exclude_mechanism"] = ["PLAIN", "LOGIN"]
        elif self.auth_mechanisms is not None:
            want = {m.upper() for m in self.auth_mechanisms}
            kw["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN") if m not in want]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # "Requiring AUTH while not requiring TLS ..."
            return (_LmtpProto if self.lmtp else _SmtpProto)(self._handler, **kw)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = self.auth is not None and self.auth.get(user) == password
        conn = server._conn
        conn.auth_attempts.append((mechanism, user, ok))
        if ok:
            conn.auth_user, conn.auth_mechanism = user, mechanism
        return AuthResult(success=ok, handled=False, auth_data=user)

    def start(self):
        if self.port is None and self.path is None:
            self.port = shared_port(self.host)
        self._starttls_ctx = self._tls_context() if self.starttls else None
        implicit_ctx = self._tls_context() if self.implicit_tls else None
        self._loop = asyncio.new_event_loop()
        ready, failed = threading.Event(), []

        def run():
            asyncio.set_event_loop(self._loop)
            try:
                if self.path:
                    coro = self._loop.create_unix_server(self._factory, self.path, ssl=implicit_ctx)
                else:
                    coro = self._loop.create_server(self._factory, self.host, self.port,
                                                    ssl=implicit_ctx, reuse_address=True)
                self._server = self._loop.run_until_complete(coro)
            except BaseException as e:      # noqa: B902 - handed to the starting thread
                failed.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="peer-%s" % (self.address, ), daemon=True)
        self._thread.start()
        ready.wait(10)
        if failed:
            self._loop.close()
            self._loop = None
            raise failed[0]
        return self

    async def _shutdown(self):
        self._server.close()
        for proto in list(self._protocols):
            for t in (proto.transport, proto._original_transport):
                try:
                    if t is not None and not t.is_closing():
                        t.abort()
                except Exception:       # noqa: BLE001 - a half-dead TLS transport
                    pass
        await asyncio.sleep(0.01)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self):
        """Close the listener and every connection, end the thread.  Idempotent."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                loop.close()
            if self.path:
                try:
                    os.unlink(self.path)
                except OSError:
                    pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "Peer(%r%s)" % (self.address, ", lmtp" if self.lmtp else "")


@pytest.fixture
def peers():
    """A factory: peers(host="127.0.0.2", port=P, **behaviour) -> a started Peer (path=... for a
    unix socket).  Every peer is stopped at teardown, and the test fails if a peer's own code
    raised."""
    made = []

    def make(host="127.0.0.2", port=None, **behaviour):
        p = Peer(host, port, **behaviour)
        made.append(p)
        return p.start()

    yield make
    errors = []
    for p in made:
        p.stop()
        errors += ["%r: %r" % (p, e) for e in p.errors]
    assert not errors, "peer errors:\n" + "\n".join(errors)
