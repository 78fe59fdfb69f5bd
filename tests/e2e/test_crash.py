# SPDX-License-Identifier: MIT
"""kill -9 under load: what herald acknowledged survives a crash, exactly once and intact.

DESIGN.md §2.1: an event acknowledged with 2xx is durable and survives kill -9. A process crash
(unlike power loss) keeps whatever was write()n to the page cache, so this holds for every fsync
policy, `always`, `interval` and `never`; each gets its own round set.

Each round: start herald on the same data directory, let 8 publisher threads (keep-alive
connections; binary, structured and small batches; every event with a unique id and distinctive
data) run, and send SIGKILL at a random moment 50-400 ms after the first acknowledgements. A
publisher records each event acknowledged with 202 together with its seq and exact content; an
event whose request failed or whose connection died is "unknown". After the restart:
- the log's seqs run from 1 to the last without a gap, and no (source, id) appears twice;
- every acknowledged event is at its acknowledged seq with identical attributes and data;
- every unknown event is either absent or present once with the right content, and an unknown
  batch is all there or not at all (batches are atomic);
- nothing that was never sent appears;
- a new publish gets the next seq.
"""
import base64
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Herald, wait_for  # noqa: E402

THREADS = 8


def pct_encode(s):
    """HTTP binding §3.1.3.2: percent-encode space, '"', '%' and bytes outside 0x21-0x7E."""
    return "".join("%%%02X" % b if b in (0x20, 0x22, 0x25) or b < 0x21 or b > 0x7E else chr(b)
                   for b in s.encode("utf-8"))


class Ledger:
    """What the publishers know: acknowledged events by key, unknown requests, errors."""

    def __init__(self):
        self.mu = threading.Lock()
        self.acked = {}      # (source, id) -> (seq, expected event)
        self.unknown = []    # [[(source, id, expected event), ...]] one list per request
        self.errors = []
        self.round_acks = 0

    def key(self, ev):
        return (ev["source"], ev["id"])


class Publisher(threading.Thread):
    def __init__(self, port, bus, rnd, tid, ledger, stop, rng_seed):
        super().__init__(daemon=True)
        self.port, self.bus, self.rnd, self.tid = port, bus, rnd, tid
        self.ledger, self.stop = ledger, stop
        self.rng = random.Random(rng_seed)
        self.k = 0

    def new_event(self):
        """(the event as herald must return it, how to send it: 'json' | 'text' | 'bytes')."""
        self.k += 1
        rng = self.rng
        ev = {"specversion": "1.0", "id": f"r{self.rnd}-t{self.tid}-{self.k}",
              "source": f"/crash/{self.bus}/t{self.tid}", "type": "com.example.crash"}
        if rng.random() < 0.5:
            ev["subject"] = f"orders/{self.tid} 🛒 \"{self.k}\" 100%"
        if rng.random() < 0.3:
            ev["time"] = "2026-01-02T03:04:05.%06dZ" % rng.randrange(1000000)
        if rng.random() < 0.4:
            ev["crashround"] = str(self.rnd)
        kind = rng.choice(("json", "json", "text", "bytes"))
        blob = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789é€") for _ in
                       range(rng.randrange(1, 600)))
        if kind == "json":
            ev["datacontenttype"] = "application/json"
            ev["data"] = {"r": self.rnd, "t": self.tid, "k": self.k, "blob": blob,
                          "n": rng.random(), "list": [1, None, True, "x"]}
        elif kind == "text":
            ev["datacontenttype"] = "text/plain; charset=utf-8"
            ev["data"] = f"event {self.k} of t{self.tid}: {blob}\n"
        else:
            ev["datacontenttype"] = "application/octet-stream"
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 900)))
            ev["data_base64"] = base64.b64encode(raw).decode()
        return ev

    def request_for(self, evs, mode):
        if mode == "batch":
            return json.dumps(evs).encode(), {
                "Content-Type": "application/cloudevents-batch+json"}
        ev = evs[0]
        if mode == "structured":
            return json.dumps(ev).encode(), {"Content-Type": "application/cloudevents+json"}
        headers = {"Content-Type": ev["datacontenttype"]}
        for k, v in ev.items():
            if k not in ("data", "data_base64", "datacontenttype"):
                headers["ce-" + k] = pct_encode(v)
        if "data" in ev:
            body = (json.dumps(ev["data"]) if isinstance(ev["data"], dict) else ev["data"]).encode()
        else:
            body = base64.b64decode(ev["data_base64"])
        return body, headers

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        path = f"/v1/buses/{self.bus}/events"
        try:
            while not self.stop.is_set():
                mode = self.rng.choice(("binary", "binary", "structured", "batch"))
                evs = [self.new_event() for _ in range(self.rng.randrange(2, 6)
                                                      if mode == "batch" else 1)]
                body, headers = self.request_for(evs, mode)
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    r = conn.getresponse()
                    resp = r.read()
                except (OSError, http.client.HTTPException):
                    with self.ledger.mu:
                        self.ledger.unknown.append(evs)
                    return  # the server is gone
                if r.status == 503:  # overloaded: nothing stored, by the API contract
                    continue
                if r.status != 202:
                    with self.ledger.mu:
                        self.ledger.errors.append(f"{mode} publish: {r.status} {resp[:300]!r}")
                    return
                doc = json.loads(resp)
                seqs = doc["seqs"] if mode == "batch" else [doc["seq"]]
                with self.ledger.mu:
                    if doc.get("duplicate") or doc.get("duplicates") or len(seqs) != len(evs):
                        self.ledger.errors.append(f"unexpected answer {doc} for {len(evs)} events")
                        return
                    for ev, seq in zip(evs, seqs):
                        self.ledger.acked[self.ledger.key(ev)] = (seq, ev)
                    self.ledger.round_acks += len(evs)
        finally:
            conn.close()


