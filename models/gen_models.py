#!/usr/bin/env python3
"""Generate the small, deterministic ONNX test models used by Vouch.

Only numpy + onnx (onnx.helper) are needed to build the models; onnxruntime is
used to compute the reference outputs (``<name>.output.json``).

Usage:
    python models/gen_models.py [--out-dir DIR] [--no-reference]

Every model is opset 17, IR version 8, has a dynamic batch dimension named
"N" and is accompanied by:
    <name>.input.json   sample input, batch 1, deterministic values
    <name>.output.json  reference output computed with onnxruntime (CPU EP)

JSON tensor format (one object per graph input / output):
    {"<name>": {"dtype": "float32", "shape": [1, 64], "data": [...row-major...]}}

Running the script twice produces byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # max IR version supported by opset 17 consumers (ORT, tract)
PRODUCER = "vouch-gen-models"
PRODUCER_VERSION = "1"

NP_TO_DTYPE = {
    np.dtype(np.float32): "float32",
    np.dtype(np.float64): "float64",
    np.dtype(np.int64): "int64",
    np.dtype(np.int32): "int32",
    np.dtype(np.int8): "int8",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.bool_): "bool",
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def he_normal(rng: np.random.Generator, shape, fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def glorot_normal(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(np.float32)


def small_bias(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.standard_normal(n) * 0.01).astype(np.float32)


def init(name: str, arr: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(arr), name=name)


def make_model(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def dense_layers(rng, dims, in_name: str, out_name: str, prefix: str = ""):
    """Gemm + Relu stack; the last layer has no activation."""
    nodes, inits = [], []
    cur = in_name
    n_layers = len(dims) - 1
    for i in range(n_layers):
        fi, fo = dims[i], dims[i + 1]
        last = i == n_layers - 1
        w = he_normal(rng, (fi, fo), fi) if not last else glorot_normal(rng, (fi, fo), fi, fo)
        b = small_bias(rng, fo)
        wn, bn = f"{prefix}fc{i + 1}.weight", f"{prefix}fc{i + 1}.bias"
        inits += [init(wn, w), init(bn, b)]
        gemm_out = out_name if last else f"{prefix}fc{i + 1}.out"
        nodes.append(helper.make_node("Gemm", [cur, wn, bn], [gemm_out], name=f"{prefix}fc{i + 1}"))
        if not last:
            relu_out = f"{prefix}relu{i + 1}.out"
            nodes.append(helper.make_node("Relu", [gemm_out], [relu_out], name=f"{prefix}relu{i + 1}"))
            cur = relu_out
    return nodes, inits


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def build_mlp(name: str, dims, seed: int):
    rng = np.random.default_rng(seed)
    nodes, inits = dense_layers(rng, dims, "x", "y")
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", dims[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", dims[-1]])],
        initializer=inits,
    )
    doc = "MLP " + "->".join(str(d) for d in dims) + " with Relu (Gemm), He-normal init, seed %d" % seed
    model = make_model(graph, doc)
    irng = np.random.default_rng(seed + 1000)
    inputs = {"x": irng.standard_normal((1, dims[0])).astype(np.float32)}
    return model, inputs


def build_cnn(seed: int = 2):
    rng = np.random.default_rng(seed)
    c1 = he_normal(rng, (16, 1, 3, 3), 1 * 9)
    b1 = small_bias(rng, 16)
    c2 = he_normal(rng, (32, 16, 3, 3), 16 * 9)
    b2 = small_bias(rng, 32)
    # 28x28 --conv(pad 1)--> 28 --pool--> 14 --conv(pad 1)--> 14 --pool--> 7
    flat = 32 * 7 * 7
    wf = glorot_normal(rng, (flat, 10), flat, 10)
    bf = small_bias(rng, 10)
    inits = [
        init("conv1.weight", c1),
        init("conv1.bias", b1),
        init("conv2.weight", c2),
        init("conv2.bias", b2),
        init("fc.weight", wf),
        init("fc.bias", bf),
    ]
    conv_attrs = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1)
    pool_attrs = dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0])
    nodes = [
        helper.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["conv1.out"], name="conv1", **conv_attrs),
        helper.make_node("Relu", ["conv1.out"], ["relu1.out"], name="relu1"),
        helper.make_node("MaxPool", ["relu1.out"], ["pool1.out"], name="pool1", **pool_attrs),
        helper.make_node("Conv", ["pool1.out", "conv2.weight", "conv2.bias"], ["conv2.out"], name="conv2", **conv_attrs),
        helper.make_node("Relu", ["conv2.out"], ["relu2.out"], name="relu2"),
        helper.make_node("MaxPool", ["relu2.out"], ["pool2.out"], name="pool2", **pool_attrs),
        helper.make_node("Flatten", ["pool2.out"], ["flat.out"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat.out", "fc.weight", "fc.bias"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    model = make_model(
        graph,
        "LeNet-style CNN: Conv(1->16,3x3,pad1) Relu MaxPool2 Conv(16->32,3x3,pad1) Relu MaxPool2 "
        "Flatten Gemm(1568->10); He-normal init, seed %d" % seed,
    )
    irng = np.random.default_rng(seed + 1000)
    # an MNIST-like image in [0, 1]: a blurred random stroke pattern
    img = irng.random((28, 28)).astype(np.float32)
    img = np.where(img > 0.7, img, 0.0).astype(np.float32)
    inputs = {"x": img.reshape(1, 1, 28, 28)}
    return model, inputs


def build_multi_io(seed: int = 3):
    two = init("two", np.array(2, dtype=np.int64))
    axes = init("reduce_axes", np.array([1], dtype=np.int64))
    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"], name="add"),
        helper.make_node("Mul", ["a", "b"], ["prod"], name="mul"),
        helper.make_node("ReduceSum", ["prod", "reduce_axes"], ["dot"], name="reduce_sum", keepdims=1),
        helper.make_node("Mul", ["scale", "two"], ["scaled"], name="scale_mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "multi_io",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("scale", TensorProto.INT64, ["N", 1]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("dot", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("scaled", TensorProto.INT64, ["N", 1]),
        ],
        initializer=[two, axes],
    )
    model = make_model(graph, "multi_io: sum=a+b, dot=rowwise <a,b>, scaled=scale*2 (int64)")
    irng = np.random.default_rng(seed + 1000)
    inputs = {
        "a": irng.standard_normal((1, 8)).astype(np.float32),
        "b": irng.standard_normal((1, 8)).astype(np.float32),
        "scale": np.array([[21]], dtype=np.int64),
    }
    return model, inputs


# --------------------------------------------------------------------------
# JSON I/O
# --------------------------------------------------------------------------
def tensor_to_json(arr: np.ndarray) -> dict:
    arr = np.asarray(arr)
    dtype = NP_TO_DTYPE[arr.dtype]
    flat = arr.reshape(-1)
    if dtype in ("float32", "float64"):
        # float() of a float32 is the exact double value -> round-trips losslessly
        data = [float(v) for v in flat]
    elif dtype == "bool":
        data = [bool(v) for v in flat]
    else:
        data = [int(v) for v in flat]
    return {"dtype": dtype, "shape": [int(d) for d in arr.shape], "data": data}


def write_json(path: str, tensors: dict) -> None:
    obj = {k: tensor_to_json(v) for k, v in tensors.items()}
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def run_ort(model_path: str, inputs: dict) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, inputs)
    return dict(zip(names, outs))


def numpy_reference(name: str, model: onnx.ModelProto, inputs: dict) -> dict:
    """Independent numpy forward pass, used to sanity-check onnxruntime."""
    w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    if name.startswith("mlp"):
        h = inputs["x"]
        i = 1
        while f"fc{i}.weight" in w:
            h = h @ w[f"fc{i}.weight"] + w[f"fc{i}.bias"]
            if f"fc{i + 1}.weight" in w:
                h = np.maximum(h, 0)
            i += 1
        return {"y": h}
    if name == "cnn":
        def conv(x, k, b):
            n, c, hh, ww = x.shape
            xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
            out = np.zeros((n, k.shape[0], hh, ww), dtype=np.float64)
            for dy in range(3):
                for dx in range(3):
                    patch = xp[:, :, dy:dy + hh, dx:dx + ww]
                    out += np.einsum("nchw,oc->nohw", patch, k[:, :, dy, dx])
            return out + b[None, :, None, None]

        def pool(x):
            n, c, hh, ww = x.shape
            return x.reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))

        h = inputs["x"].astype(np.float64)
        h = pool(np.maximum(conv(h, w["conv1.weight"], w["conv1.bias"]), 0))
        h = pool(np.maximum(conv(h, w["conv2.weight"], w["conv2.bias"]), 0))
        h = h.reshape(h.shape[0], -1) @ w["fc.weight"] + w["fc.bias"]
        return {"y": h}
    if name == "multi_io":
        a, b = inputs["a"], inputs["b"]
        return {"sum": a + b, "dot": (a.astype(np.float64) * b).sum(axis=1, keepdims=True), "scaled": inputs["scale"] * 2}
    raise KeyError(name)


# --------------------------------------------------------------------------
def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=here)
    ap.add_argument("--no-reference", action="store_true", help="skip onnxruntime reference outputs")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    builders = [
        ("mlp", lambda: build_mlp("mlp", [64, 128, 128, 10], seed=1)),
        ("cnn", lambda: build_cnn(seed=2)),
        ("multi_io", lambda: build_multi_io(seed=3)),
        ("mlp_small", lambda: build_mlp("mlp_small", [16, 32, 32, 4], seed=4)),
    ]
    for name, build in builders:
        model, inputs = build()
        path = os.path.join(args.out_dir, f"{name}.onnx")
        data = model.SerializeToString(deterministic=True)
        with open(path, "wb") as f:
            f.write(data)
        onnx.checker.check_model(path, full_check=True)
        write_json(os.path.join(args.out_dir, f"{name}.input.json"), inputs)
        msg = f"{name}.onnx: {len(data)} bytes"
        if not args.no_reference:
            outs = run_ort(path, inputs)
            ref = numpy_reference(name, model, inputs)
            for k, v in outs.items():
                err = float(np.max(np.abs(v.astype(np.float64) - ref[k]))) if v.size else 0.0
                if err > 1e-4:
                    print(f"ERROR: {name}/{k}: onnxruntime vs numpy max abs err {err}", file=sys.stderr)
                    return 1
            write_json(os.path.join(args.out_dir, f"{name}.output.json"), outs)
            msg += ", outputs " + ", ".join(f"{k}{list(v.shape)}" for k, v in outs.items())
        print(msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
