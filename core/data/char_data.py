"""Character-level data for the small models trained live: vocabularies, encoding, windows.

The default vocabulary is printable ASCII (space to "~"), the newline and one unknown
symbol: 97 tokens. Text is first folded towards ASCII (Unicode NFKD, accents
dropped, typographic dashes and quotes replaced), so "café — naïve" becomes
"cafe - naive"; every character still outside the vocabulary maps to the
unknown token and is reported, never silently dropped. The other vocabulary is a
parameter of the same corpus functions: ``CharVocab``, the most frequent characters
of the text itself (id 0 = unknown, no folding; the MoE page). The training text is
gensim's bundled Wikipedia sample (core.data.corpus), split by position into train
(first 90 % by default) and validation (the rest, different articles). Windows of
consecutive ids are drawn at seeded random offsets (``random_windows``,
``sample_batch``: inputs and next-character targets) or evenly spaced (``even_windows``).
Reference: Karpathy 2015, "The Unreasonable Effectiveness of Recurrent Neural
Networks" (char-level language modelling).
Does not handle: subword tokens (see the tokenization page), other scripts
than Latin (Greek, CJK ... become the unknown token).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from core.data.corpus import wiki_text
from core.runtime.validation import CheckedText, ValidationError, check_float, check_int, check_text

UNK = "\ufffd"                       # "�": stands for any character outside the vocabulary
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127)) + UNK
VOCAB_SIZE = len(VOCAB)              # 97
UNK_ID = VOCAB_SIZE - 1
STOI = {ch: i for i, ch in enumerate(VOCAB)}
VAL_FRACTION = 0.1                   # last 10 % of the corpus is validation text
MAX_CORPUS_CHARS = 3_000_000         # the whole sample (~2.6 M characters) fits
MAX_BATCH = 512                      # caps on one batch: sequences ...
MAX_BLOCK = 4096                     # ... and characters per sequence

_FOLD = str.maketrans({
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " ",
    "\t": " ", "\r": "",
})
_COMBINING = re.compile(r"[\u0300-\u036f]")
_ASCII_TABLE = np.full(129, UNK_ID, dtype=np.int64)
for _ch, _i in STOI.items():
    if ord(_ch) < 128:
        _ASCII_TABLE[ord(_ch)] = _i


@dataclass(frozen=True)
class Encoded:
    ids: tuple[int, ...]             # token ids, one per character of ``text``
    text: str                        # the folded text the ids stand for (len == len(ids))
    unknown: tuple[str, ...]         # distinct characters mapped to the unknown token


def fold(text: str) -> str:
    """Text folded towards ASCII: NFKD, accents dropped, dashes/quotes/tabs replaced."""
    text = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return _COMBINING.sub("", text)


def encode(text: str) -> Encoded:
    """Character ids of ``text`` (after :func:`fold`); unknown characters reported."""
    if not isinstance(text, str):
        raise ValidationError("Text must be text.")
    folded = fold(text)
    codes = np.frombuffer(folded.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    ids = _ASCII_TABLE[np.minimum(codes, 128)]              # (N,)
    unknown = sorted({ch for ch, i in zip(folded, ids.tolist(), strict=True) if i == UNK_ID and ch != UNK})
    return Encoded(tuple(ids.tolist()), folded, tuple(unknown))


def encode_array(text: str) -> np.ndarray:
    """Like :func:`encode` but an int64 array and no report (for whole corpora)."""
    folded = fold(text)
    codes = np.frombuffer(folded.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return _ASCII_TABLE[np.minimum(codes, 128)]


def decode(ids) -> str:
    """Characters for token ids (ids outside the vocabulary become the unknown symbol)."""
    return "".join(VOCAB[i] if 0 <= i < VOCAB_SIZE else UNK for i in (int(x) for x in ids))


@dataclass(frozen=True)
class CharVocab:
    """A vocabulary of a text's own characters: id i + 1 -> chars[i]; id 0 = unknown."""

    chars: str                       # the characters, most frequent first

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> torch.Tensor:
        """Character ids (int64, no folding); characters outside the vocabulary map to 0."""
        codes = np.frombuffer(text.encode("utf-32-le", "replace"), dtype=np.uint32)
        known = np.frombuffer(self.chars.encode("utf-32-le"), dtype=np.uint32)
        order = np.argsort(known)
        pos = np.clip(np.searchsorted(known[order], codes), 0, len(known) - 1)
        hit = known[order][pos] == codes
        return torch.from_numpy(np.where(hit, order[pos] + 1, 0).astype(np.int64))

    def decode(self, ids) -> list[str]:
        return [self.chars[i - 1] if 0 < i <= len(self.chars) else UNK for i in ids]


def build_vocab(text: str, max_size: int, min_count: int) -> CharVocab:
    """The ``max_size - 1`` most frequent characters of ``text`` seen at least ``min_count`` times."""
    counts = Counter(text)
    ranked = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
    return CharVocab("".join(ranked[: max_size - 1]))


