// SPDX-License-Identifier: MIT
// A CloudEvents producer built on the official JavaScript SDK (npm `cloudevents`), driven by
// tests/e2e/test_js_sdk.py.
//
// usage: node produce.mjs URL < spec.json
//   URL   the publish endpoint, e.g. http://127.0.0.1:8088/v1/buses/default/events
//   spec  {"sends": [{"mode": "binary"|"structured"|"batch", "events": [EVENT, ...]}]}
//         EVENT is a plain object of CloudEvent attributes (extensions included) plus one of
//         "json": any JSON value, "text": a string, "bytes_b64": base64 of binary data.
// Prints one JSON document: {"sdk": VERSION, "results": [{"mode", "status", "body", "wire"}]}.
//
// binary and structured go through the SDK's own emitter and transport:
// emitterFor(httpTransport(URL), {mode}). The SDK has no batch emitter (HTTP.binary and
// HTTP.structured only; batches are only parsed), so a batch is the SDK's JSON serialization of
// each CloudEvent (CloudEvent#toJSON) in an array, sent through the same httpTransport with the
// batch content type. The transport writes the body with req.write() and no Content-Length,
// so Node sends it chunked.
import { createRequire } from "node:module";
import { CloudEvent, HTTP, Mode, emitterFor, httpTransport } from "cloudevents";

const require = createRequire(import.meta.url);
const sdkVersion = require("cloudevents/package.json").version;

function buildEvent(spec) {
  const attrs = { ...spec };
  delete attrs.json;
  delete attrs.text;
  delete attrs.bytes_b64;
  if ("json" in spec) attrs.data = spec.json;
  if ("text" in spec) attrs.data = spec.text;
  if ("bytes_b64" in spec) attrs.data = new Uint8Array(Buffer.from(spec.bytes_b64, "base64"));
  return new CloudEvent(attrs); // strict: the SDK validates the event
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  const url = process.argv[2];
  if (!url) throw new Error("usage: node produce.mjs URL < spec.json");
  const spec = JSON.parse(await readStdin());
  const transport = httpTransport(url);
  const results = [];
  for (const send of spec.sends) {
    const events = send.events.map(buildEvent);
    let response;
    let wire;
    if (send.mode === "binary" || send.mode === "structured") {
      const mode = send.mode === "binary" ? Mode.BINARY : Mode.STRUCTURED;
      const message = mode === Mode.BINARY ? HTTP.binary(events[0]) : HTTP.structured(events[0]);
      wire = { headers: message.headers };
      response = await emitterFor(transport, { binding: HTTP, mode })(events[0]);
    } else if (send.mode === "batch") {
      const message = {
        headers: { "content-type": "application/cloudevents-batch+json; charset=utf-8" },
        body: JSON.stringify(events),
      };
      wire = { headers: message.headers };
      response = await transport(message);
    } else {
      throw new Error(`unknown mode ${send.mode}`);
    }
    // httpTransport resolves with {body, headers} only (no status): the body tells.
    results.push({ mode: send.mode, body: response.body, wire });
  }
  process.stdout.write(JSON.stringify({ sdk: sdkVersion, results }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`produce.mjs: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
