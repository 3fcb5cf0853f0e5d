"""Contrastive learning: InfoNCE on real sentence embeddings, and a small CPC model trained live.

InfoNCE (van den Oord, Li, Vinyals 2018, "Representation Learning with
Contrastive Predictive Coding", arXiv:1807.03748, section 2.2): given a batch
of N pairs (x_i, y_i), score every x_i against every y_j, f(x_i, y_j) =
exp(sim(x_i, y_j) / tau), and ask each x_i to pick its own y_i among the N
candidates. The loss is the cross-entropy of the (N, N) similarity logits with
the diagonal as targets. Section 2.3: I(x; y) >= log N - L_N, so log N - L is
a lower bound on the mutual information that can never exceed log N (Poole et
al. 2019, "On Variational Bounds of Mutual Information", section 2.3: the
bound saturates at log N, which is why contrastive learning wants big batches).

Real pairs: all-MiniLM-L6-v2 sentence embeddings (core.data.minilm) of sentences
from gensim's Wikipedia sample. A positive pair is either a sentence and the
next sentence of the same paragraph (neighbouring sentences share topic and
entities: the "next sentence" signal of Logeswaran & Lee 2018, QuickThoughts),
or two overlapping random spans of the same sentence (crops, as in Giorgi et
al. 2021 DeCLUTR / SimCLR's random crops). Negatives are the other pairs of the
batch: from other articles (easy) or all from one article (hard negatives).

CPC (section 2.1, figure 1): an encoder g_enc maps the input to latents z_t,
an autoregressive GRU summarises z_<=t into a context c_t, and one linear map
W_k per step k scores f_k = z_{t+k}^T W_k c_t; InfoNCE with negatives drawn
from the batch trains all three. The input is the Wikipedia sample (every 10th
article held out), as cl100k_base tokens (one latent per token; tokens seen
fewer than 3 times share one row) or as UTF-8 bytes (one latent per 4 bytes,
a non-overlapping strided convolution, so c_t never sees the bytes of z_{t+k}).
We report how often the model picks the true z_{t+k} among negatives, for
each k: it falls with k, as in the paper's figure 3 (speech). Measured on a
2-core CPU, 300 steps (~40 s on one thread): k=1 picks the true next token among 64 about
9 % of the time (chance 1.6 %), k=8 about 2 %; bytes learn k=1 faster (~14 %)
but nothing beyond k=2 in that budget.

Does not handle: learnable temperature (CLIP), momentum encoders / queues
(MoCo), fine-tuning MiniLM itself, or CPC on audio/images.
"""

from __future__ import annotations

import functools
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.corpus import wiki_articles
from core.data.minilm import encode_sentences
from core.runtime.device import cpu_threads, oom_guard
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import (
    ValidationError,
    check_choice,
    check_float,
    check_int,
    check_text,
)
from core.tokenizers import decode, encode_ids
from core.train import loop
from core.train.loop import optimizer_step, set_lr
from core.train.schedule import default_warmup, warmup_cosine

MAX_PAIRS = 256                # pairs embedded at once (two sentences each: MiniLM's 512 cap)
MAX_TEXT_CHARS = 200_000       # a user's own text
MIN_TEMPERATURE = 1e-3
MAX_TEMPERATURE = 100.0
MAX_CURVE_BATCHES = 64         # random batches averaged per point of the bound curve
MAX_CURVE_POINTS = 400         # (batch size x temperature) points per curve
SENTENCE_WORDS = (6, 60)       # sentences shorter or longer than this are skipped

PAIR_KINDS = {
    "next": N_("A sentence and the next sentence of the same paragraph"),
    "span": N_("The first 60 % and the last 60 % of the words of one sentence (two crops)"),
}
NEGATIVES = {
    "mixed": N_("Every pair from a different article (easy negatives)"),
    "one-article": N_("All pairs from one article (hard negatives)"),
}


# ====================================================================== pairs
@dataclass(frozen=True)
class Pair:
    anchor: str          # x_i
    positive: str        # y_i
    source: str          # article title (or "your text")


