"""Embedding spaces and what the atlas does with them: exact neighbours, projections,
k-nearest-neighbour graphs with communities, analogies, sentence similarity.

A :class:`Space` is a table of L2-normalised vectors with a label per row:
- all-MiniLM-L6-v2's static input table (30,522 WordPiece tokens x 384), read
  straight from the packaged ``model.safetensors`` (the tensor the model calls
  ``embeddings.word_embeddings.weight``);
- SmolLM2-135M's input table (49,152 byte-level BPE tokens x 576), the real LLM's
  (core.data.gguf_file.embedding_table; tokens shown with their leading space as "␣");
- MiniLM's contextual sentence embeddings (core.data.minilm.encode_sentences: mean
  pooling, normalised) of a list of words or of Wikipedia sentences;
- word2vec vectors trained here (core.models.word2vec) or by gensim.
Neighbours are exact: cosine against every eligible row (one matmul + topk),
never measured in a 2-D projection (the Embedding Projector's pitfall).
Every space carries a SHA-256 fingerprint of its whole content (:func:`space_fingerprint`):
results computed from it are cached under that key. The page's views (:func:`query_neighbours`,
:func:`projection_points` / :func:`projection_view`, :func:`query_graph`,
:func:`sentence_matrices`, :func:`shared_analogy_scores`) each make one picture from a space.

References
- Mikolov, Yih & Zweig 2013, "Linguistic Regularities in Continuous Space Word
  Representations" (NAACL), §4: the vector offset method (3CosAdd) for a − b + c.
- Levy & Goldberg 2014, "Linguistic Regularities in Sparse and Explicit Word
  Representations" (CoNLL), §3: 3CosAdd excludes the question words.
- Nissim, van Noord & van der Goot 2020, "Fair is Better than Sensational"
  (Computational Linguistics 46(2)), §3: what excluding the inputs hides.
- van der Maaten & Hinton 2008, "Visualizing Data using t-SNE" (JMLR), §3.
- McInnes, Healy & Melville 2018, "UMAP" (arXiv:1802.03426), §2-3.
- Pearson 1901, "On Lines and Planes of Closest Fit"; Jolliffe & Cadima 2016,
  "Principal component analysis: a review" (Phil. Trans. R. Soc. A), §2: PCA
  as the eigendecomposition of the covariance, or the SVD of the centred data.
- Blondel et al. 2008, "Fast unfolding of communities in large networks"
  (Louvain); Clauset, Newman & Moore 2004 (greedy modularity).
- Wu et al. 2016, "Google's Neural Machine Translation System", §4.1: WordPiece.

Does not handle: approximate (ANN) indexes, spaces over MAX_ROWS rows, or
languages other than English (the vocabularies are English, lower-cased).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import math
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from threadpoolctl import threadpool_limits

from core import tokenizers
from core.data import corpus
from core.data.gguf_file import embedding_table, shipped_path
from core.data.minilm import encode_sentences, load_tokenizer, model_path
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import (
    ValidationError,
    check_choice,
    check_float,
    check_int,
    check_text,
)

Progress = Callable[[float, str], None]

MAX_K = 100                  # neighbours per query
MAX_QUERY_CHARS = 300        # a query: a word or a sentence
MAX_WORD_CHARS = 40          # one word of a query or a list
MAX_LIST_WORDS = 5_000       # user-listed words (and vocabulary slices)
MAX_SENTENCES = 24           # sentences in the similarity heatmap
MAX_SENTENCE_CHARS = 400     # characters per heatmap sentence
MAX_POOL = 2_000             # Wikipedia sentences encoded as neighbour candidates
MAX_POINTS = {"pca": 30_522, "tsne": 3_000, "umap": 5_000}   # rows per projection
MAX_GRAPH_RING = 40          # first-ring neighbours in the kNN graph
MAX_ROWS = 200_000           # rows in one space
TIME_LIMIT_S = 180.0         # t-SNE/UMAP on the device queue
PROJECTION_THREADS = 1       # OpenMP/BLAS threads for t-SNE/UMAP: on a shared 2-core machine
                             # 2 spinning OpenMP threads cost 5x the CPU of 1 (measured)
SPECIAL_RE = re.compile(r"^\[(PAD|UNK|CLS|SEP|MASK|unused\d+)\]$")
WHOLE_WORD_RE = re.compile(r"^[a-z]+$")
STATIC_TENSOR = "embeddings.word_embeddings.weight"


# ---------------------------------------------------------------- spaces
@dataclass
class Space:
    key: str                      # "minilm-static" | "smollm2-static" | "minilm-words" | "minilm-sentences" | "word2vec" | "gensim"
    label: str                    # shown on the page
    kind: str                     # "wordpiece" / "bpe" (static tables) | "word" (word2vec) | "encoded" (MiniLM)
    items: tuple[str, ...]        # row labels: tokens, words or sentences
    unit: torch.Tensor            # (V, D) L2-normalised rows
    eligible: torch.Tensor        # (V,) bool: rows that may be returned as neighbours
    index: dict[str, int] = field(repr=False)
    encoder: Callable[[list[str]], torch.Tensor] | None = field(default=None, repr=False)
    fingerprint: str = field(default="", repr=False)   # sha256 of everything above (the cache key)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def dim(self) -> int:
        return int(self.unit.shape[1])


def make_space(key: str, label: str, kind: str, items: Sequence[str], vectors: torch.Tensor,
               eligible: torch.Tensor | None = None, encoder=None) -> Space:
    """A space over ``items`` (one per row of ``vectors``), rows normalised in float32."""
    if vectors.ndim != 2 or len(items) != vectors.shape[0] or not 0 < len(items) <= MAX_ROWS:
        raise ValidationError(f"A space needs 1..{MAX_ROWS:,} rows with one label each.")
    unit = F.normalize(vectors.float(), dim=1, eps=1e-12)                     # (V, D)
    if eligible is None:
        eligible = torch.ones(len(items), dtype=torch.bool, device=unit.device)
    index: dict[str, int] = {}
    for i, item in enumerate(items):
        index.setdefault(item, i)
    eligible = eligible.to(unit.device)
    return Space(key, label, kind, tuple(items), unit, eligible, index, encoder,
                 space_fingerprint(key, label, kind, items, unit, eligible))


def space_fingerprint(key: str, label: str, kind: str, items: Sequence[str], unit: torch.Tensor,
                      eligible: torch.Tensor) -> str:
    """SHA-256 of a space's whole content: names, device, row labels, eligibility and every
    vector's bytes (0.13 s for SmolLM2's 113 MB table). Results computed from a space are
    cached under it, so they can never belong to another space."""
    h = hashlib.sha256()
    for part in (key, label, kind, str(unit.device), str(tuple(unit.shape)), str(len(items))):
        h.update(part.encode("utf-8") + b"\0")
    h.update("\0".join(items).encode("utf-8", "surrogatepass"))
    h.update(eligible.cpu().numpy().tobytes())
    h.update(memoryview(unit.detach().cpu().contiguous().numpy()).cast("B"))
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def wordpiece_vocab() -> tuple[str, ...]:
    """MiniLM's 30,522 WordPiece tokens, by id."""
    vocab = load_tokenizer().get_vocab()
    return tuple(sorted(vocab, key=vocab.get))


