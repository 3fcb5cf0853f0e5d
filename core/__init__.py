"""LLM Atlas core: models, calculators, tokenizers and measurements.

Pure Python/PyTorch; never imports streamlit, app/ or pages/. Importing the
package pins the process to offline use: nothing is fetched from a model hub
(HF_HUB_OFFLINE=1), and tiktoken reads and writes its cache in a folder of the
project's (TIKTOKEN_CACHE_DIR). Existing environment values are kept.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """The project's cache folder (ATLAS_CACHE_DIR, default <repo>/.cache)."""
    path = Path(os.environ.get("ATLAS_CACHE_DIR", ROOT / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _offline_defaults() -> None:
    for key, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("HF_DATASETS_OFFLINE", "1"),
        ("HF_HUB_DISABLE_TELEMETRY", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
    ):
        os.environ.setdefault(key, value)
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))


_offline_defaults()
