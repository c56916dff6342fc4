"""Scripted SMTP/LMTP peers for the smtpc tests: a threaded raw socket server that accepts one
connection (or several, one after the other) and runs a handler over it.  `dialogue()` is a configurable, mostly well-behaved
server; hostile peers are small handlers of their own."""
import socket
import threading


class Conn:
    """One accepted connection: exact bytes in and out, every recv() chunk kept."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.reads = []      # raw recv() chunks, in order
        self.lines = []      # every line received (without its line end)
        self.closed = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.reads.append(chunk)
        self.buf += chunk
        return True

    def readline(self):
        """One line (CRLF or LF stripped), or None at EOF."""
        while b"\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        line = line[:-1] if line.endswith(b"\r") else line
        self.lines.append(line)
        return line

    def read_data(self):
        """The text after 354 up to CRLF.CRLF, dot-stuffing undone; None at EOF."""
        out = []
        while True:
            while b"\r\n" not in self.buf:
                if not self._fill():
                    return None
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line == b".":
                return b"".join(out)
            out.append((line[1:] if line.startswith(b".") else line) + b"\r\n")


class Peer:
    """Listen on 127.0.0.1:<random> (or on the AF_UNIX socket `unix`); run handler(conn) in a
    thread for each of `conns` connections, one after the other.  .conn is the first, .conns
    all of them."""

    def __init__(self, handler, conns=1, unix=None):
        if unix:
            self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.lsock.bind(str(unix))
            self.port = None
        else:
            self.lsock = socket.socket()
            self.lsock.bind(("127.0.0.1", 0))
            self.port = self.lsock.getsockname()[1]
        self.lsock.listen(1)
        self.handler = handler
        self.nconns = conns
        self.conn = None
        self.conns = []
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.lsock.settimeout(30)
        try:
            for _ in range(self.nconns):
                try:
                    s, _ = self.lsock.accept()
                except OSError:
                    return
                s.settimeout(30)
                conn = Conn(s)
                self.conns.append(conn)
                self.conn = self.conn or conn
                try:
                    self.handler(conn)
                except Exception as e:  # reported by the test via .error
                    self.error = e
                finally:
                    s.close()
        finally:
            self.lsock.close()

    def join(self, timeout=30):
        self.thread.join(timeout)
        return self.conn


def dialogue(ehlo=("PIPELINING", "SIZE 10000000", "8BITMIME", "DSN", "ENHANCEDSTATUSCODES"),
             greeting=b"220 peer.test ESMTP\r\n", ehlo_reply=None, rcpt=None, data_reply=b"354 go\r\n",
             final=(b"250 2.0.0 queued\r\n", ), lmtp=False, eol=b"\r\n", helo_reply=b"250 peer.test\r\n",
             mail=None, tx_rcpt=None, rset_reply=b"250 ok\r\n", after_final=None, quit_reply=b"221 bye\r\n"):
    """A handler playing a server: EHLO keywords, rcpt(addr) -> reply bytes, final replies after
    the data (one per accepted recipient for LMTP).  Received data lands in conn.data.
    Several transactions per connection: conn.ntx counts MAIL commands; mail(n), tx_rcpt(n, addr)
    and data_reply(n) (when callable) answer in the n-th one (from 0); conn.mails/conn.datas keep
    every MAIL line and text; after_final(conn, n) runs after the final replies and ends the
    connection (closes it, no QUIT awaited) when it returns true.  quit_reply=None: QUIT is not
    answered; the peer waits for the client to close."""

    def handler(conn):
        conn.data = None
        conn.mail = None
        conn.rcpts = []
        conn.mails = []
        conn.datas = []
        conn.ntx = 0
        accepted = 0
        in_tx = False   # a MAIL was accepted (RCPT and DATA are out of sequence otherwise)
        conn.send(greeting)
        while True:
            line = conn.readline()
            if line is None:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"LHLO"):
                if ehlo_reply is not None:
                    conn.send(ehlo_reply)
                    continue
                kws = [b"peer.test"] + [k.encode() for k in ehlo]
                out = b"".join(b"250-" + k + eol for k in kws[:-1]) + b"250 " + kws[-1] + eol
                conn.send(out)
            elif verb == b"HELO":
                conn.send(helo_reply)
            elif verb == b"MAIL":
                conn.mail = line
                conn.mails.append(line)
                conn.ntx += 1
                accepted = 0
                r = mail(conn.ntx - 1) if mail else b"250 2.1.0 ok\r\n"
                in_tx = r.startswith(b"2")
                conn.send(r.replace(b"\r\n", eol))
            elif verb in (b"RCPT", b"DATA") and not in_tx:
                conn.send(b"503 5.5.1 need MAIL first" + eol)
            elif verb == b"RCPT":
                conn.rcpts.append(line)
                addr = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                r = tx_rcpt(conn.ntx - 1, addr) if tx_rcpt else rcpt(addr) if rcpt else b"250 2.1.5 ok\r\n"
                if r.startswith(b"2"):
                    accepted += 1
                conn.send(r.replace(b"\r\n", eol))
            elif verb == b"DATA":
                if not accepted:
                    conn.send(b"554 5.5.1 no valid recipients" + eol)
                    continue
                dr = data_reply(conn.ntx - 1) if callable(data_reply) else data_reply
                conn.send(dr)
                if not dr.startswith(b"354"):
                    continue
                conn.data = conn.read_data()
                if conn.data is None:
                    return
                in_tx = False
                conn.datas.append(conn.data)
                replies = final if not lmtp else final[:accepted]
                conn.send(b"".join(r.replace(b"\r\n", eol) for r in replies))
                if after_final and after_final(conn, conn.ntx - 1):
                    return
            elif verb == b"RSET":
                in_tx = False
                conn.send(rset_reply.replace(b"\r\n", eol))
            elif verb == b"QUIT":
                if quit_reply is None:
                    conn.readline()
                    return
                conn.send(quit_reply.replace(b"\r\n", eol))
                return
            else:
                conn.send(b"500 what" + eol)

    return handler
