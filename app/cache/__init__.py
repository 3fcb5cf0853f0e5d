"""Cached wrappers around core/: the only place pages get models, data and results.

One module per page topic (app/cache/<topic>.py: tokenization, embeddings, llm, ...);
this package holds what every page shares: the device, recorded benchmark results and the
smoothed loss curves of the pages that train live.
Wrappers hold no logic: they call core/ and cache the answer.

- st.cache_resource: things loaded once per process and shared by all
  sessions (models, tokenizers, trained weights). They must be safe to share:
  read-only after loading.
- st.cache_data: results (arrays, tables) copied per caller; every wrapper
  sets ``max_entries`` (and ``ttl`` where inputs are free text) so memory does
  not grow with the number of sessions.
- Progress: a cached function takes ``_progress`` / ``_on_wait`` callbacks
  (leading underscore: not part of the cache key) built by app/ui.py from an
  st.progress bar made *outside* the cached function.
Cached functions take everything they use as arguments; they never read globals.
"""

from __future__ import annotations

import streamlit as st

from core.runtime import device as core_device
from core.runtime.recorded import load_results
from core.train import smooth


@st.cache_resource(show_spinner=False)
def device_name() -> str:
    """The torch device string this process computes on ("cuda", "mps", "cpu")."""
    return str(core_device.pick_device())


@st.cache_resource(show_spinner=False)
def device_info() -> core_device.DeviceInfo:
    return core_device.device_info(device_name())


@st.cache_data(max_entries=16, ttl=300, show_spinner=False)
def recorded(name: str) -> list[dict]:
    """Recorded runs of bench/<name>.py under bench/results/ (all devices, GPU-check bundles too)."""
    return load_results(name)


@st.cache_data(max_entries=64, show_spinner=False)
def smoothed(values, window: int | None = None):
    """A training curve (n,) as the pages draw it: core.train.smooth's trailing mean, (n,) float64."""
    return smooth(values, window)