def static_table(device: str = "cpu") -> torch.Tensor:
    """MiniLM's input embedding table (30522, 384), read from the packaged safetensors file."""
    with safe_open(str(Path(model_path()) / "model.safetensors"), "pt") as fh:
        table = fh.get_tensor(STATIC_TENSOR)                                  # (30522, 384)
    return table.to(torch.device(device))


def is_whole_word(token: str) -> bool:
    """A WordPiece token that is a whole lower-case word (not ##piece, digit, sign or [special])."""
    return bool(WHOLE_WORD_RE.match(token))


def minilm_static_space(device: str = "cpu", whole_words_only: bool = True) -> Space:
    """The static table as a space; neighbours among whole-word tokens (or all but specials)."""
    tokens = wordpiece_vocab()
    ok = [is_whole_word(t) if whole_words_only else not SPECIAL_RE.match(t) for t in tokens]
    label = (N_("MiniLM input table (static WordPiece, whole words)") if whole_words_only
             else N_("MiniLM input table (static WordPiece)"))
    return make_space("minilm-static", label, "wordpiece", tokens, static_table(device),
                      torch.tensor(ok, dtype=torch.bool))


BPE_WORD_RE = re.compile(r"^␣[A-Za-z]+$")      # a whole word as running text spells it: " king"


def bpe_label(text: str) -> str:
    """A BPE token's text with its leading space visible ("␣king")."""
    return "␣" + text[1:] if text.startswith(" ") else text


def smollm2_static_space(device: str = "cpu", whole_words_only: bool = True) -> Space:
    """SmolLM2's input embedding table as a space; neighbours among tokens that are a whole
    word after a space (" king"), or all but its control tokens."""
    table = embedding_table(shipped_path())                                      # (49152, 576)
    labels = tuple(bpe_label(tokenizers.decode("smollm2", [i])) for i in range(table.shape[0]))
    special = set(tokenizers.special_tokens("smollm2").values())
    ok = [bool(BPE_WORD_RE.match(t)) if whole_words_only else i not in special for i, t in enumerate(labels)]
    label = (N_("SmolLM2 input table (static BPE, whole words)") if whole_words_only
             else N_("SmolLM2 input table (static BPE)"))
    return make_space("smollm2-static", label, "bpe", labels, table.to(torch.device(device)),
                      torch.tensor(ok, dtype=torch.bool))


def bpe_pieces(text: str) -> tuple[list[int], tuple[str, ...]]:
    """SmolLM2's token ids and labels of ``text`` as running text spells it (a leading space)."""
    ids = tokenizers.encode_ids("smollm2", text if text.startswith(" ") else " " + text)
    return ids, tuple(bpe_label(tokenizers.decode("smollm2", [i])) for i in ids)


def encode_texts(texts: Sequence[str], device: str = "cpu", progress: Progress | None = None,
                 chunk: int = 256) -> torch.Tensor:
    """MiniLM sentence embeddings of any number of texts, in chunks: (N, 384) unit rows on CPU."""
    out = []
    for start in range(0, len(texts), chunk):
        out.append(encode_sentences(list(texts[start:start + chunk]), device, batch_size=64))
        if progress:
            done = min(start + chunk, len(texts))
            progress(done / len(texts), N_(f"Encoding {done:,}/{len(texts):,} with MiniLM"))
    return torch.cat(out)


def minilm_text_space(key: str, label: str, texts: Sequence[str], device: str = "cpu",
                      progress: Progress | None = None, on_wait=None) -> Space:
    """Texts (words alone, or sentences) through the whole model, as one heavy job on the device
    queue (core.runtime.scheduler); any query can be encoded afterwards."""
    if not texts or len(texts) > max(MAX_LIST_WORDS, MAX_POOL):
        raise ValidationError(f"Give 1..{max(MAX_LIST_WORDS, MAX_POOL):,} texts to encode.")
    with heavy_job("MiniLM encoding", device, time_limit_s=TIME_LIMIT_S, on_wait=on_wait):
        vectors = encode_texts(texts, device, progress).to(torch.device(device))   # (N, 384)
    return make_space(key, label, "encoded", texts, vectors,
                      encoder=lambda q: encode_texts(q, device).to(torch.device(device)))


def word_vectors_space(key: str, label: str, words: Sequence[str], vectors: torch.Tensor,
                       device: str = "cpu") -> Space:
    """Trained word vectors (word2vec, gensim) as a space."""
    return make_space(key, label, "word", words, torch.as_tensor(vectors).to(torch.device(device)))


