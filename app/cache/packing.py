"""Sequence packing page: length samples, packing strategies, the real layer, throughput.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import streamlit as st

from app.i18n import N_
from core import tokenizers
from core.data import corpus
from core.models import packing
from core.runtime.validation import check_text


@st.cache_resource(show_spinner=False)
def tokenizer_names() -> list[str]:
    """The tokenizers whose vocabulary files are installed (read-only list, shared)."""
    return tokenizers.list_tokenizers()


@st.cache_resource(max_entries=8, show_spinner=False)
def flex_available(device: str, backward: bool = True) -> bool:
    """Whether FlexAttention runs on ``device`` (with a backward pass when ``backward``)."""
    return packing.flex_available(device, backward=backward)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def upload_text(data: bytes, max_bytes: int):
    """An uploaded corpus, decoded and capped at ``max_bytes`` (CheckedText)."""
    return corpus.upload_text(data, max_bytes=max_bytes)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def user_text(text: str):
    """The user's own documents, checked and capped at packing.MAX_TEXT_CHARS (CheckedText)."""
    return check_text(text, max_chars=packing.MAX_TEXT_CHARS, name=N_("Your text"))


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)   # the page shows a spinner
def doc_counts(source: str, unit: str, tokenizer: str, text: str = "") -> tuple:
    """Token counts (+1 end-of-text) of the Wikipedia sample's or the user's documents."""
    return tuple(packing.source_token_counts(source, unit, tokenizer, text))


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def samples(source: str, unit: str, tokenizer: str, max_len: int, text: str = "") -> tuple:
    """Sample lengths: documents cut at ``max_len`` tokens."""
    return tuple(packing.cut_lengths(doc_counts(source, unit, tokenizer, text), max_len))


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def compare(lengths: tuple, capacity: int, batch_size: int, max_len: int, seed: int = 0):
    """Every packing strategy's efficiency on the same shuffled sequences."""
    return packing.compare_strategies(lengths, capacity=capacity, batch_size=batch_size,
                                      max_len=max_len, seed=seed)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def layout(strategy: str, lengths: tuple, capacity: int, batch_size: int, max_len: int,
           seed: int = 0):
    """(Packing of one strategy, the shuffled sequences) on the same order as ``compare``."""
    return packing.strategy_layout(strategy, lengths, capacity=capacity, batch_size=batch_size,
                                   max_len=max_len, seed=seed)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def histogram(lengths: tuple, bins: int = 40) -> dict:
    """Counts of the lengths in equal-width bins."""
    return packing.length_histogram(lengths, bins)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def typed_lengths(text: str, max_sequences: int = packing.MAX_COMPARE_SEQUENCES) -> tuple:
    """Sequence lengths a user typed ("5, 3, 7"), checked."""
    return tuple(packing.parse_lengths(text, max_sequences=max_sequences))


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def row_layout(lengths: tuple, row: int):
    """cu_seqlens, sequence ids, restarting positions and both masks of one packed row."""
    return packing.row_layout(lengths, row)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def sample_sequences(lengths: tuple, n: int, seed: int = 0) -> tuple:
    """``n`` of the lengths drawn without replacement (the measurement's sample)."""
    return tuple(packing.sample_sequences(lengths, n, seed))


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def layer(lengths: tuple, cfg, dtype: str, attn: str, device: str):
    """Packed vs per-sequence outputs of the real layer, four ways."""
    return packing.compare_layer(lengths, cfg, dtype=dtype, attn=attn, device=device)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def throughput(lengths: tuple, cfg, device: str, methods: tuple, _progress=None, _on_wait=None):
    """Forward + backward of padded vs packed batches, timed on ``device``."""
    return packing.measure_throughput(lengths, cfg, device=device, methods=methods,
                                      progress=_progress, on_wait=_on_wait)
