# SPDX-License-Identifier: MIT
"""CloudEvents conformance events (shared/conformance/ce-events) published to a real herald and read
back intact.

The vendored data comes from the CloudEvents conformance tool (see its README):
- yaml/v1.yaml and yaml/v1.0/v1_minimum.yaml: spec 1.0 events. Each is published in binary mode and
  in structured mode, whatever its `Mode` says, and read back with GET /v1/buses/default/events: the
  stored event must carry exactly the attributes sent (no more, no fewer; the `user-agent` transport
  header must not become an attribute) and exactly the data sent.
- yaml/v03.yaml and yaml/v0.3/*.yaml: spec 0.3 events. Herald implements CloudEvents 1.0 only
  (DESIGN.md §1: specversion "1.0"); the 1.0 spec defines `specversion` as the version of the spec the
  event uses, and the 0.3 attribute set differs (schemaurl, datacontentencoding), so storing a 0.3
  event as if it were 1.0 would be wrong. They must be rejected with 400 naming `specversion`, and
  nothing may be stored.
- features/http-protocol-binding.feature: the raw HTTP requests of its scenario outlines are sent
  over a socket as written (only the request target and Host changed) and the stored attributes and
  data compared with the scenario's tables.

How the conformance tool sends (pkg/http/http.go): binary mode, each header value TrimSpace'd, no
percent-encoding. This test percent-encodes ce- header values as HTTP binding 1.0 §3.1.3.2 requires of
a sender, so that every value round-trips exactly; one extra case sends a value with double quotes
raw, as the tool does, and checks the decoding that §3.1.3.2 prescribes (quoted-string unescaping).
Structured mode follows the JSON format §3.1: JSON data as a JSON value, text data as a string.
"""
import base64
import glob
import json
import os
import re
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import CONFORMANCE, HeraldTestCase  # noqa: E402

CE_DIR = os.path.join(CONFORMANCE, "ce-events")

# ---------------------------------------------------------------------------------------------
# A tiny parser for the subset of YAML the vendored files use: `---` document separators, `#`
# comments, nested block mappings by indentation, `key: value` and `key : value`, double-quoted
# scalars, and `|` literal block scalars (clip: one trailing newline). Every scalar is kept as a raw
# string (so `specversion: 1.0` is "1.0" and `time:` is the text as written), which is how the
# conformance tool reads them.


def _scalar(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return json.loads(v)
    if len(v) >= 2 and v[0] == "'" and v[-1] == "'":
        return v[1:-1].replace("''", "'")
    return v


def parse_yaml_docs(text):
    docs = []
    for chunk in re.split(r"(?m)^---[ \t]*$", text):
        lines = chunk.split("\n")
        root = {}
        stack = [(-1, root)]
        i = 0
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                i += 1
                continue
            indent = len(line) - len(line.lstrip(" "))
            m = re.match(r"^([^:]+?)\s*:(?:\s+(.*))?$", stripped)
            if not m:
                raise ValueError(f"unsupported YAML line: {line!r}")
            key, val = m.group(1).strip(), (m.group(2) or "").strip()
            while stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1]
            i += 1
            if val == "|":
                block, bindent = [], None
                while i < len(lines):
                    ln = lines[i]
                    if ln.strip() == "":
                        block.append("")
                        i += 1
                        continue
                    ind = len(ln) - len(ln.lstrip(" "))
                    if ind <= indent:
                        break
                    if bindent is None:
                        bindent = ind
                    block.append(ln[bindent:])
                    i += 1
                while block and block[-1] == "":
                    block.pop()
                parent[key] = "\n".join(block) + "\n" if block else ""
            elif val == "":
                child = {}
                parent[key] = child
                stack.append((indent, child))
            else:
                parent[key] = _scalar(val)
        if root:
            docs.append(root)
    return docs


def load_events(pattern):
    """[(name, doc)] for the yaml files under ce-events/yaml matching pattern."""
    out = []
    for path in sorted(glob.glob(os.path.join(CE_DIR, "yaml", pattern), recursive=True)):
        with open(path, encoding="utf-8") as f:
            for n, doc in enumerate(parse_yaml_docs(f.read())):
                out.append((f"{os.path.relpath(path, CE_DIR)}#{n}", doc))
    return out


# ---------------------------------------------------------------------------------------------
# Encoding per the HTTP binding and the JSON format.

ATTRS = ("specversion", "type", "time", "id", "source", "subject", "dataschema", "datacontenttype")


