"""The real mailbox layout (no mailbox_base): passwd users, mail spool, ownership."""
import os
import pwd

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to deliver as another user")


@pytest.fixture
def spool():
    """A Debian-style spool (2775 root:mail) the recipient can reach (pytest's tmp is 0700)."""
    import grp
    import shutil
    import tempfile
    from pathlib import Path
    top = Path(tempfile.mkdtemp(prefix="tern-spool-", dir="/tmp"))
    os.chmod(top, 0o755)
    d = top / "mail"
    d.mkdir()
    os.chown(d, 0, grp.getgrnam("mail").gr_gid)
    os.chmod(d, 0o2775)
    yield d
    shutil.rmtree(top)


def test_mbox_in_spool_owned_by_user(make_tern, spool):
    """As root, mbox delivery goes to mail_spool_directory/USER, owned by that user."""
    t = make_tern(mailbox_base="", mailbox_format="mbox", mail_spool_directory=str(spool))
    with t.smtp() as s:
        s.sendmail("a@example.org", ["nobody@tern.test"], b"Subject: spool\r\n\r\nbody\r\n")
    box = spool / "nobody"
    from conftest import wait_for
    assert wait_for(lambda: box.exists() and box.stat().st_size > 0), t.log()
    st = box.stat()
    assert st.st_uid == pwd.getpwnam("nobody").pw_uid
    assert st.st_mode & 0o777 == 0o600
    data = box.read_bytes()
    assert data.startswith(b"From a@example.org  ")
    assert data.endswith(b"\nbody\n\n")


def test_unknown_unix_user_rejected(make_tern, tmp_path):
    """Without mailbox_base, a local part that is not a user or alias gets 550 5.1.1."""
    t = make_tern(mailbox_base="", mailbox_format="mbox", mail_spool_directory=str(tmp_path))
    r = t.raw()
    r.cmd("EHLO client.example", 250)
    r.cmd("MAIL FROM:<a@example.org>", 250)
    lines = r.cmd("RCPT TO:<no-such-user-xyz@tern.test>", 550)
    assert "5.1.1" in lines[0]
    r.cmd("RCPT TO:<nobody@tern.test>", 250)
    r.cmd("QUIT", 221)
