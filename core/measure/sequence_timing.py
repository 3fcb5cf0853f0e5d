"""Measured time of RNN/LSTM/GRU versus a Transformer as the sequence grows, and in generation.

- Time vs T: forward, and forward + backward, of freshly initialised models
  (weights do not change the time) on random token ids, for T from 64 to
  several thousand. Median of repeats after warm-up (core.measure.timing.time_fn:
  CUDA events on a GPU, perf_counter elsewhere). The recurrent models run
  through torch.nn.RNN/LSTM/GRU (cuDNN on a GPU), the Transformer through
  F.scaled_dot_product_attention.
- Generation: tokens per second when generating N tokens one at a time. The
  RNN carries an O(1) state (h_t, plus c_t for the LSTM); the Transformer
  either keeps a key/value cache that grows by one position per token (each
  new token attends over t cached keys), or recomputes the whole prefix every
  step (no cache). The state/cache bytes are reported with each row.
- Analytic counts, kept apart from timing: forward FLOPs (2 per
  multiply-add, matrix products only; attention counted over the causal
  triangle) and the longest chain of sequential steps (T x L for a stacked
  RNN, L for a Transformer).
Every point is checked against a memory estimate and caps before it runs;
out-of-memory becomes a ResourceError; a point that takes too long stops the
larger sizes of that model (status "skipped").
References: Vaswani et al. 2017, Sec. 4 and Table 1 (per-layer complexity,
sequential operations); Appleyard, Kocisky & Blunsom 2016 (cuDNN RNNs).
Does not handle: mixed precision, torch.compile, batching of generation
requests of different lengths.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import torch

from core.measure.timing import time_fn
from core.models.sequence_models import (
    KINDS,
    LABELS,
    SeqConfig,
    TransformerConfig,
    build_model,
    cpu_threads,
    generate,
    generate_recompute,
    lm_loss,
)
from core.runtime.device import DeviceOutOfMemory, oom_guard
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import (
    ResourceError,
    ValidationError,
    check_choice,
    check_float,
    check_int,
)

Progress = Callable[[float, str], None] | None

MODES = (N_("forward"), N_("forward+backward"))
GEN_MODES = {"rnn": (N_("state"),), "lstm": (N_("state"),), "gru": (N_("state"),),
             "transformer": (N_("KV cache"), N_("recompute"))}
MAX_TIMING_T = 65_536           # positions per sequence in a timing
MAX_TIMING_TOKENS = 1 << 20     # batch x T per timed call
MAX_TIMING_POINTS = 256         # (model, T, mode) points per call
MAX_GEN_TOKENS = 4_000          # generated tokens per timed call
MAX_GEN_BATCH = 64
MEMORY_FRACTION = 0.3           # a point may use this share of the free memory (estimate)
MAX_SECONDS = 1_800.0           # one timing call in all


@dataclass(frozen=True)
class TimingSpec:
    lengths: tuple[int, ...] = (64, 256, 1024, 4096)   # sequence lengths T
    batch: int = 8                # sequences per call
    modes: tuple[str, ...] = MODES  # "forward" and/or "forward+backward"
    warmup: int = 1               # untimed runs per point
    repeats: int = 3              # timed runs per point (median reported)
    max_point_s: float = 5.0      # skip a T predicted to take longer per call than this
    threads: int | None = None    # CPU torch threads (None: the process setting)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.lengths:
            raise ValidationError("Pick at least one sequence length.")
        for T in self.lengths:
            check_int("Sequence length", T, 1, MAX_TIMING_T)
        check_int("Batch size", self.batch, 1, 1024)
        if not self.modes:
            raise ValidationError("Pick forward and/or forward+backward.")
        for m in self.modes:
            check_choice("Mode", m, MODES)
        check_int("Warm-up runs", self.warmup, 0, 20)
        check_int("Repeats", self.repeats, 1, 50)
        check_float("Seconds per point", self.max_point_s, 0.0, 600.0, lo_open=True)
        if self.threads is not None:
            check_int("Threads", self.threads, 1, 256)


# ---------------------------------------------------------------- analytic counts
def forward_flops(config: SeqConfig, batch: int, T: int) -> int:
    """Matrix-product FLOPs of one forward pass over (batch, T) tokens (2 per multiply-add)."""
    V = config.vocab_size
    if isinstance(config, TransformerConfig):
        d, f, L = config.d_model, config.d_ff, config.n_layers
        dense = L * (4 * d * d + 2 * d * f) + d * V                 # per token
        attn = L * 2 * d * T * (T + 1) // 2                         # QK^T and PV, causal triangle
        return 2 * batch * (T * dense + attn)
    E, H, L = config.d_embed, config.d_hidden, config.n_layers
    g = {"rnn": 1, "lstm": 4, "gru": 3}[config.kind]
    per_token = sum(g * H * ((E if i == 0 else H) + H) for i in range(L)) + H * V
    return 2 * batch * T * per_token


def sequential_steps(config: SeqConfig, T: int) -> int:
    """Longest chain of dependent steps from the first input to the last output."""
    if isinstance(config, TransformerConfig):
        return config.n_layers
    return T + config.n_layers - 1


def estimate_bytes(config: SeqConfig, batch: int, T: int, mode: str) -> int:
    """Rough peak bytes (fp32) of one call: activations kept for backward, logits, workspace."""
    V, N = config.vocab_size, batch * T
    if isinstance(config, TransformerConfig):
        d, f = config.d_model, config.d_ff
        # ln, qkv, attention out and its log-sum-exp, proj, mlp; SDPA's fused kernels
        # (flash / memory-efficient, CPU and CUDA) never hold the (T, T) scores
        acts = config.n_layers * N * (10 * d + 2 * f + config.n_heads) * 4
    else:
        g = {"rnn": 1, "lstm": 4, "gru": 3}[config.kind]
        acts = config.n_layers * N * config.d_hidden * (g + 2) * 4 + N * config.d_embed * 4
    logits = N * V * 4 * (3 if mode != "forward" else 1)
    return int((acts if mode != "forward" else acts // config.n_layers) + logits)


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory of the device (CUDA: mem_get_info; CPU: available RAM); None if unknown."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    return int(psutil.virtual_memory().available)


def check_fits(config: SeqConfig, batch: int, T: int, mode: str, device) -> int:
    """The estimate in bytes; ResourceError when it exceeds the caps or the free memory."""
    if batch * T > MAX_TIMING_TOKENS:
        raise ResourceError(f"batch x T = {batch * T:,} tokens is over the cap of "
                            f"{MAX_TIMING_TOKENS:,}. Lower the batch or the length.")
    need, free = estimate_bytes(config, batch, T, mode), available_bytes(device)
    if free is not None and need > MEMORY_FRACTION * free:
        raise ResourceError(f"T = {T:,} needs about {need / 2**30:.1f} GiB but only "
                            f"{free / 2**30:.1f} GiB is free on {torch.device(device).type}. "
                            "Lower the batch or the length.")
    return need


# ---------------------------------------------------------------- time vs sequence length
def time_vs_length(configs: dict[str, SeqConfig], spec: TimingSpec, device,
                   progress: Progress = None, on_wait=None,
                   time_limit_s: float = 300.0) -> list[dict]:
    """One row per (model, mode, T): median ms, tokens/s, FLOPs, status.

    Runs as one heavy job; each point is checked against memory first. A
    point predicted (from the previous length) to take over ``spec.max_point_s``
    per call, or one out of memory, marks it and the larger lengths of that
    (model, mode) as skipped. When the job's time limit is reached the
    remaining points are marked skipped (the rows measured so far are kept).
    """
    kinds = [check_choice("Model kind", k, KINDS) for k in configs]
    lengths = sorted(set(spec.lengths))
    points = [(k, m, T) for k in kinds for m in spec.modes for T in lengths]
    if not points or len(points) > MAX_TIMING_POINTS:
        raise ValidationError(f"Between 1 and {MAX_TIMING_POINTS} timing points, got {len(points)}.")
    limit = check_float("Time limit", time_limit_s, 1.0, MAX_SECONDS)
    rows, stopped, seen = [], {}, {}
    with heavy_job("RNN vs Transformer timing", device, time_limit_s=limit, on_wait=on_wait) as job, \
            cpu_threads(device, spec.threads):
        models = {k: build_model(configs[k], device, seed=spec.seed) for k in kinds}
        for i, (kind, mode, T) in enumerate(points):
            key = (kind, mode)
            reason = stopped.get(key) or _skip_reason(job, seen.get(key), T, SIZE_EXPONENT[kind],
                                                      spec.max_point_s, "T")
            row = _skipped_row(configs[kind], spec, mode, T, reason) if reason else \
                _time_point(models[kind], configs[kind], spec, mode, T, device, job)
            if row["status"] != "ok":
                stopped.setdefault(key, row["status"] if reason else
                                   N_(f"skipped (T = {T:,} failed: see that row)"))
            else:
                seen.setdefault(key, []).append((T, row["median_ms"]))
            rows.append(row)
            if progress:
                progress((i + 1) / len(points), N_(f"{LABELS[kind]} {mode}, T = {T:,}: {_fmt(row)}"))
    return rows


SIZE_EXPONENT = {"rnn": 1.0, "lstm": 1.0, "gru": 1.0, "transformer": 1.5,     # time ~ size^p before
                 "state": 1.0, "KV cache": 1.5, "recompute": 2.0}              # two points are known


def _skip_reason(job, seen: list[tuple[int, float]] | None, size: int, exponent: float,
                 max_point_s: float, unit: str) -> str | None:
    """Why a point is not run: the job's time is up, or the measured sizes predict too long a call.

    The prediction extrapolates the last two measured points on a log-log scale
    (slope clamped to [1, 2]); with one point it uses ``exponent``.
    """
    if job.remaining_s <= 0:
        return N_("skipped (time limit of the run reached)")
    if not seen:
        return None
    size0, ms0 = seen[-1]
    if len(seen) >= 2 and seen[-2][0] < size0 and seen[-2][1] > 0 and ms0 > 0:
        slope = math.log(ms0 / seen[-2][1]) / math.log(size0 / seen[-2][0])
        exponent = min(max(slope, 1.0), 2.0)
    predicted_s = ms0 / 1e3 * (size / size0) ** exponent
    if predicted_s > max_point_s:
        return N_(f"skipped: {unit} = {size0:,} took {ms0 / 1e3:.2f} s, so {unit} = {size:,} would take "
                  f"about {predicted_s:.0f} s (over {max_point_s:g} s per call)")
    return None


def _fmt(row: dict) -> str:
    return f"{row['median_ms']:.1f} ms" if row["median_ms"] is not None else row["status"]


def _base_row(config: SeqConfig, spec: TimingSpec, mode: str, T: int) -> dict:
    flops = forward_flops(config, spec.batch, T) * (3 if mode == "forward+backward" else 1)
    return {"kind": config.kind, "model": LABELS[config.kind], "mode": mode, "T": T,
            "batch": spec.batch, "median_ms": None, "min_ms": None, "tokens_per_s": None,
            "flops": flops, "sequential_steps": sequential_steps(config, T),
            "est_bytes": estimate_bytes(config, spec.batch, T, mode), "status": N_("ok")}


def _skipped_row(config, spec, mode, T, reason: str) -> dict:
    return {**_base_row(config, spec, mode, T), "status": reason}


def _time_point(model, config, spec: TimingSpec, mode: str, T: int, device, job) -> dict:
    row = _base_row(config, spec, mode, T)
    try:
        with oom_guard(f"T = {T:,}", device):
            check_fits(config, spec.batch, T, mode, device)
            gen = torch.Generator().manual_seed(spec.seed + T)
            x = torch.randint(0, config.vocab_size, (spec.batch, T), generator=gen).to(device)
            fn = _forward_fn(model, x) if mode == "forward" else _train_fn(model, x)
            budget = max(min(spec.max_point_s, job.remaining_s), 0.1)
            timing = time_fn(fn, device, warmup=spec.warmup, repeats=spec.repeats, max_seconds=budget)
    except DeviceOutOfMemory:
        return {**row, "status": N_(f"out of memory at T = {T:,}")}
    except ResourceError as exc:
        return {**row, "status": N_(f"skipped: {exc}")}
    finally:
        model.zero_grad(set_to_none=True)
    tps = spec.batch * T / (timing.median_ms / 1e3) if timing.median_ms > 0 else None
    return {**row, "median_ms": timing.median_ms, "min_ms": timing.min_ms, "tokens_per_s": tps}


def _forward_fn(model, x: torch.Tensor):
    def run():
        with torch.no_grad():
            model(x)                                                # (B, T, V)
    return run


def _train_fn(model, x: torch.Tensor):
    targets = torch.roll(x, -1, dims=1)                             # (B, T)

    def run():
        logits, _ = model(x)                                        # (B, T, V)
        lm_loss(logits, targets).backward()
        model.zero_grad(set_to_none=True)
    return run


# ---------------------------------------------------------------- generation speed
@dataclass(frozen=True)
class GenerationSpec:
    n_tokens: tuple[int, ...] = (64, 256, 1024)  # tokens generated per call (from a 1-token prompt)
    batch: int = 1                # sequences generated together
    repeats: int = 3              # timed runs (median), after one warm-up
    max_point_s: float = 5.0      # skip an N predicted to take longer per call than this
    threads: int | None = None    # CPU torch threads (None: the process setting)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.n_tokens:
            raise ValidationError("Pick at least one generation length.")
        for n in self.n_tokens:
            check_int("Tokens to generate", n, 1, MAX_GEN_TOKENS)
        check_int("Batch size", self.batch, 1, MAX_GEN_BATCH)
        check_int("Repeats", self.repeats, 1, 50)
        check_float("Seconds per point", self.max_point_s, 0.0, 600.0, lo_open=True)
        if self.threads is not None:
            check_int("Threads", self.threads, 1, 256)


def generation_speed(configs: dict[str, SeqConfig], spec: GenerationSpec, device,
                     progress: Progress = None, on_wait=None,
                     time_limit_s: float = 300.0) -> list[dict]:
    """One row per (model, mode, N): ms for N greedy tokens, tokens/s, state bytes at the end."""
    kinds = [check_choice("Model kind", k, KINDS) for k in configs]
    lengths = sorted(set(spec.n_tokens))
    points = [(k, m, n) for k in kinds for m in GEN_MODES[k] for n in lengths]
    if len(points) > MAX_TIMING_POINTS:
        raise ValidationError(f"At most {MAX_TIMING_POINTS} generation points.")
    limit = check_float("Time limit", time_limit_s, 1.0, MAX_SECONDS)
    rows, stopped, seen = [], {}, {}
    with heavy_job("RNN vs Transformer generation timing", device, time_limit_s=limit,
                   on_wait=on_wait) as job, cpu_threads(device, spec.threads):
        models = {k: build_model(configs[k], device, seed=spec.seed).eval() for k in kinds}
        for i, (kind, mode, n) in enumerate(points):
            key = (kind, mode)
            row = {"kind": kind, "model": LABELS[kind], "mode": mode, "n_tokens": n,
                   "batch": spec.batch, "median_ms": None, "tokens_per_s": None,
                   "state_bytes": None, "status": N_("ok")}
            reason = stopped.get(key) or _skip_reason(job, seen.get(key), n, SIZE_EXPONENT[mode],
                                                      spec.max_point_s, "N")
            if reason:
                row["status"] = stopped.setdefault(key, reason)
            else:
                row.update(_gen_point(models[kind], mode, n, spec, device, job))
                seen.setdefault(key, []).append((n, row["median_ms"]))
            rows.append(row)
            if progress:
                progress((i + 1) / len(points), N_(f"{LABELS[kind]} ({mode}), {n:,} tokens: {_fmt(row)}"))
    return rows


def _gen_point(model, mode: str, n: int, spec: GenerationSpec, device, job) -> dict:
    prompt = torch.zeros(spec.batch, 1, dtype=torch.long, device=device)   # (B, 1)
    holder = {}
    if mode == "recompute":
        def fn():
            generate_recompute(model, prompt, n)
    else:
        def fn():
            holder["bytes"] = generate(model, prompt, n, temperature=0.0)[1]
    budget = max(min(spec.max_point_s, job.remaining_s), 0.1)
    with oom_guard("Generation", device, hint="Generate fewer tokens or use a smaller batch."):
        timing = time_fn(fn, device, warmup=1, repeats=spec.repeats, max_seconds=budget)
    ms = timing.median_ms
    return {"median_ms": ms, "tokens_per_s": spec.batch * n / (ms / 1e3) if ms > 0 else None,
            "state_bytes": holder.get("bytes")}