_SENT_RE = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph (a regex split after . ! ? before a capital), of 6-60 words."""
    lo, hi = SENTENCE_WORDS
    out = []
    for sent in _SENT_RE.split(paragraph.strip()):
        sent = sent.strip()
        if lo <= len(sent.split()) <= hi:
            out.append(sent)
    return out


def _span_pair(sentence: str, source: str) -> Pair:
    """The first 60 % and the last 60 % of a sentence's words: two crops sharing the middle."""
    words = sentence.split()
    n = max(3, math.ceil(0.6 * len(words)))
    return Pair(" ".join(words[:n]), " ".join(words[-n:]), source)


def pairs_from_paragraphs(paragraphs: Sequence[str], kind: str, source: str) -> list[Pair]:
    """Every candidate pair of one document (paragraphs -> sentences -> pairs)."""
    kind = check_choice("Pair kind", kind, PAIR_KINDS)
    out = []
    for para in paragraphs:
        sents = split_sentences(para)
        if kind == "next":
            out.extend(Pair(a, b, source) for a, b in zip(sents, sents[1:], strict=False))
        else:
            out.extend(_span_pair(s, source) for s in sents)
    return out


@functools.lru_cache(maxsize=2)
def _article_pairs(kind: str) -> tuple[tuple[Pair, ...], ...]:
    """Every candidate pair of every Wikipedia article (articles without pairs left out)."""
    found = (tuple(pairs_from_paragraphs(a.text.split("\n"), kind, a.title)) for a in wiki_articles())
    return tuple(p for p in found if p)


def corpus_pairs(n_pairs: int, *, kind: str = "next", negatives: str = "mixed",
                 seed: int = 0) -> list[Pair]:
    """``n_pairs`` pairs from the Wikipedia sample (see the module docstring)."""
    n_pairs = check_int("Number of pairs", n_pairs, 2, MAX_PAIRS)
    negatives = check_choice("Negatives", negatives, NEGATIVES)
    rng = random.Random(seed)
    per_article = [list(p) for p in _article_pairs(check_choice("Pair kind", kind, PAIR_KINDS))]
    if negatives == "one-article":
        big = [p for p in per_article if len(p) >= n_pairs]
        if not big:
            raise ValidationError(f"No article has {n_pairs} pairs; lower the number of pairs.")
        return rng.sample(rng.choice(big), n_pairs)
    for pairs in per_article:
        rng.shuffle(pairs)
    rng.shuffle(per_article)
    out: list[Pair] = []
    for depth in range(max(len(p) for p in per_article)):     # round robin: one per article first
        out.extend(p[depth] for p in per_article if depth < len(p))
        if len(out) >= n_pairs:
            break
    return out[:n_pairs]


def text_pairs(text: str, *, kind: str = "next") -> list[Pair]:
    """Pairs from a user's text (paragraphs = lines). Needs at least two pairs."""
    checked = check_text(text, max_chars=MAX_TEXT_CHARS, name="Your text")
    if kind == "next":     # a user's sentences may run across lines: one paragraph
        paragraphs = [" ".join(checked.text.split())]
    else:
        paragraphs = [line for line in checked.text.splitlines() if line.strip()]
    pairs = pairs_from_paragraphs(paragraphs, kind, "your text")
    if len(pairs) < 2:
        raise ValidationError(
            f"Your text gives {len(pairs)} pair(s); a batch needs at least 2 (one pair has no "
            f"negatives). Write more sentences of {SENTENCE_WORDS[0]}-{SENTENCE_WORDS[1]} words.")
    return pairs[:MAX_PAIRS]


def embed_pairs(pairs: Sequence[Pair], device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """MiniLM embeddings of anchors and positives: two (N, 384) unit-norm float32 tensors."""
    if not 2 <= len(pairs) <= MAX_PAIRS:
        raise ValidationError(f"Give between 2 and {MAX_PAIRS} pairs (got {len(pairs)}).")
    texts = [p.anchor for p in pairs] + [p.positive for p in pairs]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))   # similar lengths batch together
    emb = encode_sentences([texts[i] for i in order], device=device)      # (2N, 384), sorted order
    emb = emb[torch.argsort(torch.tensor(order))]                         # back to the pairs' order
    return emb[: len(pairs)], emb[len(pairs):]                            # (N, 384) each


