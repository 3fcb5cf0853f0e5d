"""Triton kernels. Importing this package picks Triton's backend first.

On a machine without CUDA (or with ATLAS_DEVICE=cpu) kernels run in Triton's
CPU interpreter (TRITON_INTERPRET=1), which must be set before any kernel is
decorated; core.device.ensure_triton_backend() does that here, once.
"""

from core.device import ensure_triton_backend

INTERPRETED = ensure_triton_backend()
