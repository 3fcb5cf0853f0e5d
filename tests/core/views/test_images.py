"""core/views/images.py: pixels to a PNG data URI, lossless, and bad arrays refused."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from core.runtime.validation import ValidationError
from core.views import images


@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 1, 3), (4, 9)])
def test_png_data_uri_round_trips(shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    uri = images.png_data_uri(pixels)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri[len(prefix):]))))
    np.testing.assert_array_equal(decoded, pixels)


@pytest.mark.parametrize("pixels", [np.zeros((4, 4, 3), dtype=np.float32), np.zeros((4, 4, 4), dtype=np.uint8),
                                    np.zeros(4, dtype=np.uint8)])
def test_png_data_uri_refuses_other_arrays(pixels):
    with pytest.raises(ValidationError, match="uint8"):
        images.png_data_uri(pixels)
