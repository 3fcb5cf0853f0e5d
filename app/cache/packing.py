"""Sequence packing page: length samples, packing strategies, the real layer, throughput.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import random

import streamlit as st

from core.models import packing
from core.runtime.validation import ValidationError


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Tokenizing the documents…")
def doc_counts(source: str, unit: str, tokenizer: str, text: str = "") -> tuple:
    """Token counts (+1 end-of-text) of the Wikipedia sample's or the user's documents."""
    docs = packing.corpus_documents(unit) if source == "wiki" else packing.text_documents(text, unit)
    counts = packing.document_token_counts(docs, tokenizer)
    if not counts:

        raise ValidationError("The text holds no tokens to pack.")
    return tuple(counts)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def samples(source: str, unit: str, tokenizer: str, max_len: int, text: str = "") -> tuple:
    """Sample lengths: documents cut at ``max_len`` tokens."""
    return tuple(packing.cut_lengths(doc_counts(source, unit, tokenizer, text), max_len))


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def compare(lengths: tuple, capacity: int, batch_size: int, max_len: int, seed: int = 0):
    return packing.compare_strategies(lengths, capacity=capacity, batch_size=batch_size,
                                      max_len=max_len, seed=seed)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def layout(strategy: str, lengths: tuple, capacity: int, batch_size: int, max_len: int,
                seed: int = 0):
    """The Packing of one strategy on the same shuffled sequences as pack_compare."""


    values = list(lengths)
    random.Random(seed).shuffle(values)
    return packing.pack(strategy, values, capacity=capacity, batch_size=batch_size,
                        max_len=max_len), tuple(values)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def histogram(lengths: tuple, bins: int = 40) -> dict:
    return packing.length_histogram(lengths, bins)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def layer(lengths: tuple, cfg, dtype: str, attn: str, device: str):
    return packing.compare_layer(lengths, cfg, dtype=dtype, attn=attn, device=device)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def throughput(lengths: tuple, cfg, device: str, methods: tuple, _progress=None,
                    _on_wait=None):

    return packing.measure_throughput(lengths, cfg, device=device, methods=methods,
                                      progress=_progress, on_wait=_on_wait)
