"""Normalisation layers: RMSNorm (Llama, SmolLM2, DeepSeek) and LayerNorm (GPT-2).

RMSNorm(x) = x / sqrt(mean(x^2) + eps) * weight, computed in float32 for 16-bit
inputs and cast back, as Llama's reference code does (Zhang & Sennrich 2019).
LayerNorm is torch's own (mean and variance, weight and bias).
Does not handle: RMSNorm with a bias or a (1 + weight) offset (Gemma).
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("rmsnorm", "layernorm")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        normed = work * torch.rsqrt(work.pow(2).mean(-1, keepdim=True) + self.eps)   # (..., dim)
        return self.weight * normed.to(x.dtype)


def make_norm(kind: str, dim: int, eps: float = 1e-5) -> nn.Module:
    """"rmsnorm" -> RMSNorm, "layernorm" -> nn.LayerNorm (weight and bias)."""
    if kind == "rmsnorm":
        return RMSNorm(dim, eps)
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")