class TestKill9UnderLoad(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="herald-crash-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.mkdir(os.path.join(self.dir, "data"))
        self.h = Herald(data_dir=os.path.join(self.dir, "data"))
        self.addCleanup(self.h.cleanup)
        self.seed = int(os.environ.get("HERALD_CRASH_SEED", random.randrange(1 << 30)))
        self.rng = random.Random(self.seed)

    def fail_with_log(self, msg):
        self.fail(f"{msg}\n(seed {self.seed}; herald log tail:)\n{self.h.tail_log()}")

    def verify(self, bus, ledger):
        """Checks the bus's log against the ledger; returns the last seq."""
        recs = self.h.read_all(bus)
        seqs = [r["seq"] for r in recs]
        if seqs != list(range(1, len(recs) + 1)):
            gaps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1][:5]
            self.fail_with_log(f"seqs are not 1..{len(recs)} without gaps: first breaks {gaps}, "
                               f"starts at {seqs[:1]}")
        by_key = {}
        for r in recs:
            ev = r["event"]
            k = (ev.get("source"), ev.get("id"))
            if k in by_key:
                self.fail_with_log(f"event {k} stored twice, at seqs {by_key[k]['seq']} and "
                                   f"{r['seq']}")
            by_key[k] = r
        known = set()
        for k, (seq, ev) in ledger.acked.items():
            known.add(k)
            r = by_key.get(k)
            if r is None:
                self.fail_with_log(f"acknowledged event {k} (seq {seq}) is missing after kill -9")
            if r["seq"] != seq:
                self.fail_with_log(f"acknowledged event {k} was at seq {seq}, now at {r['seq']}")
            if r["event"] != ev:
                self.fail_with_log(f"acknowledged event {k} at seq {seq} changed:\n sent "
                                   f"{json.dumps(ev)[:600]}\n got  {json.dumps(r['event'])[:600]}")
        for evs in ledger.unknown:
            present = [by_key.get((ev["source"], ev["id"])) for ev in evs]
            for ev, r in zip(evs, present):
                known.add((ev["source"], ev["id"]))
                if r is not None and r["event"] != ev:
                    self.fail_with_log(f"unknown event {ev['id']} stored with other content:\n"
                                       f" sent {json.dumps(ev)[:600]}\n got  "
                                       f"{json.dumps(r['event'])[:600]}")
            if len(evs) > 1 and any(present) and not all(present):
                self.fail_with_log(f"batch partially stored: {[ev['id'] for ev in evs]} -> "
                                   f"{[r and r['seq'] for r in present]}")
        strangers = [k for k in by_key if k not in known]
        if strangers:
            self.fail_with_log(f"events nobody sent are in the log: {strangers[:5]}")
        return len(recs)

    def probe(self, bus, ledger, rnd, expect_seq):
        """A new publish after the restart continues the sequence."""
        ev = {"specversion": "1.0", "id": f"probe-{rnd}", "source": f"/crash/{bus}/probe",
              "type": "com.example.crash.probe", "datacontenttype": "application/json",
              "data": {"round": rnd}}
        st, _, body = self.h.http("POST", f"/v1/buses/{bus}/events", json.dumps(ev),
                                  {"Content-Type": "application/cloudevents+json"})
        if st != 202:
            self.fail_with_log(f"publish after restart: {st} {body[:300]!r}")
        seq = json.loads(body)["seq"]
        self.assertEqual(seq, expect_seq, "the sequence does not continue after the restart")
        ledger.acked[(ev["source"], ev["id"])] = (seq, ev)

    def run_rounds(self, bus, config, rounds):
        ledger = Ledger()
        self.h.start()
        if bus != "default":
            self.h.json("PUT", f"/v1/buses/{bus}", config, expect=201)
            _, doc = self.h.json("GET", f"/v1/buses/{bus}", expect=200)
            self.assertEqual(doc["fsync"], config["fsync"])
        total_unknown = 0
        t0 = time.monotonic()
        for rnd in range(rounds):
            ledger.round_acks = 0
            stop = threading.Event()
            pubs = [Publisher(self.h.port, bus, rnd, t, ledger, stop, self.rng.random())
                    for t in range(THREADS)]
            for p in pubs:
                p.start()
            try:
                wait_for(lambda: ledger.round_acks >= THREADS or ledger.errors, timeout=60,
                         what="first acknowledgements of the round")
                # the random moment of the crash: the point of the test, not a wait
                stop.wait(self.rng.uniform(0.05, 0.4))
            finally:
                self.h.kill9()
                stop.set()
                for p in pubs:
                    p.join(30)
            self.assertFalse(any(p.is_alive() for p in pubs), "a publisher hung after kill -9")
            self.assertEqual(ledger.errors, [], f"seed {self.seed}")
            total_unknown += sum(len(u) for u in ledger.unknown if u[0]["id"].startswith(f"r{rnd}-"))
            self.h.start()
            last = self.verify(bus, ledger)
            self.probe(bus, ledger, rnd, last + 1)
        # a graceful stop and start keeps everything too
        self.h.stop()
        self.h.start()
        last = self.verify(bus, ledger)
        self.probe(bus, ledger, rounds, last + 1)
        self.h.stop()
        acked = len(ledger.acked) - rounds - 1
        print(f"\n{bus} ({config.get('fsync', 'always')}): {rounds} rounds in "
              f"{time.monotonic() - t0:.1f}s, {acked} events acknowledged, {total_unknown} unknown, "
              f"log {last + 1} events, seed {self.seed}", file=sys.stderr)
        self.assertGreaterEqual(acked, rounds * THREADS)

    def test_kill9_fsync_always(self):
        self.run_rounds("default", {"fsync": "always"}, 20)

    def test_kill9_fsync_never(self):
        self.run_rounds("lazy", {"fsync": "never"}, 8)

    def test_kill9_fsync_interval(self):
        self.run_rounds("periodic", {"fsync": "interval", "fsync_interval": "PT0.05S"}, 6)


if __name__ == "__main__":
    unittest.main()