def pct_encode(s):
    """HTTP binding §3.1.3.2: percent-encode space, '"', '%' and every byte outside 0x21-0x7E."""
    out = []
    for b in s.encode("utf-8"):
        if b == 0x20 or b == 0x22 or b == 0x25 or b < 0x21 or b > 0x7E:
            out.append("%%%02X" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def expected_attrs(doc):
    """The event's context attributes and extensions, each value TrimSpace'd as the tool does."""
    ca = doc.get("ContextAttributes", {})
    attrs = {}
    for k in ATTRS:
        v = ca.get(k)
        if v is not None and v.strip() != "":
            attrs[k] = v.strip()
    for k, v in (ca.get("Extensions") or {}).items():
        attrs[k] = v.strip()
    return attrs


def is_json_type(ct):
    if ct is None:
        return False
    mt = ct.split(";")[0].strip().lower()
    return mt == "application/json" or mt.endswith("+json")


def is_text_type(ct):
    return ct is not None and ct.split(";")[0].strip().lower().startswith("text/")


def binary_request(doc, raw_values=False):
    """(headers, body) of the binary-mode request for a conformance event."""
    attrs = expected_attrs(doc)
    headers = {}
    for k, v in attrs.items():
        if k == "datacontenttype":
            headers["Content-Type"] = v
        else:
            headers["ce-" + k] = v if raw_values else pct_encode(v)
    for k, v in (doc.get("TransportExtensions") or {}).items():
        headers[k] = v.strip()
    return headers, doc.get("Data", "").encode("utf-8")


def structured_body(doc):
    """The JSON-format (structured mode) body for a conformance event."""
    attrs = expected_attrs(doc)
    ev = dict(attrs)
    data = doc.get("Data")
    if data is not None and data != "":
        ct = attrs.get("datacontenttype")
        if ct is None or is_json_type(ct):
            # JSON format §3.1: JSON data goes in `data` as a JSON value (absent datacontenttype
            # means application/json).
            ev["data"] = json.loads(data)
        else:
            ev["data"] = data
    return json.dumps(ev, ensure_ascii=False).encode("utf-8")


class ConformanceCase(HeraldTestCase):
    nbus = 0

    def new_bus(self):
        """A fresh bus, so that events sharing source + id (v1.yaml sends one event twice, the
        feature file reuses one id) are not deduplicated against each other."""
        ConformanceCase.nbus += 1
        name = f"conf-{ConformanceCase.nbus}"
        self.h.json("PUT", f"/v1/buses/{name}", {}, expect=201)
        return name

    def publish(self, headers, body, bus):
        status, _, resp = self.h.http("POST", f"/v1/buses/{bus}/events", body=body,
                                      headers=headers)
        self.assertEqual(status, 202, f"publish: expected 202, got {status}: {resp[:500]!r}")
        doc = json.loads(resp)
        self.assertIsInstance(doc.get("seq"), int, resp)
        self.assertNotIn("duplicate", doc, resp)
        return doc["seq"]

    def read(self, seq, bus):
        """(record, raw response body) of the event stored at seq."""
        status, _, raw = self.h.http("GET", f"/v1/buses/{bus}/events?from={seq}&limit=1")
        self.assertEqual(status, 200, raw[:500])
        doc = json.loads(raw)
        self.assertEqual(len(doc["events"]), 1, raw[:500])
        rec = doc["events"][0]
        self.assertEqual(rec["seq"], seq)
        self.assertIsInstance(rec.get("ingested"), str)
        return rec, raw

    def assert_event(self, rec, raw, attrs, data, what):
        """The stored event has exactly `attrs` plus data equal to the bytes `data` (str)."""
        ev = rec["event"]
        got = {k: v for k, v in ev.items() if k not in ("data", "data_base64")}
        self.assertEqual(got, attrs, f"{what}: attributes")
        ct = attrs.get("datacontenttype")
        if data is None or data == "":
            if "data" in ev:
                self.assertIn(ev["data"], ("", None), what)
            if "data_base64" in ev:
                self.assertEqual(base64.b64decode(ev["data_base64"]), b"", what)
            return
        self.assertFalse("data" in ev and "data_base64" in ev, f"{what}: both data and data_base64")
        if is_json_type(ct):
            self.assertIn("data", ev, f"{what}: JSON data must come back as `data`")
            self.assertEqual(ev["data"], json.loads(data), f"{what}: data")
            # docs/api.md: JSON data is returned as its exact text (whitespace around it aside).
            self.assertIn(b'"data":' + data.strip().encode("utf-8"), raw,
                          f"{what}: JSON data not kept as its exact text")
        elif is_text_type(ct):
            self.assertIn("data", ev, f"{what}: text data must come back as a `data` string")
            self.assertEqual(ev["data"], data, f"{what}: data")
        elif "data_base64" in ev:
            self.assertEqual(base64.b64decode(ev["data_base64"], validate=True),
                             data.encode("utf-8"), f"{what}: data_base64")
        elif ct is None:
            # A binary-mode body without Content-Type. JSON format §3.1.2: a `data` member of an
            # event without datacontenttype SHOULD be read as application/json, i.e. as the JSON
            # value itself. So the stored event must hold either data_base64 with the exact bytes
            # (§3.1.1: no assumption about the format) or the body's JSON value; the body as a
            # JSON *string* would turn {"world":"hello"} into a string for every consumer.
            self.assertIn("data", ev, f"{what}: data missing")
            self.assertEqual(ev["data"], json.loads(data),
                             f"{what}: data of an event without datacontenttype must be its JSON "
                             f"value or data_base64 (JSON format §3.1.2), got {ev['data']!r}")
        else:
            self.assertIn("data", ev, f"{what}: data missing")
            self.assertEqual(ev["data"], data, f"{what}: data")


class TestConformanceV1(ConformanceCase):
    def events(self):
        evs = load_events("v1.yaml") + load_events("v1.0/*.yaml")
        self.assertGreaterEqual(len(evs), 8, "conformance events not found under " + CE_DIR)
        for name, doc in evs:
            self.assertEqual(doc["ContextAttributes"]["specversion"], "1.0", name)
        return evs

    def test_binary_mode(self):
        for name, doc in self.events():
            with self.subTest(event=name):
                headers, body = binary_request(doc)
                bus = self.new_bus()
                rec, raw = self.read(self.publish(headers, body, bus), bus)
                self.assert_event(rec, raw, expected_attrs(doc), doc.get("Data"), name)

    def test_structured_mode(self):
        for name, doc in self.events():
            with self.subTest(event=name):
                body = structured_body(doc)
                bus = self.new_bus()
                seq = self.publish({"Content-Type": "application/cloudevents+json"}, body, bus)
                rec, raw = self.read(seq, bus)
                data = doc.get("Data")
                ct = expected_attrs(doc).get("datacontenttype")
                if data and (ct is None or is_json_type(ct)):
                    # sent as a JSON value: compare values (the body was re-serialized)
                    ev = rec["event"]
                    got = {k: v for k, v in ev.items() if k != "data"}
                    self.assertEqual(got, expected_attrs(doc), f"{name}: attributes")
                    self.assertEqual(ev.get("data"), json.loads(data), f"{name}: data")
                else:
                    self.assert_event(rec, raw, expected_attrs(doc), data, name)

    def test_both_modes_store_the_same_event(self):
        """The same event in binary and in structured mode reads back identically (new ids so that
        dedup does not merge them)."""
        for name, doc in self.events():
            with self.subTest(event=name):
                ca = dict(doc["ContextAttributes"])
                bus = self.new_bus()
                got = []
                for mode in ("binary", "structured"):
                    d = dict(doc, ContextAttributes=dict(ca, id=f"{ca['id']}-{mode}"))
                    if mode == "binary":
                        headers, body = binary_request(d)
                    else:
                        headers = {"Content-Type": "application/cloudevents+json"}
                        body = structured_body(d)
                    ev = dict(self.read(self.publish(headers, body, bus), bus)[0]["event"])
                    ev.pop("id")
                    if "data_base64" in ev:  # a binary body of an xml event, say
                        raw = base64.b64decode(ev.pop("data_base64"))
                        ev["data"] = json.loads(raw) if "datacontenttype" not in ev \
                            else raw.decode("utf-8")
                    got.append(ev)
                self.assertEqual(got[0], got[1], name)

    def test_raw_quoted_header_value_is_unescaped(self):
        """The tool sends `comexampleextension2: {"othervalue": 5}` as a raw header. HTTP binding
        §3.1.3.2: a receiver MUST first unescape double-quoted strings (RFC 7230 §3.2.6), then
        percent-decode once, so the stored value is `{othervalue: 5}`."""
        name, doc = load_events("v1.yaml")[0]
        headers, body = binary_request(doc, raw_values=True)
        self.assertEqual(headers["ce-comexampleextension2"], '{"othervalue": 5}')
        bus = self.new_bus()
        ev = self.read(self.publish(headers, body, bus), bus)[0]["event"]
        self.assertEqual(ev["comexampleextension2"], "{othervalue: 5}")
        self.assertEqual(ev["comexampleextension1"], "value")
        self.assertNotIn("user-agent", ev)


class TestConformanceV03(ConformanceCase):
    def test_v03_events_are_rejected(self):
        evs = load_events("v03.yaml") + load_events("v0.3/*.yaml")
        self.assertGreaterEqual(len(evs), 7)
        for name, doc in evs:
            self.assertEqual(doc["ContextAttributes"]["specversion"], "0.3", name)
            for mode in ("binary", "structured"):
                with self.subTest(event=name, mode=mode):
                    if mode == "binary":
                        headers, body = binary_request(doc)
                    else:
                        headers = {"Content-Type": "application/cloudevents+json"}
                        body = structured_body(doc)
                    status, _, resp = self.h.http("POST", "/v1/buses/default/events", body=body,
                                                  headers=headers)
                    self.assertEqual(status, 400, resp[:500])
                    err = json.loads(resp)
                    self.assertEqual(err.get("field"), "specversion", err)
                    self.assertIsInstance(err.get("error"), str)
        self.assertEqual(self.h.read_all(), [], "a rejected event was stored")


# ---------------------------------------------------------------------------------------------
# features/http-protocol-binding.feature: its raw HTTP requests, sent as written.

def parse_feature(text):
    """[(scenario title, request template, {attr: value template}, data JSON, [example dicts])]."""
    out = []
    for block in re.split(r"(?m)^\s*Scenario Outline:", text)[1:]:
        title = block.split("\n", 1)[0].strip()
        docs = re.findall(r'(?ms)^([ \t]*)"""\n(.*?)\n[ \t]*"""', block)
        reqs = []
        for indent, body in docs:
            lines = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip()
                     for ln in body.split("\n")]
            reqs.append("\n".join(lines))
        request, data = reqs[0], json.loads(reqs[1])
        attrs = {}
        table = block.split("the attributes are:")[1].split("And the data")[0]
        for row in re.findall(r"(?m)^\s*\|(.*)\|\s*$", table):
            k, v = [c.strip() for c in row.split("|")]
            if k != "key":
                attrs[k] = v
        ex_rows = re.findall(r"(?m)^\s*\|(.*)\|\s*$", block.split("Examples:")[1])
        head = [c.strip() for c in ex_rows[0].split("|")]
        examples = [dict(zip(head, [c.strip() for c in r.split("|")])) for r in ex_rows[1:]]
        out.append((title, request, attrs, data, examples))
    return out


