# SPDX-License-Identifier: MIT
"""GET /v1/buses/{bus}/stream: Server-Sent Events from a real herald (docs/api.md, "Live stream").

Each event is `id: <seq>`, `event: cloudevent`, `data: {"seq":…,"ingested":…,"event":{…}}`. The
stream starts at ?from=SEQ, else after Last-Event-ID, else at the next event to commit; idle
streams get `: heartbeat` comments; a slow reader holds only its position (DESIGN.md §2.6: memory
stays bounded). The client below is a raw socket with its own chunked decoding so that every read
has a deadline and the test can tell a clean end of stream (the last chunk) from a reset.
"""
import json
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HeraldTestCase  # noqa: E402

# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by default) that inflates RSS
# with allocation churn; cap it so that VmRSS reflects live memory. Children inherit this.
os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"


class StreamClosed(Exception):
    pass


class SSE:
    """One SSE connection. events() / comments() accumulate everything parsed so far."""

    def __init__(self, port, path, headers=None, rcvbuf=None, timeout=20.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        req = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        for k, v in (headers or {}).items():
            req.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(req) + "\r\n\r\n").encode())
        self.raw = b""          # bytes received, not yet decoded
        self.text = b""         # decoded body bytes, not yet parsed into SSE blocks
        self.events = []        # [{"id": str, "event": str, "data": str}]
        self.comments = []
        self.ended = False      # the last chunk arrived (clean end)
        self.eof = False        # the connection was closed
        self.status = None
        self.headers = {}
        self.body = b""         # for non-200 answers
        self._chunked = False
        self._read_head(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(left)
        try:
            b = self.sock.recv(262144)
        except ConnectionResetError:
            b = b""
            self.reset = True
        if not b:
            self.eof = True
        self.raw += b
        return b

    def _read_head(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.raw:
            if not self._recv(deadline):
                raise StreamClosed(f"connection closed before the response head: {self.raw!r}")
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if self.status != 200:
            n = int(self.headers.get("content-length", "-1"))
            while (n < 0 or len(self.raw) < n) and not self.eof:
                self._recv(deadline)
            self.body = self.raw if n < 0 else self.raw[:n]

    def _decode(self):
        if not self._chunked:
            self.text += self.raw
            self.raw = b""
            return
        while True:
            m = re.match(rb"([0-9a-fA-F]+)[^\r\n]*\r\n", self.raw)
            if not m:
                return
            size = int(m.group(1), 16)
            if size == 0:
                if self.raw.find(b"\r\n\r\n", m.start(1)) >= 0 or self.raw.endswith(b"0\r\n\r\n"):
                    self.ended = True
                    self.raw = b""
                return
            start = m.end()
            if len(self.raw) < start + size + 2:
                return
            self.text += self.raw[start:start + size]
            self.raw = self.raw[start + size + 2:]

    def _parse(self):
        while True:
            # SSE lines end in LF, CR or CRLF; herald writes LF
            m = re.search(rb"\r?\n\r?\n", self.text)
            if not m:
                return
            block, self.text = self.text[:m.start()], self.text[m.end():]
            ev = {}
            for line in block.decode("utf-8").split("\n"):
                line = line.rstrip("\r")
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                field, _, value = line.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                if field == "data" and "data" in ev:
                    ev["data"] += "\n" + value
                else:
                    ev[field] = value
            if ev:
                self.events.append(ev)

    def pump(self, deadline):
        """Reads once (waiting up to the deadline) and parses what arrived."""
        if self.eof:
            raise StreamClosed("stream closed")
        self._recv(deadline)
        self._decode()
        self._parse()

    def wait(self, cond, timeout=20.0, what="stream condition"):
        deadline = time.monotonic() + timeout
        self._decode()  # bytes that came with the response head
        self._parse()
        while not cond():
            try:
                self.pump(deadline)
            except socket.timeout:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; got "
                                     f"{len(self.events)} events, comments {self.comments[-3:]}")
            except StreamClosed:
                if cond():
                    return
                raise AssertionError(f"stream closed while waiting for {what}; got "
                                     f"{len(self.events)} events")

    def wait_events(self, n, timeout=20.0):
        self.wait(lambda: len(self.events) >= n, timeout, f"{n} events")
        return self.events

    def wait_end(self, timeout=20.0):
        """Reads until the server ends the stream: the last chunk (the connection may then stay
        open for keep-alive) or a close. Returns True if it ended cleanly (with the last chunk)."""
        deadline = time.monotonic() + timeout
        self._decode()
        self._parse()
        while not self.eof and not self.ended:
            try:
                self.pump(deadline)
            except StreamClosed:
                break
            except socket.timeout:
                raise AssertionError(f"stream still open {timeout}s later")
        return self.ended or not self._chunked


def publish(h, i, bus="default", tag="e"):
    ev = {"specversion": "1.0", "id": f"{tag}-{i}", "source": "/e2e/sse", "type": "sse.test",
          "datacontenttype": "application/json", "data": {"n": i, "tag": tag}}
    _, doc = h.json("POST", f"/v1/buses/{bus}/events", json.dumps(ev),
                    {"Content-Type": "application/cloudevents+json"}, expect=202)
    return doc["seq"]


def publish_batch(h, start, n, bus="default", tag="b", pad=0):
    evs = [{"specversion": "1.0", "id": f"{tag}-{i}", "source": "/e2e/sse", "type": "sse.test",
            "datacontenttype": "application/json", "data": {"n": i, "tag": tag, "pad": "x" * pad}}
           for i in range(start, start + n)]
    _, doc = h.json("POST", f"/v1/buses/{bus}/events", json.dumps(evs),
                    {"Content-Type": "application/cloudevents-batch+json"}, expect=202)
    return doc["seqs"]


def check_event(tc, sse_ev, seq, n, tag):
    tc.assertEqual(sse_ev.get("id"), str(seq), sse_ev)
    tc.assertEqual(sse_ev.get("event"), "cloudevent", sse_ev)
    env = json.loads(sse_ev["data"])
    tc.assertEqual(env["seq"], seq)
    tc.assertIsInstance(env["ingested"], str)
    tc.assertEqual(env["event"]["id"], f"{tag}-{n}")
    tc.assertEqual(env["event"]["data"]["n"], n)
    tc.assertEqual(env["event"]["data"]["tag"], tag)


def vm_rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class TestSSE(HeraldTestCase):
    def open(self, path, **kw):
        s = SSE(self.h.port, path, **kw)
        self.addCleanup(s.close)
        return s

    def test_live_delivery(self):
        before = publish(self.h, 0)
        s = self.open("/v1/buses/default/stream")
        self.assertEqual(s.status, 200)
        self.assertTrue(s.headers.get("content-type", "").startswith("text/event-stream"),
                        s.headers)
        seqs = [publish(self.h, i) for i in range(1, 6)]
        self.assertEqual(seqs, list(range(before + 1, before + 6)))
        evs = s.wait_events(5)
        for k, i in enumerate(range(1, 6)):
            check_event(self, evs[k], seqs[k], i, "e")
        # nothing from before the connection, nothing twice: the next one is the next seq
        nxt = publish(self.h, 6)
        s.wait_events(6)
        self.assertEqual([int(e["id"]) for e in s.events], seqs + [nxt])

    def test_from_replays_history_then_continues_live(self):
        seqs = [publish(self.h, i) for i in range(10)]
        self.assertEqual(seqs, list(range(1, 11)))
        s = self.open("/v1/buses/default/stream?from=1")
        evs = s.wait_events(10)
        for i in range(10):
            check_event(self, evs[i], i + 1, i, "e")
        more = [publish(self.h, i) for i in range(10, 15)]
        evs = s.wait_events(15)
        self.assertEqual([int(e["id"]) for e in evs], list(range(1, 16)))
        self.assertEqual(more, list(range(11, 16)))
        for i in range(10, 15):
            check_event(self, evs[i], i + 1, i, "e")
        # from in the middle
        s2 = self.open("/v1/buses/default/stream?from=7")
        evs2 = s2.wait_events(9)
        self.assertEqual([int(e["id"]) for e in evs2], list(range(7, 16)))

    def test_last_event_id_resumes_after_that_seq(self):
        for i in range(12):
            publish(self.h, i)
        s = self.open("/v1/buses/default/stream", headers={"Last-Event-ID": "4"})
        evs = s.wait_events(8)
        self.assertEqual([int(e["id"]) for e in evs], list(range(5, 13)))
        for k, e in enumerate(evs):
            check_event(self, e, 5 + k, 4 + k, "e")
        publish(self.h, 12)
        publish(self.h, 13)
        evs = s.wait_events(10)
        self.assertEqual([int(e["id"]) for e in evs], list(range(5, 15)))
        # a client that reconnects with the last id it saw gets exactly the rest, live
        s.close()
        s2 = self.open("/v1/buses/default/stream", headers={"Last-Event-ID": evs[-1]["id"]})
        self.assertEqual(s2.status, 200)
        nxt = publish(self.h, 14)
        evs2 = s2.wait_events(1)
        self.assertEqual([int(e["id"]) for e in evs2], [nxt])
        self.assertEqual(nxt, 15)

    def test_two_concurrent_streams_both_get_everything(self):
        publish(self.h, 0)
        a = self.open("/v1/buses/default/stream?from=1")
        b = self.open("/v1/buses/default/stream?from=1")
        seqs = [1] + publish_batch(self.h, 1, 50) + [publish(self.h, 51)]
        for s in (a, b):
            evs = s.wait_events(52)
            self.assertEqual([int(e["id"]) for e in evs], seqs)
            self.assertEqual(seqs, list(range(1, 53)))

    def test_slow_reader_is_bounded_and_catches_up(self):
        """A reader that stops reading while 20,000 events of 8 KiB (160 MiB, far beyond any
        socket buffer) are published: the server keeps serving (publishes, another stream,
        /healthz), its memory does not grow with the backlog (DESIGN.md §2.6; docs/api.md: a slow
        reader only holds its own position), and the slow reader then gets everything, in order,
        without gaps or duplicates."""
        n_batches, per, pad = 200, 100, 8192
        total = n_batches * per
        bound_kib = 64 * 1024  # < half the backlog; measured growth is ≈ 24 MiB under ASan
        warm = publish_batch(self.h, 0, per, tag="w", pad=pad)  # warm up allocator and caches
        slow = self.open(f"/v1/buses/default/stream?from={warm[-1] + 1}", rcvbuf=4096)
        fast = self.open(f"/v1/buses/default/stream?from={warm[-1] + 1}")
        self.assertEqual((slow.status, fast.status), (200, 200))
        fast_err = []

        def read_fast():
            try:
                fast.wait_events(total, timeout=240)
            except BaseException as e:  # reported below
                fast_err.append(e)
        t = threading.Thread(target=read_fast)
        t.start()
        rss0 = vm_rss_kib(self.h.proc.pid)
        peak = rss0
        seqs = []
        for b in range(n_batches):
            seqs += publish_batch(self.h, b * per, per, tag="s", pad=pad)
            peak = max(peak, vm_rss_kib(self.h.proc.pid))
        t.join(300)
        self.assertFalse(t.is_alive())
        self.assertEqual(fast_err, [])
        self.assertEqual(seqs, list(range(warm[-1] + 1, warm[-1] + 1 + total)))
        self.assertEqual([int(e["id"]) for e in fast.events], seqs)
        # the server is still healthy and serving while the slow reader is stuck
        self.assertEqual(self.h.http("GET", "/healthz")[0], 200)
        peak = max(peak, vm_rss_kib(self.h.proc.pid))
        self.assertLess(peak - rss0, bound_kib,
                        f"herald VmRSS grew by {peak - rss0} KiB (from {rss0} KiB) while a reader "
                        f"was stalled behind {total} events")
        # now the slow reader drains: everything, in order, no duplicates
        evs = slow.wait_events(total, timeout=240)
        self.assertEqual([int(e["id"]) for e in evs], seqs)
        for k in (0, total // 2, total - 1):
            check_event(self, evs[k], seqs[k], k, "s")
            self.assertEqual(len(json.loads(evs[k]["data"])["event"]["data"]["pad"]), pad)
        self.assertLess(vm_rss_kib(self.h.proc.pid) - rss0, bound_kib)

    def test_unknown_bus_is_404(self):
        s = self.open("/v1/buses/nosuchbus/stream")
        self.assertEqual(s.status, 404)
        err = json.loads(s.body)
        self.assertIsInstance(err.get("error"), str)
        self.assertIn("nosuchbus", err["error"])

    def test_bad_start_is_400(self):
        for q in ("from=abc", "from=-1", "from=1x", "from=", "from=99999999999999999999999"):
            with self.subTest(q=q):
                st, _, body = self.h.http("GET", f"/v1/buses/default/stream?{q}")
                self.assertEqual(st, 400, body)
                err = json.loads(body)
                self.assertEqual(err.get("field"), "from", err)
        st, _, body = self.h.http("GET", "/v1/buses/default/stream",
                                  headers={"Last-Event-ID": "not-a-seq"})
        self.assertEqual(st, 400, body)
        self.assertEqual(json.loads(body).get("field"), "Last-Event-ID")
        # and the server still streams
        s = self.open("/v1/buses/default/stream?from=1")
        publish(self.h, 0)
        s.wait_events(1)

    def test_stream_ends_cleanly_on_graceful_stop(self):
        publish(self.h, 0)
        s = self.open("/v1/buses/default/stream?from=1")
        s.wait_events(1)
        s2 = self.open("/v1/buses/default/stream")  # an idle, suspended stream too
        self.assertEqual(s2.status, 200)
        self.h.stop(timeout=30)  # asserts exit status 0
        self.assertTrue(s.wait_end(10), "stream did not end with the last chunk")
        self.assertTrue(s2.wait_end(10), "idle stream did not end with the last chunk")
        self.assertEqual(len(s.events), 1)

    def test_stream_ends_when_bus_is_deleted(self):
        self.h.json("PUT", "/v1/buses/doomed", {}, expect=201)
        publish(self.h, 0, bus="doomed")
        s = self.open("/v1/buses/doomed/stream?from=1")
        s.wait_events(1)
        idle = self.open("/v1/buses/doomed/stream")
        self.assertEqual(idle.status, 200)
        st, _, body = self.h.http("DELETE", "/v1/buses/doomed?force=true")
        self.assertEqual(st, 204, body)
        self.assertTrue(s.wait_end(10))
        self.assertTrue(idle.wait_end(10))
        self.assertEqual(self.h.http("GET", "/v1/buses/doomed/stream")[0], 404)
        # the rest of the server is unaffected
        d = self.open("/v1/buses/default/stream")
        publish(self.h, 1)
        d.wait_events(1)


class TestSSEHeartbeat(HeraldTestCase):
    server_args = ("--heartbeat", "1")

    def test_idle_stream_gets_heartbeats(self):
        s = SSE(self.h.port, "/v1/buses/default/stream")
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200)
        s.wait(lambda: "heartbeat" in s.comments, timeout=15, what=": heartbeat")
        n = s.comments.count("heartbeat")
        s.wait(lambda: s.comments.count("heartbeat") > n, timeout=15, what="a second heartbeat")
        self.assertEqual(s.events, [])
        # heartbeats do not disturb delivery
        seq = publish(self.h, 0)
        s.wait_events(1)
        check_event(self, s.events[0], seq, 0, "e")


if __name__ == "__main__":
    unittest.main()
