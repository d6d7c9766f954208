"""Tiny random-weight GGUFs, one per architecture vouch-llm runs besides llama (SmolLM2 is the
real llama model): qwen2, qwen3, phi3, gemma3.

Each has 2 blocks, width 64, 4 query heads and 2 KV heads of 16, a feed-forward of 128, a
context of 256, F32 attention and norms and Q8_0 feed-forward matrices (so both the float and
the quantized kernels run). qwen2 and qwen3 carry a byte-level BPE (`gpt2`) tokenizer
trained here on a fixed text; phi3 and gemma3 carry a SentencePiece (`llama`) one, as real
Phi-3 and Gemma files do. Seeded: the same gguf version writes the same bytes (tests/setup/llm.sh pins their
SHA-256).

    python make_tiny_gguf.py OUT_DIR
"""

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

EMBD, HEADS, KV_HEADS, HEAD_DIM, FF, BLOCKS, CTX = 64, 4, 2, 16, 128, 2, 256
CORPUS = (
    "the quick brown fox jumps over the lazy dog. hello world, hello there! "
    "what is the capital of france? paris is the capital of france. "
    "numbers 0 1 2 3 4 5 6 7 8 9 and 42 or 3.14; the end of the text is here.\n"
) * 3
N_MERGES = 96

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
PHI3 = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
GEMMA = (
    "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


def bytes_to_unicode():
    """GPT-2's byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def train_merges(words, n_merges):
    """Plain BPE on a word list (each word a tuple of symbols): most frequent pair first,
    ties broken by the pair itself, so the result is deterministic."""
    counts = Counter(words)
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for word, c in counts.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = Counter()
        for word, c in counts.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += c
        counts = merged
    return merges


def gpt2_vocab(specials):
    b2u = bytes_to_unicode()
    # GPT-2-style words: a leading space belongs to the word after it.
    words = []
    for i, w in enumerate(CORPUS.split(" ")):
        text = (" " if i else "") + w
        words.append(tuple(b2u[b] for b in text.encode()))
    merges = train_merges(words, N_MERGES)
    tokens = specials + [b2u[b] for b in range(256)] + [a + b for a, b in merges]
    types = [3] * len(specials) + [1] * (len(tokens) - len(specials))
    # Vocabulary strings must be unique.
    assert len(set(tokens)) == len(tokens)
    return tokens, types, [f"{a} {b}" for a, b in merges]


def spm_vocab(specials):
    special_types = [2 if t == "<unk>" else 3 for t in specials]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    words = [tuple("▁" + w) for w in CORPUS.replace("\n", " ").split(" ") if w]
    chars = sorted({c for w in words for c in w})
    merges = train_merges(words, N_MERGES)
    pieces = chars + [a + b for a, b in merges]
    seen, unique = set(), []
    for p in pieces:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    tokens = specials + byte_tokens + unique
    types = special_types + [6] * 256 + [1] * len(unique)
    # Later merges score lower: SentencePiece BPE merges the highest score first.
    scores = [0.0] * (len(specials) + 256) + [-float(i) for i in range(len(unique))]
    return tokens, types, scores


def weight(rng, *shape, scale=None):
    scale = scale if scale is not None else 1.0 / np.sqrt(shape[-1])
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def norm(rng, n):
    return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)


def add(writer, name, array, quantize=False):
    if quantize:
        writer.add_tensor(name, gguf.quants.quantize(array, Q.Q8_0), raw_dtype=Q.Q8_0)
    else:
        writer.add_tensor(name, array)


def write(arch, path, seed):
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"vouch-tiny-{arch}")
    w.add_context_length(CTX)
    w.add_embedding_length(EMBD)
    w.add_block_count(BLOCKS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    if arch in ("qwen3", "gemma3"):
        w.add_key_length(HEAD_DIM)
        w.add_value_length(HEAD_DIM)
    if arch == "phi3":
        w.add_rope_dimension_count(HEAD_DIM)
    if arch == "gemma3":
        w.add_sliding_window(128)

    if arch == "gemma3":
        tokens, types, scores = spm_vocab(["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"])
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_scores(scores)
        w.add_bos_token_id(2)
        w.add_eos_token_id(1)
        w.add_eot_token_id(5)
        w.add_unk_token_id(3)
        w.add_pad_token_id(0)
        w.add_add_bos_token(True)
        w.add_add_space_prefix(False)
        w.add_chat_template(GEMMA)
    elif arch == "phi3":
        # Phi-3's own files carry a SentencePiece vocabulary; llama.cpp's phi3 loader expects it.
        tokens, types, scores = spm_vocab(["<unk>", "<s>", "</s>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"])
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_scores(scores)
        w.add_bos_token_id(1)
        w.add_eos_token_id(3)
        w.add_unk_token_id(0)
        w.add_add_bos_token(False)
        w.add_add_space_prefix(True)
        w.add_chat_template(PHI3)
    else:
        tokens, types, merges = gpt2_vocab(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen2" if arch.startswith("qwen") else "default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(0)
        w.add_eos_token_id(2)
        w.add_add_bos_token(False)
        w.add_chat_template(CHATML)
    vocab = len(tokens)

    # Embeddings of unit scale: gemma3 multiplies them by sqrt(width) itself.
    add(w, "token_embd.weight", weight(rng, vocab, EMBD, scale=1.0 if arch != "gemma3" else 0.125))
    add(w, "output_norm.weight", norm(rng, EMBD))
    if arch != "gemma3":
        add(w, "output.weight", weight(rng, vocab, EMBD, scale=0.5))
    q_dim, kv_dim = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    for i in range(BLOCKS):
        p = f"blk.{i}"
        add(w, f"{p}.attn_norm.weight", norm(rng, EMBD))
        add(w, f"{p}.ffn_norm.weight", norm(rng, EMBD))
        if arch == "phi3":
            add(w, f"{p}.attn_qkv.weight", weight(rng, q_dim + 2 * kv_dim, EMBD))
            add(w, f"{p}.attn_output.weight", weight(rng, EMBD, q_dim))
            add(w, f"{p}.ffn_up.weight", weight(rng, 2 * FF, EMBD), quantize=True)
            add(w, f"{p}.ffn_down.weight", weight(rng, EMBD, FF), quantize=True)
            continue
        add(w, f"{p}.attn_q.weight", weight(rng, q_dim, EMBD))
        add(w, f"{p}.attn_k.weight", weight(rng, kv_dim, EMBD))
        add(w, f"{p}.attn_v.weight", weight(rng, kv_dim, EMBD))
        add(w, f"{p}.attn_output.weight", weight(rng, EMBD, q_dim))
        if arch == "qwen2":
            add(w, f"{p}.attn_q.bias", weight(rng, q_dim, scale=0.1))
            add(w, f"{p}.attn_k.bias", weight(rng, kv_dim, scale=0.1))
            add(w, f"{p}.attn_v.bias", weight(rng, kv_dim, scale=0.1))
        if arch in ("qwen3", "gemma3"):
            add(w, f"{p}.attn_q_norm.weight", norm(rng, HEAD_DIM))
            add(w, f"{p}.attn_k_norm.weight", norm(rng, HEAD_DIM))
        if arch == "gemma3":
            add(w, f"{p}.post_attention_norm.weight", norm(rng, EMBD))
            add(w, f"{p}.post_ffw_norm.weight", norm(rng, EMBD))
        add(w, f"{p}.ffn_gate.weight", weight(rng, FF, EMBD), quantize=True)
        add(w, f"{p}.ffn_up.weight", weight(rng, FF, EMBD), quantize=True)
        add(w, f"{p}.ffn_down.weight", weight(rng, EMBD, FF), quantize=True)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for seed, arch in enumerate(["qwen2", "qwen3", "phi3", "gemma3"], start=1):
        path = out / f"tiny-{arch}.gguf"
        write(arch, path, seed)
        print(path)


if __name__ == "__main__":
    main()
