# SPDX-License-Identifier: MIT
"""`herald cesql eval|check` (local CloudEvents SQL, no server) and `herald tail --filter` (pages
and --follow against a real server): the printed values and error kinds of TCK-like cases, the
--json shape, and the exit codes scripts rely on (eval: 0 no error, 1 evaluation error, 2 usage
or parse error; check: 0 valid, 2 invalid).

Run by ctest with HERALD_BIN set; Python 3 standard library only.
"""
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD_BIN, Herald, HeraldTestCase  # noqa: E402

EVENT = {"specversion": "1.0", "id": "evt-1", "source": "/shop/eu", "type": "order.created",
         "subject": "eu/de/42", "myint": 41, "mybool": True, "mystr": "Grüße", "code": "n/a",
         "datacontenttype": "application/json", "data": {"x": 1}}
EVENT_JSON = json.dumps(EVENT)

# (expression, expected stdout, expected exit status): evaluated against EVENT.
EVAL_CASES = [
    ("1 + 2 * 3", "7\n", 0),
    ("(0 - 7) % 3", "-1\n", 0),
    ("'abc' = 'ABC'", "false\n", 0),
    ("LOWER('ABC') = 'abc'", "true\n", 0),
    ("CONCAT('a', 'b', 'c')", '"abc"\n', 0),
    ("CONCAT('say \"', subject, '\"')", '"say \\"eu/de/42\\""\n', 0),
    ("mystr", '"Grüße"\n', 0),
    ("LENGTH(mystr)", "5\n", 0),
    ("myint + 1", "42\n", 0),
    ("mybool AND myint > 40", "true\n", 0),
    ("subject LIKE 'eu/%' AND type IN ('order.created', 'order.paid')", "true\n", 0),
    ("EXISTS nothere", "false\n", 0),
    # AND, OR and XOR share one precedence and group to the right
    ("FALSE AND FALSE OR TRUE", "false\n", 0),
    ("TRUE = 'yes'", "false\n", 0),
    ("nothere = 1", "false\nerror: missingAttribute\n", 1),
    ("NOT (nothere LIKE 'a%')", "false\nerror: missingAttribute\n", 1),
    ("nothere + 1", "0\nerror: missingAttribute\n", 1),
    ("INT(code) > 1", "false\nerror: cast\n", 1),
    ("INT('abc')", "0\nerror: cast\n", 1),
    ("'a' + 1", "1\nerror: cast\n", 1),
    ("5 / 0", "0\nerror: math\n", 1),
    ("myint * 100000000", "2147483647\nerror: math\n", 1),
    ("ABS(-2147483647 - 1)", "2147483647\nerror: math\n", 1),
    ("SUBSTRING('hello', 10)", '""\nerror: functionEvaluation\n', 1),
    ("NOPE(1)", "false\nerror: missingFunction\n", 1),
]

# (expression, character position of the parse error)
PARSE_ERRORS = [("1 +", 3), ("type = 'x", 7), ("(myint > 1", 10), ("'é' =", 5), ("a == 1", 3)]


def run(args, url="http://127.0.0.1:9", stdin=None, timeout=60):
    env = dict(os.environ, HERALD_URL=url)
    return subprocess.run([HERALD_BIN] + list(args), input=stdin, capture_output=True, env=env,
                          timeout=timeout)


