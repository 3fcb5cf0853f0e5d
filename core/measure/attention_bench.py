"""The attention benchmark runner and memory footprint: ours vs PyTorch, measured.

What the FlashAttention page's "Speed" and "Memory" tabs and bench/attention.py run: each
implementation (naive, SDPA, tiled, our Triton kernel; SDPA with its flash and cuDNN backends
forced as baselines) at each N, forward or forward+backward: median ms and the 20th/80th
percentiles (CUDA: triton.testing.do_bench), TFLOP/s from core.attention.attention_flops,
errors against the float64 reference (core.attention.reference_attention), and the bytes each
allocates by formula beside the measured peak. Every config is checked first
(check_bench_config): sizes a device cannot run are refused with the reason.
Does not handle: fp8, varlen batches, timing the Triton interpreter (correctness only).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from core.attention import (
    _check_causal,
    attention_flops,
    check_naive_fits,
    naive_attention,
    naive_scores_bytes,
    reference_attention,
    tiled_attention,
)
from core.measure.timing import peak_memory_bytes, time_fn
from core.runtime.device import free_memory, kernel_interpreted, oom_guard
from core.runtime.text import N_
from core.runtime.validation import ResourceError, ValidationError, check_choice, check_int
from kernels._checks import MAX_KERNEL_HEAD_DIM, MIN_KERNEL_HEAD_DIM, check_bool

log = logging.getLogger("atlas.attention_bench")


# ----------------------------------------------------------------------------- benchmark
IMPLEMENTATIONS = ("naive", "sdpa", "tiled", "triton")      # the page's choices
SDPA_VARIANTS = ("sdpa_flash", "sdpa_cudnn")   # SDPA with one backend forced (CUDA, 16-bit): baselines
BENCH_IMPLEMENTATIONS = IMPLEMENTATIONS + SDPA_VARIANTS
IMPL_LABELS = {
    "naive": N_("naive PyTorch (N x N in memory)"),
    "sdpa": N_("PyTorch SDPA"),
    "tiled": N_("tiled PyTorch (online softmax)"),
    "triton": N_("our Triton kernel"),
    "sdpa_flash": N_("PyTorch SDPA, flash backend (FlashAttention-2)"),
    "sdpa_cudnn": N_("PyTorch SDPA, cuDNN backend"),
}
BENCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BENCH_TIME_LIMIT_S = 240            # a benchmark started from the page stops after this
SDPA_BACKENDS = ("auto", "flash")   # "flash": force PyTorch's FlashAttention-2 kernel (CUDA, 16-bit)
MAX_BENCH_SEQ_CUDA = 32768          # longest N a benchmark may ask for on a GPU
MAX_BENCH_SEQ_OTHER = 4096          # ... on a CPU (or MPS)
MAX_BENCH_SEQS = 12                 # sequence lengths per run
MAX_BENCH_BATCH_HEADS = 256         # batch * heads on a CPU (per-head Python loops, the interpreter)
# On a GPU, memory is bounded by MAX_BENCH_ELEMENTS_CUDA per input and the naive N x N buffers by
# check_naive_fits; batch * heads only sizes the grid's y dimension (<= 65,535 in the kernel). So
# the cap is the product of the batch and heads caps (64 x 128): the FlashAttention-2 paper's set-up
# (16k tokens x 2048 hidden: batch 16 x heads 32 at N=1k, d=64) fits.
MAX_BENCH_BATCH_HEADS_CUDA = 64 * 128
MAX_BENCH_ELEMENTS_CUDA = 1 << 28   # batch * heads * N * head_dim of one input on a GPU
MAX_BENCH_ELEMENTS_OTHER = 1 << 24  # ... on a CPU (64 MiB per fp32 tensor)
MAX_REPEATS = 50
TILED_MAX_SEQ = 8192                # the Python tile loop is too slow beyond this
INTERPRETER_MAX_SEQ = 256           # the Triton interpreter runs (correctness only) up to this N
INTERPRETER_MAX_ELEMENTS = 1 << 16  # ... and up to this batch * heads * N * head_dim
GRAD_REF_MAX_SEQ = 4096             # float64 gradient reference (autograd through N x N) up to this N
GRAD_REF_MAX_SEQ_CUDA = 16384       # ... on a GPU (one head: ~10 GiB of float64 N x N at 16k)
SPREAD_QUANTILES = (0.2, 0.8)       # the spread reported beside each median
INTERPRETER_STATUS = N_("correctness only (Triton interpreter on CPU: not timed)")


@dataclass(frozen=True)
class BenchConfig:
    seqs: tuple[int, ...]                  # sequence lengths N to run
    batch: int = 1                         # B
    heads: int = 4                         # H
    head_dim: int = 64                     # D (16..128, the kernel's range)
    dtype: str = "float32"                 # one of BENCH_DTYPES
    causal: bool = False
    backward: bool = False                 # also time forward+backward
    impls: tuple[str, ...] = IMPLEMENTATIONS
    sdpa_backend: str = "auto"             # one of SDPA_BACKENDS
    warmup: int = 2                        # untimed runs (CPU; CUDA uses do_bench's 25 ms)
    repeats: int = 5                       # timed runs, median reported (CPU; CUDA: do_bench's 100 ms)
    seed: int = 0


@dataclass(frozen=True)
class BenchRow:
    impl: str                   # one of BENCH_IMPLEMENTATIONS
    n: int                      # sequence length
    mode: str                   # "fwd" | "fwd+bwd"
    ms: float | None            # median milliseconds; None when not timed
    tflops: float | None        # attention_flops / time
    max_err: float | None       # max |out - float64 reference| on head (0, 0)
    grad_err: float | None      # max |d{q,k,v} - float64 autograd| on head (0, 0) (fwd+bwd rows)
    peak_bytes: int | None      # CUDA allocator peak above the inputs; None elsewhere (unknown)
    status: str                 # "ok", INTERPRETER_STATUS, or why it did not run
    p20_ms: float | None = None  # 20th percentile of the timed runs (the spread, with p80)
    p80_ms: float | None = None  # 80th percentile


def max_bench_seq(device) -> int:
    return MAX_BENCH_SEQ_CUDA if torch.device(device).type == "cuda" else MAX_BENCH_SEQ_OTHER


def max_bench_elements(device) -> int:
    return MAX_BENCH_ELEMENTS_CUDA if torch.device(device).type == "cuda" else MAX_BENCH_ELEMENTS_OTHER


def max_bench_batch_heads(device) -> int:
    return MAX_BENCH_BATCH_HEADS_CUDA if torch.device(device).type == "cuda" else MAX_BENCH_BATCH_HEADS


def grad_ref_max_seq(device) -> int:
    return GRAD_REF_MAX_SEQ_CUDA if torch.device(device).type == "cuda" else GRAD_REF_MAX_SEQ


def check_bench_config(cfg: BenchConfig, device) -> BenchConfig:
    """Every field in range for ``device``; sequence lengths deduplicated and sorted."""
    if not isinstance(cfg, BenchConfig):
        raise ValidationError("Expected a BenchConfig.")
    seqs = tuple(cfg.seqs) if isinstance(cfg.seqs, (tuple, list)) else ()
    if not 1 <= len(seqs) <= MAX_BENCH_SEQS:
        raise ValidationError(f"Pick 1 to {MAX_BENCH_SEQS} sequence lengths.")
    seqs = tuple(sorted({check_int("N", n, 1, max_bench_seq(device)) for n in seqs}))
    batch, heads = check_int("batch", cfg.batch, 1, 64), check_int("heads", cfg.heads, 1, 128)
    if batch * heads > max_bench_batch_heads(device):
        raise ValidationError(f"batch x heads must be at most {max_bench_batch_heads(device):,} on "
                              f"{torch.device(device).type}; got {batch * heads:,}.")
    head_dim = check_int("head_dim", cfg.head_dim, MIN_KERNEL_HEAD_DIM, MAX_KERNEL_HEAD_DIM)
    if batch * heads * seqs[-1] * head_dim > max_bench_elements(device):
        raise ValidationError(f"batch x heads x N x head_dim is capped at {max_bench_elements(device):,} "
                              f"elements on {torch.device(device).type}; got {batch * heads * seqs[-1] * head_dim:,}.")
    impls = tuple(cfg.impls) if isinstance(cfg.impls, (tuple, list)) else ()
    if not impls:
        raise ValidationError("Pick at least one implementation.")
    for impl in impls:
        check_choice("implementation", impl, BENCH_IMPLEMENTATIONS)
    return BenchConfig(
        seqs=seqs, batch=batch, heads=heads, head_dim=head_dim,
        dtype=check_choice("dtype", cfg.dtype, BENCH_DTYPES), causal=_check_causal(cfg.causal),
        backward=check_bool("backward", cfg.backward), impls=tuple(dict.fromkeys(impls)),
        sdpa_backend=check_choice("SDPA backend", cfg.sdpa_backend, SDPA_BACKENDS),
        warmup=check_int("warm-up runs", cfg.warmup, 0, MAX_REPEATS),
        repeats=check_int("repeats", cfg.repeats, 1, MAX_REPEATS), seed=check_int("seed", cfg.seed, 0, 2**31 - 1),
    )


def timing_quantiles(fn, device, *, warmup: int = 2, repeats: int = 5, max_seconds: float | None = None,
                     grad_to_none=None) -> tuple[float, float, float]:
    """(median, 20th, 80th percentile) milliseconds of ``fn()``: triton.testing.do_bench on CUDA
    (L2 flushed between runs), else core.measure.timing.time_fn (warm-up, repeats). Grads reset each run."""
    dev = torch.device(device)
    lo, hi = SPREAD_QUANTILES
    if dev.type == "cuda":
        # start-up cost: triton takes ~0.2 s to import; only CUDA timing uses do_bench
        import triton.testing

        q20, q50, q80 = triton.testing.do_bench(fn, grad_to_none=grad_to_none, quantiles=[lo, 0.5, hi])
        return float(q50), float(q20), float(q80)

    def run():
        for t in grad_to_none or ():
            t.grad = None
        fn()

    timing = time_fn(run, dev, warmup=warmup, repeats=repeats, max_seconds=max_seconds)
    q20, q80 = np.quantile(np.asarray(timing.samples_ms), [lo, hi])
    return timing.median_ms, float(q20), float(q80)


def median_ms(fn, device, **kwargs) -> float:
    """Median milliseconds of ``fn()`` (timing_quantiles' first number)."""
    return timing_quantiles(fn, device, **kwargs)[0]


def sdpa_default_backend(q, k, v, causal: bool = False) -> str | None:
    """The backend PyTorch's SDPA picks for these inputs when none is forced ("FLASH_ATTENTION",
    "CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "MATH"; on a CPU "FLASH_ATTENTION" is PyTorch's
    CPU flash kernel). None when this torch cannot say (a private API: torch._fused_sdp_choice)."""
    try:
        return SDPBackend(torch._fused_sdp_choice(q, k, v, None, 0.0, bool(causal))).name
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None


def _call(impl: str, q, k, v, cfg: BenchConfig):
    """One forward of ``impl`` (autograd follows the inputs' requires_grad)."""
    if impl == "naive":
        return naive_attention(q, k, v, cfg.causal)
    if impl == "tiled":
        blocks = _blocks_for(cfg.head_dim, q.dtype, q.device, None)
        return tiled_attention(q, k, v, cfg.causal, block_m=blocks.block_m, block_n=blocks.block_n)
    if impl == "triton":
        # after ensure_triton_backend(): importing kernels decorates the Triton kernels
        from kernels.flash_attention import flash_attention

        return flash_attention(q, k, v, cfg.causal)

    forced = {"sdpa_flash": "FLASH_ATTENTION", "sdpa_cudnn": "CUDNN_ATTENTION"}.get(impl)
    if impl == "sdpa" and cfg.sdpa_backend == "flash":
        forced = "FLASH_ATTENTION"
    if forced is not None:
        with sdpa_kernel(getattr(SDPBackend, forced)):
            return F.scaled_dot_product_attention(q, k, v, is_causal=cfg.causal)
    return F.scaled_dot_product_attention(q, k, v, is_causal=cfg.causal)


def kernel_block_sizes(head_dim: int, dtype: str = "float32", device="cpu",
                       capability: tuple[int, int] | None = None):
    """The Triton kernel's KernelConfig (BLOCK_M, BLOCK_N, warps, stages, backward blocks)
    for ``head_dim``/``dtype`` on ``device``; ``capability`` (e.g. (9, 0)) picks a GPU's
    table without that GPU."""
    dtype = BENCH_DTYPES[check_choice("dtype", dtype, BENCH_DTYPES)]
    head_dim = check_int("head_dim", head_dim, MIN_KERNEL_HEAD_DIM, MAX_KERNEL_HEAD_DIM)
    if capability is not None:
        capability = (check_int("capability major", capability[0], 1, 20), check_int("capability minor", capability[1], 0, 9))
        return _blocks_for(head_dim, dtype, "cuda", capability)
    return _blocks_for(head_dim, dtype, device, None)


def _blocks_for(head_dim, dtype, device, capability):
    # after ensure_triton_backend(): importing kernels decorates the Triton kernels
    from kernels.flash_attention import block_sizes

    return block_sizes(head_dim, dtype, device, capability)


def _refusal(impl: str, cfg: BenchConfig, n: int, device, backward: bool) -> str | None:
    """Why ``impl`` does not run at this size/device (None: it runs)."""
    dev = torch.device(device)
    dtype = BENCH_DTYPES[cfg.dtype]
    if impl == "naive":
        try:
            check_naive_fits(cfg.batch, cfg.heads, n, dtype, dev, backward=backward)
        except ResourceError as exc:
            return f"refused: {exc}"
    if impl == "tiled" and n > TILED_MAX_SEQ:
        return N_(f"skipped: the Python tile loop is too slow beyond N={TILED_MAX_SEQ:,}")
    if impl == "sdpa" and cfg.sdpa_backend == "flash" and (dev.type != "cuda" or dtype == torch.float32):
        return N_("skipped: SDPA's flash backend needs fp16/bf16 on CUDA")
    if impl in SDPA_VARIANTS and (dev.type != "cuda" or dtype == torch.float32):
        return N_(f"skipped: {IMPL_LABELS[impl]} needs fp16/bf16 on CUDA")
    if impl == "sdpa_cudnn" and not torch.backends.cudnn.is_available():
        return N_("skipped: this torch has no cuDNN")
    if impl == "triton" and dev.type not in ("cuda", "cpu"):
        return N_(f"skipped: the Triton kernel runs on CUDA (or the CPU interpreter), not {dev.type}")
    too_big = n > INTERPRETER_MAX_SEQ or cfg.batch * cfg.heads * n * cfg.head_dim > INTERPRETER_MAX_ELEMENTS
    if impl == "triton" and too_big and kernel_interpreted(dev):
        return N_(f"skipped: the CPU interpreter checks correctness only up to N={INTERPRETER_MAX_SEQ} "
                  f"and {INTERPRETER_MAX_ELEMENTS:,} elements")
    return None


@dataclass
class _Case:
    """Inputs and float64 references for one sequence length (head (0, 0) only)."""
    q: torch.Tensor             # (B, H, N, D)
    k: torch.Tensor
    v: torch.Tensor
    do: torch.Tensor            # (B, H, N, D) upstream gradient
    ref: torch.Tensor | None    # (1, 1, N, D) float64 output of head (0, 0)
    grad_ref: tuple | None      # float64 (dq, dk, dv) of head (0, 0), N <= grad_ref_max_seq(device)


def _make_case(cfg: BenchConfig, n: int, device) -> _Case:
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed + n)
    shape = (cfg.batch, cfg.heads, n, cfg.head_dim)
    q, k, v, do = (torch.randn(shape, generator=gen, device=dev, dtype=BENCH_DTYPES[cfg.dtype]) for _ in range(4))
    head = tuple(t[:1, :1] for t in (q, k, v))
    ref = reference_attention(*head, cfg.causal)                                  # (1, 1, N, D) float64
    grad_ref = None
    if cfg.backward and n <= grad_ref_max_seq(dev):
        leaves = [t.detach().to(torch.float64).requires_grad_() for t in head]
        try:
            naive_attention(*leaves, cfg.causal).backward(do[:1, :1].to(torch.float64))
            grad_ref = tuple(t.grad for t in leaves)
        except (ResourceError, torch.OutOfMemoryError):   # the float64 N x N autograd does not fit:
            grad_ref = None                                 # grads are not checked
    return _Case(q, k, v, do, ref, grad_ref)


