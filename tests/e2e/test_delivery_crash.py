# SPDX-License-Identifier: MIT
"""kill -9 during delivery under load: at least once, with bounded duplicates (DESIGN.md §2.2,
docs/api.md Triggers: cursors are written every flush interval; after a restart delivery resumes
after the stored cursor).

Five rounds on one data directory. Each round: start herald (`--cursor-flush-ms 50`), publishers
keep publishing batches (most events match the trigger's filter, some do not), a real sink
(sinks.Sink) accepts every delivery after a small random delay, and at a random moment 2-4 s
into the round's deliveries herald gets SIGKILL. After the last crash herald starts once more,
nothing is published, and the trigger's cursor must reach the bus's last seq. Then:

- every acknowledged event that matches was delivered at least once (the union of what the sink
  saw over all rounds);
- nothing was delivered that does not match or was never sent (acknowledged, or unknown: the
  request died with the server);
- each delivered request carries the event's exact data;
- duplicates are bounded, per crash (see DupBound below).
"""
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Herald, wait_for  # noqa: E402
from sinks import Answer, Sink  # noqa: E402

ROUNDS = 5
PUBLISHERS = 3
MAX_IN_FLIGHT = 16
FLUSH_MS = 50
MAX_SINK_DELAY = 0.02
BACKLOG = 400  # publishers pause while this many acknowledged events wait for delivery
MATCH, OTHER = "com.example.crash.match", "com.example.crash.other"

# DupBound. After kill -9 herald resumes at stored cursor C + 1, where C is the cursor of the
# last flush that reached the metadata store before the kill. Every seq <= C was settled at that
# flush, so a redelivered event has seq > C, and it was delivered before the kill either
# (a) in flight at the crash - at most max_in_flight of them - or (b) settled after that flush.
# We cannot see the flush itself, only the sink's clock; an event of kind (b) was started no
# earlier than the oldest event in flight at the flush (ordering "none" starts events in seq
# order and this sink never fails), so it reached the sink no earlier than
# kill - WINDOW, WINDOW = flush interval (50 ms) + time to commit the cursors (a SQLite
# transaction with fsync) + the longest a request is in flight (sink delay <= 20 ms), with a
# generous margin for scheduling under ASan on 2 shared cores. Asserted per crash:
#   redelivered <= max_in_flight + |events the sink saw in the last WINDOW before the kill|
# and, more sharply, every redelivered event is one of those seen in that window. A cursor that
# is never flushed, flushed late or goes backwards redelivers events from before the window.
WINDOW = 1.5


def new_event(rnd, tid, k, rng):
    ev = {"specversion": "1.0", "id": f"r{rnd}-t{tid}-{k}", "source": "/e2e/delivery-crash",
          "type": MATCH if rng.random() < 0.8 else OTHER, "datacontenttype": "application/json",
          "data": {"r": rnd, "t": tid, "k": k, "pad": "x" * rng.randrange(0, 300)}}
    return ev


class Ledger:
    def __init__(self):
        self.mu = threading.Lock()
        self.acked = {}     # id -> event
        self.unknown = {}   # id -> event
        self.errors = []
        self.round_acks = 0


class Publisher(threading.Thread):
    """Publishes batches of 1-8 events over one keep-alive connection until stopped or the
    server dies; records what was acknowledged and what is unknown. Pauses (bounded waits)
    while the delivery backlog exceeds BACKLOG, so the final drain stays short."""

    def __init__(self, port, rnd, tid, ledger, stop, backlog, seed):
        super().__init__(daemon=True)
        self.port, self.rnd, self.tid = port, rnd, tid
        self.ledger, self.stop, self.backlog = ledger, stop, backlog
        self.rng = random.Random(seed)
        self.k = 0

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            while not self.stop.is_set():
                if self.backlog() > BACKLOG:
                    self.stop.wait(0.01)
                    continue
                evs = []
                for _ in range(self.rng.randrange(1, 9)):
                    self.k += 1
                    evs.append(new_event(self.rnd, self.tid, self.k, self.rng))
                try:
                    conn.request("POST", "/v1/buses/default/events", body=json.dumps(evs),
                                 headers={"Content-Type": "application/cloudevents-batch+json"})
                    r = conn.getresponse()
                    body = r.read()
                except (OSError, http.client.HTTPException):
                    with self.ledger.mu:
                        self.ledger.unknown.update((e["id"], e) for e in evs)
                    return  # the server is gone
                if r.status == 503:
                    continue  # overloaded: nothing stored
                with self.ledger.mu:
                    if r.status != 202:
                        self.ledger.errors.append(f"publish: {r.status} {body[:300]!r}")
                        return
                    self.ledger.acked.update((e["id"], e) for e in evs)
                    self.ledger.round_acks += len(evs)
        finally:
            conn.close()


