# SPDX-License-Identifier: MIT
"""Duplicates (same source + id within the bus's dedup window) are not appended twice and the
producer gets the original seq back with "duplicate": true (DESIGN §2.4) — in every content mode,
inside a batch, across a graceful restart and across kill -9; the window expires; a null window
disables dedup."""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Herald, HeraldTestCase, wait_for  # noqa: E402

CE_JSON = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


def ev(id_, source="/dedup", **extra):
    e = {"specversion": "1.0", "id": id_, "source": source, "type": "t.dedup"}
    e.update(extra)
    return e


def publish(h, event, bus="default"):
    status, _, data = h.http("POST", f"/v1/buses/{bus}/events", body=json.dumps(event),
                             headers={"Content-Type": CE_JSON})
    assert status == 202, (status, data)
    return json.loads(data)


def publish_binary(h, id_, source="/dedup", body=b"", bus="default"):
    status, _, data = h.http("POST", f"/v1/buses/{bus}/events", body=body, headers={
        "ce-specversion": "1.0", "ce-id": id_, "ce-source": source, "ce-type": "t.dedup",
        "Content-Type": "text/plain"})
    assert status == 202, (status, data)
    return json.loads(data)


def publish_batch(h, events, bus="default"):
    status, _, data = h.http("POST", f"/v1/buses/{bus}/events", body=json.dumps(events),
                             headers={"Content-Type": CE_BATCH})
    assert status == 202, (status, data)
    return json.loads(data)


