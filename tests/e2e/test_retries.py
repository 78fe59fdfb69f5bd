# SPDX-License-Identifier: MIT
"""Retries and dead letters (DESIGN §2.2, §6; docs/api.md "Triggers", "Dead letters", "Trace"):
retryable answers (5xx, 429, refused connections, timeouts) are retried with the configured
backoff and Retry-After, then delivered or dead-lettered with the reason; other 4xx are
dead-lettered at once; dead letters are listed, paged, sent to the dead_letter_sink and redriven;
the trace and the trigger status show every attempt."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import wait_for  # noqa: E402
from sinks import Answer  # noqa: E402
from trigger_util import (TriggerTestCase, ce_attrs, deadletters, ev, ids,  # noqa: E402
                          publish, put_trigger, status_of, trace, wait_settled)

# Spacing checks: at least 0.8 x the configured delay (jitter is +-10%), and below a generous
# bound that only catches a delay that is clearly wrong (e.g. the uncapped or unclamped one).
LOW = 0.8


def gaps(reqs):
    return [b.t - a.t for a, b in zip(reqs, reqs[1:])]


class RetryTest(TriggerTestCase):

    def trigger(self, name, path, **delivery):
        d = {"retry": 5, "backoff_delay": "PT0.2S"}
        d.update(delivery)
        return put_trigger(self.h, name, {"sink": self.sink.url + path, "delivery": d},
                           expect=201)

    def test_exponential_backoff_then_delivered(self):
        self.sink.script("/r", [Answer(503, body=b"busy"), Answer(503, body=b"busy"), 202])
        self.trigger("r", "/r", backoff_policy="exponential", backoff_delay="PT0.2S")
        seq = publish(self.h, ev("e1", data={"n": 1}))
        st = wait_settled(self.h, "r", seq)
        reqs = self.sink.requests("/r")
        self.assertEqual(len(reqs), 3, reqs)
        self.assertEqual(set(ids(reqs)), {"e1"})
        self.assertEqual({r.body for r in reqs}, {b'{"n": 1}'})  # every attempt carries the data
        g = gaps(reqs)
        self.assertGreaterEqual(g[0], LOW * 0.2, g)
        self.assertGreaterEqual(g[1], LOW * 0.4, g)
        self.assertLess(g[0], 5, g)
        self.assertLess(g[1], 5, g)
        self.assertEqual((st["delivered"], st["retried"], st["failed"], st["dead_letters"]),
                         (1, 2, 0, 0))
        self.assertIn("503", st["last_error"] or "")
        self.assertTrue(st["last_error_time"])
        self.assertEqual(deadletters(self.h), [])
        # the trace shows each attempt and the outcome
        tr = trace(self.h, seq)
        self.assertEqual(tr["seq"], seq)
        self.assertEqual(len(tr["triggers"]), 1, tr)
        t = tr["triggers"][0]
        self.assertEqual((t["trigger"], t["outcome"], t["attempts_total"], t["replay"]),
                         ("r", "delivered", 3, False))
        self.assertEqual([a["status"] for a in t["attempts"]], [503, 503, 202])
        for a in t["attempts"]:
            self.assertTrue(a["time"])
            self.assertGreaterEqual(a["latency_ms"], 0)

    def test_linear_backoff(self):
        self.sink.script("/lin", [503, 503, 503, 503, 202])
        self.trigger("lin", "/lin", backoff_policy="linear", backoff_delay="PT0.3S")
        seq = publish(self.h, ev("e1"))
        wait_settled(self.h, "lin", seq)
        reqs = self.sink.requests("/lin")
        self.assertEqual(len(reqs), 5)
        g = gaps(reqs)
        for n, gap in enumerate(g, 1):
            self.assertGreaterEqual(gap, LOW * 0.3 * n, g)
        # linear, not exponential: the 4th delay is 1.2 s, not 2.4 s
        self.assertLess(g[3], 2.0, g)

    def test_max_backoff_caps_the_delay(self):
        self.sink.script("/cap", [503, 503, 503, 503, 202])
        self.trigger("cap", "/cap", backoff_delay="PT0.2S", max_backoff="PT0.3S")
        seq = publish(self.h, ev("e1"))
        wait_settled(self.h, "cap", seq)
        g = gaps(self.sink.requests("/cap"))
        self.assertEqual(len(g), 4)
        self.assertGreaterEqual(g[0], LOW * 0.2, g)
        for gap in g[1:]:
            self.assertGreaterEqual(gap, LOW * 0.3, g)
        # uncapped, the 4th delay would be 1.6 s
        self.assertLess(g[3], 1.2, g)

    def test_retry_after_is_honoured(self):
        self.sink.script("/ra", [Answer(429, headers={"Retry-After": "1"}), 202])
        self.trigger("ra", "/ra", backoff_delay="PT0.05S")
        seq = publish(self.h, ev("e1"))
        st = wait_settled(self.h, "ra", seq)
        reqs = self.sink.requests("/ra")
        self.assertEqual(len(reqs), 2)
        self.assertGreaterEqual(gaps(reqs)[0], 0.9)
        self.assertLess(gaps(reqs)[0], 10)
        self.assertEqual((st["delivered"], st["retried"]), (1, 1))
        self.assertEqual([a["status"] for a in trace(self.h, seq)["triggers"][0]["attempts"]],
                         [429, 202])

    def test_retry_after_max_caps_retry_after(self):
        self.sink.script("/ram", [Answer(503, headers={"Retry-After": "60"}), 202])
        self.trigger("ram", "/ram", backoff_delay="PT0.05S", retry_after_max="PT0.5S")
        seq = publish(self.h, ev("e1"))
        wait_settled(self.h, "ram", seq, timeout=20)
        reqs = self.sink.requests("/ram")
        self.assertEqual(len(reqs), 2)
        self.assertGreaterEqual(gaps(reqs)[0], LOW * 0.5)
        self.assertLess(gaps(reqs)[0], 10)  # not 60 s

    def test_connection_refused_then_sink_comes_back(self):
        down = self.new_sink()
        down.stop()
        put_trigger(self.h, "cr", {"sink": down.url + "/cr", "delivery": {
            "retry": 100, "backoff_delay": "PT0.1S", "max_backoff": "PT0.3S"}}, expect=201)
        seq = publish(self.h, ev("e1", data="hello"))
        wait_for(lambda: status_of(self.h, "cr")["retried"] >= 2, 20,
                 what="two refused attempts")
        st = status_of(self.h, "cr")
        self.assertLess(st["cursor"], seq)
        self.assertEqual(st["delivered"], 0)
        self.assertIn("connection_refused", st["last_error"] or "")
        down.restart()
        st = wait_settled(self.h, "cr", seq)
        self.assertEqual(ids(down.requests("/cr")), ["e1"])
        self.assertEqual(down.requests("/cr")[0].body, b'"hello"')
        self.assertEqual((st["delivered"], st["failed"], st["dead_letters"]), (1, 0, 0))
        t = trace(self.h, seq)["triggers"][0]
        self.assertEqual(t["outcome"], "delivered")
        self.assertGreaterEqual(t["attempts_total"], 3)
        self.assertEqual(t["attempts"][-1]["status"], 202)
        for a in t["attempts"][:-1]:
            self.assertEqual(a["status"], 0)
            self.assertTrue(a.get("error"))

    def test_timeout_then_delivered(self):
        self.sink.script("/slow", [Answer(202, delay=3.0), 202])
        self.trigger("slow", "/slow", timeout="PT0.5S", backoff_delay="PT0.1S")
        seq = publish(self.h, ev("e1"))
        st = wait_settled(self.h, "slow", seq, timeout=20)
        reqs = self.sink.requests("/slow")
        self.assertEqual(len(reqs), 2, reqs)
        self.assertGreaterEqual(gaps(reqs)[0], 0.5)  # the timeout, then the backoff
        self.assertLess(gaps(reqs)[0], 2.9)          # it did not wait for the slow answer
        self.assertEqual((st["delivered"], st["retried"]), (1, 1))
        t = trace(self.h, seq)["triggers"][0]
        self.assertEqual([a["status"] for a in t["attempts"]], [0, 202])
        self.assertTrue(t["attempts"][0].get("error"))

    def test_retries_exhausted_become_a_dead_letter(self):
        self.sink.script("/ex", [Answer(503, body=b"still busy")])
        self.trigger("ex", "/ex", retry=2, backoff_delay="PT0.05S")
        seq = publish(self.h, ev("e1", subject="s/1", data={"k": "v"}))
        st = wait_settled(self.h, "ex", seq)
        self.assertEqual(len(self.sink.requests("/ex")), 3)
        self.assertEqual((st["delivered"], st["retried"], st["failed"], st["dead_letters"]),
                         (0, 2, 1, 1))
        self.assertIn("503", st["last_error"])
        dls = deadletters(self.h, trigger="ex")
        self.assertEqual(len(dls), 1)
        d = dls[0]
        self.assertEqual((d["trigger"], d["seq"], d["attempts"]), ("ex", seq, 3))
        self.assertTrue(d["time"])
        e = d["event"]
        self.assertEqual((e["id"], e["source"], e["type"], e["subject"]),
                         ("e1", "/e2e", "t.e2e", "s/1"))
        self.assertEqual(e.get("data"), {"k": "v"})
        self.assertEqual(str(e["heralderrorcode"]), "503")
        self.assertEqual(e["heralderrordata"], "still busy")
        self.assertEqual(e["heralderrordest"], self.sink.url + "/ex")
        t = trace(self.h, seq)["triggers"][0]
        self.assertEqual((t["outcome"], t["attempts_total"]), ("dead_lettered", 3))
        self.assertEqual([a["status"] for a in t["attempts"]], [503, 503, 503])
        self.assertIn("503", t.get("note", ""))

    def test_max_age_gives_up(self):
        self.sink.script("/age", [503])
        self.trigger("age", "/age", retry=1000, backoff_delay="PT0.1S", max_backoff="PT0.1S",
                     max_age="PT0.6S")
        seq = publish(self.h, ev("e1"))
        st = wait_settled(self.h, "age", seq, timeout=20)
        reqs = self.sink.requests("/age")
        self.assertGreaterEqual(len(reqs), 2)
        self.assertGreaterEqual(reqs[-1].t - reqs[0].t, 0.5 * 0.8)
        self.assertLess(len(reqs), 100)
        self.assertEqual((st["delivered"], st["failed"]), (0, 1))
        [d] = deadletters(self.h)
        self.assertEqual(d["attempts"], len(reqs))
        self.assertEqual(str(d["event"]["heralderrorcode"]), "503")

    def test_client_error_is_dead_lettered_at_once(self):
        self.sink.script("/bad", [Answer(400, body=b'{"error":"no such customer"}'), 202])
        self.trigger("bad", "/bad", retry=5, backoff_delay="PT0.05S")
        seq = publish(self.h, ev("e1"))
        st = wait_settled(self.h, "bad", seq)
        self.assertEqual(len(self.sink.requests("/bad")), 1)
        self.assertEqual((st["delivered"], st["retried"], st["failed"], st["dead_letters"]),
                         (0, 0, 1, 1))
        self.assertIn("400", st["last_error"])
        [d] = deadletters(self.h)
        self.assertEqual((d["trigger"], d["seq"], d["attempts"]), ("bad", seq, 1))
        self.assertEqual(str(d["event"]["heralderrorcode"]), "400")
        self.assertEqual(d["event"]["heralderrordata"], '{"error":"no such customer"}')
        self.assertEqual(d["event"]["heralderrordest"], self.sink.url + "/bad")
        t = trace(self.h, seq)["triggers"][0]
        self.assertEqual((t["outcome"], t["attempts_total"]), ("dead_lettered", 1))
        # 404 and 410 too; 408 and 409 are retried
        self.sink.script("/c404", [404, 202])
        self.sink.script("/c408", [408, 409, 202])
        self.trigger("c404", "/c404", retry=5, backoff_delay="PT0.05S")
        self.trigger("c408", "/c408", retry=5, backoff_delay="PT0.05S")
        seq2 = publish(self.h, ev("e2"))
        wait_settled(self.h, "c404", seq2)
        wait_settled(self.h, "c408", seq2)
        self.assertEqual(len(self.sink.requests("/c404")), 1)
        self.assertEqual(len(self.sink.requests("/c408")), 3)
        self.assertEqual(status_of(self.h, "c408")["delivered"], 1)
        self.assertEqual([(d["trigger"], d["seq"]) for d in deadletters(self.h)],
                         [("bad", seq), ("c404", seq2)])

    def test_deadletters_by_trigger_and_paging(self):
        self.sink.script("/a", [400])
        self.sink.script("/b", [422])
        self.trigger("a", "/a")
        self.trigger("b", "/b")
        seqs = [publish(self.h, ev(f"e{i}")) for i in range(7)]
        wait_settled(self.h, "a", seqs[-1])
        wait_settled(self.h, "b", seqs[-1])
        every = deadletters(self.h)
        self.assertEqual(len(every), 14)
        self.assertEqual(len({d["id"] for d in every}), 14)
        self.assertEqual([d["id"] for d in every], sorted(d["id"] for d in every))
        for name in ("a", "b"):
            mine = deadletters(self.h, trigger=name)
            self.assertEqual({d["trigger"] for d in mine}, {name})
            self.assertEqual(sorted(d["seq"] for d in mine), seqs)
            # pages of 3 give the same list
            paged = deadletters(self.h, trigger=name, limit=3)
            self.assertEqual(paged, mine)
            _, page = self.h.json("GET", f"/v1/buses/default/deadletters?trigger={name}&limit=3",
                                  expect=200)
            self.assertEqual(len(page["deadletters"]), 3)
            self.assertEqual(page["deadletters"], mine[:3])
            _, page2 = self.h.json(
                "GET", f"/v1/buses/default/deadletters?trigger={name}&limit=3&after={page['next']}",
                expect=200)
            self.assertEqual(page2["deadletters"], mine[3:6])
            self.assertEqual(status_of(self.h, name)["dead_letters"], 7)
        _, none = self.h.json("GET", "/v1/buses/default/deadletters?trigger=nosuch", expect=200)
        self.assertEqual(none["deadletters"], [])
        for q in ("limit=0", "limit=1001", "limit=x", "after=-1", "bogus=1"):
            status, _, data = self.h.http("GET", f"/v1/buses/default/deadletters?{q}")
            self.assertEqual(status, 400, (q, data))
        self.assertEqual(self.h.http("GET", "/v1/buses/nosuch/deadletters")[0], 404)

    def test_redrive_after_the_sink_is_fixed(self):
        self.sink.script("/fix", [Answer(500, body=b"broken")])
        self.trigger("fix", "/fix", retry=1, backoff_delay="PT0.05S")
        self.sink.script("/gone", [400])
        self.trigger("gone", "/gone")
        seqs = [publish(self.h, ev(f"e{i}", data={"i": i})) for i in range(3)]
        wait_settled(self.h, "fix", seqs[-1])
        wait_settled(self.h, "gone", seqs[-1])
        self.assertEqual(len(deadletters(self.h, trigger="fix")), 3)
        # fix the sink, then redrive that trigger's dead letters
        self.sink.script("/fix", [202])
        self.sink.clear()
        status, _, data = self.h.http("POST", "/v1/buses/default/deadletters/redrive",
                                      body={"trigger": "fix"})
        self.assertEqual(status, 202, data)
        self.assertEqual(json.loads(data), {"redriven": 3, "skipped": 0})
        wait_for(lambda: not deadletters(self.h, trigger="fix"), 20,
                 what="the redriven dead letters to leave")
        self.sink.wait_for(lambda rs: len([r for r in rs if r.path == "/fix"]) >= 3, 10)
        self.assertEqual(sorted(ids(self.sink.requests("/fix"))), ["e0", "e1", "e2"])
        self.assertEqual({r.body for r in self.sink.requests("/fix")},
                         {b'{"i": 0}', b'{"i": 1}', b'{"i": 2}'})
        # the redriven event carries no heralderror* attributes
        for r in self.sink.requests("/fix"):
            self.assertFalse([k for k in ce_attrs(r) if k.startswith("heralderror")], r)
        wait_for(lambda: status_of(self.h, "fix")["dead_letters"] == 0, 10)
        self.assertEqual(len(deadletters(self.h, trigger="gone")), 3)
        # redrive to a new sink after a trigger update; by seq range
        put_trigger(self.h, "gone", {"sink": self.sink.url + "/new"}, expect=200)
        status, _, data = self.h.http("POST", "/v1/buses/default/deadletters/redrive",
                                      body={"trigger": "gone", "from": seqs[1], "to": seqs[2]})
        self.assertEqual(status, 202, data)
        self.assertEqual(json.loads(data), {"redriven": 2, "skipped": 0})
        wait_for(lambda: len(deadletters(self.h, trigger="gone")) == 1, 20,
                 what="two redriven dead letters to leave")
        self.assertEqual(sorted(ids(self.sink.requests("/new"))), ["e1", "e2"])
        self.assertEqual([d["seq"] for d in deadletters(self.h)], [seqs[0]])
        self.assertEqual(self.sink.requests("/gone"), [])
        # a redrive that fails again is recorded again
        self.sink.script("/again", [Answer(400, body=b"nope")])
        put_trigger(self.h, "gone", {"sink": self.sink.url + "/again"}, expect=200)
        status, _, data = self.h.http("POST", "/v1/buses/default/deadletters/redrive", body={})
        self.assertEqual(status, 202, data)
        self.assertEqual(json.loads(data), {"redriven": 1, "skipped": 0})
        self.sink.wait_for(lambda rs: any(r.path == "/again" for r in rs), 10)
        wait_for(lambda: [(d["seq"], d["event"]["heralderrordata"])
                          for d in deadletters(self.h)] == [(seqs[0], "nope")], 10,
                 what="the dead letter to be recorded again")
        # a deleted trigger's dead letters are skipped
        self.assertEqual(self.h.http("DELETE", "/v1/triggers/gone")[0], 204)
        status, _, data = self.h.http("POST", "/v1/buses/default/deadletters/redrive", body={})
        self.assertEqual(status, 202, data)
        self.assertEqual(json.loads(data), {"redriven": 0, "skipped": 1})
        # bad bodies
        for body in ({"from": 0}, {"from": "x"}, {"trigger": 5}, {"from": 5, "to": 2},
                     {"bogus": 1}, [1]):
            status, _, data = self.h.http("POST", "/v1/buses/default/deadletters/redrive",
                                          body=body)
            self.assertEqual(status, 400, (body, data))

    def test_dead_letter_sink(self):
        self.sink.script("/main", [Answer(410, body=b"gone for good")])
        put_trigger(self.h, "d", {"sink": self.sink.url + "/main", "delivery": {
            "retry": 0, "dead_letter_sink": self.sink.url + "/dlq"}}, expect=201)
        seq = publish(self.h, ev("e1", subject="ü/1", data={"x": 1}, tier="gold"))
        wait_settled(self.h, "d", seq)
        reqs = self.sink.wait_for(lambda rs: any(r.path == "/dlq" for r in rs), 20,
                                  what="the dead letter at the dead_letter_sink")
        [r] = [r for r in reqs if r.path == "/dlq"]
        a = ce_attrs(r)
        self.assertEqual((a["id"], a["source"], a["type"], a["subject"], a["tier"]),
                         ("e1", "/e2e", "t.e2e", "ü/1", "gold"))
        self.assertEqual(a["heralderrorcode"], "410")
        self.assertEqual(a["heralderrordata"], "gone for good")
        self.assertEqual(a["heralderrordest"], self.sink.url + "/main")
        self.assertEqual(json.loads(r.body), {"x": 1})
        self.assertEqual(len(deadletters(self.h)), 1)  # recorded as well

    def test_dead_letter_sink_is_retried(self):
        self.sink.script("/main2", [400])
        self.sink.script("/dlq2", [503, 503, 202])
        put_trigger(self.h, "d2", {"sink": self.sink.url + "/main2", "delivery": {
            "retry": 3, "backoff_delay": "PT0.05S",
            "dead_letter_sink": self.sink.url + "/dlq2"}}, expect=201)
        publish(self.h, ev("e1"))
        self.sink.wait_for(lambda rs: len([r for r in rs if r.path == "/dlq2"]) >= 3, 20,
                           what="three attempts at the dead_letter_sink")
        self.assertEqual(set(ids(self.sink.requests("/dlq2"))), {"e1"})


if __name__ == "__main__":
    unittest.main()