# ---------------------------------------------------------------- queries
@dataclass(frozen=True)
class Query:
    text: str                 # the cleaned query (lower-case, single spaces)
    words: tuple[str, ...]    # its whitespace-separated words
    truncated: bool           # the input was cut at MAX_QUERY_CHARS
    cased: str = ""           # the cleaned query before lower-casing (cased vocabularies: BPE)

    @property
    def is_sentence(self) -> bool:
        return len(self.words) > 1


def parse_query(text) -> Query:
    """A word or a sentence: trimmed, whitespace collapsed, lower-cased (the cased form is
    kept for cased vocabularies); empty is refused."""
    checked = check_text(text, max_chars=MAX_QUERY_CHARS, name="The query")
    cased = " ".join(checked.text.split())
    clean = cased.lower()
    words = tuple(clean.split(" "))
    long = [w for w in words if len(w) > MAX_WORD_CHARS and not tokenizers.has_cjk(w)]   # CJK: no spaces
    if long:
        raise ValidationError(f"{long[0][:MAX_WORD_CHARS]}… is longer than {MAX_WORD_CHARS} "
                              "characters: is it really one word?")
    return Query(clean, words, checked.truncated, cased)


@dataclass(frozen=True)
class QueryVector:
    vector: torch.Tensor | None         # (D,) unit vector; None when nothing was found
    how: str                            # how it was made, for the page ("the token 'king'")
    row: int | None = None              # its row when the query is one of the space's items
    pieces: tuple[str, ...] = ()        # WordPiece pieces of a word the table has no token for
    missing: tuple[str, ...] = ()       # words of the query the space does not know
    suggestions: tuple[str, ...] = ()   # close matches for a missing word


def wordpieces(word: str) -> tuple[str, ...]:
    """How MiniLM's WordPiece tokenizer splits ``word`` (no [CLS]/[SEP])."""
    return tuple(load_tokenizer().encode(word, add_special_tokens=False).tokens)


def suggest(space: Space, word: str, n: int = 5) -> tuple[str, ...]:
    """Close spellings of ``word`` among the space's eligible items (difflib ratio >= 0.75)."""
    pool = [t for t, ok in zip(space.items, space.eligible.tolist(), strict=True) if ok]
    if space.kind == "wordpiece":
        pool = [t for t in pool if is_whole_word(t)]
    return tuple(difflib.get_close_matches(word, pool, n=n, cutoff=0.75))


def query_vector(space: Space, query: Query, piece: str | None = None) -> QueryVector:
    """The query as a unit vector of ``space`` (see :class:`QueryVector` for what can happen).

    - encoded spaces (MiniLM): the text goes through the model, whatever it is;
    - the static table: a word's own token, else (``piece=None``) the mean of its
      WordPiece pieces or the one ``piece`` chosen; a sentence: mean of all pieces;
    - word2vec: the word's row; a sentence: mean of the known words' vectors.
    """
    if space.kind == "encoded":
        vec = space.encoder([query.text])[0]                                   # (D,)
        row = space.index.get(query.text)
        return QueryVector(F.normalize(vec.to(space.unit.device).float(), dim=0),
                           N_("the text through the whole model (mean-pooled, normalised)"), row)
    if space.kind == "wordpiece":
        return _static_query(space, query, piece)
    if space.kind == "bpe":
        return _bpe_query(space, query, piece)
    return _word_query(space, query)


def _bpe_query(space: Space, query: Query, piece: str | None) -> QueryVector:
    ids, pieces = bpe_pieces(query.cased or query.text)
    if len(ids) == 1:
        return QueryVector(space.unit[ids[0]], N_(f"the token '{pieces[0]}'"), ids[0], pieces)
    if piece is not None:
        if piece not in pieces:
            raise ValidationError(f"{piece!r} is not one of the pieces {' · '.join(pieces)}.")
        row = ids[pieces.index(piece)]
        return QueryVector(space.unit[row], N_(f"the piece '{piece}' alone"), row, pieces)
    mean = F.normalize(space.unit[torch.tensor(ids, device=space.unit.device)].mean(0), dim=0)   # (D,)
    what = N_("sentence") if query.is_sentence else N_("word")
    shown = " · ".join(pieces[:12]) + (" …" if len(pieces) > 12 else "")
    return QueryVector(mean, N_(f"mean of the {len(ids)} BPE pieces of the {what} ({shown})"), None, pieces)


def _static_query(space: Space, query: Query, piece: str | None) -> QueryVector:
    pieces = wordpieces(query.text)
    ids = [space.index[p] for p in pieces if p in space.index and not SPECIAL_RE.match(p)]
    if not ids:
        return QueryVector(None, N_("no known WordPiece token"), pieces=pieces, missing=query.words)
    if len(pieces) == 1:
        return QueryVector(space.unit[ids[0]], N_(f"the token '{pieces[0]}'"), ids[0], pieces)
    if piece is not None:
        if piece not in pieces:
            raise ValidationError(f"{piece!r} is not one of the pieces {' · '.join(pieces)}.")
        row = space.index[piece]
        return QueryVector(space.unit[row], N_(f"the piece '{piece}' alone"), row, pieces)
    mean = F.normalize(space.unit[ids].mean(0), dim=0)                         # (D,)
    what = N_("sentence") if query.is_sentence else N_("word")
    shown = " · ".join(pieces[:12]) + (" …" if len(pieces) > 12 else "")
    if len(ids) == len(pieces):
        return QueryVector(mean, N_(f"mean of the {len(ids)} WordPiece pieces of the {what} ({shown})"),
                           None, pieces)
    unknown = len(pieces) - len(ids)
    return QueryVector(mean, N_(f"mean of the {len(ids)} known WordPiece pieces of the {what} ({shown}; "
                                f"{unknown} unknown left out)"), None, pieces)


