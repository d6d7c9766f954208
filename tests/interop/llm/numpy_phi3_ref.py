"""An independent phi3 forward pass in numpy over PyPI `gguf`'s reader, for the tiny phi3 GGUF
that llama.cpp refuses to load (see docs/llm.md). Written from the Phi-3 architecture
(fused QKV, rotate-half RoPE over the whole head, SwiGLU with the gate in the first half of the
fused up projection, RMSNorm), in float64, recomputing the whole sequence at each step.

    request: {"model": path, "prompt_ids": [...], "n_predict": 16}
    answer:  {"tokens": [...], "first_logits": [...]}
"""

import json
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize


def main():
    request = json.load(sys.stdin)
    reader = GGUFReader(request["model"])

    def field(name):
        return reader.fields[name].contents()

    tensors = {}
    for t in reader.tensors:
        data = t.data
        if t.tensor_type not in (GGMLQuantizationType.F32,):
            data = dequantize(data, t.tensor_type)
        tensors[t.name] = np.asarray(data, dtype=np.float64).reshape([int(d) for d in reversed(t.shape)])

    embd = int(field("phi3.embedding_length"))
    heads = int(field("phi3.attention.head_count"))
    kv_heads = int(field("phi3.attention.head_count_kv"))
    blocks = int(field("phi3.block_count"))
    ff = int(field("phi3.feed_forward_length"))
    eps = float(field("phi3.attention.layer_norm_rms_epsilon"))
    base = float(field("phi3.rope.freq_base")) if "phi3.rope.freq_base" in reader.fields else 10000.0
    head_dim = embd // heads
    kv_dim = kv_heads * head_dim

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(x, positions):
        # x: (seq, heads, head_dim); rotate halves (GPT-NeoX style).
        half = head_dim // 2
        inv = base ** (-np.arange(0, half) * 2.0 / head_dim)
        angles = positions[:, None] * inv[None, :]
        cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)

    def forward(ids):
        n = len(ids)
        x = tensors["token_embd.weight"][ids]
        positions = np.arange(n, dtype=np.float64)
        mask = np.triu(np.full((n, n), -np.inf), k=1)
        for i in range(blocks):
            p = f"blk.{i}"
            h = rms(x, tensors[f"{p}.attn_norm.weight"])
            qkv = h @ tensors[f"{p}.attn_qkv.weight"].T
            q = qkv[:, :embd].reshape(n, heads, head_dim)
            k = qkv[:, embd : embd + kv_dim].reshape(n, kv_heads, head_dim)
            v = qkv[:, embd + kv_dim :].reshape(n, kv_heads, head_dim)
            q, k = rope(q, positions), rope(k, positions)
            out = np.zeros((n, heads, head_dim))
            for hd in range(heads):
                kh = hd // (heads // kv_heads)
                s = q[:, hd, :] @ k[:, kh, :].T / np.sqrt(head_dim) + mask
                s = np.exp(s - s.max(axis=-1, keepdims=True))
                s /= s.sum(axis=-1, keepdims=True)
                out[:, hd, :] = s @ v[:, kh, :]
            x = x + out.reshape(n, embd) @ tensors[f"{p}.attn_output.weight"].T
            h = rms(x, tensors[f"{p}.ffn_norm.weight"])
            up = h @ tensors[f"{p}.ffn_up.weight"].T
            gate, up = up[:, :ff], up[:, ff:]
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ tensors[f"{p}.ffn_down.weight"].T
        x = rms(x[-1], tensors["output_norm.weight"])
        return x @ tensors["output.weight"].T

    ids = list(request["prompt_ids"])
    tokens, first = [], None
    for _ in range(request["n_predict"]):
        logits = forward(ids)
        if first is None:
            first = logits.tolist()
        nxt = int(np.argmax(logits))
        tokens.append(nxt)
        ids.append(nxt)
    json.dump({"tokens": tokens, "first_logits": first}, sys.stdout)


if __name__ == "__main__":
    main()
