"""The position-wise MLPs: SwiGLU (Llama, SmolLM2, DeepSeek experts) and GELU (GPT-2).

SwiGLU(x) = W_down (SiLU(W_gate x) * W_up x) (Shazeer 2020, eq. 5 with Swish_1);
gate and up are one fused matmul here, split in two. GELU MLP = W_2 GELU(W_1 x).
Does not handle: GeGLU, biases on SwiGLU (no released Llama-family model has them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MLPS = ("swiglu", "gelu")


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)                    # (B, T, d_ff) each
        return self.down(F.silu(gate) * up)                            # (B, T, d_model)


class GeluMLP(nn.Module):
    def __init__(self, d_model: int, d_ff: int, bias: bool = True) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))                           # (B, T, d_model)


def make_mlp(kind: str, d_model: int, d_ff: int, bias: bool = False) -> nn.Module:
    if kind == "swiglu":
        return SwiGLU(d_model, d_ff)
    if kind == "gelu":
        return GeluMLP(d_model, d_ff, bias)
    raise ValueError(f"mlp must be one of {MLPS}, got {kind!r}")