class CesqlCommand(unittest.TestCase):
    """No server: `herald cesql` evaluates locally. HERALD_URL points at a listening socket
    that must never see a connection."""

    def setUp(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.addCleanup(self.sock.close)

    def tearDown(self):
        with self.assertRaises(BlockingIOError):
            self.sock.accept()

    def cli(self, *args, stdin=None):
        return run(args, self.url, stdin)

    def test_eval_values_and_error_kinds(self):
        failures = []
        for expr, out, code in EVAL_CASES:
            r = self.cli("cesql", "eval", expr, "--event-json", EVENT_JSON)
            if (r.stdout.decode(), r.returncode) != (out, code):
                failures.append(f"{expr!r}: exit {r.returncode} stdout {r.stdout.decode()!r} "
                                f"stderr {r.stderr.decode()!r}; want exit {code} {out!r}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))

    def test_eval_json(self):
        types = {bool: "boolean", int: "integer", str: "string"}
        for expr, out, code in EVAL_CASES:
            r = self.cli("cesql", "eval", "--json", expr, "--event-json", EVENT_JSON)
            self.assertEqual(r.returncode, code, expr)
            lines = r.stdout.decode().splitlines()
            self.assertEqual(len(lines), 1, expr)
            doc = json.loads(lines[0])
            self.assertEqual(list(doc), ["result", "type", "error"])
            self.assertEqual(doc["type"], types[type(doc["result"])], expr)
            human = out.splitlines()
            want = json.loads(human[0]) if human[0] not in ("true", "false") else human[0] == "true"
            self.assertEqual(doc["result"], want, expr)
            self.assertEqual(doc["error"], human[1][len("error: "):] if len(human) > 1 else None)

    def test_parse_errors_exit_2_with_the_position(self):
        for expr, pos in PARSE_ERRORS:
            r = self.cli("cesql", "eval", expr, "--event-json", EVENT_JSON)
            self.assertEqual(r.returncode, 2, expr)
            self.assertEqual(r.stdout, b"")
            err = r.stderr.decode()
            self.assertIn("parse", err)
            self.assertIn(f"character {pos}", err, expr)
            r = self.cli("cesql", "eval", "--json", expr, "--event-json", EVENT_JSON)
            self.assertEqual(r.returncode, 2, expr)
            doc = json.loads(r.stdout)
            self.assertEqual((doc["result"], doc["type"], doc["error"], doc["position"]),
                             (None, None, "parse", pos), expr)
            self.assertIn(f"character {pos}", doc["message"])
        # a parse error is reported even without an event
        r = self.cli("cesql", "eval", "1 +")
        self.assertEqual(r.returncode, 2)
        self.assertIn("character 3", r.stderr.decode())

    def test_event_from_file_stdin_and_errors(self):
        fd, path = tempfile.mkstemp(prefix="herald-cesql-")
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, "w") as f:
            json.dump(EVENT, f)
        r = self.cli("cesql", "eval", "subject", "--event", path)
        self.assertEqual((r.returncode, r.stdout), (0, b'"eu/de/42"\n'))
        r = self.cli("cesql", "eval", "myint = 41", "--event", "-", stdin=EVENT_JSON.encode())
        self.assertEqual((r.returncode, r.stdout), (0, b"true\n"))
        # an expression starting with '-' after the options and --
        r = self.cli("cesql", "eval", "--event-json", EVENT_JSON, "--", "-myint")
        self.assertEqual((r.returncode, r.stdout), (0, b"-41\n"))
        for args, word in [(["cesql", "eval", "1"], "--event"),
                           (["cesql", "eval", "1", "--event", path, "--event-json", "{}"],
                            "--event"),
                           (["cesql", "eval", "1", "--event-json", "{not json"], "CloudEvent"),
                           (["cesql", "eval", "1", "--event-json", '{"specversion": "1.0"}'],
                            "CloudEvent"),
                           (["cesql", "eval", "1", "--event", "/nonexistent/ev.json"],
                            "/nonexistent/ev.json"),
                           (["cesql", "eval", "--event-json", EVENT_JSON], "missing argument"),
                           (["cesql", "eval", "1", "2", "--event-json", EVENT_JSON], "'2'"),
                           (["cesql", "eval", "1", "--bogus"], "--bogus"),
                           (["cesql"], "eval or check"),
                           (["cesql", "frobnicate"], "frobnicate"),
                           (["cesql", "check"], "missing argument")]:
            r = self.cli(*args)
            self.assertEqual(r.returncode, 2, f"{args}: {r.stderr!r}")
            self.assertIn(word, r.stderr.decode(), args)
            self.assertEqual(r.stdout, b"", args)

    def test_check(self):
        for expr in ("type = 'x'", "subject LIKE 'eu/%' AND INT(code) > 5", "TRUE",
                     "CONCAT_WS(',', a, b) = 'x'"):
            r = self.cli("cesql", "check", expr)
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"ok\n", b""), expr)
            r = self.cli("cesql", "check", "--json", expr)
            self.assertEqual((r.returncode, json.loads(r.stdout)), (0, {"valid": True}))
        for expr, kind, pos in [("1 +", "parse", 3), ("type = 'x", "parse", 7),
                                ("NOPE(type) = 1", "missingFunction", 0),
                                ("x = 1 AND LENGTH(a, b) = 2", "missingFunction", 10),
                                (" OR ".join(["type = 'x'"] * 400), "parse", None)]:
            r = self.cli("cesql", "check", expr)
            self.assertEqual(r.returncode, 2, expr)
            self.assertEqual(r.stdout, b"")
            self.assertIn(kind, r.stderr.decode())
            r = self.cli("cesql", "check", "--json", expr)
            self.assertEqual(r.returncode, 2, expr)
            doc = json.loads(r.stdout)
            self.assertEqual((doc["valid"], doc["error"]), (False, kind), expr)
            if pos is not None:
                self.assertEqual(doc["position"], pos, expr)
                self.assertIn(f"character {pos}", doc["message"])

    def test_help_everywhere(self):
        for args, word in [(["cesql", "--help"], "check"), (["help", "cesql"], "eval"),
                           (["cesql", "eval", "--help"], "--event-json"),
                           (["cesql", "eval", "-h"], "missingAttribute"),
                           (["help", "cesql", "check"], "position"),
                           (["cesql", "check", "--help"], "EXPR"),
                           (["--help"], "cesql"), (["tail", "--help"], "--filter")]:
            r = self.cli(*args)
            self.assertEqual(r.returncode, 0, f"{args}: {r.stderr!r}")
            out = r.stdout.decode()
            self.assertTrue(out.startswith("Usage: herald"), f"{args}: {out!r}")
            self.assertIn(word, out, args)


