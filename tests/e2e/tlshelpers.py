"""Helpers for the TLS, AUTH and submission end-to-end tests.

Certificates are made with the openssl command line once per test session (fixture `certs`),
AUTH password files with Python's crypt module (sha512-crypt).  `TlsRaw` is the conftest `Raw`
connection with STARTTLS / implicit TLS added: after `starttls()` the same `send`/`reply`/
`expect`/`cmd` methods work over TLS.
"""
import base64
import hashlib
import os
import re
import socket
import ssl
import subprocess
import warnings
from pathlib import Path

import pytest

from conftest import Raw, free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # noqa: E402  (deprecated in 3.11, still the way to make crypt(3) hashes)

# users of the password file made by `tls_server`
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol secret!",
             "erin@other.example": "erin-secret"}


# ---- certificates --------------------------------------------------------

def openssl(*args, **kw):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, **kw)
    assert r.returncode == 0, "openssl %s failed:\n%s%s" % (" ".join(args), r.stdout, r.stderr)
    return r


def self_signed(directory, cn="mx.tern.test", name=None):
    """A self-signed RSA certificate; returns (cert_path, key_path)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    name = name or cn
    cert, key = d / ("%s.crt" % name), d / ("%s.key" % name)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % cn, "-days", "2",
            "-keyout", str(key), "-out", str(cert))
    os.chmod(key, 0o600)
    return cert, key


def ca_chain(directory, cn="mx.tern.test"):
    """A CA and a leaf signed by it; returns (chain_path, key_path, ca_path, leaf_path), the chain
    file holding the leaf first, then the CA."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key = d / "ca.crt", d / "ca.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=Tern Test Intermediate CA",
            "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(ca_key), "-out", str(ca_crt))
    leaf_key, csr, leaf = d / "leaf.key", d / "leaf.csr", d / "leaf.crt"
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % cn,
            "-keyout", str(leaf_key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-out", str(leaf))
    chain = d / "chain.pem"
    chain.write_text(leaf.read_text() + ca_crt.read_text())
    os.chmod(leaf_key, 0o600)
    return chain, leaf_key, ca_crt, leaf


def cert_der(path):
    """DER bytes of the first certificate of a PEM file."""
    pem = Path(path).read_text()
    first = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S).group(0)
    return ssl.PEM_cert_to_DER_cert(first)


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """Session-wide certificates: self-signed 'mx.tern.test' (cert, key), a second self-signed
    one with another CN for reload tests, and a leaf + intermediate chain file."""
    d = tmp_path_factory.mktemp("certs")
    main = self_signed(d, "mx.tern.test", "main")
    other = self_signed(d, "reloaded.tern.test", "other")
    chain = ca_chain(d / "chain", "chain.tern.test")
    return {"cert": main[0], "key": main[1], "other_cert": other[0], "other_key": other[1],
            "chain": chain[0], "chain_key": chain[1], "chain_ca": chain[2], "chain_leaf": chain[3]}


# ---- passwords -----------------------------------------------------------

def write_passwords(path, users):
    """A "user:hash" password file (sha512-crypt), mode 0640."""
    lines = "".join("%s:%s\n" % (u, crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA512)))
                    for u, pw in users.items())
    Path(path).write_text(lines)
    os.chmod(path, 0o640)
    return Path(path)


@pytest.fixture(scope="session")
def password_file(tmp_path_factory):
    return write_passwords(tmp_path_factory.mktemp("auth") / "passwd", PASSWORDS)


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def plain(user, password, authzid=""):
    """The base64 SASL PLAIN message authzid NUL authcid NUL passwd."""
    return b64("%s\0%s\0%s" % (authzid, user, password))


# ---- servers -------------------------------------------------------------

def tls_server(make_tern, certs, password_file=None, start=True, **settings):
    """A tern with port 25 + submission + smtps listeners, the session certificate and (if
    given) the AUTH password file.  Ports are on the returned object: .port, .sub_port,
    .smtps_port."""
    sub, smtps = free_port(), free_port()
    base = {
        "submission_listen": "127.0.0.1:%d" % sub,
        "smtps_listen": "127.0.0.1:%d" % smtps,
        "smtpd_tls_cert_file": str(certs["cert"]),
        "smtpd_tls_key_file": str(certs["key"]),
    }
    if password_file is not None:
        base["smtpd_sasl_password_file"] = str(password_file)
    base.update(settings)
    t = make_tern(start=start, **base)
    t.sub_port, t.smtps_port = sub, smtps
    return t


# ---- clients -------------------------------------------------------------

