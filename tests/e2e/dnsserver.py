"""A tiny authoritative DNS server on loopback for tests (PTR, A, AAAA, MX).

records: {(name_lower, qtype): [rdata...]} where rdata is a host name for PTR,
an address string for A/AAAA, and (preference, host) for MX.  Unknown names
get NXDOMAIN.  Runs in a thread; stop() closes it.
"""
import socket
import struct
import threading

TYPES = {"A": 1, "PTR": 12, "MX": 15, "AAAA": 28}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def decode_name(pkt, off):
    labels = []
    while True:
        n = pkt[off]
        if n == 0:
            return ".".join(labels), off + 1
        labels.append(pkt[off + 1:off + 1 + n].decode())
        off += 1 + n


class DNSServer:
    def __init__(self, records):
        self.records = {(k[0].lower().rstrip("."), TYPES[k[1]]): v for k, v in records.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def rdata(self, qtype, value):
        if qtype == 1:
            return socket.inet_pton(socket.AF_INET, value)
        if qtype == 28:
            return socket.inet_pton(socket.AF_INET6, value)
        if qtype == 12:
            return encode_name(value)
        if qtype == 15:
            return struct.pack(">H", value[0]) + encode_name(value[1])
        raise ValueError(qtype)

    def answer(self, pkt):
        qid, flags, qd = struct.unpack(">HHH", pkt[:6])
        name, off = decode_name(pkt, 12)
        qtype, qclass = struct.unpack(">HH", pkt[off:off + 4])
        question = pkt[12:off + 4]
        self.queries.append((name.lower(), qtype))
        values = self.records.get((name.lower(), qtype))
        known = any(k[0] == name.lower() for k in self.records)
        rcode = 0 if (values or known) else 3
        answers = b""
        for v in values or []:
            rd = self.rdata(qtype, v)
            answers += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(rd)) + rd
        header = struct.pack(">HHHHHH", qid, 0x8400 | rcode, 1, len(values or []), 0, 0)
        return header + question + answers

    def serve(self):
        while True:
            try:
                pkt, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.sock.sendto(self.answer(pkt), peer)
            except Exception:  # malformed query: ignore it
                pass

    def stop(self):
        self.sock.close()