def _errors(impl: str, case: _Case, cfg: BenchConfig, backward: bool) -> tuple[float, float | None]:
    """One run of ``impl``: max |error| of the output (and of the grads) on head (0, 0)."""
    if not backward:
        with torch.no_grad():
            out = _call(impl, case.q, case.k, case.v, cfg)
        return float((out[:1, :1].to(torch.float64) - case.ref).abs().max()), None
    leaves = [t.detach().clone().requires_grad_() for t in (case.q, case.k, case.v)]
    out = _call(impl, *leaves, cfg)
    out.backward(case.do)
    err = float((out.detach()[:1, :1].to(torch.float64) - case.ref).abs().max())
    if case.grad_ref is None:
        return err, None
    grad_err = max(float((t.grad[:1, :1].to(torch.float64) - r).abs().max())
                   for t, r in zip(leaves, case.grad_ref, strict=True))
    return err, grad_err


def _timed(impl: str, case: _Case, cfg: BenchConfig, device, backward: bool) -> tuple[tuple, int | None]:
    """((median, p20, p80) ms, CUDA peak bytes or None) of the forward or forward+backward."""
    if backward:
        leaves = [t.detach().clone().requires_grad_() for t in (case.q, case.k, case.v)]

        def fn():
            _call(impl, *leaves, cfg).backward(case.do)
    else:
        leaves = None

        def fn():
            with torch.no_grad():
                _call(impl, case.q, case.k, case.v, cfg)
    times = timing_quantiles(fn, device, warmup=cfg.warmup, repeats=cfg.repeats, max_seconds=10.0,
                             grad_to_none=leaves)
    return times, peak_memory_bytes(fn, device)


