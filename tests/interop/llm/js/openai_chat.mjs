// The official OpenAI JS SDK (npm `openai`) against a Vouch node, base URL changed and nothing
// else. The same scenario and output shape as ../openai_chat.py, so one Rust check serves both.
//
// Usage: node openai_chat.mjs BASE_URL MODEL. Prints one JSON object on stdout: what the SDK
// parsed (non-streamed completion, streamed chunks) and, for the Rust test to verify, the exact
// request bodies and the raw `data:` payloads of a stream read as a raw response.
import OpenAI from "openai";
import { VERSION } from "openai/version";

const [base, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base.replace(/\/$/, "") + "/v1", apiKey: "not-needed", maxRetries: 0 });
const messages = [
  { role: "system", content: "You are a terse assistant." },
  { role: "user", content: "Name one primary colour." },
];
const out = { sdk_version: VERSION };

// Non-streamed: parsed by the SDK; the receipt bundle rides in `vouch` (an extra field). The
// SDK serialises the body itself: what it sent, and the raw answer, are recorded on the way.
let sentBody = null;
let rawAnswer = null;
const recording = new OpenAI({
  baseURL: base.replace(/\/$/, "") + "/v1",
  apiKey: "not-needed",
  maxRetries: 0,
  fetch: async (url, init) => {
    sentBody = init.body;
    const r = await fetch(url, init);
    if (!JSON.parse(init.body).stream) rawAnswer = await r.clone().text();
    return r;
  },
});
const body = { model, messages, max_tokens: 12, temperature: 0, seed: 7, user: "alice" };
const completion = await recording.chat.completions.create(body);
out.complete = {
  request: JSON.parse(sentBody),
  response: JSON.parse(rawAnswer),
  sdk_content: completion.choices[0].message.content,
  sdk_finish_reason: completion.choices[0].finish_reason,
  sdk_usage: completion.usage,
  sdk_has_vouch: typeof completion.vouch === "object" && completion.vouch !== null,
};

// Streamed, parsed by the SDK: content deltas, and the receipt event passed through.
const streamBody = { ...body, stream: true, stream_options: { include_usage: true } };
delete streamBody.user;
let deltas = [];
let receiptEvents = 0;
let usage = null;
for await (const chunk of await client.chat.completions.create(streamBody)) {
  if (chunk.object === "vouch.receipt") {
    receiptEvents += 1;
    continue;
  }
  const content = chunk.choices?.[0]?.delta?.content;
  if (content) deltas.push(content);
  if (chunk.usage) usage = chunk.usage;
}
out.stream_sdk = { text: deltas.join(""), receipt_events: receiptEvents, usage };

// Streamed again, raw: the exact `data:` payloads, for the chain check.
const raw = await recording.chat.completions.create(streamBody).asResponse();
const text = await raw.text();
const payloads = text
  .split("\n")
  .filter((l) => l.startsWith("data: "))
  .map((l) => l.slice("data: ".length));
out.stream_raw = { request: JSON.parse(sentBody), payloads };
// Legacy completions through the SDK: the same receipt kind, in `vouch`.
const legacy = { model, prompt: "The capital of France is", max_tokens: 8, temperature: 0, seed: 5 };
const parsed = await recording.completions.create(legacy);
out.legacy = { request: JSON.parse(sentBody), response: JSON.parse(rawAnswer), sdk_text: parsed.choices[0].text };
console.log(JSON.stringify(out));
