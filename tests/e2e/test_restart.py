# SPDX-License-Identifier: MIT
"""Everything acknowledged survives a restart, graceful or kill -9 (DESIGN §2.1, §2.7): a few
hundred events of every content mode read back identical (the full raw JSON) after the restart,
and seqs continue without gaps."""
import base64
import json
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Herald, HeraldTestCase  # noqa: E402

CE_JSON = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


def read_raw(h, bus="default"):
    """Every page of a bus's events as raw response bodies, plus the parsed events."""
    pages, events, start = [], [], 1
    while True:
        status, _, data = h.http("GET", f"/v1/buses/{bus}/events?from={start}&limit=137")
        assert status == 200, data
        pages.append(data)
        doc = json.loads(data)
        events += doc["events"]
        if not doc["events"]:
            return pages, events
        start = doc["next"]


class Publisher:
    """Publishes a deterministic mix of binary, structured and batched events and remembers
    what each acknowledged seq holds."""

    def __init__(self, h, seed):
        self.h = h
        self.rng = random.Random(seed)
        self.acked = {}  # seq -> (source, id)
        self.batches = {}  # batch id prefix -> number of events, for every batch sent
        self.n = 0

    def one(self, bus="default"):
        """Publishes one request; returns the seqs acknowledged."""
        k = self.rng.randrange(5)
        self.n += 1
        eid = f"e{self.n}"
        if k == 0:  # binary, JSON data with odd formatting, percent-encoded attributes
            body = ('{ "n" : %d , "price": 2.50,"s":"caf\\u00e9"}' % self.n).encode()
            status, _, data = self.h.http("POST", f"/v1/buses/{bus}/events", body=body, headers={
                "ce-specversion": "1.0", "ce-id": eid, "ce-source": "/restart/bin",
                "ce-type": "t.bin", "ce-subject": "caf%C3%A9/" + str(self.n),
                "ce-time": "2026-01-01T00:00:00.5Z", "ce-traceid": "x%20y",
                "Content-Type": "application/json"})
            evs = [("/restart/bin", eid)]
        elif k == 1:  # binary, raw bytes
            body = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 300)))
            status, _, data = self.h.http("POST", f"/v1/buses/{bus}/events", body=body, headers={
                "ce-specversion": "1.0", "ce-id": eid, "ce-source": "/restart/raw",
                "ce-type": "t.raw", "Content-Type": "application/octet-stream"})
            evs = [("/restart/raw", eid)]
        elif k == 2:  # structured with text data and typed extensions
            ev = {"specversion": "1.0", "id": eid, "source": "/restart/s", "type": "t.s",
                  "datacontenttype": "text/plain", "data": "line\n%d ✓" % self.n,
                  "count": self.n, "flag": self.n % 2 == 0}
            status, _, data = self.h.http("POST", f"/v1/buses/{bus}/events",
                                          body=json.dumps(ev, ensure_ascii=False).encode(),
                                          headers={"Content-Type": CE_JSON})
            evs = [("/restart/s", eid)]
        elif k == 3:  # structured with data_base64
            ev = {"specversion": "1.0", "id": eid, "source": "/restart/b64", "type": "t.b",
                  "data_base64": base64.b64encode(bytes([self.n % 256, 0, 255])).decode()}
            status, _, data = self.h.http("POST", f"/v1/buses/{bus}/events",
                                          body=json.dumps(ev), headers={"Content-Type": CE_JSON})
            evs = [("/restart/b64", eid)]
        else:  # a batch of 1..8
            m = self.rng.randrange(1, 9)
            self.batches[eid] = m  # recorded before sending: in flight counts too
            batch = [{"specversion": "1.0", "id": f"{eid}.{j}", "source": "/restart/batch",
                      "type": "t.batch", "data": {"j": j, "pad": "p" * self.rng.randrange(100)}}
                     for j in range(m)]
            status, _, data = self.h.http("POST", f"/v1/buses/{bus}/events",
                                          body=json.dumps(batch),
                                          headers={"Content-Type": CE_BATCH})
            evs = [("/restart/batch", e["id"]) for e in batch]
        assert status == 202, (status, data)
        doc = json.loads(data)
        seqs = doc["seqs"] if "seqs" in doc else [doc["seq"]]
        assert len(seqs) == len(evs) and "duplicate" not in doc and "duplicates" not in doc, doc
        for s, key in zip(seqs, evs):
            self.acked[s] = key
        return seqs

    def until(self, count, bus="default"):
        while len(self.acked) < count:
            self.one(bus)


