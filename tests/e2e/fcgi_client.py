"""A minimal FastCGI client (responder role), to talk to dashcache-fcgi without
nginx: the hardening tests need to be the peer themselves (source addresses, idle
connections, a second instance on the same socket), and the connection tests need
kept connections, several request ids and management records."""
from __future__ import annotations

import socket
import struct

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER, AUTHORIZER = 1, 2
KEEP_CONN = 1


def _record(rtype: int, content: bytes, request_id: int = 1) -> bytes:
    pad = (-len(content)) % 8
    return struct.pack("!BBHHBx", 1, rtype, request_id, len(content), pad) + content + b"\0" * pad


def _nv(name: str, value: str) -> bytes:
    out = b""
    for s in (name.encode(), value.encode()):
        out += bytes([len(s)]) if len(s) < 128 else struct.pack("!I", len(s) | 0x80000000)
    return out + name.encode() + value.encode()


def connect(addr, timeout: float = 5.0, source: str | None = None) -> socket.socket:
    """addr: a unix socket path (str) or (host, port); source: a local IP to connect from."""
    if isinstance(addr, (tuple, list)):
        s = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET, socket.SOCK_STREAM)
        if source:
            s.bind((source, 0))
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(tuple(addr) if isinstance(addr, (tuple, list)) else str(addr))
    return s


def encode_records(path: str, method: str = "GET", query: str = "", body: bytes = b"",
                   content_type: str = "", keep_conn: bool = False, request_id: int = 1,
                   role: int = RESPONDER, headers: dict | None = None) -> list[bytes]:
    """The records of one request, in order (BEGIN, PARAMS..., STDIN...)."""
    params = {"REQUEST_METHOD": method, "REQUEST_URI": path + ("?" + query if query else ""),
              "DOCUMENT_URI": path, "QUERY_STRING": query, "CONTENT_TYPE": content_type,
              "CONTENT_LENGTH": str(len(body)) if body else "", "SERVER_PROTOCOL": "HTTP/1.1",
              "REMOTE_ADDR": "127.0.0.1"}
    params.update(headers or {})
    p = b"".join(_nv(k, v) for k, v in params.items())
    recs = [_record(BEGIN_REQUEST, struct.pack("!HB5x", role, KEEP_CONN if keep_conn else 0), request_id),
            _record(PARAMS, p, request_id), _record(PARAMS, b"", request_id)]
    for i in range(0, len(body), 65535):
        recs.append(_record(STDIN, body[i:i + 65535], request_id))
    return recs + [_record(STDIN, b"", request_id)]


def encode_request(path: str, **kw) -> bytes:
    return b"".join(encode_records(path, **kw))


def get_values(names: list[str]) -> bytes:
    return _record(GET_VALUES, b"".join(_nv(n, "") for n in names), 0)


def decode_nv(content: bytes) -> dict:
    out, i = {}, 0
    while i < len(content):
        lens = []
        for _ in range(2):
            if content[i] < 128:
                lens.append(content[i])
                i += 1
            else:
                lens.append(struct.unpack("!I", content[i:i + 4])[0] & 0x7FFFFFFF)
                i += 4
        name, value = content[i:i + lens[0]], content[i + lens[0]:i + lens[0] + lens[1]]
        i += lens[0] + lens[1]
        out[name.decode()] = value.decode()
    return out


class Reader:
    """Reads records from one connection, keeping what arrived past the last one."""

    def __init__(self, s: socket.socket):
        self.s, self.buf = s, b""

    def record(self) -> tuple[int, int, bytes]:
        """(type, request id, content) of the next record."""
        while len(self.buf) < 8:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before a record")
            self.buf += chunk
        _, rtype, rid, clen, plen = struct.unpack("!BBHHBx", self.buf[:8])
        while len(self.buf) < 8 + clen + plen:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside a record")
            self.buf += chunk
        content, self.buf = self.buf[8:8 + clen], self.buf[8 + clen + plen:]
        return rtype, rid, content

    def responses(self, n: int) -> dict[int, tuple[int, dict, bytes, bytes]]:
        """The next n answers by request id: (status, headers, body, END_REQUEST content)."""
        out: dict[int, bytes] = {}
        done: dict[int, tuple] = {}
        while len(done) < n:
            rtype, rid, content = self.record()
            if rtype == STDOUT:
                out[rid] = out.get(rid, b"") + content
            elif rtype == END_REQUEST:
                done[rid] = (*parse_stdout(out.pop(rid, b"")), content)
        return done

    def response(self) -> tuple[int, dict, bytes]:
        """(status, headers, body) of the next answer."""
        return next(iter(self.responses(1).values()))[:3]


def read_response(s: socket.socket) -> tuple[int, dict, bytes]:
    """(status, headers, body) of the STDOUT stream, up to END_REQUEST."""
    return Reader(s).response()


def parse_stdout(out: bytes) -> tuple[int, dict, bytes]:
    head, _, body = out.partition(b"\r\n\r\n")
    headers, status = {}, 200
    for line in head.split(b"\r\n"):
        k, _, v = line.decode(errors="replace").partition(":")
        headers[k.strip().lower()] = v.strip()
    if "status" in headers:
        status = int(headers["status"].split()[0])
    return status, headers, body


def request(addr, path: str, timeout: float = 5.0, source: str | None = None, **kw) -> tuple[int, dict, bytes]:
    """One request on a new connection: (status, headers, body)."""
    s = connect(addr, timeout, source)
    try:
        s.sendall(encode_request(path, **kw))
        return read_response(s)
    finally:
        s.close()
