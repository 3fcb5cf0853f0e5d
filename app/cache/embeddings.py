"""Embedding neighbourhoods page: the spaces (MiniLM's and SmolLM2's static tables, MiniLM's
contextual spaces, word2vec and gensim), their neighbours, projections, kNN graphs, analogies
and sentence similarities.

Cached wrappers only (see app/cache/__init__.py for the rules). Keys derive from the objects
themselves (``hash_funcs``): a Space hashes as its content fingerprint
(core.models.embeddings.space_fingerprint) and a TrainingCorpus as its key (made from its
text and cut), so a cached result can never belong to another space or corpus. Heavy work
(MiniLM encoding, t-SNE/UMAP, the trainings) runs inside core's heavy jobs. No spinner texts
here (a decorator's text is fixed at import, in no language): the page shows its own.
"""

from __future__ import annotations

import streamlit as st

from app.i18n import N_
from core.data import corpus as corpora
from core.models import embeddings, word2vec

BY_CONTENT = {embeddings.Space: lambda space: space.fingerprint,                    # hash_funcs
              word2vec.TrainingCorpus: lambda corpus: corpus.key}


# ---------------------------------------------------------------- spaces
@st.cache_resource(show_spinner=False, max_entries=4)
def static_space(device: str, whole_words_only: bool):
    """MiniLM's static WordPiece table as a space (shared, read-only)."""
    return embeddings.minilm_static_space(device, whole_words_only)


@st.cache_resource(show_spinner=False, max_entries=2)
def smollm2_space(device: str, whole_words_only: bool):
    """SmolLM2's 49,152 x 576 input (= output) embedding table as a space (shared, read-only)."""
    return embeddings.smollm2_static_space(device, whole_words_only)


@st.cache_resource(show_spinner=False, max_entries=4)
def word_space(words: tuple, device: str, _progress=None, _on_wait=None):
    """The words of a slice, each encoded alone by MiniLM (contextual space)."""
    return embeddings.minilm_text_space(
        "minilm-words", N_("MiniLM contextual (each word encoded alone)"), words, device, _progress, _on_wait)


@st.cache_resource(show_spinner=False, max_entries=2)
def sentence_space(n: int, device: str, _progress=None, _on_wait=None):
    """``n`` Wikipedia sentences encoded by MiniLM (candidates for sentence queries)."""
    return embeddings.minilm_text_space(
        "minilm-sentences", N_("MiniLM sentence embeddings (Wikipedia sentences)"),
        embeddings.wiki_sentences(n), device, _progress, _on_wait)


@st.cache_data(show_spinner=False, max_entries=8)
def frequent_words(n: int) -> tuple:
    return embeddings.frequent_words(n)


# ---------------------------------------------------------------- inputs
@st.cache_data(show_spinner=False, max_entries=64, ttl=3600)
def parse_query(text: str):
    return embeddings.parse_query(text)


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600)
def parse_word_list(text: str):
    return embeddings.parse_word_list(text)


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600)
def parse_sentences(text: str):
    return embeddings.parse_sentences(text)


@st.cache_data(show_spinner=False, max_entries=128, ttl=3600)
def wordpieces(text: str) -> tuple:
    """How MiniLM's WordPiece tokenizer splits ``text`` ([UNK] for a character it has no token for)."""
    return embeddings.wordpieces(text)


@st.cache_data(show_spinner=False, max_entries=128, ttl=3600)
def bpe_pieces(text: str) -> tuple:
    """SmolLM2's BPE pieces of ``text`` as the page shows them (␣ for a leading space)."""
    return embeddings.bpe_pieces(text)[1]


# ---------------------------------------------------------------- views of a space
@st.cache_data(show_spinner=False, max_entries=128, ttl=3600, hash_funcs=BY_CONTENT)
def query_vector(space, query, piece: str | None = None):
    """core.models.embeddings.QueryVector of ``query`` in ``space``."""
    return embeddings.query_vector(space, query, piece)


@st.cache_data(show_spinner=False, max_entries=128, ttl=3600, hash_funcs=BY_CONTENT)
def query_neighbours(space, query, k: int, piece: str | None = None):
    """(QueryVector, Neighbours or None): the query's exact nearest rows."""
    return embeddings.query_neighbours(space, query, k, piece)


