# SPDX-License-Identifier: MIT
"""Back-pressure toward a sink that is down (DESIGN.md §2.2, §2.6): 200,000 events arrive while
the trigger's sink is not listening. Herald's memory stays bounded (the trigger keeps a bounded
ring of events in memory and reads the rest from the log when there is room), nothing is lost,
and once the sink is back every event is delivered at least once and the cursor reaches the
bus's last seq.

The sink here is a small asyncio HTTP/1.1 server (FastSink) rather than sinks.Sink: 200,000
requests through a thread-per-connection server that keeps every request's headers and body would
take minutes and hundreds of MiB in the test process; FastSink keeps only a count per ce-id.
"""
import asyncio
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HeraldTestCase, free_port, wait_for  # noqa: E402

# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by default) that inflates RSS
# with allocation churn; cap it so that VmRSS reflects live memory. Children inherit this.
os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"

TOTAL = 200_000
BATCH = 1000
# The bound on herald's VmRSS growth while the backlog builds. What herald may hold per trigger
# is a ring of at most max_in_flight x 4 entries (256 here) and 8 MiB of event bytes; what grows
# with the log is per-event metadata only: the dedup table (source + id of 200,000 events within
# the 10-minute window) and the log's seq/time index, a few tens of bytes per event, ~10-20 MiB
# even with ASan's redzones, plus the allocator's and ASan's (16 MiB quarantine) slack. The
# backlog itself is ~40 MiB of events on disk; a server that queued it in memory (decoded events,
# per-event attempt state) would grow by well over 150 MiB under ASan.
RSS_BOUND_KIB = 150 * 1024


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class FastSink:
    """A keep-alive HTTP/1.1 sink on an asyncio loop in its own thread: answers every POST with
    202 and counts deliveries per ce-id. Listens only between start() and stop()."""

    def __init__(self, port):
        self.port = port
        self.counts = {}       # ce-id -> deliveries (written by the loop thread only)
        self.requests = 0
        self.loop = None

    async def _handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, chunked, eid, expect = 0, False, None, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"ce-id":
                        eid = value.strip().decode()
                    elif name == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                    elif name == b"expect" and b"100-continue" in value.lower():
                        expect = True
                if expect:
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                if chunked:
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                elif length:
                    await reader.readexactly(length)
                self.requests += 1
                self.counts[eid] = self.counts.get(eid, 0) + 1
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _shutdown(self):
        self.server.close()
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.server.wait_closed()

    def start(self):
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True,
                                     backlog=512))
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self._shutdown())
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise AssertionError("the sink did not start")
        return self

    def stop(self):
        if self.loop and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


class TestBackpressure(HeraldTestCase):
    def setUp(self):
        super().setUp()
        # stop gracefully at the end (after the sink), requiring exit code 0 (ASan/LSan)
        self.addCleanup(self.h.stop)

    def publish_batch(self, evs):
        st, _, body = self.h.http("POST", "/v1/buses/default/events", json.dumps(evs),
                                  {"Content-Type": "application/cloudevents-batch+json"},
                                  timeout=60)
        self.assertEqual(st, 202, body[:300])
        return json.loads(body)["seqs"]

    def batch(self, b, kind="bp"):
        return [{"specversion": "1.0", "id": f"{kind}-{b * BATCH + i}", "source": "/e2e/bp",
                 "type": f"com.example.{kind}", "datacontenttype": "application/json",
                 "data": {"n": b * BATCH + i}} for i in range(BATCH)]

    def trigger_status(self):
        return self.h.json("GET", "/v1/triggers/bp", expect=200)[1]["status"]

    def test_down_sink_bounded_memory_then_everything_delivered(self):
        t0 = time.monotonic()
        port = free_port()  # nothing listens here until the sink comes back
        self.h.json("PUT", "/v1/triggers/bp", {
            "sink": f"http://127.0.0.1:{port}/bp",
            "filters": [{"exact": {"type": "com.example.bp"}}],
            "delivery": {"retry": 1000, "backoff_delay": "PT0.05S", "max_backoff": "PT0.5S"}},
            expect=201)
        # warm up allocator and caches with events the trigger does not match
        for b in range(5):
            self.publish_batch(self.batch(b, kind="warm"))
        first = 5 * BATCH + 1
        pid = self.h.proc.pid
        rss0 = peak = vm_rss_kib(pid)
        seqs = []
        for b in range(TOTAL // BATCH):
            seqs += self.publish_batch(self.batch(b))
            if b % 10 == 9:
                peak = max(peak, vm_rss_kib(pid))
        t_pub = time.monotonic() - t0
        self.assertEqual(seqs, list(range(first, first + TOTAL)))
        st = self.trigger_status()
        peak = max(peak, vm_rss_kib(pid))
        self.assertEqual(st["delivered"], 0, "delivered while the sink was down?")
        self.assertEqual(st["failed"], 0, "dead-lettered while retries remain")
        self.assertEqual(st["cursor"], first - 1)
        self.assertEqual(st["lag_events"], TOTAL)
        self.assertGreater(st["retried"], 0)
        self.assertIsNotNone(st["last_error"])
        self.assertLess(peak - rss0, RSS_BOUND_KIB,
                        f"herald VmRSS grew by {peak - rss0} KiB (from {rss0} KiB) with "
                        f"{TOTAL} events waiting for a down sink")

        sink = FastSink(port).start()
        self.addCleanup(sink.stop)

        def drained():
            s = self.trigger_status()
            return s if s["cursor"] == first - 1 + TOTAL else None
        st = wait_for(drained, timeout=300, interval=0.5,
                      what=f"the cursor at {first - 1 + TOTAL} after the sink came back")
        t_all = time.monotonic() - t0
        missing = [i for i in range(TOTAL) if f"bp-{i}" not in sink.counts]
        self.assertEqual(missing[:10], [], f"{len(missing)} events never delivered")
        self.assertEqual(len(sink.counts), TOTAL, "something else was delivered")
        self.assertEqual(st["delivered"], TOTAL)
        self.assertEqual(st["failed"], 0)
        rss_end = vm_rss_kib(pid)
        print(f"\nbackpressure: {TOTAL} events published in {t_pub:.1f}s, herald VmRSS "
              f"{rss0} KiB -> peak {peak} KiB (+{(peak - rss0) // 1024} MiB) while the sink was "
              f"down, {rss_end} KiB after delivery; {sink.requests} deliveries, all delivered "
              f"{t_all:.1f}s after the start", file=sys.stderr)
        sink.stop()


if __name__ == "__main__":
    unittest.main()
