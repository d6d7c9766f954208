"""Vouch's LLM engine beside llama.cpp, in one run, on the same GGUF, prompt ids and threads
(BENCHMARKS.md, "LLM chat"). Runs the release example `bench` (build it first:
`cargo build --release -p vouch-llm --example bench`), then scripts/bench_llm_llamacpp.py with
the prompt ids the example used, for each thread count, alternating.

    python scripts/bench_llm.py MODEL.gguf TARGET_DIR [threads ...]
"""

import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))


def main():
    model, target = sys.argv[1], sys.argv[2]
    threads = [int(t) for t in sys.argv[3:]] or [1, 2]
    ours_bin = os.path.join(target, "release/examples/bench")
    rows = []
    for n in threads:
        ours = json.loads(subprocess.run([ours_bin, model, str(n)], check=True, capture_output=True, text=True).stdout)
        req = {
            "model": model,
            "threads": n,
            "prompt_ids": ours["prompt_ids"],
            "decode_tokens": ours["decode_tokens"],
            "streams": ours["stream_prompts"],
            "stream_tokens": ours["stream_tokens"],
        }
        theirs = json.loads(
            subprocess.run(
                [sys.executable, os.path.join(here, "bench_llm_llamacpp.py")],
                input=json.dumps(req), check=True, capture_output=True, text=True,
            ).stdout
        )
        same = next((i for i, (a, b) in enumerate(zip(ours["decoded"], theirs["decoded"])) if a != b), len(ours["decoded"]))
        row = {
            "threads": n,
            "load": os.getloadavg()[0],
            "decode_tps": (ours["decode_tokens_per_s"], theirs["decode_tokens_per_s"]),
            "decode_ratio": ours["decode_tokens_per_s"] / theirs["decode_tokens_per_s"],
            "ttft_ms": (ours["ttft_ms"], theirs["ttft_ms"]),
            "ttft_ratio": ours["ttft_ms"] / theirs["ttft_ms"],
            "streams": (ours["stream_one_tokens_per_s"], ours["streams_8_tokens_per_s"], ours["streams_ratio"], ours["largest_batch"]),
            "llamacpp_streams": (theirs["stream_one_tokens_per_s"], theirs["streams_8_tokens_per_s"], theirs["streams_ratio"]),
            "rss": (ours["rss_loaded"], ours["rss_decoding"], ours["kv_bytes_after_decode"], ours["file_bytes"], ours["weight_bytes"]),
            "rss_ratio": (ours["rss_loaded_over_file"], ours["rss_decoding_over_file_plus_kv"]),
            "llamacpp_rss_growth": theirs["rss_loaded"] - theirs["rss_before_load"],
            "greedy_tokens_equal": same,
            "engine": ours["engine"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
