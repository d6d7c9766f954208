#!/usr/bin/env python3
"""EZKL anchor for Vouch's zk tier: setup / prove / verify times, sizes, peak memory and
accuracy of EZKL (Halo2 + KZG on BN254) on the same ONNX files vouch-zk proves.

    pip install ezkl==23.0.5 onnx onnxruntime numpy
    python scripts/ezkl_bench.py models/mlp_small.onnx models/mlp.onnx [models/cnn.onnx]

Each model runs in its own child process so that its peak RSS is its own. Settings follow
EZKL's documented flow: gen_settings (inputs and outputs public, weights fixed in the circuit,
the same statement vouch-zk proves), calibrate_settings for "resources", compile, a local SRS
from ``ezkl.gen_srs`` (offline; a real deployment would download a ceremony SRS), setup,
gen_witness, prove, verify. calibrate_settings and gen_witness need a running asyncio loop.
With EZKL_SETTINGS_ONLY=1 it stops after calibration and reports the circuit size (logrows), for
models too large to set up on this machine.

Prints one JSON object per model (also appended to --out if given). The CNN needs ~10 min and
~23 GB: run it alone (``--only cnn``) on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def flat(x):
    if isinstance(x, list):
        out = []
        for v in x:
            out.extend(flat(v))
        return out
    return [x]


async def maybe_await(x):
    """EZKL 23 runs these synchronously but needs a running event loop; older ones return awaitables."""
    if inspect.isawaitable(x):
        return await x
    return x


async def measure(model: str, work: str) -> dict:
    import ezkl  # imported in the child only

    stem = model[: -len(".onnx")]
    with open(stem + ".input.json") as f:
        inputs = json.load(f)
    data = os.path.join(work, "data.json")
    with open(data, "w") as f:
        json.dump({"input_data": [t["data"] for t in inputs.values()]}, f)
    reference = None
    if os.path.exists(stem + ".output.json"):
        with open(stem + ".output.json") as f:
            reference = [v for t in json.load(f).values() for v in t["data"]]

    settings = os.path.join(work, "settings.json")
    compiled = os.path.join(work, "model.compiled")
    srs = os.path.join(work, "kzg.srs")
    vk = os.path.join(work, "vk.key")
    pk = os.path.join(work, "pk.key")
    witness = os.path.join(work, "witness.json")
    proof = os.path.join(work, "proof.json")

    args = ezkl.PyRunArgs()
    args.input_visibility = "public"
    args.output_visibility = "public"
    args.param_visibility = "fixed"
    args.variables = [("N", 1)]  # the models' free batch dimension: prove batch 1
    t0 = time.perf_counter()
    assert ezkl.gen_settings(model, settings, py_run_args=args)
    await maybe_await(ezkl.calibrate_settings(data, model, settings, "resources"))
    assert ezkl.compile_circuit(model, compiled, settings)
    calibrate_s = time.perf_counter() - t0
    with open(settings) as f:
        s = json.load(f)
    logrows = s["run_args"]["logrows"]
    scale = s["run_args"].get("input_scale")
    if os.environ.get("EZKL_SETTINGS_ONLY"):
        return {"model": model, "logrows": logrows, "scale": scale, "calibrate_compile_s": round(calibrate_s, 3),
                "num_rows": s.get("num_rows"), "total_assignments": s.get("total_assignments"),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}

    t0 = time.perf_counter()
    ezkl.gen_srs(srs, logrows)
    srs_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    assert ezkl.setup(compiled, vk, pk, srs)
    setup_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    w = await maybe_await(ezkl.gen_witness(data, compiled, witness, vk, srs))
    witness_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ezkl.prove(witness, compiled, pk, proof, srs)
    prove_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    assert ezkl.verify(proof, settings, vk, srs)
    verify_s = time.perf_counter() - t0

    err = None
    if not isinstance(w, dict):
        with open(witness) as f:
            w = json.load(f)
    if reference is not None and isinstance(w, dict):
        try:
            outs = [float(v) for v in flat(w["pretty_elements"]["rescaled_outputs"])]
            err = max(abs(a - b) for a, b in zip(outs, reference))
        except (KeyError, TypeError, ValueError):
            err = None
    with open(proof) as f:
        pj = json.load(f)
    proof_bytes = len(bytes.fromhex(pj["proof"][2:] if pj["proof"].startswith("0x") else pj["proof"])) if isinstance(pj.get("proof"), str) else len(pj.get("proof", []))

    return {
        "model": model,
        "ezkl": ezkl.__version__ if hasattr(ezkl, "__version__") else "23.0.5",
        "logrows": logrows,
        "scale": scale,
        "calibrate_compile_s": round(calibrate_s, 3),
        "srs_gen_s": round(srs_s, 3),
        "setup_s": round(setup_s, 3),
        "witness_s": round(witness_s, 3),
        "prove_s": round(prove_s, 3),
        "verify_s": round(verify_s, 4),
        "proof_bytes": proof_bytes,
        "pk_bytes": os.path.getsize(pk),
        "vk_bytes": os.path.getsize(vk),
        "max_abs_err_vs_onnxruntime": err,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def child(model: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ezkl-bench-") as work:
        print(json.dumps(asyncio.run(measure(model, work))), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=["models/mlp_small.onnx", "models/mlp.onnx"])
    ap.add_argument("--out", help="append JSON lines here")
    ap.add_argument(
        "--vouch",
        help="path of the vouch-zk zk_report example binary: run it on each model right after EZKL "
        "(same machine state) and print the ratios",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child)
        return
    for m in a.models:
        r = subprocess.run([sys.executable, __file__, "--child", m], capture_output=True, text=True)
        line = next((l for l in reversed(r.stdout.splitlines()) if l.startswith("{")), None)
        if r.returncode != 0 or line is None:
            print(json.dumps({"model": m, "error": (r.stderr or r.stdout)[-2000:]}), flush=True)
            continue
        print(line, flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(line + "\n")
        if a.vouch:
            v = subprocess.run([a.vouch, m], capture_output=True, text=True)
            vl = next((l for l in reversed(v.stdout.splitlines()) if l.startswith("{")), None)
            if v.returncode != 0 or vl is None:
                print(json.dumps({"model": m, "vouch_error": (v.stderr or v.stdout)[-2000:]}), flush=True)
                continue
            e, z = json.loads(line), json.loads(vl)
            ratio = {
                "model": m,
                "prove_ratio": z["prove_ms_median"] / 1000 / e["prove_s"],
                "setup_ratio": z["keygen_ms"] / 1000 / e["setup_s"],
                "verify_ratio": z["verify_ms_median"] / 1000 / e["verify_s"],
                "peak_mem_ratio": z["peak_rss_mb"] / e["peak_rss_mb"],
                "vouch": z,
            }
            print(json.dumps(ratio), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(ratio) + "\n")


if __name__ == "__main__":
    main()
