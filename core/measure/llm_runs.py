"""The real model, measured: SmolLM2's KV cache, attention backends, fine-tuning memory, FP8.

Each idea the other pages teach on small models, measured on the pretrained LLM and
put next to the prediction:
- ``measure_kv_cache``: bytes held by a real KV cache after T tokens vs
  core.memory.kv_cache_bytes_per_token, and what the same model would cache as MHA or
  with MLA-style latents (DeepSeek-V2 section 2.1).
- ``compare_backends``: one prompt through each attention backend of core/nn (naive,
  SDPA, tiled, our Triton kernel): same next-token distribution (max |Δ logit|, top-1
  agreement) and the attention bytes each materialises at this length.
- ``finetune_memory``: a few AdamW steps of the whole model, storing every activation
  or checkpointing each decoder block (torch.utils.checkpoint): saved-for-backward bytes
  (saved_tensors_hooks), peak memory (CUDA allocator, or tracked tensor bytes on a CPU),
  time per step, next to core.memory.llama_training_activations, term by term.
- ``fp8_quality``: the linear weights in FP8 (E4M3 per tensor, per output channel,
  DeepSeek-V3's 128x128 blocks with 1x128 activation tiles; E5M2 for contrast) and the
  perplexity on held-out Wikipedia text, with bytes per parameter and weight errors.
  The baseline is the GGUF file's Q4_1 weights (dequantized), not the original bf16.
Does not handle: batches of several prompts, optimizer memory beyond AdamW's two states,
FP8 matmuls (weights are quantized and dequantized; the arithmetic stays in float32/bf16).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from core import fp8
from core.configs import PRESETS
from core.data.corpus import wiki_text
from core.llm import PretrainedLM
from core.measure.activations import count_saved
from core.measure.attention_bench import analytic_memory_bytes
from core.measure.timing import TensorBytesTracker, time_fn
from core.memory import (
    kv_cache_bytes_per_token,
    llama_activation_terms,
    llama_head_terms,
    llama_training_activations,
)
from core.nn import BACKENDS, KVCache
from core.nn.attention import TILED_BLOCK
from core.runtime.device import free_memory, kernel_interpreted, oom_guard, synchronize
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import ValidationError, check_choice, check_int

Progress = Callable[[float, str], None] | None
INTERPRETER_MAX_TOKENS = 48       # the Triton kernel under the CPU interpreter: a short prompt
MAX_KV_TOKENS = 2048              # measure_kv_cache on a CPU
MAX_FINETUNE_SEQ_CPU = 512        # fine-tuning sequence length on a CPU (more on CUDA)
MAX_FINETUNE_SEQ_CUDA = 4096
MAX_FINETUNE_STEPS = 8
MAX_EVAL_TOKENS = 8192            # fp8_quality's held-out tokens
TIME_LIMIT_S = 600
HELD_OUT_FRACTION = 0.1           # the last 10 % of the Wikipedia sample (core.data.char_data's split)


def _elem(lm: PretrainedLM) -> int:
    return torch.empty(0, dtype=lm.dtype).element_size()


def heldout_ids(lm: PretrainedLM, n_tokens: int) -> list[int]:
    """The first ``n_tokens`` tokens of the held-out end of the Wikipedia sample."""
    text = wiki_text()
    tail = text[int(len(text) * (1 - HELD_OUT_FRACTION)):]
    ids = lm.tokenizer.encode(tail, add_special_tokens=False).ids
    if len(ids) < n_tokens:
        raise ValidationError(f"The held-out text has {len(ids):,} tokens; asked for {n_tokens:,}.")
    return ids[:n_tokens]


# ---------------------------------------------------------------------- KV cache
@dataclass(frozen=True)
class KVMeasurement:
    tokens: int
    dtype: str
    measured_bytes: int           # bytes the cache's tensors hold for these tokens
    allocated_bytes: int          # what its chunked buffers take
    predicted_bytes: int          # kv_cache_bytes_per_token x tokens
    rows: tuple                   # per variant: {"name", "kind", "values_per_token_layer", "bytes_per_token", "bytes"}


def mla_style(config, kv_lora_rank: int | None = None, rope_dim: int | None = None):
    """The same model with an MLA-style latent cache: DeepSeek-V3's ratios (latent = 4 x
    head_dim, decoupled RoPE key = head_dim / 2), unless given."""
    return replace(config, name=f"{config.name} with MLA latents", kv_lora_rank=kv_lora_rank or 4 * config.head_dim,
                   qk_rope_head_dim=rope_dim or config.head_dim // 2, qk_nope_head_dim=config.head_dim,
                   v_head_dim=config.head_dim)


def measure_kv_cache(lm: PretrainedLM, tokens: int) -> KVMeasurement:
    """Prefill ``tokens`` held-out tokens through a real KV cache and read its bytes."""
    cap = MAX_KV_TOKENS if lm.device.type != "cuda" else lm.context_cap
    n = check_int("Tokens", tokens, 1, min(cap, lm.context_cap))
    ids = torch.tensor([heldout_ids(lm, n)], device=lm.device)
    cache = KVCache(lm.decoder_config.n_layers)
    with torch.no_grad(), oom_guard("The KV-cache measurement", lm.device, hint="Use fewer tokens."):
        lm.model(ids, cache=cache, last_only=True)
    bpv = _elem(lm)
    cfg = lm.config
    variants = [(N_("This model (GQA)"), cfg), (N_("As MHA"), replace(cfg, kv_heads=cfg.heads)),
                (N_("With MLA latents"), mla_style(cfg)), (N_("Llama-2-7B (MHA)"), PRESETS["llama-2-7b"]),
                (N_("DeepSeek-V3 (MLA)"), PRESETS["deepseek-v3"])]
    rows = tuple({"name": name, "kind": c.attention_kind.upper(), "layers": c.layers,
                  "values_per_token_layer": kv_cache_bytes_per_token(c, 1) // c.layers,
                  "bytes_per_token": kv_cache_bytes_per_token(c, bpv),
                  "bytes": kv_cache_bytes_per_token(c, bpv) * n} for name, c in variants)
    return KVMeasurement(n, str(lm.dtype).removeprefix("torch."), cache.nbytes(), cache.allocated_bytes(),
                         kv_cache_bytes_per_token(cfg, bpv) * n, rows)


# ---------------------------------------------------------------------- attention backends
@dataclass(frozen=True)
class BackendRun:
    backend: str
    ran: bool                     # False: refused (reason says why)
    reason: str | None
    top_ids: tuple[int, ...]      # the 10 most likely next tokens
    top_probs: tuple[float, ...]
    max_abs_dlogit: float | None  # vs the reference backend, over all positions and tokens
    top1_agree: float | None      # share of positions whose top-1 token equals the reference's
    attention_bytes: int | None   # one layer's attention forward beyond Q, K, V (None: SDPA's own)


def backend_limit(lm: PretrainedLM, backend: str) -> int | None:
    """Longest prompt a backend runs here (None: the context cap)."""
    if backend == "triton" and kernel_interpreted(lm.device):
        return INTERPRETER_MAX_TOKENS
    return None


def compare_backends(lm: PretrainedLM, ids, backends=BACKENDS, reference: str = "sdpa") -> list[BackendRun]:
    """Logits of one prompt through each backend, compared with ``reference``'s."""
    x = lm.check_ids(ids)
    T = x.shape[1]
    ref = lm.logits(x, backend=check_choice("Reference", reference, BACKENDS))[0]    # (T, V)
    runs = []
    for backend in backends:
        check_choice("Attention backend", backend, BACKENDS)
        limit = backend_limit(lm, backend)
        mem = _attention_bytes(lm, backend, T)
        if limit is not None and limit < T:
            runs.append(BackendRun(backend, False, N_(f"Triton's CPU interpreter runs the kernel in Python; "
                                                      f"prompts up to {limit} tokens here (this one has {T})."),
                                   (), (), None, None, mem))
            continue
        logits = ref if backend == reference else lm.logits(x, backend=backend)[0]
        probs, top = logits[-1].softmax(-1).topk(10)
        runs.append(BackendRun(backend, True, None, tuple(top.tolist()), tuple(probs.tolist()),
                               float((logits - ref).abs().max()),
                               float((logits.argmax(-1) == ref.argmax(-1)).float().mean()), mem))
    return runs


