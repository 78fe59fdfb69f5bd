# SPDX-License-Identifier: MIT
"""Helpers shared by the trigger tests (filters, fan-out, retries, replay): publishing events,
creating triggers, waiting for a trigger to settle, and reading what a sink received.

A trigger's status `cursor` is the highest seq at or below which every event is settled
(delivered, dead-lettered or not matching). A sink records a request when it arrives, before it
answers, so once the cursor reaches a bus's last seq every delivery of those events has been
recorded by the sink: tests wait for that instead of sleeping.
"""
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HeraldTestCase, wait_for  # noqa: E402
from sinks import Sink  # noqa: E402

CE_JSON = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"

# Characters a binary-mode header value may carry unencoded (CloudEvents HTTP binding 3.1.3.2:
# printable ASCII except space, '"' and '%').
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7f) if chr(c) not in '"%')


def ev(id_, type_="t.e2e", source="/e2e", **extra):
    """A structured CloudEvent (dict)."""
    e = {"specversion": "1.0", "id": id_, "source": source, "type": type_}
    e.update(extra)
    return e


def publish(h, event, bus="default"):
    """Publishes one structured event; returns its seq."""
    status, _, data = h.http("POST", f"/v1/buses/{bus}/events", body=json.dumps(event),
                             headers={"Content-Type": CE_JSON})
    assert status == 202, (status, data)
    return json.loads(data)["seq"]


def publish_batch(h, events, bus="default"):
    """Publishes a batch; returns the seqs."""
    status, _, data = h.http("POST", f"/v1/buses/{bus}/events", body=json.dumps(events),
                             headers={"Content-Type": CE_BATCH})
    assert status == 202, (status, data)
    return json.loads(data)["seqs"]


def pct(value):
    """Percent-encodes a header value as the CloudEvents HTTP binding asks (UTF-8 first)."""
    return urllib.parse.quote(str(value), safe=_HEADER_SAFE, encoding="utf-8")


def publish_binary(h, attrs, body=b"", content_type=None, bus="default"):
    """Publishes in binary mode: attrs (without the ce- prefix) become percent-encoded ce-
    headers. Returns the seq."""
    headers = {"ce-" + k: pct(v) for k, v in attrs.items()}
    if content_type is not None:
        headers["Content-Type"] = content_type
    status, _, data = h.http("POST", f"/v1/buses/{bus}/events", body=body, headers=headers)
    assert status == 202, (status, data)
    return json.loads(data)["seq"]


def put_trigger(h, name, doc, expect=(200, 201)):
    """PUT /v1/triggers/{name}; asserts the status is in `expect`; returns the document."""
    status, _, data = h.http("PUT", f"/v1/triggers/{name}", body=doc)
    expect = (expect,) if isinstance(expect, int) else expect
    assert status in expect, f"PUT trigger {name}: expected {expect}, got {status}: {data[:500]!r}"
    return json.loads(data) if data else None


def get_trigger(h, name):
    _, doc = h.json("GET", f"/v1/triggers/{name}", expect=200)
    return doc


def status_of(h, name):
    return get_trigger(h, name)["status"]


def last_seq(h, bus="default"):
    _, doc = h.json("GET", f"/v1/buses/{bus}", expect=200)
    return doc["stats"]["last_seq"]


def wait_settled(h, name, seq=None, bus="default", timeout=30.0):
    """Waits until the trigger's cursor reaches `seq` (default: the bus's last seq now) and
    nothing is in flight; returns the status."""
    if seq is None:
        seq = last_seq(h, bus)

    def settled():
        st = status_of(h, name)
        return st if st["cursor"] >= seq and st["in_flight"] == 0 else None
    return wait_for(settled, timeout, what=f"trigger {name} to settle up to seq {seq}")


def wait_replays_done(h, name, timeout=30.0):
    """Waits until the trigger has no running replay or redrive; returns the status."""
    def done():
        st = status_of(h, name)
        return st if not st["replays"] else None
    return wait_for(done, timeout, what=f"the replays of trigger {name} to finish")


def decode_header(value):
    """Percent-decodes one ce- header value (as received by http.server, latin-1) to text."""
    raw = value.encode("latin-1")
    return urllib.parse.unquote_to_bytes(raw).decode("utf-8")


def ce_attrs(req):
    """The ce- headers of a sink request, percent-decoded, without the prefix."""
    return {k: decode_header(v) for k, v in req.ce().items()}


def ids(reqs):
    """The event ids of sink requests, in arrival order (binary or structured mode)."""
    out = []
    for r in reqs:
        if r.headers.get("content-type", "").startswith(CE_JSON):
            out.append(json.loads(r.body)["id"])
        else:
            out.append(ce_attrs(r)["id"])
    return out


def deadletters(h, bus="default", trigger=None, limit=None):
    """Every dead letter of a bus (optionally of one trigger), following `next`."""
    out, after = [], 0
    while True:
        q = f"after={after}"
        if trigger:
            q += f"&trigger={trigger}"
        if limit:
            q += f"&limit={limit}"
        _, doc = h.json("GET", f"/v1/buses/{bus}/deadletters?{q}", expect=200)
        out += doc["deadletters"]
        if not doc["deadletters"]:
            return out
        after = doc["next"]


def trace(h, seq, bus="default"):
    _, doc = h.json("GET", f"/v1/buses/{bus}/events/{seq}/trace", expect=200)
    return doc


class TriggerTestCase(HeraldTestCase):
    """A fresh herald and one started sink (self.sink) per test; the server must stop cleanly."""

    def setUp(self):
        super().setUp()
        self.sink = self.new_sink()

    def new_sink(self):
        s = Sink().start()
        self.addCleanup(s.stop)
        return s

    def tearDown(self):
        # a graceful stop must exit 0: under the sanitizers a leak or error fails the test
        self.h.stop()