def bench_row(impl: str, case: _Case, cfg: BenchConfig, device, backward: bool) -> BenchRow:
    """Error vs float64 and (unless interpreted) median time, TFLOP/s and peak memory."""
    n, mode = case.q.shape[2], "fwd+bwd" if backward else "fwd"
    refusal = _refusal(impl, cfg, n, device, backward)
    if refusal:
        return BenchRow(impl, n, mode, None, None, None, None, None, refusal)
    try:
        with oom_guard(IMPL_LABELS[impl], device, hint="Lower N, batch or heads."):
            err, grad_err = _errors(impl, case, cfg, backward)
            if impl == "triton" and kernel_interpreted(device):
                return BenchRow(impl, n, mode, None, None, err, grad_err, None, INTERPRETER_STATUS)
            (ms, p20, p80), peak = _timed(impl, case, cfg, device, backward)
    except ResourceError as exc:
        return BenchRow(impl, n, mode, None, None, None, None, None, f"failed: {exc}")
    except Exception as exc:   # one implementation failing (e.g. a kernel that does not compile) is a result
        log.exception("attention benchmark: %s failed at N=%d", impl, n)
        return BenchRow(impl, n, mode, None, None, None, None, None,
                        f"failed: {type(exc).__name__}: {str(exc)[:200]}")
    flops = attention_flops(cfg.batch, cfg.heads, n, cfg.head_dim, causal=cfg.causal, backward=backward)
    return BenchRow(impl, n, mode, ms, flops / ms / 1e9, err, grad_err, peak, N_("ok"), p20, p80)


