"""Attention, readable: the naive reference, the tiled online-softmax reference, and the
numbers around them (FLOPs, HBM traffic, memory) that the FlashAttention page shows.

References
- Vaswani et al. 2017, "Attention Is All You Need", Sec. 3.2.1 (scaled dot-product
  attention, softmax(Q K^T / sqrt(d)) V).
- Milakov & Gimelshein 2018, "Online normalizer calculation for softmax"
  (arXiv:1805.02867): the running max / running sum with a rescale factor.
- Dao et al. 2022, "FlashAttention" (arXiv:2205.14135): Algorithm 0 (standard
  attention and its HBM accesses), Algorithm 1 (tiling), Theorem 2 (IO
  complexity: Theta(N d + N^2) for standard attention, Theta(N^2 d^2 / M) for
  FlashAttention with on-chip memory of M elements).
- Dao 2023, "FlashAttention-2" (arXiv:2307.08691), Sec. 3.1 (forward: loop over
  key blocks inside one query block, rescale once per tile, save the log-sum-exp),
  Sec. 4 (FLOPs: 4 N^2 d per head forward, halved with a causal mask, backward
  2.5x the forward).

Layout everywhere: (batch, heads, seq, head_dim), like kernels/flash_attention.py.
``naive_attention`` materializes the (N, N) scores; ``tiled_attention`` never holds
more than one (block_m, block_n) tile of them and can return a trace of every
(query block, key block) step. The other functions are pure calculators, the benchmark
runner (ours vs SDPA with its flash and cuDNN backends forced, median and 20th/80th
percentiles, errors vs float64) and the reader of recorded GPU results (bench/results/).
The input checks shared with the kernel (check_qkv, resolve_scale, head_dim range) are
kernels/_checks.py's; this module only adds the references' wider defaults.
Does not handle: q and k/v of different lengths, attention bias, dropout,
grouped-query heads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.device import cpu_threads, oom_guard
from core.validation import ResourceError, ValidationError, check_int
from kernels import _checks
from kernels._checks import MAX_KERNEL_HEAD_DIM, MIN_KERNEL_HEAD_DIM, check_bool, resolve_scale

log = logging.getLogger("atlas.attention")

MAX_REF_HEAD_DIM = 512        # the PyTorch references accept any head_dim up to this
REF_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_TILED_STEPS = 1 << 20     # tiled_attention: (query block, key block) steps per call
MAX_TRACE_SEQ = 1024          # tiled_attention(return_trace=True): longest sequence traced
NAIVE_CPU_MAX_BYTES = 2 << 30  # naive attention's (N, N) buffers on a CPU: at most 2 GiB
NAIVE_CUDA_FREE_FRACTION = 0.8  # ... on a GPU: at most this share of the free memory


# ----------------------------------------------------------------------------- input checks
# check_qkv, resolve_scale, the kernel's head_dim range and check_bool live in kernels/_checks.py
# (kernels/ imports nothing from core/); this module adds the references' wider defaults.
def check_qkv(q, k, v, *, min_head_dim: int = 1, max_head_dim: int = MAX_REF_HEAD_DIM,
              dtypes: tuple = REF_DTYPES) -> tuple[int, int, int, int]:
    """(B, H, N, D) of three same-shape, same-dtype, same-device 4-D tensors, or ValidationError."""
    return _checks.check_qkv(q, k, v, min_head_dim=min_head_dim, max_head_dim=max_head_dim, dtypes=dtypes)


def _check_causal(causal) -> bool:
    return check_bool("causal", causal)


# ----------------------------------------------------------------------------- naive
def naive_scores_bytes(batch: int, heads: int, n: int, dtype: torch.dtype, *, backward: bool = False) -> int:
    """Bytes of the (N, N) buffers naive attention holds at its peak: scores and probabilities
    (fp32 for 16-bit inputs, where softmax is upcast), the causal mask, and with a backward
    the saved probabilities and the score gradients."""
    elem = max(torch.finfo(dtype).bits // 8, 4)
    per_matrix = batch * heads * n * n * elem
    return per_matrix * (4 if backward else 2) + n * n


def naive_memory_limit(device) -> int | None:
    """Largest naive-attention buffer allowed on ``device`` (bytes); None = no limit known."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)   # reusable by torch
        return int((free + cached) * NAIVE_CUDA_FREE_FRACTION)
    if dev.type == "cpu":
        return NAIVE_CPU_MAX_BYTES
    return None


def check_naive_fits(batch: int, heads: int, n: int, dtype: torch.dtype, device, *, backward: bool = False) -> None:
    """ResourceError (with the numbers) when naive attention would not fit the device."""
    need, limit = naive_scores_bytes(batch, heads, n, dtype, backward=backward), naive_memory_limit(device)
    if limit is not None and need > limit:
        raise ResourceError(
            f"Naive attention at N={n:,} (batch {batch}, heads {heads}) would hold {need / 2**30:,.2f} GiB "
            f"of N x N scores and probabilities; this {torch.device(device).type} allows "
            f"{limit / 2**30:,.2f} GiB. Lower N, batch or heads (FlashAttention needs none of it)."
        )


