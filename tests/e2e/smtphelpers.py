"""Shared helpers for the end-to-end tests (raw SMTP transactions, mailbox parsing)."""
import email.utils
import re
import socket
import time

QID_RE = re.compile(r"250 2\.0\.0 Ok: queued as ([0-9A-F]{12})$")

# Received: from HELO (NAME [IP])\n\tby HOST (tern) with PROTO id QID[\n\tfor <RCPT>]; DATE\n
RECEIVED_RE = re.compile(
    rb"Received: from (?P<helo>[!-~]+) \((?P<name>[!-~]+) \[(?P<ip>[0-9a-fA-F.:]+)\]\)\n"
    rb"\tby (?P<by>[!-~]+) \(tern\) with (?P<proto>[A-Z0-9]+) id (?P<qid>[0-9A-F]{12})"
    rb"(?:\n\tfor <(?P<rcpt>[^>\n]+)>)?; (?P<date>[^\n]+)\n")


def queued_id(lines):
    """The queue id of a '250 2.0.0 Ok: queued as QID' reply (its lines), or fail."""
    m = QID_RE.fullmatch(lines[-1])
    assert m, "not a queued reply: %r" % lines
    return m.group(1)


def ehlo(raw, name="client.example"):
    raw.send("EHLO %s\r\n" % name)
    return raw.expect(250)


def transaction(raw, sender, rcpts, text, mail_params=""):
    """MAIL/RCPT/DATA on an open raw session; text is sent as given (must be dot-stuffed and
    end with CRLF).  Returns the (code, lines) of the final reply."""
    raw.cmd("MAIL FROM:<%s>%s" % (sender, (" " + mail_params) if mail_params else ""), 250)
    for r in rcpts:
        raw.cmd("RCPT TO:<%s>" % r, 250)
    raw.cmd("DATA", 354)
    raw.send(text + b".\r\n")
    return raw.reply()


def send_message(tern, sender, rcpts, text, mail_params="", helo="client.example"):
    """One whole session; returns the queue id of the accepted message."""
    raw = tern.raw()
    try:
        ehlo(raw, helo)
        code, lines = transaction(raw, sender, rcpts, text, mail_params)
        assert code == 250, lines
        raw.cmd("QUIT", 221)
        return queued_id(lines)
    finally:
        raw.close()


def no_more_data(raw, wait=0.5):
    """Whatever the server sends within `wait` seconds beyond what was read (b'' if none)."""
    raw.sock.settimeout(wait)
    try:
        while True:
            chunk = raw.sock.recv(65536)
            if not chunk:
                break
            raw.buf += chunk
    except (socket.timeout, TimeoutError, ConnectionResetError):
        pass
    return raw.buf


def parse_received(msg):
    """The first Received: header of a delivered message as a dict (bytes values)."""
    m = RECEIVED_RE.search(msg)
    assert m, "no well-formed Received: header in %r" % msg[:800]
    return m


def check_date(date_bytes, slack=300):
    """An RFC 5322 date within `slack` seconds of now."""
    dt = email.utils.parsedate_to_datetime(date_bytes.decode())
    assert dt.tzinfo is not None, date_bytes
    assert abs(dt.timestamp() - time.time()) < slack, date_bytes


def split_delivered(msg):
    """(prepended trace block up to and including Received:, rest) of a Maildir message."""
    m = parse_received(msg)
    return msg[:m.end()], msg[m.end():]