def _word_query(space: Space, query: Query) -> QueryVector:
    known = [w for w in query.words if w in space.index]
    missing = tuple(dict.fromkeys(w for w in query.words if w not in space.index))
    if not known:
        hints = suggest(space, query.words[0]) if len(query.words) == 1 else ()
        return QueryVector(None, N_("not in the vocabulary"), missing=missing, suggestions=hints)
    if len(query.words) == 1:
        row = space.index[known[0]]
        return QueryVector(space.unit[row], N_(f"the word '{known[0]}'"), row)
    rows = torch.tensor([space.index[w] for w in known], device=space.unit.device)
    mean = F.normalize(space.unit[rows].mean(0), dim=0)                        # (D,)
    return QueryVector(mean, N_(f"mean of {len(known)} word vectors (a bag of words)"), None,
                       missing=missing)


# ---------------------------------------------------------------- neighbours
@dataclass(frozen=True)
class Neighbour:
    rank: int       # 1 = nearest
    item: str       # word, token or sentence
    score: float    # cosine similarity
    row: int        # row in the space


@dataclass(frozen=True)
class Neighbours:
    items: tuple[Neighbour, ...]
    k_asked: int
    candidates: int     # eligible rows searched (after exclusions)
    search_ms: float    # wall time of the exact search

    @property
    def clamped(self) -> bool:
        return len(self.items) < self.k_asked


def _masked_scores(space: Space, vectors: torch.Tensor, exclude: Sequence[int]) -> torch.Tensor:
    unit = F.normalize(vectors.to(space.unit.device).float(), dim=-1)          # (Q, D)
    sims = unit @ space.unit.T                                                # (Q, V) cosines
    sims = sims.masked_fill(~space.eligible, -math.inf)
    if len(exclude):
        sims[:, torch.as_tensor(list(exclude), dtype=torch.long, device=sims.device)] = -math.inf
    return sims


def nearest(space: Space, vector: torch.Tensor, k: int, exclude: Sequence[int] = ()) -> Neighbours:
    """Top-``k`` eligible rows by cosine (exact: one matmul and a topk); ``exclude`` rows skipped.

    k larger than the rows left is clamped (``Neighbours.clamped`` says so).
    """
    k = check_int("k", k, 1, MAX_K)
    started = time.perf_counter()
    sims = _masked_scores(space, vector.reshape(1, -1), exclude)[0]           # (V,)
    available = int(torch.isfinite(sims).sum())
    if available == 0:
        return Neighbours((), k, 0, (time.perf_counter() - started) * 1e3)
    top = sims.topk(min(k, available))
    scores, rows = top.values.tolist(), top.indices.tolist()
    ms = (time.perf_counter() - started) * 1e3
    items = tuple(Neighbour(i + 1, space.items[r], float(s), int(r))
                  for i, (s, r) in enumerate(zip(scores, rows, strict=True)))
    return Neighbours(items, k, available, ms)


def nearest_reference(space: Space, vector: torch.Tensor, k: int,
                      exclude: Sequence[int] = ()) -> list[tuple[int, float]]:
    """Readable float64 brute force: cosine with every row, stable sort; [(row, score)]."""
    table = space.unit.double().cpu().numpy()
    query = vector.double().cpu().numpy().ravel()
    ok = space.eligible.cpu().numpy().copy()
    ok[list(exclude)] = False
    scores = table @ query / (np.linalg.norm(table, axis=1) * np.linalg.norm(query) + 1e-300)
    order = [r for r in np.argsort(-scores, kind="stable") if ok[r]]
    return [(int(r), float(scores[r])) for r in order[:k]]


def nearest_rows(space: Space, rows: torch.Tensor, k: int) -> torch.Tensor:
    """For each row in ``rows`` its ``k`` nearest other eligible rows: (Q, k) row ids."""
    sims = _masked_scores(space, space.unit[rows], ())                         # (Q, V)
    sims[torch.arange(len(rows), device=sims.device), rows] = -math.inf        # not itself
    return sims.topk(min(k, int(space.eligible.sum()) - 1), dim=1).indices


def query_neighbours(space: Space, query: Query, k: int, piece: str | None = None
                     ) -> tuple[QueryVector, Neighbours | None]:
    """The query's vector in ``space`` (:func:`query_vector`) and its ``k`` nearest rows, the
    query's own row excluded; no neighbours when the space has no vector for it."""
    qv = query_vector(space, query, piece)
    if qv.vector is None:
        return qv, None
    return qv, nearest(space, qv.vector, k, [qv.row] if qv.row is not None else [])


# ---------------------------------------------------------------- word lists and slices
@dataclass(frozen=True)
class WordList:
    words: tuple[str, ...]        # unique, in the given order, at most MAX_LIST_WORDS
    duplicates: tuple[str, ...]   # words given more than once (kept once)
    too_long: tuple[str, ...]     # entries over MAX_WORD_CHARS (dropped)
    truncated: bool               # more than MAX_LIST_WORDS unique words were given
    given: int                    # entries in the input


def parse_word_list(text) -> WordList:
    """Words separated by commas, spaces or new lines: lower-cased, de-duplicated, capped."""
    checked = check_text(text, max_chars=MAX_LIST_WORDS * (MAX_WORD_CHARS + 1), name="The word list")
    entries = [w for w in re.split(r"[\s,;]+", checked.text.lower()) if w]
    too_long = tuple(w for w in entries if len(w) > MAX_WORD_CHARS)
    counts = Counter(w for w in entries if len(w) <= MAX_WORD_CHARS)
    unique = list(counts)
    if not unique:
        raise ValidationError("The word list holds no usable words.")
    return WordList(tuple(unique[:MAX_LIST_WORDS]), tuple(w for w, c in counts.items() if c > 1),
                    too_long, len(unique) > MAX_LIST_WORDS or checked.truncated, len(entries))


@functools.lru_cache(maxsize=1)
def wiki_word_counts() -> tuple[tuple[str, int], ...]:
    """(word, count) of the Wikipedia sample, most frequent first."""
    return tuple(Counter(corpus.words(corpus.wiki_text())).most_common())


