"""Test harness: start a real ternd with a private configuration.

Every test that needs a server asks for the `tern` fixture (fresh daemon,
fresh queue and mailboxes, random port) or builds one with `make_tern(**settings)`.
The daemon is stopped with SIGTERM at the end of the test and must exit 0.
"""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TERN_BUILD", ROOT / "build"))
TERND = BUILD / "ternd"
TERNCTL = BUILD / "ternctl"


def free_port():
    """A free loopback port below the kernel's ephemeral range (32768-60999), so that no
    outgoing connection's source port can take it between now and ternd's bind()."""
    import random
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_for(pred, timeout=10.0, interval=0.02):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


class Raw:
    """A raw SMTP connection: send exact bytes, read exact replies."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def reply(self):
        """Read one (possibly multi-line) reply; returns (code, text-lines)."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; got %r" % (lines, ))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            line = line.decode("utf-8", "replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def expect(self, code):
        got, lines = self.reply()
        assert got == code, "expected %d, got %r" % (code, lines)
        return lines

    def cmd(self, line, code):
        self.send(line + "\r\n")
        return self.expect(code)

    def closed(self, timeout=5):
        """True if the server closed the connection (after any pending replies)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


class Tern:
    def __init__(self, tmp, **settings):
        self.dir = Path(tmp)
        self.port = free_port()
        self.queue = self.dir / "queue"
        self.mail = self.dir / "mail"
        self.conf = self.dir / "tern.conf"
        self.logfile = self.dir / "tern.log"
        self.aliases = self.dir / "aliases"
        self.proc = None
        base = {
            "myhostname": "mx.tern.test",
            "mydomain": "tern.test",
            "mydestination": "$myhostname, tern.test, localhost",
            "mynetworks": "127.0.0.0/8",
            "smtp_listen": "127.0.0.1:%d" % self.port,
            "queue_directory": str(self.queue),
            "mailbox_format": "maildir",
            "mailbox_base": str(self.mail),
            "alias_maps": str(self.aliases),
            "log_file": str(self.logfile),
            "queue_retry_interval": "1s",
            "maximal_backoff_time": "2s",
            # tests never query the system resolver (no internet); test_dns.py runs its own
            "smtpd_peername_lookup": "no",
            # outbound MX lookups go nowhere unless a test starts its own DNS (peers.DnsZone)
            "dns_nameservers": "127.0.0.1:9",
        }
        base.update({k: str(v) for k, v in settings.items()})
        self.settings = base
        if not self.aliases.exists():
            self.aliases.write_text("postmaster: root\nroot: alice\nteam: alice, bob\n")
        self.write_conf()

    def write_conf(self):
        self.conf.write_text("".join("%s = %s\n" % kv for kv in self.settings.items()))

    def start(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.stderr = open(self.dir / "stderr.txt", "ab")
        self.proc = subprocess.Popen([str(TERND), "-c", str(self.conf)], stdout=self.stderr,
                                     stderr=self.stderr, env=env)

        # every listener must answer: the kernel accepts on the first one as soon as it
        # listens, before ternd has opened the others
        ports = []
        for name in ("smtp_listen", "submission_listen", "smtps_listen"):
            for item in self.settings.get(name, "").replace(",", " ").split():
                ports.append(int(item.rsplit(":", 1)[1]))

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("ternd exited: %s" % self.read_stderr())
            try:
                for port in ports:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        assert wait_for(up, 15), "ternd did not start"
        return self

    def read_stderr(self):
        p = self.dir / "stderr.txt"
        return p.read_text(errors="replace") if p.exists() else ""

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def raw(self, greet=True):
        r = Raw(self.port)
        if greet:
            r.expect(220)
        return r

    def smtp(self):
        import smtplib
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10)

    def mailbox(self, user):
        """Delivered messages of a Maildir user, oldest first, as bytes."""
        new = self.mail / user / "new"
        if not new.is_dir():
            return []
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        return [p.read_bytes() for p in files]

    def wait_mail(self, user, n=1, timeout=10):
        assert wait_for(lambda: len(self.mailbox(user)) >= n, timeout), \
            "expected %d message(s) for %s; log:\n%s" % (n, user, self.log())
        return self.mailbox(user)

    def queued(self):
        d = self.queue / "msg"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def ternctl(self, *args):
        return subprocess.run([str(TERNCTL), "-c", str(self.conf), *args], capture_output=True,
                              text=True, timeout=30)

    def stop(self, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("ternd did not stop on SIGTERM")
        return rc

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        # the delivery workers notice EOF and exit by themselves
        time.sleep(0.2)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)


@pytest.fixture
def make_tern(tmp_path):
    servers = []

    def make(start=True, **settings):
        d = tmp_path / ("t%d" % len(servers))
        d.mkdir()
        t = Tern(d, **settings)
        servers.append(t)
        return t.start() if start else t

    yield make
    failures = []
    for t in servers:
        rc = t.stop()
        if rc != 0:
            failures.append("ternd exited %s; stderr:\n%s" % (rc, t.read_stderr()[-4000:]))
        err = t.read_stderr()
        if "ERROR: AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err:
            failures.append("sanitizer report:\n" + err[-6000:])
    assert not failures, "\n".join(failures)


@pytest.fixture
def tern(make_tern):
    return make_tern()