def naive_attention(q, k, v, causal: bool = False, sm_scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * sm_scale [causal mask]) v, materializing the (N, N) scores.

    16-bit inputs are multiplied in their dtype and go through softmax in fp32;
    fp32/fp64 stay in their dtype (pass float64 inputs for a float64 reference).
    Refuses (ResourceError) sizes whose N x N buffers would not fit the device.
    """
    B, H, N, D = check_qkv(q, k, v)
    scale, causal = resolve_scale(sm_scale, D), _check_causal(causal)
    check_naive_fits(B, H, N, q.dtype, q.device, backward=torch.is_grad_enabled() and q.requires_grad)
    with oom_guard("Naive attention", q.device, hint="Lower N, batch or heads."):
        allowed = torch.ones(N, N, dtype=torch.bool, device=q.device).tril() if causal else None
        probs = attention_probs(q, k, scale=scale, mask=allowed)                 # (B, H, N, N)
        return torch.matmul(probs.to(q.dtype), v)                                # (B, H, N, D)


def attention_probs(q: torch.Tensor, k: torch.Tensor, *, scale: float,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T * scale) with ``mask`` (bool, True = may attend) applied: (B, H, T_q, T_k).

    The one written-out attention of the atlas (naive_attention here, the "naive" backend
    of core/nn). q (B, H, T_q, D) and k (B, H, T_k, D) of one dtype; 16-bit scores go
    through softmax in float32 and come back in float32, so no probability is rounded.
    """
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale                        # (B, H, T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores.float() if q.dtype in (torch.float16, torch.bfloat16) else scores, dim=-1)


