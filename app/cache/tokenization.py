"""Tokenization page: tokenizers, token views and statistics, the BPE trainer.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import streamlit as st

from core import tokenizers
from core.models import bpe
from core.views.tokens import ViewOptions, render_html


@st.cache_resource(show_spinner="Loading tokenizer vocabularies…")
def tokenizers_ready(names: tuple[str, ...]) -> tuple[str, ...]:
    """Load (once per process) the vocabularies of ``names``; returns the names."""
    for name in names:
        tokenizers.id_bytes_table(name)
    return names


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)   # up to ~2 MB of HTML an entry
def token_view(name: str, text: str, show_whitespace: bool, allow_special: bool = False) -> dict:
    """Coloured-span HTML and the token ids of ``text`` (dict: html, ids, decoded)."""
    toks = tokenizers.encode(name, text, allow_special=allow_special)
    special = frozenset(tokenizers.special_tokens(name).values())
    html = render_html(tokenizers.prepare(name, text), toks, special, ViewOptions(show_whitespace=show_whitespace),
                       unk_id=tokenizers.special_tokens(name).get("[UNK]"))
    ids = [t.id for t in toks]
    return {"html": html, "ids": ids, "tokens": toks[:2000], "n": len(toks),
            "decoded": tokenizers.decode(name, ids)}


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def token_stats(names: tuple[str, ...], text: str) -> list:
    return [tokenizers.token_stats(n, text) for n in names]


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def text_report(text: str):
    return tokenizers.analyze_text(text)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def bpe_corpus(kind: str, max_chars: int) -> str:
    return bpe.load_corpus(kind, max_chars)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def bpe_train(text: str, config, device: str, _progress=None, _on_wait=None):
    return bpe.train(text, config, progress=_progress, on_wait=_on_wait, device=device)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def bpe_hf_compare(text: str, config, _model):
    """HF BpeTrainer on the same text and settings (keyed by text + config; the model is not hashed)."""
    return bpe.hf_compare(text, _model)
