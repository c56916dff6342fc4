"""Scripted SMTP/LMTP peers for the smtpc tests: a threaded raw socket server that accepts one
connection and runs a handler over it.  `dialogue()` is a configurable, mostly well-behaved
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
    """Listen on 127.0.0.1:<random>; run handler(conn) for one connection in a thread."""

    def __init__(self, handler):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.handler = handler
        self.conn = None
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.lsock.settimeout(30)
        try:
            s, _ = self.lsock.accept()
        except OSError:
            return
        s.settimeout(30)
        self.conn = Conn(s)
        try:
            self.handler(self.conn)
        except Exception as e:  # reported by the test via .error
            self.error = e
        finally:
            s.close()
            self.lsock.close()

    def join(self, timeout=30):
        self.thread.join(timeout)
        return self.conn


def dialogue(ehlo=("PIPELINING", "SIZE 10000000", "8BITMIME", "DSN", "ENHANCEDSTATUSCODES"),
             greeting=b"220 peer.test ESMTP\r\n", ehlo_reply=None, rcpt=None, data_reply=b"354 go\r\n",
             final=(b"250 2.0.0 queued\r\n", ), lmtp=False, eol=b"\r\n", helo_reply=b"250 peer.test\r\n"):
    """A handler playing a server: EHLO keywords, rcpt(addr) -> reply bytes, final replies after
    the data (one per accepted recipient for LMTP).  Received data lands in conn.data."""

    def handler(conn):
        conn.data = None
        conn.mail = None
        conn.rcpts = []
        accepted = 0
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
                accepted = 0
                conn.send(b"250 2.1.0 ok" + eol)
            elif verb == b"RCPT":
                conn.rcpts.append(line)
                addr = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                r = rcpt(addr) if rcpt else b"250 2.1.5 ok\r\n"
                if r.startswith(b"2"):
                    accepted += 1
                conn.send(r.replace(b"\r\n", eol))
            elif verb == b"DATA":
                if not accepted:
                    conn.send(b"554 5.5.1 no valid recipients" + eol)
                    continue
                conn.send(data_reply)
                if not data_reply.startswith(b"354"):
                    continue
                conn.data = conn.read_data()
                if conn.data is None:
                    return
                replies = final if not lmtp else final[:accepted]
                conn.send(b"".join(r.replace(b"\r\n", eol) for r in replies))
            elif verb == b"RSET":
                conn.send(b"250 ok" + eol)
            elif verb == b"QUIT":
                conn.send(b"221 bye" + eol)
                return
            else:
                conn.send(b"500 what" + eol)

    return handler
