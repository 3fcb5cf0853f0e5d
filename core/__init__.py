"""LLM Atlas core: models, calculators, tokenizers and measurements.

Grouped by role:
- the public API modules, here: configs (real model configs, parameter counts), memory
  (training and KV-cache memory calculators), fp8 (formats and scaling), tokenizers (real
  tokenizers, offline), attention (the naive and tiled references, FLOPs and IO), llm
  (SmolLM2-135M-Instruct on our own blocks);
- nn/       building blocks every model is made of (norms, RoPE, masks, attention, MLPs,
            the decoder block and model, sampling);
- train/    the one training loop, its schedules, loss smoothing;
- models/   one module per page topic (sequence models, MoE, MTP, MLA, packing, vision
            tokens, embeddings, word2vec, contrastive, BPE);
- data/     corpora, character data, MiniLM's and GGUF model files;
- measure/  measurements and runs (activations, ZeRO runs, timing, the attention
            benchmark, the real LLM measured);
- runtime/  device, scheduler, health, validation, offline defaults, recorded results;
- views/    page-only view models (the tiling walkthrough, the coloured token view).
core/device.py is core/runtime/device.py under its documented path.

Pure Python/PyTorch; never imports streamlit, app/ or pages/. Importing the
package pins the process to offline use: nothing is fetched from a model hub
(HF_HUB_OFFLINE=1), and tiktoken reads and writes its cache in a folder of the
project's (TIKTOKEN_CACHE_DIR). Existing environment values are kept.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from core.runtime.offline import apply_offline_defaults

ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """The project's cache folder (ATLAS_CACHE_DIR, default <repo>/.cache)."""
    path = Path(os.environ.get("ATLAS_CACHE_DIR", ROOT / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a temporary file beside ``path`` (its own per process and thread), then
    rename it over ``path``: a reader (another server, another test worker) sees the old file or
    the new one, never half of one, and a run killed mid-write leaves the previous file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


apply_offline_defaults(ROOT)
