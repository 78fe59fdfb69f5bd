# SPDX-License-Identifier: MIT
"""The HTTP/1.1 server's own behaviour, byte for byte on raw sockets: HTTP/1.0 clients, a
request trickled one byte at a time, query decoding, over-long targets, keep-alive after an
early answer, a stream over HTTP/1.0 (delimited by the close), a client that goes away while
its publish is parked, and the connection limit letting new connections in again."""
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Herald, HeraldTestCase, parse_head, wait_for  # noqa: E402

EVENTS = "/v1/buses/default/events"


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


def read_response(sock):
    """Reads one response with a Content-Length body; returns (status, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before a full head: {buf!r}")
        buf += chunk
    status, headers, rest = parse_head(buf)
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n]


def read_until_close(sock):
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def structured(i):
    return json.dumps({"specversion": "1.0", "id": f"hs{i}", "source": "/hs",
                       "type": "t"}).encode()


def post(body):
    return (b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/cloudevents+json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


class HttpServerTest(HeraldTestCase):
    def test_http10_request_is_answered_and_closed(self):
        with connect(self.h.port) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            data = read_until_close(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)
        self.assertIn(b"connection: close", data.lower())

    def test_request_trickled_byte_by_byte(self):
        req = post(structured(1))
        with connect(self.h.port) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for b in req:
                s.sendall(bytes([b]))
            status, _, body = read_response(s)
        self.assertEqual((status, json.loads(body)), (202, {"seq": 1}))

    def test_query_values_are_percent_and_plus_decoded(self):
        for i in range(3):
            self.h.http("POST", EVENTS, body=structured(i),
                        headers={"Content-Type": "application/cloudevents+json"})
        # "id = 'hs1'" with '+' for the spaces and %27 for the quotes
        status, _, data = self.h.http("GET", EVENTS + "?from=1&filter=id+%3D+%27hs1%27")
        self.assertEqual(status, 200, data)
        self.assertEqual([e["event"]["id"] for e in json.loads(data)["events"]], ["hs1"])

    def test_overlong_target_is_414_and_nothing_changes(self):
        with connect(self.h.port) as s:
            s.sendall(b"GET /v1/buses/default/events?from=1&x=" + b"a" * (20 * 1024) +
                      b" HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(s)
        self.assertEqual(status, 414)
        self.assertIn("error", json.loads(body))
        self.assertEqual(self.h.json("GET", "/v1/buses/default", expect=200)[1]["stats"]["last_seq"], 0)

    def test_keep_alive_survives_an_early_404_with_a_body(self):
        with connect(self.h.port) as s:
            s.sendall(b"POST /v1/nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            status, _, body = read_response(s)
            self.assertEqual(status, 404)
            self.assertEqual(json.loads(body)["field"], "path")
            # the same connection still works: the body was read and dropped
            s.sendall(post(structured(7)))
            status, _, body = read_response(s)
        self.assertEqual((status, json.loads(body)), (202, {"seq": 1}))

    def test_stream_over_http10_is_delimited_by_the_close(self):
        self.h.http("POST", EVENTS, body=structured(1),
                    headers={"Content-Type": "application/cloudevents+json"})
        with connect(self.h.port) as s:
            s.sendall(b"GET /v1/buses/default/stream?from=1 HTTP/1.0\r\n\r\n")
            buf = b""
            deadline = time.monotonic() + 10
            while b"id: 1\n" not in buf and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertIn(b"text/event-stream", head.lower())
        self.assertIn(b"id: 1\nevent: cloudevent\ndata: ", body)

    def test_client_gone_while_publish_is_parked(self):
        # many connections post and close at once, without reading the answers
        socks = []
        for i in range(50):
            s = connect(self.h.port)
            s.sendall(post(structured(100 + i)))
            socks.append(s)
        for s in socks:
            s.close()
        # every event is stored (the client left, the publish did not), the server goes on
        wait_for(lambda: self.h.json("GET", "/v1/buses/default", expect=200)[1]["stats"]["last_seq"] == 50,
                 timeout=15, what="the 50 parked publishes to commit")
        status, _, body = self.h.http("POST", EVENTS, body=structured(999),
                                      headers={"Content-Type": "application/cloudevents+json"})
        self.assertEqual((status, json.loads(body)), (202, {"seq": 51}))


class ConnectionLimitTest(unittest.TestCase):
    def test_accepting_resumes_when_a_connection_closes(self):
        h = Herald(args=["--max-connections", "2"])
        h.start()
        self.addCleanup(h.cleanup)
        held = [connect(h.port), connect(h.port)]
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(read_response(s)[0], 200)
        waiting = connect(h.port)  # completes in the kernel's listen queue
        self.addCleanup(waiting.close)
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        waiting.settimeout(1.0)
        with self.assertRaises(socket.timeout):
            waiting.recv(1)
        held[0].close()
        waiting.settimeout(10)
        self.assertEqual(read_response(waiting)[0], 200)
        held[1].close()


if __name__ == "__main__":
    unittest.main()