def hay(i, **kv):
    e = {"specversion": "1.0", "id": f"e{i}", "source": "/cli", "type": ["a", "b", "c"][i % 3],
         "n": i}
    if i % 4 != 3:
        e["subject"] = f"s/{i}"
    e.update(kv)
    return e


class TailFilter(HeraldTestCase):
    def tearDown(self):
        self.h.stop()  # a clean exit under the sanitizers

    def publish_batch(self, events, bus="default"):
        _, doc = self.h.json("POST", f"/v1/buses/{bus}/events", json.dumps(events),
                             {"Content-Type": "application/cloudevents-batch+json"}, expect=202)
        return doc["seqs"]

    def tail(self, *args, code=0):
        r = run(["tail", "--json", *args], self.h.url)
        self.assertEqual(r.returncode, code, f"tail {args}: {r.stderr!r}")
        return [json.loads(line) for line in r.stdout.decode().splitlines()]

    def test_pages(self):
        events = [hay(i) for i in range(40)]
        seqs = self.publish_batch(events)
        by_seq = dict(zip(seqs, events))

        def want(model):
            return [s for s in seqs if model(by_seq[s])]

        cases = [("type = 'b'", lambda e: e["type"] == "b"),
                 ("n % 5 = 0 OR NOT EXISTS subject", lambda e: e["n"] % 5 == 0 or "subject" not in e),
                 ("subject LIKE 's/1%' AND n > 10", lambda e: e.get("subject", "").startswith("s/1")
                  and e["n"] > 10),
                 ("n > 1000", lambda e: False)]
        for expr, model in cases:
            got = self.tail("--filter", expr)
            self.assertEqual([x["seq"] for x in got], want(model), expr)
            self.assertEqual([x["event"] for x in got], [by_seq[s] for s in want(model)])
        # --limit and --from combine with the filter
        b = want(cases[0][1])
        self.assertEqual([x["seq"] for x in self.tail("--filter", "type = 'b'", "--limit", "3")],
                         b[:3])
        self.assertEqual([x["seq"] for x in self.tail("--filter", "type = 'b'", "--from",
                                                      str(b[4]))], b[4:])
        # human output
        r = run(["tail", "--filter", "n = 7"], self.h.url)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertTrue(lines[0].startswith(f"{seqs[7]}  "), lines)
        self.assertIn("  b  /cli  e7", lines[0])

    def test_invalid_filter_is_a_usage_error_and_sends_nothing(self):
        for expr, word in [("n >", "character 3"), ("NOPE(n)", "NOPE"), ("", "character 0")]:
            r = run(["tail", "--filter", expr], self.h.url)
            self.assertEqual(r.returncode, 2, (expr, r.stderr))
            self.assertIn(word, r.stderr.decode())
            self.assertEqual(r.stdout, b"")
        r = run(["tail", "--filter", "TRUE", "--bus", "nosuchbus"], self.h.url)
        self.assertEqual(r.returncode, 1)
        self.assertIn("nosuchbus", r.stderr.decode())

    def test_pages_past_10000_examined_events(self):
        """A filtered page examines at most 10,000 events: tail keeps following `next` through
        empty pages, and still ends when the bus does."""
        self.h.json("PUT", "/v1/buses/big", {"fsync": "never"}, expect=201)
        total = 10050
        self.publish_batch([hay(0, id="needle-0")], bus="big")
        for start in range(1, total - 1, 1000):
            n = min(1000, total - 1 - start)
            self.publish_batch([hay(start + k) for k in range(n)], bus="big")
        self.publish_batch([hay(1, id="needle-1")], bus="big")
        got = self.tail("--bus", "big", "--filter", "id LIKE 'needle-%'")
        self.assertEqual([(x["seq"], x["event"]["id"]) for x in got],
                         [(1, "needle-0"), (total, "needle-1")])
        self.assertEqual(self.tail("--bus", "big", "--filter", "id = 'nowhere'"), [])
        got = self.tail("--bus", "big", "--filter", "id LIKE 'needle-%'", "--from", "2")
        self.assertEqual([x["seq"] for x in got], [total])


