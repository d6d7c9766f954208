"""llama.cpp as an independent reference for vouch-llm's tests.

Reads one JSON request on stdin, loads the GGUF in llama.cpp (the PyPI `xllamacpp` wheel, its
embedded server bound to 127.0.0.1 only), and writes one JSON answer on stdout:

    request: {"model": path, "n_ctx": 512,
              "tokenize": ["text", ...],                  # llama.cpp's tokenizer, no BOS added
              "complete": [{"prompt_ids": [..], "n_predict": 8, "n_probs": 3}, ...],
              "chat": [[{"role", "content"}, ...], ...]}  # the GGUF's template, llama.cpp's Jinja
    answer:  {"tokenize": [[ids], ...],
              "chat": [{"prompt": text, "ids": [ids, BOS added as the file says]}, ...],
              "complete": [{"tokens": [ids], "probs": [[{"id", "logprob"}...]...]}, ...]}

Greedy (temperature 0, top_k 1), one thread, no prompt cache, f32 KV cache, no flash attention: the same work vouch-llm's
deterministic profile does, on another implementation of the kernels.
"""

import json
import sys
import urllib.request

import xllamacpp as xlc


def post(base, path, body):
    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.load(resp)


def main():
    request = json.load(sys.stdin)
    params = xlc.CommonParams()
    params.model.path = request["model"]
    params.n_ctx = int(request.get("n_ctx", 512))
    params.n_parallel = 1
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.warmup = False
    # f32 KV cache and no flash attention, as candle runs: llama.cpp's defaults (f16 cache,
    # flash attention where it chooses) round keys and values to f16.
    params.cache_type_k = xlc.ggml_type.GGML_TYPE_F32
    params.cache_type_v = xlc.ggml_type.GGML_TYPE_F32
    params.flash_attn_type = xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    params.hostnames = ["127.0.0.1"]
    params.use_jinja = True
    server = xlc.Server(params)
    base = server.listening_address
    if not base.startswith("http://127.0.0.1:"):
        raise SystemExit(f"llama.cpp server not on loopback: {base}")
    answer = {"tokenize": [], "complete": [], "chat": []}
    for messages in request.get("chat", []):
        prompt = post(base, "/apply-template", {"messages": messages})["prompt"]
        ids = post(base, "/tokenize", {"content": prompt, "add_special": True, "parse_special": True})["tokens"]
        answer["chat"].append({"prompt": prompt, "ids": ids})
    for text in request.get("tokenize", []):
        got = post(base, "/tokenize", {"content": text, "add_special": False, "parse_special": True})
        answer["tokenize"].append(got["tokens"])
    for job in request.get("complete", []):
        got = post(
            base,
            "/completion",
            {
                "prompt": job["prompt_ids"],
                "n_predict": job["n_predict"],
                "temperature": 0.0,
                "top_k": 1,
                "samplers": ["top_k"],
                "cache_prompt": False,
                "return_tokens": True,
                "n_probs": job.get("n_probs", 0),
                "ignore_eos": job.get("ignore_eos", False),
            },
        )
        probs = [
            [{"id": p["id"], "logprob": p["logprob"]} for p in step.get("top_logprobs", [])]
            for step in got.get("completion_probabilities", [])
        ]
        answer["complete"].append({"tokens": got["tokens"], "probs": probs})
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
