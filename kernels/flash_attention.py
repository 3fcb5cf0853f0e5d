"""FlashAttention-2 in Triton: fused forward (online softmax) and backward (dQ, dK, dV).

References
- Dao et al. 2022, "FlashAttention: Fast and Memory-Efficient Exact Attention with
  IO-Awareness" (arXiv:2205.14135), Sec. 3.1 (tiling + online softmax, Algorithm 1)
  and Sec. 3.2 / Theorem 2 (IO complexity).
- Dao 2023, "FlashAttention-2: Faster Attention with Better Parallelism and Work
  Partitioning" (arXiv:2307.08691), Sec. 3.1 (Algorithm 1: forward with one
  rescale per tile and the log-sum-exp L saved for the backward; Algorithm 2:
  backward with D = rowsum(dO * O)), Sec. 3.2 (parallelism over query blocks).
- Shah et al. 2024, "FlashAttention-3" (arXiv:2407.08608), Sec. 3.1 (Hopper: TMA
  loads, warp specialization into producer and consumer warps).
- Triton tutorial 06 "Fused Attention" (exp2 with log2(e) folded into the scale,
  causal split into off-diagonal and diagonal stages, tensor descriptors).

Layout: q, k, v are (batch, heads, seq, head_dim) with a contiguous last dim.
The forward runs one program per (query block of BLOCK_M rows, batch*head); each
program streams key/value blocks of BLOCK_N rows through on-chip memory, so the
(N, N) score matrix never reaches global memory; it writes O and the row
log-sum-exp (natural log, float32). The backward recomputes P from Q, K and the
saved log-sum-exp: one kernel owns a key block and accumulates dK and dV over
query blocks, another owns a query block and accumulates dQ over key blocks.
With a causal mask the forward and dQ programs take the last (heaviest) query
blocks first (reversed program ids), so the short ones fill the tail of the grid.

Two forward paths: pointer loads (any strides, every GPU, the interpreter), and on
Hopper a tensor-descriptor (TMA) path where the layout allows it (batch and heads
mergeable, 16-byte aligned strides), optionally warp-specialized when not causal.
If the TMA or warp-specialized kernel fails to compile or launch, the launcher
records why (``fallbacks()``) and uses the next path; ``forward_path`` says which
path a call takes.

Any sequence length works (edges are masked; the masks are compiled out when N
is a multiple of every block size), any head_dim in 16..128 (padded to a power
of two inside the kernel), fp16 / bf16 / fp32 (fp32 dots use 3xTF32 on the GPU:
tensor cores with close to fp32 accuracy, not plain TF32). Causal attention skips
the key blocks above the diagonal entirely.
On a machine without CUDA the kernels run in Triton's interpreter
(TRITON_INTERPRET=1, set through kernels.INTERPRETED before triton is imported);
there 16-bit dots are wrong, so the kernels cast their dot operands to fp32 (the
FP32_DOT flag). Interpreter runs are for correctness only: never quote their
timings as kernel speed.

Does not handle: q/k/v of different lengths (cross-attention, KV cache), grouped
or multi-query heads, dropout, attention bias or padding masks, fp8, head_dim
above 128, batch*heads above 65,535, a gradient through the returned log-sum-exp,
a TMA backward (the backward kernels load through pointers).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, replace

from kernels import INTERPRETED  # isort: skip  (sets TRITON_INTERPRET before triton is imported)

import torch
import triton
import triton.language as tl

from kernels._checks import (
    MAX_KERNEL_HEAD_DIM,
    MIN_KERNEL_HEAD_DIM,
    check_bool,
    check_head_dim,
    check_qkv,
    resolve_scale,
)
from kernels.errors import ResourceError, ValidationError

log = logging.getLogger("atlas.kernels")

LOG2E = 1.4426950408889634           # log2(e): exp(x) = exp2(x * LOG2E)
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_INTERPRETER_ELEMENTS = 1 << 22    # B*H*N*D cap under the CPU interpreter (it is ~1e5x slower)
MAX_GRID_Y = 65535                    # CUDA's grid y limit: batch * heads programs per query block
WARPS = (1, 2, 4, 8, 16)              # num_warps a launch may ask for
MAX_STAGES = 8                        # num_stages a launch may ask for
FORWARD_PATHS = ("tma-ws", "tma", "pointer")   # best first; a failure falls to the next


@dataclass(frozen=True)
class KernelConfig:
    block_m: int          # forward: query rows per program (BLOCK_M)
    block_n: int          # forward: key/value rows per inner step (BLOCK_N)
    num_warps: int        # forward: warps per program (GPU only)
    num_stages: int       # forward: software-pipelining depth of the K/V loads (GPU only)
    bwd_block_m1: int     # dK/dV kernel: query rows per inner step
    bwd_block_n1: int     # dK/dV kernel: key rows per program
    bwd_block_m2: int     # dQ kernel: query rows per program
    bwd_block_n2: int     # dQ kernel: key rows per inner step
    bwd_num_warps: int    # backward kernels: warps per program
    bwd_num_stages: int   # backward kernels: pipelining depth
    source: str = ""      # which table the sizes come from (shown on the page)
    tma: bool = False     # forward: load Q, K, V and store O through tensor descriptors (TMA)
    warp_specialize: bool = False  # forward, not causal, TMA path: warp-specialized K/V loop

    def blocks(self) -> tuple[int, ...]:
        return (self.block_m, self.block_n, self.bwd_block_m1, self.bwd_block_n1,
                self.bwd_block_m2, self.bwd_block_n2)


def check_config(cfg: KernelConfig) -> KernelConfig:
    """Blocks are powers of two in 16..256, the causal split needs nested blocks, and the
    launch settings are ones Triton takes."""
    for b in cfg.blocks():
        if not isinstance(b, int) or b < 16 or b > 256 or b & (b - 1):
            raise ValidationError(f"Block sizes must be powers of two in 16..256, got {b!r}.")
    if cfg.block_m % cfg.block_n or cfg.bwd_block_n1 % cfg.bwd_block_m1 or cfg.bwd_block_m2 % cfg.bwd_block_n2:
        raise ValidationError("BLOCK_M must be a multiple of BLOCK_N (forward and dQ), and the "
                              "dK/dV key block a multiple of its query block.")
    for name, warps in (("num_warps", cfg.num_warps), ("bwd_num_warps", cfg.bwd_num_warps)):
        if warps not in WARPS or isinstance(warps, bool):
            raise ValidationError(f"{name} must be one of {', '.join(map(str, WARPS))}; got {warps!r}.")
    for name, stages in (("num_stages", cfg.num_stages), ("bwd_num_stages", cfg.bwd_num_stages)):
        if isinstance(stages, bool) or not isinstance(stages, int) or not 1 <= stages <= MAX_STAGES:
            raise ValidationError(f"{name} must be a whole number in 1..{MAX_STAGES}; got {stages!r}.")
    check_bool("tma", cfg.tma)
    check_bool("warp_specialize", cfg.warp_specialize)
    return cfg


# Hopper (H100/H200, sm90), 16-bit inputs. Chosen from the sm_90 compile report
# (bench/compile_report.py -> bench/results/compile-sm90.json: registers, spills and
# blocks per SM on triton 3.6 and 3.9, causal and not, even and ragged N):
# - forward d <= 64: 128 x 64 tiles, 4 warps (one warpgroup issuing wgmma), 3 stages;
#   2 blocks per SM (registers), no spills.
# - forward d <= 128: 64 x 64 tiles, 4 warps, 3 stages: 2 independent blocks per SM
#   (112 KB shared each) instead of one 8-warp 128-row block whose two warpgroups run
#   in lockstep; 128 x 128 / 8 warps / 2 stages spills on the causal ragged kernel.
# - backward d <= 64: dK/dV 16 x 128 and dQ 128 x 32 at 8 warps: ~120 registers, no
#   spills (32 x 128 at 4 warps spills at 255 registers on triton 3.6, causal).
# - backward d <= 128: dK/dV 16 x 128, dQ 128 x 32, 8 warps, 3 stages: no spills.
# The forward loads through tensor descriptors (TMA); the sweep (bench/attention.py
# --sweep) times the alternatives on a GPU and is how these get revised.
_HOPPER = {
    64: KernelConfig(128, 64, 4, 3, 16, 128, 128, 32, 8, 4, "Hopper table, head_dim <= 64", tma=True),
    128: KernelConfig(64, 64, 4, 3, 16, 128, 128, 32, 8, 3, "Hopper table, head_dim <= 128", tma=True),
}
# Ampere/Ada (sm80/sm86/sm89), 16-bit: less shared memory than Hopper, no TMA.
_AMPERE = {
    64: KernelConfig(128, 64, 4, 3, 32, 64, 64, 32, 4, 2, "Ampere table, head_dim <= 64"),
    128: KernelConfig(128, 32, 8, 2, 32, 64, 64, 32, 4, 2, "Ampere table, head_dim <= 128"),
}
# fp32 (3xTF32 dots: three tensor-core passes per dot): small tiles keep registers in check.
_FP32_CUDA = KernelConfig(64, 32, 4, 2, 32, 64, 64, 32, 4, 2, "CUDA fp32 table")
# The CPU interpreter: big tiles mean fewer Python-level steps; warps/stages are ignored.
_INTERPRETER = KernelConfig(64, 32, 4, 1, 32, 64, 64, 32, 4, 1, "interpreter (CPU)")


def block_sizes(head_dim: int, dtype: torch.dtype = torch.float16, device="cuda",
                capability: tuple[int, int] | None = None) -> KernelConfig:
    """The block sizes and launch settings the kernel uses for this head_dim/dtype/device.

    ``capability`` (e.g. (9, 0) for H100/H200) is probed from the device when not
    given; pass it to see another GPU's table. CPU tensors run in the interpreter.
    """
    head_dim = check_head_dim(head_dim)
    dev = torch.device(device)
    if dev.type != "cuda" and capability is None:
        return _INTERPRETER
    if dtype == torch.float32:
        return _FP32_CUDA
    if capability is None:
        capability = torch.cuda.get_device_capability(dev)
    table = _HOPPER if tuple(capability) >= (9, 0) else _AMPERE
    return table[64] if head_dim <= 64 else table[128]


def hopper_tables() -> dict[int, KernelConfig]:
    """The shipped Hopper table by head_dim bound (for the compile report and the sweep)."""
    return dict(_HOPPER)


# ----------------------------------------------------------------------------- shared helpers
@triton.jit
def _load_tile(ptrs, rows, n_rows, offs_d, HEAD_DIM: tl.constexpr,
               MASK_ROWS: tl.constexpr, EVEN_D: tl.constexpr):
    """Load a (rows, BLOCK_D) tile; out-of-range rows and padded head dims read as 0."""
    if MASK_ROWS:
        if EVEN_D:
            x = tl.load(ptrs, mask=rows[:, None] < n_rows, other=0.0)
        else:
            x = tl.load(ptrs, mask=(rows[:, None] < n_rows) & (offs_d[None, :] < HEAD_DIM), other=0.0)
    else:
        if EVEN_D:
            x = tl.load(ptrs)
        else:
            x = tl.load(ptrs, mask=offs_d[None, :] < HEAD_DIM, other=0.0)
    return x


@triton.jit
def _store_tile(ptrs, x, rows, n_rows, offs_d, HEAD_DIM: tl.constexpr, EVEN_D: tl.constexpr):
    if EVEN_D:
        tl.store(ptrs, x, mask=rows[:, None] < n_rows)
    else:
        tl.store(ptrs, x, mask=(rows[:, None] < n_rows) & (offs_d[None, :] < HEAD_DIM))


@triton.jit
def _operand(x, FP32_DOT: tl.constexpr):
    """Dot operand: fp32 under the interpreter (its 16-bit dots are wrong), else as is."""
    if FP32_DOT:
        x = x.to(tl.float32)
    return x


@triton.jit
def _query_block(CAUSAL: tl.constexpr):
    """This program's query block; causal grids run the last (longest) blocks first."""
    if CAUSAL:
        block = tl.num_programs(0) - 1 - tl.program_id(0)
    else:
        block = tl.program_id(0)
    return block