def _attention_bytes(lm: PretrainedLM, backend: str, T: int) -> int | None:
    """Bytes one layer's attention forward allocates beyond Q, K, V (core.attention's formula;
    the output included); None for SDPA, whose kernel torch picks at run time."""
    return analytic_memory_bytes(backend, 1, lm.config.heads, T, lm.config.head_dim, lm.dtype,
                                 TILED_BLOCK, TILED_BLOCK)


def prefill_timings(lm: PretrainedLM, seqs, backends=BACKENDS, *, repeats: int = 3,
                    progress: Progress = None, on_wait=None) -> list[dict]:
    """Median prefill ms per (backend, T); Triton under the CPU interpreter is not timed."""
    seqs = [check_int("Prompt length", n, 1, lm.context_cap) for n in seqs]
    rows, total = [], len(seqs) * len(backends)
    with heavy_job("SmolLM2 prefill timings", str(lm.device), time_limit_s=TIME_LIMIT_S, on_wait=on_wait) as job:
        for i, (n, backend) in enumerate((n, b) for n in seqs for b in backends):
            if progress:
                progress(i / total, N_(f"{backend} at T={n:,}"))
            job.check()
            limit = backend_limit(lm, backend)
            if limit is not None:
                rows.append({"backend": backend, "tokens": n, "ms": None, "status": N_("interpreter: not timed")})
                continue
            x = torch.tensor([heldout_ids(lm, n)], device=lm.device)
            with torch.no_grad(), oom_guard("Prefill", lm.device, hint="Use a shorter prompt."):
                t = time_fn(lambda x=x, b=backend: lm.model(x, backend=b, last_only=True), lm.device,
                            warmup=1, repeats=repeats)
            rows.append({"backend": backend, "tokens": n, "ms": t.median_ms, "status": N_("ok"),
                         "tok_s": n / (t.median_ms / 1e3)})
    return rows


