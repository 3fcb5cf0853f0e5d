"""MoE routing page: the three balancing modes trained live, routing views, DeepSeek-V3 at scale.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import streamlit as st

from core.models import moe


@st.cache_resource(max_entries=4, show_spinner=False)
def comparison(cfg, device: str, _progress=None, _on_wait=None):
    """Three small MoE LMs trained live, one per balancing mode (shared, read-only after training)."""
    return moe.train_balancing_modes(cfg, device, progress=_progress, on_wait=_on_wait)


@st.cache_resource(max_entries=4, show_spinner=False)
def untrained(cfg, device: str):
    """The same MoE LM at its initial weights (routing before any training)."""
    return moe.untrained_comparison(cfg, device)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def route_text(key: tuple, mode: str, text: str, _comparison):
    """Routing of the user's text by run ``mode`` of the comparison identified by ``key``."""
    run = _comparison.runs[mode]
    return moe.route_text(run.model, _comparison.vocab, text)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def specialisation(key: tuple, mode: str, _comparison):
    """Which characters each expert prefers on the held-out sample, per layer."""
    run = _comparison.runs[mode]
    return moe.expert_specialisation(run.model, _comparison.vocab, _comparison.val)


@st.cache_data(max_entries=16, show_spinner=False)
def bias_demo(layer_cfg, gamma: float):
    """The aux-free bias update alone on a frozen, skewed router."""
    return moe.bias_demo(layer_cfg, gamma)


@st.cache_data(max_entries=16, show_spinner=False)
def scale(preset: str, context: int):
    return moe.scale_view(preset, context)