class RestartTest(HeraldTestCase):

    def tearDown(self):
        # a graceful stop must exit 0: under the sanitizers a leak or error fails this test
        self.h.stop()

    def restart(self, how):
        data_dir = self.h.data_dir
        if how == "kill9":
            self.h.kill9()
        else:
            self.h.stop()
        h2 = Herald(data_dir=data_dir)
        self.addCleanup(h2.cleanup)
        h2.start()
        return h2

    def check_restart(self, how):
        # two buses, so recovery of more than one log is covered
        status, _, data = self.h.http("PUT", "/v1/buses/second", body={"fsync": "always"})
        self.assertEqual(status, 201, data)
        p = Publisher(self.h, seed=1)
        p.until(300)
        p2 = Publisher(self.h, seed=2)
        p2.until(40, bus="second")
        self.assertEqual(sorted(p.acked), list(range(1, len(p.acked) + 1)))
        pages, events = read_raw(self.h)
        pages2, _ = read_raw(self.h, "second")
        _, stats = self.h.json("GET", "/v1/buses/default", expect=200)
        n = len(p.acked)
        self.assertEqual(len(events), n)

        probes = [events[k]["ingested"] for k in (0, 1, n // 3, n // 2, n - 1)]
        by_time = [self.h.http("GET", "/v1/buses/default/events?limit=3&from_time=" + t)[2]
                   for t in probes]

        h2 = self.restart(how)
        pages_after, events_after = read_raw(h2)
        self.assertEqual(pages_after, pages, "the read-back JSON changed across the restart")
        # reads by time (the time index) answer the same after recovery
        self.assertEqual([h2.http("GET", "/v1/buses/default/events?limit=3&from_time=" + t)[2]
                          for t in probes], by_time)
        self.assertEqual(read_raw(h2, "second")[0], pages2)
        _, stats_after = h2.json("GET", "/v1/buses/default", expect=200)
        for k in ("first_seq", "last_seq", "events"):
            self.assertEqual(stats_after["stats"][k], stats["stats"][k], k)

        # seqs continue without gaps, in every mode
        p.h = h2
        more = []
        for _ in range(30):
            more += p.one()
        self.assertEqual(more, list(range(n + 1, n + 1 + len(more))))
        _, all_events = read_raw(h2)
        self.assertEqual([e["seq"] for e in all_events], list(range(1, n + len(more) + 1)))
        self.assertEqual([(e["event"]["source"], e["event"]["id"]) for e in all_events],
                         [p.acked[s] for s in range(1, n + len(more) + 1)])
        self.assertEqual(all_events[:n], events)
        # a second restart of the same kind keeps everything, including what came after the first
        pages_before2, _ = read_raw(h2)
        h3 = Herald(data_dir=h2.data_dir)
        self.addCleanup(h3.cleanup)
        if how == "kill9":
            h2.kill9()
        else:
            h2.stop()
        h3.start()
        self.assertEqual(read_raw(h3)[0], pages_before2)
        p.h = h3
        self.assertEqual(p.one()[0], n + len(more) + 1)
        h3.stop()

    def test_graceful_restart_keeps_everything(self):
        self.check_restart("stop")

    def test_kill9_restart_keeps_everything(self):
        self.check_restart("kill9")

    def test_kill9_under_concurrent_load_keeps_every_acknowledged_event(self):
        """Four producers publish as fast as they can; kill -9 lands mid-flight. Every event
        acknowledged before the kill is present after it, and the log has no gaps."""
        stop = threading.Event()
        acked, lock = {}, threading.Lock()
        errors = []
        publishers = []

        def producer(k):
            p = Publisher(self.h, seed=100 + k)
            publishers.append(p)
            p.n = k * 1_000_000  # distinct ids per producer
            while not stop.is_set():
                try:
                    p.acked = {}
                    p.one()
                except (OSError, AssertionError) as e:
                    if not stop.is_set():
                        errors.append(e)
                    return
                with lock:
                    acked.update(p.acked)

        threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            # wait (on a condition) until a good number of events were acknowledged
            deadline_ok = False
            end = time.monotonic() + 60
            while time.monotonic() < end:
                with lock:
                    if len(acked) >= 400:
                        deadline_ok = True
                        break
                if errors:
                    break
                time.sleep(0.01)
            self.assertEqual(errors, [])
            self.assertTrue(deadline_ok, "producers did not get 400 events acknowledged in 60 s")
            stop.set()
            with lock:
                snapshot = dict(acked)
            self.h.kill9()
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        h2 = Herald(data_dir=self.h.data_dir)
        self.addCleanup(h2.cleanup)
        h2.start()
        _, events = read_raw(h2)
        by_seq = {e["seq"]: (e["event"]["source"], e["event"]["id"]) for e in events}
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        for seq, key in snapshot.items():
            self.assertEqual(by_seq.get(seq), key, f"acknowledged seq {seq} lost or changed")
        # batches are atomic even across kill -9: each one sent is stored whole, or not at all,
        # in consecutive seqs
        stored = {}
        for e in events:
            if e["event"]["source"] == "/restart/batch":
                prefix = e["event"]["id"].rsplit(".", 1)[0]
                stored.setdefault(prefix, []).append(e["seq"])
        sent = {}
        for p in publishers:
            sent.update(p.batches)
        for prefix, seqs in stored.items():
            self.assertIn(prefix, sent)
            self.assertEqual(len(seqs), sent[prefix], f"batch {prefix} stored in part: {seqs}")
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        self.assertEqual(len({e["event"]["id"] for e in events}), len(events), "stored twice")
        status, _, data = h2.http("POST", "/v1/buses/default/events", body=json.dumps(
            {"specversion": "1.0", "id": "after", "source": "/after", "type": "t"}),
            headers={"Content-Type": CE_JSON})
        self.assertEqual((status, json.loads(data)), (202, {"seq": len(events) + 1}))
        h2.stop()


if __name__ == "__main__":
    unittest.main()
