"""Smoothing a noisy per-step curve (training losses) for display.

``smooth`` is the trailing mean over the last ``window`` values; the first points average
what exists so far, so the curve starts at step 1 with no lag beyond the window and no
padding (unlike a centred or "valid" convolution, which shifts or shortens the curve).
The default window is about 1/30 of the run. Computed from cumulative sums in float64.
Does not handle: NaN values (one NaN spoils every later point of the cumulative sum),
uneven step spacing (the window counts values, not steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def smooth(values: Sequence[float] | np.ndarray, window: int | None = None) -> np.ndarray:
    """Trailing mean of ``values`` (n,) over ``window`` points (default max(1, n // 30)): (n,) float64."""
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    k = max(1, len(y) // 30) if window is None else max(1, int(window))
    cum = np.concatenate([[0.0], np.cumsum(y)])                                # (n + 1,)
    i = np.arange(1, len(y) + 1)
    lo = np.maximum(i - k, 0)
    return (cum[i] - cum[lo]) / (i - lo)
