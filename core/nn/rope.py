"""Rotary position embeddings (RoPE) in the "rotate half" layout.

Each head vector x (head_dim wide) is split into halves (a, b); pair i, made of
a_i and b_i, is rotated by the angle pos * inv_freq_i with
inv_freq_i = 1 / theta^(2i / head_dim) (RoFormer, Su et al. 2021, eq. 34).
This is the layout of transformers' Llama; llama.cpp stores q/k rows permuted
for its interleaved-pairs rotation, and core/gguf_model.py undoes that on load.
Angles are computed in float32 (float64 for a float64 model), as real models do;
``angles_dtype=torch.float64`` computes them exactly whatever the model's dtype (the
MLA, MTP and vision pages compare 32-bit runs against float64 ones).
``freq_factors`` divides the frequencies (Llama 3.x's "rope_freqs" long-context
scaling, as a GGUF file stores it).
Does not handle: partial rotary dimensions, NTK/YaRN scaling computed from a config.
"""

from __future__ import annotations

import torch


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype,
                 freq_factors: torch.Tensor | None = None, *,
                 angles_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles, each (T, head_dim / 2) or (B, 1, T, head_dim / 2).

    ``positions``: (T,) shared by the batch, or (B, T) per sequence (packing restarts them).
    ``angles_dtype``: what the angles are computed in (default: float32, float64 for float64).
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    work = angles_dtype or (torch.float64 if dtype == torch.float64 else torch.float32)
    steps = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.int64).to(work)
    inv_freq = 1.0 / (theta ** (steps / head_dim))                               # (hd/2,)
    if freq_factors is not None:
        inv_freq = inv_freq / freq_factors.to(device=positions.device, dtype=work)
    angles = positions.to(work)[..., None] * inv_freq                             # (..., T, hd/2)
    if positions.dim() == 2:
        angles = angles[:, None]                                                  # (B, 1, T, hd/2)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i + d/2}) of x (B, H, T, head_dim) by the angles."""
    a, b = x.chunk(2, dim=-1)                                                     # (B, H, T, hd/2)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)              # (B, H, T, hd)
