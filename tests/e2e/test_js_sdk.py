# SPDX-License-Identifier: MIT
"""The official CloudEvents JavaScript SDK (npm `cloudevents`, pinned in js/package-lock.json) as a
real producer and consumer of a real herald.

js/produce.mjs emits events with the SDK's emitterFor(httpTransport(url), {mode}) in binary and
structured mode (the SDK's transport is Node's http module writing the body without a
Content-Length, so the requests are chunked), and a batch of SDK-serialized events (the SDK has no
batch emitter). This test reads every event back from herald and checks it attribute by attribute
and its data exactly. js/consume.mjs then parses what herald returns with the SDK (HTTP.toEvent)
and validates it against the SDK's CloudEvents 1.0 schema.

How the SDK puts events on the wire (cloudevents 10.0.0, checked in its source): in binary mode
extension values go into ce- headers as they are (not percent-encoded, and every value becomes a
string), `time` is always sent (the SDK fills in the current time when it is absent) normalized by
Date#toISOString (millisecond precision), an event without datacontenttype is sent with
`Content-Type: application/json; charset=utf-8`, and binary data (Uint8Array) is sent as the raw
body. In structured mode binary data becomes `data_base64`, and extension types (integer,
boolean) are kept. The expectations below follow these rules.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HeraldTestCase  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
JS = os.path.join(HERE, "js")
SRC = os.environ.get("HERALD_SRC") or os.path.join(HERE, "..", "..")
NODE = shutil.which("node")


def setUpModule():
    if NODE is None:
        raise unittest.SkipTest("node is not installed")
    if not os.path.isdir(os.path.join(JS, "node_modules", "cloudevents")):
        # `make test` runs scripts/npm-deps.sh first; do it here for a direct run
        subprocess.run([os.path.join(SRC, "scripts", "npm-deps.sh")], check=True, timeout=600)


def pinned_version():
    with open(os.path.join(JS, "package.json")) as f:
        return json.load(f)["dependencies"]["cloudevents"]


BYTES = bytes(range(256)) + b"\x00\xff\xfe" + "€ not text".encode("utf-8")
TIME = "2026-03-04T05:06:07.890Z"


def spec_events():
    """[(mode, [event spec])]: what produce.mjs sends, and so what herald must store."""
    src = "/e2e/js-sdk"
    return [
        ("binary", [
            {"id": "bin-json", "source": src, "type": "com.example.js.json", "time": TIME,
             "subject": "orders/42", "datacontenttype": "application/json",
             "dataschema": "https://example.com/schemas/order.json",
             "tenant": "acme corp", "region": "eu-west-1",
             "json": {"order": 42, "items": [{"sku": "A-1", "qty": 2}], "note": "héllo ✓",
                      "total": 12.5, "paid": True, "coupon": None}},
            ]),
        ("binary", [
            {"id": "bin-text", "source": src, "type": "com.example.js.text", "time": TIME,
             "datacontenttype": "text/plain; charset=utf-8",
             "text": "héllo wörld ✓\nsecond line\ttab"}]),
        ("binary", [
            {"id": "bin-bytes", "source": src, "type": "com.example.js.bytes", "time": TIME,
             "datacontenttype": "application/octet-stream", "subject": "blobs/1",
             "bytes_b64": base64.b64encode(BYTES).decode()}]),
        ("binary", [
            # no datacontenttype: the SDK sends Content-Type application/json; charset=utf-8
            {"id": "bin-default-ct", "source": src, "type": "com.example.js.json", "time": TIME,
             "json": [1, 2, {"three": 3}]}]),
        ("structured", [
            {"id": "st-json", "source": src, "type": "com.example.js.json", "time": TIME,
             "subject": "orders/43", "datacontenttype": "application/json",
             "dataschema": "https://example.com/schemas/order.json",
             "tenant": "acme corp", "priority": 5, "urgent": True,
             "json": {"order": 43, "nested": {"deep": [1, "two", None]}, "emoji": "🌎"}}]),
        ("structured", [
            {"id": "st-text", "source": src, "type": "com.example.js.text", "time": TIME,
             "datacontenttype": "text/plain", "text": "plain text, \"quoted\", 100% ✓"}]),
        ("structured", [
            {"id": "st-bytes", "source": src, "type": "com.example.js.bytes", "time": TIME,
             "datacontenttype": "application/octet-stream",
             "bytes_b64": base64.b64encode(BYTES[::-1]).decode()}]),
        ("structured", [
            {"id": "st-nodata", "source": src, "type": "com.example.js.nodata", "time": TIME,
             "subject": "pings/1"}]),
        ("batch", [
            {"id": "batch-json", "source": src, "type": "com.example.js.json", "time": TIME,
             "datacontenttype": "application/json", "seqno": 1, "json": {"i": 1}},
            {"id": "batch-text", "source": src, "type": "com.example.js.text", "time": TIME,
             "datacontenttype": "text/plain; charset=utf-8", "text": "two ✓"},
            {"id": "batch-bytes", "source": src, "type": "com.example.js.bytes", "time": TIME,
             "datacontenttype": "application/octet-stream",
             "bytes_b64": base64.b64encode(b"\x00\x01three\xff").decode()},
        ]),
    ]


def expected(mode, spec):
    """The structured JSON form herald must return for an event the SDK sent."""
    ev = {"specversion": "1.0"}
    for k, v in spec.items():
        if k in ("json", "text", "bytes_b64"):
            continue
        # binary mode carries every attribute as a string header
        ev[k] = str(v).lower() if mode == "binary" and isinstance(v, bool) else \
            str(v) if mode == "binary" else v
    if mode == "binary" and "datacontenttype" not in spec:
        ev["datacontenttype"] = "application/json; charset=utf-8"
    if "json" in spec:
        ev["data"] = spec["json"]
    elif "text" in spec:
        ev["data"] = spec["text"]
    elif "bytes_b64" in spec:
        ev["data_base64"] = spec["bytes_b64"]
    return ev


class TestJsSdk(HeraldTestCase):
    def node(self, script, *args, stdin=None):
        p = subprocess.run([NODE, os.path.join(JS, script), *args], input=stdin, cwd=JS,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, f"{script} failed:\n{p.stderr}\n{p.stdout}")
        return json.loads(p.stdout)

    def produce(self, sends, bus="default"):
        spec = json.dumps({"sends": [{"mode": m, "events": evs} for m, evs in sends]})
        out = self.node("produce.mjs", f"{self.h.url}/v1/buses/{bus}/events", stdin=spec)
        self.assertEqual(out["sdk"], pinned_version())
        return out["results"]

    def test_sdk_events_round_trip(self):
        sends = spec_events()
        results = self.produce(sends)
        self.assertEqual(len(results), len(sends))
        seq_of = {}
        for (mode, evs), res in zip(sends, results):
            self.assertEqual(res["mode"], mode)
            try:
                ans = json.loads(res["body"])
            except ValueError:
                self.fail(f"{mode} {[e['id'] for e in evs]}: herald answered {res['body']!r}")
            if mode == "batch":
                self.assertIn("seqs", ans, f"batch: herald answered {ans}")
                self.assertEqual(len(ans["seqs"]), len(evs))
                seqs = ans["seqs"]
            else:
                self.assertIn("seq", ans, f"{mode} {evs[0]['id']}: herald answered {ans}")
                seqs = [ans["seq"]]
            self.assertNotIn("duplicate", ans)
            for e, s in zip(evs, seqs):
                seq_of[e["id"]] = s
        stored = {r["seq"]: r for r in self.h.read_all()}
        self.assertEqual(len(stored), sum(len(evs) for _, evs in sends))
        for mode, evs in sends:
            for spec in evs:
                with self.subTest(mode=mode, id=spec["id"]):
                    rec = stored.get(seq_of[spec["id"]])
                    self.assertIsNotNone(rec)
                    got, want = rec["event"], expected(mode, spec)
                    for attr in sorted(set(got) | set(want)):
                        self.assertEqual(got.get(attr), want.get(attr),
                                         f"{spec['id']} ({mode}): attribute {attr!r}")
                    if "data_base64" in want:
                        self.assertEqual(base64.b64decode(got["data_base64"]),
                                         base64.b64decode(spec["bytes_b64"]))

    def test_sdk_sends_chunked_bodies(self):
        """The SDK's httpTransport writes the body with req.write() and no Content-Length, so Node
        sends it with Transfer-Encoding: chunked; herald must take it like any other body."""
        results = self.produce(spec_events()[:1] + spec_events()[4:5])
        for res in results:
            self.assertNotIn("content-length", {k.lower() for k in res["wire"]["headers"]})
            self.assertIn("seq", json.loads(res["body"]))
        self.assertEqual(len(self.h.read_all()), 2)

    def test_sdk_parses_and_validates_what_herald_returns(self):
        sends = spec_events()
        self.produce(sends)
        out = self.node("consume.mjs", self.h.url, "default")
        evs = out["events"]
        self.assertEqual(len(evs), sum(len(e) for _, e in sends))
        by_id = {}
        for e in evs:
            self.assertTrue(e["valid"], f"the SDK rejects herald's event at seq {e['seq']}: "
                                        f"{e.get('error')}")
            by_id[e["attrs"]["id"]] = e
        for mode, specs in sends:
            for spec in specs:
                with self.subTest(mode=mode, id=spec["id"]):
                    e = by_id[spec["id"]]
                    want = expected(mode, spec)
                    for k, v in want.items():
                        if k in ("data", "data_base64"):
                            continue
                        self.assertEqual(e["attrs"].get(k), v, f"{spec['id']}: {k}")
                    if "json" in spec:
                        self.assertEqual((e["data_kind"], e["data"]), ("json", spec["json"]))
                    elif "text" in spec:
                        self.assertEqual((e["data_kind"], e["data"]), ("text", spec["text"]))
                    elif "bytes_b64" in spec:
                        self.assertEqual(e["data_kind"], "bytes")
                        self.assertEqual(base64.b64decode(e["data"]),
                                         base64.b64decode(spec["bytes_b64"]))

    def test_dedup_of_sdk_retries(self):
        """A producer that retries with the same id (as SDK users do after a timeout) gets the
        original seq back and the event is stored once."""
        ev = spec_events()[0][1][0]
        results = self.produce([("binary", [ev]), ("structured", [ev])])
        first, again = (json.loads(r["body"]) for r in results)
        self.assertEqual(again.get("seq"), first["seq"])
        self.assertIs(again.get("duplicate"), True)
        self.assertEqual(len(self.h.read_all()), 1)


if __name__ == "__main__":
    unittest.main()
