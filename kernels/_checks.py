"""Input checks the kernels need, in one place: core/attention.py imports them from here.

check_qkv (shape, dtype, device of q, k, v), resolve_scale (the softmax scale),
check_head_dim and check_bool; errors are kernels.errors.ValidationError, which
core.runtime.validation re-exports (pages show their messages).
Does not handle: checks of benchmark or page settings (core/ has those).
"""

from __future__ import annotations

import math
import operator

import torch

from kernels.errors import ValidationError

MIN_KERNEL_HEAD_DIM = 16      # the Triton kernel's head_dim range (tl.dot needs K >= 16)
MAX_KERNEL_HEAD_DIM = 128
MAX_SM_SCALE = 100.0          # softmax scales are in (0, MAX_SM_SCALE]


def check_qkv(q, k, v, *, min_head_dim: int, max_head_dim: int,
              dtypes: tuple) -> tuple[int, int, int, int]:
    """(B, H, N, D) of three same-shape, same-dtype, same-device 4-D tensors, or ValidationError."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValidationError(f"{name} must be a tensor, got {type(t).__name__}.")
        if t.dim() != 4:
            raise ValidationError(f"{name} must be 4-D (batch, heads, seq, head_dim); got shape {tuple(t.shape)}.")
    if not q.shape == k.shape == v.shape:
        raise ValidationError(f"q, k and v must have the same shape; got {tuple(q.shape)}, "
                              f"{tuple(k.shape)} and {tuple(v.shape)}.")
    if not q.dtype == k.dtype == v.dtype:
        raise ValidationError(f"q, k and v must have the same dtype; got {q.dtype}, {k.dtype} and {v.dtype}.")
    if q.dtype not in dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise ValidationError(f"dtype must be one of {names}; got {str(q.dtype).removeprefix('torch.')}.")
    if not q.device == k.device == v.device:
        raise ValidationError(f"q, k and v must be on one device; got {q.device}, {k.device} and {v.device}.")
    B, H, N, D = (int(s) for s in q.shape)
    if min(B, H, N) < 1:
        raise ValidationError(f"batch, heads and seq must be at least 1; got shape {(B, H, N, D)}.")
    if not min_head_dim <= D <= max_head_dim:
        raise ValidationError(f"head_dim must be in {min_head_dim}..{max_head_dim}; got {D}.")
    return B, H, N, D


def check_head_dim(head_dim) -> int:
    """A head_dim the kernel takes (MIN_KERNEL_HEAD_DIM..MAX_KERNEL_HEAD_DIM)."""
    try:
        if isinstance(head_dim, bool):
            raise TypeError
        head_dim = operator.index(head_dim)
    except TypeError:
        raise ValidationError(f"head_dim must be a whole number, got {str(head_dim)[:40]!r}.") from None
    if not MIN_KERNEL_HEAD_DIM <= head_dim <= MAX_KERNEL_HEAD_DIM:
        raise ValidationError(f"head_dim must be in {MIN_KERNEL_HEAD_DIM}..{MAX_KERNEL_HEAD_DIM}, got {head_dim}.")
    return head_dim


def resolve_scale(sm_scale, head_dim: int) -> float:
    """The softmax scale: 1/sqrt(head_dim) by default, else a finite number in (0, MAX_SM_SCALE]."""
    if sm_scale is None:
        return 1.0 / math.sqrt(head_dim)
    if isinstance(sm_scale, bool):
        raise ValidationError("sm_scale must be a finite number.")
    try:
        scale = float(sm_scale)
    except (TypeError, ValueError):
        raise ValidationError(f"sm_scale must be a number, got {str(sm_scale)[:40]!r}.") from None
    if not math.isfinite(scale):
        raise ValidationError("sm_scale must be a finite number.")
    if not 0.0 < scale <= MAX_SM_SCALE:
        raise ValidationError(f"sm_scale must be in (0, {MAX_SM_SCALE:g}], got {scale:g}.")
    return scale


def check_bool(name: str, value) -> bool:
    """True or False exactly (no truthy strings or ints)."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be True or False.")
    return value
