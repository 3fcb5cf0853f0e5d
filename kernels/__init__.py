"""Triton kernels. Imports nothing from core/ (core/ may import kernels/).

On a machine without CUDA (or with ATLAS_DEVICE set to something else than
cuda) kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1), which must
be set before any kernel is decorated: :func:`ensure_triton_backend` does that,
and ``kernels.INTERPRETED`` (computed on first use, then fixed for the process)
calls it. A kernel module reads ``INTERPRETED`` before it imports triton.
Importing this package itself probes nothing, so kernels.errors stays cheap.
Does not handle: choosing among several GPUs (the kernels run where their inputs are).
"""

from __future__ import annotations

import os


def ensure_triton_backend() -> bool:
    """Set TRITON_INTERPRET=1 unless kernels can run on CUDA; returns True if interpreted.

    Must run before any @triton.jit decoration. An explicit TRITON_INTERPRET in
    the environment is respected; ATLAS_DEVICE=cpu (or mps) picks the interpreter.
    """
    if "TRITON_INTERPRET" not in os.environ and not _cuda_chosen():
        os.environ["TRITON_INTERPRET"] = "1"
    return os.environ.get("TRITON_INTERPRET") == "1"


def _cuda_chosen() -> bool:
    """Same rule as core.runtime.device.pick_device: ATLAS_DEVICE if set, else CUDA when visible."""
    choice = os.environ.get("ATLAS_DEVICE", "").strip().lower()
    if choice and not choice.startswith("cuda"):
        return False
    import torch  # start-up cost: ~1.5 s; importing kernels (and kernels.errors) needs no torch

    return torch.cuda.is_available()


def __getattr__(name: str):
    if name == "INTERPRETED":      # decided once, on first use (PEP 562)
        value = ensure_triton_backend()
        globals()["INTERPRETED"] = value
        return value
    raise AttributeError(f"module 'kernels' has no attribute {name!r}")
