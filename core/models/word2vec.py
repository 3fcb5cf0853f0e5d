"""word2vec, skip-gram with negative sampling (SGNS), in PyTorch, trained live.

Each word in a window around a target word is a positive (input, target)
pair; ``negative`` words drawn from the unigram distribution raised to 3/4
are negatives. The model maximises ``log σ(u·v_t) + Σ_k log σ(−u·v_k)`` where
``u`` is the input ("syn0") vector of the context word and ``v`` the output
("syn1neg") vectors: negative sampling is a simplified noise-contrastive
estimation (NCE; Gutmann & Hyvärinen 2010), which learns to tell data pairs
from noise pairs instead of normalising a softmax over the vocabulary.

References
- Mikolov et al. 2013a, "Efficient Estimation of Word Representations in
  Vector Space" (arXiv:1301.3781), §3.2 skip-gram; §4 the analogy test set.
- Mikolov et al. 2013b, "Distributed Representations of Words and Phrases and
  their Compositionality" (NeurIPS), §2.2 negative sampling (unigram^3/4 noise),
  §2.3 subsampling of frequent words.
- Levy, Goldberg & Dagan 2015, "Improving Distributional Similarity with
  Lessons Learned from Word Embeddings" (TACL), §3.2: the dynamic window and
  subsampling as hyper-parameters.
- Recht, Ré, Wright & Niu 2011, "Hogwild!: A Lock-Free Approach to
  Parallelizing Stochastic Gradient Descent" (NeurIPS), §2-4: the lock-free
  worker threads used on a CPU (as gensim's workers and word2vec.c do).
- gensim's ``word2vec_inner.pyx`` (``w2v_train_sg``/``fast_sentence_sg_neg``):
  the same sampling recipe, used here as the reference implementation.

How it trains fast without autograd: every step gathers the rows it needs,
computes the closed-form gradient of the SGNS objective and adds it back
with ``index_add_`` (a sparse update that touches only the rows in the batch,
summing duplicates like Hogwild-style SGD). :func:`sgns_loss_reference` is
the readable autograd path the tests compare it with.

Does not handle: hierarchical softmax, CBOW, phrases (bigram merging), or
corpora larger than :data:`MAX_CORPUS_WORDS` words.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from core.data import corpus
from core.runtime.device import cpu_threads, oom_guard
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import ValidationError, check_float, check_int
from core.train.schedule import linear_decay

Progress = Callable[[float, str], None]

MAX_CORPUS_WORDS = 3_000_000   # words per training corpus (the Wikipedia sample has ~412 k)
MAX_DIM = 300                  # embedding width
MAX_WINDOW = 10                # words on each side
MAX_NEGATIVE = 20              # negatives per positive pair
MAX_EPOCHS = 20
MAX_VOCAB = 50_000             # words kept after min_count (most frequent first)
MAX_WATCHED = 8                # watched words whose neighbours are snapshotted
MIN_VOCAB = 10                 # fewer distinct words than this cannot be trained on
TIME_LIMIT_S = 240.0           # the heavy job's limit on the device queue
SNAPSHOTS_PER_RUN = 6          # neighbour snapshots of the watched words during training
LOSS_POINTS_PER_RUN = 200      # points on the loss curve
NOISE_TABLE_MIN = 1 << 20      # entries of the unigram noise table (at least 64 per word)


@dataclass(frozen=True)
class Word2VecConfig:
    dim: int = 100               # embedding width
    window: int = 5              # maximum words on each side (dynamic: 1..window per target)
    negative: int = 5            # negatives per positive pair
    sample: float = 1e-3         # subsampling threshold t (0 = off), Mikolov 2013b §2.3
    min_count: int = 5           # words rarer than this are dropped
    epochs: int = 5              # passes over the corpus
    alpha: float = 0.025         # initial learning rate (linear decay to min_alpha)
    min_alpha: float = 1e-4      # final learning rate
    batch_size: int = 4096       # positive pairs per sparse SGD step
    max_vocab: int = 30_000      # keep at most this many words (most frequent)
    seed: int = 1                # initialisation, subsampling, windows, negatives

    def checked(self) -> Word2VecConfig:
        """Raise ValidationError when a field is out of range; returns self."""
        check_int("Dimension", self.dim, 2, MAX_DIM)
        check_int("Window", self.window, 1, MAX_WINDOW)
        check_int("Negatives", self.negative, 1, MAX_NEGATIVE)
        check_float("Subsampling threshold", self.sample, 0.0, 0.1)
        check_int("Minimum count", self.min_count, 1, 1000)
        check_int("Epochs", self.epochs, 1, MAX_EPOCHS)
        check_float("Learning rate", self.alpha, 0.0, 1.0, lo_open=True)
        check_float("Final learning rate", self.min_alpha, 0.0, self.alpha)
        check_int("Batch size", self.batch_size, 16, 1 << 16)
        check_int("Vocabulary size", self.max_vocab, MIN_VOCAB, MAX_VOCAB)
        check_int("Seed", self.seed, 0, 2**31 - 1)
        return self


@dataclass(frozen=True)
class Vocab:
    words: tuple[str, ...]       # most frequent first
    counts: torch.Tensor         # (V,) int64 corpus counts
    index: dict[str, int] = field(repr=False)
    total_words: int             # corpus words before min_count
    dropped_rare: int            # corpus words dropped by min_count / max_vocab

    def __len__(self) -> int:
        return len(self.words)


def build_vocab(sentences: Sequence[Sequence[str]], min_count: int, max_vocab: int) -> Vocab:
    """Words seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
    counts = Counter(w for sent in sentences for w in sent)
    total = sum(counts.values())
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    kept = kept[:max_vocab]
    if len(kept) < MIN_VOCAB:
        raise ValidationError(
            f"Only {len(kept)} distinct words occur at least {min_count} times; need {MIN_VOCAB}. "
            "Use a longer corpus or a lower minimum count."
        )
    vec = torch.tensor([counts[w] for w in kept], dtype=torch.int64)
    return Vocab(tuple(kept), vec, {w: i for i, w in enumerate(kept)}, total,
                 total - int(vec.sum()))


