"""A private Postfix instance as an SMTP peer for the end-to-end tests.

    peer = PostfixPeer(tmp_dir, port=free_port()).start()
    ... tern delivers to peer.host:peer.port ...
    peer.wait_mail("bob@pf.example", 1)      # -> [bytes, ...], oldest first
    peer.stop()

or, in a test, the `postfix_peer` factory fixture, which stops every instance it made
(import it into the test module: `from postfix_peer import postfix_peer  # noqa: F401`):

    def test_x(postfix_peer):
        peer = postfix_peer(port=None, domains=("pf.example",))

The instance is entirely its own (the recipe of bench/run): its own config directory,
queue_directory, data_directory and maillog_file; a master.cf with one smtpd on host:port and only
the services needed to receive and deliver locally; mydestination empty and every user of the
given domains accepted and delivered by virtual(8), as `nobody`, into one Maildir per domain,
<vmail>/<domain>/ (virtual(8) refuses regexp $1 substitutions, so a per-user Maildir would need a
list of users; each recipient gets its own copy with its own Delivered-To:, which messages()
selects by).  It never relays (default_transport = error, no smtp service in master.cf) and never
uses DNS.  Messages are stored as Postfix stores them: with LF line ends, and Return-Path:,
X-Original-To:, Delivered-To: and Received: prepended.

The system instance and /etc/postfix are neither used nor modified: the postfix command only
reads /etc/postfix/postfix-files (and /etc/postfix/main.cf, if it exists, for
multi_instance_directories).

Postfix needs root to start.  virtual(8) writes as `nobody`, which must be able to traverse the
instance directory's parents; pytest's tmp_path lives under /tmp/pytest-of-<user>/ (mode 0700),
so when `tmpdir` is not reachable by others the instance runs in a fresh /tmp/tern-postfix-*
directory, and stop() copies its configuration, log and Maildirs to <tmpdir>/postfix and removes
it.  `peer.dir` is where the instance currently is.
"""
import grp
import os
import pty
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"
DAEMON_DIR = "/usr/lib/postfix/sbin"
MASTER = DAEMON_DIR + "/master"
REQUIRED = (POSTFIX, "/usr/sbin/postconf", POSTQUEUE, MASTER, DAEMON_DIR + "/postfix-script",
            DAEMON_DIR + "/smtpd", DAEMON_DIR + "/cleanup", DAEMON_DIR + "/qmgr",
            DAEMON_DIR + "/virtual", DAEMON_DIR + "/postlogd")
DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
NO_RELAY = "error:5.7.1 private Postfix test instance, no relaying"


def missing_binaries():
    """The Postfix programs this peer needs that are not installed (empty if all are)."""
    return [p for p in REQUIRED if not os.access(p, os.X_OK)]


def require_postfix():
    """Fail (never skip) with a clear message if Postfix is not installed."""
    missing = missing_binaries()
    if missing:
        pytest.fail("Postfix is not installed (missing: %s): run scripts/install-deps "
                    "(as root, or with sudo) to install it" % ", ".join(missing), pytrace=False)


def free_port(host="127.0.0.1"):
    """A free port on host below the kernel's ephemeral range (as conftest.free_port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port on %s" % host)


def delivered_to(message):
    """The first Delivered-To: address in a message's header, lower case (or None)."""
    header = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]
    m = re.search(rb"^Delivered-To:[ \t]*<?([^\s>]+)", header, re.M | re.I)
    return m.group(1).decode("utf-8", "replace").lower() if m else None


def _reachable_by_others(path):
    """True if every directory from / down to path can be traversed by any user."""
    p = Path(path).resolve()
    return all(os.stat(d).st_mode & stat.S_IXOTH for d in (p, *p.parents))


