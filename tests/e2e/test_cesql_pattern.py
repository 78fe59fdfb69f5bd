# SPDX-License-Identifier: MIT
"""CloudEvents SQL and EventBridge patterns end to end (docs/api.md: "Read" with `filter=CESQL`,
"Live stream" with `?filter=`, "Filters" with the cesql/sql and pattern dialects), against a real
herald and real sinks.

One set of 50 events varies the type, the subject (sometimes absent), integer, boolean and string
extensions (sometimes absent) and JSON data (numbers, strings, arrays of objects, sometimes no
data). Every filter comes with a Python model of what it must select -- written out by hand
from the CESQL and pattern rules, including the error cases (a missing attribute or a failed
cast makes a CESQL filter fail even under NOT or OR) -- and each path must select exactly the
model's events: pull reads (one page and paged with `next`), SSE streams (from a seq, live,
resumed with Last-Event-ID), triggers delivering to sinks, and POST /v1/filters/test.
"""
import http.client
import json
import os
import re
import socket
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trigger_util import (TriggerTestCase, ids, last_seq, publish, publish_batch,  # noqa: E402
                          put_trigger, wait_settled)

TYPES = ["order.created", "order.paid", "order.shipped", "user.signup"]
REGIONS = ["eu", "us", "ap"]
COUNTRIES = ["DE", "US", "FR", "CA", "JP"]


def make_event(i):
    """Event i of the set: attributes and data chosen so that every filter below splits it."""
    region = REGIONS[i % 3]
    e = {"specversion": "1.0", "id": f"e{i}", "type": TYPES[i % 4],
         "source": f"/shop/{region if i % 5 != 4 else 'none'}",
         "num": i * 3 - 40}
    if i % 5 != 4:
        e["subject"] = f"{region}/{i % 7}/item{i}"
    if i % 3 != 2:
        e["prio"] = i % 6
    if i % 7 != 0:
        e["flag"] = i % 2 == 0
    if i % 4 == 0:
        e["code"] = str(i * 10)
    elif i % 4 == 1:
        e["code"] = "n/a"
    if i % 13 != 12:
        price = (i * 7) % 120 + (0.5 if i % 10 == 3 else 0)
        d = {"price": price,
             "items": [{"sku": f"{'A' if j % 2 == 0 else 'B'}{(i + j) % 4}", "qty": (i + j) % 5}
                       for j in range(i % 3)],
             "tags": ["urgent"] if i % 8 == 0 else (["normal", "bulk"] if i % 8 == 3 else [])}
        if i % 11 != 0:
            d["country"] = COUNTRIES[i % 5]
        if i % 6 == 1:
            d["coupon"] = "SAVE10"
        e["datacontenttype"] = "application/json"
        e["data"] = d
    return e


EVENTS = [make_event(i) for i in range(50)]


def g(e, name):
    """An attribute of an event dict, or None when absent."""
    return e.get(name)


def like(value, pattern):
    """CESQL LIKE: % any run, _ one character, everything else literal."""
    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.S) is not None


def is_int_text(s):
    return s is not None and re.fullmatch(r"[+-]?[0-9]+", s) is not None


def data(e):
    return e.get("data")


def dget(e, name):
    d = data(e)
    return None if d is None else d.get(name)


