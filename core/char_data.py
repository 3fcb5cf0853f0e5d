"""Character-level data for the sequence-model page: a fixed vocabulary, encoding, batches.

The vocabulary is printable ASCII (space to "~"), the newline and one unknown
symbol: 97 tokens. Text is first folded towards ASCII (Unicode NFKD, accents
dropped, typographic dashes and quotes replaced), so "café — naïve" becomes
"cafe - naive"; every character still outside the vocabulary maps to the
unknown token and is reported, never silently dropped. The training text is
gensim's bundled Wikipedia sample (core.corpus), split by position into train
(first 90 %) and validation (last 10 %, different articles).
Reference: Karpathy 2015, "The Unreasonable Effectiveness of Recurrent Neural
Networks" (char-level language modelling).
Does not handle: subword tokens (see the tokenization page), other scripts
than Latin (Greek, CJK ... become the unknown token).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import torch

from core.validation import CheckedText, ValidationError, check_int, check_text

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
class CharCorpus:
    train: torch.Tensor              # (N_train,) int64 ids, CPU
    val: torch.Tensor                # (N_val,) int64 ids, CPU
    unigram_entropy_nats: float      # entropy of the train character distribution
    unknown_fraction: float          # share of characters that became the unknown token


@functools.lru_cache(maxsize=2)
def wiki_corpus(max_chars: int = MAX_CORPUS_CHARS) -> CharCorpus:
    """The Wikipedia sample as character ids, split into train and validation."""
    from core.corpus import wiki_text

    max_chars = check_int("Corpus size", max_chars, 10_000, MAX_CORPUS_CHARS)
    return corpus_from_text(wiki_text(max_chars))


def corpus_from_text(text: str) -> CharCorpus:
    """Train/validation split of any text (used for the Wikipedia sample and in tests)."""
    ids = torch.from_numpy(encode_array(text).copy())        # (N,)
    if ids.numel() < 200:
        raise ValidationError("The training text needs at least 200 characters.")
    cut = int(ids.numel() * (1 - VAL_FRACTION))
    counts = torch.bincount(ids[:cut], minlength=VOCAB_SIZE).double()
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * p.log()).sum())
    return CharCorpus(ids[:cut], ids[cut:], entropy, float((ids == UNK_ID).double().mean()))


def sample_batch(data: torch.Tensor, batch: int, block: int, generator: torch.Generator,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: inputs (B, T) and next-character targets (B, T) on ``device``."""
    batch = check_int("Batch size", batch, 1, MAX_BATCH)
    block = check_int("Sequence length", block, 1, MAX_BLOCK)
    if data.numel() <= block + 1:
        raise ValidationError(f"The text is too short for sequences of {block:,} characters.")
    starts = torch.randint(0, data.numel() - block - 1, (batch,), generator=generator)
    offsets = torch.arange(block + 1)
    windows = data[starts[:, None] + offsets[None, :]]      # (B, T + 1)
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
    starts = torch.randint(0, data.numel() - length, (batch,), generator=gen)
    return data[starts[:, None] + torch.arange(length)[None, :]]       # (batch, length)


def as_batch(ids, device: torch.device | str = "cpu") -> torch.Tensor:
    """Token ids (a sequence of ints) as a (1, T) int64 tensor on ``device``."""
    ids = list(ids)
    if not ids:
        raise ValidationError("The text is empty after encoding.")
    return torch.tensor([ids], dtype=torch.long, device=device)
