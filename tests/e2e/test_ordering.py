# SPDX-License-Identifier: MIT
"""Delivery order (DESIGN.md §2.3, docs/api.md Triggers `ordering`): with `"ordering": "key"` the
events of one key (the `partitionkey` extension, else `subject`) reach the sink one at a time in
seq order, even when the sink delays and fails at random; different keys are delivered in
parallel, and a key held up by retries holds up only that key. With `"ordering": "none"` and
`max_in_flight` 1 delivery is strictly sequential.

The sink here (OrderSink) is a real threaded HTTP server like sinks.Sink, but it decides each
answer from the request (its key) and checks the ordering contract at the moment each request
arrives, under one lock:
- an event of key K arrives only when every earlier event of K has been answered 2xx
  (a "premature" arrival is a violation), and never while another request of K is in flight;
- it counts requests in flight at each moment (overall and distinct keys), so the tests can show
  that keys were delivered concurrently and that max_in_flight held.
An answer is counted as given just before its bytes are written, so herald cannot have seen it
earlier than the sink thinks.
"""
import http.server
import json
import os
import random
import socketserver
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HeraldTestCase, free_port, wait_for  # noqa: E402


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # herald closing a keep-alive connection is not an error


class OrderSink:
    """Records arrivals and checks per-key order. Event ids are "<key>-<index>"; a key's events
    are published in index order, so index order is seq order within the key.

    key_header: the ce- attribute that is the ordering key ("partitionkey" or "subject").
    decide(key, index) -> (status, delay seconds), called under no lock.
    """

    def __init__(self, key_header, decide):
        self.port = free_port()
        self.key_header = key_header
        self.decide = decide
        self.mu = threading.Condition()
        self.arrivals = []         # (t, key, index) in arrival order
        self.answers = []          # (t, key, index, status) in answer order
        self.acked = {}            # key -> set of indexes answered 2xx
        self.inflight = {}         # key -> requests in flight
        self.inflight_total = 0
        self.max_total = 0
        self.max_keys = 0
        self.violations = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _arrive(self, key, idx):
        with self.mu:
            now = time.monotonic()
            self.arrivals.append((now, key, idx))
            self.inflight_total += 1
            self.max_total = max(self.max_total, self.inflight_total)
            if key is not None:
                if self.inflight.get(key, 0):
                    self.violations.append(f"{key}-{idx} arrived while another request of key "
                                           f"{key} was in flight")
                self.inflight[key] = self.inflight.get(key, 0) + 1
                done = self.acked.setdefault(key, set())
                missing = [i for i in range(idx) if i not in done]
                if missing:
                    self.violations.append(f"{key}-{idx} arrived before {key}-{missing[0]} was "
                                           f"answered 2xx")
                self.max_keys = max(self.max_keys, sum(1 for v in self.inflight.values() if v))

    def _answer(self, key, idx, status):
        with self.mu:
            self.answers.append((time.monotonic(), key, idx, status))
            self.inflight_total -= 1
            if key is not None:
                self.inflight[key] -= 1
                if 200 <= status < 300:
                    self.acked[key].add(idx)
            self.mu.notify_all()

    def start(self):
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                if n:
                    self.rfile.read(n)
                eid = self.headers.get("ce-id", "")
                key = self.headers.get("ce-" + sink.key_header)
                idx = int(eid.rsplit("-", 1)[1])
                sink._arrive(key, idx)
                status, delay = sink.decide(key, idx)
                if delay:
                    time.sleep(delay)  # the sink's own processing time (random 0-50 ms)
                sink._answer(key, idx, status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = _Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def acked_count(self, key=None):
        with self.mu:
            if key is not None:
                return len(self.acked.get(key, ()))
            return sum(len(v) for v in self.acked.values())

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        with self.mu:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self.mu.wait(min(left, 0.2))

    def first_success_order(self):
        """key -> indexes in the order of their first 2xx answer."""
        out, seen = {}, set()
        with self.mu:
            for _, key, idx, status in self.answers:
                if 200 <= status < 300 and (key, idx) not in seen:
                    seen.add((key, idx))
                    out.setdefault(key, []).append(idx)
        return out


class RandomFaults:
    """decide(): a random delay of 0-50 ms and ~20% 503s, from a seeded generator."""

    def __init__(self, seed, fail=0.2, max_delay=0.05):
        self.rng = random.Random(seed)
        self.mu = threading.Lock()
        self.fail, self.max_delay = fail, max_delay

    def __call__(self, key, idx):
        with self.mu:
            status = 503 if self.rng.random() < self.fail else 202
            return status, self.rng.uniform(0, self.max_delay)


class TestOrdering(HeraldTestCase):
    def setUp(self):
        super().setUp()
        # stop gracefully at the end (after the sinks), requiring exit code 0 (ASan/LSan)
        self.addCleanup(self.h.stop)
        self.seed = int(os.environ.get("HERALD_ORDER_SEED", random.randrange(1 << 30)))

    def msg(self, text):
        return f"{text} (seed {self.seed})"

    def start_sink(self, key_header, decide):
        sink = OrderSink(key_header, decide).start()
        self.addCleanup(sink.stop)
        return sink

    def put_trigger(self, name, sink, **members):
        doc = {"sink": sink.url + "/" + name,
               "delivery": {"retry": 1000, "backoff_policy": "linear", "backoff_delay": "PT0.01S",
                            "max_backoff": "PT0.05S"}}
        doc.update(members)
        self.h.json("PUT", f"/v1/triggers/{name}", doc, expect=201)

    def publish_batch(self, evs):
        st, _, body = self.h.http("POST", "/v1/buses/default/events", json.dumps(evs),
                                  {"Content-Type": "application/cloudevents-batch+json"})
        self.assertEqual(st, 202, body)
        return json.loads(body)["seqs"]

    def event(self, key, idx, key_attr):
        ev = {"specversion": "1.0", "id": f"{key}-{idx}", "source": "/e2e/ordering",
              "type": "com.example.ordered", "datacontenttype": "application/json",
              "data": {"key": key, "i": idx}}
        if key_attr == "partitionkey":
            ev["partitionkey"] = key
            # a subject that differs per event: the partitionkey, not the subject, is the key
            ev["subject"] = f"noise/{key}/{idx}"
        elif key_attr == "subject":
            ev["subject"] = key
        return ev

    def wait_cursor(self, name, timeout=60):
        last = self.h.json("GET", "/v1/buses/default", expect=200)[1]["stats"]["last_seq"]

        def done():
            st = self.h.json("GET", f"/v1/triggers/{name}", expect=200)[1]["status"]
            return st if st["cursor"] == last else None
        return wait_for(done, timeout, interval=0.05, what=f"trigger {name} cursor at {last}")

    def check_key_order(self, sink, keys, per_key):
        self.assertEqual(sink.violations, [], self.msg("per-key order broken"))
        order = sink.first_success_order()
        for k in keys:
            self.assertEqual(order.get(k), list(range(per_key)),
                             self.msg(f"key {k}: first successful deliveries out of seq order"))

    def run_keyed(self, key_attr, n_keys, per_key, max_in_flight, unkeyed=0):
        sink = self.start_sink(key_attr, RandomFaults(self.seed))
        self.put_trigger("keyed", sink, ordering="key", max_in_flight=max_in_flight)
        keys = [f"k{j:02d}" for j in range(n_keys)]
        # one batch per round: every key gets its next event, so keys interleave in the log
        for i in range(per_key):
            evs = [self.event(k, i, key_attr) for k in keys]
            if i < unkeyed:
                evs.append(self.event("free", i, None))
            self.publish_batch(evs)
        total = n_keys * per_key + min(unkeyed, per_key)
        st = self.wait_cursor("keyed", timeout=120)
        self.check_key_order(sink, keys, per_key)
        self.assertEqual(st["delivered"], total)
        self.assertEqual(st["failed"], 0)
        self.assertGreater(st["retried"], 0, self.msg("the sink's 503s were not retried"))
        self.assertGreater(sink.max_keys, 1, self.msg("keys were never delivered in parallel"))
        self.assertLessEqual(sink.max_total, max_in_flight,
                             self.msg("more requests in flight than max_in_flight"))
        return sink

    def test_partitionkey_order_under_random_delays_and_failures(self):
        """20 keys x 30 events, the sink delays 0-50 ms and answers ~20% with 503."""
        sink = self.run_keyed("partitionkey", 20, 30, max_in_flight=8)
        print(f"\nkeyed: max {sink.max_total} in flight over {sink.max_keys} keys, "
              f"{len(sink.arrivals)} requests, seed {self.seed}", file=sys.stderr)

    def test_subject_is_the_key_without_partitionkey(self):
        """8 subjects x 15 events in order per subject; events with neither attribute are
        delivered too (unordered)."""
        sink = self.run_keyed("subject", 8, 15, max_in_flight=16, unkeyed=10)
        got = sink.first_success_order().get(None, [])
        self.assertEqual(sorted(got), list(range(10)), "unkeyed events were not all delivered")

    def run_held_up(self, per_key, max_in_flight=None):
        """Key "stuck" answers 503 until the test releases it; meanwhile every other key's events
        are all delivered in order, no later "stuck" event is attempted, and the trigger's cursor
        stays before the held event. Once released, "stuck" is delivered in order too."""
        release = threading.Event()

        def decide(key, idx):
            if key == "stuck" and not release.is_set():
                return 503, 0
            return 202, 0.001

        sink = self.start_sink("partitionkey", decide)
        # retries outlast the test's waits (1000 x up to 0.2 s)
        members = {"ordering": "key", "delivery": {"retry": 1000, "backoff_delay": "PT0.02S",
                                                   "max_backoff": "PT0.2S"}}
        if max_in_flight:
            members["max_in_flight"] = max_in_flight
        self.put_trigger("keyed", sink, **members)
        keys = ["stuck"] + [f"k{j}" for j in range(9)]
        for i in range(per_key):
            self.publish_batch([self.event(k, i, "partitionkey") for k in keys])
        others = (len(keys) - 1) * per_key
        stalled = None
        try:
            sink.wait(lambda: sink.acked_count() - sink.acked_count("stuck") == others, 30,
                      "every other key's events to be delivered while 'stuck' fails")
        except AssertionError as e:
            stalled = str(e)
        if stalled:
            st = self.h.json("GET", "/v1/triggers/keyed", expect=200)[1]["status"]
            release.set()
            self.fail(f"{stalled}: {sink.acked_count() - sink.acked_count('stuck')} of {others} "
                      f"delivered; the trigger: {st}")
        with sink.mu:
            stuck = [(k, i) for _, k, i in sink.arrivals if k == "stuck"]
        self.assertGreaterEqual(len(stuck), 1)
        self.assertEqual({i for _, i in stuck}, {0},
                         "a later event of the held-up key was attempted")
        self.assertEqual(sink.acked_count("stuck"), 0)
        st = self.h.json("GET", "/v1/triggers/keyed", expect=200)[1]["status"]
        self.assertEqual(st["cursor"], 0, "the cursor passed an event that is still failing")
        self.assertGreater(st["lag_events"], 0)
        release.set()
        st = self.wait_cursor("keyed")
        self.check_key_order(sink, keys, per_key)
        self.assertEqual((st["delivered"], st["failed"]), (len(keys) * per_key, 0))

    def test_held_up_key_holds_up_only_that_key(self):
        """10 keys x 10 events, max_in_flight 16: the held-up key's events and the others fit in
        the trigger's in-memory window (4 x max_in_flight, at least 128 events)."""
        self.run_held_up(per_key=10, max_in_flight=16)

    def test_held_up_key_does_not_stall_other_keys_past_the_window(self):
        """The same with the defaults (max_in_flight 64) and 360 events of other keys behind the
        held one: more than the trigger keeps in memory (256 events). Other keys must keep
        flowing however far they get ahead of the held key (docs/api.md: different keys in
        parallel; a key held up by retries holds up only that key)."""
        self.run_held_up(per_key=40)

    def test_ordering_none_with_max_in_flight_1_is_sequential(self):
        """One request at a time, each only after the previous was answered, in seq order."""
        rng = random.Random(self.seed)
        lock = threading.Lock()

        def decide(key, idx):
            with lock:
                return 202, rng.uniform(0, 0.02)

        sink = self.start_sink("partitionkey", decide)
        self.put_trigger("seq", sink, ordering="none", max_in_flight=1)
        n = 80
        for b in range(4):
            self.publish_batch([self.event(f"p{i % 7}", b * 20 + i, None) for i in range(20)])
        st = self.wait_cursor("seq")
        self.assertEqual(st["delivered"], n)
        self.assertEqual(sink.max_total, 1, "more than one request in flight")
        with sink.mu:
            arrivals = list(sink.arrivals)
            answers = list(sink.answers)
        self.assertEqual([i for _, _, i in arrivals], list(range(n)), "not delivered in seq order")
        for (t_next, _, i), (t_ans, _, j, _) in zip(arrivals[1:], answers):
            self.assertGreaterEqual(t_next, t_ans, f"event {i} arrived before {j} was answered")


if __name__ == "__main__":
    unittest.main()
