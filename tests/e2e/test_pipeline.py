# SPDX-License-Identifier: MIT
"""HTTP/1.1 pipelining to sinks (docs/api.md, `delivery.pipeline`): with pipeline N, deliveries
that start together share one keep-alive connection, up to N at a time, and reach the sink in
one write; every event still arrives with its attributes and data; a sink that closes a
connection with answers still owed gets the unanswered events again, and nothing is lost; with
the default (1) a connection never carries a second request before the first is answered.

The sink here is a raw socket server, not http.server, because the test must see how requests
arrive: it counts how many complete requests each read() brought, per connection."""
import json
import os
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trigger_util import (CE_BATCH, TriggerTestCase, decode_header, ev, get_trigger,  # noqa: E402
                          put_trigger, wait_settled)

EVENTS = 400


class RawSink:
    """Answers every complete request with 202 (all answers owed after one read go out in
    one write). close_after=K: after K answers on a connection, close it, dropping whatever
    else that connection had sent. Records (conn, head, body) per request and, per read, how
    many complete requests it completed."""

    def __init__(self, close_after=0):
        self.close_after = close_after
        self.lock = threading.Lock()
        self.reqs = []          # (conn number, {header: value}, body)
        self.per_read = []      # complete requests found after each read
        self.dropped = 0        # complete requests left unanswered by a close_after close
        self.conns = 0
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(128)
        self.port = self.srv.getsockname()[1]
        self.stopping = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/in"

    def stop(self):
        self.stopping = True
        self.srv.close()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            t = threading.Thread(target=self._serve, args=(c, n), daemon=True)
            t.start()

    def _serve(self, c, n):
        buf, answered = b"", 0
        c.settimeout(60)
        try:
            while True:
                data = c.recv(1 << 20)
                if not data:
                    return
                buf += data
                done = 0
                while True:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    lines = buf[:end].decode("latin-1").split("\r\n")
                    hdrs = {}
                    for line in lines[1:]:
                        k, _, v = line.partition(":")
                        hdrs[k.strip().lower()] = v.strip()
                    size = int(hdrs.get("content-length", "0"))
                    if len(buf) < end + 4 + size:
                        break
                    body = buf[end + 4:end + 4 + size]
                    buf = buf[end + 4 + size:]
                    with self.lock:
                        self.reqs.append((n, hdrs, body))
                    done += 1
                with self.lock:
                    self.per_read.append(done)
                out = b""
                for i in range(done):
                    answered += 1
                    out += b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
                    if self.close_after and answered == self.close_after:
                        with self.lock:
                            self.dropped += done - i - 1
                        c.sendall(out)
                        return  # drops what else this connection sent
                if out:
                    c.sendall(out)
        except OSError:
            return
        finally:
            c.close()

    def ids(self):
        with self.lock:
            return [decode_header(h["ce-id"]) for _, h, _ in self.reqs]


class PipelineTest(TriggerTestCase):

    def raw_sink(self, **kw):
        s = RawSink(**kw)
        self.addCleanup(s.stop)
        return s

    def publish_all(self, prefix):
        """EVENTS events in batches of 100 (so that many deliveries start together)."""
        seqs = []
        for b in range(EVENTS // 100):
            batch = [ev(f"{prefix}-{b * 100 + i}", type_="pipe.x", data={"n": b * 100 + i})
                     for i in range(100)]
            status, _, data = self.h.http("POST", "/v1/buses/default/events",
                                          body=json.dumps(batch),
                                          headers={"Content-Type": CE_BATCH})
            self.assertEqual(status, 202, data)
            seqs += json.loads(data)["seqs"]
        return seqs

    def test_pipelined_deliveries_share_a_write_and_arrive_intact(self):
        sink = self.raw_sink()
        put_trigger(self.h, "p", {"sink": sink.url, "delivery": {"pipeline": 8}}, expect=201)
        self.assertEqual(get_trigger(self.h, "p")["delivery"]["pipeline"], 8)
        seqs = self.publish_all("p")
        st = wait_settled(self.h, "p", seqs[-1])
        got = sink.ids()
        want = [f"p-{i}" for i in range(EVENTS)]
        self.assertEqual(sorted(got), sorted(want), "every event exactly once")
        self.assertEqual((st["delivered"], st["failed"]), (EVENTS, 0))
        # several requests came in one read: they were pipelined
        self.assertGreater(max(sink.per_read), 1, sink.per_read[:50])
        # and each is intact: attributes as ce- headers, data as the body
        with sink.lock:
            reqs = list(sink.reqs)
        for _, hdrs, body in reqs:
            n = int(decode_header(hdrs["ce-id"]).split("-")[1])
            self.assertEqual(decode_header(hdrs["ce-type"]), "pipe.x")
            self.assertEqual(json.loads(body), {"n": n})

    def test_default_never_pipelines(self):
        sink = self.raw_sink()
        put_trigger(self.h, "d", {"sink": sink.url}, expect=201)
        self.assertEqual(get_trigger(self.h, "d")["delivery"]["pipeline"], 1)
        seqs = self.publish_all("d")
        wait_settled(self.h, "d", seqs[-1])
        self.assertEqual(sorted(sink.ids()), sorted(f"d-{i}" for i in range(EVENTS)))
        self.assertEqual(max(sink.per_read), 1, "a second request before the first's answer")

    def test_sink_closing_with_answers_owed_loses_nothing(self):
        # every connection is closed after 3 answers, with pipelined requests still unanswered
        sink = self.raw_sink(close_after=3)
        put_trigger(self.h, "c", {"sink": sink.url, "delivery": {"pipeline": 8}}, expect=201)
        seqs = self.publish_all("c")
        st = wait_settled(self.h, "c", seqs[-1], timeout=60)
        got = sink.ids()
        self.assertEqual(set(got), {f"c-{i}" for i in range(EVENTS)}, "nothing lost")
        self.assertEqual((st["delivered"], st["failed"]), (EVENTS, 0))
        # requests were left unanswered by the closes, and were sent again (nothing is
        # lost, above), never counted as failures
        self.assertGreater(sink.dropped, 0, "no pipelined request was left unanswered")
        self.assertGreater(max(sink.per_read), 1)


if __name__ == "__main__":
    unittest.main()
