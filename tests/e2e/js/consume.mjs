// SPDX-License-Identifier: MIT
// Reads a bus back from herald (GET /v1/buses/{bus}/events, following `next`) and parses every
// stored event with the official CloudEvents JavaScript SDK as a structured-mode message
// (HTTP.toEvent), then validates it against the SDK's CloudEvents 1.0 schema.
//
// usage: node consume.mjs BASE_URL BUS
// Prints {"events": [{"seq", "valid", "error", "attrs": {...}, "data_kind", "data"}]}: the SDK's
// view of each event (attributes and extensions; data as JSON, text, or base64 of the bytes).
import { CloudEvent, HTTP } from "cloudevents";

async function main() {
  const [base, bus] = process.argv.slice(2);
  if (!base || !bus) throw new Error("usage: node consume.mjs BASE_URL BUS");
  const out = [];
  let from = 1;
  for (let page = 0; page < 1000; page++) {
    const res = await fetch(`${base}/v1/buses/${bus}/events?from=${from}&limit=1000`);
    if (res.status !== 200) throw new Error(`GET events: ${res.status} ${await res.text()}`);
    const doc = await res.json();
    if (doc.events.length === 0) break;
    for (const rec of doc.events) {
      const entry = { seq: rec.seq, valid: false };
      try {
        const ev = HTTP.toEvent({
          headers: { "content-type": "application/cloudevents+json; charset=utf-8" },
          body: JSON.stringify(rec.event),
        });
        if (!(ev instanceof CloudEvent)) throw new Error("not a single CloudEvent");
        ev.validate();
        entry.valid = true;
        const attrs = {};
        for (const [k, v] of Object.entries(ev)) {
          if (v === undefined || k === "data" || k === "data_base64") continue;
          attrs[k] = v;
        }
        entry.attrs = attrs;
        if (rec.event.data_base64 !== undefined) {
          entry.data_kind = "bytes";
          entry.data = rec.event.data_base64;
        } else if (typeof ev.data === "string") {
          entry.data_kind = "text";
          entry.data = ev.data;
        } else {
          entry.data_kind = "json";
          entry.data = ev.data;
        }
      } catch (err) {
        entry.error = String(err && err.message ? err.message : err) +
          (err && err.errors ? " " + JSON.stringify(err.errors) : "");
      }
      out.push(entry);
    }
    from = doc.next;
  }
  process.stdout.write(JSON.stringify({ events: out }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`consume.mjs: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