def pair_pool(source: str, n_pairs: int, *, kind: str = "next", negatives: str = "mixed",
              seed: int = 0, text: str = "", device: str = "cpu",
              progress: Callable[[float, str], None] | None = None,
              ) -> tuple[tuple[Pair, ...], np.ndarray, np.ndarray]:
    """Pairs from the Wikipedia sample (``source="wiki"``) or from the user's ``text`` (``"text"``,
    at most ``n_pairs``) and their MiniLM embeddings: (pairs, anchors (N, 384), positives (N, 384)),
    float32 arrays (hashable cache keys for the InfoNCE views)."""
    source = check_choice("Sentences from", source, ("wiki", "text"))
    if progress:
        progress(0.1, N_("Picking sentence pairs…"))
    if source == "wiki":
        pairs = corpus_pairs(n_pairs, kind=kind, negatives=negatives, seed=seed)
    else:
        pairs = text_pairs(text, kind=kind)[:n_pairs]
    if progress:
        progress(0.3, N_(f"Embedding {2 * len(pairs)} sentences with MiniLM…"))
    a, b = embed_pairs(pairs, device)                                        # (N, 384) each
    if progress:
        progress(1.0, N_("Done"))
    return tuple(pairs), a.numpy(), b.numpy()


# ====================================================================== InfoNCE
def check_batch(a: torch.Tensor, b: torch.Tensor) -> int:
    """N for two (N, D) embedding tensors; refuses empty and single-pair batches."""
    if a.ndim != 2 or a.shape != b.shape:
        raise ValidationError(f"Anchors and positives must both be (N, D); got {tuple(a.shape)} "
                              f"and {tuple(b.shape)}.")
    n = a.shape[0]
    if n == 0:
        raise ValidationError("The batch is empty: InfoNCE needs at least 2 pairs.")
    if n == 1:
        raise ValidationError("A batch of one pair has no negatives: the loss is 0 and the bound "
                              "log 1 - 0 = 0 says nothing. Use at least 2 pairs.")
    return n


def check_temperature(temperature) -> float:
    """A temperature in [MIN_TEMPERATURE, MAX_TEMPERATURE]; zero or negative is refused."""
    value = check_float("Temperature", temperature, -math.inf, MAX_TEMPERATURE)
    if value <= 0:
        raise ValidationError(f"The temperature must be above 0 (it divides the similarities); "
                              f"got {value:g}.")
    if value < MIN_TEMPERATURE:
        raise ValidationError(f"The temperature must be at least {MIN_TEMPERATURE:g} (got {value:g}).")
    return value


