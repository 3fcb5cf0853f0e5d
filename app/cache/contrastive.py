"""Contrastive learning page: MiniLM pairs, InfoNCE batches, CPC trained live.

Cached wrappers only (see app/cache/__init__.py for the rules). The embedded pool is plain
arrays, so the InfoNCE views are keyed by the embeddings themselves.
"""

from __future__ import annotations

import streamlit as st

from core import tokenizers
from core.models import contrastive


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def pool(source: str, kind: str, negatives: str, n_pairs: int, seed: int, text: str,
         device: str, _progress=None):
    """Pairs and their MiniLM embeddings: (pairs, anchors (N, 384), positives (N, 384))."""
    return contrastive.pair_pool(source, n_pairs, kind=kind, negatives=negatives, seed=seed,
                                 text=text, device=device, progress=_progress)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def batch(a, b, n: int, temperature: float, seed: int, symmetric: bool):
    """InfoNCE of one random batch of ``n`` pairs: (result, indices into the pool)."""
    return contrastive.info_nce_from_pool(a, b, n, temperature, seed=seed, symmetric=symmetric)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def curve(a, b, batch_sizes: tuple, temperatures: tuple, n_batches: int, seed: int):
    """The MI bound log N - L over batch sizes and temperatures."""
    return contrastive.bound_curve(a, b, batch_sizes, temperatures, n_batches=n_batches, seed=seed)


@st.cache_data(max_entries=6, show_spinner=False)
def cpc(cfg: contrastive.CPCConfig, device: str, _progress=None, _on_wait=None):
    """A CPC run (training + held-out evaluation), shared by every session that asks for it."""
    return contrastive.train_cpc(cfg, device=device, progress=_progress, on_wait=_on_wait)


@st.cache_data(max_entries=4, ttl=3600, show_spinner=False)
def example_pool(pairs: tuple, device: str):
    """Fixed example pairs (core.models.contrastive.Pair) and their MiniLM embeddings:
    (pairs, anchors (N, 384), positives (N, 384)) as arrays, like ``pool``."""
    a, b = contrastive.embed_pairs(pairs, device)
    return pairs, a.numpy(), b.numpy()


@st.cache_data(max_entries=256, show_spinner=False)
def wordpiece(text: str) -> list:
    """``text`` in MiniLM's WordPiece tokens (core.tokenizers.Token; unknown ones are [UNK])."""
    return tokenizers.encode("bert-wordpiece", text)
