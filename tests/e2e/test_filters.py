# SPDX-License-Identifier: MIT
"""Filter semantics (DESIGN §5, docs/api.md "Filters"): a table of cases through
POST /v1/filters/test — every dialect, extensions of each type, missing attributes, nesting,
case sensitivity, UTF-8, the legacy Knative form — then invalid filters, rejected with a 400
whose `field` is the position both there and at PUT /v1/triggers (which creates nothing), and
finally the same semantics through real triggers delivering to a real sink."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trigger_util import (TriggerTestCase, ev, ids, publish, publish_binary,  # noqa: E402
                          put_trigger, wait_settled)

# The event most cases run against: every context attribute plus string, integer and boolean
# extensions.
EVENT = {
    "specversion": "1.0", "id": "order-1", "source": "/shop/eu/orders",
    "type": "com.example.order.created", "subject": "eu/de/berlin/42",
    "time": "2026-01-02T03:04:05Z", "datacontenttype": "application/json",
    "dataschema": "https://schemas.example.com/order.json",
    "region": "eu-west", "count": 42, "neg": -7, "flag": True, "off": False,
    "data": {"total": 10},
}
# The same without subject, time, dataschema and the extensions.
BARE = {"specversion": "1.0", "id": "bare-1", "source": "/bare", "type": "com.example.bare"}
# UTF-8 values.
UTF8 = {"specversion": "1.0", "id": "u-1", "source": "/caf%C3%A9", "type": "com.例え.x",
        "subject": "café/東京/🎉", "label": "Grüße"}

E, B, U = EVENT, BARE, UTF8
T = "com.example.order.created"


def ex(**kv):
    return {"exact": kv}


def pre(**kv):
    return {"prefix": kv}


def suf(**kv):
    return {"suffix": kv}


# (description, {"filters": [...]} or {"filter": {...}}, event, expected match)
CASES = [
    # exact, over every kind of attribute
    ("exact type", {"filters": [ex(type=T)]}, E, True),
    ("exact type, other case", {"filters": [ex(type="Com.Example.Order.Created")]}, E, False),
    ("exact type, a prefix of it", {"filters": [ex(type="com.example.order")]}, E, False),
    ("exact type, one char longer", {"filters": [ex(type=T + "x")]}, E, False),
    ("exact id", {"filters": [ex(id="order-1")]}, E, True),
    ("exact source", {"filters": [ex(source="/shop/eu/orders")]}, E, True),
    ("exact specversion", {"filters": [ex(specversion="1.0")]}, E, True),
    ("exact subject", {"filters": [ex(subject="eu/de/berlin/42")]}, E, True),
    ("exact time", {"filters": [ex(time="2026-01-02T03:04:05Z")]}, E, True),
    ("exact time, other second", {"filters": [ex(time="2026-01-02T03:04:06Z")]}, E, False),
    ("exact datacontenttype", {"filters": [ex(datacontenttype="application/json")]}, E, True),
    ("exact dataschema",
     {"filters": [ex(dataschema="https://schemas.example.com/order.json")]}, E, True),
    ("exact two attributes, both hold", {"filters": [ex(type=T, subject="eu/de/berlin/42")]},
     E, True),
    ("exact two attributes, one fails", {"filters": [ex(type=T, subject="eu/de/berlin/43")]},
     E, False),
    ("exact three attributes incl. extension",
     {"filters": [ex(type=T, source="/shop/eu/orders", region="eu-west")]}, E, True),
    ("exact string extension", {"filters": [ex(region="eu-west")]}, E, True),
    ("exact string extension, other value", {"filters": [ex(region="eu-east")]}, E, False),
    ("exact integer extension 42 as \"42\"", {"filters": [ex(count="42")]}, E, True),
    ("exact integer extension, \"042\"", {"filters": [ex(count="042")]}, E, False),
    ("exact integer extension, \"42.0\"", {"filters": [ex(count="42.0")]}, E, False),
    ("exact negative integer extension", {"filters": [ex(neg="-7")]}, E, True),
    ("exact boolean extension true", {"filters": [ex(flag="true")]}, E, True),
    ("exact boolean extension, \"True\"", {"filters": [ex(flag="True")]}, E, False),
    ("exact boolean extension, \"1\"", {"filters": [ex(flag="1")]}, E, False),
    ("exact boolean extension false", {"filters": [ex(off="false")]}, E, True),
    ("exact missing extension", {"filters": [ex(nosuch="x")]}, E, False),
    ("exact missing subject", {"filters": [ex(subject="eu/de/berlin/42")]}, B, False),
    ("exact missing time", {"filters": [ex(time="2026-01-02T03:04:05Z")]}, B, False),
    # prefix
    ("prefix type", {"filters": [pre(type="com.example.")]}, E, True),
    ("prefix type, the whole value", {"filters": [pre(type=T)]}, E, True),
    ("prefix type, longer than the value", {"filters": [pre(type=T + ".v2")]}, E, False),
    ("prefix type, other case", {"filters": [pre(type="com.Example.")]}, E, False),
    ("prefix type, a middle part", {"filters": [pre(type="example")]}, E, False),
    ("prefix subject", {"filters": [pre(subject="eu/")]}, E, True),
    ("prefix subject, other region", {"filters": [pre(subject="us/")]}, E, False),
    ("prefix source", {"filters": [pre(source="/shop/")]}, E, True),
    ("prefix time (a month)", {"filters": [pre(time="2026-01-")]}, E, True),
    ("prefix time, other month", {"filters": [pre(time="2026-02-")]}, E, False),
    ("prefix integer extension", {"filters": [pre(count="4")]}, E, True),
    ("prefix two attributes, both hold", {"filters": [pre(type="com.", source="/shop")]},
     E, True),
    ("prefix two attributes, one fails", {"filters": [pre(type="com.", source="/store")]},
     E, False),
    ("prefix missing subject", {"filters": [pre(subject="eu/")]}, B, False),
    ("prefix missing extension", {"filters": [pre(nosuch="a")]}, E, False),
    # suffix
    ("suffix type", {"filters": [suf(type=".created")]}, E, True),
    ("suffix type, other case", {"filters": [suf(type=".Created")]}, E, False),
    ("suffix type, the whole value", {"filters": [suf(type=T)]}, E, True),
    ("suffix type, longer than the value", {"filters": [suf(type="x." + T)]}, E, False),
    ("suffix subject", {"filters": [suf(subject="/42")]}, E, True),
    ("suffix subject, other", {"filters": [suf(subject="/43")]}, E, False),
    ("suffix source", {"filters": [suf(source="orders")]}, E, True),
    ("suffix boolean extension", {"filters": [suf(flag="ue")]}, E, True),
    ("suffix string extension", {"filters": [suf(region="-west")]}, E, True),
    ("suffix missing subject", {"filters": [suf(subject="42")]}, B, False),
    ("suffix two attributes, one fails", {"filters": [suf(type=".created", subject="/1")]},
     E, False),
    # all / any / not
    ("all of two that hold", {"filters": [{"all": [ex(type=T), pre(subject="eu/")]}]}, E, True),
    ("all, one fails", {"filters": [{"all": [ex(type=T), pre(subject="us/")]}]}, E, False),
    ("all of one", {"filters": [{"all": [ex(region="eu-west")]}]}, E, True),
    ("any, the second holds", {"filters": [{"any": [ex(type="x"), ex(type=T)]}]}, E, True),
    ("any, none holds", {"filters": [{"any": [ex(type="x"), ex(type="y")]}]}, E, False),
    ("any, a missing attribute then one that holds",
     {"filters": [{"any": [ex(nosuch="v"), suf(type="created")]}]}, E, True),
    ("not of a match", {"filters": [{"not": ex(type=T)}]}, E, False),
    ("not of a mismatch", {"filters": [{"not": ex(type="other")}]}, E, True),
    ("not exact of a missing attribute", {"filters": [{"not": ex(subject="eu/x")}]}, B, True),
    ("not prefix of a missing attribute", {"filters": [{"not": pre(nosuch="a")}]}, E, True),
    ("not suffix of a missing attribute", {"filters": [{"not": suf(time="Z")}]}, B, True),
    ("not not", {"filters": [{"not": {"not": ex(type=T)}}]}, E, True),
    ("not all (one fails)", {"filters": [{"not": {"all": [ex(type=T), ex(region="x")]}}]},
     E, True),
    ("not any (one holds)", {"filters": [{"not": {"any": [ex(type="x"), ex(region="eu-west")]}}]},
     E, False),
    # nesting, three levels and more
    ("all > any > not > exact",
     {"filters": [{"all": [{"any": [{"not": ex(type="x")}, ex(type="y")]},
                           pre(subject="eu/")]}]}, E, True),
    ("any > all > not > any, both branches fail",
     {"filters": [{"any": [{"all": [ex(type=T),
                                    {"not": {"any": [ex(region="us"), ex(region="eu-west")]}}]},
                           suf(subject="/43")]}]}, E, False),
    ("any > all > not > any, second branch holds",
     {"filters": [{"any": [{"all": [ex(type=T),
                                    {"not": {"any": [ex(region="us"), ex(region="eu-west")]}}]},
                           suf(subject="/42")]}]}, E, True),
    ("not > all > any > exact integer",
     {"filters": [{"not": {"all": [{"any": [ex(count="42")]}]}}]}, E, False),
    ("six levels",
     {"filters": [{"all": [{"any": [{"not": {"not": {"all": [{"any": [
         ex(flag="false"), pre(time="2026-01-02T03")]}]}}}]}]}]}, E, True),
    ("nested, missing attributes only under not",
     {"filters": [{"all": [{"not": ex(subject="a")}, {"not": {"any": [ex(time="b")]}},
                           ex(type="com.example.bare")]}]}, B, True),
    # the top-level list: every filter must hold
    ("empty filters list matches everything", {"filters": []}, E, True),
    ("empty filters list, bare event", {"filters": []}, B, True),
    ("list, all three hold",
     {"filters": [ex(type=T), pre(subject="eu/"), suf(source="/orders")]}, E, True),
    ("list, the last fails", {"filters": [ex(type=T), pre(subject="eu/"), suf(source="/x")]},
     E, False),
    ("list, the first fails", {"filters": [ex(type="x"), pre(subject="eu/")]}, E, False),
    # UTF-8 values, compared as bytes
    ("utf-8 exact subject", {"filters": [ex(subject="café/東京/🎉")]}, U, True),
    ("utf-8 prefix subject", {"filters": [pre(subject="café/")]}, U, True),
    ("utf-8 suffix subject", {"filters": [suf(subject="東京/🎉")]}, U, True),
    ("utf-8 exact type", {"filters": [ex(type="com.例え.x")]}, U, True),
    ("source keeps its percent-encoding", {"filters": [ex(source="/caf%C3%A9")]}, U, True),
    ("source is not percent-decoded", {"filters": [ex(source="/café")]}, U, False),
    ("utf-8 extension", {"filters": [ex(label="Grüße")]}, U, True),
    ("utf-8, other case is another value", {"filters": [ex(label="GRÜSSE")]}, U, False),
    ("utf-8, decomposed é is another value", {"filters": [pre(subject="cafe\u0301/")]}, U, False),
    ("utf-8 prefix, upper-case É", {"filters": [pre(subject="cafÉ")]}, U, False),
    # the legacy Knative form: exact, "" = present
    ("legacy exact type", {"filter": {"attributes": {"type": T}}}, E, True),
    ("legacy exact type, other", {"filter": {"attributes": {"type": "x"}}}, E, False),
    ("legacy type and source present", {"filter": {"attributes": {"type": T, "source": ""}}},
     E, True),
    ("legacy \"\" for a missing subject", {"filter": {"attributes": {"subject": ""}}}, B, False),
    ("legacy \"\" for an extension", {"filter": {"attributes": {"region": ""}}}, E, True),
    ("legacy \"\" for a missing extension", {"filter": {"attributes": {"nosuch": ""}}}, E, False),
    ("legacy integer extension", {"filter": {"attributes": {"count": "42"}}}, E, True),
    ("legacy, one of two fails", {"filter": {"attributes": {"type": T, "region": "us"}}},
     E, False),
    ("legacy empty attributes matches everything", {"filter": {"attributes": {}}}, B, True),
]

# (description, body members (filters or filter), expected field: the position of the error)
INVALID = [
    ("upper-case attribute name", {"filters": [ex(Type="x")]}, "filters[0].exact"),
    ("attribute name with a dash", {"filters": [ex(**{"my-ext": "x"})]}, "filters[0].exact"),
    ("attribute name starting with a digit", {"filters": [pre(**{"1abc": "x"})]},
     "filters[0].prefix"),
    ("empty attribute name", {"filters": [ex(**{"": "x"})]}, "filters[0].exact"),
    ("empty value", {"filters": [ex(type="")]}, "filters[0].exact"),
    ("empty value in suffix", {"filters": [ex(type=T), suf(subject="")]}, "filters[1].suffix"),
    ("no attribute in exact", {"filters": [{"exact": {}}]}, "filters[0].exact"),
    ("two dialects in one object", {"filters": [{"exact": {"type": "x"}, "prefix": {"type": "y"}}]},
     "filters[0]"),
    ("no dialect (empty object)", {"filters": [{}]}, "filters[0]"),
    ("unknown dialect", {"filters": [ex(type="x"), {"regex": {"type": "x.*"}}]}, "filters[1]"),
    ("a filter that is a string", {"filters": ["exact"]}, "filters[0]"),
    ("all that is not an array", {"filters": [{"all": ex(type="x")}]}, "filters[0].all"),
    ("any that is not an array", {"filters": [{"any": "x"}]}, "filters[0].any"),
    ("empty all", {"filters": [{"all": []}]}, "filters[0].all"),
    ("empty any", {"filters": [ex(type="x"), {"any": []}]}, "filters[1].any"),
    ("not with an array", {"filters": [{"not": [ex(type="x")]}]}, "filters[0].not"),
    ("integer value", {"filters": [ex(count=42)]}, "filters[0].exact"),
    ("boolean value", {"filters": [pre(flag=True)]}, "filters[0].prefix"),
    ("null value", {"filters": [suf(type=None)]}, "filters[0].suffix"),
    ("exact that is an array", {"filters": [{"exact": ["type", "x"]}]}, "filters[0].exact"),
    ("exact that is a string", {"filters": [{"exact": "type"}]}, "filters[0].exact"),
    ("cesql parse error", {"filters": [{"cesql": "type = "}]}, "filters[0].cesql"),
    ("pattern leaf not a list", {"filters": [{"pattern": {"type": "x"}}]}, "filters[0].pattern"),
    ("nested position", {"filters": [ex(type="ok"), {"any": [ex(Type="x")]}]},
     "filters[1].any[0].exact"),
    ("deeply nested position",
     {"filters": [{"all": [ex(type="ok"), {"not": {"any": [pre(subject="a"), pre(subject="")]}}]}]},
     "filters[0].all[1].not.any[1].prefix"),
    ("unknown dialect deep inside",
     {"filters": [{"any": [{"all": [ex(type="a"), {"glob": {"type": "*"}}]}]}]},
     "filters[0].any[0].all[1]"),
    ("filters that is not an array", {"filters": ex(type="x")}, "filters"),
    ("legacy upper-case name", {"filter": {"attributes": {"Type": "x"}}}, "filter.attributes"),
    ("legacy integer value", {"filter": {"attributes": {"count": 42}}}, "filter.attributes"),
    ("legacy attributes that are an array", {"filter": {"attributes": ["type"]}},
     "filter.attributes"),
]


def field_at(field, position):
    """True when the error's field is the position or something inside it (e.g. the attribute
    under filters[0].exact)."""
    return field == position or field.startswith(position + ".") or \
        field.startswith(position + "[")


class FilterTableTest(TriggerTestCase):

    def test_filter_table(self):
        self.assertGreaterEqual(len(CASES), 60)
        failures = []
        for desc, filt, event, want in CASES:
            body = dict(filt)
            body["event"] = event
            status, _, data = self.h.http("POST", "/v1/filters/test", body=body)
            if status != 200:
                failures.append(f"{desc}: {status} {data[:300]!r}")
                continue
            got = json.loads(data)
            if got != {"match": want}:
                failures.append(f"{desc}: expected match={want}, got {got}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))

    def test_binary_published_extension_types_read_the_same(self):
        """An extension is compared as its string form whichever way it came in: the filter test
        on the event as read back from the bus (structured) gives the same result."""
        seq = publish(self.h, ev("x1", type_=T, count=42, flag=True))
        _, doc = self.h.json("GET", f"/v1/buses/default/events?from={seq}&limit=1", expect=200)
        stored = doc["events"][0]["event"]
        for filt, want in [([ex(count="42")], True), ([ex(flag="true")], True),
                           ([ex(count="43")], False)]:
            _, r = self.h.json("POST", "/v1/filters/test", {"filters": filt, "event": stored},
                               expect=200)
            self.assertEqual(r, {"match": want}, filt)

    def test_invalid_filters_via_filter_test(self):
        self.assertGreaterEqual(len(INVALID), 12)
        failures = []
        for desc, members, position in INVALID:
            body = dict(members)
            body["event"] = EVENT
            status, _, data = self.h.http("POST", "/v1/filters/test", body=body)
            try:
                doc = json.loads(data)
            except ValueError:
                doc = None
            if status != 400 or not isinstance(doc, dict) or not doc.get("error"):
                failures.append(f"{desc}: expected 400 with an error, got {status} {data[:200]!r}")
            elif not field_at(doc.get("field", ""), position):
                failures.append(f"{desc}: expected field {position}, got {doc.get('field')!r}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))

    def test_invalid_filters_via_put_trigger(self):
        # a valid trigger that a bad update must leave unchanged
        good = {"sink": self.sink.url + "/keep", "filters": [ex(type="keep")]}
        put_trigger(self.h, "keep", good, expect=201)
        failures = []
        for i, (desc, members, position) in enumerate(INVALID):
            doc = {"sink": self.sink.url + "/x"}
            doc.update(members)
            for name in ("x", "keep"):
                status, _, data = self.h.http("PUT", f"/v1/triggers/{name}", body=doc)
                try:
                    err = json.loads(data)
                except ValueError:
                    err = None
                if status != 400 or not isinstance(err, dict) or not err.get("error"):
                    failures.append(f"{desc} ({name}): expected 400, got {status} {data[:200]!r}")
                elif not field_at(err.get("field", ""), position):
                    failures.append(f"{desc} ({name}): expected field {position}, "
                                    f"got {err.get('field')!r}")
            status, _, _ = self.h.http("GET", "/v1/triggers/x")
            if status != 404:
                failures.append(f"{desc}: the rejected PUT created trigger x ({status})")
                self.h.http("DELETE", "/v1/triggers/x")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))
        _, doc = self.h.json("GET", "/v1/triggers/keep", expect=200)
        self.assertEqual(doc["filters"], [ex(type="keep")])
        self.assertEqual(doc["sink"], self.sink.url + "/keep")
        _, lst = self.h.json("GET", "/v1/triggers", expect=200)
        self.assertEqual([t["name"] for t in lst["triggers"]], ["keep"])

    def test_filters_and_legacy_filter_together_are_rejected(self):
        both = {"filters": [ex(type="x")], "filter": {"attributes": {"type": "x"}}}
        status, _, data = self.h.http("POST", "/v1/filters/test", body=dict(both, event=EVENT))
        self.assertEqual(status, 400, data)
        doc = dict(both, sink=self.sink.url + "/x")
        status, _, data = self.h.http("PUT", "/v1/triggers/x", body=doc)
        self.assertEqual(status, 400, data)
        self.assertIn(json.loads(data).get("field"), ("filter", "filters"))
        self.assertEqual(self.h.http("GET", "/v1/triggers/x")[0], 404)

    def test_filter_test_needs_a_valid_event(self):
        status, _, data = self.h.http("POST", "/v1/filters/test", body={"filters": []})
        self.assertEqual(status, 400, data)
        self.assertEqual(json.loads(data)["field"], "event")
        bad = dict(EVENT)
        del bad["type"]
        status, _, data = self.h.http("POST", "/v1/filters/test", body={"filters": [], "event": bad})
        self.assertEqual(status, 400, data)
        self.assertIn("type", json.loads(data)["field"])
        status, _, data = self.h.http("POST", "/v1/filters/test", body=b"{not json",
                                      headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400, data)


class FilterTriggerTest(TriggerTestCase):
    """The dispatcher runs the same evaluation: each sink receives exactly the matching events."""

    TRIGGERS = {
        "orders": [ex(type="com.example.order.created")],
        "eu": [pre(subject="eu/"), {"not": ex(region="eu-east")}],
        "big": [{"any": [ex(count="42"), ex(flag="true")]}],
        "unicode": [suf(subject="/東京")],
        "notslash": [{"not": suf(subject="/")}],
        "legacy": None,  # the legacy form, set in the test
        "all": [],
    }

    def matches(self, name, e):
        """The reference model of each trigger's filter, written out in Python."""
        subj = e.get("subject")
        if name == "orders":
            return e["type"] == "com.example.order.created"
        if name == "eu":
            return subj is not None and subj.startswith("eu/") and e.get("region") != "eu-east"
        if name == "big":
            return e.get("count") == 42 or e.get("flag") is True
        if name == "unicode":
            return subj is not None and subj.endswith("/東京")
        if name == "notslash":
            return not (subj is not None and subj.endswith("/"))
        if name == "legacy":
            return e["type"] == "com.example.order.created" and "region" in e
        return True

    def test_triggers_deliver_exactly_the_matching_events(self):
        for name, filters in self.TRIGGERS.items():
            doc = {"sink": f"{self.sink.url}/{name}"}
            if name == "legacy":
                doc["filter"] = {"attributes": {"type": "com.example.order.created",
                                                "region": ""}}
            else:
                doc["filters"] = filters
            put_trigger(self.h, name, doc, expect=201)
        created, updated = "com.example.order.created", "com.example.order.updated"
        events = [
            ev("1", type_=created, subject="eu/de/1", region="eu-west"),
            ev("2", type_=updated, subject="eu/de/2", region="eu-east", count=42),
            ev("3", type_=created),
            ev("4", type_=updated, subject="asia/東京", flag=True),
            ev("5", type_=created, subject="eu/fr/東京", region="eu-central", flag=False),
            ev("6", type_="Com.Example.Order.Created", subject="eu/", count=41),
            ev("7", type_=updated, subject="us/ny/", count=42, flag=True),
            ev("8", type_=created, subject="us/東京", region="us"),
        ]
        for e in events:
            publish(self.h, e)
        # one in binary mode: its extensions are strings on the wire, and the same filters apply
        publish_binary(self.h, {"specversion": "1.0", "id": "9", "source": "/e2e",
                                "type": created, "subject": "eu/it/東京", "region": "eu-south"},
                       body=b"{}", content_type="application/json")
        events.append(ev("9", type_=created, subject="eu/it/東京", region="eu-south"))
        for name in self.TRIGGERS:
            wait_settled(self.h, name)
        for name in self.TRIGGERS:
            want = sorted(e["id"] for e in events if self.matches(name, e))
            got = sorted(ids(self.sink.requests(f"/{name}")))
            self.assertEqual(got, want, f"trigger {name}")
        # the reference model is not trivial: every trigger got some but not all (except "all")
        for name in self.TRIGGERS:
            n = len(self.sink.requests(f"/{name}"))
            if name == "all":
                self.assertEqual(n, len(events))
            else:
                self.assertTrue(0 < n < len(events), (name, n))


if __name__ == "__main__":
    unittest.main()
