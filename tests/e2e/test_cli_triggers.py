# SPDX-License-Identifier: MIT
"""End-to-end tests of the `herald` client commands for delivery: trigger create|list|get|delete,
apply -f (YAML and JSON), deadletters list|redrive, replay, trace and filter test -- against a
real `herald serve` on loopback and real sinks (sinks.Sink). What a user and a script rely on:
the output, the state the server ends up in (read back over the API), and the exit codes
(0 ok, 1 server error, 2 usage error). Every server is stopped with SIGTERM and must exit 0.

Run by ctest with HERALD_BIN set; Python 3 standard library only.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD_BIN, HeraldTestCase, wait_for  # noqa: E402
from sinks import Answer, Sink  # noqa: E402

ORDER_CREATED = "com.example.order.created"
FAST = ["--retry", "2", "--backoff-delay", "PT0.02S", "--max-backoff", "PT0.1S"]


class CliTriggerCase(HeraldTestCase):
    """One fresh server and one sink per test; helpers that run the CLI against them."""

    def setUp(self):
        super().setUp()
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.addCleanup(self.h.stop)  # runs first: a graceful stop that must exit 0

    def cli(self, *args, stdin=None):
        env = dict(os.environ, HERALD_URL=self.h.url)
        return subprocess.run([HERALD_BIN] + list(args), input=stdin, capture_output=True,
                              env=env, timeout=60)

    def ok(self, *args, stdin=None):
        r = self.cli(*args, stdin=stdin)
        self.assertEqual(r.returncode, 0,
                         f"herald {' '.join(args)}: stdout {r.stdout!r} stderr {r.stderr!r}")
        return r.stdout.decode()

    def fails(self, code, *args, stdin=None):
        r = self.cli(*args, stdin=stdin)
        self.assertEqual(r.returncode, code,
                         f"herald {' '.join(args)}: stdout {r.stdout!r} stderr {r.stderr!r}")
        return r.stderr.decode()

    def write_tmp(self, text, suffix=".yaml"):
        fd, path = tempfile.mkstemp(prefix="herald-cli-", suffix=suffix)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return path

    def publish(self, type_=ORDER_CREATED, data='{"n": 1}', bus="default", **attrs):
        args = ["publish", "--bus", bus, "--type", type_, "--source", "/e2e/cli", "--data", data]
        for k, v in attrs.items():
            args += [f"--{k}", v]
        out = self.ok(*args)
        m = re.match(r"published seq (\d+)", out)
        self.assertIsNotNone(m, out)
        return int(m.group(1))

    def trigger(self, name):
        return self.h.json("GET", f"/v1/triggers/{name}", expect=200)[1]

    def wait_settled(self, name, seq):
        return wait_for(lambda: self.trigger(name)["status"]["cursor"] >= seq,
                        what=f"trigger {name} settled up to seq {seq}")

    def table(self, out):
        """A table printed by the CLI as a list of rows (cells split on runs of 2+ spaces)."""
        lines = out.rstrip("\n").split("\n")
        return [re.split(r"\s{2,}", line.strip()) for line in lines]


class Triggers(CliTriggerCase):
    def test_create_deliver_list_get_update_delete(self):
        out = self.ok("trigger", "create", "orders", "--sink", self.sink.url + "/orders",
                      "--type", ORDER_CREATED, "--header", "authorization=Bearer s3cret",
                      "--max-in-flight", "4", *FAST)
        self.assertEqual(out, "created trigger orders\n")
        t = self.trigger("orders")
        self.assertEqual(t["filters"], [{"exact": {"type": ORDER_CREATED}}])
        self.assertEqual(t["delivery"]["retry"], 2)
        self.assertEqual(t["headers"], {"authorization": "Bearer s3cret"})
        self.assertEqual(t["max_in_flight"], 4)

        self.publish(type_="com.example.other")
        seq = self.publish(data='{"order": 7}')
        reqs = self.sink.wait_for(lambda r: len(r) >= 1, what="the delivery")
        self.wait_settled("orders", seq)
        self.assertEqual(len(self.sink.requests()), 1, "the other type must not be delivered")
        self.assertEqual(reqs[0].path, "/orders")
        self.assertEqual(reqs[0].ce()["type"], ORDER_CREATED)
        self.assertEqual(reqs[0].headers["authorization"], "Bearer s3cret")
        self.assertEqual(json.loads(reqs[0].body), {"order": 7})

        # list: a table with the progress, also filtered by bus; --json is the server's answer
        rows = wait_for(lambda: [r for r in self.table(self.ok("trigger", "list"))
                                 if r[0] == "orders" and r[5] == "1"], what="delivered 1")
        header = self.table(self.ok("trigger", "list"))[0]
        self.assertEqual(header, ["NAME", "BUS", "SINK", "CURSOR", "LAG", "DELIVERED", "FAILED",
                                  "LAST ERROR"])
        self.assertEqual(rows[0][:7], ["orders", "default", self.sink.url + "/orders", str(seq),
                                       "0", "1", "0"])
        self.assertEqual(rows[0][7], "-")
        self.ok("bus", "create", "empty")
        self.assertEqual(len(self.table(self.ok("trigger", "list", "--bus", "empty"))), 1)
        doc = json.loads(self.ok("trigger", "list", "--json"))
        self.assertEqual([t["name"] for t in doc["triggers"]], ["orders"])

        # get: one field per line, nested members dotted
        out = self.ok("trigger", "get", "orders")
        fields = dict(re.split(r"\s+", line, maxsplit=1) for line in out.splitlines())
        self.assertEqual(fields["sink"], self.sink.url + "/orders")
        self.assertEqual(fields["delivery.retry"], "2")
        self.assertEqual(fields["delivery.backoff_delay"], "PT0.02S")
        self.assertEqual(fields["status.delivered"], "1")
        self.assertEqual(json.loads(fields["filters"]), [{"exact": {"type": ORDER_CREATED}}])
        self.assertEqual(json.loads(self.ok("trigger", "get", "orders", "--json"))["name"],
                         "orders")

        # create again replaces the whole document: options not given go back to defaults
        out = self.ok("trigger", "create", "orders", "--sink", self.sink.url + "/v2",
                      "--filter", '{"prefix": {"subject": "eu/"}}', "--format", "structured",
                      "--rate-limit", "2.5", "--max-age", "PT1H")
        self.assertEqual(out, "updated trigger orders\n")
        t = self.trigger("orders")
        self.assertEqual(t["filters"], [{"prefix": {"subject": "eu/"}}])
        self.assertEqual(t["delivery"]["retry"], 5)
        self.assertEqual(t["delivery"]["max_age"], "PT1H")
        self.assertEqual(t["headers"], {})
        self.assertEqual(t["format"], "structured")
        self.assertEqual(t["rate_limit"], 2.5)

        self.assertEqual(self.ok("trigger", "delete", "orders"), "deleted trigger orders\n")
        self.assertIn('no trigger named "orders"', self.fails(1, "trigger", "get", "orders"))
        self.assertIn('no trigger named "orders"', self.fails(1, "trigger", "delete", "orders"))

    def test_create_options_and_usage_errors(self):
        self.ok("bus", "create", "shop")
        self.publish(bus="shop")
        out = self.ok("--bus", "shop", "trigger", "create", "all", "--sink", self.sink.url + "/a",
                      "--type", ORDER_CREATED, "--source", "/e2e/cli", "--subject", "eu/1",
                      "--filter", '{"not": {"exact": {"type": "x"}}}', "--start", "1",
                      "--ordering", "key", "--backoff-policy", "linear", "--timeout", "PT2S",
                      "--retry-after-max", "PT5S", "--dead-letter-sink", self.sink.url + "/dlq",
                      "--reply-bus", "default", "--pipeline", "4")
        self.assertEqual(out, "created trigger all\n")
        t = self.trigger("all")
        self.assertEqual(t["bus"], "shop")
        self.assertEqual(t["filters"], [{"not": {"exact": {"type": "x"}}},
                                        {"exact": {"type": ORDER_CREATED, "source": "/e2e/cli",
                                                   "subject": "eu/1"}}])
        self.assertEqual((t["start"], t["ordering"], t["reply_bus"]), (1, "key", "default"))
        self.assertEqual(t["delivery"]["backoff_policy"], "linear")
        self.assertEqual(t["delivery"]["dead_letter_sink"], self.sink.url + "/dlq")
        self.assertEqual(t["delivery"]["pipeline"], 4)
        # the bus of a trigger cannot change (server: 409)
        err = self.fails(1, "trigger", "create", "all", "--sink", self.sink.url + "/a")
        self.assertIn("cannot change", err)

        url = self.sink.url + "/x"
        for args, what in [
            ((), "--sink URL is required"),
            (("--sink", url, "--filter", "{nope"), "--filter '{nope'"),
            (("--sink", url, "--filter", "[1]"), "not an object"),
            (("--sink", url, "--retry", "1001"), "--retry '1001'"),
            (("--sink", url, "--backoff-delay", "200ms"), "ISO 8601 duration"),
            (("--sink", url, "--start", "yesterday"), "--start 'yesterday'"),
            (("--sink", url, "--format", "xml"), "--format 'xml'"),
            (("--sink", url, "--header", "novalue"), "NAME=VALUE"),
            (("--sink", url, "--rate-limit", "-1"), "--rate-limit"),
            (("--sink", url, "--max-in-flight", "0"), "--max-in-flight"),
            (("--sink", url, "--pipeline", "65"), "--pipeline"),
        ]:
            self.assertIn(what, self.fails(2, "trigger", "create", "bad", *args))
        self.assertIn("missing argument", self.fails(2, "trigger", "create", "--sink", url))
        self.assertIn("unknown command 'nope'", self.fails(2, "trigger", "nope"))
        # the server's own checks come back as exit 1 with its message
        self.assertIn("sink", self.fails(1, "trigger", "create", "bad", "--sink", "ftp://x"))
        self.assertEqual([t["name"] for t in self.h.json("GET", "/v1/triggers")[1]["triggers"]],
                         ["all"])


APPLY_YAML = """\
# triggers come first in the file: apply still creates the bus before them
kind: Trigger
name: ship
bus: shop
sink: {sink}/ship
filters:
  - exact: {{type: {type}}}
