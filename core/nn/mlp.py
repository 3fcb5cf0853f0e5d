"""The position-wise MLPs: SwiGLU (Llama, SmolLM2, DeepSeek experts) and GELU (GPT-2).

SwiGLU(x) = W_down (SiLU(W_gate x) * W_up x) (Shazeer 2020, eq. 5 with Swish_1);
gate and up are one fused weight [W_gate; W_up]: one wide matmul, except for inference on a
CPU, where two matmuls on its halves are 5-10 % faster at SmolLM2's widths (bench/llm.py); with
gradients on, the one matmul keeps what autograd saves the same (core/measure/llm_runs.py counts it).
GELU MLP = W_2 GELU(W_1 x).
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
        if x.device.type == "cpu" and not torch.is_grad_enabled():
            w_gate, w_up = self.gate_up.weight.chunk(2, dim=0)          # (d_ff, d) each, views
            h = F.silu(F.linear(x, w_gate), inplace=True).mul_(F.linear(x, w_up))      # (B, T, d_ff)
            return self.down(h)                                         # (B, T, d_model)
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
