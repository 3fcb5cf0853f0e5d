"""Byte-level BPE from scratch: train on a corpus, replay the merges, encode and decode.

Byte pair encoding (Sennrich, Haddow & Birch 2016, "Neural Machine Translation
of Rare Words with Subword Units", section 3.2, Algorithm 1) on UTF-8 bytes, as
GPT-2 does it (Radford et al. 2019, section 2.2): the text is first split with a
regex (GPT-2's or GPT-4's pattern, from tiktoken's openai_public.py) so merges
never cross a word/number/punctuation boundary; the 256 byte values are the
starting vocabulary; each step merges the most frequent adjacent pair into a
new token. The layout follows Karpathy's minbpe (RegexTokenizer).

Two trainers, same result:
- :func:`train` (the fast path): pair counts are kept up to date incrementally,
  touching only the words that contain the merged pair, with a lazy max-heap
  to find the next pair (the approach of HF tokenizers' BpeTrainer), instead of
  recounting every pair of the corpus after each merge.
- :func:`train_reference`: the textbook loop that recounts all pairs per merge
  (slow, readable; tests check both learn the same merges).
Ties between pairs of equal count go to the smallest (left id, right id).
:func:`hf_compare` trains HF ``tokenizers``' BpeTrainer on the same text with
the same pre-split and vocabulary size and compares compression.

Does not handle: special tokens, byte fallback / dropout, or pairs that would
cross pre-split chunk boundaries (by design).
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise

import regex
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from core.data import corpus
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import (
    ValidationError,
    check_choice,
    check_int,
    check_text,
    decode_upload,
)
from core.tokenizers import Token, byte_level_decoder, byte_spans_to_chars

MAX_CORPUS_CHARS = 3_000_000   # training text cap (the Wikipedia sample is ~2.5 MB)
MAX_MERGES = 5_000             # merges per training run
MAX_ENCODE_CHARS = 200_000     # encode / segment with a trained tokenizer
MAX_HF_COMPARE_CHARS = 3_000_000
TIME_LIMIT_S = 120.0           # a training run stops past this (scheduler time limit)

PATTERNS = {  # pre-split regexes (tiktoken_ext/openai_public.py)
    "gpt4": (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
             r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""),
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",
    "none": None,   # no pre-split: the whole text is one chunk per line
}
PATTERN_LABELS = {"gpt4": N_("GPT-4 (cl100k_base) regex"), "gpt2": N_("GPT-2 regex"),
                  "none": N_("no pre-split (lines)")}

Progress = Callable[[float, str], None]
Pair = tuple[int, int]


@dataclass(frozen=True)
class BPEConfig:
    n_merges: int = 500      # merges to learn; vocabulary = 256 bytes + n_merges
    pattern: str = "gpt4"    # pre-split regex: "gpt4", "gpt2" or "none"
    min_count: int = 2       # stop early when the best pair occurs fewer times


@dataclass(frozen=True)
class MergeStep:
    rank: int          # 0 for the first merge
    pair: Pair         # the two token ids merged
    new_id: int        # 256 + rank
    count: int         # occurrences of the pair in the corpus when it was merged
    token: bytes       # bytes of the new token


@dataclass(frozen=True)
class TrainedBPE:
    config: BPEConfig
    steps: tuple[MergeStep, ...]      # merges in order (may be fewer than asked: see stopped_early)
    corpus_bytes: int                 # UTF-8 bytes of the training text
    unique_chunks: int                # distinct pre-split chunks ("words")
    tokens_after: tuple[int, ...]     # corpus tokens after k merges, k = 0..len(steps)
    seconds: float                    # training wall time
    stopped_early: str | None         # why fewer merges than asked (None: all done)

    @property
    def vocab(self) -> tuple[bytes, ...]:
        """id -> bytes for all 256 + len(steps) tokens."""
        return tuple(bytes([b]) for b in range(256)) + tuple(s.token for s in self.steps)

    @property
    def merges(self) -> dict[Pair, int]:
        """pair -> merged id."""
        return {s.pair: s.new_id for s in self.steps}


# ---------------------------------------------------------------- input and pre-split
def check_config(config: BPEConfig) -> BPEConfig:
    check_int("Number of merges", config.n_merges, 1, MAX_MERGES)
    check_choice("Pre-split pattern", config.pattern, PATTERNS)
    check_int("Minimum pair count", config.min_count, 1, 1_000_000)
    return config


def split_chunks(text: str, pattern: str) -> list[str]:
    """The pre-split chunks of ``text`` (no chunk is ever merged with its neighbour)."""
    regex_src = PATTERNS[check_choice("Pre-split pattern", pattern, PATTERNS)]
    if regex_src is None:
        return text.splitlines(keepends=True)

    return regex.findall(_compiled(regex_src), text)


_COMPILED: dict[str, object] = {}


def _compiled(src: str):
    if src not in _COMPILED:
        _COMPILED[src] = regex.compile(src)
    return _COMPILED[src]


def _word_counts(text: str, pattern: str) -> tuple[list[list[int]], list[int]]:
    """Distinct chunks as byte-id lists, and how often each occurs."""
    counts = Counter(split_chunks(text, pattern))
    words = [list(chunk.encode("utf-8")) for chunk in counts]
    return words, list(counts.values())


def _checked_corpus(text) -> str:
    checked = check_text(text, max_chars=MAX_CORPUS_CHARS, name="Training text")
    if checked.truncated:
        raise ValidationError(f"Training text is {checked.original_chars:,} characters; "
                              f"the limit is {MAX_CORPUS_CHARS:,}.")
    return checked.text


# ---------------------------------------------------------------- fast trainer
class _PairIndex:
    """Pair counts, which words hold each pair, and a lazy max-heap over counts."""

    def __init__(self, words: list[list[int]], freqs: list[int]) -> None:
        self.counts: Counter[Pair] = Counter()
        self.where: dict[Pair, set[int]] = {}
        for wi, word in enumerate(words):
            self.add_word(wi, word, freqs[wi])
        self.heap = [(-c, p) for p, c in self.counts.items()]
        heapq.heapify(self.heap)

    def add_word(self, wi: int, word: list[int], freq: int) -> None:
        for pair in pairwise(word):
            self.counts[pair] += freq
            self.where.setdefault(pair, set()).add(wi)

    def pop_best(self) -> tuple[Pair, int] | None:
        """The pair with the highest current count (ties: smallest pair), or None."""
        while self.heap:
            neg, pair = heapq.heappop(self.heap)
            current = self.counts.get(pair, 0)
            if current == -neg and current > 0:
                return pair, current
            if 0 < current < -neg:   # stale entry (count went down): requeue at its true count
                heapq.heappush(self.heap, (-current, pair))
        return None


def _merge_word(word: list[int], pair: Pair, new_id: int) -> tuple[list[int], int]:
    """``word`` with every left-to-right occurrence of ``pair`` replaced; and how many."""
    out, i, n, a, b = [], 0, len(word), pair[0], pair[1]
    while i < n:
        if i < n - 1 and word[i] == a and word[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out, n - len(out)


def _apply_merge(index: _PairIndex, words, freqs, pair: Pair, new_id: int) -> int:
    """Merge ``pair`` in the words that contain it; update counts. Returns tokens saved."""
    counts, where, saved, grown = index.counts, index.where, 0, set()
    for wi in where.pop(pair, ()):
        old = words[wi]
        new, n_merged = _merge_word(old, pair, new_id)
        if not n_merged:
            continue
        freq, before, after = freqs[wi], list(pairwise(old)), list(pairwise(new))
        for p in before:
            counts[p] -= freq
        for p in after:
            counts[p] += freq
        for p in set(before).difference(after):          # pairs this word no longer has
            if p != pair:
                where[p].discard(wi)
        for p in after:
            if new_id in p:                               # only pairs with the new id are new (or grow)
                where.setdefault(p, set()).add(wi)
                grown.add(p)
        words[wi] = new
        saved += n_merged * freq
    counts.pop(pair, None)
    for p in grown:
        heapq.heappush(index.heap, (-counts[p], p))
    return saved


def train(text: str, config: BPEConfig = BPEConfig(), *, progress: Progress | None = None,
          on_wait=None, device: str = "cpu") -> TrainedBPE:
    """Learn ``config.n_merges`` merges on ``text`` (incremental pair counts; see module doc)."""
    config, text = check_config(config), _checked_corpus(text)
    started = time.perf_counter()
    with heavy_job("BPE training", device, time_limit_s=TIME_LIMIT_S, on_wait=on_wait) as job:
        words, freqs = _word_counts(text, config.pattern)
        index = _PairIndex(words, freqs)
        vocab = [bytes([b]) for b in range(256)]
        total = sum(len(w) * f for w, f in zip(words, freqs, strict=True))
        steps, tokens_after, stopped = [], [total], None
        for rank in range(config.n_merges):
            best = index.pop_best()
            if best is None or best[1] < config.min_count:
                stopped = (N_("no pair left to merge") if best is None
                           else N_(f"best pair occurs < {config.min_count} times"))
                break
            pair, count = best
            new_id = 256 + rank
            vocab.append(vocab[pair[0]] + vocab[pair[1]])
            tokens_after.append(tokens_after[-1] - _apply_merge(index, words, freqs, pair, new_id))
            steps.append(MergeStep(rank, pair, new_id, count, vocab[-1]))
            if rank % 25 == 0:
                job.check()
                if progress:
                    progress((rank + 1) / config.n_merges, N_(f"merge {rank + 1:,} / {config.n_merges:,}"))
    if progress:
        progress(1.0, N_(f"{len(steps):,} merges learned"))
    return TrainedBPE(config, tuple(steps), len(text.encode("utf-8")), len(words), tuple(tokens_after),
                      time.perf_counter() - started, stopped)


# ---------------------------------------------------------------- reference trainer
def train_reference(text: str, config: BPEConfig = BPEConfig()) -> list[MergeStep]:
    """The textbook loop: recount every pair of every word after each merge (slow; for tests)."""
    config = check_config(config)
    words, freqs = _word_counts(_checked_corpus(text), config.pattern)
    vocab = [bytes([b]) for b in range(256)]
    steps = []
    for rank in range(config.n_merges):
        counts: Counter[Pair] = Counter()
        for word, freq in zip(words, freqs, strict=True):
            for pair in pairwise(word):
                counts[pair] += freq
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        if counts[pair] < config.min_count:
            break
        vocab.append(vocab[pair[0]] + vocab[pair[1]])
        steps.append(MergeStep(rank, pair, 256 + rank, counts[pair], vocab[-1]))
        words = [_merge_word(w, pair, 256 + rank)[0] for w in words]
    return steps


# ---------------------------------------------------------------- encode / decode
def _encode_chunk(data: bytes, ranks: dict[Pair, int], limit: int) -> list[int]:
    """Apply merges of rank < ``limit`` to one chunk, lowest rank first (as GPT-2 encodes)."""
    ids = list(data)
    while len(ids) > 1:
        best, best_rank = None, limit
        for pair in pairwise(ids):
            r = ranks.get(pair)
            if r is not None and r < best_rank:
                best, best_rank = pair, r
        if best is None:
            break
        ids = _merge_word(ids, best, 256 + best_rank)[0]
    return ids


def encode(model: TrainedBPE, text: str, n_merges: int | None = None) -> list[int]:
    """Token ids of ``text`` using the first ``n_merges`` merges (all by default)."""
    n = len(model.steps) if n_merges is None else check_int("Merges to use", n_merges, 0, len(model.steps))
    checked = check_text(text, max_chars=MAX_ENCODE_CHARS, allow_empty=True)
    if checked.truncated:
        raise ValidationError(f"Text is {checked.original_chars:,} characters; the limit is {MAX_ENCODE_CHARS:,}.")
    return _encode_text(model, checked.text, n)


def _encode_text(model: TrainedBPE, text: str, n: int) -> list[int]:
    """Pre-split, then merge each distinct chunk once (chunks repeat a lot in real text)."""
    ranks = {s.pair: s.rank for s in model.steps[:n]}
    cache: dict[str, list[int]] = {}
    out: list[int] = []
    for chunk in split_chunks(text, model.config.pattern):
        ids = cache.get(chunk)
        if ids is None:
            ids = cache[chunk] = _encode_chunk(chunk.encode("utf-8"), ranks, n)
        out.extend(ids)
    return out


def decode_bytes(model: TrainedBPE, ids: Iterable[int]) -> bytes:
    """The bytes of ``ids`` (exactly the encoded text's UTF-8)."""
    vocab = model.vocab
    try:
        return b"".join(vocab[i] for i in ids)
    except (IndexError, TypeError):
        raise ValidationError(f"Token ids must be whole numbers in [0, {len(vocab) - 1}].") from None


def decode(model: TrainedBPE, ids: Iterable[int]) -> str:
    """Text of ``ids`` (a cut inside a UTF-8 character shows as U+FFFD)."""
    return decode_bytes(model, ids).decode("utf-8", errors="replace")


def segment(model: TrainedBPE, text: str, n_merges: int | None = None) -> list[bytes]:
    """``text`` cut into token byte strings after ``n_merges`` merges (for the replay view)."""
    vocab = model.vocab
    return [vocab[i] for i in encode(model, text, n_merges)]


def compression_curve(model: TrainedBPE, points: int = 200) -> list[tuple[int, int, float]]:
    """(merges, vocabulary size, corpus bytes per token) at up to ``points`` evenly spaced steps."""
    n = len(model.steps)
    step = max(1, n // max(points, 1))
    ks = sorted(set(range(0, n + 1, step)) | {n})
    return [(k, 256 + k, model.corpus_bytes / max(model.tokens_after[k], 1)) for k in ks]


# ---------------------------------------------------------------- cross-check against HF tokenizers
@dataclass(frozen=True)
class HFComparison:
    vocab_size: int                 # 256 + merges, the same for both
    ours_merges: int                # merges our trainer learned
    hf_merges: int                  # merges HF's BpeTrainer learned
    ours_bytes_per_token: float     # on the training text, encoded with our merges
    hf_bytes_per_token: float       # on the same text, encoded with HF's tokenizer
    shared_tokens: int              # learned tokens (as bytes) that both vocabularies hold
    hf_seconds: float               # HF training wall time


def hf_tokenizer(model: TrainedBPE):
    """An HF ``tokenizers`` BPE tokenizer (untrained) with the same byte-level pre-split as ``model``."""
    tok = Tokenizer(models.BPE())
    steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    src = PATTERNS[model.config.pattern]
    if src is not None:
        steps.insert(0, pre_tokenizers.Split(Regex(src), behavior="isolated"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    return tok


def hf_compare(text: str, model: TrainedBPE) -> HFComparison:
    """Train HF's BpeTrainer on ``text`` to ``model``'s vocabulary size; compare compression."""
    text = _checked_corpus(text)
    if len(text) > MAX_HF_COMPARE_CHARS:
        raise ValidationError(f"At most {MAX_HF_COMPARE_CHARS:,} characters for the comparison.")
    size = 256 + len(model.steps)
    tok = hf_tokenizer(model)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size, min_frequency=model.config.min_count, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    lines = text.splitlines(keepends=True)
    started = time.perf_counter()
    tok.train_from_iterator(lines, trainer=trainer)
    hf_seconds = time.perf_counter() - started
    hf_tokens = sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False))
    ours_tokens = len(encode_long(model, text))
    hf_vocab = _hf_learned_tokens(tok)
    ours_vocab = {s.token for s in model.steps}
    n_bytes = len(text.encode("utf-8"))
    return HFComparison(size, len(model.steps), len(hf_vocab), n_bytes / max(ours_tokens, 1),
                        n_bytes / max(hf_tokens, 1), len(ours_vocab & hf_vocab), hf_seconds)


def _hf_learned_tokens(tok) -> set[bytes]:
    """HF's learned (multi-byte) tokens as raw bytes."""
    to_bytes = byte_level_decoder()
    return {b for b in (to_bytes(t) for t in tok.get_vocab()) if len(b) > 1}


def encode_long(model: TrainedBPE, text: str) -> list[int]:
    """Encode a training-sized text (up to MAX_CORPUS_CHARS) with all merges, line by line."""
    return _encode_text(model, _checked_corpus(text), len(model.steps))


# ---------------------------------------------------------------- corpora and the replay view
CORPORA = {"wiki": "Wikipedia sample (gensim test data)", "lee": "Lee news corpus (gensim test data)"}


def load_corpus(kind: str, max_chars: int) -> str:
    """Training text shipped with gensim: the Wikipedia sample or the Lee news corpus, cut to ``max_chars``."""
    kind = check_choice("Corpus", kind, CORPORA)
    max_chars = check_int("Corpus size", max_chars, 1_000, MAX_CORPUS_CHARS)
    text = corpus.wiki_text() if kind == "wiki" else "\n".join(corpus.lee_texts())
    return text[:max_chars]


def segment_tokens(model: TrainedBPE, text: str, n_merges: int | None = None):
    """``text`` after ``n_merges`` merges as core.tokenizers.Token objects (ids, bytes, char spans)."""
    ids = encode(model, text, n_merges)
    vocab = model.vocab
    pieces = [vocab[i] for i in ids]
    starts, ends = byte_spans_to_chars(text, [len(p) for p in pieces])
    return [Token(*t) for t in zip(ids, pieces, starts, ends, strict=True)]


MAX_SAMPLE_CHARS = 2_000   # the replay's sample sentence


def check_training_text(text):
    """A pasted training text: not empty; cut at MAX_CORPUS_CHARS (``truncated`` says so)."""
    return check_text(text, max_chars=MAX_CORPUS_CHARS, name="Training text")


def check_training_upload(data: bytes):
    """An uploaded training file, decoded (UTF-8 / UTF-16 with BOM) and cut at MAX_CORPUS_CHARS bytes."""
    return decode_upload(data, max_bytes=MAX_CORPUS_CHARS, name="The uploaded file")


def check_sample(text) -> str:
    """The replay's sample sentence, cut at MAX_SAMPLE_CHARS characters."""
    return check_text(text, max_chars=MAX_SAMPLE_CHARS, allow_empty=True, name="Sample sentence").text