# ---------------------------------------------------------------------- fine-tuning memory
@dataclass(frozen=True)
class FinetuneConfig:
    seq: int = 128                # tokens per sequence
    batch: int = 1                # sequences per step
    steps: int = 3                # AdamW steps per run: warm-up (allocates states), tracked, timed ...
    lr: float = 1e-5              # AdamW learning rate
    backend: str = "sdpa"         # attention backend: "sdpa" (flash-style) or "naive"
    seed: int = 0


@dataclass(frozen=True)
class FinetuneRun:
    checkpoint: bool              # activation checkpointing per decoder block
    saved_bytes: int              # saved for backward in one forward + loss (storages once)
    predicted_bytes: float        # core.memory.llama_training_activations()["stored"]
    explained_bytes: float        # prediction + this implementation's own terms (``extras``)
    extras: tuple                 # (what, bytes) the formula leaves out, for this run
    peak_bytes: int               # forward + backward peak above what was allocated before it
    update_peak_bytes: int        # the AdamW update's own peak (its temporaries)
    peak_kind: str                # "CUDA peak allocated" | "tracked tensor bytes (CPU)"
    predicted_peak: float         # activations' backward peak + gradients (set_to_none)
    gradient_bytes: int           # one gradient per parameter
    step_ms: float                # median time per step (untracked steps)
    losses: tuple[float, ...]     # loss of every step
    top_saved: tuple              # the largest saved tensors (SavedTensor)


def check_finetune(cfg: FinetuneConfig, device) -> FinetuneConfig:
    cap = MAX_FINETUNE_SEQ_CUDA if torch.device(device).type == "cuda" else MAX_FINETUNE_SEQ_CPU
    check_int("Sequence length", cfg.seq, 8, cap)
    check_int("Batch", cfg.batch, 1, 8)
    check_int("Steps", cfg.steps, 3, MAX_FINETUNE_STEPS)   # warm-up, tracked, then timed steps
    check_choice("Attention backend", cfg.backend, ("sdpa", "naive"))
    if not 0 < float(cfg.lr) <= 1e-2:
        raise ValidationError("The learning rate must be in (0, 0.01].")
    return cfg