# (CESQL expression, model). A model is true exactly when the expression evaluates to TRUE
# without an error. AND and OR short-circuit; an operand that raised an error makes its
# operator fail; AND/OR/XOR group to the right.
CESQL = [
    ("type = 'order.paid'", lambda e: e["type"] == "order.paid"),
    ("subject LIKE 'eu/%'", lambda e: g(e, "subject") is not None and like(e["subject"], "eu/%")),
    ("subject LIKE '%/1/item_'",
     lambda e: g(e, "subject") is not None and like(e["subject"], "%/1/item_")),
    ("type IN ('order.created', 'user.signup') AND NOT (subject LIKE 'us/%')",
     lambda e: e["type"] in ("order.created", "user.signup") and g(e, "subject") is not None
     and not e["subject"].startswith("us/")),
    ("EXISTS prio AND NOT EXISTS code", lambda e: "prio" in e and "code" not in e),
    ("num > 10 AND num <= 50", lambda e: 10 < e["num"] <= 50),
    # INT('n/a') is a cast error: the comparison fails
    ("INT(code) >= 200", lambda e: is_int_text(g(e, "code")) and int(e["code"]) >= 200),
    # = casts its left operand to the right one's type
    ("code = 120", lambda e: is_int_text(g(e, "code")) and int(e["code"]) == 120),
    ("flag AND prio > 2", lambda e: g(e, "flag") is True and g(e, "prio") is not None
     and e["prio"] > 2),
    # right grouping: type = 'order.created' AND (prio = 0 OR flag)
    ("type = 'order.created' AND prio = 0 OR flag",
     lambda e: e["type"] == "order.created" and g(e, "prio") is not None
     and (e["prio"] == 0 or g(e, "flag") is True)),
    ("(type = 'order.shipped' OR type = 'order.paid') AND num % 5 = 0 AND NOT flag",
     lambda e: e["type"] in ("order.shipped", "order.paid") and e["num"] % 5 == 0
     and g(e, "flag") is False),
    ("num IN (-37, -1, 2, 50, 107) OR LOWER(type) = 'USER.SIGNUP'",
     lambda e: e["num"] in (-37, -1, 2, 50, 107)),
    ("LENGTH(source) > 8 XOR flag",
     lambda e: g(e, "flag") is not None and ((len(e["source"]) > 8) != e["flag"])),
    ("NOT EXISTS subject OR subject NOT LIKE '%item1%'",
     lambda e: g(e, "subject") is None or "item1" not in e["subject"]),
    # a missing prio fails the OR even where flag is true
    ("prio > 3 OR flag", lambda e: g(e, "prio") is not None
     and (e["prio"] > 3 or g(e, "flag") is True)),
    ("STRING(num) LIKE '-%'", lambda e: e["num"] < 0),
    ("type in ('order.paid') and not flag",
     lambda e: e["type"] == "order.paid" and g(e, "flag") is False),
    ("(num * 2 >= 100 AND num < 1000) OR source = '/shop/none'",
     lambda e: e["num"] * 2 >= 100 or e["source"] == "/shop/none"),
]


def items_match(e, sku_prefix, min_qty):
    return any(it["sku"].startswith(sku_prefix) and it["qty"] >= min_qty
               for it in (dget(e, "items") or []))


