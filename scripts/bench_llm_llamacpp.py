"""llama.cpp's side of scripts/bench-llm.sh: the same figures as
crates/vouch-llm/examples/bench.rs, on the same GGUF, prompt ids and thread count, from the
PyPI `xllamacpp` wheel's embedded server (loopback only), f32 KV cache, no flash attention.

    request (stdin): {"model": path, "threads": n, "prompt_ids": [128 ids], "decode_tokens": 128,
                      "streams": [[ids], ...8], "stream_tokens": 64}
    answer (stdout): {"ttft_ms", "decode_tokens_per_s", "decoded", "stream_one_tokens_per_s",
                      "streams_8_tokens_per_s", "streams_ratio", "rss_loaded", "file_bytes"}

Time to first token is llama.cpp's own `timings.prompt_ms` for the prompt (no prompt cache,
best of 3); decode is its `timings.predicted_per_second`, greedy with `ignore_eos`.
"""

import json
import os
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import xllamacpp as xlc


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def post(base, path, body):
    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.load(resp)


def main():
    request = json.load(sys.stdin)
    threads = int(request["threads"])
    rss_before = rss_bytes()
    params = xlc.CommonParams()
    params.model.path = request["model"]
    params.n_ctx = 8 * 512
    params.n_parallel = 8
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.warmup = False
    params.cache_type_k = xlc.ggml_type.GGML_TYPE_F32
    params.cache_type_v = xlc.ggml_type.GGML_TYPE_F32
    params.flash_attn_type = xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    params.hostnames = ["127.0.0.1"]
    server = xlc.Server(params)
    base = server.listening_address
    if not base.startswith("http://127.0.0.1:"):
        raise SystemExit(f"llama.cpp server not on loopback: {base}")
    rss_loaded = rss_bytes()

    def complete(ids, n, greedy=True, seed=0):
        body = {
            "prompt": ids,
            "n_predict": n,
            "cache_prompt": False,
            "return_tokens": True,
            "ignore_eos": True,
        }
        if greedy:
            body.update({"temperature": 0.0, "top_k": 1, "samplers": ["top_k"]})
        else:
            body.update({"temperature": 0.8, "top_p": 0.95, "seed": seed})
        return post(base, "/completion", body)

    prompt = request["prompt_ids"]
    ttft = min(complete(prompt, 1)["timings"]["prompt_ms"] for _ in range(3))
    got = complete(prompt, int(request["decode_tokens"]))
    decode_tps = got["timings"]["predicted_per_second"]

    streams = request["streams"]
    n = int(request["stream_tokens"])

    def run(jobs):
        start = time.perf_counter()
        with ThreadPoolExecutor(len(jobs)) as pool:
            outs = list(pool.map(lambda j: complete(j[1], n, False, j[0]), enumerate(jobs)))
        tokens = sum(len(o["tokens"]) for o in outs)
        return tokens / (time.perf_counter() - start)

    one = run(streams[:1])
    many = run(streams)
    json.dump(
        {
            "ttft_ms": ttft,
            "decode_tokens_per_s": decode_tps,
            "decoded": got["tokens"],
            "stream_one_tokens_per_s": one,
            "streams_8_tokens_per_s": many,
            "streams_ratio": many / one,
            "rss_before_load": rss_before,
            "rss_loaded": rss_loaded,
            "file_bytes": os.path.getsize(request["model"]),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