def attention_lse(q, k, causal: bool = False, sm_scale: float | None = None) -> torch.Tensor:
    """Row log-sum-exp of the scaled scores (B, H, N), exact (materializes N x N)."""
    B, H, N, D = check_qkv(q, k, k)
    scale = resolve_scale(sm_scale, D)
    check_naive_fits(B, H, N, q.dtype, q.device)
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale                        # (B, H, N, N)
    if causal:
        scores = scores.masked_fill(torch.ones(N, N, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.logsumexp(scores.float() if q.dtype in (torch.float16, torch.bfloat16) else scores, dim=-1)


def reference_attention(q, k, v, causal: bool = False, sm_scale: float | None = None,
                        *, max_chunk_elements: int = 1 << 26) -> torch.Tensor:
    """Exact attention in float64, a few query rows at a time (no N x N buffer for long N).

    The yardstick for every implementation's error; returns float64 (B, H, N, D).
    """
    B, H, N, D = check_qkv(q, k, v)
    scale, causal = resolve_scale(sm_scale, D), _check_causal(causal)
    q64, k64, v64 = (t.detach().to(torch.float64) for t in (q, k, v))
    rows_per_chunk = max(1, max_chunk_elements // max(1, B * H * N))
    out = torch.empty_like(q64)                                                   # (B, H, N, D)
    for r0 in range(0, N, rows_per_chunk):
        r1 = min(r0 + rows_per_chunk, N)
        s = torch.matmul(q64[:, :, r0:r1], k64.transpose(-2, -1)) * scale        # (B, H, r, N)
        if causal:
            cols = torch.arange(N, device=q.device)
            rows = torch.arange(r0, r1, device=q.device)
            s = s.masked_fill(cols[None, :] > rows[:, None], float("-inf"))
        out[:, :, r0:r1] = torch.matmul(torch.softmax(s, dim=-1), v64)           # (B, H, r, D)
    return out


# ----------------------------------------------------------------------------- tiled (online softmax)
@dataclass(frozen=True)
class TileStep:
    q_block: int                  # query block index i (rows i*block_m ...)
    k_block: int                  # key block index j (columns j*block_n ...)
    rows: tuple[int, int]         # [r0, r1) query rows of the tile
    cols: tuple[int, int]         # [c0, c1) key columns (c1 capped at N)
    skipped: bool                 # causal: wholly above the diagonal, never loaded
    causal_masked: bool           # causal: straddles the diagonal, partly masked
    edge: bool                    # the block runs past N (the kernel masks the missing columns)
    m: torch.Tensor | None        # (rows,) running max after this step (traced head); None if skipped
    l: torch.Tensor | None        # (rows,) running sum of exp(s - m) after this step  # noqa: E741
    alpha: torch.Tensor | None    # (rows,) rescale exp(m_old - m_new) applied to l and the output
    tile_max: torch.Tensor | None  # (rows,) the row max inside this tile alone


@dataclass(frozen=True)
class TiledTrace:
    n: int                        # sequence length
    block_m: int                  # query rows per block
    block_n: int                  # key columns per block
    causal: bool
    head: tuple[int, int]         # (batch, head) that was traced
    steps: tuple[TileStep, ...]   # every (query block, key block) pair, in loop order
    lse: torch.Tensor             # (N,) final log-sum-exp m + log(l) of the traced head


def tiled_attention(q, k, v, causal: bool = False, sm_scale: float | None = None,
                    block_m: int = 64, block_n: int = 64, *, return_trace: bool = False,
                    trace_head: tuple[int, int] = (0, 0)):
    """Attention by online softmax over (block_m, block_n) tiles, in plain PyTorch.

    Same loop as the Triton kernel (FlashAttention-2 Alg. 1): for each query block,
    stream the key/value blocks, keep a running max m and sum l per row, rescale the
    partial output by exp(m_old - m_new); causal skips blocks above the diagonal.
    Never holds more than one score tile per (batch, head). Differentiable.
    ``return_trace=True`` returns (out, TiledTrace) for head ``trace_head``.
    """
    B, H, N, D = check_qkv(q, k, v)
    scale, causal = resolve_scale(sm_scale, D), _check_causal(causal)
    block_m, block_n = check_int("block_m", block_m, 1, 4096), check_int("block_n", block_n, 1, 4096)
    n_steps = math.ceil(N / block_m) * math.ceil(N / block_n)
    if n_steps > MAX_TILED_STEPS:
        raise ValidationError(f"{n_steps:,} tiles is more than {MAX_TILED_STEPS:,}: use larger blocks.")
    head = _check_trace_head(trace_head, B, H, N) if return_trace else None
    work = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    outs, lses, steps = [], [], []
    for r0 in range(0, N, block_m):
        o_i, lse_i, st = _tiled_query_block(q, k, v, r0, min(r0 + block_m, N), causal, scale,
                                            block_m, block_n, work, head)
        outs.append(o_i)
        lses.append(lse_i)
        steps.extend(st)
    out = torch.cat(outs, dim=2).to(q.dtype)                                       # (B, H, N, D)
    if not return_trace:
        return out
    lse = torch.cat(lses, dim=-1)[head].detach().to("cpu", torch.float64)         # (N,)
    return out, TiledTrace(N, block_m, block_n, causal, head, tuple(steps), lse)


def _check_trace_head(trace_head, B: int, H: int, N: int) -> tuple[int, int]:
    if N > MAX_TRACE_SEQ:
        raise ValidationError(f"A trace is kept for at most N={MAX_TRACE_SEQ:,}; got {N:,}.")
    if not isinstance(trace_head, (tuple, list)) or len(trace_head) != 2:
        raise ValidationError("trace_head must be (batch, head).")
    return check_int("trace batch", trace_head[0], 0, B - 1), check_int("trace head", trace_head[1], 0, H - 1)


def _tiled_query_block(q, k, v, r0, r1, causal, scale, block_m, block_n, work, head):
    """One query block [r0, r1): online softmax over the key blocks; (out, lse, trace steps)."""
    N = q.shape[2]
    i = r0 // block_m
    qi = q[:, :, r0:r1].to(work)                                                  # (B, H, bm, D)
    m = torch.full(qi.shape[:-1], float("-inf"), dtype=work, device=q.device)    # (B, H, bm)
    l_i = torch.zeros_like(m)                                                     # (B, H, bm)
    acc = torch.zeros_like(qi)                                                    # (B, H, bm, D)
    steps = []
    for c0 in range(0, N, block_n):
        c1, j = min(c0 + block_n, N), c0 // block_n
        edge = c0 + block_n > N
        if causal and c0 >= r1:                                                   # above the diagonal
            if head is not None:
                steps.append(TileStep(i, j, (r0, r1), (c0, c1), True, False, edge, None, None, None, None))
            continue
        s = torch.matmul(qi, k[:, :, c0:c1].to(work).transpose(-2, -1)) * scale  # (B, H, bm, bn)
        straddles = causal and c1 - 1 > r0
        if straddles:
            rows = torch.arange(r0, r1, device=q.device)[:, None]
            s = s.masked_fill(torch.arange(c0, c1, device=q.device)[None, :] > rows, float("-inf"))
        tile_max = s.amax(dim=-1)                                                 # (B, H, bm)
        m_new = torch.maximum(m, tile_max)                                        # (B, H, bm)
        alpha = torch.exp(m - m_new)                                              # (B, H, bm); 0 at the start
        p = torch.exp(s - m_new[..., None])                                       # (B, H, bm, bn)
        l_i = alpha * l_i + p.sum(dim=-1)
        acc = alpha[..., None] * acc + torch.matmul(p, v[:, :, c0:c1].to(work))   # (B, H, bm, D)
        m = m_new
        if head is not None:
            steps.append(TileStep(i, j, (r0, r1), (c0, c1), False, straddles, edge,
                                  *(_traced(t, head) for t in (m, l_i, alpha, tile_max))))
    return acc / l_i[..., None], m + torch.log(l_i), steps


def _traced(t: torch.Tensor, head: tuple[int, int]) -> torch.Tensor:
    return t[head].detach().to("cpu", torch.float64).clone()


# ----------------------------------------------------------------------------- FLOPs and IO
def attention_flops(batch: int, heads: int, n: int, head_dim: int, *, causal: bool = False,
                    backward: bool = False) -> float:
    """Matmul FLOPs: 4*B*H*N^2*D forward (two N x N x D matmuls), halved when causal;
    forward+backward = 3.5x the forward (backward 2.5x). FlashAttention-2 paper, Sec. 4.1."""
    fwd = 4.0 * batch * heads * n * n * head_dim * (0.5 if causal else 1.0)
    return fwd * 3.5 if backward else fwd


@dataclass(frozen=True)
class IOConfig:
    n: int                  # sequence length N
    head_dim: int           # d
    sram_bytes: int         # on-chip memory per SM (the paper's M, in bytes here)
    bytes_per_elem: int = 2  # 2 for fp16/bf16 Q, K, V, O, S, P
    block_m: int = 128      # our kernel's BLOCK_M (query rows per program)
    causal: bool = False    # our kernel skips key blocks above the diagonal
    batch_heads: int = 1    # B*H independent heads (every count is per head times this)


@dataclass(frozen=True)
class IOEstimate:
    naive_bytes: int        # Algorithm 0: 4*N*d + 4*N^2 elements (read Q,K,S,P,V; write S,P,O)
    naive_read_bytes: int   # ... of which reads: 3*N*d + 2*N^2 elements
    flash_read_bytes: int   # Algorithm 1's reads: K, V once; Q, O, l, m once per outer step
    ours_read_bytes: int    # our loop's reads: Q once; K, V once per query block
    flash_bytes: int        # FlashAttention Algorithm 1: 3*N*d + T_c*3*N*d elements + (2 + 4*T_c)*N fp32 stats
    ours_bytes: int         # our FA2 loop: Q read and O written once, K,V once per query block, LSE
    block_c: int            # Algorithm 1's key block B_c = ceil(M / 4d)
    block_r: int            # Algorithm 1's query block B_r = min(B_c, d)
    t_c: int                # Algorithm 1's outer loop count ceil(N / B_c)
    t_r: int                # our query blocks ceil(N / BLOCK_M)
    naive_order: float      # Theorem 2's Theta(N d + N^2) term, in bytes
    flash_order: float      # Theorem 2's Theta(N^2 d^2 / M) term, in bytes
    naive_extra_bytes: int  # what naive attention allocates beyond Q, K, V, O: S and P (N x N each)
    flash_extra_bytes: int  # what the kernel allocates beyond Q, K, V, O: the fp32 LSE (N)


def check_io_config(cfg: IOConfig) -> IOConfig:
    check_int("N", cfg.n, 1, 1 << 22)
    check_int("head_dim", cfg.head_dim, 1, MAX_REF_HEAD_DIM)
    check_int("SRAM size (bytes)", cfg.sram_bytes, 1024, 64 << 20)
    check_int("bytes per element", cfg.bytes_per_elem, 1, 8)
    check_int("BLOCK_M", cfg.block_m, 1, 4096)
    check_int("batch x heads", cfg.batch_heads, 1, 1 << 16)
    if 4 * cfg.head_dim > cfg.sram_bytes // cfg.bytes_per_elem:
        raise ValidationError("SRAM too small: Algorithm 1 needs room for at least 4 x d elements.")
    return cfg


def io_analysis(cfg: IOConfig) -> IOEstimate:
    """HBM bytes moved by standard attention vs FlashAttention for one forward pass.

    Counts follow the FlashAttention paper (Algorithm 0 and Algorithm 1, Theorem 2,
    M = sram_bytes / bytes_per_elem elements); "ours" counts the FA2 loop order of
    kernels/flash_attention.py with its BLOCK_M. Masking/dropout passes are left out.
    """
    cfg = check_io_config(cfg)
    n, d, e, bh = cfg.n, cfg.head_dim, cfg.bytes_per_elem, cfg.batch_heads
    m_elems = cfg.sram_bytes // e
    block_c = math.ceil(m_elems / (4 * d))
    block_r = min(block_c, d)
    t_c, t_r = math.ceil(n / block_c), math.ceil(n / cfg.block_m)
    naive = (4 * n * d + 4 * n * n) * e
    naive_reads = (3 * n * d + 2 * n * n) * e
    # Algorithm 1: init O, l, m in HBM; K_j, V_j read once; per outer step j read Q, O, l, m, write O, l, m.
    flash = (3 * n * d + t_c * 3 * n * d) * e + (2 * n + t_c * 4 * n) * 4
    flash_reads = (2 * n * d + t_c * 2 * n * d) * e + t_c * 2 * n * 4
    keys_read = sum(min((i + 1) * cfg.block_m, n) if cfg.causal else n for i in range(t_r))
    ours_reads = (n * d + 2 * d * keys_read) * e
    ours = ours_reads + n * d * e + 4 * n
    return IOEstimate(
        naive_bytes=bh * naive, naive_read_bytes=bh * naive_reads, flash_read_bytes=bh * flash_reads,
        ours_read_bytes=bh * ours_reads, flash_bytes=bh * flash, ours_bytes=bh * ours,
        block_c=block_c, block_r=block_r, t_c=t_c, t_r=t_r,
        naive_order=float(bh * (n * d + n * n) * e),
        flash_order=float(bh * n * n * d * d / m_elems * e),
        naive_extra_bytes=bh * 2 * n * n * e, flash_extra_bytes=bh * 4 * n,
    )


# ----------------------------------------------------------------------------- benchmark
IMPLEMENTATIONS = ("naive", "sdpa", "tiled", "triton")      # the page's choices
SDPA_VARIANTS = ("sdpa_flash", "sdpa_cudnn")   # SDPA with one backend forced (CUDA, 16-bit): baselines
BENCH_IMPLEMENTATIONS = IMPLEMENTATIONS + SDPA_VARIANTS
IMPL_LABELS = {
    "naive": "naive PyTorch (N x N in memory)",
    "sdpa": "PyTorch SDPA",
    "tiled": "tiled PyTorch (online softmax)",
    "triton": "our Triton kernel",
    "sdpa_flash": "PyTorch SDPA, flash backend (FlashAttention-2)",
    "sdpa_cudnn": "PyTorch SDPA, cuDNN backend",
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
INTERPRETER_STATUS = "correctness only (Triton interpreter on CPU: not timed)"


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
    from core.validation import check_choice

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
    (L2 flushed between runs), else core.timing.time_fn (warm-up, repeats). Grads reset each run."""
    dev = torch.device(device)
    lo, hi = SPREAD_QUANTILES
    if dev.type == "cuda":
        import triton.testing

        q20, q50, q80 = triton.testing.do_bench(fn, grad_to_none=grad_to_none, quantiles=[lo, 0.5, hi])
        return float(q50), float(q20), float(q80)
    from core.timing import time_fn

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
    from torch.nn.attention import SDPBackend

    try:
        return SDPBackend(torch._fused_sdp_choice(q, k, v, None, 0.0, bool(causal))).name
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None


def kernel_interpreted(device) -> bool:
    """True when our Triton kernel would run in the CPU interpreter for tensors on ``device``."""
    from kernels import INTERPRETED

    return INTERPRETED or torch.device(device).type != "cuda"


def _call(impl: str, q, k, v, cfg: BenchConfig):
    """One forward of ``impl`` (autograd follows the inputs' requires_grad)."""
    if impl == "naive":
        return naive_attention(q, k, v, cfg.causal)
    if impl == "tiled":
        blocks = _blocks_for(cfg.head_dim, q.dtype, q.device, None)
        return tiled_attention(q, k, v, cfg.causal, block_m=blocks.block_m, block_n=blocks.block_n)
    if impl == "triton":
        from kernels.flash_attention import flash_attention

        return flash_attention(q, k, v, cfg.causal)
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

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
    from core.validation import check_choice

    dtype = BENCH_DTYPES[check_choice("dtype", dtype, BENCH_DTYPES)]
    head_dim = check_int("head_dim", head_dim, MIN_KERNEL_HEAD_DIM, MAX_KERNEL_HEAD_DIM)
    if capability is not None:
        capability = (check_int("capability major", capability[0], 1, 20), check_int("capability minor", capability[1], 0, 9))
        return _blocks_for(head_dim, dtype, "cuda", capability)
    return _blocks_for(head_dim, dtype, device, None)


def _blocks_for(head_dim, dtype, device, capability):
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
        return f"skipped: the Python tile loop is too slow beyond N={TILED_MAX_SEQ:,}"
    if impl == "sdpa" and cfg.sdpa_backend == "flash" and (dev.type != "cuda" or dtype == torch.float32):
        return "skipped: SDPA's flash backend needs fp16/bf16 on CUDA"
    if impl in SDPA_VARIANTS and (dev.type != "cuda" or dtype == torch.float32):
        return f"skipped: {IMPL_LABELS[impl]} needs fp16/bf16 on CUDA"
    if impl == "sdpa_cudnn" and not torch.backends.cudnn.is_available():
        return "skipped: this torch has no cuDNN"
    if impl == "triton" and dev.type not in ("cuda", "cpu"):
        return f"skipped: the Triton kernel runs on CUDA (or the CPU interpreter), not {dev.type}"
    too_big = n > INTERPRETER_MAX_SEQ or cfg.batch * cfg.heads * n * cfg.head_dim > INTERPRETER_MAX_ELEMENTS
    if impl == "triton" and too_big and kernel_interpreted(dev):
        return (f"skipped: the CPU interpreter checks correctness only up to N={INTERPRETER_MAX_SEQ} "
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
    from core.timing import peak_memory_bytes

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
    return BenchRow(impl, n, mode, ms, flops / ms / 1e9, err, grad_err, peak, "ok", p20, p80)


def run_benchmark(cfg: BenchConfig, device, progress=None, job=None,
                  deadline: float | None = None) -> tuple[BenchRow, ...]:
    """Every (N, implementation, mode) of ``cfg`` on ``device``; progress(fraction, message).

    ``job`` (core.scheduler) is checked between rows; rows after ``deadline``
    (time.monotonic()) are recorded as skipped instead of run.
    """
    import time

    from core.device import free_memory

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
                    progress(len(rows) / total, f"{IMPL_LABELS[impl]}, N={n:,}, {'fwd+bwd' if backward else 'fwd'}")
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
            refusal = f"not measured: {dev.type} has no allocator statistics (formula only)"
        rows.append(MemoryRow(impl, analytic, None, refusal or "ok"))
    if dev.type != "cuda":
        return tuple(rows)
    with oom_guard("Preparing the inputs", dev, hint="Lower N, batch or heads."):
        q, k, v = (torch.randn(cfg.batch, cfg.heads, n, cfg.head_dim, device=dev, dtype=dtype) for _ in range(3))
    return tuple(_measure(row, q, k, v, cfg, dev, job) if row.status == "ok" else row for row in rows)


def _measure(row: MemoryRow, q, k, v, cfg: BenchConfig, dev, job) -> MemoryRow:
    from core.timing import peak_memory_bytes

    if job is not None:
        job.check()
    try:
        with oom_guard(IMPL_LABELS[row.impl], dev, hint="Lower N, batch or heads."), torch.no_grad():
            peak = peak_memory_bytes(lambda: _call(row.impl, q, k, v, cfg), dev)
    except ResourceError as exc:
        return dataclasses.replace(row, status=f"failed: {exc}")
    return dataclasses.replace(row, measured_bytes=peak)


# ----------------------------------------------------------------------------- tiling walkthrough
TILING_SOURCES = ("random", "minilm")
MAX_TILING_SEQ = 512            # the page draws the N x N matrix
MAX_TEXT_CHARS = 20_000         # MiniLM source text, before tokenization
MINILM_LAYERS, MINILM_HEADS, MINILM_HEAD_DIM = 6, 12, 32


@dataclass(frozen=True)
class TilingConfig:
    n: int = 200                # sequence length (MiniLM: at most this many tokens of the text)
    head_dim: int = 64          # random inputs only (MiniLM heads have 32)
    causal: bool = False
    block_m: int = 64           # query rows per block (the kernel's BLOCK_M)
    block_n: int = 32           # key columns per block (the kernel's BLOCK_N)
    source: str = "random"      # "random" (Gaussian q, k, v) | "minilm" (a real attention head)
    text: str = ""              # MiniLM source: the passage
    layer: int = 0              # MiniLM layer 0..5
    head: int = 0               # MiniLM head 0..11
    seed: int = 0               # random inputs


@dataclass(frozen=True)
class TilingView:
    n: int                      # N actually used (MiniLM: number of tokens)
    head_dim: int
    scale: float                # softmax scale 1/sqrt(head_dim)
    causal: bool
    block_m: int
    block_n: int
    tokens: tuple[str, ...]     # MiniLM WordPiece tokens; () for random inputs
    scores: np.ndarray          # (N, N) float64 scaled scores, -inf where causally masked
    probs: np.ndarray           # (N, N) float64 softmax from naive attention
    lse: np.ndarray             # (N,) float64 log-sum-exp from naive attention
    trace: TiledTrace           # the tiled run of the same head, every step
    out_max_err: float          # max |tiled - naive| over the output (float64)
    lse_max_err: float          # max |tiled lse - naive lse|
    qkv: tuple                  # (1, 1, N, D) float32 q, k, v (for the kernel check)


def check_tiling_config(cfg: TilingConfig) -> TilingConfig:
    from core.validation import check_choice

    if not isinstance(cfg, TilingConfig):
        raise ValidationError("Expected a TilingConfig.")
    check_int("N", cfg.n, 1, MAX_TILING_SEQ)
    check_int("head_dim", cfg.head_dim, MIN_KERNEL_HEAD_DIM, MAX_KERNEL_HEAD_DIM)
    _check_causal(cfg.causal)
    for name, b in (("block_m", cfg.block_m), ("block_n", cfg.block_n)):
        check_int(name, b, 16, 256)
    check_choice("source", cfg.source, TILING_SOURCES)
    check_int("layer", cfg.layer, 0, MINILM_LAYERS - 1)
    check_int("head", cfg.head, 0, MINILM_HEADS - 1)
    check_int("seed", cfg.seed, 0, 2**31 - 1)
    return cfg


def minilm_qkv(text: str, layer: int, max_tokens: int, device="cpu"):
    """q, k, v (1, 12, T, 32) of all-MiniLM-L6-v2's layer ``layer`` on ``text``, and the tokens.

    Computed from the layer's input hidden states and its own query/key/value
    projections (no hooks, so a shared model stays untouched).
    """
    from core import minilm
    from core.validation import check_text

    text = check_text(text, max_chars=MAX_TEXT_CHARS, name="Text").text
    layer = check_int("layer", layer, 0, MINILM_LAYERS - 1)
    max_tokens = check_int("tokens", max_tokens, 2, MAX_TILING_SEQ)
    tok, model = minilm.load_tokenizer(), minilm.load_model(str(device))
    enc = tok.encode(text)
    ids = enc.ids if len(enc.ids) <= max_tokens else enc.ids[: max_tokens - 1] + enc.ids[-1:]
    tokens = tuple(tok.id_to_token(i) or "?" for i in ids)
    input_ids = torch.tensor([ids], device=device)                               # (1, T)
    with torch.inference_mode():
        hidden = model(input_ids=input_ids, output_hidden_states=True).hidden_states[layer]  # (1, T, 384)
        attn = model.encoder.layer[layer].attention.self
        heads = [proj(hidden).view(1, len(ids), MINILM_HEADS, MINILM_HEAD_DIM).transpose(1, 2)
                 for proj in (attn.query, attn.key, attn.value)]                 # 3 x (1, 12, T, 32)
    return (*(h.float().cpu().clone() for h in heads), tokens)


def _tiling_inputs(cfg: TilingConfig):
    """(q, k, v) float64 (1, 1, N, D) on the CPU and the tokens."""
    if cfg.source == "minilm":
        q, k, v, tokens = minilm_qkv(cfg.text, cfg.layer, cfg.n)
        return (*(t[:, cfg.head: cfg.head + 1].double() for t in (q, k, v)), tokens)
    gen = torch.Generator().manual_seed(cfg.seed)
    q, k, v = (torch.randn(1, 1, cfg.n, cfg.head_dim, generator=gen, dtype=torch.float64) for _ in range(3))
    return q, k, v, ()


def tiling_walkthrough(cfg: TilingConfig) -> TilingView:
    """Naive and tiled attention on one head, with the tiled run's full trace."""
    cfg = check_tiling_config(cfg)
    q, k, v, tokens = _tiling_inputs(cfg)                                        # (1, 1, N, D) float64
    with cpu_threads("cpu", 1):   # one small head, many tiny tile products: one thread is fastest
        return _walkthrough(cfg, q, k, v, tokens)


def _walkthrough(cfg: TilingConfig, q, k, v, tokens) -> TilingView:
    n, d = q.shape[2], q.shape[3]
    scale = resolve_scale(None, d)
    scores = torch.matmul(q, k.transpose(-2, -1))[0, 0] * scale                  # (N, N)
    if cfg.causal:
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    probs = torch.softmax(scores, dim=-1)                                         # (N, N)
    naive = naive_attention(q, k, v, cfg.causal)                                  # (1, 1, N, D)
    out, trace = tiled_attention(q, k, v, cfg.causal, block_m=cfg.block_m, block_n=cfg.block_n,
                                 return_trace=True)
    lse = torch.logsumexp(scores, dim=-1)                                         # (N,)
    return TilingView(
        n=n, head_dim=d, scale=scale, causal=cfg.causal, block_m=cfg.block_m, block_n=cfg.block_n,
        tokens=tokens, scores=scores.numpy(), probs=probs.numpy(), lse=lse.numpy(), trace=trace,
        out_max_err=float((out - naive).abs().max()), lse_max_err=float((trace.lse - lse).abs().max()),
        qkv=tuple(t.float() for t in (q, k, v)),
    )


@dataclass(frozen=True)
class RowProgress:
    row: int                    # query row r
    q_block: int                # its query block i
    key_block: int              # the key block the user stepped to (j)
    visited: tuple[int, ...]    # key blocks the kernel loads for this query block, in order
    skipped: tuple[int, ...]    # key blocks skipped (causal: above the diagonal)
    m: np.ndarray               # (len(visited),) running max of row r after each visited block
    l: np.ndarray               # (len(visited),) running sum of exp(s - m)  # noqa: E741
    alpha: np.ndarray           # (len(visited),) rescale factor exp(m_old - m_new)
    tile_max: np.ndarray        # (len(visited),) max of row r inside each block
    done: int                   # visited blocks processed up to key_block
    estimate: np.ndarray        # (N,) exp(s - m)/l over the columns seen so far; nan for unseen
    final: np.ndarray           # (N,) the softmax row from naive attention
    final_m: float              # the row max over all columns
    final_l: float              # sum of exp(s - final_m) over all columns
    lse_err: float | None       # |m + log l - naive lse| once every block is seen, else None
    prob_err: float | None      # max |estimate - final| once every block is seen, else None


def row_progress(view: TilingView, row: int, key_block: int) -> RowProgress:
    """Row ``row``'s online-softmax state after the key blocks up to ``key_block``."""
    row = check_int("row", row, 0, view.n - 1)
    key_block = check_int("key block", key_block, 0, math.ceil(view.n / view.block_n) - 1)
    i, local = row // view.block_m, row % view.block_m
    steps = [s for s in view.trace.steps if s.q_block == i]
    visited = [s for s in steps if not s.skipped]
    done = [s for s in visited if s.k_block <= key_block]
    stat = {name: np.array([float(getattr(s, name)[local]) for s in visited]) for name in ("m", "l", "alpha", "tile_max")}
    scores = view.scores[row]                                                     # (N,)
    estimate = np.full(view.n, np.nan)
    if done:
        seen = done[-1].cols[1]
        estimate[:seen] = np.exp(scores[:seen] - stat["m"][len(done) - 1]) / stat["l"][len(done) - 1]
    final_m = float(np.max(scores))
    complete = len(done) == len(visited)
    if complete:            # key blocks never loaded are causally masked: weight exactly 0
        estimate[np.isnan(estimate)] = 0.0
    lse_err = abs(stat["m"][-1] + math.log(stat["l"][-1]) - float(view.lse[row])) if complete else None
    prob_err = float(np.max(np.abs(estimate - view.probs[row]))) if complete else None
    return RowProgress(
        row=row, q_block=i, key_block=key_block, visited=tuple(s.k_block for s in visited),
        skipped=tuple(s.k_block for s in steps if s.skipped), m=stat["m"], l=stat["l"],
        alpha=stat["alpha"], tile_max=stat["tile_max"], done=len(done), estimate=estimate,
        final=view.probs[row], final_m=final_m, final_l=float(np.sum(np.exp(scores - final_m))),
        lse_err=lse_err, prob_err=prob_err,
    )


@dataclass(frozen=True)
class KernelCheck:
    out_max_err: float          # max |Triton output - naive float64| on this head
    lse_max_err: float          # max |Triton log-sum-exp - naive float64|
    lse: np.ndarray             # (N,) the kernel's log-sum-exp
    block_m: int                # the BLOCK_M x BLOCK_N the kernel ran with
    block_n: int
    interpreted: bool           # ran in Triton's CPU interpreter


def kernel_check(view: TilingView, device) -> KernelCheck:
    """Run our Triton kernel (fp32) on the walkthrough's head with the drawn block sizes."""
    from kernels.flash_attention import block_sizes, flash_attention_forward, with_blocks

    dev = torch.device(device)
    cfg = with_blocks(block_sizes(view.head_dim, torch.float32, dev), block_m=view.block_m, block_n=view.block_n)
    q, k, v = (t.to(dev) for t in view.qkv)                                       # (1, 1, N, D) float32
    with torch.no_grad(), oom_guard("The Triton kernel", dev, hint="Lower N."):
        out, lse = flash_attention_forward(q, k, v, view.causal, return_lse=True, config=cfg)
    ref = reference_attention(*view.qkv, view.causal)                             # float64
    kernel_lse = lse[0, 0].double().cpu().numpy()                                 # (N,)
    return KernelCheck(
        out_max_err=float((out.double().cpu() - ref).abs().max()),
        lse_max_err=float(np.max(np.abs(kernel_lse - view.lse))),
        lse=kernel_lse, block_m=cfg.block_m, block_n=cfg.block_n, interpreted=kernel_interpreted(dev),
    )


def busiest_row(view: TilingView, q_block: int) -> int:
    """The row of query block ``q_block`` whose running max moved most often (ties: first)."""
    q_block = check_int("query block", q_block, 0, math.ceil(view.n / view.block_m) - 1)
    steps = [s for s in view.trace.steps if s.q_block == q_block and not s.skipped]
    ms = np.stack([s.m.numpy() for s in steps])                                   # (steps, rows)
    moves = (np.diff(ms, axis=0) > 0).sum(axis=0) if len(steps) > 1 else np.zeros(ms.shape[1])
    return q_block * view.block_m + int(np.argmax(moves))


# ----------------------------------------------------------------------------- recorded results
RESULTS_DIR = Path(__file__).resolve().parents[1] / "bench" / "results"   # bench/results/ (data only)
GPU_BUNDLE = "gpu-check-cuda.json"                                        # written by bench/gpu_check.sh


def recorded_gpu_results(results_dir: Path | None = None) -> dict | None:
    """The attention results of the GPU check (``results`` of gpu-check-cuda.json, with the
    bundle's meta: device, driver, versions, date, commit), else a recorded attention-cuda.json;
    None when neither holds a measured CUDA run (missing, unreadable, a dry run, not CUDA)."""
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    for name in (GPU_BUNDLE, "attention-cuda.json"):
        doc = _read_json(folder / name)
        if doc.get("benchmark") == "gpu-check":
            doc = next((r for r in (doc.get("results") or {}).values()
                        if isinstance(r, dict) and r.get("benchmark") == "attention"), {})
        meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
        if doc.get("benchmark") == "attention" and not doc.get("dry_run") and \
                (meta.get("device") or {}).get("kind") == "cuda":
            return doc
    return None


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def recorded_rows(doc: dict) -> list[dict]:
    """Flat rows (impl, n, mode, ms, tflops, errors, head_dim, causal, dtype, ...) of a
    bench/attention.py result document; unknown layouts give []."""
    rows = []
    for case in doc.get("cases", []) if isinstance(doc, dict) else []:
        if not isinstance(case, dict):
            continue
        shared = {key: case.get(key) for key in ("head_dim", "causal", "dtype", "batch", "heads", "sdpa_backend")}
        rows.extend({**shared, **row} for row in case.get("rows", []) if isinstance(row, dict))
    return rows


def speed_ratios(rows: list[dict], impl: str = "triton", baseline: str = "sdpa") -> list[dict]:
    """Per (head_dim, causal, N, mode): time(baseline) / time(impl), i.e. our speed relative
    to the baseline (1.0 = as fast), with both TFLOP/s. Rows without timings are left out."""
    def key(r):
        return r.get("head_dim"), r.get("causal"), r.get("n"), r.get("mode")

    base = {key(r): r for r in rows if r.get("impl") == baseline and r.get("ms")}
    out = []
    for r in rows:
        b = base.get(key(r))
        if r.get("impl") == impl and r.get("ms") and b is not None:
            out.append({"head_dim": r["head_dim"], "causal": r["causal"], "n": r["n"], "mode": r["mode"],
                        "tflops": r["tflops"], "baseline_tflops": b["tflops"], "ratio": b["ms"] / r["ms"]})
    return out


def _baseline(row: dict) -> str | None:
    """"flash" or "cudnn" if ``row`` times SDPA with that backend forced (old files: sdpa + flash)."""
    if row.get("impl") == "sdpa_flash" or (row.get("impl") == "sdpa" and row.get("sdpa_backend") == "flash"):
        return "flash"
    return "cudnn" if row.get("impl") == "sdpa_cudnn" else None


def compare_rows(rows: list[dict]) -> list[dict]:
    """Every row with ``vs_flash`` and ``vs_cudnn``: the baseline's time / this row's time at the
    same (head_dim, causal, N, mode), i.e. speed relative to SDPA's flash and cuDNN backends
    (1.0 = as fast; None where the row or that baseline has no time)."""
    def key(r):
        return r.get("head_dim"), r.get("causal"), r.get("n"), r.get("mode")

    base = {(name, key(r)): r["ms"] for r in rows if (name := _baseline(r)) and r.get("ms")}
    out = []
    for r in rows:
        ratios = {f"vs_{name}": (base[(name, key(r))] / r["ms"] if r.get("ms") and (name, key(r)) in base
                                 else None) for name in ("flash", "cudnn")}
        out.append({**r, **ratios})
    return out