def _proc_info(pid):
    """(session id, executable) of a live process; None if it is gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[3]), exe


def _is_postfix_program(exe):
    return exe.startswith(DAEMON_DIR + "/") or exe.startswith("/usr/sbin/post")


class PostfixPeer:
    def __init__(self, tmpdir, host="127.0.0.1", port=None, domains=("pf.example",)):
        if isinstance(domains, str):
            domains = (domains,)
        self.domains = tuple(d.lower().rstrip(".") for d in domains)
        if not self.domains:
            raise ValueError("no domains")
        for d in self.domains:
            if not DOMAIN_RE.match(d):
                raise ValueError("bad domain %r" % d)
        self.tmpdir = Path(tmpdir)
        self.host = host
        self.port = port or free_port(host)
        self.external = not _reachable_by_others(self.tmpdir)
        self.dir = None                 # where the instance lives (set by start())
        self.master_pid = None
        self.started = False
        self.output = ""                # what `postfix start` and `postfix stop` printed

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- paths (valid once start() has run) ----
    @property
    def conf_dir(self):
        return self.dir / "conf"

    @property
    def queue_dir(self):
        return self.dir / "queue"

    @property
    def data_dir(self):
        return self.dir / "data"

    @property
    def vmail(self):
        return self.dir / "vmail"

    @property
    def logfile(self):
        return self.dir / "maillog"

    @property
    def address(self):
        return (self.host, self.port)

    def _layout(self):
        if self.external:
            self.dir = Path(tempfile.mkdtemp(prefix="tern-postfix-", dir="/tmp"))
        else:
            self.dir = self._home()
            self.dir.mkdir()
        os.chmod(self.dir, 0o755)       # the Postfix daemons and virtual(8) (as nobody) walk it
        for d in (self.conf_dir, self.queue_dir, self.data_dir, self.vmail):
            d.mkdir(mode=0o755)
        pf = pwd.getpwnam("postfix")
        nobody = pwd.getpwnam("nobody")
        try:
            nogroup = grp.getgrnam("nogroup").gr_gid
        except KeyError:
            nogroup = nobody.pw_gid
        os.chown(self.data_dir, pf.pw_uid, pf.pw_gid)
        os.chown(self.vmail, nobody.pw_uid, nogroup)
        # any user of each domain -> that domain's Maildir (the trailing slash selects Maildir)
        rules = "".join("/@%s$/\t%s/\n" % (d.replace(".", "\\."), d) for d in self.domains)
        (self.conf_dir / "vmailbox.regexp").write_text(rules)
        ipv6 = ":" in self.host
        main = {
            "compatibility_level": "3.6",
            "config_directory": self.conf_dir,
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "peer.postfix.test",
            "mydomain": "postfix.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            # master.cf names host:port itself; inet_interfaces must be addresses of an
            # interface (127.0.0.2 is not one: "no local interface found for 127.0.0.2")
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv6" if ipv6 else "ipv4",
            "mynetworks": "127.0.0.0/8 [::1]/128",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            # no DNS, ever: no reverse lookups of clients, and nothing leaves (no smtp service
            # in master.cf; mail for other domains, bounces included, dies in the error transport)
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            "default_transport": NO_RELAY,
            "relay_transport": NO_RELAY,
            "relayhost": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "in_flow_delay": "0s",
            "virtual_mailbox_domains": ", ".join(self.domains),
            "virtual_mailbox_base": self.vmail,
            "virtual_mailbox_maps": "regexp:%s" % (self.conf_dir / "vmailbox.regexp"),
            "virtual_uid_maps": "static:%d" % nobody.pw_uid,
            "virtual_gid_maps": "static:%d" % nogroup,
            # postfix start works without syslog: postlogd (master.cf) writes this file
            "maillog_file": self.logfile,
            "maillog_file_prefixes": self.dir,
        }
        (self.conf_dir / "main.cf").write_text(
            "# private test instance (tests/e2e/postfix_peer.py)\n"
            + "".join("%s = %s\n" % kv for kv in main.items()))
        listen = "[%s]:%d" % (self.host, self.port) if ipv6 else "%s:%d" % (self.host, self.port)
        # only what receiving and virtual delivery need, nothing chrooted (the queue is a temp dir)
        (self.conf_dir / "master.cf").write_text(
            "%-20s inet n - n - - smtpd\n" % listen
            + "cleanup   unix  n - n - 0 cleanup\n"
              "qmgr      unix  n - n 300 1 qmgr\n"
              "rewrite   unix  - - n - - trivial-rewrite\n"
              "bounce    unix  - - n - 0 bounce\n"
              "defer     unix  - - n - 0 bounce\n"
              "trace     unix  - - n - 0 bounce\n"
              "flush     unix  n - n 1000? 0 flush\n"
              "showq     unix  n - n - - showq\n"
              "error     unix  - - n - - error\n"
              "retry     unix  - - n - - error\n"
              "discard   unix  - - n - - discard\n"
              "virtual   unix  - n n - - virtual\n"
              "anvil     unix  - - n - 1 anvil\n"
              "postlog   unix-dgram n - n - 1 postlogd\n")
        # every Postfix program pauses (0.3 s at a time) until main.cf is more than a second
        # old, to "let it cool down": age the files instead of waiting ~2 s
        past = time.time() - 10
        for f in self.conf_dir.iterdir():
            os.utime(f, (past, past))

    def _postfix(self, *args):
        try:
            r = subprocess.run([POSTFIX, "-c", str(self.conf_dir), *args],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=30)
        except subprocess.TimeoutExpired as e:
            self.output += "postfix %s: timed out\n" % " ".join(args)
            return e
        self.output += r.stdout + r.stderr
        return r

    def _diagnose(self):
        """`postfix check` on a pseudo-terminal: the postfix command reports its fatal errors
        to stderr only if stderr is a terminal (otherwise to syslog, which may not exist)."""
        m, s = pty.openpty()
        try:
            subprocess.run([POSTFIX, "-c", str(self.conf_dir), "check"], stdin=subprocess.DEVNULL,
                           stdout=s, stderr=s, timeout=30)
        except subprocess.TimeoutExpired:
            pass
        finally:
            os.close(s)
        out = b""
        while True:
            try:
                chunk = os.read(m, 65536)
            except OSError:                 # EIO: no writer is left
                break
            if not chunk:
                break
            out += chunk
        os.close(m)
        return out.decode("utf-8", "replace").replace("\r\n", "\n")

    def start(self):
        require_postfix()
        if os.geteuid() != 0:
            raise RuntimeError("a private Postfix instance needs root (the postfix command "
                               "is reserved for the superuser)")
        assert not self.started, "already started"
        self._layout()
        r = self._postfix("start")
        if getattr(r, "returncode", 1) != 0:
            try:
                self._kill_leftovers(grace=1)
                self.output += self._diagnose()
            finally:
                self._bring_home()
            raise RuntimeError("postfix start failed (instance in %s):\n%s\nmaillog:\n%s"
                               % (self.dir, self.output, self.log()))
        self.started = True
        self.master_pid = self._read_pid()
        # `postfix start` returns once master has initialised, so its listener is bound; check
        # by bind() rather than by connecting (no spurious session in the log)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family) as s:
            try:
                s.bind(self.address)
                bound = False
            except OSError:
                bound = True
        if not bound:
            self.stop()
            raise RuntimeError("private Postfix does not listen on %s port %d; maillog:\n%s"
                               % (self.host, self.port, self.log()))
        return self

    def _read_pid(self):
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def processes(self):
        """Live processes of this instance: its master (by pid file, or by the MAIL_CONFIG the
        postfix command gave it) and the Postfix programs in the master's session."""
        if self.dir is None:
            return []
        conf = ("MAIL_CONFIG=%s" % self.conf_dir).encode()
        leaders = {p for p in (self.master_pid, self._read_pid()) if p}
        procs = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                info = _proc_info(int(entry))
                if info and _is_postfix_program(info[1]):
                    procs[int(entry)] = info
        for pid, (_, exe) in procs.items():
            if exe == MASTER and pid not in leaders:
                try:
                    with open("/proc/%d/environ" % pid, "rb") as f:
                        if conf in f.read().split(b"\0"):
                            leaders.add(pid)
                except OSError:
                    pass
        return sorted(pid for pid, (sid, exe) in procs.items()
                      if sid in leaders or (pid in leaders and exe == MASTER))

    def _kill_leftovers(self, grace=5.0):
        """Wait up to grace seconds for the instance's processes to go, then SIGKILL the rest;
        returns the pids that had to be killed."""
        end = time.monotonic() + grace
        while self.processes() and time.monotonic() < end:
            time.sleep(0.05)
        killed = self.processes()
        for pid in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 5
        while self.processes() and time.monotonic() < end:
            time.sleep(0.05)
        left = self.processes()
        if left:
            raise RuntimeError("Postfix processes survive SIGKILL: %s" % left)
        return killed

    def stop(self):
        """`postfix stop`, then make sure no process of the instance is left (SIGKILL if need
        be).  Returns the pids that had to be killed (normally none).  Idempotent."""
        if not self.started:
            return []
        self.started = False
        self._postfix("stop")
        try:
            return self._kill_leftovers()
        finally:
            self._bring_home()

    def _home(self):
        """<tmpdir>/postfix, or postfix.1, postfix.2, ... if taken."""
        home, n = self.tmpdir / "postfix", 0
        while home.exists() or home.is_symlink():
            n += 1
            home = self.tmpdir / ("postfix.%d" % n)
        return home

    def _bring_home(self):
        """An instance outside tmpdir: copy config, log and Maildirs to <tmpdir>/postfix."""
        if not self.external or self.dir is None or not self.dir.exists():
            return
        home = self._home()
        shutil.copytree(self.dir, home, symlinks=True,
                        ignore=lambda d, names: ["queue", "data"] if Path(d) == self.dir else [])
        shutil.rmtree(self.dir)
        self.dir = home

    # ---- what arrived ----
    def messages(self, addr):
        """Messages delivered to addr (user@domain, any case), oldest first, as bytes: the
        files in <vmail>/<domain>/new/ whose (first) Delivered-To: header is addr."""
        addr = addr.lower()
        if self.dir is None:
            return []
        new = self.vmail / addr.rpartition("@")[2] / "new"
        if not new.is_dir():
            return []
        files = sorted(new.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [data for data in (p.read_bytes() for p in files) if delivered_to(data) == addr]

    mailbox = messages

    def wait_mail(self, addr, n=1, timeout=10):
        """Wait until addr has at least n messages; returns them all."""
        end = time.monotonic() + timeout
        while len(self.messages(addr)) < n and time.monotonic() < end:
            time.sleep(0.02)
        got = self.messages(addr)
        assert len(got) >= n, "expected %d message(s) for %s at the Postfix peer, got %d; " \
            "queue:\n%s\nmaillog:\n%s" % (n, addr, len(got), self.mailq(), self.log())
        return got

    def log(self):
        """The instance's maillog text."""
        if self.dir is None or not self.logfile.exists():
            return ""
        return self.logfile.read_text(errors="replace")

    def mailq(self):
        """`postqueue -p` (what is still queued), or '' when not running."""
        if not self.started:
            return ""
        r = subprocess.run([POSTQUEUE, "-c", str(self.conf_dir), "-p"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
        return r.stdout + r.stderr


@pytest.fixture
def postfix_peer(tmp_path):
    """Factory: postfix_peer(host="127.0.0.1", port=None, domains=("pf.example",), start=True)
    -> PostfixPeer.  Fails if Postfix is missing; skips, saying why, when not run as root.
    At teardown every instance is stopped; one that left processes to SIGKILL fails the test."""
    require_postfix()
    peers = []

    def make(host="127.0.0.1", port=None, domains=("pf.example",), start=True):
        if os.geteuid() != 0:
            pytest.skip("a private Postfix instance needs root (the postfix command is "
                        "reserved for the superuser)")
        d = tmp_path / ("postfix%d" % len(peers))
        d.mkdir()
        peer = PostfixPeer(d, host=host, port=port, domains=domains)
        peers.append(peer)
        return peer.start() if start else peer

    yield make
    errors = []
    for peer in peers:
        try:
            killed = peer.stop()
            if killed:
                errors.append("Postfix on port %d left processes behind, SIGKILLed: %s\n%s"
                              % (peer.port, killed, peer.output))
        except Exception as e:  # noqa: BLE001 - stop the others all the same
            errors.append("Postfix on port %d: %s" % (peer.port, e))
    assert not errors, "\n".join(errors)
