# SPDX-License-Identifier: MIT
"""W3C trace context: an event published without a traceparent gets one from herald at ingress,
stored with the event (every attempt, and a redelivery after a restart, carries the same one) but
not shown as an attribute; an event that carries a traceparent has it propagated as is."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sinks import Answer  # noqa: E402
from trigger_util import (TriggerTestCase, ev, last_seq, publish, put_trigger,  # noqa: E402
                          wait_settled)

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


class TraceparentTest(TriggerTestCase):
    def test_generated_at_ingress_and_stable_across_attempts(self):
        self.sink.script("/x", [503, 202])
        put_trigger(self.h, "t", {"sink": self.sink.url + "/x",
                                  "delivery": {"retry": 3, "backoff_delay": "PT0.05S"}})
        seq = publish(self.h, ev("no-trace"))
        wait_settled(self.h, "t", seq)
        reqs = self.sink.requests("/x")
        self.assertEqual(len(reqs), 2)
        tps = [r.headers.get("traceparent") for r in reqs]
        self.assertIsNotNone(tps[0])
        self.assertRegex(tps[0], TRACEPARENT)
        self.assertEqual(tps[0], tps[1], "the retry carried another traceparent")
        self.assertNotEqual(TRACEPARENT.match(tps[0]).group(1), "0" * 32)
        # not an attribute: reads show exactly what was published, and so do ce- headers
        _, doc = self.h.json("GET", f"/v1/buses/default/events?from={seq}&limit=1", expect=200)
        self.assertNotIn("traceparent", doc["events"][0]["event"])
        self.assertNotIn("ce-traceparent", reqs[0].headers)

    def test_each_event_gets_its_own(self):
        put_trigger(self.h, "t", {"sink": self.sink.url + "/x"})
        for i in range(5):
            publish(self.h, ev(f"e{i}"))
        wait_settled(self.h, "t", last_seq(self.h))
        ids = {TRACEPARENT.match(r.headers["traceparent"]).group(1)
               for r in self.sink.requests("/x")}
        self.assertEqual(len(ids), 5)

    def test_producer_traceparent_is_propagated(self):
        put_trigger(self.h, "t", {"sink": self.sink.url + "/x"})
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        seq = publish(self.h, ev("with-trace", traceparent=tp))
        wait_settled(self.h, "t", seq)
        (req,) = self.sink.requests("/x")
        self.assertEqual(req.headers.get("traceparent"), tp)
        self.assertEqual(req.headers.get("ce-traceparent"), tp)  # it is also an attribute

    def test_same_traceparent_after_a_restart(self):
        self.sink.script("/x", [503])  # fails until told otherwise
        put_trigger(self.h, "t", {"sink": self.sink.url + "/x",
                                  "delivery": {"retry": 1000, "backoff_delay": "PT0.05S",
                                               "max_backoff": "PT0.1S"}})
        seq = publish(self.h, ev("restart"))
        self.sink.wait_for(lambda reqs: len(reqs) >= 2, what="attempts before the restart")
        self.h.stop()
        before = len(self.sink.requests("/x"))
        self.sink.script("/x", [202])
        self.h.start()  # the event is redelivered from the stored record
        wait_settled(self.h, "t", seq)
        reqs = self.sink.requests("/x")
        self.assertGreater(len(reqs), before, "no attempt after the restart")
        self.assertEqual(len({r.headers.get("traceparent") for r in reqs}), 1,
                         "the traceparent changed across attempts or the restart")


if __name__ == "__main__":
    unittest.main()