def client_ctx(minimum=None, maximum=None, ciphers=None):
    """A client context that does not verify the server (self-signed test certificates)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 on purpose
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


class TlsRaw(Raw):
    """conftest.Raw plus TLS: starttls() after a 220, or implicit TLS with tls=True."""

    def __init__(self, port, tls=False, ctx=None, timeout=10):
        super().__init__(port, timeout=timeout)
        if tls:
            self.wrap(ctx)

    def wrap(self, ctx=None):
        assert self.buf == b"", "unread plaintext before the TLS handshake: %r" % self.buf
        self.sock = (ctx or client_ctx()).wrap_socket(self.sock, server_hostname="mx.tern.test")
        return self.sock

    def starttls(self, ctx=None):
        self.cmd("STARTTLS", 220)
        return self.wrap(ctx)

    def ehlo(self, name="client.example"):
        self.send("EHLO %s\r\n" % name)
        return self.expect(250)

    def starttls_coalesced(self, payload, ctx=None):
        """STARTTLS, then a handshake whose last client flight (Finished) and the first
        application data (payload) leave in ONE write, as OpenSSL-based clients with buffered
        BIOs or a busy server's socket buffer produce them.  Afterwards the session goes on
        through the same send/reply methods."""
        self.cmd("STARTTLS", 220)
        assert self.buf == b""
        bio = _BioSock(self.sock, ctx or client_ctx())
        bio.handshake()
        bio.obj.write(payload.encode() if isinstance(payload, str) else payload)
        self.sock.sendall(bio.out.read())
        self.sock = bio
        return bio

    def closed(self, timeout=5):
        """True if the server closed the connection (after any pending replies); over TLS an
        unclean close (no close_notify) counts as closed too."""
        try:
            return super().closed(timeout)
        except (ssl.SSLError, OSError):
            return True

    def auth_plain(self, user, password, code=235):
        return self.cmd("AUTH PLAIN %s" % plain(user, password), code)


class _BioSock:
    """A TLS client over ssl.MemoryBIO on a plain socket, with the socket methods Raw uses, so
    that the test decides what leaves in which write."""

    def __init__(self, sock, ctx):
        self.raw = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=False, server_hostname="mx.tern.test")

    def handshake(self):
        """Run the handshake, but keep the client's final flight in self.out (unsent)."""
        while True:
            try:
                self.obj.do_handshake()
                return
            except ssl.SSLWantReadError:
                data = self.out.read()
                if data:
                    self.raw.sendall(data)
                chunk = self.raw.recv(65536)
                if not chunk:
                    raise EOFError("closed during the TLS handshake")
                self.inc.write(chunk)

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                chunk = self.raw.recv(65536)
                if not chunk:
                    return b""
                self.inc.write(chunk)
            except ssl.SSLZeroReturnError:
                return b""

    def sendall(self, data):
        self.obj.write(data)
        self.raw.sendall(self.out.read())

    def settimeout(self, t):
        self.raw.settimeout(t)

    def version(self):
        return self.obj.version()

    def close(self):
        self.raw.close()


def connect(port, tls=False, greet=True, ctx=None):
    r = TlsRaw(port, tls=tls, ctx=ctx)
    if greet:
        r.expect(220)
    return r


def submission_session(port, user="alice", password=None, tls="starttls", ehlo=True):
    """An authenticated session on a submission (tls='starttls') or smtps (tls='implicit')
    port, ready for MAIL FROM."""
    r = connect(port, tls=(tls == "implicit"))
    if tls == "starttls":
        r.ehlo()
        r.starttls()
    r.ehlo()
    r.auth_plain(user, password if password is not None else PASSWORDS[user])
    return r


def ehlo_keywords(lines):
    """The EHLO keywords (first word of each line after the greeting line), upper case."""
    return [ln[4:].split(" ")[0].upper() for ln in lines[1:]]


def auth_mechs(lines):
    for ln in lines[1:]:
        words = ln[4:].upper().split()
        if words and words[0] == "AUTH":
            return words[1:]
    return None


def peer_cert_der(port, tls="starttls", ctx=None):
    """The DER certificate a new connection to port presents (STARTTLS or implicit TLS)."""
    r = connect(port, tls=(tls == "implicit"), ctx=ctx)
    try:
        if tls == "starttls":
            r.ehlo()
            r.starttls(ctx)
        return r.sock.getpeercert(binary_form=True)
    finally:
        r.close()


def cert_subject_cn(der):
    """The CN of a DER certificate, via openssl x509."""
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                       capture_output=True, timeout=30)
    m = re.search(rb"CN\s*=\s*([^,/\n]+)", r.stdout)
    return m.group(1).decode().strip() if m else None


def is_closed(sock, timeout=5):
    """True if the peer closed the connection (reads nothing more)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except (socket.timeout, TimeoutError):
        return False
    except (ConnectionResetError, ssl.SSLError, OSError):
        return True


# ---- delivered messages --------------------------------------------------

def received_header(msg):
    """The first Received: header of a delivered message (with its continuation lines), as
    bytes without the final newline."""
    lines = msg.split(b"\n")
    for i, ln in enumerate(lines):
        if ln.startswith(b"Received:"):
            j = i + 1
            while j < len(lines) and lines[j][:1] in (b" ", b"\t"):
                j += 1
            return b"\n".join(lines[i:j])
    raise AssertionError("no Received: header in %r" % msg[:800])


def after_received(msg):
    """What follows the trace block (Return-Path, Delivered-To, the first Received:): the
    message as the client sent it, with tern's additions, LF line ends."""
    rec = received_header(msg)
    i = msg.index(rec) + len(rec) + 1
    return msg[i:]


def header_block(msg):
    """The header lines of a delivered message (trace block included), up to the blank line."""
    return msg.split(b"\n\n", 1)[0]


def send_text(raw, sender, rcpts, text):
    """MAIL/RCPT/DATA on an open session; returns the queue id (250 expected)."""
    raw.cmd("MAIL FROM:<%s>" % sender, 250)
    for rc in rcpts:
        raw.cmd("RCPT TO:<%s>" % rc, 250)
    raw.cmd("DATA", 354)
    raw.send(text + b".\r\n")
    code, lines = raw.reply()
    assert code == 250, lines
    m = re.fullmatch(r"250 2\.0\.0 Ok: queued as ([0-9A-F]{12})", lines[-1])
    assert m, lines
    return m.group(1)
