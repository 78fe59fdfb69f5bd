# SPDX-License-Identifier: MIT
"""Bus management: PUT creates (201) and updates (200), GET shows config and stats, GET /v1/buses
lists, each bus has its own log, DELETE needs ?force=true for a bus that holds events, `default`
cannot be deleted, names and config members are validated, and config survives a restart."""
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Herald, HeraldTestCase  # noqa: E402

CE_JSON = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"


def duration_s(d):
    """Seconds of an ISO 8601 duration such as PT10M, PT0.1S, P7D, P1DT2H (None stays None)."""
    if d is None:
        return None
    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", d)
    assert m and d not in ("P", "PT") and not d.endswith("T"), f"not an ISO 8601 duration: {d!r}"
    days, hours, mins, secs = m.groups()
    return (int(days or 0) * 86400 + int(hours or 0) * 3600 + int(mins or 0) * 60
            + float(secs or 0))


def ev(i, source="/b"):
    return {"specversion": "1.0", "id": str(i), "source": source, "type": "t.bus", "data": {"i": i}}


class BusesTest(HeraldTestCase):

    def tearDown(self):
        # a graceful stop must exit 0: under the sanitizers a leak or error fails this test
        self.h.stop()

    def put(self, name, doc, expect):
        status, _, data = self.h.http("PUT", f"/v1/buses/{name}", body=json.dumps(doc),
                                      headers={"Content-Type": "application/json"})
        self.assertEqual(status, expect, data[:500])
        return json.loads(data) if data else None

    def get(self, name, expect=200):
        return self.h.json("GET", f"/v1/buses/{name}", expect=expect)[1]

    def publish(self, bus, event, expect=202):
        status, _, data = self.h.http("POST", f"/v1/buses/{bus}/events", body=json.dumps(event),
                                      headers={"Content-Type": CE_JSON})
        self.assertEqual(status, expect, data[:500])
        return json.loads(data)

    def assert_error(self, status_data, status, field):
        st, headers, data = status_data
        self.assertEqual(st, status, data[:500])
        doc = json.loads(data)
        self.assertIsInstance(doc.get("error"), str)
        self.assertTrue(doc["error"])
        if field is not None:
            self.assertEqual(doc.get("field"), field, doc)
        return doc

    def test_default_bus_exists_with_documented_defaults(self):
        doc = self.get("default")
        self.assertEqual(doc["name"], "default")
        self.assertEqual(doc["fsync"], "always")
        self.assertEqual(duration_s(doc["dedup_window"]), 600)
        self.assertEqual(doc["retention"], {"max_age": None, "max_bytes": None})
        self.assertRegex(doc["created"], r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
        self.assertEqual(doc["stats"]["last_seq"], 0)
        self.assertEqual(doc["stats"]["events"], 0)
        _, lst = self.h.json("GET", "/v1/buses", expect=200)
        self.assertEqual([b["name"] for b in lst["buses"]], ["default"])
        # default can be configured like any bus
        self.put("default", {"dedup_window": "PT5M"}, 200)
        doc = self.get("default")
        self.assertEqual(duration_s(doc["dedup_window"]), 300)
        self.assertEqual(doc["fsync"], "always")

    def test_create_update_get_list(self):
        created = self.put("orders", {"fsync": "never", "dedup_window": "PT30S",
                                      "retention": {"max_age": "P7D", "max_bytes": 1073741824}},
                           201)
        doc = self.get("orders")
        if created:
            self.assertEqual(created["name"], "orders")
        self.assertEqual(doc["name"], "orders")
        self.assertEqual(doc["fsync"], "never")
        self.assertEqual(duration_s(doc["dedup_window"]), 30)
        self.assertEqual(duration_s(doc["retention"]["max_age"]), 7 * 86400)
        self.assertEqual(doc["retention"]["max_bytes"], 1073741824)
        self.assertEqual(doc["stats"]["last_seq"], 0)
        self.assertEqual(doc["stats"]["events"], 0)
        # update: 200, changes only the members given
        self.put("orders", {"fsync": "interval", "fsync_interval": "PT0.05S"}, 200)
        doc2 = self.get("orders")
        self.assertEqual(doc2["fsync"], "interval")
        self.assertAlmostEqual(duration_s(doc2["fsync_interval"]), 0.05)
        self.assertEqual(duration_s(doc2["dedup_window"]), 30)
        self.assertEqual(duration_s(doc2["retention"]["max_age"]), 7 * 86400)
        self.assertEqual(doc2["retention"]["max_bytes"], 1073741824)
        self.assertEqual(doc2["created"], doc["created"])
        # an empty update is an update
        self.put("orders", {}, 200)
        # more buses; the list holds them all with their config
        self.put("a.b_c-1", {}, 201)
        self.put("9" + "x" * 62, {}, 201)  # 63 characters: the longest name
        _, lst = self.h.json("GET", "/v1/buses", expect=200)
        by_name = {b["name"]: b for b in lst["buses"]}
        self.assertEqual(set(by_name), {"default", "orders", "a.b_c-1", "9" + "x" * 62})
        self.assertEqual(by_name["orders"]["fsync"], "interval")
        self.assertIn("stats", by_name["orders"])

    def test_buses_have_separate_logs(self):
        self.put("other", {}, 201)
        for i in range(3):
            self.assertEqual(self.publish("default", ev(i)), {"seq": i + 1})
        # the same source+id on another bus is not a duplicate: dedup is per bus
        self.assertEqual(self.publish("other", ev(0)), {"seq": 1})
        status, _, data = self.h.http("POST", "/v1/buses/other/events",
                                      body=json.dumps([ev(10), ev(11)]),
                                      headers={"Content-Type": CE_BATCH})
        self.assertEqual((status, json.loads(data)), (202, {"seqs": [2, 3]}))
        self.assertEqual(self.publish("default", ev(3)), {"seq": 4})
        self.assertEqual([e["event"]["id"] for e in self.h.read_all("default")],
                         ["0", "1", "2", "3"])
        self.assertEqual([e["event"]["id"] for e in self.h.read_all("other")], ["0", "10", "11"])
        self.assertEqual(self.get("default")["stats"]["last_seq"], 4)
        self.assertEqual(self.get("other")["stats"]["last_seq"], 3)
        self.assertEqual(self.get("other")["stats"]["events"], 3)
        self.assertEqual(self.get("other")["stats"]["first_seq"], 1)
        self.assertGreater(self.get("other")["stats"]["bytes"], 0)

    def test_delete(self):
        # an empty bus is deleted without force
        self.put("empty", {}, 201)
        self.assertEqual(self.h.http("DELETE", "/v1/buses/empty")[0], 204)
        self.get("empty", expect=404)
        # a bus with events needs ?force=true
        self.put("full", {}, 201)
        for i in range(5):
            self.publish("full", ev(i))
        doc = self.assert_error(self.h.http("DELETE", "/v1/buses/full"), 409, None)
        self.assertIn("force", doc["error"])
        self.assert_error(self.h.http("DELETE", "/v1/buses/full?force=false"), 409, None)
        self.assertEqual(self.get("full")["stats"]["last_seq"], 5)
        self.assertEqual(len(self.h.read_all("full")), 5)
        self.assertEqual(self.h.http("DELETE", "/v1/buses/full?force=true")[0], 204)
        self.assert_error(self.h.http("GET", "/v1/buses/full"), 404, "bus")
        self.assert_error(self.h.http("GET", "/v1/buses/full/events"), 404, "bus")
        self.assert_error(self.h.http("POST", "/v1/buses/full/events", body=json.dumps(ev(9)),
                                      headers={"Content-Type": CE_JSON}), 404, "bus")
        self.assert_error(self.h.http("DELETE", "/v1/buses/full?force=true"), 404, "bus")
        _, lst = self.h.json("GET", "/v1/buses", expect=200)
        self.assertNotIn("full", [b["name"] for b in lst["buses"]])
        # the name is reusable, and the new bus starts empty at seq 1 (dedup state gone too)
        self.put("full", {}, 201)
        self.assertEqual(self.get("full")["stats"]["last_seq"], 0)
        self.assertEqual(self.h.read_all("full"), [])
        self.assertEqual(self.publish("full", ev(0)), {"seq": 1})
        self.assertEqual([e["event"]["id"] for e in self.h.read_all("full")], ["0"])
        # default cannot be deleted, with or without force, empty or not
        self.assert_error(self.h.http("DELETE", "/v1/buses/default"), 409, None)
        self.publish("default", ev(1))
        self.assert_error(self.h.http("DELETE", "/v1/buses/default?force=true"), 409, None)
        self.assertEqual(self.get("default")["stats"]["last_seq"], 1)
        self.assertEqual(self.publish("default", ev(2)), {"seq": 2})
        # deleting a bus that never existed
        self.assert_error(self.h.http("DELETE", "/v1/buses/never"), 404, "bus")

    def test_invalid_names(self):
        for name in ("Orders", "UPPER", "x" * 64, "-lead", ".lead", "_lead", "a%20b", "a+b",
                     "caf%C3%A9", "a:b", "a*b"):
            with self.subTest(name=name):
                doc = self.assert_error(self.h.http("PUT", f"/v1/buses/{name}", body=b"{}",
                                                    headers={"Content-Type": "application/json"}),
                                        400, "bus")
                self.assertIn("name", doc["error"])
        _, lst = self.h.json("GET", "/v1/buses", expect=200)
        self.assertEqual([b["name"] for b in lst["buses"]], ["default"])

    def test_invalid_config_members(self):
        cases = [
            ({"fsync": "sometimes"}, "fsync"),
            ({"fsync": 1}, "fsync"),
            ({"fsync_interval": "100ms"}, "fsync_interval"),
            ({"dedup_window": "10m"}, "dedup_window"),
            ({"dedup_window": 600}, "dedup_window"),
            ({"dedup_window": "PT-1S"}, "dedup_window"),
            ({"retention": {"max_bytes": -1}}, "retention.max_bytes"),
            ({"retention": {"max_bytes": "1GB"}}, "retention.max_bytes"),
            ({"retention": {"max_age": "7 days"}}, "retention.max_age"),
            ({"retention": {"max_size": 10}}, "retention.max_size"),
            ({"retention": 5}, "retention"),
            ({"colour": "blue"}, "colour"),
            ({"fsync": "never", "dedup": "PT1M"}, "dedup"),
        ]
        self.put("cfg", {"fsync": "always"}, 201)
        before = self.get("cfg")
        for doc, field in cases:
            for name, status in (("newbus", 400), ("cfg", 400)):
                with self.subTest(doc=doc, bus=name):
                    err = self.assert_error(self.h.http(
                        "PUT", f"/v1/buses/{name}", body=json.dumps(doc),
                        headers={"Content-Type": "application/json"}), status, field)
                    self.assertIn(field.split(".")[-1], err["error"])
        for body in (b"[]", b"not json", b'"x"'):
            with self.subTest(body=body):
                self.assert_error(self.h.http("PUT", "/v1/buses/newbus", body=body,
                                              headers={"Content-Type": "application/json"}),
                                  400, None)
        # nothing was created or changed
        self.get("newbus", expect=404)
        after = self.get("cfg")
        self.assertEqual({k: v for k, v in after.items() if k != "stats"},
                         {k: v for k, v in before.items() if k != "stats"})

    def test_config_persists_across_restart(self):
        self.put("keep", {"fsync": "never", "dedup_window": "PT45S",
                          "retention": {"max_age": "P2D", "max_bytes": 5000000}}, 201)
        self.put("keep", {"fsync": "interval", "fsync_interval": "PT0.2S"}, 200)
        self.put("gone", {}, 201)
        self.assertEqual(self.h.http("DELETE", "/v1/buses/gone")[0], 204)
        self.put("forced", {}, 201)
        for i in range(3):
            self.publish("forced", ev(i))
        self.assertEqual(self.h.http("DELETE", "/v1/buses/forced?force=true")[0], 204)
        for i in range(4):
            self.publish("keep", ev(i))
        before = self.get("keep")
        _, list_before = self.h.json("GET", "/v1/buses", expect=200)
        data_dir = self.h.data_dir
        self.h.stop()
        h2 = Herald(data_dir=data_dir)
        self.addCleanup(h2.cleanup)
        h2.start()
        after = h2.json("GET", "/v1/buses/keep", expect=200)[1]
        self.assertEqual({k: v for k, v in after.items() if k != "stats"},
                         {k: v for k, v in before.items() if k != "stats"})
        self.assertEqual(after["stats"]["last_seq"], 4)
        self.assertEqual(after["stats"]["events"], 4)
        _, list_after = h2.json("GET", "/v1/buses", expect=200)
        self.assertEqual(sorted(b["name"] for b in list_after["buses"]),
                         sorted(b["name"] for b in list_before["buses"]))
        self.assertNotIn("gone", [b["name"] for b in list_after["buses"]])
        self.assertNotIn("forced", [b["name"] for b in list_after["buses"]])
        h2.json("GET", "/v1/buses/forced", expect=404)
        # re-created after the restart, a force-deleted bus starts empty, at seq 1, no dedup
        self.assertEqual(h2.http("PUT", "/v1/buses/forced", body={})[0], 201)
        self.assertEqual(h2.read_all("forced"), [])
        status, _, data = h2.http("POST", "/v1/buses/forced/events", body=json.dumps(ev(0)),
                                  headers={"Content-Type": CE_JSON})
        self.assertEqual((status, json.loads(data)), (202, {"seq": 1}))
        status, _, data = h2.http("POST", "/v1/buses/keep/events", body=json.dumps(ev(99)),
                                  headers={"Content-Type": CE_JSON})
        self.assertEqual((status, json.loads(data)), (202, {"seq": 5}))
        h2.stop()


if __name__ == "__main__":
    unittest.main()