def num_of(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# (pattern, model)
PATTERNS = [
    ({"type": ["order.paid", "order.shipped"], "data": {"price": [{"numeric": [">", 20, "<=", 80]}]}},
     lambda e: e["type"] in ("order.paid", "order.shipped") and num_of(dget(e, "price"))
     and 20 < dget(e, "price") <= 80),
    ({"subject": [{"prefix": "eu/"}], "data": {"country": [{"anything-but": ["DE", "FR"]}]}},
     lambda e: (g(e, "subject") or "").startswith("eu/") and dget(e, "country") is not None
     and dget(e, "country") not in ("DE", "FR")),
    ({"data": {"coupon": [{"exists": True}]}, "flag": [False]},
     lambda e: dget(e, "coupon") is not None and g(e, "flag") is False),
    ({"data": {"country": [{"exists": False}]}, "type": ["order.created", "order.paid"]},
     lambda e: dget(e, "country") is None and e["type"] in ("order.created", "order.paid")),
    ({"$or": [{"type": ["user.signup"]}, {"data": {"price": [{"numeric": [">=", 100]}]}},
              {"num": [{"numeric": ["<", -30]}]}]},
     lambda e: e["type"] == "user.signup" or (num_of(dget(e, "price")) and dget(e, "price") >= 100)
     or e["num"] < -30),
    # fields of one pattern object must hold within one array element
    ({"data": {"items": {"sku": [{"prefix": "A"}], "qty": [{"numeric": [">=", 3]}]}}},
     lambda e: items_match(e, "A", 3)),
    ({"data": {"tags": ["urgent"]}}, lambda e: "urgent" in (dget(e, "tags") or [])),
    ({"source": [{"anything-but": {"prefix": "/shop/u"}}], "prio": [0, 5]},
     lambda e: not e["source"].startswith("/shop/u") and g(e, "prio") in (0, 5)),
    ({"type": [{"wildcard": "order.*d"}], "code": [{"anything-but": "n/a"}]},
     lambda e: e["type"] in ("order.created", "order.paid", "order.shipped")
     and g(e, "code") not in (None, "n/a")),
    ({"data": {"country": [{"equals-ignore-case": "jp"}, "CA"], "price": [{"numeric": ["<", 50]}]}},
     lambda e: dget(e, "country") in ("JP", "CA") and num_of(dget(e, "price"))
     and dget(e, "price") < 50),
]


def q(s):
    return urllib.parse.quote(s, safe="")


class Stream:
    """One SSE connection through http.client (which undoes the chunked coding); every read
    has a deadline."""

    def __init__(self, h, path, headers=None, timeout=20.0):
        self.conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=timeout)
        self.conn.request("GET", path, headers=dict({"Accept": "text/event-stream"},
                                                    **(headers or {})))
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.body = self.resp.read() if self.status != 200 else b""

    def next_event(self, timeout=20.0):
        """The next `cloudevent` as {"id": str, "env": envelope dict}; comments are skipped."""
        deadline = time.monotonic() + timeout
        fields = {}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no event within {timeout}s")
            self.conn.sock.settimeout(left)
            try:
                line = self.resp.readline()
            except socket.timeout:
                raise AssertionError(f"no event within {timeout}s")
            if not line:
                raise AssertionError("the stream ended")
            line = line.decode().rstrip("\r\n")
            if line == "":
                if "data" in fields:
                    assert fields.get("event") == "cloudevent", fields
                    return {"id": fields.get("id"), "env": json.loads(fields["data"])}
                fields = {}
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            fields[k] = v[1:] if v.startswith(" ") else v

    def close(self):
        self.conn.close()


