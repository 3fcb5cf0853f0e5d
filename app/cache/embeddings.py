"""Embedding neighbourhoods page: the spaces, projections, word2vec and gensim runs, analogies.

Cached wrappers only (see app/cache/__init__.py for the rules).
"""

from __future__ import annotations

import streamlit as st
import torch

from core.data import corpus
from core.models import embeddings, word2vec


@st.cache_resource(show_spinner="Reading MiniLM's token embedding table…", max_entries=4)
def static_space(device: str, whole_words_only: bool):
    """MiniLM's static WordPiece table as a space (shared, read-only)."""
    return embeddings.minilm_static_space(device, whole_words_only)


@st.cache_resource(show_spinner=False, max_entries=4)
def word_space(words: tuple, device: str, _progress=None):
    """The words of a slice, each encoded alone by MiniLM (contextual space)."""
    return embeddings.minilm_text_space(
        "minilm-words", "MiniLM contextual (each word encoded alone)", words, device, _progress)


@st.cache_resource(show_spinner=False, max_entries=2)
def sentence_space(n: int, device: str, _progress=None):
    """``n`` Wikipedia sentences encoded by MiniLM (candidates for sentence queries)."""
    return embeddings.minilm_text_space(
        "minilm-sentences", "MiniLM sentence embeddings (Wikipedia sentences)",
        embeddings.wiki_sentences(n), device, _progress)


@st.cache_data(show_spinner=False, max_entries=8)
def frequent_words(n: int) -> tuple:
    return embeddings.frequent_words(n)


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600)
def projection(vectors, config, _progress=None, _on_wait=None):
    """2-D/3-D projection of the rows of ``vectors`` (numpy, hashed by content)."""


    return embeddings.project(torch.as_tensor(vectors), config, _progress, on_wait=_on_wait)


@st.cache_resource(show_spinner="Preparing the Wikipedia sample…", max_entries=4)
def wiki_corpus(max_words: int):
    return word2vec.wiki_corpus(max_words)


@st.cache_resource(show_spinner=False, max_entries=4)
def trained_word2vec(config, corpus_key: str, device: str, watch: tuple, _corpus,
                 _progress=None, _on_wait=None):
    """word2vec trained on ``_corpus`` (identified by ``corpus_key``): (result, space)."""
    result = word2vec.train(_corpus.sentences, config, device, watch=watch, progress=_progress,
                            on_wait=_on_wait)
    space = embeddings.word_vectors_space("word2vec", "word2vec (trained here)",
                                          result.vocab.words, result.vectors, device)
    return result, space


@st.cache_resource(show_spinner=False, max_entries=4)
def trained_gensim(config, corpus_key: str, device: str, workers: int, _corpus, _progress=None):
    """gensim's Word2Vec on the same corpus and hyper-parameters: (result, space)."""
    result = word2vec.train_gensim(_corpus.sentences, config, workers, _progress)
    space = embeddings.word_vectors_space("gensim", "gensim Word2Vec (reference)",
                                          result.words, result.vectors, device)
    return result, space


@st.cache_resource(show_spinner=False, max_entries=1)
def analogy_questions() -> tuple:
    """Mikolov et al.'s questions-words analogy set, lower-cased."""
    return embeddings.load_questions(corpus.questions_words_path())


@st.cache_data(show_spinner=False, max_entries=8)
def analogy_scores(run_key: tuple, _spaces: tuple) -> list:
    """questions-words accuracy of each space, restricted to their shared vocabulary."""
    shared = set.intersection(*(set(s.items) for s in _spaces))
    questions = analogy_questions()
    return [embeddings.analogy_accuracy(s, questions, shared) for s in _spaces]