def subst(s, ex):
    return re.sub(r"<(\w+)>", lambda m: ex[m.group(1)], s)


class TestHttpBindingFeature(ConformanceCase):
    def send_raw(self, request, bus):
        """Sends a raw HTTP/1.1 request (LF lines in, CRLF on the wire); returns (status, body)."""
        head, _, body = request.partition("\n\n")
        lines = head.split("\n")
        method, _, version = lines[0].split(" ")
        out = [f"{method} /v1/buses/{bus}/events {version}", f"Host: 127.0.0.1:{self.h.port}"]
        body_b = body.encode("utf-8")
        for ln in lines[1:]:
            name = ln.split(":", 1)[0].strip().lower()
            if name == "host":
                continue
            if name == "content-length":
                # the file's count matches its own indentation; recompute for the dedented body
                ln = f"Content-Length: {len(body_b)}"
            out.append(ln)
        out.append("Connection: close")
        wire = ("\r\n".join(out) + "\r\n\r\n").encode("utf-8") + body_b
        with socket.create_connection(("127.0.0.1", self.h.port), timeout=30) as s:
            s.sendall(wire)
            resp = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                resp += chunk
        status = int(resp.split(b" ", 2)[1])
        return status, resp.split(b"\r\n\r\n", 1)[1]

    def test_feature_scenarios(self):
        with open(os.path.join(CE_DIR, "features", "http-protocol-binding.feature"),
                  encoding="utf-8") as f:
            scenarios = parse_feature(f.read())
        self.assertEqual(len(scenarios), 2)
        n = 0
        for title, request, attrs, data, examples in scenarios:
            for ex in examples:
                with self.subTest(scenario=title, example=ex):
                    bus = self.new_bus()
                    status, body = self.send_raw(subst(request, ex), bus)
                    self.assertEqual(status, 202, body[:500])
                    seq = json.loads(body)["seq"]
                    ev = self.read(seq, bus)[0]["event"]
                    want = {k: subst(v, ex) for k, v in attrs.items()}
                    got = {k: v for k, v in ev.items() if k != "data"}
                    self.assertEqual(got, want)
                    self.assertEqual(ev.get("data"), data)
                    n += 1
        self.assertEqual(n, 4)


if __name__ == "__main__":
    unittest.main()
