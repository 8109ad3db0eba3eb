"""FastCGI connections of the event-driven workers (issue 10), spoken to directly
(fcgi_client.py), without nginx, PostgreSQL or Redis: every request here is one the
workers answer without a dependency (/metrics, an unknown path, a refused body).

- a kept connection (FCGI_KEEP_CONN) carries request after request, pipelined too;
- without the flag the worker closes the connection after its answer;
- several request ids on one connection, their records interleaved;
- kept idle connections, many more than workers, do not keep a new one waiting;
- GET_VALUES, an unknown management record, an unknown role, an aborted request;
- a body over the limit is answered 413 and the connection stays usable;
- a peer that sends and never reads stops being read (back-pressure) and loses
  its connection after FCGI_IO_TIMEOUT_MS, while other connections are served.
"""
from __future__ import annotations

import socket
import struct
import time
from types import SimpleNamespace

import pytest

import fcgi_client as fc
from test_hardening_fcgi import procs, serves, start, tmp, wait_for  # noqa: F401 (fixtures)

NOT_FOUND = "/no/such/route"


@pytest.fixture
def pool(tmp, procs):  # noqa: F811
    """Two workers on a unix socket with a short I/O deadline: the socket's path."""
    addr = str(tmp / "fcgi.sock")
    p = start(procs, tmp, "pool", ["--listen", f"unix:{addr}", "--workers", "2"],
              env={"FCGI_IO_TIMEOUT_MS": "700"})
    assert wait_for(lambda: serves(addr), 10), p.log()
    return SimpleNamespace(addr=addr, proc=p)


def kept(pool) -> tuple[socket.socket, fc.Reader]:
    s = fc.connect(pool.addr, timeout=10)
    return s, fc.Reader(s)


def test_kept_connection_serves_request_after_request(pool):
    s, r = kept(pool)
    with s:
        for i in range(50):
            s.sendall(fc.encode_request(NOT_FOUND if i % 2 else "/metrics", keep_conn=True))
            status, headers, body = r.response()
            assert status == (404 if i % 2 else 200), (i, status, body)
        # and a pipelined burst: twenty requests in one write, twenty answers in order
        s.sendall(b"".join(fc.encode_request(NOT_FOUND, keep_conn=True) for _ in range(20)))
        for _ in range(20):
            status, _, body = r.response()
            assert status == 404 and b'"not_found"' in body


def test_connection_without_keep_conn_is_closed_after_the_answer(pool):
    s, r = kept(pool)
    with s:
        s.sendall(fc.encode_request(NOT_FOUND))
        assert r.response()[0] == 404
        s.settimeout(3)
        assert s.recv(1) == b"", "the worker kept a connection that did not ask for it"


def test_request_ids_interleaved_on_one_connection(pool):
    a = fc.encode_records("/metrics", keep_conn=True, request_id=1)
    b = fc.encode_records(NOT_FOUND, keep_conn=True, request_id=2)
    s, r = kept(pool)
    with s:
        for ra, rb in zip(a, b):  # BEGIN 1, BEGIN 2, PARAMS 1, PARAMS 2, ...
            s.sendall(ra + rb)
        got = r.responses(2)
    assert set(got) == {1, 2}
    assert got[1][0] == 200 and b"dashboard_http_requests_total" in got[1][2]
    assert got[2][0] == 404
    for rid in (1, 2):
        app_status, proto = struct.unpack("!IB3x", got[rid][3])
        assert proto == 0  # FCGI_REQUEST_COMPLETE


def test_records_split_at_every_byte_still_make_a_request(pool):
    s, r = kept(pool)
    with s:
        for byte in fc.encode_request(NOT_FOUND, keep_conn=True, headers={"HTTP_X_LONG": "v" * 300}):
            s.sendall(bytes([byte]))
        assert r.response()[0] == 404


