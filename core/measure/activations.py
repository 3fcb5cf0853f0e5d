"""Measure what a real transformer keeps for the backward pass, beside the formula.

A small GPT-style model (:class:`TinyGPT`: core.nn's pre-LayerNorm blocks with a
4h GELU MLP and dropout, the layer Korthikanti et al. 2022 analyse in section 4.1)
runs forward on this machine's device. Its eager attention (:func:`paper_attention`)
is the paper's: scores, softmax and dropout in the activation dtype, the causal mask a
model buffer; the fused path is core.nn's SDPA backend. Every tensor autograd saves for the
backward pass goes through ``torch.autograd.graph.saved_tensors_hooks``; we
count each storage once (views such as Q, K, V of one QKV buffer share a
storage), leave out parameters and buffers, and sort what is left into
activations, dropout masks and statistics. On CUDA the allocator's numbers are
read too: bytes held after the forward pass and the peak over forward and
backward. With checkpointing (torch.utils.checkpoint, reentrant mode, so the
saved inputs pass through the hook) only layer inputs are kept.

What the formula leaves out, and this shows: LayerNorm's saved mean and rstd
(2 x s x b per norm); dropout masks stored in the activation dtype on CPU
(PyTorch's CPU dropout multiplies by a mask of the input's dtype; CUDA keeps a
1-byte mask); fp32 runs (the paper assumes 16-bit); the recompute working set
during the backward pass; the allocator's rounding and temporaries (CUDA peak).

Does not handle: non-reentrant checkpointing (its saved inputs bypass the
hook), tensor/sequence parallelism (one device), CPU peak memory (no allocator
statistics on CPU: only the saved-tensor count).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psutil
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential

from core.memory import activation_terms, chain_activation_bytes, checkpoint_plan
from core.nn import DecoderBlock
from core.nn.attention import AttentionShape
from core.runtime.device import free_memory, oom_guard, synchronize
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import (
    ResourceError,
    ValidationError,
    check_choice,
    check_float,
    check_int,
)

ATTENTION_KINDS = ("eager", "sdpa")          # explicit softmax (the paper's layer) | fused SDPA
DTYPES = ("float32", "bfloat16", "float16")
CHECKPOINT_MODES = ("none", "full", "sqrt")
MAX_HIDDEN = 4096
MAX_HEADS = 64
MAX_LAYERS = 48
MAX_SEQ = 8192
MAX_BATCH = 64
MAX_VOCAB = 65_536
MAX_CPU_FLOPS = 4e11              # forward+backward FLOPs a CPU measurement may cost
MAX_CPU_BYTES = 4 * 2**30         # activations + states a CPU measurement may allocate
TIME_LIMIT_S = 120.0
TOP_TENSORS = 40                  # saved tensors listed per measurement


@dataclass(frozen=True)
class TinyGPTConfig:
    vocab: int = 512             # tokens in the vocabulary
    hidden: int = 128            # model width h
    heads: int = 4               # attention heads a
    layers: int = 4              # transformer blocks L
    seq: int = 128               # tokens per sequence s
    batch: int = 2               # sequences per step b
    dropout: float = 0.1         # dropout probability (0: no masks)
    attention: str = "eager"     # "eager" | "sdpa" (fused; attention dropout off)
    dtype: str = "float32"       # parameter and activation dtype

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def validate_tiny(cfg: TinyGPTConfig, device: str = "cpu") -> TinyGPTConfig:
    """Check sizes and combinations; raises ValidationError with what is wrong."""
    check_int("Vocabulary", cfg.vocab, 2, MAX_VOCAB)
    h = check_int("Hidden size", cfg.hidden, 8, MAX_HIDDEN)
    a = check_int("Attention heads", cfg.heads, 1, MAX_HEADS)
    if h % a:
        raise ValidationError(f"The {a} attention heads must divide the hidden size {h}.")
    check_int("Layers", cfg.layers, 1, MAX_LAYERS)
    check_int("Sequence length", cfg.seq, 1, MAX_SEQ)
    check_int("Batch", cfg.batch, 1, MAX_BATCH)
    check_float("Dropout", cfg.dropout, 0.0, 0.9)
    check_choice("Attention", cfg.attention, ATTENTION_KINDS)
    check_choice("dtype", cfg.dtype, DTYPES)
    if cfg.dtype == "float16" and torch.device(device).type == "cpu":
        raise ValidationError("float16 training on the CPU is not supported here: use bfloat16.")
    return cfg


# ---------------------------------------------------------------- the model
def paper_attention(q, k, v, *, causal, mask, scale, dropout, return_probs):
    """softmax(q k^T * scale) under ``mask`` (the model's (S, S) causal buffer, True = may attend),
    dropout on the probabilities, times v: every intermediate in the activation dtype, so autograd
    keeps what Korthikanti et al. count (the mask is a buffer view, not an activation).

    core.nn's attention-backend signature; q, k, v (B, a, S, d) -> ((B, a, S, d), None).
    """
    if causal or mask is None:
        raise ValueError("paper_attention takes causality from the mask (causal=False).")
    att = torch.where(mask, (q @ k.transpose(-2, -1)) * scale, float("-inf"))   # (B, a, S, S)
    att = F.dropout(att.softmax(dim=-1), dropout, training=True)
    return att @ v, None                                                        # (B, a, S, d)


class Block(DecoderBlock):
    """core.nn's pre-LN GPT block: x + Dropout(Attn(LN(x))), then x + Dropout(MLP(LN(x))).

    Eager attention (:func:`paper_attention`) drops out probabilities too; SDPA does not.
    """

    def __init__(self, cfg: TinyGPTConfig) -> None:
        h, a, eager = cfg.hidden, cfg.heads, cfg.attention == "eager"
        super().__init__(AttentionShape(h, a, a, h // a, qkv_bias=True, out_bias=True), d_ff=4 * h,
                         mlp="gelu", norm="layernorm", mlp_bias=True, dropout=cfg.dropout,
                         attn_dropout=cfg.dropout if eager else 0.0)
        self.eager = eager

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, S, H) -> (B, S, H); ``mask`` the model's (S_max, S_max) causal buffer."""
        S = x.shape[1]
        if self.eager:
            return super().forward(x, backend=paper_attention, causal=False, mask=mask[:S, :S])[0]
        return super().forward(x, backend="sdpa", causal=True)[0]


@dataclass
class TinyGPTInternals:
    layer_inputs: tuple[torch.Tensor, ...]   # what full checkpointing keeps: (B, S, H) per layer


class TinyGPT(nn.Module):
    """Token + position embeddings, ``layers`` blocks, final LayerNorm, untied head."""

    def __init__(self, cfg: TinyGPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab, cfg.hidden)
        self.pos = nn.Embedding(cfg.seq, cfg.hidden)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.hidden)
        self.head = nn.Linear(cfg.hidden, cfg.vocab, bias=False)
        causal = torch.ones(cfg.seq, cfg.seq, dtype=torch.bool).tril()               # (S, S) may attend
        self.register_buffer("causal", causal, persistent=False)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.tok(idx) + self.pos(pos)                                          # (B, S, H)

    def run_blocks(self, x: torch.Tensor, checkpointing: str = "none") -> torch.Tensor:
        """The layer chain, optionally checkpointed ("full": every layer; "sqrt": sqrt(L) segments)."""
        if checkpointing == "full":
            for block in self.blocks:
                x = checkpoint(block, x, self.causal, use_reentrant=True)
            return x
        if checkpointing == "sqrt":
            segments = len(checkpoint_plan(len(self.blocks), "sqrt").segments) + 1
            fns = [lambda t, b=b: b(t, self.causal) for b in self.blocks]
            return checkpoint_sequential(fns, segments, x, use_reentrant=True)
        for block in self.blocks:
            x = block(x, self.causal)
        return x

    def forward(self, idx: torch.Tensor, checkpointing: str = "none", return_internals: bool = False):
        x = self.embed(idx)
        inputs = []
        if return_internals:
            for block in self.blocks:
                inputs.append(x)
                x = block(x, self.causal)
        else:
            x = self.run_blocks(x, checkpointing)
        logits = self.head(self.ln_f(x))                                              # (B, S, V)
        return (logits, TinyGPTInternals(tuple(inputs))) if return_internals else logits


