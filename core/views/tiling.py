"""The tiling walkthrough the FlashAttention page draws: one head's real tiles, step by step.

A view model for the page (no kernel logic): the (query block, key block) steps of
core.attention.tiled_attention's trace on random inputs or a real MiniLM attention head,
the running max / sum of a chosen row after each key block, and the check that our Triton
kernel gives the same output on those inputs.
Does not handle: more than one head at a time, sequences over MAX_TILING_SEQ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from core.attention import (
    TiledTrace,
    _check_causal,
    naive_attention,
    reference_attention,
    resolve_scale,
    tiled_attention,
)
from core.data import minilm
from core.runtime.device import cpu_threads, kernel_interpreted, oom_guard
from core.runtime.validation import ValidationError, check_choice, check_int, check_text
from kernels._checks import MAX_KERNEL_HEAD_DIM, MIN_KERNEL_HEAD_DIM

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
    # after ensure_triton_backend(): importing kernels decorates the Triton kernels
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


