"""Multi-head self-attention with grouped-query heads, a KV cache and four backends.

``attend(q, k, v, backend=...)`` computes softmax(q k^T * scale [+ mask]) v with
- "sdpa":   torch's F.scaled_dot_product_attention (flash / memory-efficient / math kernels);
- "naive":  the written-out reference that materialises the (T_q, T_k) probabilities
            (core.attention.attention_probs, the same code as core.attention.naive_attention);
- "tiled":  core.attention.tiled_attention, online softmax over key/value tiles;
- "triton": our FlashAttention-2 kernel (kernels/flash_attention.py; CUDA, or CPU under
            Triton's interpreter).
Grouped-query attention (Ainslie et al. 2023): H query heads share H_kv key/value
heads, query head h reads K/V head h // (H / H_kv). SDPA takes the groups as they
are; the other backends see K/V repeated to H heads (``expand_kv``).
The tiled and Triton backends need T_q == T_k and a plain causal (or no) mask: a
decoding step (one new query against the cache) or an explicit mask runs through SDPA
(or naive, when the probabilities are asked for), and the result says so.
``backend`` may also be a function with attend's keywords, (q, k, v, *, causal, mask,
scale, dropout, return_probs) -> (out, probs): an experiment's own attention path
(core/measure/activations.py keeps the paper's saved tensors, core/models/packing.py its varlen loop).

``KVCache`` keeps every layer's keys and values (B, H_kv, T, D), growing in chunks
(up to ``capacity`` positions when one is given); ``nbytes()`` is the bytes of the
positions held, read off the tensors, ``allocated_bytes()`` what the chunked buffers take.
Does not handle: cross-attention, attention dropout outside the naive/SDPA backends,
sliding windows in the tiled/Triton backends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.attention import attention_probs, tiled_attention
from core.nn.masks import causal_mask
from core.nn.rope import apply_rope
from core.runtime.validation import ResourceError

BACKENDS = ("sdpa", "naive", "tiled", "triton")
CACHE_CHUNK = 256          # KVCache grows its buffers by this many positions
TILED_BLOCK = 64           # the tiled backend's query and key/value block (block_m = block_n)


def expand_kv(t: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, H_kv, T, D) -> (B, H_kv * n_rep, T, D): K/V head g serves query heads g*n_rep ..."""
    if n_rep == 1:
        return t
    B, G, T, D = t.shape
    return t[:, :, None].expand(B, G, n_rep, T, D).reshape(B, G * n_rep, T, D)


def _full_mask(t_q: int, t_k: int, causal: bool, mask: torch.Tensor | None, device) -> torch.Tensor | None:
    """The boolean mask the written-out paths apply: causal (bottom-right) and/or ``mask``."""
    allowed = causal_mask(t_q, t_k, device) if causal else None
    if mask is None:
        return allowed
    return mask if allowed is None else mask & allowed


def _sdpa(q, k, v, causal, mask, scale, dropout):
    t_q, t_k = q.shape[-2], k.shape[-2]
    gqa = q.shape[1] != k.shape[1]
    if mask is None and (not causal or t_q == 1 or t_q == t_k):
        is_causal = causal and t_q == t_k and t_q > 1
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale,
                                              dropout_p=dropout, enable_gqa=gqa)
    allowed = _full_mask(t_q, t_k, causal, mask, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale,
                                          dropout_p=dropout, enable_gqa=gqa)


