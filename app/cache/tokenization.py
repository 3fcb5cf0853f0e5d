"""Tokenization page: tokenizers, token views and statistics, chat templates, the BPE trainer.

Cached wrappers only (see app/cache/__init__.py for the rules). Everything the page shows
about a trained BPE is keyed by the corpus text and the frozen BPEConfig that made it
(``bpe_train`` is called again inside: a cache hit), never by the model object.
SmolLM2's chat template is the one in its GGUF, rendered by the real model of app/cache/llm.py
(one model per process, shared with the LLM page).
"""

from __future__ import annotations

import streamlit as st

from app.cache import llm as llm_cache
from core import tokenizers
from core.models import bpe
from core.views import tokens as token_views


@st.cache_resource(show_spinner=False)
def available() -> tuple[str, ...]:
    """The tokenizers whose vocabulary files are installed (registry order)."""
    return tuple(tokenizers.list_tokenizers())


@st.cache_resource(show_spinner=False)   # the page shows the spinner, in its language
def tokenizers_ready(names: tuple[str, ...]) -> tuple[str, ...]:
    """Load (once per process) the vocabularies of ``names``; returns the names."""
    for name in names:
        tokenizers.id_bytes_table(name)
    return names


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def check_input(text: str):
    """core.tokenizers.InputCheck of the text box (cut at VIEW_MAX_CHARS, surrogates replaced)."""
    return tokenizers.check_input(text)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)   # up to ~2 MB of HTML an entry
def token_view(name: str, text: str, show_whitespace: bool, allow_special: bool = False):
    """core.views.tokens.TokenView: coloured HTML, ids, round trip, dropped bytes."""
    return token_views.token_view(name, text, show_whitespace, allow_special)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def token_stats(names: tuple[str, ...], text: str) -> list:
    return [tokenizers.token_stats(n, text) for n in names]


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def dropped_bytes(names: tuple[str, ...], text: str) -> list:
    """core.tokenizers.DroppedBytes of ``text`` for each tokenizer of ``names``."""
    return [tokenizers.dropped_bytes(n, text) for n in names]


@st.cache_data(max_entries=32, show_spinner=False)
def missing_bytes(name: str) -> frozenset[int]:
    """Byte values the vocabulary of ``name`` has no token for (core.tokenizers.missing_bytes)."""
    return tokenizers.missing_bytes(name)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def text_report(text: str):
    return tokenizers.analyze_text(text)


@st.cache_data(max_entries=32, show_spinner=False)
def vocab_size(name: str) -> int:
    return tokenizers.vocab_size(name)


@st.cache_data(max_entries=32, show_spinner=False)
def special_tokens(name: str) -> dict[str, int]:
    return tokenizers.special_tokens(name)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def chat_prompt(fmt: str, system: str, user: str, assistant: str) -> str:
    """A conversation in one of core.tokenizers.CHAT_FORMATS (special-token strings included)."""
    return tokenizers.chat_prompt(fmt, system, user, assistant)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def gguf_chat_prompt(device: str, system: str, user: str, assistant: str) -> str:
    """The conversation rendered by the jinja chat template in SmolLM2's GGUF (PretrainedLM.chat_text)."""
    return llm_cache.model(device).chat_text(tokenizers.chat_messages(system, user, assistant),
                                             add_generation_prompt=False)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def bpe_corpus(kind: str, max_chars: int) -> str:
    return bpe.load_corpus(kind, max_chars)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def check_training_text(text: str):
    return bpe.check_training_text(text)


@st.cache_data(max_entries=4, ttl=3600, show_spinner=False)
def check_training_upload(data: bytes):
    return bpe.check_training_upload(data)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def check_sample(text: str) -> str:
    return bpe.check_sample(text)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def bpe_train(text: str, config, device: str, _progress=None, _on_wait=None):
    return bpe.train(text, config, progress=_progress, on_wait=_on_wait, device=device)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def bpe_curve(text: str, config) -> list:
    """(merges, vocabulary, bytes/token) along the training of BPE on ``text`` with ``config``."""
    return bpe.compression_curve(bpe_train(text, config, "cpu"))


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def merge_view(text: str, config, sample: str, k: int, show_whitespace: bool):
    """core.views.tokens.MergeView: ``sample`` before and after merge ``k``."""
    return token_views.merge_view(bpe_train(text, config, "cpu"), sample, k, show_whitespace)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def bpe_hf_compare(text: str, config):
    """HF BpeTrainer on the same text and settings as ``bpe_train(text, config)``."""
    return bpe.hf_compare(text, bpe_train(text, config, "cpu"))
