#!/usr/bin/env python3
"""Benchmark ONNX Runtime used directly from Python (the baseline for Vouch).

    bench_ort.py MODEL.onnx INPUT.json [--threads 1] [--iters 2000] [--warmup 200] [--batch 1]

INPUT.json uses the Vouch tensor format:
    {"<input name>": {"dtype": "float32", "shape": [1, 64], "data": [...]}, ...}

With --batch B every input is tiled B times along dim 0 (so a batch-1 sample
becomes a batch-B request); latency figures are per session.run() call and
throughput_per_s counts items (rows of dim 0), i.e. B * 1e6 / median_us.

Session: CPUExecutionProvider, intra_op_num_threads=--threads,
inter_op_num_threads=1, ORT_SEQUENTIAL, ORT_ENABLE_ALL.

Prints one JSON object on stdout, e.g.
    {"model": "mlp.onnx", "threads": 1, "batch": 1, "iters": 2000,
     "median_us": 9.1, "p90_us": 9.8, "throughput_per_s": 109890.1, ...}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

DTYPES = {
    "float32": np.float32,
    "float64": np.float64,
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


def load_inputs(path: str, batch: int) -> dict:
    with open(path) as f:
        obj = json.load(f)
    out = {}
    for name, t in obj.items():
        dtype = DTYPES[t["dtype"]]
        arr = np.asarray(t["data"], dtype=dtype).reshape(t["shape"])
        if batch != 1:
            if arr.ndim == 0:
                raise SystemExit(f"--batch needs inputs with a batch dim; {name!r} is a scalar")
            arr = np.concatenate([arr] * batch, axis=0)
        out[name] = np.ascontiguousarray(arr)
    return out


def percentile(sorted_vals: list, q: float) -> float:
    # nearest-rank percentile on already sorted values
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(np.ceil(q / 100.0 * len(sorted_vals))) - 1))
    return sorted_vals[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("input_json")
    ap.add_argument("--threads", type=int, default=1, help="intra_op_num_threads (default 1)")
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1, help="tile inputs B times along dim 0")
    args = ap.parse_args()
    if args.iters < 1 or args.batch < 1 or args.threads < 1 or args.warmup < 0:
        ap.error("--iters, --batch, --threads must be >= 1 and --warmup >= 0")

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])

    feeds = load_inputs(args.input_json, args.batch)
    expected = {i.name for i in sess.get_inputs()}
    if set(feeds) != expected:
        raise SystemExit(f"input names in {args.input_json} {sorted(feeds)} != model inputs {sorted(expected)}")
    out_names = [o.name for o in sess.get_outputs()]

    for _ in range(args.warmup):
        sess.run(out_names, feeds)

    times_ns = []
    clock = time.perf_counter_ns
    run = sess.run
    for _ in range(args.iters):
        t0 = clock()
        run(out_names, feeds)
        times_ns.append(clock() - t0)

    us = sorted(t / 1000.0 for t in times_ns)
    median = float(np.median(us))
    result = {
        "model": os.path.basename(args.model),
        "engine": "onnxruntime-python",
        "ort_version": ort.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "iters": args.iters,
        "warmup": args.warmup,
        "median_us": round(median, 3),
        "p90_us": round(percentile(us, 90), 3),
        "p99_us": round(percentile(us, 99), 3),
        "min_us": round(us[0], 3),
        "mean_us": round(float(np.mean(us)), 3),
        "throughput_per_s": round(args.batch * 1e6 / median, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