def keep_probabilities(counts: torch.Tensor, sample: float) -> torch.Tensor:
    """P(keep) per word: ``(sqrt(f/t) + 1) · t/f`` capped at 1, with f the word's
    share of the corpus (gensim's and word2vec.c's variant of Mikolov 2013b §2.3)."""
    if sample <= 0:
        return torch.ones(len(counts), dtype=torch.float64)
    threshold = sample * float(counts.sum())
    c = counts.to(torch.float64)
    return ((c / threshold).sqrt() + 1.0).mul(threshold / c).clamp(max=1.0)   # (V,)


def noise_cdf(counts: torch.Tensor, power: float = 0.75) -> torch.Tensor:
    """Cumulative noise distribution ∝ count^power (Mikolov 2013b §2.2), float64, ends at 1."""
    weights = counts.to(torch.float64).pow(power)
    cdf = weights.cumsum(0) / weights.sum()
    cdf[-1] = 1.0
    return cdf                                                                 # (V,)


def noise_table(counts: torch.Tensor, power: float = 0.75, size: int | None = None) -> torch.Tensor:
    """word2vec.c's unigram table: ``size`` word ids, word w filling a share ∝ count^power.

    Built from :func:`noise_cdf` by inverse-CDF lookup at evenly spaced points,
    so drawing uniform entries samples the noise distribution up to 1/size.
    """
    size = size or max(NOISE_TABLE_MIN, 64 * len(counts))
    points = (torch.arange(size, dtype=torch.float64) + 0.5) / size            # (S,)
    return torch.searchsorted(noise_cdf(counts, power), points).clamp_(max=len(counts) - 1)