def implementation_extras(lm: PretrainedLM, cfg: FinetuneConfig, checkpoint: bool) -> list[tuple[str, float]]:
    """What our blocks save beyond the formula's terms, exactly (bytes)."""
    c, bpv, tokens = lm.config, _elem(lm), cfg.seq * cfg.batch
    h, hkv, L = c.hidden, c.kv_heads * c.head_dim, c.layers
    ids = 8.0 * cfg.batch * (cfg.seq + 1)                                  # the int64 batch (inputs and targets)
    rows = [(N_("RMSNorm also keeps x / rms before the weight (final norm)"), tokens * h * bpv),
            (N_("Token ids (int64; inputs and targets share one tensor)"), ids),
            (N_("Cross-entropy's total weight (one fp32 scalar)"), 4.0)]
    if not checkpoint:
        rows += [(N_("RMSNorm also keeps x / rms before the weight (2 per block)"), 2.0 * L * tokens * h * bpv),
                 (N_("V is a view of the fused q/k/v output, so q and k before RoPE stay too"),
                  L * tokens * (h + hkv) * bpv),
                 (N_("RoPE's cos and sin tables (shared by all blocks)"), 2.0 * cfg.seq * (c.head_dim // 2) * bpv)]
    return rows


def finetune_memory(lm: PretrainedLM, cfg: FinetuneConfig = FinetuneConfig(), *, progress: Progress = None,
                    on_wait=None) -> tuple[FinetuneRun, FinetuneRun]:
    """The same AdamW fine-tuning steps twice: storing every activation, then checkpointing
    each decoder block. Each run works on its own copy of the weights."""
    cfg = check_finetune(cfg, lm.device)
    data = torch.tensor(heldout_ids(lm, cfg.batch * (cfg.seq + 1)), device=lm.device).view(cfg.batch, -1)
    runs = []
    with heavy_job("SmolLM2 fine-tuning memory", str(lm.device), time_limit_s=TIME_LIMIT_S,
                   on_wait=on_wait) as job, oom_guard("Fine-tuning", lm.device, "Lower the sequence length."):
        for i, ckpt in enumerate((False, True)):
            runs.append(_finetune_run(lm, cfg, data, ckpt, job, progress, i))
            free_memory(lm.device)            # the run's weight copy and optimizer are gone now
    return runs[0], runs[1]


def _finetune_run(lm, cfg, data, checkpoint: bool, job, progress, index: int) -> FinetuneRun:
    def tell(frac, text):
        if progress:
            progress((index + frac) / 2,
                     N_(f"checkpointed: {text}") if checkpoint else N_(f"every activation stored: {text}"))

    tell(0.0, N_("copying the weights"))
    model = copy.deepcopy(lm.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    x, y = data[:, :-1], data[:, 1:]

    def forward():
        logits = model(x, checkpoint=checkpoint, backend=cfg.backend)                 # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    def update():
        opt.step()
        opt.zero_grad(set_to_none=True)

    def step(loss):
        loss.backward()
        update()
        return float(loss.detach())

    losses = [step(forward())]                           # allocates gradients and AdamW states
    job.check()
    tell(0.3, N_("measured step"))
    saved, peak, update_peak, loss = _tracked_step(lm, forward, lambda loss: loss.backward(), update, model)
    losses.append(loss)
    times = []
    for k in range(2, cfg.steps):
        job.check()
        tell(0.3 + 0.7 * k / cfg.steps, N_(f"step {k + 1} of {cfg.steps}"))
        start = time.perf_counter()
        losses.append(step(forward()))
        synchronize(lm.device)
        times.append((time.perf_counter() - start) * 1e3)
    return _finetune_result(lm, cfg, checkpoint, saved, (peak, update_peak), times, losses)


def _tracked_step(lm, forward, backward, update, model):
    """One step: saved tensors counted in the forward; peak memory of forward + backward
    (activations and gradients) and of the optimizer update, apart."""
    def measured(fn):
        if lm.device.type != "cuda":
            with TensorBytesTracker() as tracker:
                out = fn()
            return out, tracker.peak_bytes
        synchronize(lm.device)
        torch.cuda.reset_peak_memory_stats(lm.device)
        before = torch.cuda.memory_allocated(lm.device)
        out = fn()
        synchronize(lm.device)
        return out, int(torch.cuda.max_memory_allocated(lm.device) - before)

    def forward_backward():
        loss, saved = count_saved(forward, [*model.parameters()], 1, lm.config.heads)
        backward(loss)
        return float(loss.detach()), saved

    (loss, saved), peak = measured(forward_backward)
    _, update_peak = measured(update)
    return saved, peak, update_peak, loss


def _finetune_result(lm, cfg, checkpoint, saved, peak, times, losses) -> FinetuneRun:
    bpv = _elem(lm)
    pred = llama_training_activations(lm.config, seq=cfg.seq, batch=cfg.batch, bytes_per_value=bpv,
                                      flash_attention=cfg.backend == "sdpa", checkpoint=checkpoint)
    extras = implementation_extras(lm, cfg, checkpoint)
    grads = sum(p.numel() for p in lm.model.parameters()) * bpv
    return FinetuneRun(
        checkpoint=checkpoint, saved_bytes=sum(t.nbytes for t in saved), predicted_bytes=pred["stored"],
        explained_bytes=pred["stored"] + sum(b for _, b in extras), extras=tuple(extras), peak_bytes=peak[0],
        update_peak_bytes=peak[1],
        peak_kind=N_("CUDA peak allocated") if lm.device.type == "cuda" else N_("tracked tensor bytes (CPU)"),
        predicted_peak=pred["peak"] + grads, gradient_bytes=grads,
        step_ms=statistics.median(times),
        losses=tuple(losses), top_saved=tuple(sorted(saved, key=lambda t: -t.nbytes)[:12]))


def activation_term_table(lm: PretrainedLM, cfg: FinetuneConfig) -> list[dict]:
    """The formula's terms for this exact config: one block and the head, in bytes."""
    bpv = _elem(lm)
    block = llama_activation_terms(lm.config, seq=cfg.seq, batch=cfg.batch, bytes_per_value=bpv,
                                   flash_attention=cfg.backend == "sdpa")
    head = llama_head_terms(lm.config, seq=cfg.seq, batch=cfg.batch, bytes_per_value=bpv)
    return ([{"term": t.name, "where": N_(f"each of {lm.config.layers} blocks"), "bytes": t.bytes} for t in block]
            + [{"term": t.name, "where": N_("once (head and loss)"), "bytes": t.bytes} for t in head])


# ---------------------------------------------------------------------- FP8 on the real weights
FP8_RECIPES = {   # key: (label, format, weight scaling, activation scaling)
    "file": (N_("The file's weights (Q4_1 / Q8_0, dequantized)"), None, None, None),
    "e4m3-tensor": (N_("E4M3, one scale per tensor"), "e4m3", "tensor", None),
    "e4m3-row": (N_("E4M3, one scale per output channel"), "e4m3", "row", None),
    "e4m3-block": (N_("E4M3, 128×128 weight blocks + 1×128 activation tiles (DeepSeek-V3)"), "e4m3", "block", "tile"),
    "e5m2-block": (N_("E5M2, 128×128 weight blocks + 1×128 activation tiles"), "e5m2", "block", "tile"),
}


@dataclass(frozen=True)
class FP8Row:
    recipe: str
    label: str
    perplexity: float             # exp(mean NLL) on the held-out tokens
    nll: float                    # mean negative log-likelihood (nats / token)
    bytes_per_param: float        # of the quantized linear weights (FP8 byte + scales); the file: Q4_1's
    rel_err_max: float | None     # ‖Ŵ − W‖ / ‖W‖ over the linear weights: worst tensor
    rel_err_mean: float | None    # ... mean over tensors
    tensors: int                  # linear weights quantized


def _weight_parts(lm: PretrainedLM):
    """(block index, parameter name, row splits) of every linear weight, split into the
    file's own tensors (q, k, v; gate, up) so each is scaled on its own, as in the file."""
    c = lm.decoder_config
    qkv = [c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim]
    return [(i, name, splits) for i in range(c.n_layers)
            for name, splits in (("attn.qkv", qkv), ("attn.proj", None), ("mlp.gate_up", [c.d_ff, c.d_ff]),
                                 ("mlp.down", None))]


def _quantized_copy(lm: PretrainedLM, fmt: str, scheme: str, act_scheme: str | None):
    model = copy.deepcopy(lm.model).eval()
    errors, q_bytes, numel = [], 0, 0
    for i, name, splits in _weight_parts(lm):
        linear = model.blocks[i].get_submodule(name)
        w = linear.weight.data
        pieces = w.split(splits) if splits else (w,)
        out = []
        for piece in pieces:
            q = fp8.quantize(piece.float(), fmt, scheme)
            deq = fp8.dequantize(q)
            errors.append(float((deq - piece.float()).norm() / piece.float().norm()))
            q_bytes, numel = q_bytes + q.nbytes, numel + piece.numel()
            out.append(deq.to(w.dtype))
        linear.weight.data.copy_(torch.cat(out))
        if act_scheme:
            linear.register_forward_pre_hook(_activation_hook(fmt, act_scheme))
    return model, errors, q_bytes / numel


def _activation_hook(fmt: str, scheme: str):
    def hook(_module, args):
        x = args[0]
        flat = x.reshape(-1, x.shape[-1]).float()
        return (fp8.dequantize(fp8.quantize(flat, fmt, scheme)).to(x.dtype).view_as(x),)
    return hook


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, window: int) -> float:
    """Mean NLL (nats/token) over non-overlapping windows of ``window`` tokens."""
    total, count = 0.0, 0
    for start in range(0, ids.numel() - 1, window):
        chunk = ids[start:start + window + 1][None]                              # (1, <= window + 1)
        if chunk.shape[1] < 2:
            break
        logits = model(chunk[:, :-1]).float()                                     # (1, T, V)
        total += float(F.cross_entropy(logits[0], chunk[0, 1:], reduction="sum"))
        count += chunk.shape[1] - 1
    return total / count


def fp8_quality(lm: PretrainedLM, recipes=tuple(FP8_RECIPES), *, eval_tokens: int = 1024, window: int = 512,
                progress: Progress = None, on_wait=None) -> list[FP8Row]:
    """Perplexity of held-out Wikipedia text under each FP8 recipe (embeddings, norms and the
    tied head keep the file's precision, as DeepSeek-V3 keeps embedding and head in BF16)."""
    n = check_int("Evaluation tokens", eval_tokens, 64, MAX_EVAL_TOKENS)
    window = check_int("Window", window, 16, lm.context_cap)
    for r in recipes:
        check_choice("FP8 recipe", r, FP8_RECIPES)
    ids = torch.tensor(heldout_ids(lm, n + 1), device=lm.device)
    file_bits = lm.info.tensor_types.get("Q4_1", {})
    rows = []
    with heavy_job("SmolLM2 FP8 perplexity", str(lm.device), time_limit_s=TIME_LIMIT_S, on_wait=on_wait) as job, \
            oom_guard("The FP8 evaluation", lm.device, "Use fewer evaluation tokens."):
        for i, key in enumerate(recipes):
            job.check()
            label, fmt, scheme, act = FP8_RECIPES[key]
            if progress:
                progress(i / len(recipes), label)
            if fmt is None:
                model, errors = lm.model, []
                bpp = file_bits["bytes"] / file_bits["weights"] if file_bits else float(_elem(lm))
            else:
                model, errors, bpp = _quantized_copy(lm, fmt, scheme, act)
            nll = perplexity(model, ids, window)
            rows.append(FP8Row(key, label, math.exp(nll), nll, bpp, max(errors) if errors else None,
                               statistics.fmean(errors) if errors else None, len(errors)))
            del model
    return rows