class DedupTest(HeraldTestCase):

    def tearDown(self):
        # a graceful stop must exit 0: under the sanitizers a leak or error fails this test
        self.h.stop()

    def ids(self, bus="default"):
        return [(e["seq"], e["event"]["source"], e["event"]["id"]) for e in self.h.read_all(bus)]

    def test_same_source_and_id_is_a_duplicate(self):
        self.assertEqual(publish(self.h, ev("a", data={"v": 1})), {"seq": 1})
        self.assertEqual(publish(self.h, ev("b")), {"seq": 2})
        # the same event again, and the same key with other content: the original seq
        self.assertEqual(publish(self.h, ev("a", data={"v": 1})), {"seq": 1, "duplicate": True})
        self.assertEqual(publish(self.h, ev("a", data={"v": 2}, type="other")),
                         {"seq": 1, "duplicate": True})
        # across content modes
        self.assertEqual(publish_binary(self.h, "a", body=b"text"), {"seq": 1, "duplicate": True})
        self.assertEqual(publish_binary(self.h, "c"), {"seq": 3})
        self.assertEqual(publish(self.h, ev("c")), {"seq": 3, "duplicate": True})
        self.assertEqual(publish_batch(self.h, [ev("a")]), {"seqs": [1], "duplicates": [0]})
        # only the first of each was stored, unchanged
        evs = self.h.read_all()
        self.assertEqual([e["event"]["id"] for e in evs], ["a", "b", "c"])
        self.assertEqual(evs[0]["event"]["data"], {"v": 1})
        self.assertEqual(evs[0]["event"]["type"], "t.dedup")
        _, bus = self.h.json("GET", "/v1/buses/default", expect=200)
        self.assertEqual(bus["stats"]["last_seq"], 3)
        self.assertEqual(bus["stats"]["events"], 3)
        # the next new event continues without a gap
        self.assertEqual(publish(self.h, ev("d")), {"seq": 4})

    def test_key_is_the_decoded_value(self):
        """Binary mode's percent-encoding is decoded before the key is formed: the same source and
        id, however encoded, are the same event."""
        self.assertEqual(publish(self.h, ev("café x", source="/caf%C3%A9")), {"seq": 1})
        self.assertEqual(publish_binary(self.h, "caf%C3%A9%20x", source="/caf%25C3%25A9"),
                         {"seq": 1, "duplicate": True})
        self.assertEqual(publish_binary(self.h, "caf%c3%a9 x", source="/caf%25C3%25A9"),
                         {"seq": 1, "duplicate": True})
        # a different decoded id is a different event
        self.assertEqual(publish_binary(self.h, "caf%25C3%25A9 x", source="/caf%25C3%25A9"),
                         {"seq": 2})
        self.assertEqual([e["event"]["id"] for e in self.h.read_all()], ["café x", "caf%C3%A9 x"])

    def test_same_id_other_source_is_not_a_duplicate(self):
        self.assertEqual(publish(self.h, ev("x", source="/one")), {"seq": 1})
        self.assertEqual(publish(self.h, ev("x", source="/two")), {"seq": 2})
        self.assertEqual(publish(self.h, ev("x", source="/one/")), {"seq": 3})
        # the key is the pair, not the concatenation
        self.assertEqual(publish(self.h, ev("bc", source="a")), {"seq": 4})
        self.assertEqual(publish(self.h, ev("c", source="ab")), {"seq": 5})
        # ids are case-sensitive
        self.assertEqual(publish(self.h, ev("X", source="/one")), {"seq": 6})
        self.assertEqual(publish(self.h, ev("x", source="/two")), {"seq": 2, "duplicate": True})
        self.assertEqual(len(self.h.read_all()), 6)

    def test_duplicates_in_batches(self):
        self.assertEqual(publish(self.h, ev("e1")), {"seq": 1})
        # against an earlier event and within the batch itself
        r = publish_batch(self.h, [ev("n1"), ev("e1"), ev("n2"), ev("n1"), ev("n3"), ev("n2")])
        self.assertEqual(r, {"seqs": [2, 1, 3, 2, 4, 3], "duplicates": [1, 3, 5]})
        # a batch of only duplicates stores nothing
        r = publish_batch(self.h, [ev("n3"), ev("e1")])
        self.assertEqual(r, {"seqs": [4, 1], "duplicates": [0, 1]})
        # a batch without duplicates has no "duplicates"
        self.assertEqual(publish_batch(self.h, [ev("n4"), ev("n4", source="/else")]),
                         {"seqs": [5, 6]})
        self.assertEqual(self.ids(), [(1, "/dedup", "e1"), (2, "/dedup", "n1"),
                                      (3, "/dedup", "n2"), (4, "/dedup", "n3"),
                                      (5, "/dedup", "n4"), (6, "/else", "n4")])

    def test_concurrent_duplicates_store_one(self):
        import threading
        results, errors = [], []

        def worker():
            try:
                for i in range(20):
                    results.append((i, publish(self.h, ev(f"race{i}"))))
            except Exception as e:  # noqa: BLE001 — reported below
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 80)
        seq_of = {}
        for i, r in results:
            seq_of.setdefault(i, set()).add(r["seq"])
        for i, seqs in seq_of.items():
            self.assertEqual(len(seqs), 1, f"race{i} got several seqs: {seqs}")
        self.assertEqual(sum(1 for _, r in results if not r.get("duplicate")), 20)
        stored = self.h.read_all()
        self.assertEqual(sorted(e["event"]["id"] for e in stored),
                         sorted(f"race{i}" for i in range(20)))
        self.assertEqual({e["event"]["id"]: e["seq"] for e in stored},
                         {f"race{i}": next(iter(s)) for i, s in seq_of.items()})

    def _dedup_survives(self, how):
        for i in range(5):
            publish(self.h, ev(f"p{i}"))
        publish_batch(self.h, [ev(f"q{i}") for i in range(5)])
        before = self.h.read_all()
        data_dir = self.h.data_dir
        if how == "kill9":
            self.h.kill9()
        else:
            self.h.stop()
        h2 = Herald(data_dir=data_dir)
        self.addCleanup(h2.cleanup)
        h2.start()
        self.assertEqual(publish(h2, ev("p0")), {"seq": 1, "duplicate": True})
        self.assertEqual(publish(h2, ev("p4")), {"seq": 5, "duplicate": True})
        self.assertEqual(publish_binary(h2, "q2"), {"seq": 8, "duplicate": True})
        self.assertEqual(publish_batch(h2, [ev("q4"), ev("new"), ev("p1")]),
                         {"seqs": [10, 11, 2], "duplicates": [0, 2]})
        self.assertEqual(publish(h2, ev("new")), {"seq": 11, "duplicate": True})
        after = h2.read_all()
        self.assertEqual(after[:10], before)
        self.assertEqual([e["event"]["id"] for e in after[10:]], ["new"])
        h2.stop()

    def test_dedup_survives_graceful_restart(self):
        self._dedup_survives("stop")

    def test_dedup_survives_kill9(self):
        self._dedup_survives("kill9")

    def test_window_expires(self):
        status, _, data = self.h.http("PUT", "/v1/buses/short", body={"dedup_window": "PT1S"})
        self.assertEqual(status, 201, data)
        t0 = time.monotonic()
        self.assertEqual(publish(self.h, ev("w"), bus="short"), {"seq": 1})
        r = publish(self.h, ev("w"), bus="short")
        if time.monotonic() - t0 < 0.9:  # still inside the window for certain
            self.assertEqual(r, {"seq": 1, "duplicate": True})
        # once the window has passed, the same event is accepted again as a new event
        got = []

        def accepted():
            r = publish(self.h, ev("w"), bus="short")
            got.append(r)
            return not r.get("duplicate")
        wait_for(accepted, timeout=15, interval=0.1, what="the dedup window of PT1S to pass")
        self.assertGreaterEqual(time.monotonic() - t0, 0.9, "accepted again within the window")
        new_seq = got[-1]["seq"]
        self.assertEqual(new_seq, 2 if r.get("duplicate") else 3)
        # and is deduplicated against its new seq
        self.assertEqual(publish(self.h, ev("w"), bus="short"), {"seq": new_seq, "duplicate": True})
        self.assertEqual([e["event"]["id"] for e in self.h.read_all("short")], ["w"] * new_seq)
        # the default bus still has its 10 minute window
        publish(self.h, ev("w"))
        self.assertEqual(publish(self.h, ev("w")), {"seq": 1, "duplicate": True})

    def test_null_window_disables_dedup(self):
        status, _, data = self.h.http("PUT", "/v1/buses/nodedup", body={"dedup_window": None})
        self.assertEqual(status, 201, data)
        _, doc = self.h.json("GET", "/v1/buses/nodedup", expect=200)
        self.assertIsNone(doc["dedup_window"])
        self.assertEqual(publish(self.h, ev("same"), bus="nodedup"), {"seq": 1})
        self.assertEqual(publish(self.h, ev("same"), bus="nodedup"), {"seq": 2})
        self.assertEqual(publish_batch(self.h, [ev("same"), ev("same")], bus="nodedup"),
                         {"seqs": [3, 4]})
        self.assertEqual(len(self.h.read_all("nodedup")), 4)
        # turning dedup on later applies from then on
        status, _, data = self.h.http("PUT", "/v1/buses/nodedup", body={"dedup_window": "PT10M"})
        self.assertEqual(status, 200, data)
        self.assertEqual(publish(self.h, ev("other"), bus="nodedup"), {"seq": 5})
        self.assertEqual(publish(self.h, ev("other"), bus="nodedup"),
                         {"seq": 5, "duplicate": True})


if __name__ == "__main__":
    unittest.main()