def similarity_logits(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """cos(a_i, b_j) / tau for every pair: (N, N). Rows: anchors, columns: candidates."""
    tau = check_temperature(temperature)
    check_batch(a, b)
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / tau           # (N, N)


def info_nce(logits: torch.Tensor, symmetric: bool = False) -> torch.Tensor:
    """InfoNCE = cross-entropy of the logits with the diagonal as the target class.
    ``symmetric`` averages both directions (x->y and y->x, as CLIP does)."""
    n = logits.shape[0]
    target = torch.arange(n, device=logits.device)
    loss = F.cross_entropy(logits, target)
    return (loss + F.cross_entropy(logits.T, target)) / 2 if symmetric else loss


def info_nce_reference(a: torch.Tensor, b: torch.Tensor, temperature: float) -> float:
    """-1/N sum_i log( exp(s_ii / tau) / sum_j exp(s_ij / tau) ), written out in float64."""
    a64, b64 = a.double(), b.double()
    a64 = a64 / a64.norm(dim=-1, keepdim=True)
    b64 = b64 / b64.norm(dim=-1, keepdim=True)
    total = 0.0
    for i in range(a64.shape[0]):
        s = [float(a64[i] @ b64[j]) / temperature for j in range(b64.shape[0])]
        top = max(s)
        log_denominator = top + math.log(sum(math.exp(x - top) for x in s))
        total += -(s[i] - log_denominator)
    return total / a64.shape[0]


@dataclass(frozen=True)
class InfoNCEResult:
    logits: np.ndarray       # (N, N) cos / tau
    loss: float              # InfoNCE (nats)
    accuracy: float          # rows whose largest logit is the diagonal
    log_n: float             # log N: the most the bound can ever say
    bound: float             # log N - loss: lower bound on I(x; y) in nats
    temperature: float
    n: int


def info_nce_batch(a: torch.Tensor, b: torch.Tensor, temperature: float,
                   symmetric: bool = False) -> InfoNCEResult:
    """Logits, loss, top-1 accuracy and the MI bound of one batch."""
    logits = similarity_logits(a, b, temperature).double()                   # (N, N)
    n = logits.shape[0]
    loss = float(info_nce(logits, symmetric))
    acc = float((logits.argmax(dim=1) == torch.arange(n)).double().mean())
    return InfoNCEResult(logits.float().cpu().numpy(), loss, acc, math.log(n), math.log(n) - loss,
                         float(temperature), n)


def draw_batch(pool: int, n, seed: int = 0) -> list[int]:
    """Indices of a random batch of ``n`` pairs out of ``pool`` (no repeats)."""
    n = check_int("Batch size", n, 0, 1_000_000)
    if n == 0:
        raise ValidationError("The batch is empty: InfoNCE needs at least 2 pairs.")
    if n == 1:
        raise ValidationError("A batch of one pair has no negatives: the loss is 0 and the bound "
                              "log 1 - 0 = 0 says nothing. Use at least 2 pairs.")
    if n > pool:
        raise ValidationError(f"The batch size ({n}) is larger than the data ({pool} pairs). "
                              "Use a smaller batch or embed more pairs.")
    return torch.randperm(pool, generator=torch.Generator().manual_seed(seed))[:n].tolist()


def info_nce_from_pool(a: torch.Tensor, b: torch.Tensor, n: int, temperature: float, *,
                       seed: int = 0, symmetric: bool = False) -> tuple[InfoNCEResult, list[int]]:
    """InfoNCE of a random batch of ``n`` pairs from the embedded pool (tensors or arrays, (P, D));
    returns (result, indices)."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    idx = draw_batch(check_batch(a, b), n, seed)
    return info_nce_batch(a[idx], b[idx], temperature, symmetric), idx


@dataclass(frozen=True)
class CurvePoint:
    n: int                   # batch size
    temperature: float
    loss: float              # mean InfoNCE over the random batches
    loss_std: float
    bound: float             # log N - mean loss
    accuracy: float
    batches: int             # random batches averaged


def bound_curve(a: torch.Tensor, b: torch.Tensor, batch_sizes: Sequence[int],
                temperatures: Sequence[float], *, n_batches: int = 16, seed: int = 0) -> list[CurvePoint]:
    """The MI bound log N - L as the batch size N and temperature change.

    Each point averages ``n_batches`` random batches of N pairs from the pool (tensors or
    arrays, (P, D)); every temperature sees the same batches.
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    pool = check_batch(a, b)
    sizes = [check_int("Batch size", n, 2, MAX_PAIRS) for n in batch_sizes]
    taus = [check_temperature(t) for t in temperatures]
    n_batches = check_int("Random batches", n_batches, 1, MAX_CURVE_BATCHES)
    if not sizes or not taus or len(sizes) * len(taus) > MAX_CURVE_POINTS:
        raise ValidationError(f"Give 1-{MAX_CURVE_POINTS} (batch size, temperature) points.")
    if max(sizes) > pool:
        raise ValidationError(f"The batch size ({max(sizes)}) is larger than the data "
                              f"({pool} pairs). Embed more pairs or use smaller batches.")
    sims = F.normalize(a.double(), dim=-1) @ F.normalize(b.double(), dim=-1).T  # (P, P)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        draws = 1 if n == pool else n_batches
        idx = torch.stack([torch.randperm(pool, generator=gen)[:n] for _ in range(draws)])  # (R, N)
        sub = sims[idx[:, :, None], idx[:, None, :]]                                      # (R, N, N)
        for tau in taus:
            logits = sub / tau
            target = torch.arange(n).expand(draws, n)
            losses = F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(1)  # (R,)
            acc = float((logits.argmax(-1) == target).double().mean())
            std = float(losses.std()) if draws > 1 else 0.0
            out.append(CurvePoint(n, tau, float(losses.mean()), std,
                                  math.log(n) - float(losses.mean()), acc, draws))
    return out


# ====================================================================== CPC
MAX_CPC_STEPS = 3_000
MAX_CPC_WIDTH = 512
HELD_OUT_EVERY = 10            # every 10th article is held out for evaluation
CPC_TOKENIZER = "cl100k_base"
CPC_UNITS = {
    "tokens": N_("cl100k_base tokens, one latent per token"),
    "bytes": N_("UTF-8 bytes, one latent per 4 bytes (strided convolution)"),
}


@dataclass(frozen=True)
class CPCConfig:
    unit: str = "tokens"       # "tokens" | "bytes" (see CPC_UNITS)
    window: int = 64           # latents per training window
    emb_dim: int = 64          # input embedding width
    z_dim: int = 64            # latent width (what is predicted)
    c_dim: int = 64            # GRU context width
    k_max: int = 8             # predict z_{t+1} ... z_{t+k_max}
    batch_size: int = 32       # windows per step
    negatives: int = 127       # training: negatives per anchor, drawn from the whole batch
    steps: int = 300           # optimizer steps
    lr: float = 1e-2           # Adam learning rate (warm-up, then cosine decay to 10 %)
    min_count: int = 3         # tokens seen fewer times share one "rare" row
    eval_candidates: int = 64  # evaluation: pick the true z_{t+k} among this many
    eval_windows: int = 64     # held-out windows used for evaluation
    eval_every: int = 25       # steps between evaluations
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("Sequence unit", self.unit, CPC_UNITS)
        check_int("Window", self.window, 8, 1024)
        check_int("Prediction steps k", self.k_max, 1, min(32, self.window - 1))
        for name, v in (("Embedding width", self.emb_dim), ("Latent width", self.z_dim),
                        ("Context width", self.c_dim)):
            check_int(name, v, 2, MAX_CPC_WIDTH)
        check_int("Batch size", self.batch_size, 2, 512)
        check_int("Negatives", self.negatives, 1, 4096)
        check_int("Steps", self.steps, 0, MAX_CPC_STEPS)
        check_float("Learning rate", self.lr, 0.0, 1.0, lo_open=True)
        check_int("Minimum token count", self.min_count, 1, 1000)
        check_int("Evaluation windows", self.eval_windows, 1, 512)
        check_int("Evaluation interval", self.eval_every, 1, MAX_CPC_STEPS)
        positions = self.eval_windows * (self.window - self.k_max)
        check_int("Evaluation candidates", self.eval_candidates, 2, min(1024, positions))

    @property
    def stride(self) -> int:
        """Input items (tokens or bytes) per latent."""
        return 1 if self.unit == "tokens" else 4


@dataclass(frozen=True)
class CPCData:
    unit: str
    train: np.ndarray            # (n,) int64 item ids of the training articles
    held_out: np.ndarray         # (m,) int64 item ids of the held-out articles
    vocab: int                   # embedding rows
    token_of: np.ndarray | None  # compact id -> cl100k id (-1: the rare bucket); None for bytes
    train_chars: int
    held_out_chars: int


def _split_texts() -> tuple[str, str]:
    arts = list(wiki_articles())
    held = [i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 for i in range(len(arts))]
    train = "\n\n".join(a.text for a, h in zip(arts, held, strict=True) if not h)
    return train, "\n\n".join(a.text for a, h in zip(arts, held, strict=True) if h)


@functools.lru_cache(maxsize=4)
def cpc_data(unit: str = "tokens", min_count: int = 3) -> CPCData:
    """The Wikipedia sample as item ids: bytes, or cl100k tokens remapped to a compact
    vocabulary of the training split's tokens seen ``min_count`` times (others: id 0)."""
    unit = check_choice("Sequence unit", unit, CPC_UNITS)
    train, held = _split_texts()
    if unit == "bytes":
        as_ids = [np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64) for t in (train, held)]
        return CPCData(unit, as_ids[0], as_ids[1], 256, None, len(train), len(held))

    raw_train = np.array(encode_ids(CPC_TOKENIZER, train), dtype=np.int64)
    raw_held = np.array(encode_ids(CPC_TOKENIZER, held), dtype=np.int64)
    ids, counts = np.unique(raw_train, return_counts=True)
    kept = ids[counts >= min_count]                                   # sorted cl100k ids
    def compact(raw: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(kept, raw).clip(max=len(kept) - 1)
        return np.where(kept[pos] == raw, pos + 1, 0)
    token_of = np.concatenate([[-1], kept])
    return CPCData(unit, compact(raw_train), compact(raw_held), len(kept) + 1, token_of,
                   len(train), len(held))


def show_items(data: CPCData, items: np.ndarray) -> str:
    """Readable text of item ids (bytes decoded; tokens decoded, rare ones as ⟨rare⟩)."""
    if data.token_of is None:
        return bytes(items.astype(np.uint8).tolist()).decode("utf-8", errors="replace")

    parts = []
    for item in items.tolist():
        tok = int(data.token_of[item])
        parts.append("⟨rare⟩" if tok < 0 else decode(CPC_TOKENIZER, [tok]))
    return "".join(parts)


def sample_windows(ids: np.ndarray, n: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` random windows of ``length`` items: (n, length) long."""
    if len(ids) <= length:
        raise ValidationError(f"The text has {len(ids):,} items; a window needs more than {length}.")
    starts = rng.integers(0, len(ids) - length, size=n)
    return torch.from_numpy(np.stack([ids[s:s + length] for s in starts]).astype(np.int64))


@dataclass(frozen=True)
class CPCInternals:
    z: torch.Tensor            # (B, T, Z) latents
    c: torch.Tensor            # (B, T, C) contexts


class CPC(nn.Module):
    """Encoder (embedding + strided conv + pointwise conv) -> GRU context -> W_k per step k."""

    def __init__(self, cfg: CPCConfig, vocab: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(vocab, cfg.emb_dim)
        self.encoder = nn.Sequential(
            nn.Conv1d(cfg.emb_dim, cfg.z_dim, kernel_size=cfg.stride, stride=cfg.stride),
            nn.GELU(),
            nn.Conv1d(cfg.z_dim, cfg.z_dim, kernel_size=1),
        )
        self.gru = nn.GRU(cfg.z_dim, cfg.c_dim, batch_first=True)
        self.predictors = nn.ModuleList(nn.Linear(cfg.c_dim, cfg.z_dim, bias=False)
                                        for _ in range(cfg.k_max))

    def forward(self, x: torch.Tensor) -> CPCInternals:
        e = self.embed(x).transpose(1, 2)                                  # (B, E, L)
        z = self.encoder(e).transpose(1, 2)                                # (B, T, Z), T = L / stride
        c, _ = self.gru(z)                                                 # (B, T, C)
        return CPCInternals(z, c)

    def logits(self, out: CPCInternals, k: int, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Scores z_{t'+k}^T W_k c_t for every pair of the positions (b, t): (M, M), positives
        on the diagonal, the other positions' futures as negatives (evaluation)."""
        pred = self.predictors[k - 1](out.c[b, t])                        # (M, Z)
        return pred @ out.z[b, t + k].T                                    # (M, M)


def cpc_loss_k(model: CPC, out: CPCInternals, k: int, negatives: int,
               gen: torch.Generator) -> torch.Tensor:
    """InfoNCE for step k: every position is an anchor; its negatives are the futures of
    ``negatives`` random positions of the batch (the anchor's own future is masked out)."""
    B, T, Z = out.z.shape
    pred = model.predictors[k - 1](out.c[:, :T - k]).reshape(-1, Z)       # (M, Z)
    target = out.z[:, k:].reshape(-1, Z)                                   # (M, Z)
    M = pred.shape[0]
    neg = torch.randint(0, M, (negatives,), generator=gen).to(pred.device)  # (N,)
    pos = (pred * target).sum(-1, keepdim=True)                            # (M, 1)
    same = neg[None, :] == torch.arange(M, device=pred.device)[:, None]     # (M, N)
    negs = (pred @ target[neg].T).masked_fill(same, float("-inf"))         # (M, N)
    zero = torch.zeros(M, dtype=torch.long, device=pred.device)
    return F.cross_entropy(torch.cat([pos, negs], dim=1), zero)


def cpc_loss(model: CPC, out: CPCInternals, negatives: int, gen: torch.Generator) -> torch.Tensor:
    """Mean of the InfoNCE losses over k = 1..K."""
    return torch.stack([cpc_loss_k(model, out, k, negatives, gen)
                        for k in range(1, model.cfg.k_max + 1)]).mean()


def sample_positions(batch: int, latents: int, k: int, m: int,
                     gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` distinct (window, time) positions whose future t + k is inside the window."""
    valid = batch * (latents - k)
    flat = torch.randperm(valid, generator=gen)[:min(m, valid)]
    return flat // (latents - k), flat % (latents - k)                     # (M,), (M,)


@dataclass(frozen=True)
class CPCEval:
    step: int                        # optimizer steps done
    accuracy: tuple[float, ...]      # per k = 1..K: true future ranked first among the candidates
    loss: tuple[float, ...]          # per k: InfoNCE over the candidates (nats)


@dataclass(frozen=True)
class CPCExample:
    k: int
    context: str                     # the last items the context has seen
    truth: str                       # the true future z_{t+k} (as text)
    picked: str                      # the candidate the model ranked first
    rank: int                        # rank of the true future (1 = picked)
    candidates: int


@dataclass(frozen=True)
class CPCResult:
    config: CPCConfig
    device: str
    n_params: int
    vocab: int                       # embedding rows (tokens kept + rare, or 256 bytes)
    train_items: int                 # tokens or bytes of the training articles
    held_out_items: int
    losses: tuple[float, ...]        # training loss per step (mean over k)
    evals: tuple[CPCEval, ...]       # held-out evaluations; evals[0] is the untrained model
    examples: tuple[CPCExample, ...]
    seconds: float

    @property
    def chance(self) -> float:
        return 1.0 / self.config.eval_candidates

    @property
    def log_candidates(self) -> float:
        return math.log(self.config.eval_candidates)


EVAL_DRAWS = 8                       # random candidate sets averaged per k


def evaluate_cpc(model: CPC, windows: torch.Tensor, step: int, seed: int = 0) -> CPCEval:
    """Held-out accuracy and InfoNCE per k; the same candidate sets at every call (seeded)."""
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    accs, losses = [], []
    with torch.no_grad():
        out = model(windows)
        B, T, _ = out.z.shape
        for k in range(1, cfg.k_max + 1):
            acc = loss = 0.0
            for _ in range(EVAL_DRAWS):
                b, t = sample_positions(B, T, k, cfg.eval_candidates, gen)
                logits = model.logits(out, k, b.to(windows.device), t.to(windows.device))  # (M, M)
                target = torch.arange(len(b), device=logits.device)
                acc += float((logits.argmax(1) == target).float().mean()) / EVAL_DRAWS
                loss += float(F.cross_entropy(logits, target)) / EVAL_DRAWS
            accs.append(acc)
            losses.append(loss)
    return CPCEval(step, tuple(accs), tuple(losses))


def cpc_examples(model: CPC, data: CPCData, windows: torch.Tensor, per_k: int = 2,
                 seed: int = 1) -> list[CPCExample]:
    """What the model picks for a few held-out positions at k = 1, K/2 and K."""
    cfg, s = model.cfg, model.cfg.stride
    gen = torch.Generator().manual_seed(seed)
    items = windows.cpu().numpy()
    found = []
    with torch.no_grad():
        out = model(windows)
        B, T, _ = out.z.shape
        for k in sorted({1, max(1, cfg.k_max // 2), cfg.k_max}):
            b, t = sample_positions(B, T, k, cfg.eval_candidates, gen)
            logits = model.logits(out, k, b.to(windows.device), t.to(windows.device)).cpu()  # (M, M)
            for i in range(min(per_k, len(b))):
                (bi, ti), j = (int(b[i]), int(t[i])), int(logits[i].argmax())
                bj, tj = int(b[j]), int(t[j])
                found.append(CPCExample(
                    k, show_items(data, items[bi, max(0, (ti + 1) * s - 12 * s):(ti + 1) * s]),
                    show_items(data, items[bi, (ti + k) * s:(ti + k + 1) * s]),
                    show_items(data, items[bj, (tj + k) * s:(tj + k + 1) * s]),
                    1 + int((logits[i] > logits[i, i]).sum()), len(b)))
    return found


def build_cpc(cfg: CPCConfig, vocab: int, device: str = "cpu") -> CPC:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = CPC(cfg, vocab)
    return model.to(torch.device(device))


def train_cpc(cfg: CPCConfig = CPCConfig(), *, device: str = "cpu",
              progress: Callable[[float, str], None] | None = None,
              on_wait: Callable[[int, float], None] | None = None,
              time_limit_s: float = 600.0) -> CPCResult:
    """Train CPC on the Wikipedia sample (a queued heavy job); evaluate on held-out articles."""
    if not isinstance(cfg, CPCConfig):
        raise ValidationError("Give a CPCConfig.")
    dev = torch.device(device)
    data = cpc_data(cfg.unit, cfg.min_count)
    started = time.perf_counter()
    with heavy_job("CPC training", dev, time_limit_s=time_limit_s, on_wait=on_wait) as job, \
            oom_guard("CPC training", dev, hint="Lower the batch size, window or widths."), \
            cpu_threads(dev):
        model = build_cpc(cfg, data.vocab, str(dev))
        windows = sample_windows(data.held_out, cfg.eval_windows, cfg.window * cfg.stride,
                                 np.random.default_rng(cfg.seed + 1)).to(dev)
        losses, evals = _train_loop(model, data.train, windows, dev, job, progress)
        examples = cpc_examples(model, data, windows)
    return CPCResult(cfg, str(dev), sum(p.numel() for p in model.parameters()), data.vocab,
                     len(data.train), len(data.held_out), tuple(losses), tuple(evals),
                     tuple(examples), time.perf_counter() - started)


def _train_loop(model: CPC, ids: np.ndarray, windows: torch.Tensor, dev, job, progress):
    cfg = model.cfg
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    warm = default_warmup(cfg.steps)

    def step(i: int) -> float:
        set_lr(opt, cfg.lr * warmup_cosine(i, cfg.steps, warm))              # warm-up, cosine to 10 %
        model.train()
        x = sample_windows(ids, cfg.batch_size, cfg.window * cfg.stride, rng).to(dev)   # (B, L)
        loss = cpc_loss(model, model(x), cfg.negatives, gen)
        optimizer_step(opt, loss, model.parameters(), clip=1.0)
        return float(loss.detach())

    def evaluate(done: int) -> CPCEval:
        model.eval()
        return evaluate_cpc(model, windows, done, cfg.seed)

    first = evaluate_cpc(model, windows, 0, cfg.seed)
    log = loop.train(step, cfg.steps, job=job, evaluate=evaluate,
                     eval_at=loop.every_and_last(cfg.steps, cfg.eval_every), progress=progress,
                     message=lambda done, loss: N_(f"Step {done}/{cfg.steps}: loss {loss:.3f} nats"))
    model.eval()
    return log.steps, [first] + [e for _, e in log.evals]
