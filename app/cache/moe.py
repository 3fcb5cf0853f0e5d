"""MoE routing page: the three balancing modes trained live, routing views, DeepSeek-V3 at scale.

Cached wrappers only (see app/cache/__init__.py for the rules). The trained (or untrained)
comparison is shared by all sessions as a cache resource keyed by its frozen TrainConfig, the
device and whether it is trained; the analyses take that same key and fetch the comparison
inside, so a cached routing can never belong to another model than the key names.
"""

from __future__ import annotations

import streamlit as st

from core.models import moe


@st.cache_resource(max_entries=8, show_spinner=False)
def comparison(cfg: moe.TrainConfig, device: str, trained: bool = True, _progress=None,
               _on_wait=None) -> moe.Comparison:
    """Three small MoE LMs trained live, one per balancing mode, or (``trained=False``) the same
    LM at its initial weights; shared, read-only after training."""
    return moe.build_comparison(cfg, device, trained=trained, progress=_progress, on_wait=_on_wait)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def route_text(cfg: moe.TrainConfig, device: str, trained: bool, mode: str, text: str):
    """Routing of the user's text by run ``mode`` of the comparison ``(cfg, device, trained)``."""
    return moe.route_run_text(comparison(cfg, device, trained), mode, text)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def specialisation(cfg: moe.TrainConfig, device: str, trained: bool, mode: str):
    """Which characters each expert of run ``mode`` prefers on the held-out sample, per layer."""
    return moe.run_specialisation(comparison(cfg, device, trained), mode)


@st.cache_data(max_entries=16, show_spinner=False)
def bias_demo(layer_cfg: moe.MoEConfig, gamma: float):
    """The aux-free bias update alone on a frozen, skewed router."""
    return moe.bias_demo(layer_cfg, gamma)


@st.cache_data(max_entries=16, show_spinner=False)
def scale(preset: str, context: int):
    """Experts, active vs total parameters and FLOPs per token of a real MoE preset."""
    return moe.scale_view(preset, context)
