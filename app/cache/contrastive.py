"""Contrastive learning page: MiniLM pairs, InfoNCE batches, CPC trained live.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import streamlit as st
import torch

from core.models import contrastive


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def pool(source: str, kind: str, negatives: str, n_pairs: int, seed: int, text: str,
             device: str, _progress=None):
    """Pairs and their MiniLM embeddings: (pairs, anchors (N, 384), positives (N, 384))."""
    if _progress:
        _progress(0.1, "Picking sentence pairs…")
    if source == "wiki":
        pairs = contrastive.corpus_pairs(n_pairs, kind=kind, negatives=negatives, seed=seed)
    else:
        pairs = contrastive.text_pairs(text, kind=kind)[:n_pairs]
    if _progress:
        _progress(0.3, f"Embedding {2 * len(pairs)} sentences with MiniLM…")
    a, b = contrastive.embed_pairs(pairs, device)
    if _progress:
        _progress(1.0, "Done")
    return tuple(pairs), a.numpy(), b.numpy()


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def batch(a, b, n: int, temperature: float, seed: int, symmetric: bool):
    return contrastive.info_nce_from_pool(torch.as_tensor(a), torch.as_tensor(b), n, temperature,
                                          seed=seed, symmetric=symmetric)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def curve(a, b, batch_sizes: tuple, temperatures: tuple, n_batches: int, seed: int):
    return contrastive.bound_curve(torch.as_tensor(a), torch.as_tensor(b), batch_sizes,
                                   temperatures, n_batches=n_batches, seed=seed)


@st.cache_data(max_entries=6, show_spinner=False)
def cpc(cfg, device: str, _progress=None, _on_wait=None):
    """A CPC run (training + held-out evaluation), shared by every session that asks for it."""
    return contrastive.train_cpc(cfg, device=device, progress=_progress, on_wait=_on_wait)
