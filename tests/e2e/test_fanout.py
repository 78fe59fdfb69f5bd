# SPDX-License-Identifier: MIT
"""Fan-out and the trigger resource (DESIGN §2.2, §6; docs/api.md "Triggers"): one event reaches
every matching trigger's sink exactly once, with its attributes as percent-encoded ce- headers
and its data byte for byte (JSON, text, binary), or as one application/cloudevents+json document
in structured format; per-trigger headers arrive; status counters add up; and the trigger CRUD
contract: create, read, list, replace (a new sink takes the later events), delete, the 409 for a
bus with triggers, 404 for an unknown bus, 400 naming the field for invalid documents."""
import base64
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Herald  # noqa: E402
from trigger_util import (CE_JSON, TriggerTestCase, ce_attrs, ev, get_trigger,  # noqa: E402
                          ids, publish, publish_binary, put_trigger, status_of, wait_settled)

SUBJECT = "straße/東京 100% \"quoted\""
BINARY = bytes(range(256))
TEXT = "héllo\nwörld ✓\n".encode()
# A structured event written by hand, so the exact text of its JSON data is known.
JSON_DATA_TEXT = '{"z": [1, 2.50, "\\u00fc\\n"], "a": null,"ü": {}}'
STRUCTURED_JSON_EVENT = (
    '{"specversion":"1.0","id":"json-s","source":"/fan","type":"fan.x","subject":'
    + json.dumps(SUBJECT) + ',"tier":"gold","count":42,"vip":true,'
    '"time":"2026-03-04T05:06:07.25Z","datacontenttype":"application/json","data":'
    + JSON_DATA_TEXT + '}')