def run_benchmark(cfg: BenchConfig, device, progress=None, job=None,
                  deadline: float | None = None) -> tuple[BenchRow, ...]:
    """Every (N, implementation, mode) of ``cfg`` on ``device``; progress(fraction, message).

    ``job`` (core.runtime.scheduler) is checked between rows; rows after ``deadline``
    (time.monotonic()) are recorded as skipped instead of run.
    """
    cfg = check_bench_config(cfg, device)
    modes = (False, True) if cfg.backward else (False,)
    total, rows = len(cfg.seqs) * len(cfg.impls) * len(modes), []
    for n in cfg.seqs:
        if deadline is not None and time.monotonic() > deadline:
            rows.extend(BenchRow(impl, n, "fwd+bwd" if bwd else "fwd", None, None, None, None, None,
                                 "skipped: time budget spent") for impl in cfg.impls for bwd in modes)
            continue
        with oom_guard("Preparing the inputs", device, hint="Lower N, batch or heads."):
            case = _make_case(cfg, n, device)
        for impl in cfg.impls:
            for backward in modes:
                if job is not None:
                    job.check()
                if progress is not None:
                    label = IMPL_LABELS[impl]
                    progress(len(rows) / total, N_(f"{label}, N={n:,}, forward + backward") if backward
                             else N_(f"{label}, N={n:,}, forward"))
                rows.append(bench_row(impl, case, cfg, device, backward))
        del case
        free_memory(device)
    if progress is not None:
        progress(1.0, "done")
    return tuple(rows)


