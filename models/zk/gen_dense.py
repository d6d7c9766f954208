#!/usr/bin/env python3
"""Generate the dense benchmark model for the zk tier: an MLP 1024->768->512->10 with ReLU
(1.18 M parameters), deterministic (seed 7), opset 17, batch dimension "N", plus
dense.input.json (batch 1) and dense.output.json (onnxruntime reference).

    python models/zk/gen_dense.py [--out-dir models/zk]

Reuses the helpers of models/gen_models.py so the file layout matches the other test models.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import gen_models as gm  # noqa: E402

DIMS = [1024, 768, 512, 10]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    model, inputs = gm.build_mlp("dense", DIMS, seed=7)
    params = sum(DIMS[i] * DIMS[i + 1] + DIMS[i + 1] for i in range(len(DIMS) - 1))
    assert params >= 1_000_000, params
    gm_write(a.out_dir, "dense", model, inputs)
    print(f"dense: {params} parameters")


def gm_write(out_dir, name, model, inputs):
    """Model bytes, input JSON and the onnxruntime reference output, via gen_models' helpers."""
    import onnx

    path = os.path.join(out_dir, name + ".onnx")
    onnx.save(model, path)
    gm.write_json(os.path.join(out_dir, name + ".input.json"), inputs)
    gm.write_json(os.path.join(out_dir, name + ".output.json"), gm.run_ort(path, inputs))


if __name__ == "__main__":
    main()
