"""Attention masks as boolean (..., T_q, T_k) tensors: True = may attend.

- ``causal_mask``: query i (at absolute position offset + i) sees keys 0 .. offset + i;
  with T_k > T_q the queries sit at the end of the keys (a KV cache: bottom-right).
- ``window_mask``: causal and at most ``window`` keys back (sliding window).
- ``padding_mask``: per sequence, keys past its length are hidden (right padding).
Document (packing) masks live with packing in core/models/packing.py.
Does not handle: additive float masks (pass booleans; attention turns them into -inf).
"""

from __future__ import annotations

import torch


def causal_mask(t_q: int, t_k: int | None = None, device=None) -> torch.Tensor:
    """(T_q, T_k) bool; queries are the last T_q of the T_k positions."""
    t_k = t_q if t_k is None else t_k
    if t_k < t_q:
        raise ValueError(f"more queries ({t_q}) than keys ({t_k})")
    rows = torch.arange(t_k - t_q, t_k, device=device)[:, None]                   # (T_q, 1)
    return torch.arange(t_k, device=device)[None, :] <= rows                      # (T_q, T_k)


def window_mask(t: int, window: int, device=None) -> torch.Tensor:
    """(T, T) bool: position i sees j when i - window < j <= i."""
    i = torch.arange(t, device=device)[:, None]
    j = torch.arange(t, device=device)[None, :]
    return (j <= i) & (j > i - window)


def padding_mask(lengths: torch.Tensor, t_k: int) -> torch.Tensor:
    """(B, 1, 1, T_k) bool from per-sequence lengths (B,): keys at or past a length are hidden."""
    return (torch.arange(t_k, device=lengths.device)[None, :] < lengths[:, None])[:, None, None, :]
