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

import logging
import math
from dataclasses import dataclass

import torch

from core.runtime.device import oom_guard
from core.runtime.validation import ResourceError, ValidationError, check_int
from kernels import _checks
from kernels._checks import check_bool, resolve_scale

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
