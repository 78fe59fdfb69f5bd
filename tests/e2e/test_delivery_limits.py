# SPDX-License-Identifier: MIT
"""Delivery limits and transport: max_in_flight bounds the concurrent requests to a sink,
rate_limit spaces deliveries, and https sinks are verified against the CA bundle given with
--ca-file (an unverifiable certificate is a dead letter with heralderrorcode "tls").
"""
import http.server
import os
import shutil
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Herald, wait_for  # noqa: E402
from trigger_util import (TriggerTestCase, deadletters, ev, last_seq, publish,  # noqa: E402
                          publish_batch, put_trigger, status_of, wait_settled)


class ConcurrencySink:
    """Answers 202 after a delay and records the peak number of requests it held at once."""

    def __init__(self, delay):
        self.delay = delay
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.times = []
        sink = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with sink.lock:
                    sink.now += 1
                    sink.peak = max(sink.peak, sink.now)
                    sink.times.append(time.monotonic())
                time.sleep(sink.delay)  # the sink's own service time, bounded
                with sink.lock:
                    sink.now -= 1
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.httpd = S(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class LimitsTest(TriggerTestCase):
    def test_max_in_flight_bounds_concurrency(self):
        sink = ConcurrencySink(0.15)
        self.addCleanup(sink.stop)
        put_trigger(self.h, "t", {"sink": f"http://127.0.0.1:{sink.port}/x", "max_in_flight": 3})
        publish_batch(self.h, [ev(str(i)) for i in range(24)])
        wait_settled(self.h, "t", last_seq(self.h), timeout=60)
        self.assertEqual(len(sink.times), 24)
        self.assertLessEqual(sink.peak, 3, "more requests in flight than max_in_flight")
        self.assertGreaterEqual(sink.peak, 2, "deliveries did not overlap at all")

    def test_rate_limit_spaces_deliveries(self):
        sink = ConcurrencySink(0.0)
        self.addCleanup(sink.stop)
        rate = 10.0
        put_trigger(self.h, "t", {"sink": f"http://127.0.0.1:{sink.port}/x", "rate_limit": rate})
        publish_batch(self.h, [ev(str(i)) for i in range(12)])
        wait_settled(self.h, "t", last_seq(self.h), timeout=60)
        self.assertEqual(len(sink.times), 12)
        span = sink.times[-1] - sink.times[0]
        # 12 deliveries at 10/s take at least 11 intervals of 0.1 s (a lower bound on spacing,
        # what the limit promises; allow 10% for clock granularity)
        self.assertGreaterEqual(span, 0.9 * 11 / rate, f"12 deliveries took only {span:.3f}s")


def make_cert(d):
    key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return key, crt


class TLSSink:
    def __init__(self, key, crt):
        self.bodies = []
        sink = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                sink.bodies.append((self.headers.get("ce-id"), body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.httpd = S(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class HTTPSTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.key, self.crt = make_cert(self.dir)
        self.sink = TLSSink(self.key, self.crt)
        self.addCleanup(self.sink.stop)

    def run_herald(self, args):
        h = Herald(args=args)
        h.start()
        self.addCleanup(h.cleanup)
        return h

    def test_verified_https_sink(self):
        h = self.run_herald(["--ca-file", self.crt])
        put_trigger(h, "t", {"sink": f"https://127.0.0.1:{self.sink.port}/x"})
        publish(h, ev("secure-1", data={"a": 1}))
        wait_settled(h, "t", last_seq(h), timeout=30)
        self.assertEqual(self.sink.bodies, [("secure-1", b'{"a": 1}')])  # exact JSON text
        self.assertEqual(status_of(h, "t")["delivered"], 1)
        h.stop()

    def test_unverifiable_certificate_is_a_dead_letter(self):
        h = self.run_herald([])  # the system bundle does not know the self-signed certificate
        put_trigger(h, "t", {"sink": f"https://127.0.0.1:{self.sink.port}/x",
                             "delivery": {"retry": 1, "backoff_delay": "PT0.05S"}})
        publish(h, ev("insecure-1"))
        wait_settled(h, "t", last_seq(h), timeout=30)
        self.assertEqual(self.sink.bodies, [])
        dls = deadletters(h, trigger="t")
        self.assertEqual(len(dls), 1)
        self.assertEqual(dls[0]["event"]["heralderrorcode"], "tls")
        self.assertEqual(dls[0]["attempts"], 2)
        h.stop()


if __name__ == "__main__":
    unittest.main()
