"""Multi-token prediction page: the MTP model trained live and speculative decoding.

Cached wrappers only (see app/cache/__init__.py for the rules). The trained model is a cache
resource keyed by its frozen configs and the device; decoding takes the same key and fetches it.
"""

from __future__ import annotations

import streamlit as st

from core.models import mtp


@st.cache_data(max_entries=32, show_spinner=False)
def checked(cfg: mtp.MTPConfig, train_cfg: mtp.TrainConfig) -> None:
    """Raises ValidationError (never cached) for settings core refuses."""
    mtp.validate_configs(cfg, train_cfg)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def targets(text: str, depth: int, positions: int) -> list[dict]:
    """What each head is trained to predict at the first ``positions`` positions of ``text``."""
    return mtp.target_table(text, depth, positions=positions)


@st.cache_resource(max_entries=4, show_spinner=False)
def trained_mtp(cfg: mtp.MTPConfig, train_cfg: mtp.TrainConfig, device: str, _progress=None,
                _on_wait=None) -> mtp.TrainedMTP:
    """A trained MTP model (shared by all sessions; decoding works on a float64 copy)."""
    return mtp.train_mtp(cfg, train_cfg, device=device, progress=_progress, on_wait=_on_wait)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def decoding(cfg: mtp.MTPConfig, train_cfg: mtp.TrainConfig, device: str, prompt: str, max_new: int,
             _progress=None, _on_wait=None) -> mtp.DecodeComparison:
    """Plain greedy vs self-speculative decoding of ``prompt`` by the model ``trained_mtp`` names."""
    return mtp.compare_decoding(trained_mtp(cfg, train_cfg, device), prompt, max_new,
                                on_wait=_on_wait, progress=_progress)


@st.cache_data(max_entries=8, show_spinner=False)
def param_counts(cfg: mtp.MTPConfig) -> dict:
    """Parameters of the main model and of one MTP module."""
    return mtp.mtp_param_counts(cfg)
