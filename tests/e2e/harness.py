# SPDX-License-Identifier: MIT
"""Shared helpers for Herald's end-to-end tests: start a real `herald serve` on loopback with a
temporary data directory, talk HTTP to it, stop it gracefully or with kill -9.

Every wait is a poll on a condition with a deadline; nothing sleeps for a fixed time and hopes.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

HERALD_BIN = os.environ.get("HERALD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build-test", "herald")
CONFORMANCE = os.environ.get("HERALD_CONFORMANCE") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "conformance")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_head(buf):
    """Splits raw response bytes holding a whole head into (status, headers with lowercase
    names, the bytes after the head)."""
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, rest


def wait_for(cond, timeout=20.0, interval=0.02, what="condition"):
    """Polls cond() until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Herald:
    """One herald server process. Use start()/stop(), or as a context manager."""

    def __init__(self, data_dir=None, args=(), port=None):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="herald-e2e-")
        self.args = list(args)
        self.port = port or free_port()
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "..", os.path.basename(self.data_dir) + ".log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30.0):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [HERALD_BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data", self.data_dir]
            + self.args, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=30.0):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError(f"herald exited with {self.proc.returncode}: {self.tail_log()}")
            try:
                return self.http("GET", "/healthz", timeout=2)[0] == 200
            except OSError:
                return False
        wait_for(ok, timeout, what="herald /healthz")

    def tail_log(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=30.0):
        """Graceful stop (SIGTERM); asserts a clean exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("herald did not stop within %ss of SIGTERM" % timeout)
            if rc != 0:
                raise AssertionError(f"herald exited with {rc}: {self.tail_log()}")
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def cleanup(self):
        if self.proc:
            self.kill9()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            try:
                os.unlink(self.log_path)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.stop()
        finally:
            self.cleanup()

    # ---- HTTP ----
    def http(self, method, path, body=None, headers=None, timeout=30):
        """Returns (status, headers dict with lowercase names, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict(headers or {})
                headers.setdefault("Content-Type", "application/json")
            elif isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None, expect=None):
        status, _, data = self.http(method, path, body, headers)
        if expect is not None and status != expect:
            raise AssertionError(f"{method} {path}: expected {expect}, got {status}: {data[:500]!r}")
        return status, (json.loads(data) if data else None)

    def read_all(self, bus="default", start=1):
        """Every event of a bus from seq `start`, following `next`."""
        out = []
        while True:
            _, doc = self.json("GET", f"/v1/buses/{bus}/events?from={start}&limit=1000", expect=200)
            out += doc["events"]
            if not doc["events"]:
                return out
            start = doc["next"]


class HeraldTestCase(unittest.TestCase):
    """A test case with one fresh server per test (self.h)."""
    server_args = ()

    def setUp(self):
        self.h = Herald(args=self.server_args)
        self.h.start()
        self.addCleanup(self.h.cleanup)
