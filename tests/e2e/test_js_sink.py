# SPDX-License-Identifier: MIT
"""The official CloudEvents JavaScript SDK (npm `cloudevents`, pinned in js/package-lock.json) as a
real sink of herald's push delivery.

js/sink.mjs is a node:http server that decodes every request herald sends with the SDK
(HTTP.toEvent({headers, body})), validates it against the SDK's CloudEvents 1.0 schema and writes
what the SDK decoded as a JSON line, answering 202 (400 when the SDK rejects the request). Two
triggers deliver the same events to it, one in binary and one in structured format, and the test
checks that the SDK decoded every attribute and the data exactly: a JSON object, text, binary
bytes, and an event without data.

How the SDK reads a request (cloudevents 10.0.0, checked in its source): in binary mode every
ce- header becomes an attribute as it is, a string, without percent-decoding (so extension values
arrive as strings: an integer 5 as "5", a boolean as "true"; and a value herald must
percent-encode per the HTTP binding §3.1.3.2, like a subject with a space or non-ASCII letters,
arrives encoded, which the test decodes once to compare); `time` is parsed and re-rendered by
Date#toISOString (so the events use millisecond precision); the body is parsed as JSON only when
Content-Type is exactly a JSON type the SDK knows. In structured mode extension types (integer,
boolean) are kept and `data_base64` is decoded to bytes.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HeraldTestCase, wait_for  # noqa: E402

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
SRC_URI = "/e2e/js-sink"

# Published in structured mode (so integer and boolean extensions keep their types).
EVENTS = [
    {"specversion": "1.0", "id": "sink-json", "source": SRC_URI, "type": "com.example.sink.json",
     "time": TIME, "subject": "orders/42", "datacontenttype": "application/json",
     "dataschema": "https://example.com/schemas/order.json",
     "tenant": "acme-corp", "priority": 5, "urgent": True,
     "data": {"order": 42, "items": [{"sku": "A-1", "qty": 2}], "note": "héllo ✓", "total": 12.5,
              "paid": True, "coupon": None, "nested": {"deep": [1, "two", None, False]}}},
    {"specversion": "1.0", "id": "sink-text", "source": SRC_URI, "type": "com.example.sink.text",
     "time": TIME, "datacontenttype": "text/plain; charset=utf-8",
     "data": "héllo wörld ✓\nsecond line\ttab \"quoted\" 100%"},
    {"specversion": "1.0", "id": "sink-bytes", "source": SRC_URI, "type": "com.example.sink.bytes",
     "time": TIME, "subject": "blobs/1", "datacontenttype": "application/octet-stream",
     "data_base64": base64.b64encode(BYTES).decode()},
    {"specversion": "1.0", "id": "sink-nodata", "source": SRC_URI, "type": "com.example.sink.ping",
     "time": TIME, "region": "eu-west-1"},
    # a subject that the binary format must percent-encode (space, '"', '%', non-ASCII)
    {"specversion": "1.0", "id": "sink-encoded", "source": SRC_URI,
     "type": "com.example.sink.json", "time": TIME, "subject": "carts/7 🛒 \"big\" 100% ü",
     "datacontenttype": "application/json", "data": ["a", 1, {"b": None}]},
]


def expected_attrs(ev, fmt):
    """The attributes (extensions included) the SDK must report for an event herald delivered."""
    out = {}
    for k, v in ev.items():
        if k in ("data", "data_base64"):
            continue
        if fmt == "binary" and isinstance(v, bool):
            v = "true" if v else "false"
        elif fmt == "binary" and isinstance(v, int):
            v = str(v)
        out[k] = v
    return out


def expected_data(ev):
    if "data_base64" in ev:
        return "bytes", ev["data_base64"]
    if "data" not in ev:
        return "none", None
    if isinstance(ev["data"], str):
        return "text", ev["data"]
    return "json", ev["data"]


class JsSink:
    """js/sink.mjs as a child process: start(), url, lines(), stop()."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="herald-js-sink-")
        self.out = os.path.join(self.dir, "events.jsonl")
        open(self.out, "w").close()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([NODE, os.path.join(JS, "sink.mjs"), self.out], cwd=JS,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # the sink prints its port once it listens
        if not line:
            raise AssertionError(f"sink.mjs did not start: {self.proc.stderr.read()}")
        hello = json.loads(line)
        self.port, self.sdk = hello["port"], hello["sdk"]
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def lines(self):
        with open(self.out) as f:
            return [json.loads(x) for x in f if x.strip()]

    def stop(self):
        """Stops the node process this test started (by its own handle) and checks its exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            err = self.proc.stderr.read()
            self.proc.stdout.close()
            self.proc.stderr.close()
            rc, self.proc = self.proc.returncode, None
            return rc, err
        return 0, ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class TestJsSdkSink(HeraldTestCase):
    def setUp(self):
        super().setUp()
        # stop gracefully at the end (after the sinks), requiring exit code 0 (ASan/LSan)
        self.addCleanup(self.h.stop)
        self.sink = JsSink().start()
        self.addCleanup(self.sink.cleanup)
        self.assertEqual(self.sink.sdk, pinned_version())

    def put_trigger(self, name, fmt, path, pipeline=1):
        self.h.json("PUT", f"/v1/triggers/{name}", {
            "sink": self.sink.url + path, "format": fmt,
            "delivery": {"retry": 2, "backoff_delay": "PT0.05S", "pipeline": pipeline}},
            expect=201)

    def test_sdk_decodes_binary_and_structured_deliveries(self):
        self.put_trigger("js-binary", "binary", "/binary")
        self.put_trigger("js-structured", "structured", "/structured")
        st, _, body = self.h.http("POST", "/v1/buses/default/events", json.dumps(EVENTS),
                                  {"Content-Type": "application/cloudevents-batch+json"})
        self.assertEqual(st, 202, body)
        self.assertEqual(json.loads(body)["seqs"], list(range(1, len(EVENTS) + 1)))
        want = 2 * len(EVENTS)
        wait_for(lambda: len(self.sink.lines()) >= want, timeout=30,
                 what=f"{want} requests at the SDK sink")

        def settled():
            for t in ("js-binary", "js-structured"):
                _, doc = self.h.json("GET", f"/v1/triggers/{t}", expect=200)
                if doc["status"]["cursor"] != len(EVENTS):
                    return False
            return True
        wait_for(settled, timeout=30, what="both triggers' cursors at the last seq")
        lines = self.sink.lines()
        bad = [x for x in lines if not x["valid"]]
        self.assertEqual(bad, [], "the SDK rejected requests herald sent")
        self.assertEqual(len(lines), want, "an event was delivered more than once")
        for fmt in ("binary", "structured"):
            got = {x["attrs"]["id"]: x for x in lines if x["path"] == "/" + fmt}
            self.assertEqual(sorted(got), sorted(e["id"] for e in EVENTS), fmt)
            for ev in EVENTS:
                with self.subTest(format=fmt, id=ev["id"]):
                    x = got[ev["id"]]
                    self.assertEqual(x["mode"], fmt, f"Content-Type {x['content_type']!r}")
                    want_attrs = expected_attrs(ev, fmt)
                    attrs = dict(x["attrs"])
                    if fmt == "binary" and "subject" in attrs:
                        # the SDK does not percent-decode; decode exactly once here
                        attrs["subject"] = urllib.parse.unquote(attrs["subject"], errors="strict")
                    for k in sorted(set(want_attrs) | set(attrs)):
                        self.assertEqual(attrs.get(k), want_attrs.get(k),
                                         f"{ev['id']} ({fmt}): attribute {k!r}")
                    kind, data = expected_data(ev)
                    self.assertEqual(x["data_kind"], kind, f"{ev['id']} ({fmt}): data kind")
                    if kind == "bytes":
                        self.assertEqual(base64.b64decode(x["data"]), base64.b64decode(data))
                    else:
                        self.assertEqual(x["data"], data, f"{ev['id']} ({fmt}): data")
        for t in ("js-binary", "js-structured"):
            _, doc = self.h.json("GET", f"/v1/triggers/{t}", expect=200)
            self.assertEqual((doc["status"]["delivered"], doc["status"]["failed"]),
                             (len(EVENTS), 0), t)
        rc, err = self.sink.stop()
        self.assertEqual(rc, 0, f"sink.mjs exited with {rc}: {err}")

    def test_pipelined_deliveries_to_node_http(self):
        """With delivery.pipeline 8, node:http (a real server that answers a connection's
        requests in order) gets every event intact in both formats, and each answer is
        matched to its own request: nothing is rejected, lost or counted as failed."""
        self.put_trigger("js-binary", "binary", "/binary", pipeline=8)
        self.put_trigger("js-structured", "structured", "/structured", pipeline=8)
        copies = 20
        sent = {}
        for k in range(copies):
            batch = [dict(ev, id=f"{ev['id']}-{k}") for ev in EVENTS]
            sent.update({e["id"]: e for e in batch})
            st, _, body = self.h.http("POST", "/v1/buses/default/events", json.dumps(batch),
                                      {"Content-Type": "application/cloudevents-batch+json"})
            self.assertEqual(st, 202, body)
        n = len(sent)

        def settled():
            for t in ("js-binary", "js-structured"):
                _, doc = self.h.json("GET", f"/v1/triggers/{t}", expect=200)
                if doc["status"]["cursor"] != n or doc["status"]["in_flight"]:
                    return False
            return True
        wait_for(settled, timeout=60, what="both triggers' cursors at the last seq")
        lines = self.sink.lines()
        self.assertEqual([x for x in lines if not x["valid"]], [], "the SDK rejected requests")
        for fmt in ("binary", "structured"):
            got = {x["attrs"]["id"]: x for x in lines if x["path"] == "/" + fmt}
            self.assertEqual(sorted(got), sorted(sent), fmt)
            for id_, ev in sent.items():
                kind, data = expected_data(ev)
                self.assertEqual(got[id_]["data_kind"], kind, f"{id_} ({fmt})")
                if kind != "bytes":
                    self.assertEqual(got[id_]["data"], data, f"{id_} ({fmt})")
            _, doc = self.h.json("GET", f"/v1/triggers/js-{fmt}", expect=200)
            self.assertEqual((doc["status"]["delivered"], doc["status"]["failed"]), (n, 0))
        rc, err = self.sink.stop()
        self.assertEqual(rc, 0, f"sink.mjs exited with {rc}: {err}")

    def test_sdk_sees_the_traceparent_extension(self):
        """A W3C traceparent extension reaches the SDK as the event's traceparent attribute (herald
        also sends it as the traceparent header), and the SDK's 202 counts as a delivery."""
        self.put_trigger("js-binary", "binary", "/binary")
        ev = dict(EVENTS[0], id="sink-traced",
                  traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        st, _, body = self.h.http("POST", "/v1/buses/default/events", json.dumps(ev),
                                  {"Content-Type": "application/cloudevents+json"})
        self.assertEqual(st, 202, body)
        wait_for(lambda: self.sink.lines(), timeout=30, what="the delivery at the SDK sink")
        (x,) = self.sink.lines()
        self.assertTrue(x["valid"], x.get("error"))
        self.assertEqual(x["attrs"]["traceparent"], ev["traceparent"])
        self.assertEqual(x["data"], ev["data"])
        wait_for(lambda: self.h.json("GET", "/v1/triggers/js-binary")[1]["status"]["delivered"]
                 == 1, timeout=30, what="the trigger counting the delivery")


if __name__ == "__main__":
    unittest.main()
