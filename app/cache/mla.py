"""Multi-head latent attention page: preset cache checks, the live MLA layer, decode timings, and
SmolLM2's real KV cache measured (core.measure.llm_runs.measure_kv_cache).

Cached wrappers only (see app/cache/__init__.py for the rules). The real model comes from
app/cache/llm.py's ``model`` (one copy per process, shared with the LLM page).
"""

from __future__ import annotations

import streamlit as st

from core.models import mla


@st.cache_data(max_entries=64, show_spinner=False)
def preset_check(name: str, dtype_name: str, device: str):
    return mla.preset_cache_check(name, dtype_name, device)


@st.cache_data(max_entries=64, show_spinner=False)
def kv_curve(names: tuple[str, ...], contexts: tuple[int, ...], bytes_per_value: float, batch: int) -> list[dict]:
    """KV-cache bytes of each preset at each context length (core.models.mla.kv_cache_curve)."""
    return mla.kv_cache_curve(list(names), list(contexts), bytes_per_value=bytes_per_value, batch=batch)


@st.cache_data(max_entries=64, show_spinner=False)
def check_config(cfg: mla.MLAConfig) -> mla.MLAConfig:
    """``cfg`` if it describes a valid MLA layer (else a ValidationError with the reason)."""
    return mla.validate_mla_config(cfg)


@st.cache_data(max_entries=64, show_spinner=False)
def param_count(cfg: mla.MLAConfig) -> dict:
    return mla.mla_param_count(cfg)


@st.cache_data(max_entries=16, show_spinner=False)
def small_config(name: str):
    """The small 2-layer config that keeps preset ``name``'s attention kind."""
    return mla.small_config(name)


@st.cache_data(max_entries=256, show_spinner=False)
def decode_cost(cfg: mla.MLAConfig, context: int, bytes_per_value: float) -> dict:
    """Analytic FLOPs and cache bytes read per decoded token and layer, per form."""
    return mla.decode_cost(cfg, context, bytes_per_value)


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