def sample_negatives(table: torch.Tensor, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Word ids drawn from the noise distribution (uniform entries of the unigram table)."""
    pick = torch.randint(0, len(table), shape, generator=gen, device=table.device)
    return table[pick]


def encode_corpus(sentences: Sequence[Sequence[str]], vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
    """Word ids and sentence ids of every in-vocabulary token, each (T,) int64."""
    ids, sent = [], []
    for s, sentence in enumerate(sentences):
        row = [vocab.index[w] for w in sentence if w in vocab.index]
        ids.extend(row)
        sent.extend([s] * len(row))
    return torch.tensor(ids, dtype=torch.int64), torch.tensor(sent, dtype=torch.int64)


def window_pairs(ids: torch.Tensor, sent: torch.Tensor, spans: torch.Tensor, window: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """All (input, target) pairs: input within ``spans[i]`` words of target i, same sentence.

    Vectorised over offsets; :func:`window_pairs_reference` is the loop it must equal
    (as a multiset of pairs). ``spans`` (T,) holds each target's dynamic window in 1..window.
    """
    inputs, targets = [], []
    for d in range(1, window + 1):
        same = sent[:-d] == sent[d:]                          # (T-d,) pair (i, i+d) in one sentence
        right = same & (spans[:-d] >= d)                      # target i, input i+d
        left = same & (spans[d:] >= d)                        # target i+d, input i
        inputs += [ids[d:][right], ids[:-d][left]]
        targets += [ids[:-d][right], ids[d:][left]]
    return torch.cat(inputs), torch.cat(targets)              # (P,), (P,)


def window_pairs_reference(ids: list[int], sent: list[int], spans: list[int]) -> list[tuple[int, int]]:
    """Readable loop over targets, as gensim's ``w2v_train_sg`` walks a sentence."""
    pairs = []
    for i, (target, span) in enumerate(zip(ids, spans, strict=True)):
        for j in range(max(0, i - span), min(len(ids), i + span + 1)):
            if j != i and sent[j] == sent[i]:
                pairs.append((ids[j], target))
    return pairs


def sgns_step(w_in: torch.Tensor, w_out: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
              negatives: torch.Tensor, lr: float) -> torch.Tensor:
    """One sparse SGD step on the SGNS objective, in place; returns the mean loss (before the step).

    Gradients are the closed form of the loss in :func:`sgns_loss_reference`
    (summed over the batch, not averaged, like per-pair SGD); a negative equal
    to its target is ignored, as in gensim.
    """
    u = F.embedding(inputs, w_in)                                    # (B, D)
    cand = torch.cat([targets[:, None], negatives], dim=1)           # (B, 1+K)
    v = F.embedding(cand, w_out)                                     # (B, 1+K, D)
    scores = torch.linalg.vecdot(v, u[:, None, :])                   # (B, 1+K)
    labels = torch.zeros_like(scores)
    labels[:, 0] = 1.0
    valid = torch.ones_like(scores)
    valid[:, 1:] = (negatives != targets[:, None]).to(scores.dtype)  # (B, K)
    g = (labels - torch.sigmoid(scores)) * valid * lr                # (B, 1+K) ascent direction
    loss = -(F.logsigmoid(scores[:, 0]) + (F.logsigmoid(-scores[:, 1:]) * valid[:, 1:]).sum(1))
    grad_u = torch.bmm(g[:, None, :], v).squeeze(1)                  # (B, D)
    grad_v = g[:, :, None] * u[:, None, :]                           # (B, 1+K, D)
    w_in.index_add_(0, inputs, grad_u)
    w_out.index_add_(0, cand.reshape(-1), grad_v.reshape(-1, u.shape[1]))
    return loss.mean()


def sgns_loss_reference(w_in: torch.Tensor, w_out: torch.Tensor, inputs: torch.Tensor,
                        targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Summed SGNS loss, written plainly for autograd (the reference for :func:`sgns_step`)."""
    total = w_in.new_zeros(())
    for b in range(len(inputs)):
        u = w_in[inputs[b]]                                          # (D,)
        total = total - F.logsigmoid(u @ w_out[targets[b]])
        for n in negatives[b]:
            if n != targets[b]:
                total = total - F.logsigmoid(-(u @ w_out[n]))
    return total


@dataclass(frozen=True)
class Snapshot:
    fraction: float                              # share of training done (0..1)
    epoch: float                                 # fractional epoch
    neighbours: dict[str, list[tuple[str, float]]]  # watched word -> [(word, cosine)]


@dataclass
class Word2VecResult:
    config: Word2VecConfig
    vocab: Vocab
    vectors: torch.Tensor            # (V, D) input vectors ("syn0"), float32 on CPU
    loss_curve: list[tuple[float, float]]   # (epoch, mean loss over the last steps)
    snapshots: list[Snapshot]
    watched: tuple[str, ...]         # watched words that are in the vocabulary
    corpus_words: int                # corpus tokens before min_count
    trained_words: int               # in-vocabulary tokens seen, summed over epochs (before subsampling)
    pairs: int                       # positive pairs trained on
    seconds: float                   # training wall time (without vocabulary building)
    device: str
    workers: int = 1                 # Hogwild worker threads (CPU), 1 on accelerators

    @property
    def words_per_s(self) -> float:
        return self.trained_words / max(self.seconds, 1e-9)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / max(self.seconds, 1e-9)


def check_corpus(sentences: Sequence[Sequence[str]]) -> tuple[list[list[str]], bool]:
    """Sentences as lists of words, cut at MAX_CORPUS_WORDS words; (sentences, truncated)."""
    if not isinstance(sentences, (list, tuple)):
        raise ValidationError("The corpus must be a list of sentences (lists of words).")
    out, n = [], 0
    for sentence in sentences:
        row = [str(w) for w in sentence][: MAX_CORPUS_WORDS - n]
        if row:
            out.append(row)
            n += len(row)
        if n >= MAX_CORPUS_WORDS:
            return out, True
    if n == 0:
        raise ValidationError("The corpus holds no words (letters a-z) to train on.")
    return out, False


def train(sentences: Sequence[Sequence[str]], config: Word2VecConfig, device: str = "cpu", *,
          watch: Sequence[str] = (), progress: Progress | None = None,
          on_wait: Callable[[int, float], None] | None = None,
          cpu_workers: int | None = None) -> Word2VecResult:
    """Train SGNS word2vec on ``sentences`` (lists of lower-case words) on ``device``.

    Runs on the device queue (core.runtime.scheduler) with a time limit; ``watch``
    words get neighbour snapshots during training. Returns the input vectors
    (what gensim calls ``wv``), the loss curve and the snapshots.

    On a CPU, ``cpu_workers`` threads (default: up to 4, one per core) train
    Hogwild-style, each op on one intra-op thread: the batches are small, and
    on a shared machine OpenMP's spinning threads made torch's own 2-thread
    ops up to 8x slower than 1. ``cpu_workers=1`` is deterministic for a seed.
    On CUDA one stream does all the steps.
    """
    config = config.checked()
    sentences, _ = check_corpus(sentences)
    vocab = build_vocab(sentences, config.min_count, config.max_vocab)
    ids, sent = encode_corpus(sentences, vocab)
    watched = tuple(dict.fromkeys(w for w in watch if w in vocab.index))[:MAX_WATCHED]
    with heavy_job("word2vec training", device, time_limit_s=TIME_LIMIT_S, on_wait=on_wait) as job, \
            oom_guard("word2vec training", device, hint="Lower the dimension or the batch size."), \
            cpu_threads(device):
        workers = _workers(device, cpu_workers)
        state = _TrainState.start(config, vocab, ids, sent, device, watched)
        started = time.perf_counter()
        for epoch in range(config.epochs):
            _train_epoch(state, epoch, job, progress, workers)
        seconds = time.perf_counter() - started
        state.snapshot(1.0)
    if progress:
        progress(1.0, N_(f"Done: {len(ids) * config.epochs:,} words in {seconds:.1f} s"))
    return Word2VecResult(
        config=config, vocab=vocab, vectors=state.w_in.float().cpu(), loss_curve=state.curve,
        snapshots=state.snapshots, watched=watched, corpus_words=vocab.total_words,
        trained_words=len(ids) * config.epochs, pairs=state.pairs, seconds=seconds,
        device=str(device), workers=workers)


def init_vectors(vocab_size: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    """Input vectors before training, as gensim draws them: uniform in ±0.5/dim. (V, D)"""
    return (torch.rand(vocab_size, dim, generator=gen, device=gen.device) - 0.5) / dim


def _workers(device: str, requested: int | None) -> int:
    """Hogwild worker threads: 1 on accelerators; on a CPU the request or min(4, cores)."""
    if torch.device(device).type != "cpu":
        return 1
    if requested is None:
        return max(1, min(4, os.cpu_count() or 1))
    return check_int("CPU workers", requested, 1, 32)




@dataclass
class _TrainState:
    config: Word2VecConfig
    vocab: Vocab
    ids: torch.Tensor            # (T,) word ids on the device
    sent: torch.Tensor           # (T,) sentence ids on the device
    keep: torch.Tensor           # (V,) keep probabilities
    table: torch.Tensor          # (S,) unigram noise table
    w_in: torch.Tensor           # (V, D)
    w_out: torch.Tensor          # (V, D)
    gen: torch.Generator
    watched: tuple[str, ...]
    curve: list[tuple[float, float]] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    pairs: int = 0

    @classmethod
    def start(cls, config, vocab, ids, sent, device, watched) -> _TrainState:
        dev = torch.device(device)
        gen = torch.Generator(device=dev).manual_seed(config.seed)
        w_in = init_vectors(len(vocab), config.dim, gen)                   # (V, D)
        w_out = torch.zeros_like(w_in)                                     # (V, D)
        state = cls(config, vocab, ids.to(dev), sent.to(dev),
                    keep_probabilities(vocab.counts, config.sample).to(dev),
                    noise_table(vocab.counts).to(dev), w_in, w_out, gen, watched)
        state.snapshot(0.0)
        return state

    def snapshot(self, fraction: float, k: int = 5) -> None:
        if not self.watched:
            return
        unit = F.normalize(self.w_in, dim=1)                               # (V, D)
        rows = torch.tensor([self.vocab.index[w] for w in self.watched], device=unit.device)
        sims = unit[rows] @ unit.T                                         # (W, V)
        sims[torch.arange(len(rows)), rows] = -math.inf
        top = sims.topk(min(k, len(self.vocab) - 1), dim=1)
        scores, idx = top.values.cpu().tolist(), top.indices.cpu().tolist()
        table = {w: [(self.vocab.words[j], round(s, 4)) for j, s in zip(idx[i], scores[i], strict=True)]
                 for i, w in enumerate(self.watched)}
        self.snapshots.append(Snapshot(fraction, fraction * self.config.epochs, table))

    def epoch_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Subsample, draw dynamic windows, make and shuffle this epoch's pairs."""
        dev, cfg = self.ids.device, self.config
        u = torch.rand(len(self.ids), generator=self.gen, device=dev, dtype=torch.float64)
        kept = u < self.keep[self.ids]                                     # (T,)
        ids, sent = self.ids[kept], self.sent[kept]
        spans = torch.randint(1, cfg.window + 1, (len(ids),), generator=self.gen, device=dev)
        inputs, targets = window_pairs(ids, sent, spans, cfg.window)
        perm = torch.randperm(len(inputs), generator=self.gen, device=dev)
        return inputs[perm], targets[perm]


def _train_epoch(state: _TrainState, epoch: int, job, progress: Progress | None, workers: int) -> None:
    """One pass over this epoch's shuffled pairs; with ``workers`` > 1, Hogwild-style:
    worker w takes steps w, w + workers, … on the shared tables, lock-free (like gensim's
    threads; Recht et al. 2011). The calling thread reports, checks the time limit and
    snapshots; a failure in any worker stops the others."""
    inputs, targets = state.epoch_pairs()
    steps = max(1, math.ceil(len(inputs) / state.config.batch_size))
    stop, failures = threading.Event(), []
    helpers = [threading.Thread(target=_drain, daemon=True, args=(
        _steps(state, epoch, inputs, targets, range(w, steps, workers), _child_generator(state.gen), stop),
        failures)) for w in range(1, workers)]
    for t in helpers:
        t.start()
    try:
        _report(state, epoch, steps, workers, job, progress,
                _steps(state, epoch, inputs, targets, range(0, steps, workers), state.gen, stop))
    except BaseException:
        stop.set()
        raise
    finally:
        for t in helpers:
            t.join()
    if failures:
        raise failures[0]
    state.pairs += len(inputs)


def _steps(state: _TrainState, epoch: int, inputs: torch.Tensor, targets: torch.Tensor,
           step_ids: range, gen: torch.Generator, stop: threading.Event):
    """Yield (step, mean loss) after each sparse SGD step in ``step_ids``; lr decays linearly."""
    cfg, n = state.config, len(inputs)
    for step in step_ids:
        if stop.is_set():
            return
        lo = step * cfg.batch_size
        done = (epoch + lo / max(n, 1)) / cfg.epochs                       # share of training
        lr = linear_decay(done, cfg.alpha, cfg.min_alpha)                  # core.train.schedule
        batch_in, batch_t = inputs[lo:lo + cfg.batch_size], targets[lo:lo + cfg.batch_size]
        negs = sample_negatives(state.table, (len(batch_in), cfg.negative), gen)   # (B, K)
        yield step, sgns_step(state.w_in, state.w_out, batch_in, batch_t, negs, lr)


def _drain(steps, failures: list) -> None:
    try:
        for _ in steps:
            pass
    except BaseException as exc:       # handed to the reporting thread
        failures.append(exc)


def _child_generator(gen: torch.Generator) -> torch.Generator:
    seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device))
    return torch.Generator(device=gen.device).manual_seed(seed)