def frequent_words(n: int) -> tuple[str, ...]:
    """The ``n`` most frequent words of the Wikipedia sample."""
    n = check_int("Slice size", n, 1, MAX_LIST_WORDS)
    return tuple(w for w, _ in wiki_word_counts()[:n])


@dataclass(frozen=True)
class Slice:
    rows: tuple[int, ...]         # rows of the space, in the order of the words
    words: tuple[str, ...]        # their labels
    missing: tuple[str, ...]      # words the space cannot show as a single row


def vocab_slice(space: Space, words: Sequence[str]) -> Slice:
    """The rows of ``space`` for ``words`` (static tables: words that are one whole token; a cased
    BPE table: the token of the word after a space, as written or capitalised: "␣paris", "␣Paris")."""
    rows, found, missing = [], [], []
    eligible = space.eligible.tolist()
    for w in words:
        forms = (bpe_label(" " + w), bpe_label(" " + w[:1].upper() + w[1:])) if space.kind == "bpe" else (w,)
        r = next((space.index[f] for f in forms if f in space.index and eligible[space.index[f]]), None)
        if r is not None:
            rows.append(r)
            found.append(space.items[r])
        else:
            missing.append(w)
    return Slice(tuple(rows), tuple(found), tuple(missing))


def surface_variants(word: str, items: Sequence[str]) -> tuple[str, ...]:
    """The ``items`` that are ``word`` itself in another spelling: another case, a leading-space
    mark ("␣"), or a plural -s / -es ("␣Kings" for "king"). A cased BPE table keeps these as
    separate rows, so they crowd its neighbour lists; an uncased WordPiece table has no case forms."""
    def base(text: str) -> str:
        return text.lstrip("␣").lower()

    stem = base(word)
    forms = {stem, stem + "s", stem + "es"}
    forms |= {stem[:-1]} if stem.endswith("s") else set()
    forms |= {stem[:-2]} if stem.endswith("es") else set()
    return tuple(item for item in items if base(item) in forms - {""})


# ---------------------------------------------------------------- projections
@dataclass(frozen=True)
class ProjectionConfig:
    method: str = "pca"          # "pca" | "tsne" | "umap"
    dims: int = 2                # 2 or 3
    perplexity: float = 30.0     # t-SNE: effective number of neighbours
    n_neighbors: int = 15        # UMAP: size of the local neighbourhood
    min_dist: float = 0.1        # UMAP: how tightly points may pack
    seed: int = 0                # t-SNE/UMAP initialisation

    def checked(self) -> ProjectionConfig:
        check_choice("Projection", self.method, ("pca", "tsne", "umap"))
        check_int("Dimensions", self.dims, 2, 3)
        check_float("Perplexity", self.perplexity, 2.0, 100.0)
        check_int("UMAP neighbours", self.n_neighbors, 2, 200)
        check_float("UMAP min_dist", self.min_dist, 0.0, 1.0)
        check_int("Seed", self.seed, 0, 2**31 - 1)
        return self


@dataclass(frozen=True)
class Projection:
    coords: np.ndarray                      # (N, dims) float32
    method: str
    explained: tuple[float, ...] | None     # PCA: share of variance per component
    seconds: float
    note: str = ""                          # parameters adjusted to the number of points