@dataclass(frozen=True)
class CharCorpus:
    train: torch.Tensor              # (N_train,) int64 ids, CPU
    val: torch.Tensor                # (N_val,) int64 ids, CPU
    unigram_entropy_nats: float      # entropy of the train character distribution
    unknown_fraction: float          # share of characters that became the unknown token
    vocab: CharVocab | None = None   # None: the fixed printable-ASCII vocabulary (VOCAB)


@functools.lru_cache(maxsize=3)          # one corpus per page that trains on it (RNN, MoE, MTP)
def wiki_corpus(max_chars: int = MAX_CORPUS_CHARS, vocab_size: int | None = None, min_count: int = 1,
                val_fraction: float = VAL_FRACTION) -> CharCorpus:
    """The Wikipedia sample as character ids, split into train and validation.

    ``vocab_size`` None: the fixed vocabulary; a number: a CharVocab of that size built
    from the sample's characters seen at least ``min_count`` times.
    """
    max_chars = check_int("Corpus size", max_chars, 10_000, MAX_CORPUS_CHARS)
    text = wiki_text(max_chars)
    vocab = None if vocab_size is None else build_vocab(text, check_int("Vocabulary size", vocab_size, 2, 4096),
                                                        min_count)
    return corpus_from_text(text, vocab, val_fraction)


def corpus_from_text(text: str, vocab: CharVocab | None = None,
                     val_fraction: float = VAL_FRACTION) -> CharCorpus:
    """Train/validation split of any text: the first 1 - ``val_fraction`` trains."""
    ids = torch.from_numpy(encode_array(text).copy()) if vocab is None else vocab.encode(text)   # (N,)
    if ids.numel() < 200:
        raise ValidationError("The training text needs at least 200 characters.")
    check_float("Validation share", val_fraction, 0.0, 0.5, lo_open=True)
    cut = int(ids.numel() * (1 - val_fraction))
    size, unknown = (VOCAB_SIZE, UNK_ID) if vocab is None else (vocab.size, 0)
    counts = torch.bincount(ids[:cut], minlength=size).double()
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * p.log()).sum())
    return CharCorpus(ids[:cut], ids[cut:], entropy, float((ids == unknown).double().mean()), vocab)


def random_windows(data: torch.Tensor, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` windows of ``length`` consecutive ids at random offsets: (batch, length), on data's device."""
    if data.numel() <= length:
        raise ValidationError(f"The text is shorter than {length:,} characters.")
    starts = torch.randint(0, data.numel() - length, (batch,), generator=generator)
    return data[starts[:, None] + torch.arange(length)[None, :]]            # (batch, length)


def even_windows(data: torch.Tensor, count: int, length: int) -> torch.Tensor:
    """``count`` windows of ``length`` ids at evenly spaced offsets (a fixed held-out set)."""
    if data.numel() <= length:
        raise ValidationError(f"The text is shorter than {length:,} characters.")
    starts = torch.linspace(0, data.numel() - length - 1, count).long()
    return data[starts[:, None] + torch.arange(length)[None, :]]            # (count, length)


def sample_batch(data: torch.Tensor, batch: int, block: int, generator: torch.Generator,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: inputs (B, T) and next-character targets (B, T) on ``device``."""
    batch = check_int("Batch size", batch, 1, MAX_BATCH)
    block = check_int("Sequence length", block, 1, MAX_BLOCK)
    if data.numel() <= block + 1:
        raise ValidationError(f"The text is too short for sequences of {block:,} characters.")
    windows = random_windows(data, batch, block + 1, generator)  # (B, T + 1)
    x, y = windows[:, :-1], windows[:, 1:]                  # (B, T), (B, T)
    return x.to(device), y.to(device)


@dataclass(frozen=True)
class PreparedText:
    checked: CheckedText             # the user's text after the length cap (truncated flag)
    encoded: Encoded                 # ids of the folded text, unknown characters


def prepare_text(text, max_chars: int) -> PreparedText:
    """A user's text checked (not empty, capped at ``max_chars``) and encoded."""
    checked = check_text(text, max_chars=max_chars, name="The text")
    encoded = encode(checked.text)
    if len(encoded.ids) > max_chars:                # folding can lengthen ("ﬁ" -> "fi")
        encoded = Encoded(encoded.ids[:max_chars], encoded.text[:max_chars], encoded.unknown)
    return PreparedText(checked, encoded)


def corpus_window(data: torch.Tensor, length: int, seed: int = 0, batch: int = 1) -> torch.Tensor:
    """``batch`` windows of ``length`` ids from ``data`` at seeded random offsets: (batch, length)."""
    length = check_int("Window length", length, 2, MAX_BLOCK + 1)
    batch = check_int("Windows", batch, 1, MAX_BATCH)
    if data.numel() <= length:
        raise ValidationError(f"The text is shorter than {length:,} characters.")
    gen = torch.Generator().manual_seed(check_int("Seed", seed, 0, 2**31 - 1))
    return random_windows(data, batch, length, gen)                    # (batch, length)


def as_batch(ids, device: torch.device | str = "cpu") -> torch.Tensor:
    """Token ids (a sequence of ints) as a (1, T) int64 tensor on ``device``."""
    ids = list(ids)
    if not ids:
        raise ValidationError("The text is empty after encoding.")
    return torch.tensor([ids], dtype=torch.long, device=device)
