"""DSN reports built by dsn_build(), read back with Python's email package.

build/tests/test_dsn writes every report it builds to $TERN_DSN_DUMP/NAME.eml
(and the expected shape to NAME.expect); each one must parse as a proper
RFC 3464 / RFC 6522 multipart/report with RFC 6533 types under SMTPUTF8.
"""
import email
import email.policy
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TERN_BUILD", ROOT / "build"))
TEST_DSN = BUILD / "tests" / "test_dsn"

ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}
STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    if not TEST_DSN.exists():
        pytest.skip(f"{TEST_DSN} not built")
    out = tmp_path_factory.mktemp("dsn")
    env = dict(os.environ, TERN_DSN_DUMP=str(out))
    r = subprocess.run([str(TEST_DSN)], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    found = {}
    for eml in sorted(out.glob("*.eml")):
        expect = {}
        for line in eml.with_suffix(".expect").read_text().splitlines():
            k, _, v = line.partition("=")
            expect[k] = v
        found[eml.stem] = (eml.read_bytes(), expect)
    assert len(found) >= 10
    return found


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def status_blocks(part, raw, boundary):
    """The header blocks of a (global-)delivery-status part as Message objects."""
    if part.get_content_type() == "message/delivery-status":
        return part.get_payload()  # Python splits this type into its blocks itself
    # message/global-delivery-status is parsed as one message/*: split the raw part by hand
    delim = b"\n--" + boundary.encode() + b"\n"
    body = raw.split(delim)[2].split(b"\n\n", 1)[1]
    blocks = [b for b in re.split(rb"\n\n+", body.strip(b"\n")) if b.strip()]
    return [email.message_from_bytes(b + b"\n", policy=email.policy.default) for b in blocks]


def test_all_reports_parse(reports):
    for name, (raw, expect) in reports.items():
        check_report(name, raw, expect)


def check_report(name, raw, expect):
    utf8 = expect["smtputf8"] == "1"
    msg = parse(raw)
    assert not msg.defects, (name, msg.defects)
    assert msg.is_multipart(), name
    assert msg.get_content_type() == "multipart/report", name
    want_rt = "global-delivery-status" if utf8 else "delivery-status"
    assert msg.get_param("report-type") == want_rt, name
    assert msg["Auto-Submitted"] == "auto-replied", name
    assert msg["MIME-Version"] == "1.0", name
    assert msg["Subject"] in ("Undelivered Mail Returned to Sender", "Delayed Mail (still being retried)",
                              "Successful Mail Delivery Report"), name
    assert msg["Date"].datetime is not None, name
    assert str(msg["From"]).startswith("Mail Delivery System <MAILER-DAEMON@"), name
    for field in ("From", "To", "Subject", "Date", "Message-ID", "Content-Type"):
        assert len(msg.get_all(field)) == 1, (name, field)
    boundary = msg.get_boundary()
    assert boundary and len(boundary) <= 70, name

    parts = msg.get_payload()
    assert len(parts) == 3, name
    assert parts[0].get_content_type() == "text/plain", name
    assert parts[0].get_content_charset() == ("utf-8" if utf8 else "us-ascii"), name
    want2 = "message/global-delivery-status" if utf8 else "message/delivery-status"
    assert parts[1].get_content_type() == want2, name
    hdrs = expect["ret_hdrs"] == "1"
    if hdrs:
        want3 = "message/global-headers" if utf8 else "text/rfc822-headers"
    else:
        want3 = "message/global" if utf8 else "message/rfc822"
    assert parts[2].get_content_type() == want3, name

    text = parts[0].get_content()
    assert "This is the mail system at host mx.example.com." in text, name

    blocks = status_blocks(parts[1], raw, boundary)
    nrcpt = int(expect["nrcpt"])
    assert len(blocks) == nrcpt + 1, (name, len(blocks))
    per_msg = blocks[0]
    assert per_msg["Reporting-MTA"] == "dns; mx.example.com", name
    assert per_msg["X-Tern-Queue-ID"] == "0123456789AB", name
    assert per_msg["Arrival-Date"], name
    assert (per_msg["Original-Envelope-Id"] is not None) == (expect["envid"] == "1"), name
    orcpts = expect["orcpt"].split(",")
    for i, blk in enumerate(blocks[1:]):
        for field in ("Final-Recipient", "Action", "Status"):
            assert len(blk.get_all(field) or []) == 1, (name, i, field)
        assert blk["Action"] in ACTIONS, (name, blk["Action"])
        assert STATUS.match(str(blk["Status"])), (name, blk["Status"])
        assert re.match(r"^(rfc822|utf-8); \S", str(blk["Final-Recipient"])), name
        assert len(blk.get_all("Original-Recipient") or []) == (1 if orcpts[i] == "1" else 0), (name, i)
        for field in ("Remote-MTA", "Diagnostic-Code", "Last-Attempt-Date"):
            assert len(blk.get_all(field) or []) <= 1, (name, i, field)
        for key in blk.keys():
            assert not key.lower().startswith("x-evil") and key.lower() != "x-injected", (name, key)
        assert blk.get_payload() in ("", None), (name, i)

    for key in msg.keys():
        assert not key.lower().startswith("x-evil") and key.lower() not in ("x-injected", "bcc"), (name, key)
    # nothing the report wrote itself has a bare control character
    own = raw[: raw.index(b"--" + boundary.encode() + b"\nContent-Description: " +
                          str(parts[2]["Content-Description"]).encode())]
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", own), name


def test_original_and_headers(reports):
    raw, _ = reports["failed_one"]
    orig = parse(raw).get_payload()[2].get_payload()[0]
    assert orig["Subject"] == "hi"
    assert "body line 1" in orig.get_content()
    raw, _ = reports["ret_hdrs"]
    part = parse(raw).get_payload()[2]
    body = part.get_payload()
    assert "Subject: hi" in body and "body line" not in body


def test_injection_stays_in_one_field(reports):
    raw, _ = reports["injection"]
    msg = parse(raw)
    assert msg.get_all("Bcc") is None
    blk = status_blocks(msg.get_payload()[1], raw, msg.get_boundary())[1]
    diag = str(blk["Diagnostic-Code"])
    assert diag.startswith("smtp; 550 5.1.1 no") and "X-Injected: yes" in diag and "From: evil" in diag
    assert blk["Action"] == "failed"
    assert "X-Evil-Rcpt: 1" in str(blk["Final-Recipient"])


def test_boundary_collision(reports):
    raw, _ = reports["boundary_collision"]
    msg = parse(raw)
    assert msg.get_boundary() != "0123456789AB.1767225600/mx.example.com"
    assert len(msg.get_payload()) == 3
    inner = msg.get_payload()[2].get_payload()[0]
    assert "fake part" in inner.get_content()


def test_smtputf8(reports):
    raw, _ = reports["smtputf8_full"]
    msg = parse(raw)
    blk = status_blocks(msg.get_payload()[1], raw, msg.get_boundary())[1]
    assert str(blk["Final-Recipient"]) == "utf-8; m\u00fcller@example.net"
    assert "J\u00f6rg" in raw.decode("utf-8")
