# SPDX-License-Identifier: MIT
"""Replies (docs/api.md, Triggers: Replies; DESIGN.md §6): a sink's 2xx answer that carries a
CloudEvent is published, with the integer extension `heraldhops` = the delivered event's hops + 1,
to the trigger's bus or to its `reply_bus`; past `--max-hops` the event is dead-lettered with
`heralderrorcode: hop_limit`; a non-empty 2xx answer that is not a valid event is noted in the
trace and not published; a reply that cannot be published (no such reply bus) is a dead letter
`reply_failed`. Real herald, real sinks (sinks.Sink), read back over the public API.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HeraldTestCase, wait_for  # noqa: E402
from sinks import Answer, Sink  # noqa: E402

REQUEST_TYPE = "com.example.request"
FAST = {"retry": 3, "backoff_delay": "PT0.05S", "max_backoff": "PT0.2S"}

# The exact JSON text the sink answers with: odd spacing and a 2.50 that a re-encoder would
# turn into 2.5, so the read-back can show the reply's data is kept byte for byte.
REPLY_JSON = b'{"answer":  42, "nested": {"a": [1, 2.50, true, null]}, "s": "x y"}'


def binary_reply(rid, rtype="com.example.reply", body=REPLY_JSON, ctype="application/json",
                 extra=None):
    h = {"ce-specversion": "1.0", "ce-id": rid, "ce-source": "/sink/replier", "ce-type": rtype,
         "Content-Type": ctype}
    h.update(extra or {})
    return Answer(200, headers=h, body=body)


class ReplyCase(HeraldTestCase):
    def setUp(self):
        super().setUp()
        # stop gracefully at the end (after the sinks), requiring exit code 0 (ASan/LSan)
        self.addCleanup(self.h.stop)
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)

    def publish(self, ev, bus="default"):
        st, _, body = self.h.http("POST", f"/v1/buses/{bus}/events", json.dumps(ev),
                                  {"Content-Type": "application/cloudevents+json"})
        self.assertEqual(st, 202, body)
        return json.loads(body)["seq"]

    def request_event(self, i=1, **extra):
        ev = {"specversion": "1.0", "id": f"req-{i}", "source": "/e2e/replies",
              "type": REQUEST_TYPE, "datacontenttype": "application/json", "data": {"i": i}}
        ev.update(extra)
        return ev

    def put_trigger(self, name, path, **members):
        doc = {"sink": self.sink.url + path, "delivery": FAST}
        doc.update(members)
        _, t = self.h.json("PUT", f"/v1/triggers/{name}", doc, expect=201)
        return t

    def status(self, name):
        return self.h.json("GET", f"/v1/triggers/{name}", expect=200)[1]["status"]

    def last_seq(self, bus="default"):
        return self.h.json("GET", f"/v1/buses/{bus}", expect=200)[1]["stats"]["last_seq"]

    def wait_settled(self, name, seq, timeout=30):
        def cond():
            s = self.status(name)
            return s if s["cursor"] >= seq else None
        return wait_for(cond, timeout, what=f"trigger {name} cursor at {seq}")

    def trace_of(self, seq, trigger, bus="default"):
        _, doc = self.h.json("GET", f"/v1/buses/{bus}/events/{seq}/trace", expect=200)
        entries = [t for t in doc["triggers"] if t["trigger"] == trigger]
        self.assertEqual(len(entries), 1, doc)
        return entries[0]

    def deadletters(self, bus="default", trigger=None):
        q = f"?trigger={trigger}" if trigger else ""
        return self.h.json("GET", f"/v1/buses/{bus}/deadletters{q}", expect=200)[1]["deadletters"]

    def raw_events(self, bus="default", start=1):
        st, _, body = self.h.http("GET", f"/v1/buses/{bus}/events?from={start}&limit=1000")
        self.assertEqual(st, 200)
        return body


class TestReplies(ReplyCase):
    def test_binary_reply_is_published_to_the_triggers_bus(self):
        self.sink.script("/reply", [binary_reply("reply-1", extra={
            "ce-subject": "answers/1", "ce-replyext": "yes", "ce-time": "2026-05-06T07:08:09Z",
            # binary mode header values are percent-decoded exactly once
            "ce-note": "caf%C3%A9%20100%25%2541"})])
        self.put_trigger("replier", "/reply", filters=[{"exact": {"type": REQUEST_TYPE}}])
        seq = self.publish(self.request_event())
        self.assertEqual(seq, 1)
        wait_for(lambda: self.last_seq() >= 2, 30, what="the reply on the bus")
        st = self.wait_settled("replier", 2)
        recs = self.h.read_all()
        self.assertEqual(len(recs), 2, "exactly one reply is published")
        reply = recs[1]["event"]
        self.assertEqual(reply, {
            "specversion": "1.0", "id": "reply-1", "source": "/sink/replier",
            "type": "com.example.reply", "subject": "answers/1", "replyext": "yes",
            "time": "2026-05-06T07:08:09Z", "note": "café 100%%41",
            "datacontenttype": "application/json",
            "heraldhops": 1, "data": json.loads(REPLY_JSON)})
        self.assertIs(type(reply["heraldhops"]), int, "heraldhops is an integer extension")
        self.assertIn(REPLY_JSON, self.raw_events(), "the reply's JSON data is not kept exactly")
        self.assertEqual((st["delivered"], st["replies"], st["failed"]), (1, 1, 0))
        self.assertEqual(self.trace_of(1, "replier")["outcome"], "delivered")
        # the request was delivered once; the reply does not match the trigger's filter
        self.assertEqual(len(self.sink.requests("/reply")), 1)

    def test_reply_goes_to_reply_bus_when_set(self):
        self.h.json("PUT", "/v1/buses/replies", {}, expect=201)
        self.sink.script("/reply", [binary_reply("reply-rb", body=b"plain text reply",
                                                 ctype="text/plain")])
        self.put_trigger("replier", "/reply", reply_bus="replies")
        self.publish(self.request_event())
        wait_for(lambda: self.last_seq("replies") >= 1, 30, what="the reply on bus replies")
        st = self.wait_settled("replier", 1)
        self.assertEqual(st["replies"], 1)
        (rec,) = self.h.read_all("replies")
        self.assertEqual(rec["event"], {
            "specversion": "1.0", "id": "reply-rb", "source": "/sink/replier",
            "type": "com.example.reply", "datacontenttype": "text/plain", "heraldhops": 1,
            "data": "plain text reply"})
        self.assertEqual(self.last_seq(), 1, "the reply must not also go to the trigger's bus")

    def test_structured_reply(self):
        reply = {"specversion": "1.0", "id": "reply-st", "source": "/sink/structured",
                 "type": "com.example.reply.structured", "subject": "s/1", "tenant": "acme",
                 "priority": 7, "datacontenttype": "application/octet-stream",
                 "data_base64": "AAEC/f7/"}
        self.sink.script("/st", [Answer(200, headers={
            "Content-Type": "application/cloudevents+json; charset=utf-8"},
            body=json.dumps(reply).encode())])
        self.put_trigger("replier", "/st", filters=[{"exact": {"type": REQUEST_TYPE}}])
        self.publish(self.request_event())
        wait_for(lambda: self.last_seq() >= 2, 30, what="the structured reply on the bus")
        self.wait_settled("replier", 2)
        recs = self.h.read_all()
        self.assertEqual(len(recs), 2)
        self.assertEqual(recs[1]["event"], dict(reply, heraldhops=1))

    def test_reply_of_a_reply_counts_hops(self):
        """A reply to an event that already has heraldhops=2 gets heraldhops=3."""
        self.sink.script("/reply", [binary_reply("reply-h")])
        self.put_trigger("replier", "/reply", filters=[{"exact": {"type": REQUEST_TYPE}}])
        self.publish(self.request_event(heraldhops=2))
        wait_for(lambda: self.last_seq() >= 2, 30, what="the reply on the bus")
        self.assertEqual(self.h.read_all()[1]["event"]["heraldhops"], 3)
        (req,) = self.sink.requests("/reply")
        self.assertEqual(req.ce().get("heraldhops"), "2", "the delivered event carries its hops")

    def test_same_reply_twice_is_stored_once(self):
        """Replies go through the bus's dedup like any publish: a sink that answers two requests
        with the same reply (same source + id) gets it stored once."""
        self.sink.script("/reply", [binary_reply("reply-same")])
        self.put_trigger("replier", "/reply", filters=[{"exact": {"type": REQUEST_TYPE}}])
        self.publish(self.request_event(1))
        self.publish(self.request_event(2))
        st = wait_for(lambda: self.status("replier")["delivered"] == 2 and self.status("replier"),
                      30, what="both requests delivered")
        self.assertEqual(st["failed"], 0)
        evs = {r["event"]["id"]: r["event"] for r in self.h.read_all()}
        self.assertEqual(len(self.h.read_all()), 3)
        self.assertEqual(sorted(evs), sorted(["req-1", "req-2", "reply-same"]))
        self.assertEqual(evs["reply-same"]["heraldhops"], 1)

    def test_answers_that_are_not_events_are_not_published(self):
        """Non-empty 2xx answers that are not a valid CloudEvent: delivered, not published,
        noted in the trace. An empty 2xx answer is an ordinary delivery."""
        cases = {
            "plain": Answer(200, headers={"Content-Type": "application/json"},
                            body=b'{"ok": true}'),
            "noid": Answer(200, headers={"ce-specversion": "1.0", "ce-source": "/sink",
                                         "ce-type": "com.example.reply",
                                         "Content-Type": "text/plain"}, body=b"no id"),
            "badjson": Answer(200, headers={"Content-Type": "application/cloudevents+json"},
                              body=b'{"specversion": "1.0", "id": '),
            "nospec": Answer(200, headers={"Content-Type": "application/cloudevents+json"},
                             body=json.dumps({"id": "x", "source": "/s", "type": "t"}).encode()),
            "empty": Answer(200),
        }
        for name, ans in cases.items():
            self.sink.script("/" + name, [ans])
            self.put_trigger(name, "/" + name)
        self.publish(self.request_event())
        for name in cases:
            st = self.wait_settled(name, 1)
            self.assertEqual((st["delivered"], st["replies"], st["failed"]), (1, 0, 0), name)
        self.assertEqual(self.last_seq(), 1, "an answer that is not an event was published")
        for name in cases:
            with self.subTest(answer=name):
                tr = self.trace_of(1, name)
                self.assertEqual(tr["outcome"], "delivered")
                self.assertEqual(tr["attempts"][-1]["status"], 200)
                if name != "empty":
                    self.assertTrue(tr.get("note"), f"the trace does not note the ignored "
                                                    f"answer: {tr}")

    def test_reply_to_missing_reply_bus_is_a_dead_letter(self):
        self.sink.script("/reply", [binary_reply("reply-lost")])
        self.put_trigger("replier", "/reply", reply_bus="nosuchbus")
        self.publish(self.request_event())
        dls = wait_for(lambda: self.deadletters(trigger="replier"), 30,
                       what="the reply_failed dead letter")
        self.assertEqual(len(dls), 1, dls)
        dl = dls[0]
        self.assertEqual((dl["trigger"], dl["seq"]), ("replier", 1))
        self.assertEqual(dl["event"]["heralderrorcode"], "reply_failed")
        self.assertEqual(dl["event"]["id"], "req-1")
        self.assertTrue(dl["event"].get("heralderrordata"))
        st = self.wait_settled("replier", 1)
        self.assertEqual((st["failed"], st["replies"], st["dead_letters"]), (1, 0, 1))
        self.assertEqual(self.trace_of(1, "replier")["outcome"], "dead_lettered")
        self.assertEqual(self.last_seq(), 1)
        self.assertEqual(self.h.http("GET", "/v1/buses/nosuchbus")[0], 404,
                         "a reply must not create its bus")


class TestHopLimit(ReplyCase):
    server_args = ("--max-hops", "3")

    def test_self_replying_sink_is_stopped_by_the_hop_limit(self):
        """A sink that answers every ping with a new ping (new id each time), on a trigger that
        matches pings: the loop runs to heraldhops 3 (--max-hops 3), then the event whose reply
        would be hop 4 becomes a dead letter with heralderrorcode hop_limit."""
        self.sink.script("/loop", [binary_reply(f"pong-{i}", rtype="com.example.ping",
                                                body=json.dumps({"i": i}).encode())
                                   for i in range(1, 20)])
        self.put_trigger("loop", "/loop", filters=[{"exact": {"type": "com.example.ping"}}])
        self.publish({"specversion": "1.0", "id": "ping-0", "source": "/e2e/loop",
                      "type": "com.example.ping", "datacontenttype": "application/json",
                      "data": {"i": 0}})
        dls = wait_for(lambda: self.deadletters(trigger="loop"), 30,
                       what="the hop_limit dead letter")
        st = self.wait_settled("loop", 4)
        recs = self.h.read_all()
        self.assertEqual([r["event"]["id"] for r in recs], ["ping-0", "pong-1", "pong-2", "pong-3"])
        self.assertEqual([r["event"].get("heraldhops") for r in recs], [None, 1, 2, 3])
        self.assertEqual([r["event"]["data"] for r in recs], [{"i": i} for i in range(4)])
        self.assertEqual(len(dls), 1, dls)
        dl = dls[0]
        self.assertEqual((dl["trigger"], dl["seq"]), ("loop", 4))
        self.assertEqual(dl["event"]["heralderrorcode"], "hop_limit")
        self.assertEqual(dl["event"]["id"], "pong-3")
        self.assertEqual(dl["event"]["heraldhops"], 3)
        self.assertEqual([r.ce().get("heraldhops") for r in self.sink.requests("/loop")],
                         [None, "1", "2", "3"], "every hop was delivered exactly once")
        self.assertEqual((st["delivered"], st["replies"], st["failed"]), (3, 3, 1))
        self.assertEqual(self.trace_of(4, "loop")["outcome"], "dead_lettered")
        self.assertEqual(st["last_seq"], 4, "nothing is published past the hop limit")


if __name__ == "__main__":
    unittest.main()
