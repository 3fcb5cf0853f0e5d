"""Offline at run time: nothing is fetched from a model hub.

``import core`` applies these before any model library loads: HF_HUB_OFFLINE and friends,
and TIKTOKEN_CACHE_DIR in a folder of the project's. Values already in the environment win.
Does not handle: blocking the network itself (the libraries are told to stay offline).
"""

from __future__ import annotations

import os
from pathlib import Path


def apply_offline_defaults(root: Path) -> None:
    """Set the offline variables unless the environment already has them."""
    for key, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("HF_DATASETS_OFFLINE", "1"),
        ("HF_HUB_DISABLE_TELEMETRY", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
    ):
        os.environ.setdefault(key, value)
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(root / ".cache" / "tiktoken"))