def pca(vectors: torch.Tensor, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact PCA through the (D, D) covariance: coordinates (N, dims) and variance shares (dims,).

    One (D, N) x (N, D) product and an eigendecomposition of a 384 x 384
    matrix: tens of milliseconds for 30 K rows. Signs are fixed so each
    component's largest-magnitude coordinate is positive.
    """
    x = vectors.float()
    centred = x - x.mean(0, keepdim=True)                                     # (N, D)
    evals, evecs = torch.linalg.eigh(centred.T @ centred)                     # ascending, (D,), (D, D)
    top = evecs[:, -dims:].flip(1)                                            # (D, dims) largest first
    share = evals[-dims:].flip(0).clamp(min=0) / evals.clamp(min=0).sum().clamp(min=1e-30)
    return _fix_signs(centred @ top), share                                   # (N, dims), (dims,)


def pca_reference(vectors: torch.Tensor, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Readable float64 PCA by SVD of the centred data (Jolliffe & Cadima 2016 §2)."""
    x = vectors.double()
    centred = x - x.mean(0, keepdim=True)                                     # (N, D)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)                 # s descending
    share = s[:dims] ** 2 / (s**2).sum()
    return _fix_signs(centred @ vh[:dims].T), share


def _fix_signs(coords: torch.Tensor) -> torch.Tensor:
    idx = coords.abs().argmax(0)                                              # (dims,)
    signs = torch.sign(coords[idx, torch.arange(coords.shape[1])])
    return coords * torch.where(signs == 0, torch.ones_like(signs), signs)


def project(vectors: torch.Tensor, config: ProjectionConfig, progress: Progress | None = None,
            device: str = "cpu", on_wait=None) -> Projection:
    """2-D/3-D coordinates of the rows of ``vectors`` (unit vectors: cosine geometry).

    PCA is instant; t-SNE (sklearn, Barnes-Hut, cosine) and UMAP (umap-learn,
    cosine) run on the CPU inside the device queue with a time limit.
    """
    config = config.checked()
    n = int(vectors.shape[0])
    cap = MAX_POINTS[config.method]
    if n > cap:
        raise ValidationError(f"{config.method.upper()} takes at most {cap:,} points (got {n:,}).")
    if n < config.dims + 2:
        raise ValidationError(f"Need at least {config.dims + 2} points to project (got {n}).")
    started = time.perf_counter()
    if config.method == "pca":
        coords, share = pca(vectors.float().cpu(), config.dims)
        return Projection(coords.numpy().astype(np.float32), "pca", tuple(share.tolist()),
                          time.perf_counter() - started)

    with heavy_job(f"{config.method} projection", "cpu", time_limit_s=TIME_LIMIT_S, on_wait=on_wait):
        if progress:
            progress(0.05, N_(f"Running {config.method.upper()} on {n:,} points…"))
        x = vectors.float().cpu().numpy()
        with threadpool_limits(PROJECTION_THREADS):
            coords, note = (_tsne(x, config) if config.method == "tsne" else _umap(x, config))
    if progress:
        progress(1.0, N_(f"{config.method.upper()} done"))
    return Projection(coords.astype(np.float32), config.method, None,
                      time.perf_counter() - started, note)


def neighbour_overlap(vectors: torch.Tensor | np.ndarray, coords: np.ndarray, k: int = 10,
                      max_queries: int = 2_000) -> float:
    """How faithful a projection is locally: the mean share of each point's ``k``
    nearest neighbours by cosine in the original space that are also among its
    ``k`` nearest by Euclidean distance in the projection (1 = all kept).
    Averaged over up to ``max_queries`` evenly spaced points."""
    n = int(vectors.shape[0])
    k = min(check_int("k", k, 1, MAX_K), n - 1)
    if k < 1:
        return 1.0
    queries = torch.arange(0, n, max(1, n // max_queries))[:max_queries]          # (Q,)
    unit = F.normalize(torch.as_tensor(vectors).float().cpu(), dim=1)             # (N, D)
    sims = unit[queries] @ unit.T                                                 # (Q, N)
    flat = torch.as_tensor(np.asarray(coords), dtype=torch.float32)               # (N, d)
    dists = torch.cdist(flat[queries], flat)                                      # (Q, N)
    rows = torch.arange(len(queries))
    sims[rows, queries] = -math.inf
    dists[rows, queries] = math.inf
    orig = sims.topk(k, dim=1).indices                                            # (Q, k)
    proj = dists.topk(k, dim=1, largest=False).indices                            # (Q, k)
    hits = (orig[:, :, None] == proj[:, None, :]).any(-1).float()                 # (Q, k)
    return float(hits.mean())


@dataclass(frozen=True)
class ProjectionPoints:
    vectors: np.ndarray            # (N, D) float32 unit rows to project
    labels: tuple[str, ...]        # one per row
    roles: tuple[str, ...]         # "slice" | "neighbour" | "query"
    missing: tuple[str, ...]       # slice words that are not a single row of the space


def projection_points(space: Space, words: Sequence[str], query: Query | None = None, k: int = 10,
                      piece: str | None = None) -> ProjectionPoints:
    """What a projection draws: the rows of the slice ``words``, the query's ``k`` exact
    neighbours (added when not in the slice) and the query itself (its row, or an extra point)."""
    sl = vocab_slice(space, words)
    rows, roles = list(sl.rows), ["slice"] * len(sl.rows)
    qv, neighbours = query_neighbours(space, query, k, piece) if query is not None else (None, None)
    index = {r: i for i, r in enumerate(rows)}
    for n in neighbours.items if neighbours is not None else ():
        if n.row in index:
            roles[index[n.row]] = "neighbour"
        else:
            index[n.row] = len(rows)
            rows.append(n.row)
            roles.append("neighbour")
    labels = [space.items[r] for r in rows]
    vectors = space.unit[rows].float().cpu().numpy()                                # (N, D)
    if qv is not None and qv.vector is not None:
        if qv.row is not None and qv.row in index:
            roles[index[qv.row]] = "query"
        else:
            vectors = np.vstack([vectors, qv.vector.float().cpu().numpy()[None]])    # (N + 1, D)
            text = query.cased if space.kind == "bpe" and query.cased else query.text
            shown = text if len(text) <= 40 else text[:39] + "…"
            labels.append(N_(f"{shown} (query)"))
            roles.append("query")
    return ProjectionPoints(np.asarray(vectors, dtype=np.float32), tuple(labels), tuple(roles), sl.missing)


@dataclass(frozen=True)
class ProjectionView:
    projection: Projection
    kept: float                   # neighbour_overlap at k = 10 (or N - 1): local faithfulness


def projection_view(points: ProjectionPoints, config: ProjectionConfig, progress: Progress | None = None,
                    on_wait=None) -> ProjectionView:
    """:func:`project` the points and measure how many true neighbours the picture keeps."""
    projection = project(torch.as_tensor(points.vectors), config, progress, on_wait=on_wait)
    kept = neighbour_overlap(points.vectors, projection.coords, k=min(10, len(points.vectors) - 1))
    return ProjectionView(projection, kept)


def _tsne(x: np.ndarray, config: ProjectionConfig) -> tuple[np.ndarray, str]:
    from sklearn.manifold import TSNE  # start-up cost: scikit-learn takes ~1.2 s to import

    perplexity = min(config.perplexity, max(2.0, (len(x) - 1) / 3))
    note = (N_(f"perplexity lowered to {perplexity:.1f} for {len(x)} points")
            if perplexity < config.perplexity else "")
    model = TSNE(n_components=config.dims, perplexity=perplexity, metric="cosine", init="pca",
                 random_state=config.seed, max_iter=750)
    return model.fit_transform(x), note


def _umap(x: np.ndarray, config: ProjectionConfig) -> tuple[np.ndarray, str]:
    import umap  # start-up cost: umap takes ~4 s to import (numba)

    k = min(config.n_neighbors, len(x) - 1)
    note = N_(f"n_neighbors lowered to {k} for {len(x)} points") if k < config.n_neighbors else ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # "n_jobs overridden by random_state": expected
        model = umap.UMAP(n_components=config.dims, n_neighbors=k, min_dist=config.min_dist,
                          metric="cosine", random_state=config.seed, init="spectral" if len(x) > k + 1 else "random")
        return model.fit_transform(x), note


# ---------------------------------------------------------------- kNN graph
@dataclass(frozen=True)
class GraphConfig:
    ring: int = 12               # the query's nearest items (first ring)
    second: int = 4              # each first-ring item's own nearest items (second ring)
    edges_per_node: int = 4      # kNN edges from each node, within the node set
    method: str = "louvain"      # community detection: "louvain" | "greedy"
    seed: int = 0                # Louvain and the spring layout

    def checked(self) -> GraphConfig:
        check_int("Neighbours of the query", self.ring, 2, MAX_GRAPH_RING)
        check_int("Neighbours of each neighbour", self.second, 0, 10)
        check_int("Edges per node", self.edges_per_node, 1, 10)
        check_choice("Community method", self.method, ("louvain", "greedy"))
        return self


@dataclass
class NeighbourGraph:
    graph: object                           # networkx.Graph; node attrs ring, score, community
    communities: list[frozenset[str]]       # largest first
    positions: dict[str, tuple[float, float]]
    modularity: float
    query: str                              # the query's node name


def neighbour_graph(space: Space, qv: QueryVector, query_label: str, config: GraphConfig) -> NeighbourGraph:
    """The kNN graph around a query: first and second rings of exact neighbours, each node
    linked to its ``edges_per_node`` most similar nodes (weight = cosine), communities coloured."""
    import networkx as nx  # start-up cost: networkx takes ~0.15 s to import

    config = config.checked()
    if qv.vector is None:
        raise ValidationError("The query has no vector in this space.")
    ring1 = [n.row for n in nearest(space, qv.vector, config.ring,
                                    exclude=[qv.row] if qv.row is not None else ()).items]
    rows = list(dict.fromkeys(ring1))
    if config.second and ring1:
        second = nearest_rows(space, torch.tensor(ring1, device=space.unit.device), config.second)
        rows += [r for r in dict.fromkeys(second.flatten().tolist()) if r not in rows and r != qv.row]
    names = [space.items[r] for r in rows]
    names = [N_(f"{query_label} (query)") if query_label in names else query_label, *names]
    vecs = torch.cat([qv.vector[None].to(space.unit.device), space.unit[rows]])    # (N, D)
    sims = (vecs @ vecs.T).cpu().double()                                     # (N, N)
    sims.fill_diagonal_(-math.inf)
    graph = nx.Graph()
    to_query = sims[0].tolist()
    for i, name in enumerate(names):
        ring = 0 if i == 0 else (1 if rows[i - 1] in ring1 else 2)
        graph.add_node(name, ring=ring, score=1.0 if i == 0 else float(to_query[i]))
    top = sims.topk(min(config.edges_per_node, len(names) - 1), dim=1)
    for i in range(len(names)):
        for s, j in zip(top.values[i].tolist(), top.indices[i].tolist(), strict=True):
            graph.add_edge(names[i], names[j], weight=max(float(s), 1e-6))
    return _with_communities(graph, names[0], config)


def _with_communities(graph, query: str, config: GraphConfig) -> NeighbourGraph:
    import networkx as nx  # start-up cost: networkx takes ~0.15 s to import

    if config.method == "louvain":
        found = nx.community.louvain_communities(graph, weight="weight", seed=config.seed)
    else:
        found = nx.community.greedy_modularity_communities(graph, weight="weight")
    communities = sorted((frozenset(c) for c in found), key=lambda c: (-len(c), sorted(c)))
    for i, members in enumerate(communities):
        for node in members:
            graph.nodes[node]["community"] = i
    modularity = nx.community.modularity(graph, communities, weight="weight")
    pos = nx.spring_layout(graph, weight="weight", seed=config.seed)
    positions = {n: (float(p[0]), float(p[1])) for n, p in pos.items()}
    return NeighbourGraph(graph, communities, positions, float(modularity), query)


def query_graph(space: Space, query: Query, config: GraphConfig, piece: str | None = None) -> NeighbourGraph:
    """:func:`neighbour_graph` around the query's vector (a cased BPE table labels it as typed)."""
    qv = query_vector(space, query, piece)
    label = query.cased if space.kind == "bpe" and query.cased else query.text
    return neighbour_graph(space, qv, label, config)


# ---------------------------------------------------------------- analogies
@dataclass(frozen=True)
class Analogy:
    answers: tuple[Neighbour, ...]       # best candidates for a − b + c
    expected: str | None                 # the answer the user expects
    expected_rank: int | None            # its rank among the candidates (1 = top); None if unknown
    expected_score: float | None         # its cosine with a − b + c
    how: tuple[str, ...]                 # how each of a, b, c was looked up
    missing: tuple[str, ...] = ()        # input words the space does not know
    suggestions: dict[str, tuple[str, ...]] = field(default_factory=dict)


def analogy(space: Space, a: str, b: str, c: str, *, k: int = 10, expected: str | None = None,
            exclude_inputs: bool = True) -> Analogy:
    """a − b + c by the vector offset (3CosAdd, Mikolov et al. 2013 §4): the rows most
    similar to unit(a) − unit(b) + unit(c), with the inputs excluded unless asked not to."""
    qvs, missing, hints = [], [], {}
    for word in (a, b, c):
        q = parse_query(word)
        if q.is_sentence:
            raise ValidationError(f"Analogy terms are single words; got {q.text!r}.")
        qv = query_vector(space, q)
        if qv.vector is None:
            missing.append(q.text)
            hints[q.text] = qv.suggestions
        qvs.append(qv)
    if missing:
        return Analogy((), expected, None, None, tuple(q.how for q in qvs), tuple(missing), hints)
    target = F.normalize(qvs[0].vector - qvs[1].vector + qvs[2].vector, dim=0)   # (D,)
    exclude = [q.row for q in qvs if q.row is not None] if exclude_inputs else []
    answers = nearest(space, target, k, exclude)
    rank, score = None, None
    if expected:
        exp = parse_query(expected)
        qv = query_vector(space, exp)
        if qv.row is not None and qv.row not in exclude and bool(space.eligible[qv.row]):
            sims = _masked_scores(space, target[None], exclude)[0]           # (V,)
            score = float(sims[qv.row])
            rank = int((sims > sims[qv.row]).sum()) + 1
    return Analogy(answers.items, expected or None, rank, score, tuple(q.how for q in qvs))


@dataclass(frozen=True)
class AnalogyScore:
    correct: int                                   # questions answered right (top-1)
    covered: int                                   # questions with all four words known
    total: int                                     # questions in the set
    sections: tuple[tuple[str, int, int], ...]     # (section, correct, covered)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.covered if self.covered else None

    @property
    def coverage(self) -> float:
        return self.covered / self.total if self.total else 0.0


def load_questions(path: str | Path) -> tuple[tuple[str, tuple[str, str, str, str]], ...]:
    """questions-words.txt as (section, (w1, w2, w3, w4)), lower-cased (w1:w2 :: w3:w4)."""
    out, section = [], ""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif len(parts := line.lower().split()) == 4:
            out.append((section, tuple(parts)))
    return tuple(out)


def analogy_accuracy(space: Space, questions, restrict: set[str] | None = None,
                     batch: int = 1024) -> AnalogyScore:
    """Top-1 accuracy of 3CosAdd on analogy questions, the way gensim's
    ``evaluate_word_analogies`` scores them: w2 − w1 + w3, the three excluded;
    questions with a word outside ``restrict`` (or the space) are not covered."""
    usable = [(s, q) for s, q in questions
              if all(w in space.index and (restrict is None or w in restrict) for w in q)]
    correct_by = Counter()
    covered_by = Counter(s for s, _ in usable)
    dev = space.unit.device
    for start in range(0, len(usable), batch):
        chunk = usable[start:start + batch]
        ids = torch.tensor([[space.index[w] for w in q] for _, q in chunk], device=dev)  # (Q, 4)
        target = space.unit[ids[:, 1]] - space.unit[ids[:, 0]] + space.unit[ids[:, 2]]   # (Q, D)
        sims = F.normalize(target, dim=1) @ space.unit.T                      # (Q, V)
        sims.scatter_(1, ids[:, :3], -math.inf)
        hit = (sims.argmax(1) == ids[:, 3]).tolist()
        correct_by.update(s for (s, _), h in zip(chunk, hit, strict=True) if h)
    sections = tuple((s, correct_by[s], covered_by[s]) for s in dict.fromkeys(s for s, _ in questions))
    return AnalogyScore(sum(correct_by.values()), len(usable), len(questions), sections)


def shared_analogy_scores(spaces: Sequence[Space], questions) -> list[AnalogyScore]:
    """:func:`analogy_accuracy` of each space on the questions whose words all spaces know
    (a fair comparison: the same questions for every model)."""
    shared = set.intersection(*(set(s.items) for s in spaces))
    return [analogy_accuracy(s, questions, shared) for s in spaces]


# ---------------------------------------------------------------- sentences
@dataclass(frozen=True)
class SentenceList:
    sentences: tuple[str, ...]    # unique, non-empty, each at most MAX_SENTENCE_CHARS
    duplicates: int               # lines dropped as repeats
    cut: int                      # sentences cut at MAX_SENTENCE_CHARS
    truncated: bool               # more than MAX_SENTENCES were given


def parse_sentences(text) -> SentenceList:
    """One sentence per line; blank lines skipped, repeats dropped, long ones cut."""
    checked = check_text(text, max_chars=MAX_SENTENCES * MAX_SENTENCE_CHARS * 4, name="The sentences")
    lines = [" ".join(line.split()) for line in checked.text.splitlines()]
    lines = [line for line in lines if line]
    cut = sum(len(line) > MAX_SENTENCE_CHARS for line in lines)
    unique = list(dict.fromkeys(line[:MAX_SENTENCE_CHARS] for line in lines))
    if len(unique) < 2:
        raise ValidationError("Give at least two different sentences, one per line.")
    return SentenceList(tuple(unique[:MAX_SENTENCES]), len(lines) - len(unique), cut,
                        len(unique) > MAX_SENTENCES or checked.truncated)


def similarity_matrix(vectors: torch.Tensor) -> np.ndarray:
    """Cosine similarity of every pair of rows: (N, N) float64."""
    unit = F.normalize(vectors.double(), dim=1)                               # (N, D)
    return (unit @ unit.T).cpu().numpy()


def static_sentence_vectors(space: Space, sentences: Sequence[str]) -> torch.Tensor:
    """Each sentence as the mean of its WordPiece pieces' static vectors (no context): (N, D)."""
    out = []
    for sentence in sentences:
        qv = _static_query(space, parse_query(sentence), None)
        out.append(qv.vector if qv.vector is not None else torch.zeros(space.dim, device=space.unit.device))
    return torch.stack(out)


def sentence_matrices(sentences: Sequence[str], device: str = "cpu", static: Space | None = None,
                      on_wait=None) -> dict[str, np.ndarray]:
    """Cosine similarity of every pair of sentences: "contextual" from MiniLM's sentence
    embeddings (one heavy job on the device queue) and, with a static WordPiece ``static`` table,
    "static" from the mean of each sentence's pieces (no context). (N, N) float64 each."""
    with heavy_job("MiniLM sentence embeddings", device, time_limit_s=TIME_LIMIT_S, on_wait=on_wait):
        out = {"contextual": similarity_matrix(encode_texts(list(sentences), device))}
    if static is not None:
        if static.kind != "wordpiece":
            raise ValidationError("The bag of pieces needs MiniLM's static WordPiece table.")
        out["static"] = similarity_matrix(static_sentence_vectors(static, sentences))
    return out


def wiki_sentences(n: int, min_words: int = 8, max_words: int = 40) -> tuple[str, ...]:
    """``n`` Wikipedia sentences spread evenly over the sample (8-40 words each)."""
    n = check_int("Sentence pool", n, 1, MAX_POOL)
    pool = [s for a in corpus.wiki_articles() for s in re.split(r"(?<=[.!?])\s+", a.text)
            if min_words <= len(s.split()) <= max_words and len(s) <= MAX_SENTENCE_CHARS]
    step = max(1, len(pool) // n)
    return tuple(dict.fromkeys(pool[::step]))[:n]
