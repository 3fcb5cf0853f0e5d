"""A decoder-only language model made of core/nn blocks: embed -> blocks -> norm -> head.

    x_0     = Embed(ids) (+ learned or sinusoidal positions; RoPE rotates q/k instead)
    x_{l+1} = DecoderBlock_l(x_l)                     l = 0 .. L-1, the residual stream
    logits  = Head(Norm(x_L))                         Head = Embed^T when tied

The same class is GPT-2-shaped (LayerNorm, GELU, learned positions, biases) or
Llama-shaped (RMSNorm, SwiGLU, RoPE, GQA, no biases) by its DecoderConfig; SmolLM2
(core/llm.py) is the second kind. ``forward(..., return_internals=True)`` returns the
residual stream after the embedding and after every block, what each block's attention
and MLP wrote, and the attention probabilities; ``unembed`` is the final norm and head,
which the logit lens applies to any layer's stream (nostalgebraist 2020); ``run_blocks``
is the middle part alone, for a model that embeds its inputs itself (a gradient probe,
multi-token prediction).
``checkpoint=True`` recomputes each block in the backward pass (torch.utils.checkpoint).
Does not handle: encoder-decoder models, MoE layers (core/models/moe.py composes its own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from core.nn.attention import AttentionShape, KVCache
from core.nn.block import BlockInternals, DecoderBlock
from core.nn.mlp import MLPS
from core.nn.norms import NORMS, make_norm
from core.nn.rope import rope_cos_sin

POSITIONS = ("rope", "learned", "sinusoidal", "none")


@dataclass(frozen=True)
class DecoderConfig:
    vocab_size: int                 # tokens in the vocabulary V
    d_model: int                    # model width d
    n_layers: int                   # decoder blocks L
    n_heads: int                    # query heads H
    n_kv_heads: int                 # key/value heads (== n_heads: MHA; fewer: GQA)
    head_dim: int                   # per-head width
    d_ff: int                       # MLP inner width
    mlp: str = "swiglu"             # "swiglu" | "gelu"
    norm: str = "rmsnorm"           # "rmsnorm" | "layernorm"
    norm_eps: float = 1e-5          # epsilon inside every norm
    positions: str = "rope"         # "rope" | "learned" | "sinusoidal" | "none"
    rope_theta: float = 10000.0     # RoPE base
    max_seq: int = 2048             # learned position table rows (and the longest input)
    tied_embeddings: bool = False   # head weight = embedding table
    qkv_bias: bool = False          # biases on the q/k/v projection
    linear_bias: bool = False       # biases on the attention output projection and the MLP
    head_bias: bool = False         # bias on the output head
    dropout: float = 0.0            # dropout after each branch (training only)

    def __post_init__(self) -> None:
        if self.mlp not in MLPS or self.norm not in NORMS or self.positions not in POSITIONS:
            raise ValueError(f"mlp in {MLPS}, norm in {NORMS}, positions in {POSITIONS}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"{self.n_kv_heads} KV heads must divide {self.n_heads} query heads")

    @property
    def attention_shape(self) -> AttentionShape:
        return AttentionShape(self.d_model, self.n_heads, self.n_kv_heads, self.head_dim,
                              qkv_bias=self.qkv_bias or self.linear_bias, out_bias=self.linear_bias)


@dataclass
class DecoderInternals:
    residual: list[torch.Tensor] = field(default_factory=list)   # L + 1 of (B, T, d): x_0 .. x_L
    blocks: list[BlockInternals] = field(default_factory=list)   # L: what each block wrote


def sinusoidal_positions(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """Vaswani et al. 2017, Sec. 3.5: sin on even, cos on odd features. (T,) -> (T, d)."""
    half = torch.arange(0, d_model, 2, device=positions.device, dtype=torch.float32)
    freq = torch.exp(-math.log(10000.0) * half / d_model)                       # (ceil(d/2),)
    angles = positions.float()[:, None] * freq[None, :]                         # (T, ceil(d/2))
    pe = torch.zeros(positions.numel(), d_model, device=positions.device)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe


class DecoderLM(nn.Module):
    def __init__(self, cfg: DecoderConfig, rope_freq_factors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_seq, cfg.d_model) if cfg.positions == "learned" else None
        self.blocks = nn.ModuleList(
            DecoderBlock(cfg.attention_shape, d_ff=cfg.d_ff, mlp=cfg.mlp, norm=cfg.norm,
                         norm_eps=cfg.norm_eps, mlp_bias=cfg.linear_bias, dropout=cfg.dropout)
            for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps)
        self.head = None if cfg.tied_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=cfg.head_bias)
        self.register_buffer("rope_freq_factors", rope_freq_factors, persistent=False)

    def embed_tokens(self, ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids at ``positions`` ((T,) or (B, T); default 0 .. T-1) -> (B, T, d)."""
        if positions is None:
            positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.embed(ids)                                                      # (B, T, d)
        if self.cfg.positions == "learned":
            x = x + self.pos(positions).to(x.dtype)
        elif self.cfg.positions == "sinusoidal":
            table = sinusoidal_positions(positions.reshape(-1), self.cfg.d_model)
            x = x + table.view(*positions.shape, -1).to(x.dtype)
        return x

    def rope(self, positions: torch.Tensor, dtype: torch.dtype):
        if self.cfg.positions != "rope":
            return None
        return rope_cos_sin(positions, self.cfg.head_dim, self.cfg.rope_theta, dtype, self.rope_freq_factors)

    def unembed(self, h: torch.Tensor) -> torch.Tensor:
        """Final norm and head: (..., d) residual stream -> (..., V) logits."""
        h = self.norm(h)
        return F.linear(h, self.embed.weight) if self.head is None else self.head(h)

    def forward(self, ids: torch.Tensor, *, cache: KVCache | None = None, backend: str = "sdpa",
                positions: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                causal: bool = True, checkpoint: bool = False, return_internals: bool = False,
                last_only: bool = False):
        """ids (B, T) -> logits (B, T, V) (``last_only``: (B, 1, V)), and DecoderInternals if asked."""
        offset = cache.length if cache is not None else 0
        if offset + ids.shape[1] > self.cfg.max_seq:
            raise ValueError(f"{offset + ids.shape[1]} positions is past the model's {self.cfg.max_seq}")
        if positions is None:
            positions = torch.arange(offset, offset + ids.shape[1], device=ids.device)
        x = self.embed_tokens(ids, positions)                                    # (B, T, d)
        internals = DecoderInternals(residual=[x]) if return_internals else None
        x = self.run_blocks(x, positions, cache=cache, backend=backend, mask=mask, causal=causal,
                            checkpoint=checkpoint, internals=internals)          # (B, T, d)
        logits = self.unembed(x[:, -1:] if last_only else x)                     # (B, T, V)
        return (logits, internals) if return_internals else logits

    def run_blocks(self, x: torch.Tensor, positions: torch.Tensor | None = None, *,
                   cache: KVCache | None = None, backend="sdpa", mask: torch.Tensor | None = None,
                   causal: bool = True, checkpoint: bool = False,
                   internals: DecoderInternals | None = None) -> torch.Tensor:
        """The blocks on an embedded x (B, T, d) at ``positions`` (default: after the cache) -> x_L.

        ``internals``: collects the stream after every block, what each wrote and the probabilities.
        """
        if positions is None:
            offset = cache.length if cache is not None else 0
            positions = torch.arange(offset, offset + x.shape[1], device=x.device)
        rope = self.rope(positions, x.dtype)
        for i, block in enumerate(self.blocks):
            kwargs = {"rope": rope, "cache": cache, "layer": i, "backend": backend, "causal": causal,
                      "mask": mask, "return_internals": internals is not None}
            if checkpoint and torch.is_grad_enabled():
                x, inner = torch_checkpoint(block, x, use_reentrant=False, **kwargs)
            else:
                x, inner = block(x, **kwargs)                                    # (B, T, d)
            if internals is not None:
                internals.residual.append(x)
                internals.blocks.append(inner)
        return x
