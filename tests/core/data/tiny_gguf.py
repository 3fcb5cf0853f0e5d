"""Write a tiny random Llama GGUF with gguf.GGUFWriter, laid out as llama.cpp's converter does.

The vocabulary is byte-level BPE: the 256 byte symbols, a few merges learned from a
sentence, and three control tokens; q/k rows are permuted the way llama.cpp stores
them (convert_hf_to_gguf.py's LlamaModel.permute), so a loader must undo it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONTROL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
            " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
            "{% endif %}")


@dataclass(frozen=True)
class TinySpec:
    d_model: int = 48
    n_layers: int = 2
    n_heads: int = 6
    n_kv_heads: int = 2
    d_ff: int = 64
    rope_theta: float = 10000.0
    qtype: str = "F32"           # weight type of the projections: "F32", "Q8_0", "Q4_1"
    tied: bool = True
    seed: int = 0
    architecture: str = "llama"


def byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes (bytes_to_unicode)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = keep[:], 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def vocabulary(text: str = "the cat sat on the mat then the hat", merges: int = 12):
    """Tokens (control first, then bytes, then merged pairs) and merges, learned greedily."""
    sym = byte_symbols()
    words = [[sym[b] for b in (" " + w if i else w).encode()] for i, w in enumerate(text.split())]
    learned = []
    for _ in range(merges):
        counts: dict[tuple[str, str], int] = {}
        for w in words:
            for pair in zip(w, w[1:], strict=False):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], p))
        learned.append(best)
        words = [_merge(w, best) for w in words]
    tokens = list(CONTROL_TOKENS) + sym + ["".join(p) for p in learned]
    return tokens, [f"{a} {b}" for a, b in learned]


def _merge(word: list[str], pair: tuple[str, str]) -> list[str]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's converter: per head, rows (half j, pair i) -> (pair i, half j)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama(path: Path, spec: TinySpec = TinySpec()) -> Path:
    import gguf

    tokens, merges = vocabulary()
    rng = np.random.default_rng(spec.seed)
    head_dim = spec.d_model // spec.n_heads
    w = gguf.GGUFWriter(str(path), spec.architecture)
    w.add_name("Tiny random llama")
    w.add_block_count(spec.n_layers)
    w.add_context_length(256)
    w.add_embedding_length(spec.d_model)
    w.add_feed_forward_length(spec.d_ff)
    w.add_head_count(spec.n_heads)
    w.add_head_count_kv(spec.n_kv_heads)
    w.add_rope_freq_base(spec.rope_theta)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types([3] * len(CONTROL_TOKENS) + [1] * (len(tokens) - len(CONTROL_TOKENS)))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(TEMPLATE)

    def tensor(name, rows, cols, quantize=True, scale=0.2):
        data = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        if name.endswith(("attn_q.weight", "attn_k.weight")):
            data = permute(data, spec.n_heads if "attn_q" in name else spec.n_kv_heads)
        qtype = gguf.GGMLQuantizationType[spec.qtype] if quantize else gguf.GGMLQuantizationType.F32
        if qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    def norm(name, dim):
        w.add_tensor(name, (1.0 + 0.1 * rng.standard_normal(dim)).astype(np.float32))

    tensor("token_embd.weight", len(tokens), spec.d_model, scale=1.0)
    norm("output_norm.weight", spec.d_model)
    if not spec.tied:
        tensor("output.weight", len(tokens), spec.d_model)
    kv = spec.n_kv_heads * head_dim
    for i in range(spec.n_layers):
        norm(f"blk.{i}.attn_norm.weight", spec.d_model)
        norm(f"blk.{i}.ffn_norm.weight", spec.d_model)
        tensor(f"blk.{i}.attn_q.weight", spec.d_model, spec.d_model)
        tensor(f"blk.{i}.attn_k.weight", kv, spec.d_model)
        tensor(f"blk.{i}.attn_v.weight", kv, spec.d_model)
        tensor(f"blk.{i}.attn_output.weight", spec.d_model, spec.d_model)
        tensor(f"blk.{i}.ffn_gate.weight", spec.d_ff, spec.d_model)
        tensor(f"blk.{i}.ffn_up.weight", spec.d_ff, spec.d_model)
        tensor(f"blk.{i}.ffn_down.weight", spec.d_model, spec.d_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