def _triton(q, k, v, causal, scale):
    # Imported here: importing kernels decorates the @triton.jit functions, which must
    # happen after core.runtime.device.ensure_triton_backend() chose CUDA or the interpreter.
    from kernels.flash_attention import flash_attention

    return flash_attention(q, k, v, causal, scale)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, backend: str = "sdpa",
           causal: bool = True, mask: torch.Tensor | None = None, scale: float | None = None,
           dropout: float = 0.0, return_probs: bool = False):
    """Attention of q (B, H, T_q, D) over k, v (B, H_kv, T_k, D); returns (out (B, H, T_q, D), probs).

    ``probs`` (B, H, T_q, T_k) only with ``return_probs`` (the naive path), else None.
    ``mask``: bool, broadcastable to (B, H, T_q, T_k), True = may attend.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if callable(backend):                                                    # the caller's own path
        return backend(q, k, v, causal=causal, mask=mask, scale=scale, dropout=dropout,
                       return_probs=return_probs)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    t_q, t_k = q.shape[-2], k.shape[-2]
    fused_ok = mask is None and t_q == t_k and dropout == 0.0
    if backend == "sdpa" and not return_probs:
        return _sdpa(q, k, v, causal, mask, scale, dropout), None
    n_rep = q.shape[1] // k.shape[1]
    if fused_ok and not return_probs and backend in ("tiled", "triton"):
        k, v = expand_kv(k, n_rep), expand_kv(v, n_rep)                      # (B, H, T, D)
        if backend == "tiled":
            return tiled_attention(q, k, v, causal, scale, TILED_BLOCK, TILED_BLOCK), None
        return _triton(q, k, v, causal, scale), None
    if backend in ("tiled", "triton") and not return_probs:
        return _sdpa(q, k, v, causal, mask, scale, dropout), None             # decoding step / mask
    k, v = expand_kv(k, n_rep), expand_kv(v, n_rep)                          # (B, H, T_k, D)
    probs = attention_probs(q, k, scale=scale, mask=_full_mask(t_q, t_k, causal, mask, q.device))
    if dropout:
        probs = F.dropout(probs, dropout, training=True)
    return probs.to(v.dtype) @ v, (probs if return_probs else None)           # (B, H, T_q, D)


class KVCache:
    """Keys and values of every layer, (B, H_kv, T, D) each, in buffers grown by CACHE_CHUNK.

    ``capacity``: the most positions it may hold (None: no limit); one more is a ResourceError.
    """

    def __init__(self, n_layers: int, capacity: int | None = None) -> None:
        self.capacity = capacity
        self._k: list[torch.Tensor | None] = [None] * n_layers
        self._v: list[torch.Tensor | None] = [None] * n_layers
        self._len = [0] * n_layers

    @property
    def length(self) -> int:
        """Positions held (layer 0 is written first in a forward, so read before it)."""
        return self._len[0]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append k, v (B, H_kv, T_new, D) to ``layer``; returns all of its keys and values."""
        start, end = self._len[layer], self._len[layer] + k.shape[2]
        if self.capacity is not None and end > self.capacity:
            raise ResourceError(f"The key/value cache holds {self.capacity:,} positions.")
        buf = self._k[layer]
        if buf is None or end > buf.shape[2]:
            self._grow(layer, k, end)
        self._k[layer][:, :, start:end] = k
        self._v[layer][:, :, start:end] = v
        self._len[layer] = end
        return self._k[layer][:, :, :end], self._v[layer][:, :, :end]           # (B, H_kv, T, D)

    def _grow(self, layer: int, like: torch.Tensor, needed: int) -> None:
        capacity = math.ceil(needed / CACHE_CHUNK) * CACHE_CHUNK
        if self.capacity is not None:
            capacity = min(capacity, self.capacity)
        B, G, _, D = like.shape
        for store in (self._k, self._v):
            new = like.new_zeros(B, G, capacity, D)
            if store[layer] is not None:
                new[:, :, : self._len[layer]] = store[layer][:, :, : self._len[layer]]
            store[layer] = new

    def nbytes(self) -> int:
        """Bytes of the positions held, summed over layers, keys and values."""
        return sum(t[:, :, :n].nbytes for ks in (self._k, self._v) for t, n in zip(ks, self._len, strict=False)
                   if t is not None)

    def allocated_bytes(self) -> int:
        """Bytes of the buffers (held positions plus the unused end of the last chunk)."""
        return sum(t.untyped_storage().nbytes() for ks in (self._k, self._v) for t in ks if t is not None)


def _project_qkv(qkv: nn.Linear, x: torch.Tensor, sizes: list[int]):
    """q, k, v (B, T, width each) from the fused projection: one matmul, except for inference on a
    CPU, where one matmul per slice of the weight is faster (bench/llm.py); with gradients on,
    autograd saves the same tensors as always."""
    if x.device.type != "cpu" or torch.is_grad_enabled():
        return qkv(x).split(sizes, dim=-1)
    biases = qkv.bias.split(sizes) if qkv.bias is not None else (None,) * len(sizes)
    return [F.linear(x, w, b) for w, b in zip(qkv.weight.split(sizes), biases, strict=True)]


@dataclass(frozen=True)
class AttentionShape:
    d_model: int          # model width
    n_heads: int          # query heads H
    n_kv_heads: int       # key/value heads H_kv (H % H_kv == 0)
    head_dim: int         # per-head width D
    qkv_bias: bool = False
    out_bias: bool = False


class SelfAttention(nn.Module):
    """Fused q/k/v projection -> RoPE -> attend (GQA, cache, backend) -> output projection."""

    def __init__(self, shape: AttentionShape, dropout: float = 0.0) -> None:
        super().__init__()
        if shape.n_heads % shape.n_kv_heads:
            raise ValueError(f"{shape.n_kv_heads} KV heads must divide {shape.n_heads} query heads")
        self.shape, self.dropout = shape, dropout
        width = (shape.n_heads + 2 * shape.n_kv_heads) * shape.head_dim
        self.qkv = nn.Linear(shape.d_model, width, bias=shape.qkv_bias)
        self.proj = nn.Linear(shape.n_heads * shape.head_dim, shape.d_model, bias=shape.out_bias)

    def forward(self, x: torch.Tensor, *, rope=None, cache: KVCache | None = None, layer: int = 0,
                backend: str = "sdpa", causal: bool = True, mask=None, return_probs: bool = False):
        """x (B, T, d_model) -> (out (B, T, d_model), probs (B, H, T, T_k) or None)."""
        B, T, _ = x.shape
        s = self.shape
        q, k, v = _project_qkv(self.qkv, x, [s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim,
                                             s.n_kv_heads * s.head_dim])
        q = q.view(B, T, s.n_heads, s.head_dim).transpose(1, 2)                  # (B, H, T, D)
        k = k.view(B, T, s.n_kv_heads, s.head_dim).transpose(1, 2)               # (B, H_kv, T, D)
        v = v.view(B, T, s.n_kv_heads, s.head_dim).transpose(1, 2)               # (B, H_kv, T, D)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)                                      # (B, H_kv, T_k, D)
        p = self.dropout if self.training else 0.0
        y, probs = attend(q, k, v, backend=backend, causal=causal, mask=mask, dropout=p,
                          return_probs=return_probs)                              # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, s.n_heads * s.head_dim)), probs
