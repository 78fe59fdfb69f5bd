// SPDX-License-Identifier: MIT
// A CloudEvents sink built on the official JavaScript SDK (npm `cloudevents`), driven by
// tests/e2e/test_js_sink.py: a plain node:http server that decodes every request with the SDK's
// HTTP.toEvent({headers, body}), validates the event against the SDK's CloudEvents 1.0 schema
// and appends what the SDK decoded to a file as one JSON line, then answers 202 (400 with the
// SDK's error when it cannot decode or validate the request).
//
// usage: node sink.mjs OUT_FILE
// Listens on a free loopback port and prints {"port": N, "sdk": VERSION} on stdout once ready.
// Each line of OUT_FILE: {"path", "mode", "content_type", "valid", "error", "attrs": {...},
// "data_kind": "json"|"text"|"bytes"|"none", "data"} (bytes as base64). The line is written
// (synchronously) before the answer is sent, so a delivered event is always in the file.
//
// The request body goes to the SDK as a string for JSON, text and structured content (what
// a body-parser would hand it) and as a Buffer otherwise, so binary data stays bytes.
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import { CloudEvent, HTTP } from "cloudevents";

const require = createRequire(import.meta.url);
const sdkVersion = require("cloudevents/package.json").version;

function isTextual(ct) {
  const t = (ct || "").split(";")[0].trim().toLowerCase();
  return t.startsWith("text/") || t === "application/json" || t.endsWith("+json");
}

function bytesOf(ev) {
  // The SDK keeps binary data as data_base64 next to a typed array in data; structured mode
  // gives a Uint32Array with one byte per element, so go through the base64 form.
  if (ev.data_base64 !== undefined) return ev.data_base64;
  return Buffer.from(Uint8Array.from(ev.data)).toString("base64");
}

function describe(ev) {
  const attrs = {};
  for (const [k, v] of Object.entries(ev)) {
    if (v === undefined || k === "data" || k === "data_base64") continue;
    attrs[k] = v;
  }
  const out = { attrs };
  if (ev.data === undefined || ev.data === null) {
    if (ev.data_base64 !== undefined) {
      out.data_kind = "bytes";
      out.data = ev.data_base64;
    } else {
      out.data_kind = ev.data === null ? "json" : "none";
      out.data = null;
    }
  } else if (ev.data_base64 !== undefined || ArrayBuffer.isView(ev.data)) {
    out.data_kind = "bytes";
    out.data = bytesOf(ev);
  } else if (typeof ev.data === "string") {
    out.data_kind = "text";
    out.data = ev.data;
  } else {
    out.data_kind = "json";
    out.data = ev.data;
  }
  return out;
}

function main() {
  const [outFile] = process.argv.slice(2);
  if (!outFile) throw new Error("usage: node sink.mjs OUT_FILE");
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const ct = req.headers["content-type"];
      const entry = { path: req.url, content_type: ct === undefined ? null : ct, valid: false };
      let status = 202;
      let answer = "";
      try {
        const structured = (ct || "").toLowerCase().startsWith("application/cloudevents");
        entry.mode = structured ? "structured" : "binary";
        let body;
        if (raw.length === 0) body = undefined;
        else if (structured || isTextual(ct)) body = raw.toString("utf8");
        else body = raw;
        const ev = HTTP.toEvent({ headers: req.headers, body });
        if (!(ev instanceof CloudEvent)) throw new Error("not a single CloudEvent");
        ev.validate();
        entry.valid = true;
        Object.assign(entry, describe(ev));
      } catch (err) {
        entry.error = String(err && err.message ? err.message : err) +
          (err && err.errors ? " " + JSON.stringify(err.errors) : "");
        status = 400;
        answer = JSON.stringify({ error: entry.error });
      }
      fs.appendFileSync(outFile, JSON.stringify(entry) + "\n");
      res.writeHead(status, { "content-type": "application/json" });
      res.end(answer);
    });
  });
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ port: server.address().port, sdk: sdkVersion }) + "\n");
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