delivery:
  retry: 2
  retry_after_max: PT60S       # the server writes PT1M: still unchanged on re-apply
---
apiVersion: herald/v1
kind: Trigger
metadata:
  name: audit
spec:
  bus: shop
  sink: "{sink}/audit"
  rate_limit: 2.5
  headers:
    x-count: "12"               # quoted: stays a string
---
kind: Bus
name: shop
retention:
  max_age: P7D
  max_bytes: 1048576
dedup_window: PT600S
---
"""


class Apply(CliTriggerCase):
    def yaml(self, **changes):
        text = APPLY_YAML.format(sink=self.sink.url, type=ORDER_CREATED)
        for old, new in changes.items():
            text = text.replace(old, new)
        return text

    def test_yaml_create_unchanged_configured(self):
        path = self.write_tmp(self.yaml())
        out = self.ok("apply", "-f", path)
        self.assertEqual(out, "bus/shop created\ntrigger/ship created\ntrigger/audit created\n")
        bus = self.h.json("GET", "/v1/buses/shop", expect=200)[1]
        self.assertEqual(bus["retention"], {"max_age": "P7D", "max_bytes": 1048576})
        ship, audit = self.trigger("ship"), self.trigger("audit")
        self.assertEqual(ship["filters"], [{"exact": {"type": ORDER_CREATED}}])
        self.assertEqual(ship["delivery"]["retry"], 2)
        self.assertEqual(audit["bus"], "shop")
        self.assertEqual(audit["rate_limit"], 2.5)
        self.assertEqual(audit["headers"], {"x-count": "12"})

        out = self.ok("apply", "-f", path)
        self.assertEqual(out, "bus/shop unchanged\ntrigger/ship unchanged\n"
                              "trigger/audit unchanged\n")
        self.assertEqual(self.trigger("ship")["status"]["created"], ship["status"]["created"])

        # change one trigger: only it is configured; stdin works as a file
        changed = self.yaml(**{"retry: 2": "retry: 4"})
        out = self.ok("apply", "-f", "-", stdin=changed.encode())
        self.assertEqual(out, "bus/shop unchanged\ntrigger/ship configured\n"
                              "trigger/audit unchanged\n")
        self.assertEqual(self.trigger("ship")["delivery"]["retry"], 4)
        # a member removed from the file goes back to its default (PUT replaces a trigger)
        out = self.ok("apply", "-f", "-", stdin=changed.replace("  rate_limit: 2.5\n", "")
                      .encode())
        self.assertIn("trigger/audit configured\n", out)
        self.assertEqual(self.trigger("audit")["rate_limit"], 0)

        # the applied triggers deliver
        seq = self.publish(bus="shop")
        self.sink.wait_for(lambda r: {q.path for q in r} >= {"/ship", "/audit"},
                           what="both triggers delivered")
        self.wait_settled("ship", seq)

        # --json: one line per object with the result and the server's document
        lines = self.ok("apply", "-f", path, "--json").splitlines()
        docs = [json.loads(line) for line in lines]
        self.assertEqual([(d["kind"], d["name"]) for d in docs],
                         [("bus", "shop"), ("trigger", "ship"), ("trigger", "audit")])
        self.assertEqual(docs[1]["result"], "configured")  # back to retry: 2
        self.assertEqual(docs[1]["object"]["delivery"]["retry"], 2)

    def test_json_object_and_array(self):
        objs = [
            {"kind": "Trigger", "name": "j1", "bus": "jbus", "sink": self.sink.url + "/j1",
             "filters": [{"prefix": {"type": "com.example."}}], "delivery": {"timeout": "PT5S"}},
            {"kind": "Bus", "name": "jbus", "fsync": "never"},
            {"kind": "Trigger", "metadata": {"name": "j2"},
             "spec": {"bus": "jbus", "sink": self.sink.url + "/j2", "max_in_flight": 8}},
        ]
        path = self.write_tmp(json.dumps(objs, indent=2), suffix=".json")
        self.assertEqual(self.ok("apply", "-f", path),
                         "bus/jbus created\ntrigger/j1 created\ntrigger/j2 created\n")
        self.assertEqual(self.ok("apply", "-f", path),
                         "bus/jbus unchanged\ntrigger/j1 unchanged\ntrigger/j2 unchanged\n")
        self.assertEqual(self.h.json("GET", "/v1/buses/jbus", expect=200)[1]["fsync"], "never")
        self.assertEqual(self.trigger("j2")["max_in_flight"], 8)
        objs[2]["spec"]["max_in_flight"] = 9
        self.assertEqual(self.ok("apply", "-f", "-", stdin=json.dumps(objs).encode()),
                         "bus/jbus unchanged\ntrigger/j1 unchanged\ntrigger/j2 configured\n")
        # a single JSON object
        one = self.write_tmp(json.dumps({"kind": "Bus", "name": "solo"}), suffix=".json")
        self.assertEqual(self.ok("apply", "-f", one), "bus/solo created\n")
        self.assertEqual(self.ok("apply", "-f", one), "bus/solo unchanged\n")

    def test_bad_yaml_is_a_usage_error_and_sends_nothing(self):
        path = self.write_tmp("kind: Bus\nname: fine\n---\nkind: Bus\nname: [oops\n")
        err = self.fails(2, "apply", "-f", path)
        self.assertIn(path, err)
        self.assertIn("line 6", err)
        self.assertIn("invalid YAML", err)
        names = [b["name"] for b in self.h.json("GET", "/v1/buses")[1]["buses"]]
        self.assertNotIn("fine", names)

        bad_json = self.write_tmp('[{"kind": "Bus", "name": "x"}, }', suffix=".json")
        self.assertIn("invalid JSON", self.fails(2, "apply", "-f", bad_json))
        self.assertIn("holds no documents", self.fails(2, "apply", "-f", "-", stdin=b"# empty\n"))
        self.assertIn("cannot open", self.fails(2, "apply", "-f", "/nonexistent/x.yaml"))
        self.assertIn("-f FILE is required", self.fails(2, "apply"))
        err = self.fails(2, "apply", "-f", "-", stdin=b"kind: Bus\nname: a\nname: b\n")
        self.assertIn('duplicate key "name"', err)

    def test_failed_documents_are_reported_and_the_others_applied(self):
        text = (f"kind: Bus\nname: good\n---\n"
                f"kind: Widget\nname: w\n---\n"
                f"kind: Trigger\nname: rejected\nbus: good\nsink: {self.sink.url}/r\n"
                f"delivery: {{retry: 5000}}\n---\n"
                f"kind: Trigger\nname: nobus\nbus: missing\nsink: {self.sink.url}/n\n---\n"
                f"kind: Trigger\nsink: {self.sink.url}/n\n---\n"
                f"kind: Trigger\nname: fine\nbus: good\nsink: {self.sink.url}/f\n")
        path = self.write_tmp(text)
        r = self.cli("apply", "-f", path)
        out, err = r.stdout.decode(), r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertEqual(out, "bus/good created\ntrigger/fine created\n")
        self.assertIn(f'{path}: document 2 at line 4: "kind" must be Bus or Trigger', err)
        self.assertIn(f"{path}: document 3 at line 7 (trigger/rejected): not applied", err)
        self.assertIn('"delivery.retry" must be an integer from 0 to 1000', err)  # the server's
        self.assertIn(f"{path}: document 4 at line 13 (trigger/nobus): not applied", err)
        self.assertIn('no bus named "missing"', err)
        self.assertIn(f'{path}: document 5 at line 18: missing "name"', err)
        self.assertIn("4 of 6 documents not applied", err)
        self.assertEqual(self.trigger("fine")["bus"], "good")
        self.assertEqual(self.h.http("GET", "/v1/triggers/rejected")[0], 404)


class DeadLetters(CliTriggerCase):
    def test_list_and_redrive_after_the_sink_is_fixed(self):
        self.sink.script("/dl", [Answer(400, body=b"bad order\nrejected")])
        self.ok("trigger", "create", "dl", "--sink", self.sink.url + "/dl", "--retry", "0")
        self.ok("trigger", "create", "other", "--sink", self.sink.url + "/other")
        seqs = [self.publish(data=json.dumps({"n": i})) for i in range(3)]
        self.wait_settled("dl", seqs[-1])
        wait_for(lambda: self.trigger("dl")["status"]["dead_letters"] == 3, what="3 dead letters")

        rows = self.table(self.ok("deadletters", "list"))
        self.assertEqual(rows[0], ["ID", "TRIGGER", "SEQ", "TIME", "ATTEMPTS", "CODE", "DATA"])
        self.assertEqual([r[2] for r in rows[1:]], [str(s) for s in seqs])
        for r in rows[1:]:
            self.assertEqual((r[1], r[4], r[5]), ("dl", "1", "400"))
            self.assertEqual(r[6], "bad order\\nrejected")  # control characters escaped
        # paging: one page of 2 with a hint on stderr; --all follows "next"
        r = self.cli("deadletters", "list", "--limit", "2")
        self.assertEqual(len(self.table(r.stdout.decode())), 3)
        self.assertIn("--after", r.stderr.decode())
        first_two = self.table(r.stdout.decode())[1:]
        rest = self.table(self.ok("deadletters", "list", "--after", first_two[-1][0]))[1:]
        self.assertEqual([r[2] for r in rest], [str(seqs[2])])
        doc = json.loads(self.ok("deadletters", "list", "--limit", "1", "--all", "--json"))
        self.assertEqual([d["seq"] for d in doc["deadletters"]], seqs)
        self.assertEqual(doc["deadletters"][0]["event"]["heralderrorcode"], "400")
        self.assertEqual(len(self.table(self.ok("deadletters", "list", "--trigger", "other"))), 1)

        # redrive one seq range, then the rest, once the sink accepts
        self.sink.script("/dl", [202])
        self.assertEqual(self.ok("deadletters", "redrive", "--trigger", "dl", "--from",
                                 str(seqs[0]), "--to", str(seqs[0])),
                         "redriven 1, skipped 0\n")
        wait_for(lambda: len(self.table(self.ok("deadletters", "list"))) == 3,
                 what="one dead letter delivered")
        self.assertEqual(self.ok("deadletters", "redrive"), "redriven 2, skipped 0\n")
        wait_for(lambda: len(self.table(self.ok("deadletters", "list"))) == 1,
                 what="no dead letters left")
        delivered = [json.loads(q.body)["n"] for q in self.sink.requests("/dl")
                     if q.headers.get("ce-type") == ORDER_CREATED]
        self.assertEqual(sorted(delivered[3:]), [0, 1, 2])  # 3 refused, then 3 delivered
        self.assertEqual(json.loads(self.ok("deadletters", "redrive", "--json")),
                         {"redriven": 0, "skipped": 0})

        self.assertIn("--from 3 is after --to 1",
                      self.fails(2, "deadletters", "redrive", "--from", "3", "--to", "1"))
        self.assertIn("--limit", self.fails(2, "deadletters", "list", "--limit", "0"))
        self.assertIn('no bus named "nope"', self.fails(1, "deadletters", "list", "--bus", "nope"))


class ReplayTraceFilter(CliTriggerCase):
    def test_replay(self):
        self.ok("trigger", "create", "r", "--sink", self.sink.url + "/r", "--type", ORDER_CREATED)
        seqs = [self.publish(data=json.dumps({"n": i})) for i in range(3)]
        self.sink.wait_for(lambda r: len(r) == 3, what="3 deliveries")
        self.wait_settled("r", seqs[-1])

        out = self.ok("replay", "r", "--from", str(seqs[0]), "--to", str(seqs[1]))
        self.assertEqual(out, f"replaying seq {seqs[0]} to {seqs[1]} to trigger r\n")
        reqs = self.sink.wait_for(lambda r: len(r) == 5, what="2 replayed deliveries")
        # ordering "none": sent in parallel, so they may arrive in any order
        self.assertEqual(sorted(json.loads(q.body)["n"] for q in reqs[3:]), [0, 1])

        doc = json.loads(self.ok("replay", "r", "--from-time", "2000-01-01T00:00:00Z", "--json"))
        self.assertEqual((doc["from"], doc["to"]), (seqs[0], seqs[-1]))
        self.sink.wait_for(lambda r: len(r) == 8, what="3 more replayed deliveries")

        self.assertIn("--from SEQ or --from-time", self.fails(2, "replay", "r"))
        self.assertIn("not both", self.fails(2, "replay", "r", "--from", "1", "--from-time",
                                             "2000-01-01T00:00:00Z"))
        self.assertIn("RFC 3339", self.fails(2, "replay", "r", "--from-time", "yesterday"))
        self.assertIn('no trigger named "nope"', self.fails(1, "replay", "nope", "--from", "1"))
        self.assertIn("nothing to replay", self.fails(1, "replay", "r", "--from", "99"))

    def test_trace_shows_each_attempt(self):
        self.sink.script("/t", [Answer(503, body=b"busy"), 202])
        self.ok("trigger", "create", "t", "--sink", self.sink.url + "/t", *FAST)
        self.ok("trigger", "create", "gone", "--sink", "http://127.0.0.1:1/refused",
                "--retry", "0")
        seq = self.publish()
        self.wait_settled("t", seq)
        self.wait_settled("gone", seq)

        out = self.ok("trace", str(seq))
        self.assertIn(f"event {seq} of bus default:", out)
        block = out[out.index("trigger t:"):]
        block = block[:block.index("trigger gone:")] if "trigger gone:" in block else block
        self.assertIn("trigger t: delivered, 2 attempts", block)
        attempts = [line.split() for line in block.splitlines()[2:]]
        self.assertEqual([a[1] for a in attempts], ["503", "202"])
        self.assertTrue(all(a[3] == "ms" for a in attempts), attempts)
        gone = out[out.index("trigger gone:"):]
        self.assertIn("trigger gone: dead_lettered, 1 attempt", gone)
        self.assertIn("note: heralderrorcode connection_refused", gone)
        self.assertRegex(gone, r"\n    \S+Z\s+-\s+[\d.]+ ms\s+\S")  # status "-" and the error

        doc = json.loads(self.ok("trace", str(seq), "--json"))
        t = [x for x in doc["triggers"] if x["trigger"] == "t"][0]
        self.assertEqual([a["status"] for a in t["attempts"]], [503, 202])

        self.ok("bus", "create", "quiet")
        qseq = self.publish(bus="quiet")
        self.assertIn("no trigger matched", self.ok("trace", str(qseq), "--bus", "quiet"))
        self.assertIn("has no event", self.fails(1, "trace", "999"))
        self.assertIn("SEQ 'x'", self.fails(2, "trace", "x"))

    def test_filter_test(self):
        ev = {"specversion": "1.0", "id": "1", "source": "/shop", "type": ORDER_CREATED,
              "subject": "eu/42", "region": "eu"}
        evf = self.write_tmp(json.dumps(ev), suffix=".json")
        match = ["filter", "test", "--event", evf]
        self.assertEqual(self.ok(*match, "--filter", '{"exact": {"type": "%s"}}' % ORDER_CREATED,
                                 "--filter", '{"prefix": {"subject": "eu/"}}'), "match\n")
        self.assertEqual(self.ok(*match, "--filter", '{"exact": {"region": "us"}}'),
                         "no match\n")
        self.assertEqual(self.ok(*match), "match\n")  # no filters: everything
        self.fails(1, *match, "--filter", '{"exact": {"region": "us"}}', "--exit-status")
        self.ok(*match, "--filter", '{"exact": {"region": "eu"}}', "--exit-status")
        self.assertEqual(json.loads(self.ok(*match, "--filter", '{"suffix": {"type": "x"}}',
                                            "--json")), {"match": False})
        ff = self.write_tmp(json.dumps([{"any": [{"exact": {"type": "x"}},
                                                 {"not": {"exact": {"source": "/other"}}}]}]),
                            suffix=".json")
        self.assertEqual(self.ok("filter", "test", "--event", "-", "--filters-file", ff,
                                 stdin=json.dumps(ev).encode()), "match\n")
        legacy = self.write_tmp(json.dumps({"filter": {"attributes": {"type": "x"}}}))
        self.assertEqual(self.ok(*match, "--filters-file", legacy), "no match\n")

        self.assertIn("dialect", self.fails(1, *match, "--filter", '{"bogus": {}}'))
        bad_ev = self.write_tmp(json.dumps({"specversion": "1.0", "id": "1", "source": "/s"}))
        self.assertIn("type", self.fails(1, "filter", "test", "--event", bad_ev))
        self.assertIn("--event FILE is required", self.fails(2, "filter", "test"))
        self.assertIn("invalid JSON", self.fails(2, *match, "--filter", "{x"))
        self.assertIn("not both", self.fails(2, *match, "--filter", "{}", "--filters-file", ff))


class Help(CliTriggerCase):
    def test_help_on_every_new_command(self):
        for cmd in (["trigger"], ["trigger", "create"], ["trigger", "list"], ["trigger", "get"],
                    ["trigger", "delete"], ["apply"], ["deadletters"], ["deadletters", "list"],
                    ["deadletters", "redrive"], ["replay"], ["trace"], ["filter"],
                    ["filter", "test"]):
            out = self.ok(*cmd, "--help")
            self.assertTrue(out.startswith("Usage: herald " + " ".join(cmd)), out)
            self.assertIn("Exit status:", out)
            self.assertEqual(self.ok("help", *cmd[:1]).split("\n")[0],
                             self.ok(cmd[0], "--help").split("\n")[0])
        top = self.ok("--help")
        for name in ("trigger", "apply", "deadletters", "replay", "trace", "filter"):
            self.assertRegex(top, rf"\n  {name}\s+\S")
        self.assertIn("missing command", self.fails(2, "deadletters"))


if __name__ == "__main__":
    unittest.main()