def test_idle_kept_connections_do_not_keep_a_new_one_waiting(pool):
    held = []
    try:
        for _ in range(40):  # 20 per worker, each kept after one answered request
            s, r = kept(pool)
            s.sendall(fc.encode_request(NOT_FOUND, keep_conn=True))
            assert r.response()[0] == 404
            held.append((s, r))
        t0 = time.monotonic()
        assert fc.request(pool.addr, NOT_FOUND, timeout=5)[0] == 404
        took = time.monotonic() - t0
        # well under the 0.7 s I/O deadline: nobody had to be dropped first
        assert took < 0.5, f"a new connection waited {took:.2f} s behind idle kept ones"
        # and the kept ones are still there, past the I/O deadline (idle is not slow)
        time.sleep(1.0)
        for s, r in held[:5]:
            s.sendall(fc.encode_request(NOT_FOUND, keep_conn=True))
            assert r.response()[0] == 404
    finally:
        for s, _ in held:
            s.close()


def test_management_records_and_refusals(pool):
    s, r = kept(pool)
    with s:
        s.sendall(fc.get_values(["FCGI_MPXS_CONNS", "FCGI_MAX_REQS", "FCGI_MAX_CONNS"]))
        rtype, rid, content = r.record()
        assert (rtype, rid) == (fc.GET_VALUES_RESULT, 0)
        values = fc.decode_nv(content)
        assert values["FCGI_MPXS_CONNS"] == "1" and int(values["FCGI_MAX_CONNS"]) > 0
        assert int(values["FCGI_MAX_REQS"]) >= int(values["FCGI_MAX_CONNS"])

        s.sendall(fc._record(99, b"\0" * 8, 0))  # a management record type nobody knows
        rtype, rid, content = r.record()
        assert (rtype, rid, content[0]) == (fc.UNKNOWN_TYPE, 0, 99)

        s.sendall(fc.encode_records(NOT_FOUND, keep_conn=True, request_id=3, role=fc.AUTHORIZER)[0])
        rtype, rid, content = r.record()
        assert (rtype, rid) == (fc.END_REQUEST, 3)
        assert struct.unpack("!IB3x", content)[1] == 3  # FCGI_UNKNOWN_ROLE

        # a request aborted before it was complete: END_REQUEST, and the id is free again
        recs = fc.encode_records(NOT_FOUND, keep_conn=True, request_id=4)
        s.sendall(recs[0] + recs[1] + fc._record(fc.ABORT_REQUEST, b"", 4))
        rtype, rid, _ = r.record()
        assert (rtype, rid) == (fc.END_REQUEST, 4)
        s.sendall(fc.encode_request(NOT_FOUND, keep_conn=True, request_id=4))
        assert r.response()[0] == 404


def test_body_over_the_limit_is_refused_and_the_connection_goes_on(pool):
    s, r = kept(pool)
    with s:
        big = b"x" * (1024 * 1024 + 1)
        s.sendall(fc.encode_request("/api/ingest/readings", method="POST", body=big,
                                    content_type="application/json", keep_conn=True))
        status, _, body = r.response()
        assert status == 413 and b"payload_too_large" in body
        s.sendall(fc.encode_request(NOT_FOUND, keep_conn=True))
        assert r.response()[0] == 404


def test_protocol_error_closes_only_that_connection(pool):
    good, gr = kept(pool)
    bad, _ = kept(pool)
    with good, bad:
        bad.sendall(struct.pack("!BBHHBx", 9, fc.BEGIN_REQUEST, 1, 8, 0) + b"\0" * 8)  # version 9
        bad.settimeout(3)
        assert bad.recv(1) == b""
        good.sendall(fc.encode_request(NOT_FOUND, keep_conn=True))
        assert gr.response()[0] == 404
    assert "event=worker.protocol" in pool.proc.log()


def test_a_peer_that_never_reads_is_dropped_and_others_are_served(pool):
    hog = fc.connect(pool.addr, timeout=10)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        burst = b"".join(fc.encode_request("/metrics", keep_conn=True) for _ in range(2000))
        hog.settimeout(0.5)
        sent = 0
        try:
            while sent < len(burst):
                sent += hog.send(burst[sent:])
        except (socket.timeout, BlockingIOError):
            pass  # the worker stopped reading us: back-pressure
        assert sent < len(burst), "the worker kept reading a peer that never read its answers"
        for _ in range(5):  # the other connections (and the hog's own worker) still answer
            assert fc.request(pool.addr, NOT_FOUND, timeout=3)[0] == 404
        # past FCGI_IO_TIMEOUT_MS (0.7 s) of answers not taken, the hog loses its connection
        assert wait_for(lambda: "event=worker.io_timeout" in pool.proc.log(), 5), pool.proc.log()
    finally:
        hog.close()