# ----------------------------------------------------------------------------- forward
@triton.jit
def _softmax_tile(qk, m_i, offs_m, cols, N_CTX, qk_scale,
                  CAUSAL_MASK: tl.constexpr, MASK_N: tl.constexpr):
    """One online-softmax step on a (BM, BN) score tile: P (unnormalised), the rescale
    alpha of what was summed before, and the new running max (log2 units)."""
    if CAUSAL_MASK or MASK_N:
        qk = qk * qk_scale
        if CAUSAL_MASK:          # implies cols < N for every valid row
            qk = tl.where(offs_m[:, None] >= cols[None, :], qk, float("-inf"))
        else:
            qk = tl.where(cols[None, :] < N_CTX, qk, float("-inf"))
        m_ij = tl.maximum(m_i, tl.max(qk, 1))                                     # (BM,)
        qk = qk - m_ij[:, None]
    else:
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)                          # (BM,)
        qk = qk * qk_scale - m_ij[:, None]
    p = tl.math.exp2(qk)                                                          # (BM, BN)
    alpha = tl.math.exp2(m_i - m_ij)                                              # (BM,) rescale
    return p, alpha, m_ij


@triton.jit
def _fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d,
               lo, hi, N_CTX, qk_scale,
               HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL_MASK: tl.constexpr,
               MASK_N: tl.constexpr, EVEN_D: tl.constexpr, FP32_DOT: tl.constexpr,
               PRECISION: tl.constexpr):
    """Stream key blocks [lo, hi) through the online softmax (FlashAttention-2, Alg. 1)."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n                                                   # (BN,)
        k = _load_tile(k_base + cols[:, None] * stride_kn + offs_d[None, :], cols, N_CTX,
                       offs_d, HEAD_DIM, MASK_N, EVEN_D)                          # (BN, D)
        qk = tl.dot(q, tl.trans(_operand(k, FP32_DOT)), input_precision=PRECISION)  # (BM, BN)
        p, alpha, m_ij = _softmax_tile(qk, m_i, offs_m, cols, N_CTX, qk_scale, CAUSAL_MASK, MASK_N)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]                                                # (BM, D)
        v = _operand(_load_tile(v_base + cols[:, None] * stride_vn + offs_d[None, :], cols,
                                N_CTX, offs_d, HEAD_DIM, MASK_N, EVEN_D), FP32_DOT)  # (BN, D)
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PRECISION)            # (BM, D)
        m_i = m_ij
    return acc, l_i, m_i


@triton.jit
def _fwd_kernel(Q, K, V, Out, LSE, qk_scale,
                stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn,
                stride_vb, stride_vh, stride_vn, stride_ob, stride_oh, stride_on,
                H, N_CTX,
                HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, MASK_N: tl.constexpr,
                EVEN_D: tl.constexpr, FP32_DOT: tl.constexpr, PRECISION: tl.constexpr):
    """Pointer path: one program per (query block, batch*head), any strides."""
    start_m = _query_block(CAUSAL)
    off_bh = tl.program_id(1)
    off_b = (off_bh // H).to(tl.int64)
    off_h = (off_bh % H).to(tl.int64)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)                            # (BM,)
    offs_d = tl.arange(0, BLOCK_D)                                                # (D,)
    k_base = K + off_b * stride_kb + off_h * stride_kh
    v_base = V + off_b * stride_vb + off_h * stride_vh
    q_ptrs = Q + off_b * stride_qb + off_h * stride_qh + offs_m[:, None] * stride_qn + offs_d[None, :]
    q = _operand(_load_tile(q_ptrs, offs_m, N_CTX, offs_d, HEAD_DIM, MASK_N, EVEN_D), FP32_DOT)  # (BM, D)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)                     # running max (log2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)                                   # running sum
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)                          # (BM, D) unnormalised O
    if CAUSAL:
        # Key blocks left of the diagonal need no mask; blocks right of it are skipped.
        acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m,
                                   offs_d, 0, start_m * BLOCK_M, N_CTX, qk_scale, HEAD_DIM, BLOCK_N,
                                   False, False, EVEN_D, FP32_DOT, PRECISION)
        acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m,
                                   offs_d, start_m * BLOCK_M, tl.minimum((start_m + 1) * BLOCK_M, N_CTX),
                                   N_CTX, qk_scale, HEAD_DIM, BLOCK_N, True, MASK_N, EVEN_D,
                                   FP32_DOT, PRECISION)
    else:
        n_full = (N_CTX // BLOCK_N) * BLOCK_N
        acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m,
                                   offs_d, 0, n_full, N_CTX, qk_scale, HEAD_DIM, BLOCK_N,
                                   False, False, EVEN_D, FP32_DOT, PRECISION)
        if MASK_N:   # the last, partial key block
            acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m,
                                       offs_d, n_full, N_CTX, N_CTX, qk_scale, HEAD_DIM, BLOCK_N,
                                       False, True, EVEN_D, FP32_DOT, PRECISION)
    acc = acc / l_i[:, None]
    lse = (m_i + tl.math.log2(l_i)) * 0.6931471805599453                          # (BM,) natural log
    tl.store(LSE + off_bh.to(tl.int64) * N_CTX + offs_m, lse, mask=offs_m < N_CTX)
    o_ptrs = Out + off_b * stride_ob + off_h * stride_oh + offs_m[:, None] * stride_on + offs_d[None, :]
    _store_tile(o_ptrs, acc.to(Out.dtype.element_ty), offs_m, N_CTX, offs_d, HEAD_DIM, EVEN_D)


@triton.jit
def _fwd_tma_inner(acc, l_i, m_i, q, desc_k, desc_v, off_bh, offs_m, lo, hi, N_CTX, qk_scale,
                   BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL_MASK: tl.constexpr,
                   MASK_N: tl.constexpr, FP32_DOT: tl.constexpr, PRECISION: tl.constexpr,
                   WARP_SPECIALIZE: tl.constexpr):
    """_fwd_inner with K/V tiles fetched by TMA (rows past N and padded dims arrive as 0)."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in tl.range(lo, hi, BLOCK_N, warp_specialize=WARP_SPECIALIZE):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n                                                   # (BN,)
        k = desc_k.load([off_bh, start_n, 0]).reshape(BLOCK_N, BLOCK_D)           # (BN, D)
        qk = tl.dot(q, tl.trans(_operand(k, FP32_DOT)), input_precision=PRECISION)  # (BM, BN)
        p, alpha, m_ij = _softmax_tile(qk, m_i, offs_m, cols, N_CTX, qk_scale, CAUSAL_MASK, MASK_N)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]                                                # (BM, D)
        v = _operand(desc_v.load([off_bh, start_n, 0]).reshape(BLOCK_N, BLOCK_D), FP32_DOT)  # (BN, D)
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PRECISION)            # (BM, D)
        m_i = m_ij
    return acc, l_i, m_i