@st.cache_data(show_spinner=False, max_entries=128, ttl=3600)
def surface_variants(word: str, items: tuple) -> tuple:
    """The items that are ``word`` in another case, with a space mark or a plural ending."""
    return embeddings.surface_variants(word, items)


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600, hash_funcs=BY_CONTENT)
def projection_points(space, words: tuple, query, k: int):
    """core.models.embeddings.ProjectionPoints: the slice, the query's neighbours and the query."""
    return embeddings.projection_points(space, words, query, k)


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600, hash_funcs=BY_CONTENT)
def projection(space, words: tuple, query, k: int, config, _progress=None, _on_wait=None):
    """core.models.embeddings.ProjectionView of projection_points(space, words, query, k) with
    ``config`` (keyed by the space's fingerprint and the inputs: Streamlit would hash a large
    array of points by a sample of it)."""
    return embeddings.projection_view(projection_points(space, words, query, k), config, _progress,
                                      on_wait=_on_wait)


@st.cache_data(show_spinner=False, max_entries=32, ttl=3600, hash_funcs=BY_CONTENT)
def neighbour_graph(space, query, config, piece: str | None = None):
    """core.models.embeddings.NeighbourGraph around the query (communities, layout)."""
    return embeddings.query_graph(space, query, config, piece)


@st.cache_data(show_spinner=False, max_entries=64, ttl=3600, hash_funcs=BY_CONTENT)
def analogy(space, a: str, b: str, c: str, k: int, expected: str | None, exclude_inputs: bool):
    return embeddings.analogy(space, a, b, c, k=k, expected=expected, exclude_inputs=exclude_inputs)


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600, hash_funcs=BY_CONTENT)
def sentence_matrices(sentences: tuple, device: str, static=None, _on_wait=None) -> dict:
    """Cosine matrices of the sentences: MiniLM contextual, and the static bag of pieces."""
    return embeddings.sentence_matrices(sentences, device, static, on_wait=_on_wait)


# ---------------------------------------------------------------- word2vec and gensim
@st.cache_resource(show_spinner=False, max_entries=4)
def wiki_corpus(max_words: int):
    return word2vec.wiki_corpus(max_words)


@st.cache_resource(show_spinner=False, max_entries=2)
def upload_corpus(data: bytes, max_words: int, name: str):
    return word2vec.upload_corpus(data, max_words, name)


@st.cache_resource(show_spinner=False, max_entries=4, hash_funcs=BY_CONTENT)
def trained_word2vec(config, corpus, device: str, watch: tuple, _progress=None, _on_wait=None):
    """word2vec trained on ``corpus``: (Word2VecResult, its space)."""
    result = word2vec.train(corpus.sentences, config, device, watch=watch, progress=_progress,
                            on_wait=_on_wait)
    return result, embeddings.word_vectors_space("word2vec", N_("word2vec (trained here)"),
                                                 result.vocab.words, result.vectors, device)


@st.cache_resource(show_spinner=False, max_entries=4, hash_funcs=BY_CONTENT)
def trained_gensim(config, corpus, device: str, workers: int, _progress=None):
    """gensim's Word2Vec on the same corpus and hyper-parameters: (GensimResult, its space)."""
    result = word2vec.train_gensim(corpus.sentences, config, workers, _progress)
    return result, embeddings.word_vectors_space("gensim", N_("gensim Word2Vec (reference)"),
                                                 result.words, result.vectors, device)


@st.cache_resource(show_spinner=False, max_entries=1)
def analogy_questions() -> tuple:
    """Mikolov et al.'s questions-words analogy set, lower-cased."""
    return embeddings.load_questions(corpora.questions_words_path())


@st.cache_data(show_spinner=False, max_entries=8, hash_funcs=BY_CONTENT)
def analogy_scores(spaces: tuple) -> list:
    """questions-words accuracy of each space, on the questions whose words all of them know."""
    return embeddings.shared_analogy_scores(spaces, analogy_questions())
