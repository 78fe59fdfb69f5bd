# SPDX-License-Identifier: MIT
"""Publishing in every content mode of the CloudEvents HTTP binding (binary, structured, batched)
and reading the events back with GET /v1/buses/{bus}/events: attributes as given, JSON data as
its exact text, text data as a string, binary data as data_base64; seqs gap-free from 1;
pagination with limit/next; reads from a time; chunked bodies; keep-alive."""
import base64
import datetime
import http.client
import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HeraldTestCase, wait_for  # noqa: E402

CE_JSON = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


# ---- raw JSON text: the exact source text of members, to compare bytes, not parsed values ----

def _ws(s, i):
    while i < len(s) and s[i] in " \t\r\n":
        i += 1
    return i


def _value_end(s, i):
    """The index just past the JSON value that starts at s[i]."""
    c = s[i]
    if c == '"':
        i += 1
        while s[i] != '"':
            i += 2 if s[i] == "\\" else 1
        return i + 1
    if c in "{[":
        close = "}" if c == "{" else "]"
        i = _ws(s, i + 1)
        if s[i] == close:
            return i + 1
        while True:
            if c == "{":
                i = _ws(s, _value_end(s, i))
                assert s[i] == ":", f"expected ':' at {i}"
                i = _ws(s, i + 1)
            i = _ws(s, _value_end(s, i))
            if s[i] == ",":
                i = _ws(s, i + 1)
                continue
            assert s[i] == close, f"expected {close!r} at {i}"
            return i + 1
    j = i
    while j < len(s) and s[j] not in ",]} \t\r\n":
        j += 1
    assert j > i, f"no JSON value at {i}"
    return j


def raw_members(s):
    """{key: exact source text of its value} of the JSON object that is the text s."""
    i = _ws(s, 0)
    assert s[i] == "{"
    out = {}
    i = _ws(s, i + 1)
    if s[i] == "}":
        return out
    while True:
        kend = _value_end(s, i)
        key = json.loads(s[i:kend])
        i = _ws(s, kend)
        assert s[i] == ":"
        i = _ws(s, i + 1)
        vend = _value_end(s, i)
        out[key] = s[i:vend]
        i = _ws(s, vend)
        if s[i] == ",":
            i = _ws(s, i + 1)
            continue
        assert s[i] == "}"
        return out


def raw_items(s):
    """The exact source text of each element of the JSON array that is the text s."""
    i = _ws(s, 0)
    assert s[i] == "["
    out = []
    i = _ws(s, i + 1)
    if s[i] == "]":
        return out
    while True:
        end = _value_end(s, i)
        out.append(s[i:end])
        i = _ws(s, end)
        if s[i] == ",":
            i = _ws(s, i + 1)
            continue
        assert s[i] == "]"
        return out


def raw_event_data(body_text):
    """For a GET .../events response body: the raw text of each event's `data` member (None if
    the event has none), in order."""
    out = []
    for item in raw_items(raw_members(body_text)["events"]):
        ev = raw_members(raw_members(item)["event"])
        out.append(ev.get("data"))
    return out


def parse_rfc3339_ns(s):
    """Nanoseconds since the epoch of an RFC 3339 time (any offset, up to 9 fraction digits)."""
    m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$", s)
    assert m, f"not RFC 3339: {s!r}"
    off = "+00:00" if m.group(3) == "Z" else m.group(3)
    dt = datetime.datetime.fromisoformat(m.group(1) + off)
    frac = int((m.group(2) or "0").ljust(9, "0"))
    return int(dt.timestamp()) * 1_000_000_000 + frac


def rfc3339_from_ns(ns):
    secs, frac = divmod(ns, 1_000_000_000)
    t = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


