"""The official OpenAI Python SDK against a Vouch node, base URL changed and nothing else.

Usage: openai_chat.py BASE_URL MODEL. Prints one JSON object on stdout: what the SDK parsed
(non-streamed completion, streamed chunks) and, for the Rust test to verify, the exact request
bodies and the raw `data:` payloads of a stream read through the SDK's raw-response API.
"""

import json
import sys

import openai

base, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base.rstrip("/") + "/v1", api_key="not-needed", max_retries=0)
messages = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name one primary colour."},
]
out = {"sdk_version": openai.__version__}

# Non-streamed: parsed by the SDK; the receipt bundle rides in `vouch` (an extra field).
body = dict(model=model, messages=messages, max_tokens=12, temperature=0, seed=7, user="alice")
raw = client.chat.completions.with_raw_response.create(**body)
completion = raw.parse()
out["complete"] = {
    "request": json.loads(raw.http_request.content),
    "response": json.loads(raw.http_response.text),
    "sdk_content": completion.choices[0].message.content,
    "sdk_finish_reason": completion.choices[0].finish_reason,
    "sdk_usage": completion.usage.model_dump(),
    "sdk_has_vouch": "vouch" in (completion.model_extra or {}),
}

# Streamed, parsed by the SDK: content deltas, and the receipt event passed through.
stream_body = dict(
    model=model,
    messages=messages,
    max_tokens=12,
    temperature=0,
    seed=7,
    stream=True,
    stream_options={"include_usage": True},
)
deltas, receipt_events, usage = [], 0, None
for chunk in client.chat.completions.create(**stream_body):
    extra = chunk.model_extra or {}
    if getattr(chunk, "object", None) == "vouch.receipt" or (
        "vouch" in extra and isinstance(extra["vouch"], dict) and "receipt" in extra["vouch"]
    ):
        receipt_events += 1
        continue
    if chunk.choices and chunk.choices[0].delta.content:
        deltas.append(chunk.choices[0].delta.content)
    if chunk.usage is not None:
        usage = chunk.usage.model_dump()
out["stream_sdk"] = {"text": "".join(deltas), "receipt_events": receipt_events, "usage": usage}

# Streamed again, raw: the exact `data:` payloads, for the chain check.
with client.chat.completions.with_streaming_response.create(**stream_body) as resp:
    request = json.loads(resp.http_request.content)
    payloads = [line[len("data: "):] for line in resp.iter_lines() if line.startswith("data: ")]
out["stream_raw"] = {"request": request, "payloads": payloads}
# Legacy completions through the SDK: the same receipt kind, in `vouch`.
legacy = dict(model=model, prompt="The capital of France is", max_tokens=8, temperature=0, seed=5)
raw = client.completions.with_raw_response.create(**legacy)
parsed = raw.parse()
out["legacy"] = {
    "request": json.loads(raw.http_request.content),
    "response": json.loads(raw.http_response.text),
    "sdk_text": parsed.choices[0].text,
}
print(json.dumps(out))
