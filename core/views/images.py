"""Images as the pages hand them to the browser: a pixel array as a PNG data URI.

A page-only view model (no model logic): plotly's go.Image draws a ``source`` URI far more
compactly than a ``z`` array of every pixel, so the vision-tokens page ships its overlays as PNG.
Does not handle: alpha channels (RGB or grey only), images larger than the browser will take.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from core.runtime.validation import ValidationError


def png_data_uri(pixels: np.ndarray) -> str:
    """(H, W, 3) or (H, W) uint8 pixels -> "data:image/png;base64,..." (lossless)."""
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValidationError(f"An image must be (H, W) or (H, W, 3) uint8; got {arr.shape} {arr.dtype}.")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