class PublishTest(HeraldTestCase):

    def tearDown(self):
        # a graceful stop must exit 0: under the sanitizers a leak or error fails this test
        self.h.stop()

    # ---- helpers ----
    def publish_binary(self, headers, body=b"", bus="default", expect=202):
        status, _, data = self.h.http("POST", f"/v1/buses/{bus}/events", body=body, headers=headers)
        self.assertEqual(status, expect, data[:500])
        return json.loads(data)

    def publish_structured(self, body, bus="default", expect=202):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body, ensure_ascii=False)
        status, _, data = self.h.http("POST", f"/v1/buses/{bus}/events", body=body,
                                      headers={"Content-Type": CE_JSON})
        self.assertEqual(status, expect, data[:500])
        return json.loads(data)

    def publish_batch(self, body, bus="default", expect=202):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        status, _, data = self.h.http("POST", f"/v1/buses/{bus}/events", body=body,
                                      headers={"Content-Type": CE_BATCH})
        self.assertEqual(status, expect, data[:500])
        return json.loads(data)

    def read(self, query, bus="default"):
        """(parsed doc, raw body text) of GET /v1/buses/{bus}/events?query."""
        status, headers, data = self.h.http("GET", f"/v1/buses/{bus}/events?{query}")
        self.assertEqual(status, 200, data[:500])
        self.assertTrue(headers.get("content-type", "").startswith("application/json"), headers)
        text = data.decode("utf-8")
        return json.loads(text), text

    def check_envelopes(self, events, first_seq, t0_ns, t1_ns):
        """seqs gap-free from first_seq; `ingested` RFC 3339 within [t0, t1] (1 s slack) and
        never decreasing."""
        prev = 0
        for k, e in enumerate(events):
            self.assertEqual(e["seq"], first_seq + k, events)
            self.assertRegex(e["ingested"], RFC3339)
            ns = parse_rfc3339_ns(e["ingested"])
            self.assertGreaterEqual(ns, t0_ns - 1_000_000_000, e)
            self.assertLessEqual(ns, t1_ns + 1_000_000_000, e)
            self.assertGreaterEqual(ns, prev, "ingested times go backwards")
            prev = ns

    # ---- binary mode ----
    def test_binary_mode_attributes_percent_decoding_and_extensions(self):
        t0 = time.time_ns()
        r = self.publish_binary({
            "ce-specversion": "1.0",
            "ce-id": "b-1",
            "ce-source": "/shop/orders",
            "ce-type": "com.example.order.created",
            "ce-subject": "caf%C3%A9",
            "ce-time": "2026-01-02T03:04:05.123+01:00",
            "ce-dataschema": "https://example.com/schemas/order.json",
            "ce-myext": "hello%20world%25",
            "CE-Partitionkey": "p%E2%82%AC1",  # header names are case-insensitive
            "Content-Type": "application/json",
        }, b'{"n":1}')
        self.assertEqual(r, {"seq": 1})
        doc, _ = self.read("from=1&limit=10")
        self.check_envelopes(doc["events"], 1, t0, time.time_ns())
        self.assertEqual(len(doc["events"]), 1)
        self.assertEqual(doc["next"], 2)
        self.assertEqual(doc["events"][0]["event"], {
            "specversion": "1.0",
            "id": "b-1",
            "source": "/shop/orders",
            "type": "com.example.order.created",
            "subject": "café",
            "time": "2026-01-02T03:04:05.123+01:00",
            "dataschema": "https://example.com/schemas/order.json",
            "datacontenttype": "application/json",
            "myext": "hello world%",
            "partitionkey": "p€1",
            "data": {"n": 1},
        })

    def test_binary_mode_octet_stream_every_byte(self):
        body = bytes(range(256)) * 3
        r = self.publish_binary({
            "ce-specversion": "1.0", "ce-id": "bytes", "ce-source": "/bin", "ce-type": "t.bytes",
            "Content-Type": "application/octet-stream"}, body)
        self.assertEqual(r["seq"], 1)
        doc, _ = self.read("from=1")
        ev = doc["events"][0]["event"]
        self.assertNotIn("data", ev)
        self.assertEqual(ev["datacontenttype"], "application/octet-stream")
        self.assertEqual(base64.b64decode(ev["data_base64"], validate=True), body)
        self.assertEqual(ev["data_base64"], base64.b64encode(body).decode())

    def test_binary_mode_json_body_reads_back_byte_exact(self):
        body = ('{ "zeta" :1,"alpha" : [ 2.50 , 1E3,-0.0,true ,null],'
                '"u":"caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\/","raw":"é€😀",'
                '"nested":{"b":{ },"a":[ ]}}').encode()
        self.publish_binary({
            "ce-specversion": "1.0", "ce-id": "j", "ce-source": "/j", "ce-type": "t.json",
            "Content-Type": "application/json; charset=utf-8"}, body)
        doc, text = self.read("from=1")
        self.assertEqual(raw_event_data(text), [body.decode()])
        self.assertEqual(doc["events"][0]["event"]["datacontenttype"],
                         "application/json; charset=utf-8")
        # +json suffix media types are JSON too
        body2 = b'[1,  2.0 ,"\\u0041"]'
        self.publish_binary({
            "ce-specversion": "1.0", "ce-id": "j2", "ce-source": "/j", "ce-type": "t.json",
            "Content-Type": "application/vnd.example+json"}, body2)
        _, text = self.read("from=2")
        self.assertEqual(raw_event_data(text), [body2.decode()])

    def test_binary_mode_text_data(self):
        body = "héllo\n\t\"world\" \\ ✓".encode()
        self.publish_binary({
            "ce-specversion": "1.0", "ce-id": "txt", "ce-source": "/t", "ce-type": "t.text",
            "Content-Type": "text/plain; charset=utf-8"}, body)
        doc, _ = self.read("from=1")
        ev = doc["events"][0]["event"]
        self.assertEqual(ev["data"], body.decode())
        self.assertEqual(ev["datacontenttype"], "text/plain; charset=utf-8")
        self.assertNotIn("data_base64", ev)

    def test_binary_mode_undeclared_or_non_utf8_text_is_kept_as_bytes(self):
        raw = b"\x00\xffnot text\xc3"
        self.publish_binary({"ce-specversion": "1.0", "ce-id": "noct", "ce-source": "/b",
                             "ce-type": "t"}, raw)
        self.publish_binary({"ce-specversion": "1.0", "ce-id": "badtext", "ce-source": "/b",
                             "ce-type": "t", "Content-Type": "text/plain"}, raw)
        doc, _ = self.read("from=1")
        first, second = (e["event"] for e in doc["events"])
        self.assertNotIn("datacontenttype", first)
        self.assertEqual(base64.b64decode(first["data_base64"]), raw)
        self.assertEqual(second["datacontenttype"], "text/plain")
        self.assertEqual(base64.b64decode(second["data_base64"]), raw)

    def test_binary_mode_without_body_has_no_data(self):
        self.publish_binary({"ce-specversion": "1.0", "ce-id": "e", "ce-source": "/e",
                             "ce-type": "t.empty"})
        doc, _ = self.read("from=1")
        ev = doc["events"][0]["event"]
        self.assertEqual(ev, {"specversion": "1.0", "id": "e", "source": "/e", "type": "t.empty"})

    # ---- structured mode ----
    def test_structured_json_data_reads_back_byte_exact(self):
        data_texts = [
            '{ "zeta" : 1 ,"alpha":[ 2.50, 1e3, -0.0, true,null ],\n\t"u":"caf\\u00e9 '
            '\\ud83d\\ude00 \\"q\\" \\/ \\n", "raw":"é€😀", "nested":{"b":{},"a":[]} }',
            '2.50',
            '"caf\\u00e9"',
            '[ ]',
            'null',
            '-12.500e+02',
        ]
        for k, dt in enumerate(data_texts):
            body = ('{"specversion":"1.0","type":"t.s","source":"/s","id":"s%d",'
                    '"datacontenttype":"application/json","data": %s }' % (k, dt))
            self.assertEqual(self.publish_structured(body.encode()), {"seq": k + 1})
        # without datacontenttype, data is JSON too (JSON event format §3.1)
        body = ('{"data":{"b":2.50 , "a" :1},"id":"nodct","source":"/s","type":"t.s",'
                '"specversion":"1.0"}')
        self.assertEqual(self.publish_structured(body.encode()), {"seq": len(data_texts) + 1})
        doc, text = self.read("from=1")
        self.assertEqual(raw_event_data(text), data_texts + ['{"b":2.50 , "a" :1}'])
        self.assertEqual(doc["next"], len(data_texts) + 2)
        self.assertEqual(doc["events"][0]["event"]["datacontenttype"], "application/json")
        self.assertNotIn("datacontenttype", doc["events"][-1]["event"])

    def test_structured_all_attributes_and_typed_extensions(self):
        ev = {"specversion": "1.0", "id": "a-1", "source": "urn:example:shop", "type": "t.all",
              "subject": "orders/ß", "time": "2026-03-04T05:06:07Z",
              "dataschema": "urn:schema:order", "datacontenttype": "application/json",
              "myint": 42, "myneg": -7, "mybool": False, "mystr": "x y", "data": {"k": "v"}}
        self.assertEqual(self.publish_structured(ev), {"seq": 1})
        doc, _ = self.read("from=1")
        self.assertEqual(doc["events"][0]["event"], ev)

    def test_structured_data_base64(self):
        payload = bytes([0, 1, 2, 250, 255, 10, 13]) + "é".encode()
        b64 = base64.b64encode(payload).decode()
        ev = {"specversion": "1.0", "id": "b64", "source": "/b", "type": "t.b",
              "datacontenttype": "application/octet-stream", "data_base64": b64}
        self.assertEqual(self.publish_structured(ev), {"seq": 1})
        doc, _ = self.read("from=1")
        got = doc["events"][0]["event"]
        self.assertEqual(got["data_base64"], b64)
        self.assertEqual(base64.b64decode(got["data_base64"]), payload)
        self.assertNotIn("data", got)
        self.assertEqual(got["datacontenttype"], "application/octet-stream")

    def test_structured_text_data(self):
        ev = {"specversion": "1.0", "id": "txt", "source": "/t", "type": "t.t",
              "datacontenttype": "text/plain", "data": "line 1\nline \"2\" café ✓"}
        self.publish_structured(ev)
        ev2 = {"specversion": "1.0", "id": "xml", "source": "/t", "type": "t.t",
               "datacontenttype": "application/xml", "data": "<a b=\"1\">é</a>"}
        self.publish_structured(ev2)
        doc, _ = self.read("from=1")
        self.assertEqual([e["event"] for e in doc["events"]], [ev, ev2])

    def test_structured_content_type_parameters_and_case(self):
        for k, ct in enumerate(("application/cloudevents+json; charset=utf-8",
                                "Application/CloudEvents+JSON",
                                " application/cloudevents+json ;charset=UTF-8")):
            body = json.dumps({"specversion": "1.0", "id": f"ct{k}", "source": "/ct", "type": "t",
                               "data": {"k": k}})
            status, _, data = self.h.http("POST", "/v1/buses/default/events", body=body,
                                          headers={"Content-Type": ct})
            self.assertEqual((status, json.loads(data)), (202, {"seq": k + 1}), ct)
        status, _, data = self.h.http("POST", "/v1/buses/default/events", body=json.dumps(
            [{"specversion": "1.0", "id": "ctb", "source": "/ct", "type": "t"}]),
            headers={"Content-Type": "application/cloudevents-batch+json; charset=utf-8"})
        self.assertEqual((status, json.loads(data)), (202, {"seqs": [4]}))
        doc, _ = self.read("from=1")
        self.assertEqual([e["event"]["id"] for e in doc["events"]], ["ct0", "ct1", "ct2", "ctb"])
        # the content type of the request is not the event's datacontenttype
        self.assertNotIn("datacontenttype", doc["events"][0]["event"])

    def test_large_events_under_the_limit(self):
        """Events just under the 1 MiB limit are accepted in every mode and read back whole."""
        big = bytes((i * 7) % 256 for i in range(1_000_000))
        self.publish_binary({"ce-specversion": "1.0", "ce-id": "big1", "ce-source": "/big",
                             "ce-type": "t", "Content-Type": "application/octet-stream"}, big)
        text = "é" * 450_000  # 900 000 bytes of UTF-8
        self.publish_structured({"specversion": "1.0", "id": "big2", "source": "/big",
                                 "type": "t", "datacontenttype": "text/plain", "data": text})
        self.publish_batch([{"specversion": "1.0", "id": f"big3.{i}", "source": "/big",
                             "type": "t", "data": {"s": "x" * 900_000}} for i in range(3)])
        doc, _ = self.read("from=1&limit=10")
        evs = [e["event"] for e in doc["events"]]
        # a page may stop early on a byte budget; follow next
        while len(evs) < 5:
            more, _ = self.read(f"from={doc['next']}&limit=10")
            self.assertTrue(more["events"], "events missing")
            evs += [e["event"] for e in more["events"]]
            doc = more
        self.assertEqual(base64.b64decode(evs[0]["data_base64"]), big)
        self.assertEqual(evs[1]["data"], text)
        self.assertEqual([e["data"]["s"] for e in evs[2:]], ["x" * 900_000] * 3)

    def test_structured_empty_text_data_is_kept(self):
        ev = {"specversion": "1.0", "id": "empty", "source": "/t", "type": "t",
              "datacontenttype": "text/plain", "data": ""}
        ev2 = {"specversion": "1.0", "id": "emptyjson", "source": "/t", "type": "t", "data": ""}
        self.publish_structured(ev)
        self.publish_structured(ev2)
        doc, text = self.read("from=1")
        self.assertEqual([e["event"] for e in doc["events"]], [ev, ev2])
        self.assertEqual(raw_event_data(text), ['""', '""'])

    # ---- batched mode ----
    def test_batch(self):
        self.publish_structured({"specversion": "1.0", "id": "first", "source": "/x", "type": "t"})
        t0 = time.time_ns()
        batch = [
            {"specversion": "1.0", "id": "1", "source": "/batch", "type": "t.b",
             "data": {"i": 1.0}},
            {"specversion": "1.0", "id": "2", "source": "/batch", "type": "t.b",
             "datacontenttype": "text/plain", "data": "two"},
            {"specversion": "1.0", "id": "3", "source": "/batch", "type": "t.b",
             "data_base64": "AAEC"},
            {"specversion": "1.0", "id": "4", "source": "/batch", "type": "t.b", "ext1": "e"},
        ]
        body = '[' + ','.join(json.dumps(e) for e in batch) + ']'
        r = self.publish_batch(body)
        self.assertEqual(r, {"seqs": [2, 3, 4, 5]})
        doc, text = self.read("from=2")
        self.check_envelopes(doc["events"], 2, t0, time.time_ns())
        self.assertEqual([e["event"] for e in doc["events"]], batch)
        self.assertEqual(raw_event_data(text)[0], '{"i": 1.0}')
        self.assertEqual(doc["next"], 6)
        # one-element batch
        self.assertEqual(self.publish_batch([{"specversion": "1.0", "id": "5", "source": "/batch",
                                              "type": "t.b"}]), {"seqs": [6]})

    def test_mixed_modes_seqs_gap_free_from_one(self):
        t0 = time.time_ns()
        expect = 1
        for i in range(10):
            if i % 3 == 0:
                r = self.publish_binary({"ce-specversion": "1.0", "ce-id": f"m{i}",
                                         "ce-source": "/m", "ce-type": "t"}, b"x",)
                self.assertEqual(r["seq"], expect)
                expect += 1
            elif i % 3 == 1:
                r = self.publish_structured({"specversion": "1.0", "id": f"m{i}", "source": "/m",
                                             "type": "t"})
                self.assertEqual(r["seq"], expect)
                expect += 1
            else:
                r = self.publish_batch([{"specversion": "1.0", "id": f"m{i}.{k}", "source": "/m",
                                         "type": "t"} for k in range(3)])
                self.assertEqual(r["seqs"], [expect, expect + 1, expect + 2])
                expect += 3
        doc, _ = self.read("from=1&limit=1000")
        self.check_envelopes(doc["events"], 1, t0, time.time_ns())
        self.assertEqual(len(doc["events"]), expect - 1)
        self.assertEqual(doc["next"], expect)
        _, st = self.h.json("GET", "/v1/buses/default", expect=200)
        self.assertEqual(st["stats"]["last_seq"], expect - 1)
        self.assertEqual(st["stats"]["events"], expect - 1)

    # ---- reading ----
    def test_pagination_limit_and_next(self):
        self.publish_batch([{"specversion": "1.0", "id": str(i), "source": "/p", "type": "t"}
                            for i in range(1, 131)])
        got, start = [], 1
        pages = 0
        while True:
            doc, _ = self.read(f"from={start}&limit=40")
            pages += 1
            self.assertLessEqual(len(doc["events"]), 40)
            if not doc["events"]:
                self.assertEqual(doc["next"], 131)
                break
            self.assertEqual(doc["events"][0]["seq"], start)
            self.assertEqual(doc["next"], doc["events"][-1]["seq"] + 1)
            got += doc["events"]
            start = doc["next"]
        self.assertEqual(pages, 5)  # 40 + 40 + 40 + 10 + empty
        self.assertEqual([e["seq"] for e in got], list(range(1, 131)))
        self.assertEqual([e["event"]["id"] for e in got], [str(i) for i in range(1, 131)])
        # default: from the first seq, 100 events
        doc, _ = self.read("")
        self.assertEqual([e["seq"] for e in doc["events"]], list(range(1, 101)))
        self.assertEqual(doc["next"], 101)
        doc, _ = self.read("limit=1000")
        self.assertEqual(len(doc["events"]), 130)
        doc, _ = self.read("from=130&limit=1")
        self.assertEqual([e["seq"] for e in doc["events"]], [130])
        self.assertEqual(doc["next"], 131)
        # beyond the end: empty, next is where the next event will be
        doc, _ = self.read("from=500")
        self.assertEqual(doc["events"], [])
        self.assertLessEqual(doc["next"], 500)
        self.assertGreaterEqual(doc["next"], 131)

    def test_read_empty_bus(self):
        doc, _ = self.read("from=1")
        self.assertEqual(doc, {"events": [], "next": 1})

    def test_from_time(self):
        for i in range(3):
            self.publish_structured({"specversion": "1.0", "id": f"early{i}", "source": "/ft",
                                     "type": "t"})
        doc, _ = self.read("from=1")
        last_early = parse_rfc3339_ns(doc["events"][-1]["ingested"])
        # the exact `ingested` of an event selects the first event ingested at or after it
        t2 = doc["events"][1]["ingested"]
        doc2, _ = self.read("from_time=" + t2)
        first = min(e["seq"] for e in doc["events"]
                    if parse_rfc3339_ns(e["ingested"]) >= parse_rfc3339_ns(t2))
        self.assertEqual(doc2["events"][0]["seq"], first)
        self.assertEqual(doc2["events"][0]["ingested"], doc["events"][first - 1]["ingested"])
        # a time strictly after every earlier event, before the later ones
        wait_for(lambda: time.time_ns() > last_early + 1000, 5, what="clock to pass the events")
        mark = rfc3339_from_ns(time.time_ns())
        wait_for(lambda: time.time_ns() > parse_rfc3339_ns(mark) + 1000, 5, what="clock")
        for i in range(2):
            self.publish_structured({"specversion": "1.0", "id": f"late{i}", "source": "/ft",
                                     "type": "t"})
        doc, _ = self.read("from_time=" + mark)
        self.assertEqual([e["event"]["id"] for e in doc["events"]], ["late0", "late1"])
        self.assertEqual([e["seq"] for e in doc["events"]], [4, 5])
        self.assertEqual(doc["next"], 6)
        # other forms of the same instant: an offset, and from_time with limit
        offs = datetime.datetime.fromtimestamp(parse_rfc3339_ns(mark) // 10**9,
                                               datetime.timezone(datetime.timedelta(hours=2)))
        frac = mark[mark.index("."):-1]
        other = offs.strftime("%Y-%m-%dT%H:%M:%S") + frac + "%2B02:00"
        doc, _ = self.read("from_time=" + other + "&limit=1")
        self.assertEqual([e["event"]["id"] for e in doc["events"]], ["late0"])
        self.assertEqual(doc["next"], 5)
        # long ago: everything; in the future: nothing, next after the last
        doc, _ = self.read("from_time=2000-01-01T00:00:00Z")
        self.assertEqual([e["seq"] for e in doc["events"]], [1, 2, 3, 4, 5])
        doc, _ = self.read("from_time=2200-01-01T00:00:00Z")
        self.assertEqual(doc["events"], [])
        self.assertEqual(doc["next"], 6)

    def test_from_time_far_future_and_past_are_valid(self):
        """Any RFC 3339 time is a valid from_time, however far from now."""
        self.publish_structured({"specversion": "1.0", "id": "x", "source": "/ft", "type": "t"})
        for t in ("2999-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z"):
            doc, _ = self.read("from_time=" + t)
            self.assertEqual(doc, {"events": [], "next": 2}, t)
        for t in ("1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z"):
            doc, _ = self.read("from_time=" + t)
            self.assertEqual([e["seq"] for e in doc["events"]], [1], t)

    # ---- HTTP transport ----
    def test_chunked_request_bodies(self):
        def chunks(b, n):
            for i in range(0, len(b), n):
                yield b[i:i + n]

        conn = http.client.HTTPConnection("127.0.0.1", self.h.port, timeout=30)
        self.addCleanup(conn.close)
        data = b'{"chunked": "yes",   "n": [1, 2, 3]}'
        # binary mode, JSON body in 5-byte chunks
        conn.request("POST", "/v1/buses/default/events", body=chunks(data, 5), headers={
            "ce-specversion": "1.0", "ce-id": "c1", "ce-source": "/c", "ce-type": "t",
            "Content-Type": "application/json"}, encode_chunked=True)
        r = conn.getresponse()
        self.assertEqual((r.status, json.loads(r.read())), (202, {"seq": 1}))
        # structured mode, one byte per chunk
        ev = ('{"specversion":"1.0","id":"c2","source":"/c","type":"t","data":%s}'
              % data.decode()).encode()
        conn.request("POST", "/v1/buses/default/events", body=chunks(ev, 1),
                     headers={"Content-Type": CE_JSON}, encode_chunked=True)
        r = conn.getresponse()
        self.assertEqual((r.status, json.loads(r.read())), (202, {"seq": 2}))
        # a batch of ~200 KiB in 7000-byte chunks
        batch = json.dumps([{"specversion": "1.0", "id": f"c3.{i}", "source": "/c", "type": "t",
                             "data": "x" * 2000} for i in range(100)]).encode()
        conn.request("POST", "/v1/buses/default/events", body=chunks(batch, 7000),
                     headers={"Content-Type": CE_BATCH}, encode_chunked=True)
        r = conn.getresponse()
        self.assertEqual((r.status, json.loads(r.read())), (202, {"seqs": list(range(3, 103))}))
        doc, text = self.read("from=1&limit=2")
        self.assertEqual(raw_event_data(text), [data.decode(), data.decode()])
        self.assertEqual(len(self.h.read_all()), 102)

    def test_expect_100_continue(self):
        """curl and many clients send Expect: 100-continue before a large body."""
        import socket
        body = json.dumps({"specversion": "1.0", "id": "exp", "source": "/e", "type": "t",
                           "data": {"s": "q" * 5000}}).encode()
        with socket.create_connection(("127.0.0.1", self.h.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/buses/default/events HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/cloudevents+json\r\n"
                         b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(4096)
                self.assertTrue(chunk, "connection closed before 100 Continue")
                buf += chunk
            self.assertTrue(buf.startswith(b"HTTP/1.1 100"), buf)
            buf = buf.split(b"\r\n\r\n", 1)[1]
            sock.sendall(body)
            while b"\r\n\r\n" not in buf or not buf.rstrip().endswith(b"}"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
        self.assertTrue(buf.startswith(b"HTTP/1.1 202"), buf)
        self.assertEqual(json.loads(buf.split(b"\r\n\r\n", 1)[1]), {"seq": 1})
        self.assertEqual(self.h.read_all()[0]["event"]["data"], {"s": "q" * 5000})

    def test_pipelined_requests(self):
        """Several requests written at once on one connection are answered in order."""
        import socket
        reqs = b""
        for i in range(5):
            body = json.dumps({"specversion": "1.0", "id": f"pl{i}", "source": "/pl",
                               "type": "t"}).encode()
            reqs += (b"POST /v1/buses/default/events HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/cloudevents+json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body)) + body
        reqs += b"GET /v1/buses/default/events?from=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", self.h.port), timeout=10) as sock:
            sock.sendall(reqs)
            f = sock.makefile("rb")
            answers = []
            for _ in range(6):
                status = f.readline()
                headers = {}
                while True:
                    ln = f.readline()
                    self.assertTrue(ln, "connection closed early")
                    if ln in (b"\r\n", b"\n"):
                        break
                    k, _, v = ln.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                answers.append((int(status.split()[1]),
                                json.loads(f.read(int(headers["content-length"])))))
        self.assertEqual(answers[:5], [(202, {"seq": i + 1}) for i in range(5)])
        self.assertEqual(answers[5][0], 200)
        self.assertEqual([e["event"]["id"] for e in answers[5][1]["events"]],
                         [f"pl{i}" for i in range(5)])

    def test_keep_alive_many_requests_one_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.h.port, timeout=30)
        self.addCleanup(conn.close)
        conn.connect()
        sock = conn.sock
        n = 150
        for i in range(n):
            if i % 2:
                conn.request("POST", "/v1/buses/default/events",
                             body=json.dumps({"specversion": "1.0", "id": f"k{i}", "source": "/k",
                                              "type": "t"}),
                             headers={"Content-Type": CE_JSON})
            else:
                conn.request("POST", "/v1/buses/default/events", body=b"hi", headers={
                    "ce-specversion": "1.0", "ce-id": f"k{i}", "ce-source": "/k",
                    "ce-type": "t", "Content-Type": "text/plain"})
            r = conn.getresponse()
            body = r.read()
            self.assertEqual(r.status, 202, body)
            self.assertEqual(json.loads(body), {"seq": i + 1})
            self.assertNotEqual((r.getheader("Connection") or "").lower(), "close")
            if i % 10 == 9:  # interleave reads and an error on the same connection
                conn.request("GET", f"/v1/buses/default/events?from={i + 1}&limit=1")
                r = conn.getresponse()
                self.assertEqual(json.loads(r.read())["events"][0]["seq"], i + 1)
                conn.request("GET", "/v1/buses/nosuchbus/events")
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, 404)
        self.assertIs(conn.sock, sock, "the server closed the keep-alive connection")
        self.assertEqual([e["seq"] for e in self.h.read_all()], list(range(1, n + 1)))


if __name__ == "__main__":
    unittest.main()
