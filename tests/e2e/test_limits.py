# SPDX-License-Identifier: MIT
"""Server limits: a slow or silent client is timed out and cannot pin the server, the
connection limit holds, and requests over the limits are refused while others go on."""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Herald, wait_for  # noqa: E402


def closed_by_peer(sock, timeout):
    """True when the server closes `sock` within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


class LimitsTest(unittest.TestCase):
    def start(self, *args):
        h = Herald(args=list(args))
        h.start()
        self.addCleanup(h.cleanup)
        return h

    def test_slow_client_is_timed_out_and_others_are_served(self):
        h = self.start("--timeout", "1")
        slow = socket.create_connection(("127.0.0.1", h.port))
        self.addCleanup(slow.close)
        slow.sendall(b"POST /v1/buses/default/events HTTP/1.1\r\nHost: x\r\nce-id: 1")  # never ends
        # others are served while it dangles
        self.assertEqual(h.http("GET", "/healthz")[0], 200)
        self.assertTrue(closed_by_peer(slow, 15), "a silent client kept its connection")
        # nothing was stored from the half request
        self.assertEqual(h.json("GET", "/v1/buses/default", expect=200)[1]["stats"]["last_seq"], 0)
        h.stop()

    def test_connection_limit(self):
        h = self.start("--max-connections", "4", "--timeout", "30")
        held = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", h.port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(10)
            self.assertIn(b"200", s.recv(4096))  # keep-alive: the connection stays open
            held.append(s)
        # a fifth connection is not served while four are open: it waits in the listen queue
        # (or is closed), so the limit bounds the server's connections and memory
        extra = socket.create_connection(("127.0.0.1", h.port))
        self.addCleanup(extra.close)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        extra.settimeout(1.5)
        try:
            got = extra.recv(4096)
        except socket.timeout:
            got = None
        self.assertFalse(got, "a fifth connection was served")
        for s in held:
            s.close()
        # once the others are gone, new connections are served again
        wait_for(lambda: self._healthz(h), timeout=15, what="service after connections closed")
        h.stop()

    @staticmethod
    def _healthz(h):
        try:
            return h.http("GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    def test_event_size_limit_is_configurable(self):
        h = self.start("--max-event-bytes", "1000")
        headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
                   "Content-Type": "application/octet-stream"}
        status, _, body = h.http("POST", "/v1/buses/default/events", b"x" * 1001, headers)
        self.assertEqual(status, 413, body)
        # the limit counts the whole event (attributes and data), so leave room for the attributes
        status, _, body = h.http("POST", "/v1/buses/default/events", b"x" * 900, headers)
        self.assertEqual(status, 202, body)
        h.stop()


if __name__ == "__main__":
    unittest.main()
