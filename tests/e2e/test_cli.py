# SPDX-License-Identifier: MIT
"""End-to-end tests of the `herald` command-line client (publish, tail, bus) against a real
`herald serve` on loopback: what a user and a script rely on -- the output, the exact data that
comes back, and the exit codes (0 ok, 1 server error, 2 usage error, 3 unreachable).

Run by ctest with HERALD_BIN set; Python 3 standard library only.
"""
import base64
import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HERALD_BIN, Herald, HeraldTestCase, free_port  # noqa: E402

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def exact(line):
    """Parses JSON keeping every number as its exact text, to check data byte for byte."""
    return json.loads(line, parse_float=str, parse_int=str)


def data_bytes(event):
    """The data of a structured event as bytes, whichever member carries it."""
    if "data_base64" in event:
        return base64.b64decode(event["data_base64"])
    return event["data"].encode()


def run(args, url, stdin=None, timeout=60):
    env = dict(os.environ, HERALD_URL=url)
    return subprocess.run([HERALD_BIN] + list(args), input=stdin, capture_output=True, env=env,
                          timeout=timeout)


class CliCase(HeraldTestCase):
    """One fresh server per test; helpers that run the CLI against it."""

    def cli(self, *args, stdin=None):
        return run(args, self.h.url, stdin)

    def ok(self, *args, stdin=None):
        r = self.cli(*args, stdin=stdin)
        self.assertEqual(r.returncode, 0, f"herald {' '.join(args)}: {r.stderr.decode()}")
        return r.stdout.decode()

    def fails(self, code, *args, stdin=None):
        r = self.cli(*args, stdin=stdin)
        self.assertEqual(r.returncode, code,
                         f"herald {' '.join(args)}: stdout {r.stdout!r} stderr {r.stderr!r}")
        return r.stderr.decode()

    def tail(self, *args):
        """`herald tail --json`: one envelope per line, numbers kept as text."""
        out = self.ok("tail", "--json", *args)
        self.assertTrue(out == "" or out.endswith("\n"))
        return [exact(line) for line in out.splitlines()]

    def server_error(self, method, path, body=None, headers=None):
        """The `error` message the server itself answers to a request."""
        status, _, data = self.h.http(method, path, body, headers)
        self.assertGreaterEqual(status, 400)
        return json.loads(data)["error"]

    def write_tmp(self, data):
        fd, path = tempfile.mkstemp(prefix="herald-cli-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        self.addCleanup(os.unlink, path)
        return path


class PublishAndTail(CliCase):
    def test_binary_and_structured_round_trip_exact_data(self):
        data = '{"id": 1, "price": 1.50, "big": 12345678901234567890, "s": "caf\\u00e9"}'
        self.assertEqual(self.ok("publish", "--type", "t.bin", "--source", "/cli", "--id", "b1",
                                 "--data", data), "published seq 1\n")
        self.assertEqual(self.ok("publish", "--type", "t.st", "--source", "/cli", "--id", "s1",
                                 "--data", data, "--mode", "structured"), "published seq 2\n")
        self.assertEqual(self.ok("publish", "--type", "t.txt", "--source", "/cli", "--id", "b2",
                                 "--data", "hello wörld"), "published seq 3\n")
        self.assertEqual(self.ok("publish", "--type", "t.txt", "--source", "/cli", "--id", "s2",
                                 "--data", "plain text", "--mode", "structured"),
                         "published seq 4\n")
        self.assertEqual(self.ok("publish", "--type", "t.none", "--source", "/cli", "--id", "n1"),
                         "published seq 5\n")

        events = self.tail()
        self.assertEqual([e["seq"] for e in events], ["1", "2", "3", "4", "5"])
        want_json = {"id": "1", "price": "1.50", "big": "12345678901234567890", "s": "café"}
        for env in events:
            self.assertRegex(env["ingested"], RFC3339)
        for env in events[:2]:
            self.assertEqual(env["event"]["data"], want_json)
            self.assertEqual(env["event"]["datacontenttype"], "application/json")
            self.assertEqual(env["event"]["specversion"], "1.0")
            self.assertEqual(env["event"]["source"], "/cli")
        self.assertEqual([e["event"]["type"] for e in events], ["t.bin", "t.st", "t.txt",
                                                                "t.txt", "t.none"])
        self.assertEqual(events[2]["event"]["data"], "hello wörld")
        self.assertEqual(events[3]["event"]["data"], "plain text")
        self.assertEqual(events[2]["event"]["datacontenttype"], "text/plain")
        self.assertEqual(events[3]["event"]["datacontenttype"], "text/plain")
        self.assertNotIn("data", events[4]["event"])
        self.assertNotIn("data_base64", events[4]["event"])
        # The JSON data comes back as the exact text that was published (here: same bytes).
        raw = self.ok("tail", "--json", "--limit", "1")
        self.assertIn(data, raw)

    def test_attributes_extensions_and_encodings(self):
        subject = 'café 50% "off" / ok ☃ \u00e9'
        common = ["--type", "com.example.enc", "--source", "urn:x:1", "--subject", subject,
                  "--time", "2026-01-02T03:04:05.5+01:00",
                  "--dataschema", "https://example.com/s.json",
                  "--ext", "region=eu-west-1", "--ext", "note=a b%c \"q\" é"]
        self.ok("publish", "--id", "e1", *common)
        self.ok("publish", "--id", "e2", "--mode", "structured", *common)
        blob = bytes(range(256))
        path = self.write_tmp(blob)
        self.ok("publish", "--type", "bin", "--source", "/f", "--id", "f1", "--file", path)
        self.ok("publish", "--type", "bin", "--source", "/f", "--id", "f2", "--file", path,
                "--mode", "structured")
        self.ok("publish", "--type", "stdin", "--source", "/f", "--id", "i1", "--file", "-",
                stdin=b"from stdin")
        self.ok("publish", "--type", "xml", "--source", "/f", "--id", "x1", "--data", "<a/>",
                "--datacontenttype", "application/xml")

        ev = [e["event"] for e in self.tail()]
        self.assertEqual(len(ev), 6)
        for e in ev[:2]:
            self.assertEqual(e["subject"], subject)
            self.assertEqual(e["time"], "2026-01-02T03:04:05.5+01:00")
            self.assertEqual(e["dataschema"], "https://example.com/s.json")
            self.assertEqual(e["region"], "eu-west-1")
            self.assertEqual(e["note"], 'a b%c "q" é')
        for e in ev[2:4]:
            self.assertEqual(e["datacontenttype"], "application/octet-stream")
            self.assertEqual(base64.b64decode(e["data_base64"]), blob)
        self.assertEqual(ev[4]["data"], "from stdin")
        self.assertEqual(ev[5]["datacontenttype"], "application/xml")
        self.assertEqual(data_bytes(ev[5]), b"<a/>")

    def test_duplicate_answers_the_original_seq(self):
        args = ["publish", "--type", "t", "--source", "/dup", "--id", "dup-1", "--data", "x"]
        self.assertEqual(self.ok(*args), "published seq 1\n")
        self.assertEqual(self.ok(*args), "duplicate of seq 1\n")
        self.assertEqual(self.ok(*args, "--mode", "structured"), "duplicate of seq 1\n")
        doc = json.loads(self.ok(*args, "--json"))
        self.assertEqual(doc["seq"], 1)
        self.assertIs(doc["duplicate"], True)
        # The same id from another source is another event.
        self.assertEqual(self.ok("publish", "--type", "t", "--source", "/other", "--id", "dup-1"),
                         "published seq 2\n")
        self.assertEqual(len(self.tail()), 2)

    def test_default_ids_are_unique_uuids(self):
        for _ in range(3):
            self.ok("publish", "--type", "t", "--source", "/u")
        ids = [e["event"]["id"] for e in self.tail()]
        self.assertEqual(len(set(ids)), 3)
        for i in ids:
            self.assertRegex(i, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                r"[0-9a-f]{12}$")

    def test_batch(self):
        batch = [{"specversion": "1.0", "id": f"b{i}", "source": "/batch", "type": "t",
                  "data": {"n": i}} for i in range(3)]
        path = self.write_tmp(json.dumps(batch).encode())
        self.assertEqual(self.ok("publish", "--batch", path), "published 3 events: seqs 1-3\n")
        more = [{"specversion": "1.0", "id": "b9", "source": "/batch", "type": "t"},
                {"specversion": "1.0", "id": "b10", "source": "/batch", "type": "t"}]
        doc = json.loads(self.ok("publish", "--batch", "-", "--json",
                                 stdin=json.dumps(more).encode()))
        self.assertEqual(doc["seqs"], [4, 5])
        # A batch holding an event already stored: the original seq comes back for it.
        again = [batch[0], {"specversion": "1.0", "id": "b11", "source": "/batch", "type": "t"}]
        self.assertEqual(self.ok("publish", "--batch", "-", stdin=json.dumps(again).encode()),
                         "published 1 event: seq 6; 1 duplicate of seq 1\n")
        # A bad event fails the whole batch, with the server's message.
        bad = [{"specversion": "1.0", "id": "ok", "source": "/batch", "type": "t"},
               {"specversion": "1.0", "id": "bad", "type": "t"}]
        err = self.fails(1, "publish", "--batch", "-", stdin=json.dumps(bad).encode())
        msg = self.server_error("POST", "/v1/buses/default/events", json.dumps(bad),
                                {"Content-Type": "application/cloudevents-batch+json"})
        self.assertEqual(err, f"herald: {msg}\n")
        events = self.tail()
        self.assertEqual([e["seq"] for e in events], ["1", "2", "3", "4", "5", "6"])
        self.assertEqual(events[1]["event"]["data"], {"n": "1"})
        # --batch sends the file as is, so event options make no sense with it.
        self.fails(2, "publish", "--batch", path, "--type", "t")

    def test_unknown_bus(self):
        err = self.fails(1, "publish", "--bus", "nosuch", "--type", "t", "--source", "/s",
                         "--id", "1", "--data", "x")
        msg = self.server_error("POST", "/v1/buses/nosuch/events", "x",
                                {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s",
                                 "ce-type": "t", "Content-Type": "text/plain"})
        self.assertEqual(err, f"herald: {msg}\n")
        self.assertTrue(self.fails(1, "tail", "--bus", "nosuch").startswith("herald: "))
        self.assertTrue(self.fails(1, "tail", "--bus", "nosuch", "--follow")
                        .startswith("herald: "))

    def test_tail_human_lines(self):
        self.ok("publish", "--type", "com.example.a", "--source", "/h", "--id", "h1",
                "--data", '{"a": 1, "b": [1, 2]}')
        self.ok("publish", "--type", "t", "--source", "/h", "--id", "h2", "--data", "x" * 200)
        self.ok("publish", "--type", "t", "--source", "/h", "--id", "h3",
                "--file", self.write_tmp(b"\x00\xff\x10" * 10))
        self.ok("publish", "--type", "t", "--source", "/h", "--id", "h4", "--data", "a\nb")
        self.ok("publish", "--type", "t", "--source", "/h", "--id", "h5")
        lines = self.ok("tail").splitlines()
        self.assertEqual(len(lines), 5)
        rows = [line.split("  ") for line in lines]
        self.assertEqual(rows[0][0], "1")
        self.assertRegex(rows[0][1], RFC3339)
        self.assertEqual(rows[0][2:], ["com.example.a", "/h", "h1", '{"a":1,"b":[1,2]}'])
        self.assertEqual(rows[1][5], "x" * 80 + "...")
        self.assertEqual(rows[2][5], "<30 bytes>")
        self.assertEqual(rows[3][5], "a\\nb")
        self.assertEqual(rows[4][2:], ["t", "/h", "h5"])

    def test_tail_pages_limit_and_start(self):
        n = 1205  # more than one page of 1000
        batch = [{"specversion": "1.0", "id": str(i), "source": "/p", "type": "t", "data": i}
                 for i in range(n)]
        self.assertEqual(self.ok("publish", "--batch", self.write_tmp(json.dumps(batch).encode())),
                         f"published {n} events: seqs 1-{n}\n")
        events = self.tail()
        self.assertEqual([int(e["seq"]) for e in events], list(range(1, n + 1)))
        self.assertEqual([e["event"]["data"] for e in events], [str(i) for i in range(n)])
        self.assertEqual([e["seq"] for e in self.tail("--limit", "3")], ["1", "2", "3"])
        self.assertEqual([int(e["seq"]) for e in self.tail("--from", "1200")],
                         list(range(1200, n + 1)))
        self.assertEqual([e["seq"] for e in self.tail("--from", "1203", "--limit", "2")],
                         ["1203", "1204"])
        self.assertEqual(len(self.ok("tail", "--limit", "1001").splitlines()), 1001)

    def test_tail_from_time(self):
        for i in range(3):
            self.ok("publish", "--type", "t", "--source", "/ft", "--id", str(i))
        events = self.tail()
        t2 = events[1]["ingested"]
        if t2 == events[0]["ingested"]:
            self.skipTest("two events share an ingest time")
        self.assertEqual([e["seq"] for e in self.tail("--from-time", t2)], ["2", "3"])


class Buses(CliCase):
    def test_bus_lifecycle(self):
        self.assertEqual(self.ok("bus", "create", "orders", "--fsync", "never",
                                 "--retention-age", "P7D", "--retention-bytes", "1048576",
                                 "--dedup-window", "PT5M"), "created bus orders\n")
        doc = json.loads(self.ok("bus", "get", "orders", "--json"))
        self.assertEqual(doc["name"], "orders")
        self.assertEqual(doc["fsync"], "never")
        self.assertEqual(doc["retention"], {"max_age": "P7D", "max_bytes": 1048576})
        self.assertEqual(doc["dedup_window"], "PT5M")
        self.assertEqual(self.ok("bus", "create", "orders", "--fsync", "always"),
                         "updated bus orders\n")
        doc = json.loads(self.ok("bus", "get", "orders", "--json"))
        self.assertEqual(doc["fsync"], "always")  # an update changes only what it names
        self.assertEqual(doc["retention"], {"max_age": "P7D", "max_bytes": 1048576})
        self.ok("bus", "create", "orders", "--retention-age", "none")
        doc = json.loads(self.ok("bus", "get", "orders", "--json"))
        self.assertEqual(doc["retention"], {"max_age": None, "max_bytes": 1048576})

        fields = dict(re.split(r"\s{2,}", line, maxsplit=1)
                      for line in self.ok("bus", "get", "orders").splitlines())
        self.assertEqual(fields["name"], "orders")
        self.assertEqual(fields["fsync"], "always")

        listing = self.ok("bus", "list").splitlines()
        self.assertEqual(listing[0].split()[:3], ["NAME", "EVENTS", "FIRST"])
        self.assertEqual(sorted(line.split()[0] for line in listing[1:]), ["default", "orders"])
        names = [b["name"] for b in json.loads(self.ok("bus", "list", "--json"))["buses"]]
        self.assertEqual(sorted(names), ["default", "orders"])

        self.assertEqual(self.ok("--bus", "orders", "publish", "--type", "t", "--source", "/o",
                                 "--data", "1"), "published seq 1\n")
        row = [line.split() for line in self.ok("bus", "list").splitlines()
               if line.startswith("orders ")][0]
        self.assertEqual(row[1:4], ["1", "1", "1"])  # events, first, last

        # A bus holding events is only deleted with --force; the server says why.
        msg = self.server_error("DELETE", "/v1/buses/orders")
        r = self.cli("bus", "delete", "orders")
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode().splitlines()
        self.assertEqual(err[0], f"herald: {msg}")
        self.assertIn("--force", err[1])  # the CLI's name for the server's ?force=true
        self.assertEqual(r.stdout, b"")
        self.assertEqual(len(self.tail("--bus", "orders")), 1)
        self.assertEqual(self.ok("bus", "delete", "orders", "--force"), "deleted bus orders\n")
        self.assertTrue(self.fails(1, "bus", "get", "orders").startswith("herald: "))
        self.assertTrue(self.fails(1, "bus", "delete", "default").startswith("herald: "))

        self.assertEqual(self.ok("bus", "create", "empty"), "created bus empty\n")
        self.assertEqual(self.ok("bus", "delete", "empty"), "deleted bus empty\n")

    def test_bus_errors(self):
        self.assertTrue(self.fails(1, "bus", "create", "Bad Name").startswith("herald: "))
        self.fails(2, "bus", "create", "x", "--fsync", "sometimes")
        self.fails(2, "bus", "create", "x", "--retention-age", "7 days")
        self.fails(2, "bus", "create")
        self.fails(2, "bus", "frobnicate")
        self.assertEqual(self.fails(1, "bus", "create", "Bad Name", "--json")[:8], "herald: ")


class Follow(CliCase):
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
        return exact(line)

    def publish(self, ident):
        self.ok("publish", "--type", "live", "--source", "/f", "--id", ident, "--data", ident)

    def test_follow_receives_live_events_and_resumes_after_restart(self):
        self.publish("before")  # already stored: not shown by a live tail
        proc, lines = self.start_follow()

        # Publish until the tail shows something; it cannot know when the tail has connected.
        published, got = [], []
        deadline = time.monotonic() + 30
        while not got:
            self.assertLess(time.monotonic(), deadline, "tail --follow printed nothing")
            published.append(f"live-{len(published)}")
            self.publish(published[-1])
            line = self.next_line(lines, 0.3)
            if line:
                got.append(line)
        # Events published before the tail started are not shown; the rest are, in order.
        while got[-1]["event"]["id"] != published[-1]:
            line = self.next_line(lines, 10)
            self.assertIsNotNone(line, f"missing events: got {got}, published {published}")
            got.append(line)
        ids = [e["event"]["id"] for e in got]
        self.assertNotIn("before", ids)
        # What it shows is every event from some point on, in order, each once.
        self.assertEqual(ids, published[len(published) - len(ids):])
        seqs = [int(e["seq"]) for e in got]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        self.assertEqual(got[0]["event"]["data"], ids[0])

        # The server dies and comes back: the tail resumes after the last seq it printed.
        self.h.kill9()
        h2 = Herald(data_dir=self.h.data_dir, port=self.h.port)
        self.addCleanup(h2.cleanup)
        h2.start()
        self.publish("after-restart")
        line = self.next_line(lines, 40)
        self.assertIsNotNone(line, "tail --follow did not resume after the server restarted")
        self.assertEqual(line["event"]["id"], "after-restart")
        self.assertEqual(int(line["seq"]), seqs[-1] + 1)

        proc.terminate()
        self.assertEqual(proc.wait(timeout=15), 0)
        h2.stop()

    def test_follow_from_seq_and_limit(self):
        for i in range(3):
            self.publish(f"old-{i}")
        proc, lines = self.start_follow("--from", "2", "--limit", "4")
        got = [self.next_line(lines, 20), self.next_line(lines, 20)]
        self.assertEqual([e["event"]["id"] for e in got], ["old-1", "old-2"])
        self.publish("new-0")
        self.publish("new-1")
        self.publish("new-2")
        got = [self.next_line(lines, 20), self.next_line(lines, 20)]
        self.assertEqual([e["event"]["id"] for e in got], ["new-0", "new-1"])
        self.assertEqual(proc.wait(timeout=15), 0)  # --limit 4 reached


class WithoutServer(unittest.TestCase):
    def test_help_everywhere(self):
        url = "http://127.0.0.1:9"
        for args, word in [(["--help"], "publish"), (["-h"], "tail"), (["help"], "bus"),
                           (["publish", "--help"], "--datacontenttype"),
                           (["publish", "-h"], "--batch"),
                           (["help", "publish"], "--mode"),
                           (["tail", "--help"], "--follow"),
                           (["bus", "--help"], "delete"),
                           (["bus", "create", "--help"], "--retention-age"),
                           (["bus", "list", "-h"], "--json"),
                           (["bus", "get", "--help"], "NAME"),
                           (["bus", "delete", "--help"], "--force"),
                           (["help", "bus", "delete"], "--force")]:
            r = run(args, url)
            self.assertEqual(r.returncode, 0, f"{args}: {r.stderr!r}")
            out = r.stdout.decode()
            self.assertTrue(out.startswith("Usage: herald"), f"{args}: {out!r}")
            self.assertIn(word, out, args)
        r = run([], url)
        self.assertEqual(r.returncode, 2)
        self.assertIn("Usage: herald", r.stderr.decode())

    def test_usage_errors_send_nothing(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            s.setblocking(False)
            url = "http://127.0.0.1:%d" % s.getsockname()[1]
            for args, word in [(["publish", "--type", "t"], "--source"),
                               (["publish", "--type", "t", "--source", "s", "--bogus"], "--bogus"),
                               (["publish", "--type", "t", "--source", "s", "--mode", "x"],
                                "--mode"),
                               (["publish", "--type", "t", "--source", "s", "--data", "x",
                                 "--file", "y"], "--file"),
                               (["publish", "--type", "t", "--source", "s", "--ext", "BAD=1"],
                                "--ext"),
                               (["publish", "--type", "t", "--source", "s", "--time", "noon"],
                                "--time"),
                               (["publish", "--type", "t", "--source", "s", "--file",
                                 "/nonexistent/file"], "/nonexistent/file"),
                               (["publish", "--type"], "--type"),
                               (["tail", "--limit", "many"], "--limit"),
                               (["tail", "--from", "1", "--from-time", "2026-01-01T00:00:00Z"],
                                "--from"),
                               (["bus", "get"], "NAME"),
                               (["frobnicate"], "frobnicate"),
                               (["--server", "localhost:8088", "bus", "list"], "http://")]:
                r = run(args, url)
                self.assertEqual(r.returncode, 2, f"{args}: {r.stderr!r}")
                self.assertIn(word, r.stderr.decode(), args)
                self.assertEqual(r.stdout, b"")
            with self.assertRaises(BlockingIOError):
                s.accept()

    def test_unreachable_server(self):
        url = "http://127.0.0.1:%d" % free_port()  # nothing listens there
        for args in (["publish", "--type", "t", "--source", "/s", "--data", "x"],
                     ["tail"], ["tail", "--follow"], ["bus", "list"], ["bus", "create", "b"]):
            r = run(args, url)
            self.assertEqual(r.returncode, 3, f"{args}: {r.stderr!r}")
            self.assertIn(url, r.stderr.decode())
        # --server wins over HERALD_URL.
        r = run(["--server", url, "bus", "list"], "http://127.0.0.1:1")
        self.assertEqual(r.returncode, 3)
        self.assertIn(url, r.stderr.decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