class CesqlPattern(TriggerTestCase):
    def publish_set(self, bus="default"):
        """Publishes EVENTS; returns {seq: event}."""
        seqs = publish_batch(self.h, EVENTS, bus=bus)
        return dict(zip(seqs, EVENTS))

    def read(self, query, bus="default"):
        _, doc = self.h.json("GET", f"/v1/buses/{bus}/events?{query}", expect=200)
        return doc

    def read_filtered(self, expr, limit, start=1, max_pages=1000):
        """Every event the filter selects, following `next` until an empty page at the end."""
        out, pages, frm = [], [], start
        for _ in range(max_pages):
            doc = self.read(f"from={frm}&limit={limit}&filter={q(expr)}")
            pages.append(doc)
            out += doc["events"]
            self.assertGreater(doc["next"], frm - 1)
            if not doc["events"] and doc["next"] > last_seq(self.h):
                return out, pages
            self.assertTrue(doc["events"] or doc["next"] > frm, "a page made no progress")
            frm = doc["next"]
        self.fail("paging did not end")

    # ---- (a) pull reads ----

    def test_pull_filters_select_exactly_the_model(self):
        by_seq = self.publish_set()
        failures = []
        for expr, model in CESQL:
            want = [s for s, e in sorted(by_seq.items()) if model(e)]
            doc = self.read(f"limit=1000&filter={q(expr)}")
            got = [x["seq"] for x in doc["events"]]
            if got != want:
                failures.append(f"{expr!r}: got {got}, want {want}")
            for x in doc["events"]:
                if x["event"] != by_seq[x["seq"]]:
                    failures.append(f"{expr!r}: seq {x['seq']} reads back {x['event']}")
            if doc["next"] != max(by_seq) + 1:
                failures.append(f"{expr!r}: next {doc['next']}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))
        # every filter selects some events and leaves out others
        for expr, model in CESQL:
            n = sum(1 for e in EVENTS if model(e))
            self.assertTrue(0 < n < len(EVENTS), f"{expr!r} selects {n} events")

    def test_paging_a_filter_with_next(self):
        by_seq = self.publish_set()
        for expr, model in CESQL[:6]:
            want = [s for s, e in sorted(by_seq.items()) if model(e)]
            got, pages = self.read_filtered(expr, limit=3)
            self.assertEqual([x["seq"] for x in got], want, expr)
            for p in pages:
                self.assertLessEqual(len(p["events"]), 3)
            # full pages end right after their last event
            for p in pages:
                if len(p["events"]) == 3:
                    self.assertEqual(p["next"], p["events"][-1]["seq"] + 1)
            # a page that starts in the middle sees only what follows
            mid = want[len(want) // 2]
            doc = self.read(f"from={mid}&limit=1000&filter={q(expr)}")
            self.assertEqual([x["seq"] for x in doc["events"]], [s for s in want if s >= mid])
        # from_time with a filter
        doc = self.read("from_time=2000-01-01T00:00:00Z&limit=1000&filter=" + q(CESQL[0][0]))
        self.assertEqual([x["seq"] for x in doc["events"]],
                         [s for s, e in sorted(by_seq.items()) if CESQL[0][1](e)])
        # past the end: nothing, and next is the seq the next event will get
        doc = self.read(f"from={max(by_seq) + 5}&filter={q('TRUE')}")
        self.assertEqual(doc, {"events": [], "next": max(by_seq) + 1})

    def test_a_page_stops_after_10000_examined_events(self):
        """docs/api.md: a filtered page examines at most 10,000 events, so it may be empty
        before the end of the bus; following `next` finds what lies beyond."""
        self.h.json("PUT", "/v1/buses/big", {"fsync": "never"}, expect=201)
        total = 10050
        for start in range(0, total - 1, 1000):
            n = min(1000, total - 1 - start)
            publish_batch(self.h, [{"specversion": "1.0", "id": f"h{start + k}", "source": "/hay",
                                    "type": "hay"} for k in range(n)], bus="big")
        needle = publish(self.h, {"specversion": "1.0", "id": "needle", "source": "/n",
                                  "type": "needle"}, bus="big")
        self.assertEqual(needle, total)
        flt = q("type = 'needle'")
        doc = self.read(f"limit=10&filter={flt}", bus="big")
        self.assertEqual(doc, {"events": [], "next": 10001})
        doc = self.read(f"from={doc['next']}&limit=10&filter={flt}", bus="big")
        self.assertEqual([x["event"]["id"] for x in doc["events"]], ["needle"])
        self.assertEqual(doc["next"], total + 1)
        doc = self.read(f"from={doc['next']}&limit=10&filter={flt}", bus="big")
        self.assertEqual(doc, {"events": [], "next": total + 1})
        # a filter that matches all fills its page at once
        doc = self.read(f"limit=7&filter={q('TRUE')}", bus="big")
        self.assertEqual([x["seq"] for x in doc["events"]], list(range(1, 8)))
        self.assertEqual(doc["next"], 8)

    def test_invalid_filters_answer_400_with_the_position(self):
        publish(self.h, EVENTS[0])
        for expr, pos in [("num >", 5), ("type = 'x", 7), ("(type = 'a'", 11),
                          ("subject = 'é' AND", 17), ("type == 'a'", 6), ("FOO(type) = 1", 0),
                          ("LENGTH(type, 1) = 1", 0)]:
            for path in ("/v1/buses/default/events?filter=", "/v1/buses/default/stream?filter="):
                status, _, body = self.h.http("GET", path + q(expr))
                self.assertEqual(status, 400, (expr, path, body))
                doc = json.loads(body)
                self.assertEqual(doc["field"], "filter", expr)
                self.assertIn(f"character {pos}", doc["error"], expr)
        # empty and over-long expressions
        status, _, body = self.h.http("GET", "/v1/buses/default/events?filter=")
        self.assertEqual((status, json.loads(body)["field"]), (400, "filter"))
        long = " OR ".join(["type = 'x'"] * 400)
        status, _, body = self.h.http("GET", "/v1/buses/default/events?filter=" + q(long))
        self.assertEqual((status, json.loads(body)["field"]), (400, "filter"))

    # ---- (b) SSE streams ----

    def stream(self, query, headers=None):
        s = Stream(self.h, "/v1/buses/default/stream" + query, headers)
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200, s.body)
        return s

    def take(self, s, n):
        out = []
        for _ in range(n):
            ev = s.next_event()
            self.assertEqual(ev["id"], str(ev["env"]["seq"]))
            out.append(ev["env"])
        return out

    def test_stream_filter_from_seq_and_live(self):
        by_seq = self.publish_set()
        expr, model = CESQL[9]
        sentinel_expr = f"({expr}) OR id = 'sentinel'"
        want = [s for s, e in sorted(by_seq.items()) if model(e)]
        s = self.stream(f"?from=1&filter={q(sentinel_expr)}")
        got = self.take(s, len(want))
        self.assertEqual([x["seq"] for x in got], want)
        self.assertEqual([x["event"] for x in got], [by_seq[k] for k in want])
        # nothing else is pending: the next event is the sentinel published now
        sent = publish(self.h, {"specversion": "1.0", "id": "sentinel", "source": "/s",
                                "type": "sentinel"})
        self.assertEqual(self.take(s, 1)[0]["seq"], sent)

        # live: starts at the next event to commit, filtered
        expr2, model2 = CESQL[4]
        live = self.stream("?filter=" + q(f"({expr2}) OR id = 'end'"))
        more = [dict(e, id="live-" + e["id"]) for e in EVENTS[:25]]
        seqs = publish_batch(self.h, more)
        end = publish(self.h, {"specversion": "1.0", "id": "end", "source": "/s", "type": "end"})
        want2 = [sq for sq, e in zip(seqs, more) if model2(e)] + [end]
        got2 = self.take(live, len(want2))
        self.assertEqual([x["seq"] for x in got2], want2)

    def test_stream_resumes_with_last_event_id_and_filter(self):
        by_seq = self.publish_set()
        expr, model = CESQL[13]
        want = [s for s, e in sorted(by_seq.items()) if model(e)]
        s = self.stream(f"?from=1&filter={q(expr)}")
        first = self.take(s, 5)
        self.assertEqual([x["seq"] for x in first], want[:5])
        s.close()
        # resume after the 5th: the rest, filtered, ids still seqs
        r = self.stream(f"?filter={q(expr)}", {"Last-Event-ID": str(want[4])})
        rest = self.take(r, len(want) - 5)
        self.assertEqual([x["seq"] for x in rest], want[5:])
        # resume from a seq whose successors do not match: the next match comes next
        gap = next(k for k in range(1, len(want)) if want[k] - want[k - 1] > 1)
        r2 = self.stream(f"?filter={q(expr)}", {"Last-Event-ID": str(want[gap - 1] + 1)})
        self.assertEqual(self.take(r2, 1)[0]["seq"], want[gap])
        # Last-Event-ID 0: from the start
        r3 = self.stream(f"?filter={q(expr)}", {"Last-Event-ID": "0"})
        self.assertEqual([x["seq"] for x in self.take(r3, 3)], want[:3])

    # ---- (c) triggers ----

    def test_triggers_with_cesql_and_pattern_filters_deliver_exactly_the_model(self):
        triggers = {}
        for k, (expr, model) in enumerate(CESQL):
            dialect = "sql" if k % 3 == 0 else "cesql"
            triggers[f"c{k}"] = ([{dialect: expr}], model)
        for k, (pat, model) in enumerate(PATTERNS):
            triggers[f"p{k}"] = ([{"pattern": pat}], model)
        # dialects combined: all filters must match
        triggers["mix"] = ([{"cesql": CESQL[5][0]}, {"pattern": PATTERNS[4][0]}],
                           lambda e: CESQL[5][1](e) and PATTERNS[4][1](e))
        triggers["anyof"] = ([{"any": [{"cesql": CESQL[0][0]}, {"pattern": PATTERNS[6][0]}]}],
                             lambda e: CESQL[0][1](e) or PATTERNS[6][1](e))
        for name, (filters, _) in triggers.items():
            doc = put_trigger(self.h, name, {"sink": f"{self.sink.url}/{name}",
                                             "filters": filters}, expect=201)
            self.assertEqual(doc["filters"], filters)
        by_seq = self.publish_set()
        end = max(by_seq)
        failures = []
        for name, (_, model) in triggers.items():
            wait_settled(self.h, name, end)
            got = sorted(ids(self.sink.requests(f"/{name}")), key=lambda x: int(x[1:]))
            want = [e["id"] for e in EVENTS if model(e)]
            if got != want:
                failures.append(f"{name}: got {got}, want {want}")
            if not want:
                failures.append(f"{name}: the model selects nothing")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))

    def test_invalid_filters_at_put_answer_400_with_the_path(self):
        sink = self.sink.url + "/x"
        cases = [
            ([{"cesql": "type = "}], "filters[0].cesql", "character 7"),
            ([{"exact": {"type": "a"}}, {"sql": "NOPE(type)"}], "filters[1].sql", "character 0"),
            ([{"cesql": "a AND (b"}], "filters[0].cesql", "character 8"),
            ([{"cesql": 5}], "filters[0].cesql", None),
            ([{"pattern": {"data": {"price": [{"numeric": [">", "x"]}]}}}],
             "filters[0].pattern.data.price", None),
            ([{"pattern": {"data": {"price": "x"}}}], "filters[0].pattern.data.price", None),
            ([{"pattern": {"type": [{"bogus": 1}]}}], "filters[0].pattern.type", None),
            ([{"pattern": {"$or": [{"type": ["a"]}, {"data": {"q": [{"prefix": 5}]}}]}}],
             "filters[0].pattern.$or[1].data.q", None),
            ([{"all": [{"exact": {"type": "a"}}, {"pattern": {"data": {"n": []}}}]}],
             "filters[0].all[1].pattern.data.n", None),
            ([{"not": {"cesql": "1 +"}}], "filters[0].not.cesql", "character 3"),
        ]
        for filters, field, words in cases:
            status, _, body = self.h.http("PUT", "/v1/triggers/bad",
                                          body={"sink": sink, "filters": filters})
            self.assertEqual(status, 400, (filters, body))
            doc = json.loads(body)
            self.assertEqual(doc.get("field"), field, (filters, doc))
            if words:
                self.assertIn(words, doc["error"])
            # the same through POST /v1/filters/test
            status, _, body = self.h.http("POST", "/v1/filters/test",
                                          body={"filters": filters, "event": EVENTS[0]})
            self.assertEqual(status, 400, (filters, body))
            self.assertEqual(json.loads(body).get("field"), field, filters)
        self.assertEqual(self.h.http("GET", "/v1/triggers/bad")[0], 404)

    def test_filters_test_endpoint_agrees_with_the_models(self):
        failures = []
        cases = [({"cesql": x}, m) for x, m in CESQL] + [({"pattern": p}, m) for p, m in PATTERNS]
        for filt, model in cases:
            for e in EVENTS:
                _, doc = self.h.json("POST", "/v1/filters/test", {"filters": [filt], "event": e},
                                     expect=200)
                if doc != {"match": model(e)}:
                    failures.append(f"{filt} on {e['id']}: {doc}, model {model(e)}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures[:40]))


if __name__ == "__main__":
    unittest.main()