def _report(state: _TrainState, epoch: int, steps: int, workers: int, job,
            progress: Progress | None, own_steps) -> None:
    """Consume the reporting worker's steps: loss curve, progress, time limit, snapshots."""
    cfg = state.config
    own_total = max(1, steps * cfg.epochs // workers)
    curve_every = max(1, own_total // LOSS_POINTS_PER_RUN)
    snap_every = max(1, own_total // SNAPSHOTS_PER_RUN)
    loss_sum, count, seen = None, 0, epoch * max(1, steps // workers)
    for step, loss in own_steps:
        loss_sum = loss if loss_sum is None else loss_sum + loss
        count, seen = count + 1, seen + 1
        position = epoch + (step + 1) / steps                               # in epochs
        if count == curve_every or step + workers >= steps:
            state.curve.append((position, float(loss_sum) / count))
            loss_sum, count = None, 0
            job.check()
            if progress:
                progress(position / cfg.epochs,
                         N_(f"Epoch {epoch + 1}/{cfg.epochs} · loss {state.curve[-1][1]:.3f}"))
        if seen % snap_every == 0 and position < cfg.epochs:
            state.snapshot(position / cfg.epochs)


# ---------------------------------------------------------------- corpora
MIN_CORPUS_WORDS = 200          # fewer words than this is not a corpus
MAX_UPLOAD_BYTES = 5_000_000    # uploaded corpus files are cut here


@dataclass(frozen=True)
class TrainingCorpus:
    sentences: tuple[tuple[str, ...], ...]   # paragraphs as lower-case words
    key: str                                 # identifies the text and the cut (a cache key)
    source: str                              # shown on the page
    words: int                               # words used
    truncated: bool                          # the text was cut (upload size or max_words)


def wiki_corpus(max_words: int) -> TrainingCorpus:
    """The first ``max_words`` words of gensim's Wikipedia sample (core.data.corpus)."""
    max_words = check_int("Corpus size", max_words, MIN_CORPUS_WORDS, MAX_CORPUS_WORDS)
    rows, truncated = check_corpus(corpus.sentences(corpus.wiki_text()))
    return _cut_corpus(rows, max_words, truncated, f"wiki:{max_words}", N_("Wikipedia sample (gensim)"))


def upload_corpus(data: bytes, max_words: int, name: str = "upload") -> TrainingCorpus:
    """A user's text file: decoded and checked (core.data.corpus.upload_text), split into words."""
    max_words = check_int("Corpus size", max_words, MIN_CORPUS_WORDS, MAX_CORPUS_WORDS)
    checked = corpus.upload_text(data, max_bytes=MAX_UPLOAD_BYTES)
    rows, truncated = check_corpus(corpus.sentences(checked.text))
    digest = hashlib.sha256(checked.text.encode("utf-8")).hexdigest()[:16]
    label = N_(f"uploaded file {str(name)[:60]!r}")
    return _cut_corpus(rows, max_words, truncated or checked.truncated, f"upload:{digest}:{max_words}", label)


def _cut_corpus(rows: list[list[str]], max_words: int, truncated: bool, key: str, source: str) -> TrainingCorpus:
    out, n = [], 0
    for row in rows:
        if n >= max_words:
            truncated = True
            break
        truncated = truncated or len(row) > max_words - n
        row = row[: max_words - n]
        out.append(tuple(row))
        n += len(row)
    if n < MIN_CORPUS_WORDS:
        raise ValidationError(f"The corpus has {n:,} words; at least {MIN_CORPUS_WORDS:,} are needed.")
    return TrainingCorpus(tuple(out), key, source, n, truncated)


# ---------------------------------------------------------------- gensim reference
@dataclass
class GensimResult:
    words: tuple[str, ...]       # gensim's vocabulary, most frequent first
    vectors: torch.Tensor        # (V, D) float32 (gensim's ``wv.vectors``)
    seconds: float               # training wall time
    trained_words: int           # in-vocabulary words seen, summed over epochs
    workers: int                 # gensim worker threads

    @property
    def words_per_s(self) -> float:
        return self.trained_words / max(self.seconds, 1e-9)


def train_gensim(sentences: Sequence[Sequence[str]], config: Word2VecConfig, workers: int = 2,
                 progress: Progress | None = None) -> GensimResult:
    """gensim's Word2Vec (skip-gram, negative sampling) with the same hyper-parameters.

    The sentences are first restricted to our vocabulary (same min_count and
    max_vocab) and gensim gets min_count=1, so both models see exactly the
    same words: gensim also drops out-of-vocabulary words before windowing.
    Needs gensim (not on the GPU check machine).
    """
    # optional: gensim (~0.9 s to import) is only needed for the reference run
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    config = config.checked()
    workers = check_int("gensim workers", workers, 1, 32)
    sentences, _ = check_corpus(sentences)
    vocab = build_vocab(sentences, config.min_count, config.max_vocab)
    kept = [[w for w in s if w in vocab.index] for s in sentences]
    kept = [s for s in kept if s]

    class _Report(CallbackAny2Vec):
        def __init__(self) -> None:
            self.epoch = 0

        def on_epoch_end(self, model) -> None:
            self.epoch += 1
            if progress:
                progress(self.epoch / config.epochs, N_(f"gensim epoch {self.epoch}/{config.epochs}"))

    model = Word2Vec(vector_size=config.dim, window=config.window, negative=config.negative,
                     sample=config.sample, min_count=1, sg=1, hs=0, alpha=config.alpha,
                     min_alpha=config.min_alpha, seed=config.seed, workers=workers)
    model.build_vocab(kept)
    started = time.perf_counter()
    model.train(kept, total_examples=len(kept), epochs=config.epochs, callbacks=[_Report()])
    seconds = time.perf_counter() - started
    words = tuple(model.wv.index_to_key)
    return GensimResult(words, torch.from_numpy(model.wv.vectors.copy()), seconds,
                        sum(len(s) for s in kept) * config.epochs, workers)
