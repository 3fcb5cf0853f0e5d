"""Multi-head latent attention page: preset cache checks, the live MLA layer, decode timings.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import streamlit as st

from core.models import mla


@st.cache_data(max_entries=64, show_spinner=False)
def preset_check(name: str, dtype_name: str, device: str):
    return mla.preset_cache_check(name, dtype_name, device)


@st.cache_data(max_entries=32, show_spinner=False)
def compare_forms(cfg, seq: int, batch: int, seed: int, device: str, cache_dtype: str):
    return mla.compare_forms(cfg, seq=seq, batch=batch, seed=seed, device=device,
                             cache_dtype=cache_dtype)


@st.cache_data(max_entries=16, show_spinner=False)
def small_run(name: str, dtype_name: str, device: str):
    return mla.small_module_run(name, dtype_name=dtype_name, device=device)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def decode_timing(cfg, context: int, device: str, dtype_name: str, _progress=None, _on_wait=None):
    return mla.time_decode_step(cfg, context, device=device, dtype_name=dtype_name,
                                progress=_progress, on_wait=_on_wait)
