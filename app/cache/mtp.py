"""Multi-token prediction page: the MTP model trained live and speculative decoding.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import streamlit as st

from core.models import mtp


@st.cache_resource(max_entries=4, show_spinner=False)
def trained_mtp(cfg, train_cfg, device: str, _progress=None, _on_wait=None):
    """A trained MTP model (shared by all sessions; decoding works on a float64 copy)."""
    return mtp.train_mtp(cfg, train_cfg, device=device, progress=_progress, on_wait=_on_wait)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def decoding(cfg, train_cfg, device: str, prompt: str, max_new: int, _progress=None,
                 _on_wait=None):

    trained = trained_mtp(cfg, train_cfg, device)
    return mtp.compare_decoding(trained, prompt, max_new, on_wait=_on_wait, progress=_progress)


@st.cache_data(max_entries=8, show_spinner=False)
def param_counts(cfg):
    return mtp.mtp_param_counts(cfg)