def build_model(cfg: TinyGPTConfig, device: str, seed: int = 0) -> TinyGPT:
    torch.manual_seed(seed)
    return TinyGPT(cfg).to(device=torch.device(device), dtype=cfg.torch_dtype).train()


# ---------------------------------------------------------------- saved-tensor accounting
@dataclass(frozen=True)
class SavedTensor:
    producer: str        # autograd node that produced it ("input" for a leaf, "-" if none)
    shape: tuple         # tensor shape as saved
    dtype: str
    nbytes: int          # bytes of its storage (each storage counted once)
    category: str        # "activation" | "dropout mask" | "LayerNorm statistics" | "softmax statistics" | "other"


def _category(t: torch.Tensor, batch: int, heads: int) -> str:
    if t.requires_grad:
        return "activation"
    if t.dim() >= 2 and t.shape[-1] == 1:
        return "LayerNorm statistics"
    if t.dim() == 3 and tuple(t.shape[:2]) == (batch, heads) and t.dtype == torch.float32:
        return "softmax statistics"
    if t.dim() >= 3:
        return "dropout mask"
    return "other"


def count_saved(fn: Callable[[], torch.Tensor], exclude: list[torch.Tensor], batch: int,
                heads: int) -> tuple[torch.Tensor, list[SavedTensor]]:
    """Run ``fn`` under saved_tensors_hooks; each saved storage once, ``exclude`` storages left out."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, SavedTensor] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key and key not in skip and key not in seen:
            producer = type(t.grad_fn).__name__ if t.grad_fn is not None else ("input" if t.requires_grad else "-")
            seen[key] = SavedTensor(producer, tuple(t.shape), str(t.dtype).replace("torch.", ""),
                                    int(storage.nbytes()), _category(t, batch, heads))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, list(seen.values())


# ---------------------------------------------------------------- prediction for the tiny model
def predict_tiny(cfg: TinyGPTConfig, checkpointing: str = "none", mask_bytes: float = 1.0) -> dict:
    """Korthikanti's terms for the tiny model: paper units (16-bit), the run's dtype, and the
    chain (stored / backward peak) under the checkpointing mode."""
    bpv = torch.empty(0, dtype=cfg.torch_dtype).element_size()
    common = {"seq": cfg.seq, "batch": cfg.batch, "hidden": cfg.hidden, "heads": cfg.heads,
              "flash_attention": cfg.attention == "sdpa", "dropout": cfg.dropout > 0}
    terms = activation_terms(**common, bytes_per_value=bpv, mask_bytes=mask_bytes)
    paper = activation_terms(**common, bytes_per_value=2, mask_bytes=1)
    by_kind = {"activation": 0.0, "dropout mask": 0.0, "softmax statistics": 0.0}
    for term in terms:
        by_kind[{"value": "activation", "mask": "dropout mask", "stat": "softmax statistics"}[term.kind]] += term.bytes
    layer = sum(t.bytes for t in terms)
    layer_input = float(cfg.seq * cfg.batch * cfg.hidden * bpv)
    plan = checkpoint_plan(cfg.layers, checkpointing)
    chain = chain_activation_bytes(plan, layer_bytes=layer, input_bytes=layer_input)
    full_layers = len(plan.kept_layers)
    by_kind = {k: v * full_layers for k, v in by_kind.items()}
    by_kind["activation"] += len(plan.stored_inputs) * layer_input
    paper_chain = chain_activation_bytes(plan, layer_bytes=sum(t.bytes for t in paper),
                                         input_bytes=2.0 * cfg.seq * cfg.batch * cfg.hidden)
    return {"stored": chain["stored"], "peak": chain["peak"], "by_category": by_kind,
            "paper_stored": paper_chain["stored"], "per_layer": layer, "plan": plan}


def estimate_cost(cfg: TinyGPTConfig) -> dict:
    """Bytes (worst case: 4-byte masks, parameters + grads + buffers) and FLOPs of one measured step."""
    pred = predict_tiny(cfg, "none", mask_bytes=4)
    n_params = cfg.layers * 12 * cfg.hidden**2 + (2 * cfg.vocab + cfg.seq) * cfg.hidden
    bpv = torch.empty(0, dtype=cfg.torch_dtype).element_size()
    tokens = cfg.seq * cfg.batch
    flops = 3 * (2 * tokens * n_params + cfg.layers * 4 * tokens * cfg.seq * cfg.hidden)
    return {"bytes": pred["stored"] + 3 * n_params * bpv + cfg.seq**2, "flops": float(flops),
            "n_params": n_params}


def check_fits(cfg: TinyGPTConfig, device: str) -> None:
    """Refuse measurements that would not fit this device (memory) or take too long (CPU)."""
    cost = estimate_cost(cfg)
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        budget = 0.8 * free
    else:
        budget = min(MAX_CPU_BYTES, 0.25 * psutil.virtual_memory().available)
        if cost["flops"] > MAX_CPU_FLOPS:
            raise ResourceError(
                f"This measurement needs about {cost['flops'] / 1e9:,.0f} GFLOP, more than the "
                f"{MAX_CPU_FLOPS / 1e9:,.0f} GFLOP allowed on a CPU. Lower the sequence length, "
                "batch, width or layers.")
    if cost["bytes"] > budget:
        raise ResourceError(
            f"This measurement would need about {cost['bytes'] / 2**30:,.2f} GiB, more than the "
            f"{budget / 2**30:,.2f} GiB available for it on {dev.type}. Lower the sequence length, "
            "batch, width or layers.")


# ---------------------------------------------------------------- the measurement
@dataclass(frozen=True)
class ActivationMeasurement:
    config: TinyGPTConfig
    checkpointing: str                  # "none" | "full" | "sqrt"
    device: str
    measured_bytes: int                 # saved for backward (hooks, storages counted once)
    measured_by_category: dict          # category -> bytes
    predicted_paper: float              # Korthikanti formula: 16-bit values, 1-byte masks
    predicted_dtype: float              # the same terms at the run's dtype, 1-byte masks
    predicted_explained: float          # at the measured mask width, plus measured LayerNorm stats
    predicted_by_category: dict         # category -> bytes (at the measured mask width)
    predicted_peak: float               # chain peak in the backward (recompute working set)
    cuda_held_bytes: int | None         # allocated after forward minus before (CUDA)
    cuda_peak_bytes: int | None         # max allocated over forward + backward minus before (CUDA)
    n_saved: int                        # distinct saved storages
    tensors: tuple                      # the largest SavedTensor records
    explanation: tuple                  # what the formula leaves out, for this run

    @property
    def diff_vs_dtype(self) -> float:
        """(measured - predicted at the run's dtype) / predicted."""
        return (self.measured_bytes - self.predicted_dtype) / self.predicted_dtype

    @property
    def diff_vs_explained(self) -> float:
        return (self.measured_bytes - self.predicted_explained) / self.predicted_explained


def _one_step(model: TinyGPT, x: torch.Tensor, g: torch.Tensor, mode: str, dev: torch.device,
              cfg: TinyGPTConfig) -> tuple[list[SavedTensor], int | None, int | None]:
    """Forward under the hook, backward; CUDA held/peak bytes around it."""
    exclude = [*model.parameters(), *model.buffers()]     # x (layer 0's input) is an activation
    cuda = dev.type == "cuda"
    if cuda:
        synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
    y, saved = count_saved(lambda: model.run_blocks(x, mode), exclude, cfg.batch, cfg.heads)
    loss = (y * g).sum()                                   # saves only g: y itself is not kept
    del y
    held = None
    if cuda:
        synchronize(dev)
        held = torch.cuda.memory_allocated(dev) - before
    loss.backward()
    peak = None
    if cuda:
        synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - before
    return saved, held, peak


def measure_activations(cfg: TinyGPTConfig, checkpointing: str = "none", device: str = "cpu",
                        progress: Callable[[float, str], None] | None = None,
                        on_wait: Callable[[int, float], None] | None = None) -> ActivationMeasurement:
    """Run the tiny model forward and backward once on ``device`` and count what was saved."""
    cfg = validate_tiny(cfg, device)
    mode = check_choice("Checkpointing", checkpointing, CHECKPOINT_MODES)
    dev = torch.device(device)
    check_fits(cfg, device)
    with heavy_job("activation measurement", str(dev), time_limit_s=TIME_LIMIT_S, on_wait=on_wait) as job, \
            oom_guard("The activation measurement", dev, "Lower the sequence length or batch."):
        _tell(progress, 0.1, N_("building the model"))
        model = build_model(cfg, str(dev))
        gen = torch.Generator().manual_seed(1)
        idx = torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq), generator=gen).to(dev)   # (B, S)
        g = torch.randn(cfg.batch, cfg.seq, cfg.hidden, generator=gen).to(dev, cfg.torch_dtype)
        if dev.type == "cuda":     # allocate gradients first, so the peak is activations only
            _tell(progress, 0.3, N_("warm-up step (allocates gradients)"))
            _one_step(model, model.embed(idx), g, mode, dev, cfg)
            job.check()
        _tell(progress, 0.6, N_("measured step"))
        saved, held, peak = _one_step(model, model.embed(idx), g, mode, dev, cfg)
        job.check()
    result = _assemble(cfg, mode, str(dev), saved, held, peak)
    del model
    free_memory(dev)
    _tell(progress, 1.0, N_("done"))
    return result