# ----------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class MemoryRow:
    impl: str                       # one of IMPLEMENTATIONS
    analytic_bytes: int | None      # formula: memory beyond q, k, v (output included); None = backend-dependent
    measured_bytes: int | None      # CUDA allocator peak above q, k, v; None where unknown (CPU)
    status: str                     # "ok" or why it was not measured


def analytic_memory_bytes(impl: str, batch: int, heads: int, n: int, head_dim: int, dtype: torch.dtype,
                          block_m: int, block_n: int) -> int | None:
    """What a forward allocates beyond q, k, v, by formula (inference, no autograd)."""
    bh, elem = batch * heads, torch.finfo(dtype).bits // 8
    out = bh * n * head_dim * elem
    work = max(elem, 4) if dtype in (torch.float16, torch.bfloat16) else elem
    if impl == "naive":
        return out + naive_scores_bytes(batch, heads, n, dtype)
    if impl == "tiled":   # one score + probability tile, the running stats, the per-block outputs
        return out + bh * (2 * block_m * block_n + 3 * block_m) * work + bh * n * head_dim * work
    if impl == "triton":
        return out + bh * n * 4                                                   # + the fp32 LSE
    return None


def memory_footprint(cfg: BenchConfig, device, job=None) -> tuple[MemoryRow, ...]:
    """Memory of each implementation's forward at cfg.seqs[0]: the formula everywhere, and
    on CUDA the allocator's measured peak (inputs are allocated only there)."""
    cfg = check_bench_config(cfg, device)
    n, dtype, dev = cfg.seqs[0], BENCH_DTYPES[cfg.dtype], torch.device(device)
    blocks = _blocks_for(cfg.head_dim, dtype, dev, None)
    rows = []
    for impl in cfg.impls:
        analytic = analytic_memory_bytes(impl, cfg.batch, cfg.heads, n, cfg.head_dim, dtype,
                                         blocks.block_m, blocks.block_n)
        refusal = _refusal(impl, cfg, n, dev, False)
        if dev.type != "cuda" and not (impl == "naive" and refusal):
            refusal = N_(f"not measured: {dev.type} has no allocator statistics (formula only)")
        rows.append(MemoryRow(impl, analytic, None, refusal or N_("ok")))
    if dev.type != "cuda":
        return tuple(rows)
    with oom_guard("Preparing the inputs", dev, hint="Lower N, batch or heads."):
        q, k, v = (torch.randn(cfg.batch, cfg.heads, n, cfg.head_dim, device=dev, dtype=dtype) for _ in range(3))
    return tuple(_measure(row, q, k, v, cfg, dev, job) if row.status == "ok" else row for row in rows)


def _measure(row: MemoryRow, q, k, v, cfg: BenchConfig, dev, job) -> MemoryRow:
    if job is not None:
        job.check()
    try:
        with oom_guard(IMPL_LABELS[row.impl], dev, hint="Lower N, batch or heads."), torch.no_grad():
            peak = peak_memory_bytes(lambda: _call(row.impl, q, k, v, cfg), dev)
    except ResourceError as exc:
        return dataclasses.replace(row, status=f"failed: {exc}")
    return dataclasses.replace(row, measured_bytes=peak)