@triton.jit
def _fwd_tma_kernel(desc_q, desc_k, desc_v, desc_o, LSE, qk_scale, N_CTX,
                    BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    CAUSAL: tl.constexpr, MASK_N: tl.constexpr, FP32_DOT: tl.constexpr,
                    PRECISION: tl.constexpr, WARP_SPECIALIZE: tl.constexpr):
    """TMA path: descriptors over (batch*heads, N, head_dim); same loop as _fwd_kernel."""
    start_m = _query_block(CAUSAL)
    off_bh = tl.program_id(1)
    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)                            # (BM,)
    q = _operand(desc_q.load([off_bh, start_m * BLOCK_M, 0]).reshape(BLOCK_M, BLOCK_D), FP32_DOT)  # (BM, D)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)                     # running max (log2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)                                   # running sum
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)                          # (BM, D) unnormalised O
    if CAUSAL:
        acc, l_i, m_i = _fwd_tma_inner(acc, l_i, m_i, q, desc_k, desc_v, off_bh, offs_m, 0,
                                       start_m * BLOCK_M, N_CTX, qk_scale, BLOCK_D, BLOCK_N, False,
                                       False, FP32_DOT, PRECISION, False)
        acc, l_i, m_i = _fwd_tma_inner(acc, l_i, m_i, q, desc_k, desc_v, off_bh, offs_m,
                                       start_m * BLOCK_M, tl.minimum((start_m + 1) * BLOCK_M, N_CTX),
                                       N_CTX, qk_scale, BLOCK_D, BLOCK_N, True, MASK_N, FP32_DOT,
                                       PRECISION, False)
    else:
        n_full = (N_CTX // BLOCK_N) * BLOCK_N
        acc, l_i, m_i = _fwd_tma_inner(acc, l_i, m_i, q, desc_k, desc_v, off_bh, offs_m, 0, n_full,
                                       N_CTX, qk_scale, BLOCK_D, BLOCK_N, False, False, FP32_DOT,
                                       PRECISION, WARP_SPECIALIZE)
        if MASK_N:   # the last, partial key block
            acc, l_i, m_i = _fwd_tma_inner(acc, l_i, m_i, q, desc_k, desc_v, off_bh, offs_m, n_full,
                                           N_CTX, N_CTX, qk_scale, BLOCK_D, BLOCK_N, False, True,
                                           FP32_DOT, PRECISION, False)
    acc = acc / l_i[:, None]
    lse = (m_i + tl.math.log2(l_i)) * 0.6931471805599453                          # (BM,) natural log
    tl.store(LSE + off_bh.to(tl.int64) * N_CTX + offs_m, lse, mask=offs_m < N_CTX)
    desc_o.store([off_bh, start_m * BLOCK_M, 0], acc.to(desc_o.dtype).reshape(1, BLOCK_M, BLOCK_D))


# ----------------------------------------------------------------------------- backward
@triton.jit
def _bwd_preprocess(Out, DO, DELTA, stride_ob, stride_oh, stride_on, stride_dob, stride_doh,
                    stride_don, H, N_CTX, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
                    BLOCK_M: tl.constexpr, EVEN_D: tl.constexpr):
    """delta_i = rowsum(dO_i * O_i) (FlashAttention-2, Alg. 2 line 4)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)                     # (BM,)
    off_bh = tl.program_id(1)
    off_b = (off_bh // H).to(tl.int64)
    off_h = (off_bh % H).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    o = _load_tile(Out + off_b * stride_ob + off_h * stride_oh + rows[:, None] * stride_on + offs_d[None, :],
                   rows, N_CTX, offs_d, HEAD_DIM, True, EVEN_D).to(tl.float32)     # (BM, D)
    do = _load_tile(DO + off_b * stride_dob + off_h * stride_doh + rows[:, None] * stride_don
                    + offs_d[None, :], rows, N_CTX, offs_d, HEAD_DIM, True, EVEN_D).to(tl.float32)
    tl.store(DELTA + off_bh.to(tl.int64) * N_CTX + rows, tl.sum(o * do, axis=1), mask=rows < N_CTX)


@triton.jit
def _bwd_dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qn, stride_don,
                    cols, offs_d, lo, hi, N_CTX, qk_scale,
                    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, CAUSAL_MASK: tl.constexpr,
                    MASK_N: tl.constexpr, EVEN_D: tl.constexpr, FP32_DOT: tl.constexpr,
                    PRECISION: tl.constexpr):
    """Accumulate dK, dV of one key block over query blocks [lo, hi) (in transposed form)."""
    offs_m = tl.arange(0, BLOCK_M)
    for start_m in range(lo, hi, BLOCK_M):
        start_m = tl.multiple_of(start_m, BLOCK_M)
        rows = start_m + offs_m                                                   # (BM,)
        q = _operand(_load_tile(q_base + rows[:, None] * stride_qn + offs_d[None, :], rows, N_CTX,
                                offs_d, HEAD_DIM, MASK_N, EVEN_D), FP32_DOT)      # (BM, D)
        do = _operand(_load_tile(do_base + rows[:, None] * stride_don + offs_d[None, :], rows,
                                 N_CTX, offs_d, HEAD_DIM, MASK_N, EVEN_D), FP32_DOT)  # (BM, D)
        if MASK_N:
            lse2 = tl.load(lse_base + rows, mask=rows < N_CTX, other=0.0) * 1.4426950408889634
            delta = tl.load(delta_base + rows, mask=rows < N_CTX, other=0.0)
        else:
            lse2 = tl.load(lse_base + rows) * 1.4426950408889634                 # (BM,) log2 units
            delta = tl.load(delta_base + rows)                                    # (BM,)
        qkT = tl.dot(k, tl.trans(q), input_precision=PRECISION)                   # (BN, BM)
        pT = tl.math.exp2(qkT * qk_scale - lse2[None, :])                         # (BN, BM) = P^T
        if CAUSAL_MASK:
            pT = tl.where(rows[None, :] >= cols[:, None], pT, 0.0)
        if MASK_N:
            pT = tl.where(rows[None, :] < N_CTX, pT, 0.0)
        dv = tl.dot(pT.to(do.dtype), do, dv, input_precision=PRECISION)          # (BN, D) += P^T dO
        dpT = tl.dot(v, tl.trans(do), input_precision=PRECISION)                  # (BN, BM) = (dO V^T)^T
        dsT = pT * (dpT - delta[None, :])                                         # (BN, BM) = dS^T
        dk = tl.dot(dsT.to(q.dtype), q, dk, input_precision=PRECISION)            # (BN, D) += dS^T Q
    return dk, dv


@triton.jit
def _bwd_dkdv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, sm_scale, qk_scale,
                     stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn,
                     stride_vb, stride_vh, stride_vn, stride_dob, stride_doh, stride_don,
                     stride_gb, stride_gh, stride_gn, H, N_CTX,
                     HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                     BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, MASK_N: tl.constexpr,
                     EVEN_D: tl.constexpr, FP32_DOT: tl.constexpr, PRECISION: tl.constexpr):
    """One program per (key block, batch*head). DK and DV share the stride_g* layout.
    Causal: program 0 (the first key block, seen by every query row) is the heaviest already."""
    start_n = tl.program_id(0) * BLOCK_N
    off_bh = tl.program_id(1)
    off_b = (off_bh // H).to(tl.int64)
    off_h = (off_bh % H).to(tl.int64)
    cols = start_n + tl.arange(0, BLOCK_N)                                        # (BN,)
    offs_d = tl.arange(0, BLOCK_D)
    k_ptrs = K + off_b * stride_kb + off_h * stride_kh + cols[:, None] * stride_kn + offs_d[None, :]
    v_ptrs = V + off_b * stride_vb + off_h * stride_vh + cols[:, None] * stride_vn + offs_d[None, :]
    k = _operand(_load_tile(k_ptrs, cols, N_CTX, offs_d, HEAD_DIM, MASK_N, EVEN_D), FP32_DOT)  # (BN, D)
    v = _operand(_load_tile(v_ptrs, cols, N_CTX, offs_d, HEAD_DIM, MASK_N, EVEN_D), FP32_DOT)  # (BN, D)
    q_base = Q + off_b * stride_qb + off_h * stride_qh
    do_base = DO + off_b * stride_dob + off_h * stride_doh
    lse_base = LSE + off_bh.to(tl.int64) * N_CTX
    delta_base = DELTA + off_bh.to(tl.int64) * N_CTX
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    if CAUSAL:   # query rows above this key block never see it; the diagonal rows need the mask
        dk, dv = _bwd_dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qn,
                                 stride_don, cols, offs_d, start_n, tl.minimum(start_n + BLOCK_N, N_CTX),
                                 N_CTX, qk_scale, HEAD_DIM, BLOCK_M, True, MASK_N, EVEN_D,
                                 FP32_DOT, PRECISION)
        lo = start_n + BLOCK_N
    else:
        lo = 0
    m_full = (N_CTX // BLOCK_M) * BLOCK_M
    dk, dv = _bwd_dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qn,
                             stride_don, cols, offs_d, lo, m_full, N_CTX, qk_scale, HEAD_DIM,
                             BLOCK_M, False, False, EVEN_D, FP32_DOT, PRECISION)
    if MASK_N:                             # the last, partial query block
        dk, dv = _bwd_dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qn,
                                 stride_don, cols, offs_d, tl.maximum(lo, m_full), N_CTX, N_CTX,
                                 qk_scale, HEAD_DIM, BLOCK_M, False, True, EVEN_D, FP32_DOT, PRECISION)
    dk = dk * sm_scale
    g_offs = off_b * stride_gb + off_h * stride_gh + cols[:, None] * stride_gn + offs_d[None, :]
    _store_tile(DK + g_offs, dk.to(DK.dtype.element_ty), cols, N_CTX, offs_d, HEAD_DIM, EVEN_D)
    _store_tile(DV + g_offs, dv.to(DV.dtype.element_ty), cols, N_CTX, offs_d, HEAD_DIM, EVEN_D)


@triton.jit
def _bwd_dq_inner(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_vn, rows, offs_d,
                  lo, hi, N_CTX, qk_scale,
                  HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL_MASK: tl.constexpr,
                  MASK_N: tl.constexpr, EVEN_D: tl.constexpr, FP32_DOT: tl.constexpr,
                  PRECISION: tl.constexpr):
    """Accumulate dQ of one query block over key blocks [lo, hi)."""
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n                                                   # (BN,)
        k = _operand(_load_tile(k_base + cols[:, None] * stride_kn + offs_d[None, :], cols, N_CTX,
                                offs_d, HEAD_DIM, MASK_N, EVEN_D), FP32_DOT)      # (BN, D)
        v = _operand(_load_tile(v_base + cols[:, None] * stride_vn + offs_d[None, :], cols, N_CTX,
                                offs_d, HEAD_DIM, MASK_N, EVEN_D), FP32_DOT)      # (BN, D)
        qk = tl.dot(q, tl.trans(k), input_precision=PRECISION)                    # (BM, BN)
        p = tl.math.exp2(qk * qk_scale - lse2[:, None])                           # (BM, BN)
        if CAUSAL_MASK:
            p = tl.where(rows[:, None] >= cols[None, :], p, 0.0)
        if MASK_N:
            p = tl.where(cols[None, :] < N_CTX, p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)                   # (BM, BN) = dO V^T
        ds = p * (dp - delta[:, None])                                            # (BM, BN) = dS
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)             # (BM, D) += dS K
    return dq


@triton.jit
def _bwd_dq_kernel(Q, K, V, DO, LSE, DELTA, DQ, sm_scale, qk_scale,
                   stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn,
                   stride_vb, stride_vh, stride_vn, stride_dob, stride_doh, stride_don,
                   stride_gb, stride_gh, stride_gn, H, N_CTX,
                   HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                   BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr, MASK_N: tl.constexpr,
                   EVEN_D: tl.constexpr, FP32_DOT: tl.constexpr, PRECISION: tl.constexpr):
    """One program per (query block, batch*head). DQ has the stride_g* layout."""
    start_m = _query_block(CAUSAL) * BLOCK_M
    off_bh = tl.program_id(1)
    off_b = (off_bh // H).to(tl.int64)
    off_h = (off_bh % H).to(tl.int64)
    rows = start_m + tl.arange(0, BLOCK_M)                                        # (BM,)
    offs_d = tl.arange(0, BLOCK_D)
    q_ptrs = Q + off_b * stride_qb + off_h * stride_qh + rows[:, None] * stride_qn + offs_d[None, :]
    do_ptrs = DO + off_b * stride_dob + off_h * stride_doh + rows[:, None] * stride_don + offs_d[None, :]
    q = _operand(_load_tile(q_ptrs, rows, N_CTX, offs_d, HEAD_DIM, MASK_N, EVEN_D), FP32_DOT)    # (BM, D)
    do = _operand(_load_tile(do_ptrs, rows, N_CTX, offs_d, HEAD_DIM, MASK_N, EVEN_D), FP32_DOT)  # (BM, D)
    row_mask = rows < N_CTX
    lse2 = tl.load(LSE + off_bh.to(tl.int64) * N_CTX + rows, mask=row_mask, other=0.0) * 1.4426950408889634
    delta = tl.load(DELTA + off_bh.to(tl.int64) * N_CTX + rows, mask=row_mask, other=0.0)
    k_base = K + off_b * stride_kb + off_h * stride_kh
    v_base = V + off_b * stride_vb + off_h * stride_vh
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    if CAUSAL:
        dq = _bwd_dq_inner(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_vn, rows, offs_d,
                           0, start_m, N_CTX, qk_scale, HEAD_DIM, BLOCK_N, False, False, EVEN_D,
                           FP32_DOT, PRECISION)
        dq = _bwd_dq_inner(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_vn, rows, offs_d,
                           start_m, tl.minimum(start_m + BLOCK_M, N_CTX), N_CTX, qk_scale, HEAD_DIM,
                           BLOCK_N, True, MASK_N, EVEN_D, FP32_DOT, PRECISION)
    else:
        n_full = (N_CTX // BLOCK_N) * BLOCK_N
        dq = _bwd_dq_inner(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_vn, rows, offs_d,
                           0, n_full, N_CTX, qk_scale, HEAD_DIM, BLOCK_N, False, False, EVEN_D,
                           FP32_DOT, PRECISION)
        if MASK_N:
            dq = _bwd_dq_inner(dq, q, do, lse2, delta, k_base, v_base, stride_kn, stride_vn, rows,
                               offs_d, n_full, N_CTX, N_CTX, qk_scale, HEAD_DIM, BLOCK_N, False, True,
                               EVEN_D, FP32_DOT, PRECISION)
    dq = dq * sm_scale
    dq_ptrs = DQ + off_b * stride_gb + off_h * stride_gh + rows[:, None] * stride_gn + offs_d[None, :]
    _store_tile(dq_ptrs, dq.to(DQ.dtype.element_ty), rows, N_CTX, offs_d, HEAD_DIM, EVEN_D)


# ----------------------------------------------------------------------------- launchers
def _check_interpreter_order() -> None:
    """Under the interpreter, triton.language's own @jit helpers (tl.sum, tl.max) must have been
    decorated after TRITON_INTERPRET=1 was set, else every kernel call fails obscurely."""
    if not INTERPRETED:
        return
    # interpreter only: triton loads this module only when TRITON_INTERPRET=1
    from triton.runtime.interpreter import InterpretedFunction

    if not isinstance(tl.standard.sum, InterpretedFunction):
        raise ResourceError("Triton was imported before TRITON_INTERPRET=1 was set, so its interpreter "
                            "cannot run kernels in this process. Import kernels.flash_attention (or call "
                            "kernels.ensure_triton_backend()) before anything imports triton.")


def check_launch(shape: tuple[int, int, int, int], dtype: torch.dtype, device_type: str) -> None:
    """Shape limits of one launch on ``device_type`` ("cuda", or "cpu" for the interpreter),
    without tensors: the GPU check's dry run validates its CUDA plan with this."""
    B, H, N, D = (int(s) for s in shape)
    check_head_dim(D)
    if min(B, H, N) < 1:
        raise ValidationError(f"batch, heads and seq must be at least 1; got shape {(B, H, N, D)}.")
    if dtype not in KERNEL_DTYPES:
        raise ValidationError(f"The kernel takes fp16, bf16 or fp32; got {str(dtype).removeprefix('torch.')}.")
    if B * H > MAX_GRID_Y:
        raise ValidationError(f"batch x heads must be at most {MAX_GRID_Y:,} (one grid row each); "
                              f"got {B * H:,}.")
    if device_type != "cuda" and B * H * N * D > MAX_INTERPRETER_ELEMENTS:
        raise ValidationError(f"Under the CPU interpreter the kernel takes at most "
                              f"{MAX_INTERPRETER_ELEMENTS:,} elements per tensor (B*H*N*D); got "
                              f"{B * H * N * D:,}. Use a GPU for bigger shapes.")


def _check(q, k, v, causal, sm_scale, config) -> tuple[tuple[int, int, int, int], float, KernelConfig]:
    shape = check_qkv(q, k, v, min_head_dim=MIN_KERNEL_HEAD_DIM, max_head_dim=MAX_KERNEL_HEAD_DIM,
                      dtypes=KERNEL_DTYPES)
    check_bool("causal", causal)
    if q.device.type == "cuda" and INTERPRETED:
        raise ValidationError("The Triton kernels were set up for the CPU interpreter in this "
                              "process (TRITON_INTERPRET=1); pass CPU tensors.")
    if q.device.type != "cuda" and not INTERPRETED:
        raise ValidationError("The Triton kernel needs CUDA tensors here (or TRITON_INTERPRET=1 "
                              "set before kernels are imported).")
    _check_interpreter_order()
    check_launch(shape, q.dtype, q.device.type)
    cfg = check_config(config) if config is not None else block_sizes(shape[3], q.dtype, q.device)
    return shape, resolve_scale(sm_scale, shape[3]), cfg


def _flags(n: int, head_dim: int, blocks: tuple[int, ...], dtype: torch.dtype) -> dict:
    block_d = max(16, triton.next_power_of_2(head_dim))
    return {
        "HEAD_DIM": head_dim, "BLOCK_D": block_d, "EVEN_D": block_d == head_dim,
        "MASK_N": any(n % b for b in blocks), "FP32_DOT": INTERPRETED,
        "PRECISION": "tf32x3" if dtype == torch.float32 else "tf32",   # 3xTF32: ~fp32-exact on tensor cores
    }


# Triton's interpreter patches triton.language globally for the length of a launch, so two
# threads interpreting kernels at once (two page sessions) would undo each other's patches.
_INTERPRETER_LOCK = threading.Lock()
# Forward paths that failed to compile or launch, by (path, dtype, causal, flags, config):
# the next call with the same key goes straight to the next path.
_FAILED: dict[tuple, str] = {}


def _launch_guard():
    return _INTERPRETER_LOCK if INTERPRETED else contextlib.nullcontext()


def _rows_last(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def fallbacks() -> list[dict]:
    """Every forward path that failed here and was replaced by the next one, with the reason."""
    return [{"path": key[0], "dtype": str(key[1]).removeprefix("torch."), "causal": key[2], "reason": why}
            for key, why in _FAILED.items()]


def _merged_stride(x: torch.Tensor) -> int | None:
    """The stride of (batch, heads) viewed as one dimension, or None if they do not merge."""
    B, H = x.shape[0], x.shape[1]
    if H == 1:
        return x.stride(0)
    if B == 1 or x.stride(0) == H * x.stride(1):
        return x.stride(1)
    return None


def _tma_layout_ok(x: torch.Tensor) -> bool:
    """A (B*H, N, D) tensor descriptor can cover ``x``: mergeable, 16-byte aligned strides and base."""
    merged, elem = _merged_stride(x), x.element_size()
    return (merged is not None and x.stride(-1) == 1 and x.data_ptr() % 16 == 0
            and (merged * elem) % 16 == 0 and (x.stride(2) * elem) % 16 == 0)


def _tma_available(device: torch.device) -> bool:
    """Host tensor descriptors exist in this triton and the GPU has TMA (sm90+); the interpreter
    emulates them."""
    try:
        # optional: host tensor descriptors are missing from older triton builds
        from triton.tools.tensor_descriptor import TensorDescriptor  # noqa: F401
    except ImportError:
        return False
    return INTERPRETED or (device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 9)


def _forward_key(path: str, q, causal: bool, cfg: KernelConfig, flags: dict) -> tuple:
    return (path, q.dtype, causal, tuple(sorted(flags.items())), cfg.blocks()[:2], cfg.num_warps,
            cfg.num_stages, q.device.index)


def _paths(q, k, v, causal: bool, cfg: KernelConfig, flags: dict) -> list[str]:
    """Forward paths to try, best first; ends with the pointer path (always possible)."""
    paths = []
    if cfg.tma and _tma_available(q.device) and all(_tma_layout_ok(t) for t in (q, k, v)):
        if cfg.warp_specialize and not causal:
            paths.append("tma-ws")
        paths.append("tma")
    paths = [p for p in paths if _forward_key(p, q, causal, cfg, flags) not in _FAILED]
    return [*paths, "pointer"]


def _descriptor(x: torch.Tensor, rows: int, block_d: int):
    """TMA descriptor over ``x`` as (B*H, N, D), one (1, rows, block_d) box per load."""
    from triton.tools.tensor_descriptor import TensorDescriptor  # optional: see _tma_available()

    B, H, N, D = x.shape
    return TensorDescriptor(x, [B * H, N, D], [_merged_stride(x), x.stride(2), 1], [1, rows, block_d])


def _launch_forward(path: str, q, k, v, o, lse, causal: bool, scale: float, cfg: KernelConfig,
                    flags: dict) -> None:
    B, H, N, _D = q.shape
    grid = (triton.cdiv(N, cfg.block_m), B * H)
    launch = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
    if path == "pointer":
        _fwd_kernel[grid](
            q, k, v, o, lse, scale * LOG2E,
            q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
            v.stride(0), v.stride(1), v.stride(2), o.stride(0), o.stride(1), o.stride(2),
            H, N, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, CAUSAL=causal, **flags, **launch)
        return
    bd = flags["BLOCK_D"]
    _fwd_tma_kernel[grid](
        _descriptor(q, cfg.block_m, bd), _descriptor(k, cfg.block_n, bd), _descriptor(v, cfg.block_n, bd),
        _descriptor(o, cfg.block_m, bd), lse, scale * LOG2E, N, BLOCK_D=bd, BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n, CAUSAL=causal, MASK_N=flags["MASK_N"], FP32_DOT=flags["FP32_DOT"],
        PRECISION=flags["PRECISION"], WARP_SPECIALIZE=path == "tma-ws", **launch)


def _forward(q, k, v, causal: bool, scale: float, cfg: KernelConfig):
    """Launch the forward; returns O (like q) and the log-sum-exp (B, H, N) float32."""
    B, H, N, D = q.shape
    q, k, v = _rows_last(q), _rows_last(k), _rows_last(v)
    o = torch.empty_like(q, memory_format=torch.contiguous_format)                # (B, H, N, D)
    lse = torch.empty((B, H, N), device=q.device, dtype=torch.float32)            # (B, H, N)
    flags = _flags(N, D, (cfg.block_m, cfg.block_n), q.dtype)
    for path in _paths(q, k, v, causal, cfg, flags):
        try:
            with _launch_guard():
                _launch_forward(path, q, k, v, o, lse, causal, scale, cfg, flags)
            return o, lse
        except Exception as exc:   # a TMA / warp-specialized kernel this triton or GPU cannot build
            if path == "pointer":
                raise
            _FAILED[_forward_key(path, q, causal, cfg, flags)] = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("flash attention: the %s forward failed (%s); using the next path", path, exc)
    raise AssertionError("unreachable: the pointer path either returns or raises")


def forward_path(q, k, v, causal: bool = False, *, config: KernelConfig | None = None) -> str:
    """The forward path a call with these inputs takes now: "tma-ws", "tma" or "pointer"."""
    shape, _scale, cfg = _check(q, k, v, causal, None, config)
    flags = _flags(shape[2], shape[3], (cfg.block_m, cfg.block_n), q.dtype)
    return _paths(_rows_last(q), _rows_last(k), _rows_last(v), causal, cfg, flags)[0]


def _backward(do, q, k, v, o, lse, causal: bool, scale: float, cfg: KernelConfig):
    """Launch preprocess, dK/dV and dQ kernels; returns (dq, dk, dv) like q, k, v."""
    B, H, N, D = q.shape
    do = _rows_last(do)
    dq, dk, dv = (torch.empty(q.shape, device=q.device, dtype=q.dtype) for _ in range(3))  # contiguous
    delta = torch.empty_like(lse)                                                 # (B, H, N)
    flags = _flags(N, D, (cfg.bwd_block_m1, cfg.bwd_block_n1, cfg.bwd_block_m2, cfg.bwd_block_n2),
                   q.dtype)
    strides = (q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
               v.stride(0), v.stride(1), v.stride(2), do.stride(0), do.stride(1), do.stride(2))
    launch = {"num_warps": cfg.bwd_num_warps, "num_stages": cfg.bwd_num_stages}
    with _launch_guard():
        _bwd_preprocess[(triton.cdiv(N, cfg.bwd_block_m2), B * H)](
            o, do, delta, o.stride(0), o.stride(1), o.stride(2), do.stride(0), do.stride(1), do.stride(2),
            H, N, HEAD_DIM=D, BLOCK_D=flags["BLOCK_D"], BLOCK_M=cfg.bwd_block_m2, EVEN_D=flags["EVEN_D"])
        _bwd_dkdv_kernel[(triton.cdiv(N, cfg.bwd_block_n1), B * H)](
            q, k, v, do, lse, delta, dk, dv, scale, scale * LOG2E, *strides, *dk.stride()[:3], H, N,
            BLOCK_M=cfg.bwd_block_m1, BLOCK_N=cfg.bwd_block_n1, CAUSAL=causal, **flags, **launch)
        _bwd_dq_kernel[(triton.cdiv(N, cfg.bwd_block_m2), B * H)](
            q, k, v, do, lse, delta, dq, scale, scale * LOG2E, *strides, *dq.stride()[:3], H, N,
            BLOCK_M=cfg.bwd_block_m2, BLOCK_N=cfg.bwd_block_n2, CAUSAL=causal, **flags, **launch)
    return dq, dk, dv


class _FlashAttention(torch.autograd.Function):
    """O, LSE = attention(q, k, v); backward recomputes P from the saved LSE."""

    @staticmethod
    def forward(ctx, q, k, v, causal, scale, cfg):
        q, k, v = _rows_last(q), _rows_last(k), _rows_last(v)
        o, lse = _forward(q, k, v, causal, scale, cfg)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale, ctx.cfg = causal, scale, cfg
        ctx.mark_non_differentiable(lse)
        return o, lse

    @staticmethod
    def backward(ctx, do, _dlse):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _backward(do, q, k, v, o, lse, ctx.causal, ctx.scale, ctx.cfg)
        return dq, dk, dv, None, None, None


def flash_attention_forward(q, k, v, causal: bool = False, sm_scale: float | None = None, *,
                            return_lse: bool = False, config: KernelConfig | None = None):
    """FlashAttention-2 with autograd; ``return_lse=True`` also returns the row
    log-sum-exp (B, H, N) float32, natural log. ``config`` overrides the block table."""
    _shape, scale, cfg = _check(q, k, v, causal, sm_scale, config)
    o, lse = _FlashAttention.apply(q, k, v, causal, scale, cfg)
    return (o, lse) if return_lse else o


def flash_attention(q, k, v, causal: bool = False, sm_scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * sm_scale [+ causal mask]) v with the fused Triton kernel (differentiable).

    q, k, v: (batch, heads, seq, head_dim), same shape, dtype (fp16/bf16/fp32) and
    device; CUDA, or CPU under TRITON_INTERPRET=1. sm_scale defaults to 1/sqrt(head_dim).
    """
    return flash_attention_forward(q, k, v, causal, sm_scale)


def with_blocks(cfg: KernelConfig, **changes) -> KernelConfig:
    """A copy of ``cfg`` with some fields changed, checked (for tests and tuning sweeps)."""
    return check_config(replace(cfg, **changes))