class FanoutTest(TriggerTestCase):

    def publish_set(self):
        """Publishes the fan-out events; returns {id: (attrs, content type, data bytes)} as a
        sink in binary mode must see them."""
        out = {}
        status, _, data = self.h.http("POST", "/v1/buses/default/events",
                                      body=STRUCTURED_JSON_EVENT.encode(),
                                      headers={"Content-Type": CE_JSON})
        self.assertEqual(status, 202, data)
        out["json-s"] = ({"specversion": "1.0", "id": "json-s", "source": "/fan", "type": "fan.x",
                          "subject": SUBJECT, "tier": "gold", "count": "42", "vip": "true",
                          "time": "2026-03-04T05:06:07.25Z"},
                         "application/json", JSON_DATA_TEXT.encode())
        for id_, ctype, body, extra in [
                ("json-b", "application/json", b'{"k":\n [1,2 ,3]}', {"tier": "gold"}),
                ("text", "text/plain; charset=utf-8", TEXT, {"tier": "silver"}),
                ("bin", "application/octet-stream", BINARY, {"tier": "gold", "count": "7"}),
                ("empty", "text/plain", b"", {})]:
            attrs = {"specversion": "1.0", "id": id_, "source": "/fan/%C3%BC", "type": "fan.x",
                     "subject": SUBJECT}
            attrs.update(extra)
            publish_binary(self.h, attrs, body, ctype)
            out[id_] = (attrs, ctype, body)
        publish(self.h, ev("other", type_="fan.other"))
        out["other"] = None
        return out

    def test_one_event_to_many_triggers(self):
        sink2 = self.new_sink()
        sinks = [self.sink] * 4 + [sink2] * 4
        filters = {f"f{i}": [{"exact": {"type": "fan.x"}}] for i in range(6)}
        filters["f6"] = [{"exact": {"type": "fan.x", "tier": "gold"}}]
        filters["f7"] = []  # everything
        extra_headers = {"authorization": "Bearer s3cret", "x-tenant": "acme"}
        for i, (name, flt) in enumerate(filters.items()):
            doc = {"sink": f"{sinks[i].url}/{name}", "filters": flt}
            if name == "f0":
                doc["headers"] = {"authorization": "Bearer s3cret", "X-Tenant": "acme"}
            put_trigger(self.h, name, doc, expect=201)
        sent = self.publish_set()
        last = publish(self.h, ev("tail", type_="fan.x"))
        sent["tail"] = ({"specversion": "1.0", "id": "tail", "source": "/e2e", "type": "fan.x"},
                        None, b"")
        for name in filters:
            wait_settled(self.h, name, last)

        def want(name):
            out = []
            for id_, v in sent.items():
                if name == "f7":
                    out.append(id_)
                elif v is None:
                    continue
                elif name == "f6":
                    if v[0].get("tier") == "gold":
                        out.append(id_)
                else:
                    out.append(id_)
            return sorted(out)

        for i, name in enumerate(filters):
            reqs = sinks[i].requests(f"/{name}")
            self.assertEqual(sorted(ids(reqs)), want(name), name)  # each exactly once
            for r in reqs:
                self.assertEqual(r.method, "POST")
                # every ce- header value is percent-encoded ASCII
                for k, v in r.ce().items():
                    self.assertTrue(all(0x20 < ord(c) < 0x7f for c in v), (name, k, v))
                got = ce_attrs(r)
                if got["id"] == "other":
                    self.assertEqual(got["type"], "fan.other")
                    continue
                attrs, ctype, body = sent[got["id"]]
                for k, v in attrs.items():
                    self.assertEqual(got.get(k), v, f"{name} {got['id']} ce-{k}")
                self.assertEqual(r.body, body, f"{name} {got['id']} body")
                if ctype is not None:
                    self.assertEqual(r.headers.get("content-type"), ctype, f"{name} {got['id']}")
                if name == "f0":
                    for k, v in extra_headers.items():
                        self.assertEqual(r.headers.get(k), v, f"header {k}")
                else:
                    self.assertNotIn("authorization", r.headers)
                    self.assertNotIn("x-tenant", r.headers)
        for name in filters:
            st = status_of(self.h, name)
            self.assertEqual(st["cursor"], last, name)
            self.assertEqual(st["last_seq"], last, name)
            self.assertEqual(st["delivered"], len(want(name)), name)
            self.assertEqual((st["failed"], st["retried"], st["dead_letters"]), (0, 0, 0), name)
            self.assertEqual(st["lag_events"], 0, name)
            self.assertEqual(st["in_flight"], 0, name)

    def test_structured_format(self):
        put_trigger(self.h, "s", {"sink": self.sink.url + "/s", "format": "structured",
                                  "filters": [{"exact": {"type": "fan.x"}}]}, expect=201)
        self.assertEqual(get_trigger(self.h, "s")["format"], "structured")
        sent = self.publish_set()
        wait_settled(self.h, "s")
        reqs = self.sink.requests("/s")
        self.assertEqual(sorted(ids(reqs)), sorted(k for k, v in sent.items() if v))
        for r in reqs:
            self.assertTrue(r.headers.get("content-type", "").startswith(CE_JSON), r.headers)
            self.assertEqual(r.ce(), {}, "structured mode carries no ce- headers")
            doc = json.loads(r.body)
            attrs, ctype, body = sent[doc["id"]]
            for k, v in attrs.items():
                got = doc.get(k)
                if isinstance(got, bool):
                    got = "true" if got else "false"
                self.assertEqual(str(got), v, f"{doc['id']} {k}")
            self.assertEqual(doc.get("datacontenttype"), ctype, doc["id"])
            if ctype.startswith("application/json"):
                self.assertEqual(doc["data"], json.loads(body), doc["id"])
                self.assertNotIn("data_base64", doc)
            elif ctype.startswith("text/"):
                if body:
                    self.assertEqual(doc["data"], body.decode(), doc["id"])
                else:
                    self.assertIn(doc.get("data", ""), ("", None), doc["id"])
                self.assertNotIn("data_base64", doc)
            else:
                self.assertEqual(base64.b64decode(doc["data_base64"]), body, doc["id"])
                self.assertNotIn("data", doc)
        json_s = next(r for r in reqs if json.loads(r.body)["id"] == "json-s")
        # integer and boolean extensions keep their JSON types in the structured format
        self.assertEqual(json.loads(json_s.body)["count"], 42)
        self.assertIs(json.loads(json_s.body)["vip"], True)

    def test_graceful_stop_with_deliveries_pending(self):
        """A SIGTERM while fan-out deliveries are queued or in flight exits cleanly; after a
        restart every event still reaches every sink (at least once)."""
        for i in range(8):
            put_trigger(self.h, f"p{i}", {"sink": f"{self.sink.url}/p{i}"}, expect=201)
        for i in range(3):
            publish(self.h, ev(f"e{i}"))
        stop_error = None
        try:
            self.h.stop()
        except AssertionError as e:
            stop_error = e
        h2 = Herald(data_dir=self.h.data_dir)
        self.addCleanup(h2.cleanup)
        h2.start()
        for i in range(8):
            wait_settled(h2, f"p{i}", 3)
            self.assertEqual(sorted(set(ids(self.sink.requests(f"/p{i}")))), ["e0", "e1", "e2"])
        h2.stop()
        if stop_error:
            raise stop_error

    def test_trigger_crud(self):
        doc = {"sink": self.sink.url + "/old", "filters": [{"prefix": {"type": "crud."}}],
               "delivery": {"retry": 3, "backoff_delay": "PT0.5S"}, "max_in_flight": 4}
        created = put_trigger(self.h, "t1", doc, expect=201)
        self.assertEqual(created["name"], "t1")
        self.assertEqual(created["bus"], "default")
        self.assertEqual(created["sink"], self.sink.url + "/old")
        self.assertEqual(created["filters"], doc["filters"])
        self.assertEqual(created["delivery"]["retry"], 3)
        self.assertEqual(created["delivery"]["backoff_delay"], "PT0.5S")
        self.assertEqual(created["delivery"]["backoff_policy"], "exponential")  # defaults
        self.assertEqual(created["delivery"]["timeout"], "PT10S")
        self.assertEqual(created["format"], "binary")
        self.assertEqual(created["ordering"], "none")
        self.assertEqual(created["max_in_flight"], 4)
        self.assertEqual(created["start"], "latest")
        self.assertIn("status", created)
        got = get_trigger(self.h, "t1")
        self.assertEqual({k: v for k, v in got.items() if k != "status"},
                         {k: v for k, v in created.items() if k != "status"})
        # the same document again replaces it: 200
        put_trigger(self.h, "t1", doc, expect=200)
        put_trigger(self.h, "t2", {"sink": self.sink.url + "/t2"}, expect=201)
        status, _, data = self.h.http("PUT", "/v1/buses/other", body={})
        self.assertEqual(status, 201, data)
        put_trigger(self.h, "t3", {"sink": self.sink.url + "/t3", "bus": "other"}, expect=201)
        _, lst = self.h.json("GET", "/v1/triggers", expect=200)
        self.assertEqual(sorted(t["name"] for t in lst["triggers"]), ["t1", "t2", "t3"])
        _, lst = self.h.json("GET", "/v1/triggers?bus=default", expect=200)
        self.assertEqual(sorted(t["name"] for t in lst["triggers"]), ["t1", "t2"])
        _, lst = self.h.json("GET", "/v1/triggers?bus=other", expect=200)
        self.assertEqual([t["name"] for t in lst["triggers"]], ["t3"])

        # a new sink takes the later events
        s1 = publish(self.h, ev("c1", type_="crud.a"))
        wait_settled(self.h, "t1", s1)
        updated = put_trigger(self.h, "t1", dict(doc, sink=self.sink.url + "/new"), expect=200)
        self.assertEqual(updated["sink"], self.sink.url + "/new")
        self.assertEqual(get_trigger(self.h, "t1")["sink"], self.sink.url + "/new")
        s2 = publish(self.h, ev("c2", type_="crud.b"))
        wait_settled(self.h, "t1", s2)
        self.assertEqual(ids(self.sink.requests("/old")), ["c1"])
        self.assertEqual(ids(self.sink.requests("/new")), ["c2"])
        self.assertEqual(status_of(self.h, "t1")["delivered"], 2)
        # the bus cannot change
        status, _, data = self.h.http("PUT", "/v1/triggers/t1", body=dict(doc, bus="other"))
        self.assertEqual(status, 409, data)
        self.assertEqual(get_trigger(self.h, "t1")["bus"], "default")

        # a bus with triggers cannot be deleted, not even with force
        publish(self.h, ev("o1"), bus="other")
        for q in ("", "?force=true"):
            status, _, data = self.h.http("DELETE", "/v1/buses/other" + q)
            self.assertEqual(status, 409, data)
        self.assertEqual(self.h.http("GET", "/v1/buses/other")[0], 200)

        # delete
        self.assertEqual(self.h.http("DELETE", "/v1/triggers/t1")[0], 204)
        status, _, data = self.h.http("GET", "/v1/triggers/t1")
        self.assertEqual(status, 404, data)
        self.assertEqual(self.h.http("DELETE", "/v1/triggers/t1")[0], 404)
        _, lst = self.h.json("GET", "/v1/triggers", expect=200)
        self.assertEqual(sorted(t["name"] for t in lst["triggers"]), ["t2", "t3"])
        # events after the delete do not reach its sink (t2, which takes everything, settles)
        s3 = publish(self.h, ev("c3", type_="crud.c"))
        wait_settled(self.h, "t2", s3)
        self.assertEqual(ids(self.sink.requests("/new")), ["c2"])
        self.assertIn("c3", ids(self.sink.requests("/t2")))
        # a deleted name can be created again, starting afresh
        again = put_trigger(self.h, "t1", doc, expect=201)
        self.assertEqual(again["status"]["delivered"], 0)

        self.assertEqual(self.h.http("DELETE", "/v1/triggers/t3")[0], 204)
        status, _, data = self.h.http("DELETE", "/v1/buses/other?force=true")
        self.assertEqual(status, 204, data)

    def test_trigger_on_unknown_bus(self):
        status, _, data = self.h.http("PUT", "/v1/triggers/t",
                                      body={"sink": self.sink.url + "/x", "bus": "nosuch"})
        self.assertEqual(status, 404, data)
        self.assertTrue(json.loads(data)["error"])
        self.assertEqual(self.h.http("GET", "/v1/triggers/t")[0], 404)
        self.assertEqual(self.h.http("GET", "/v1/triggers/nosuch")[0], 404)

    def test_invalid_trigger_documents(self):
        sink = self.sink.url + "/x"
        cases = [
            ("missing sink", {}, "sink"),
            ("sink not a string", {"sink": 5}, "sink"),
            ("sink not a URL", {"sink": "not a url"}, "sink"),
            ("sink with another scheme", {"sink": "ftp://127.0.0.1/x"}, "sink"),
            ("sink relative", {"sink": "/x"}, "sink"),
            ("bad duration", {"sink": sink, "delivery": {"timeout": "10s"}}, "delivery.timeout"),
            ("bad backoff_delay", {"sink": sink, "delivery": {"backoff_delay": "PT"}},
             "delivery.backoff_delay"),
            ("negative retry", {"sink": sink, "delivery": {"retry": -1}}, "delivery.retry"),
            ("retry too large", {"sink": sink, "delivery": {"retry": 1001}}, "delivery.retry"),
            ("unknown backoff policy", {"sink": sink, "delivery": {"backoff_policy": "cubic"}},
             "delivery.backoff_policy"),
            ("bad dead_letter_sink", {"sink": sink, "delivery": {"dead_letter_sink": "nope"}},
             "delivery.dead_letter_sink"),
            ("unknown member", {"sink": sink, "sinc": sink}, "sinc"),
            ("unknown delivery member", {"sink": sink, "delivery": {"retries": 3}},
             "delivery.retries"),
            ("max_in_flight 0", {"sink": sink, "max_in_flight": 0}, "max_in_flight"),
            ("max_in_flight too large", {"sink": sink, "max_in_flight": 10001}, "max_in_flight"),
            ("unknown format", {"sink": sink, "format": "xml"}, "format"),
            ("unknown ordering", {"sink": sink, "ordering": "total"}, "ordering"),
            ("negative rate_limit", {"sink": sink, "rate_limit": -1}, "rate_limit"),
            ("bad start", {"sink": sink, "start": "yesterday"}, "start"),
            ("start seq 0", {"sink": sink, "start": 0}, "start"),
            ("forbidden header", {"sink": sink, "headers": {"ce-id": "x"}}, "headers"),
            ("forbidden content-type header", {"sink": sink, "headers": {"Content-Type": "x"}},
             "headers"),
            ("headers not an object", {"sink": sink, "headers": ["a"]}, "headers"),
            ("filters not an array", {"sink": sink, "filters": {"exact": {"type": "x"}}},
             "filters"),
        ]
        failures = []
        for desc, doc, field in cases:
            status, _, data = self.h.http("PUT", "/v1/triggers/bad", body=doc)
            try:
                err = json.loads(data)
            except ValueError:
                err = {}
            f = err.get("field", "") if isinstance(err, dict) else ""
            if status != 400 or not err.get("error"):
                failures.append(f"{desc}: expected 400, got {status} {data[:200]!r}")
            elif not (f == field or f.startswith(field + ".")):
                failures.append(f"{desc}: expected field {field!r}, got {f!r}")
        for body in (b"{not json", b"[1]", b'"x"'):
            status, _, data = self.h.http("PUT", "/v1/triggers/bad", body=body,
                                          headers={"Content-Type": "application/json"})
            if status != 400:
                failures.append(f"body {body!r}: expected 400, got {status} {data[:200]!r}")
        status, _, data = self.h.http("PUT", "/v1/triggers/Bad_Name", body={"sink": sink})
        if status != 400:
            failures.append(f"invalid trigger name: expected 400, got {status} {data[:200]!r}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))
        _, lst = self.h.json("GET", "/v1/triggers", expect=200)
        self.assertEqual(lst["triggers"], [])


if __name__ == "__main__":
    unittest.main()
