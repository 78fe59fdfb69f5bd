# SPDX-License-Identifier: MIT
"""A real HTTP sink for Herald's delivery tests: a threaded HTTP server on a free loopback port
that records every request it receives and answers according to a per-path script.

    sink = Sink().start()
    sink.script("/orders", [503, 503, 202])        # fail twice, then accept (last entry repeats)
    sink.script("/slow", [Answer(202, delay=2.0)])  # answer after 2 s (bounded)
    sink.script("/busy", [Answer(429, headers={"Retry-After": "1"}), 202])
    sink.script("/reply", [Answer(200, headers={...ce-* headers...}, body=b"...")])
    ... herald delivers to sink.url + "/orders" ...
    sink.wait_for(lambda reqs: len(reqs) >= 3)      # condition with a deadline
    sink.requests("/orders")                         # list of Request(path, headers, body, t)
    sink.stop()

Requests are recorded when they arrive (before the answer is sent), with a monotonic
timestamp, so tests can check the spacing of attempts.
"""
import http.server
import socketserver
import threading
import time

from harness import free_port, wait_for


class Answer:
    def __init__(self, status=202, headers=None, body=b"", delay=0.0, close=False):
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.delay = delay
        self.close = close  # drop the connection without answering


class Request:
    def __init__(self, method, path, headers, body, t):
        self.method = method
        self.path = path
        self.headers = headers  # dict, lower-case names (last value wins)
        self.body = body
        self.t = t              # time.monotonic() at arrival

    def ce(self):
        """The ce-* headers as a dict without the prefix, e.g. {'id': '1', 'type': ...}."""
        return {k[3:]: v for k, v in self.headers.items() if k.startswith("ce-")}

    def __repr__(self):
        return f"Request({self.method} {self.path} ce={self.ce()} body={self.body[:60]!r})"


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Sink:
    def __init__(self, port=None):
        self.port = port or free_port()
        self._lock = threading.Condition()
        self._reqs = []
        self._scripts = {}
        self._count = {}
        self._httpd = None
        self._closing = threading.Event()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def script(self, path, answers):
        """Answers for successive requests to `path` (exact match); the last one repeats.
        Entries are Answer objects or plain status codes."""
        with self._lock:
            self._scripts[path] = [a if isinstance(a, Answer) else Answer(a) for a in answers]
            self._count[path] = 0

    def _answer_for(self, path):
        with self._lock:
            script = self._scripts.get(path) or self._scripts.get("*") or [Answer(202)]
            i = self._count.get(path, 0)
            self._count[path] = i + 1
            return script[min(i, len(script) - 1)]

    def start(self):
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                req = Request(self.command, self.path,
                              {k.lower(): v for k, v in self.headers.items()}, body,
                              time.monotonic())
                with sink._lock:
                    sink._reqs.append(req)
                    sink._lock.notify_all()
                a = sink._answer_for(self.path)
                if a.delay:
                    sink._closing.wait(a.delay)
                if a.close:
                    self.close_connection = True
                    return
                self.send_response(a.status)
                for k, v in a.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(a.body)))
                self.end_headers()
                if a.body:
                    self.wfile.write(a.body)

            def _read_chunked(self):
                out = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()

            do_POST = _handle
            do_PUT = _handle

        self._httpd = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops listening (later deliveries get connection refused). Safe to call twice."""
        if self._httpd:
            self._closing.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def restart(self):
        """Listens again on the same port (a sink that comes back)."""
        self._closing.clear()
        return self.start()

    def requests(self, path=None):
        with self._lock:
            return [r for r in self._reqs if path is None or r.path == path]

    def clear(self):
        with self._lock:
            self._reqs = []

    def wait_for(self, cond, timeout=30.0, what="sink condition"):
        """Waits until cond(list of requests) is true, with a deadline."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not cond(list(self._reqs)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                         f"got {len(self._reqs)} requests")
                self._lock.wait(min(left, 0.2))
            return list(self._reqs)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