def _assemble(cfg, mode, device, saved, held, peak) -> ActivationMeasurement:
    by_cat: dict[str, int] = {}
    for t in saved:
        by_cat[t.category] = by_cat.get(t.category, 0) + t.nbytes
    masks = [t for t in saved if t.category == "dropout mask"]
    mask_width = torch.empty(0, dtype=getattr(torch, masks[0].dtype)).element_size() if masks else 1
    pred = predict_tiny(cfg, mode, mask_bytes=1)
    explained = predict_tiny(cfg, mode, mask_bytes=mask_width)
    ln_stats = by_cat.get("LayerNorm statistics", 0)
    measured = sum(by_cat.values())
    return ActivationMeasurement(
        config=cfg, checkpointing=mode, device=device, measured_bytes=measured,
        measured_by_category=by_cat, predicted_paper=pred["paper_stored"],
        predicted_dtype=pred["stored"], predicted_explained=explained["stored"] + ln_stats,
        predicted_by_category={**explained["by_category"], "LayerNorm statistics": 0.0},
        predicted_peak=explained["peak"] + ln_stats, cuda_held_bytes=held, cuda_peak_bytes=peak,
        n_saved=len(saved), tensors=tuple(sorted(saved, key=lambda t: -t.nbytes)[:TOP_TENSORS]),
        explanation=tuple(_explain(cfg, mode, by_cat, mask_width)))


def _explain(cfg: TinyGPTConfig, mode: str, by_cat: dict, mask_width: int) -> list[str]:
    lines = []
    if cfg.dtype == "float32":
        lines.append(N_("The run is fp32: 4 bytes per value where the paper counts 2 (16-bit)."))
    if by_cat.get("LayerNorm statistics"):
        lines.append(N_("LayerNorm saves its mean and 1/std per token for the backward pass "
                        "(2 x s x b values per norm); the formula leaves them out."))
    if mask_width > 1:
        lines.append(N_(f"Dropout masks are stored with {mask_width} bytes per value (PyTorch's CPU "
                        "dropout multiplies by a mask of the input dtype); the paper counts 1 byte."))
    if cfg.attention == "sdpa":
        lines.append(N_("Fused attention keeps no s x s matrix: only fp32 softmax statistics "
                        "(logsumexp, a x s x b values), as FlashAttention does. Attention dropout is off "
                        "on this path."))
    if mode != "none":
        lines.append(N_("Checkpointed layers keep only their input; in the backward pass one segment "
                        "at a time is recomputed (the peak adds that working set)."))
    return lines


def _tell(progress, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)