class FollowFilter(HeraldTestCase):
    def start_follow(self, *args):
        env = dict(os.environ, HERALD_URL=self.h.url)
        proc = subprocess.Popen([HERALD_BIN, "tail", "--follow", "--json", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        lines = queue.Queue()

        def reader():
            for line in proc.stdout:
                lines.put(line.decode())
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()

        def cleanup():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        self.addCleanup(cleanup)
        return proc, lines

    def next_line(self, lines, timeout):
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            return None
        self.assertIsNotNone(line, "tail --follow ended early")
        return json.loads(line)

    def publish(self, **attrs):
        e = {"specversion": "1.0", "source": "/f", "type": "t"}
        e.update(attrs)
        _, doc = self.h.json("POST", "/v1/buses/default/events", json.dumps(e),
                             {"Content-Type": "application/cloudevents+json"}, expect=202)
        return doc["seq"]

    def test_follow_prints_only_matching_events_and_resumes_filtered(self):
        self.publish(id="old", keep=True)  # before the tail: not shown
        proc, lines = self.start_follow("--filter", "keep")
        # publish until the tail shows something: it cannot tell when the tail has connected
        deadline = time.monotonic() + 30
        first = None
        k = 0
        while first is None:
            self.assertLess(time.monotonic(), deadline, "tail --follow --filter printed nothing")
            self.publish(id=f"skip-{k}", keep=False)
            self.publish(id=f"probe-{k}", keep=True)
            k += 1
            first = self.next_line(lines, 0.3)
        self.assertTrue(first["event"]["id"].startswith("probe-"), first)
        # drain the probes, then exactly the matching events follow
        last_probe = f"probe-{k - 1}"
        line = first
        while line["event"]["id"] != last_probe:
            line = self.next_line(lines, 10)
            self.assertIsNotNone(line)
            self.assertTrue(line["event"]["id"].startswith("probe-"), line)
        want = []
        for i in range(12):
            s = self.publish(id=f"x{i}", keep=i % 3 == 0, n=i)
            if i % 3 == 0:
                want.append((s, f"x{i}"))
        got = [self.next_line(lines, 10) for _ in want]
        self.assertEqual([(x["seq"], x["event"]["id"]) for x in got], want)

        # the server dies and comes back: the tail resumes after the last seq it printed,
        # with the filter still applied
        self.h.kill9()
        h2 = Herald(data_dir=self.h.data_dir, port=self.h.port)
        self.addCleanup(h2.cleanup)
        h2.start()
        self.h = h2
        self.publish(id="after-skip", keep=False)
        s = self.publish(id="after-keep", keep=True)
        line = self.next_line(lines, 40)
        self.assertIsNotNone(line, "tail --follow --filter did not resume after the restart")
        self.assertEqual((line["seq"], line["event"]["id"]), (s, "after-keep"))

        proc.terminate()
        self.assertEqual(proc.wait(timeout=15), 0)
        h2.stop()

    def test_follow_from_seq_with_filter_and_limit(self):
        for i in range(6):
            self.publish(id=f"old-{i}", n=i)
        proc, lines = self.start_follow("--from", "1", "--filter", "n % 2 = 1", "--limit", "4")
        got = [self.next_line(lines, 20) for _ in range(3)]
        self.assertEqual([x["event"]["id"] for x in got], ["old-1", "old-3", "old-5"])
        self.publish(id="new-6", n=6)
        self.publish(id="new-7", n=7)
        self.assertEqual(self.next_line(lines, 20)["event"]["id"], "new-7")
        self.assertEqual(proc.wait(timeout=15), 0)  # --limit 4 reached
        self.h.stop()


if __name__ == "__main__":
    unittest.main()
