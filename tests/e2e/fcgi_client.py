"""A minimal FastCGI client (responder role, one request per connection), to talk to
dashcache-fcgi without nginx: the hardening tests need to be the peer themselves
(source addresses, idle connections, a second instance on the same socket)."""
from __future__ import annotations

import socket
import struct

BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7


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


def encode_request(path: str, method: str = "GET", query: str = "", body: bytes = b"",
                   content_type: str = "") -> bytes:
    params = {"REQUEST_METHOD": method, "REQUEST_URI": path + ("?" + query if query else ""),
              "DOCUMENT_URI": path, "QUERY_STRING": query, "CONTENT_TYPE": content_type,
              "CONTENT_LENGTH": str(len(body)) if body else "", "SERVER_PROTOCOL": "HTTP/1.1",
              "REMOTE_ADDR": "127.0.0.1"}
    p = b"".join(_nv(k, v) for k, v in params.items())
    out = _record(BEGIN_REQUEST, struct.pack("!HB5x", 1, 0))  # responder, no keep-conn
    out += _record(PARAMS, p) + _record(PARAMS, b"")
    if body:
        out += _record(STDIN, body)
    return out + _record(STDIN, b"")


def read_response(s: socket.socket) -> tuple[int, dict, bytes]:
    """(status, headers, body) of the STDOUT stream, up to END_REQUEST."""
    buf, out = b"", b""
    while True:
        while len(buf) < 8:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before FCGI_END_REQUEST")
            buf += chunk
        _, rtype, _, clen, plen = struct.unpack("!BBHHBx", buf[:8])
        while len(buf) < 8 + clen + plen:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside a record")
            buf += chunk
        content, buf = buf[8:8 + clen], buf[8 + clen + plen:]
        if rtype == STDOUT:
            out += content
        elif rtype == END_REQUEST:
            break
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