class TestDeliveryKill9(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-dcrash-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.mkdir(os.path.join(self.dir, "data"))
        self.h = Herald(data_dir=os.path.join(self.dir, "data"),
                        args=["--cursor-flush-ms", str(FLUSH_MS)])
        self.addCleanup(self.h.cleanup)
        self.seed = int(os.environ.get("HERALD_CRASH_SEED", random.randrange(1 << 30)))
        self.rng = random.Random(self.seed)
        self.sink = Sink()
        drng = random.Random(self.seed + 1)
        self.sink.script("/crash", [Answer(202, delay=drng.uniform(0, MAX_SINK_DELAY))
                                    for _ in range(50000)])
        self.sink.start()
        # herald killed mid-request leaves the sink writing to a dead socket: not an error here
        self.sink._httpd.handle_error = lambda *a: None
        self.addCleanup(self.sink.stop)

    def fail_with_log(self, msg):
        self.fail(f"{msg}\n(seed {self.seed}; herald log tail:)\n{self.h.tail_log()}")

    def test_kill9_during_delivery(self):
        ledger = Ledger()
        starts, kills = [], []
        t0 = time.monotonic()

        def backlog():
            n_seen = len(self.sink.requests())
            with ledger.mu:
                return sum(1 for e in ledger.acked.values() if e["type"] == MATCH) - n_seen

        for rnd in range(ROUNDS):
            starts.append(time.monotonic())
            self.h.start()
            if rnd == 0:
                self.h.json("PUT", "/v1/triggers/crash", {
                    "sink": self.sink.url + "/crash",
                    "filters": [{"exact": {"type": MATCH}}],
                    "max_in_flight": MAX_IN_FLIGHT, "start": "earliest",
                    "delivery": {"retry": 1000, "backoff_delay": "PT0.05S",
                                 "max_backoff": "PT0.2S"}}, expect=201)
            ledger.round_acks = 0
            stop = threading.Event()
            pubs = [Publisher(self.h.port, rnd, t, ledger, stop, backlog, self.rng.random())
                    for t in range(PUBLISHERS)]
            for p in pubs:
                p.start()
            try:
                n0 = len(self.sink.requests())
                self.sink.wait_for(lambda reqs: len(reqs) >= n0 + 20 or ledger.errors, 60,
                                   what="deliveries in this round")
                # the random moment of the crash: the point of the test, not a wait
                stop.wait(self.rng.uniform(2.0, 4.0))
            finally:
                kills.append(time.monotonic())
                self.h.kill9()
                stop.set()
                for p in pubs:
                    p.join(30)
            self.assertFalse(any(p.is_alive() for p in pubs), "a publisher hung after kill -9")
            self.assertEqual(ledger.errors, [], f"seed {self.seed}")
            self.assertGreater(ledger.round_acks, 0, "nothing was published in a round")

        # the last start: no more publishing, everything must drain
        starts.append(time.monotonic())
        self.h.start()
        _, bus = self.h.json("GET", "/v1/buses/default", expect=200)
        last = bus["stats"]["last_seq"]

        def drained():
            _, doc = self.h.json("GET", "/v1/triggers/crash", expect=200)
            return doc["status"] if doc["status"]["cursor"] == last else None
        try:
            st = wait_for(drained, 120, interval=0.05, what=f"the cursor to reach {last}")
        except AssertionError as e:
            self.fail_with_log(str(e))
        # a request cut off by the kill (body shorter than its Content-Length) is not a delivery
        reqs = [r for r in self.sink.requests("/crash")
                if len(r.body) == int(r.headers.get("content-length") or 0)]
        self.h.stop()
        elapsed = time.monotonic() - t0

        # every delivered request: a matching event somebody sent, with its exact data
        sent = dict(ledger.unknown)
        sent.update(ledger.acked)
        for r in reqs:
            eid = r.headers.get("ce-id")
            ev = sent.get(eid)
            if ev is None:
                self.fail_with_log(f"delivered an event nobody sent: {r}")
            if r.headers.get("ce-type") != MATCH:
                self.fail_with_log(f"delivered an event that does not match the filter: {r}")
            if json.loads(r.body) != ev["data"]:
                self.fail_with_log(f"event {eid} delivered with other data: {r.body[:200]!r}")

        # at least once: every acknowledged matching event
        seen = {r.headers.get("ce-id") for r in reqs}
        missing = sorted(i for i, e in ledger.acked.items() if e["type"] == MATCH and i not in seen)
        if missing:
            self.fail_with_log(f"{len(missing)} acknowledged matching events were never "
                               f"delivered, e.g. {missing[:5]}")

        # bounded duplicates per crash (DupBound above)
        def lifetime(t):
            return max(i for i, s in enumerate(starts) if s <= t)
        by_life = [[] for _ in starts]
        for r in reqs:
            by_life[lifetime(r.t)].append(r)
        report = []
        for rnd in range(ROUNDS):
            before = {r.headers["ce-id"] for life in by_life[:rnd + 1] for r in life}
            after = {r.headers["ce-id"] for r in by_life[rnd + 1]}
            redelivered = before & after
            window = {r.headers["ce-id"] for life in by_life[:rnd + 1] for r in life
                      if r.t >= kills[rnd] - WINDOW}
            last_t = {}
            for life in by_life[:rnd + 1]:
                for r in life:
                    last_t[r.headers["ce-id"]] = r.t
            oldest = max((kills[rnd] - last_t[i] for i in redelivered), default=0.0)
            report.append(f"crash {rnd}: {len(redelivered)} redelivered (oldest seen "
                          f"{oldest * 1000:.0f} ms before the kill), {len(window)} seen in the "
                          f"last {WINDOW}s, {len(by_life[rnd])} requests in the round")
            if len(redelivered) > MAX_IN_FLIGHT + len(window):
                self.fail_with_log(f"crash {rnd}: {len(redelivered)} events redelivered, more "
                                   f"than max_in_flight {MAX_IN_FLIGHT} + {len(window)} seen in "
                                   f"the last {WINDOW}s before the kill")
            stale = sorted(redelivered - window)
            if stale:
                self.fail_with_log(f"crash {rnd}: {len(stale)} redelivered events had been "
                                   f"delivered more than {WINDOW}s before the kill (cursor not "
                                   f"flushed?), e.g. {stale[:5]}")
        # within one lifetime nothing is sent twice (the sink never fails)
        for i, life in enumerate(by_life):
            ids = [r.headers["ce-id"] for r in life]
            dups = len(ids) - len(set(ids))
            self.assertEqual(dups, 0, f"lifetime {i}: {dups} events delivered twice without a "
                                      f"crash in between")
        self.assertEqual(st["failed"], 0)
        n_match = sum(1 for e in ledger.acked.values() if e["type"] == MATCH)
        print(f"\n{ROUNDS} crashes in {elapsed:.1f}s: {len(ledger.acked)} events acknowledged "
              f"({n_match} matching), {len(ledger.unknown)} unknown, {len(reqs)} deliveries of "
              f"{len(seen)} events; " + "; ".join(report) + f"; seed {self.seed}",
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
