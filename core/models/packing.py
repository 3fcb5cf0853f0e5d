"""Sequence packing: padded batches vs packed rows, cu_seqlens, block-diagonal masks.

Training on variable-length samples, a padded batch computes every sequence
at the batch's longest length; the pad positions are pure waste. Packing puts
whole sequences end to end in rows of a fixed capacity (bin packing: greedy
next-fit, first-fit decreasing, best-fit decreasing), so almost every position
is a real token. To keep the result identical to running each sequence alone,
attention must not cross sequence boundaries (a block-diagonal causal mask
built from ``cu_seqlens``, the cumulative sequence lengths of FlashAttention's
varlen interface) and position ids must restart at 0 for every sequence.

Parts
- Length distributions: real token counts (``core.tokenizers.encode_ids``) of
  the Wikipedia sample's paragraphs or articles, or of a user's text, cut into
  samples of at most ``max_len`` tokens (+1 end-of-text token per sample).
- Packing strategies and their efficiency (real tokens / computed positions).
- ``cu_seqlens``, document ids, restarting position ids, block masks.
- :class:`PackedTransformer`: core.nn's pre-norm blocks (RMSNorm, multi-head
  attention with RoPE or learned absolute positions, SwiGLU MLP) that run a packed
  row through SDPA with a block mask, a per-sequence varlen loop, FlexAttention
  (the last two as core.nn attention backends of their own), or core.nn's readable
  "naive" reference; :func:`compare_layer` shows that
  packed == per-sequence, and what a plain causal mask or non-restarting
  position ids do to each sequence.
- :func:`measure_throughput`: tokens/s and memory of padded vs packed
  forward+backward on this device.

Varlen attention here. On the CPU build of torch 2.13, nested (jagged) tensors
refuse ``is_causal`` in SDPA, and FlexAttention runs forward only (no CPU
backward). So packed attention is SDPA with a block-diagonal boolean mask
(computes all C x C scores of a row, masks most of them) or a Python loop of
causal SDPA calls over ``cu_seqlens`` (exact varlen work, many small calls);
FlexAttention with a document mask (skips fully masked blocks) is used on CUDA.

References
- Krell et al. 2021, "Efficient Sequence Packing without Cross-contamination"
  (arXiv:2107.02027), sections 3-4: packing algorithms, the block mask and
  position-id reset.
- Dao 2023, FlashAttention-2, section 3 and the flash-attn README
  (``flash_attn_varlen_func`` with ``cu_seqlens``).
- Johnson 1973 / Garey & Johnson 1979: first-fit decreasing uses at most
  11/9 OPT + 6/9 bins (Dosa 2007).
- Su et al. 2021, RoFormer (RoPE), section 3.4.2: scores depend on i - j only.
- Radford et al. 2019 (GPT-2), section 2.3: learned absolute position embeddings.

Does not handle: sequences longer than the pack length (cut them first, see
:func:`cut_lengths`), packing across data-parallel ranks, or loss weighting
per sequence (each real token counts once).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.data.corpus import wiki_articles
from core.measure.timing import peak_memory_bytes, time_fn
from core.nn import DecoderBlock, attend, rope_cos_sin
from core.nn.attention import AttentionShape
from core.runtime.device import oom_guard
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import ValidationError, check_choice, check_int, check_text
from core.tokenizers import encode_ids, eos_id

MAX_SEQUENCES = 200_000       # lengths per packing call
MAX_CAPACITY = 131_072        # tokens per packed row
MAX_SAMPLE_TOKENS = 131_072   # longest sample a user may ask for
MAX_TEXT_CHARS = 2_000_000    # a user's own corpus
MAX_COMPARE_TOKENS = 4_096    # tokens in the packed-vs-per-sequence layer check
MAX_COMPARE_SEQUENCES = 64
MAX_BENCH_SEQUENCES = 4_096   # sequences in one throughput measurement
MAX_BENCH_TOKENS = 2_000_000  # real tokens in one throughput measurement
MAX_MODEL_WIDTH = 8_192
MAX_MODEL_LAYERS = 48

UNITS = ("paragraph", "article")
DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16,
          "float16": torch.float16}
ATTENTION = ("sdpa", "varlen-loop", "flex", "reference")
NORM_EPS = 1e-6               # RMSNorm epsilon
POSITIONS = ("rope", "learned")


# ====================================================================== lengths
def check_lengths(lengths, capacity: int | None = None, *, name: str = "Sequence lengths") -> list[int]:
    """Positive integer lengths; with ``capacity``, none may be longer than the pack length."""
    if lengths is None or isinstance(lengths, (str, bytes)):
        raise ValidationError(f"{name} must be a list of whole numbers.")
    values = list(lengths)
    if not values:
        raise ValidationError(f"{name}: there are no sequences (empty batch).")
    if len(values) > MAX_SEQUENCES:
        raise ValidationError(f"At most {MAX_SEQUENCES:,} sequences at a time (got {len(values):,}).")
    out = [check_int("A sequence length", v, 1, MAX_SAMPLE_TOKENS) for v in values]
    if capacity is not None:
        longest = max(out)
        if longest > capacity:
            raise ValidationError(
                f"The pack length ({capacity:,} tokens) is shorter than the longest sequence "
                f"({longest:,} tokens, #{out.index(longest)}). Raise the pack length or cut "
                f"samples at {capacity:,} tokens or fewer."
            )
    return out


def parse_lengths(text: str, *, max_sequences: int = MAX_COMPARE_SEQUENCES) -> list[int]:
    """``"5, 3, 7"`` -> [5, 3, 7]: lengths typed by a user (commas or spaces)."""
    checked = check_text(text, max_chars=10_000, name="Sequence lengths")
    parts = [p for p in re.split(r"[\s,;]+", checked.text.strip()) if p]
    if len(parts) > max_sequences:
        raise ValidationError(f"At most {max_sequences} sequences here (got {len(parts)}).")
    values = []
    for part in parts:
        if not re.fullmatch(r"\d{1,7}", part):
            raise ValidationError(f"Sequence lengths must be whole numbers; {part[:20]!r} is not.")
        values.append(int(part))
    return check_lengths(values)


def cut_lengths(doc_lengths: Sequence[int], max_len: int) -> list[int]:
    """Cut documents into samples of at most ``max_len`` tokens: 1000 at 512 -> [512, 488]."""
    max_len = check_int("Maximum sample length", max_len, 1, MAX_SAMPLE_TOKENS)
    out: list[int] = []
    for n in doc_lengths:
        n = int(n)
        full, rest = divmod(n, max_len)
        out.extend([max_len] * full)
        if rest:
            out.append(rest)
    return out


def split_documents(text: str, unit: str) -> list[str]:
    """Paragraphs (one per non-empty line) or articles (separated by a blank line)."""
    unit = check_choice("Unit", unit, UNITS)
    if unit == "paragraph":
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]


def document_token_counts(texts: Sequence[str], tokenizer: str = "cl100k_base",
                          add_eos: bool = True) -> list[int]:
    """Real token counts of ``texts`` (core.tokenizers), +1 for the end-of-text token that
    separates documents in packed data (when the tokenizer has one); empty texts dropped."""
    extra = 1 if add_eos and eos_id(tokenizer) is not None else 0
    counts = [len(encode_ids(tokenizer, t)) for t in texts]
    return [n + extra for n in counts if n > 0]


def sample_lengths(texts: Sequence[str], *, tokenizer: str = "cl100k_base",
                   max_len: int = 2048, add_eos: bool = True) -> list[int]:
    """Token lengths of training samples: each text tokenized, +1 end-of-text, cut at ``max_len``."""
    counts = document_token_counts(texts, tokenizer, add_eos)
    if not counts:
        raise ValidationError("The text holds no tokens to pack.")
    return cut_lengths(counts, max_len)


def corpus_documents(unit: str = "paragraph") -> list[str]:
    """The Wikipedia sample (core.data.corpus) as paragraphs or whole articles."""
    unit = check_choice("Unit", unit, UNITS)
    if unit == "article":
        return [a.text for a in wiki_articles()]
    return [p for a in wiki_articles() for p in a.text.split("\n") if p.strip()]


def text_documents(text: str, unit: str = "paragraph") -> list[str]:
    """A user's text as documents; refuses empty text, caps very long text."""
    checked = check_text(text, max_chars=MAX_TEXT_CHARS, name="Your text")
    docs = split_documents(checked.text, unit)
    if not docs:
        raise ValidationError("Your text holds no documents to pack.")
    return docs


def source_token_counts(source: str, unit: str = "paragraph", tokenizer: str = "cl100k_base",
                        text: str = "") -> list[int]:
    """Token counts (+1 end-of-text) of the Wikipedia sample's documents (``source="wiki"``) or of
    the user's ``text`` (``source="text"``), split by ``unit``; refuses data without tokens."""
    source = check_choice("Samples", source, ("wiki", "text"))
    docs = corpus_documents(unit) if source == "wiki" else text_documents(text, unit)
    counts = document_token_counts(docs, tokenizer)
    if not counts:
        raise ValidationError("The text holds no tokens to pack.")
    return counts


def sample_sequences(lengths: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """``n`` lengths drawn without replacement (a benchmark's sample of the data)."""
    values = check_lengths(lengths)
    n = check_int("Number of sequences", n, 1, MAX_BENCH_SEQUENCES)
    if n > len(values):
        raise ValidationError(f"Asked for {n:,} sequences; the data has {len(values):,}.")
    return random.Random(seed).sample(values, n)


def length_histogram(lengths: Sequence[int], bins: int = 40) -> dict:
    """Counts of lengths in equal-width bins: {"edges": [...], "counts": [...]} (edges: bins + 1)."""
    values = check_lengths(lengths)
    hi = max(values)
    width = max(1, math.ceil(hi / bins))
    edges = [i * width for i in range(bins + 1)]
    counts = [0] * bins
    for n in values:
        counts[min((n - 1) // width, bins - 1)] += 1
    return {"edges": edges, "counts": counts}


def lengths_from_histogram(hist: dict, n: int, seed: int = 0) -> list[int]:
    """``n`` synthetic lengths drawn from a recorded histogram (uniform inside a bin)."""
    n = check_int("Number of sequences", n, 1, MAX_SEQUENCES)
    edges, counts = list(hist["edges"]), list(hist["counts"])
    if len(edges) != len(counts) + 1 or sum(counts) <= 0:
        raise ValidationError("A length histogram needs len(edges) == len(counts) + 1 and some counts.")
    rng = random.Random(seed)
    bins = rng.choices(range(len(counts)), weights=counts, k=n)
    return [rng.randint(edges[b] + 1, max(edges[b] + 1, edges[b + 1])) for b in bins]


# ====================================================================== packing
@dataclass(frozen=True)
class Packing:
    """How one strategy lays sequences out in rows (a row = one line of a batch)."""

    strategy: str
    rows: tuple[tuple[int, ...], ...]   # sequence indices in each row, in row order
    row_tokens: tuple[int, ...]         # real tokens in each row
    row_width: tuple[int, ...]          # positions computed for each row (incl. padding)
    pieces: tuple[tuple[int, ...], ...]  # tokens of each entry of ``rows`` (a cut sequence: its part)
    split_sequences: int = 0            # sequences cut across two rows (concat-chunk only)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def real_tokens(self) -> int:
        return sum(self.row_tokens)

    @property
    def slots(self) -> int:
        """Token positions computed (real + padding)."""
        return sum(self.row_width)

    @property
    def efficiency(self) -> float:
        return self.real_tokens / self.slots if self.slots else 0.0

    @property
    def waste(self) -> float:
        """Fraction of computed positions that are padding."""
        return 1.0 - self.efficiency


STRATEGIES = {
    "pad-max": N_("Pad to max length (static shape)"),
    "pad-batch": N_("Pad to the batch's longest"),
    "pad-sorted": N_("Pad, length-grouped batches"),
    "next-fit": N_("Greedy packing (next-fit)"),
    "ffd": N_("First-fit decreasing"),
    "bfd": N_("Best-fit decreasing"),
    "concat-chunk": N_("Concatenate & chunk (cuts sequences)"),
}


def pad_batches(lengths: Sequence[int], batch_size: int, *, width: int | None = None,
                sort: bool = False) -> Packing:
    """One sequence per row; each batch of ``batch_size`` rows is padded to its longest
    (or to a fixed ``width``). ``sort`` groups similar lengths (length-grouped batching)."""
    values = check_lengths(lengths, width)
    batch_size = check_int("Batch size", batch_size, 1, MAX_SEQUENCES)
    order = sorted(range(len(values)), key=lambda i: -values[i]) if sort else list(range(len(values)))
    rows, widths = [], []
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        w = width if width is not None else max(values[i] for i in batch)
        rows.extend((i,) for i in batch)
        widths.extend([w] * len(batch))
    name = "pad-max" if width is not None else ("pad-sorted" if sort else "pad-batch")
    pieces = tuple((values[r[0]],) for r in rows)
    return Packing(name, tuple(rows), tuple(p[0] for p in pieces), tuple(widths), pieces)


def pack_next_fit(lengths: Sequence[int], capacity: int) -> Packing:
    """Greedy (next-fit): append to the open row while the sequence fits, else open a new row."""
    capacity = check_int("Pack length", capacity, 1, MAX_CAPACITY)
    values = check_lengths(lengths, capacity)
    rows: list[list[int]] = [[]]
    used = [0]
    for i, n in enumerate(values):
        if used[-1] + n > capacity:
            rows.append([])
            used.append(0)
        rows[-1].append(i)
        used[-1] += n
    return _packed("next-fit", rows, values, capacity)


def _packed(name: str, rows: list[list[int]], values: list[int], capacity: int) -> Packing:
    pieces = tuple(tuple(values[i] for i in r) for r in rows)
    return Packing(name, tuple(tuple(r) for r in rows), tuple(sum(p) for p in pieces),
                   (capacity,) * len(rows), pieces)


def _decreasing(values: list[int]) -> list[int]:
    """Indices by decreasing length, ties by index (stable, so results are reproducible)."""
    return sorted(range(len(values)), key=lambda i: (-values[i], i))


def pack_ffd(lengths: Sequence[int], capacity: int) -> Packing:
    """First-fit decreasing in O(n log n): a max-tree over the rows' free space finds the
    leftmost row with room (:func:`pack_ffd_reference` is the readable O(n * rows) loop)."""
    capacity = check_int("Pack length", capacity, 1, MAX_CAPACITY)
    values = check_lengths(lengths, capacity)
    size = 1 << max(0, (len(values) - 1).bit_length())
    tree = [0] * size + [capacity] * size          # leaves: free space of (possible) rows
    for node in range(size - 1, 0, -1):
        tree[node] = max(tree[2 * node], tree[2 * node + 1])
    rows: list[list[int]] = []
    for i in _decreasing(values):
        node = 1
        while node < size:                          # walk down to the leftmost leaf with room
            node = 2 * node if tree[2 * node] >= values[i] else 2 * node + 1
        leaf = node - size
        if leaf == len(rows):
            rows.append([])
        rows[leaf].append(i)
        tree[node] -= values[i]
        while node > 1:
            node //= 2
            tree[node] = max(tree[2 * node], tree[2 * node + 1])
    return _packed("ffd", rows, values, capacity)


def pack_ffd_reference(lengths: Sequence[int], capacity: int) -> Packing:
    """First-fit decreasing, the textbook loop: each sequence goes to the first row it fits."""
    values = check_lengths(lengths, capacity)
    rows: list[list[int]] = []
    used: list[int] = []
    for i in _decreasing(values):
        for r in range(len(rows)):
            if used[r] + values[i] <= capacity:
                rows[r].append(i)
                used[r] += values[i]
                break
        else:
            rows.append([i])
            used.append(values[i])
    return _packed("ffd", rows, values, capacity)


def pack_bfd(lengths: Sequence[int], capacity: int) -> Packing:
    """Best-fit decreasing: each sequence goes to the row it fills most tightly (least room
    left; ties to the oldest row). A sorted list of (free, row) keeps the search O(log rows)."""
    capacity = check_int("Pack length", capacity, 1, MAX_CAPACITY)
    values = check_lengths(lengths, capacity)
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []               # sorted (free space, row index)
    for i in _decreasing(values):
        k = bisect.bisect_left(free, (values[i], -1))
        if k == len(free):
            rows.append([i])
            bisect.insort(free, (capacity - values[i], len(rows) - 1))
            continue
        room, r = free.pop(k)
        rows[r].append(i)
        bisect.insort(free, (room - values[i], r))
    return _packed("bfd", rows, values, capacity)


def pack_bfd_reference(lengths: Sequence[int], capacity: int) -> Packing:
    """Best-fit decreasing, the readable loop over every row."""
    values = check_lengths(lengths, capacity)
    rows: list[list[int]] = []
    used: list[int] = []
    for i in _decreasing(values):
        fits = [(capacity - used[r], r) for r in range(len(rows)) if used[r] + values[i] <= capacity]
        if fits:
            r = min(fits)[1]
            rows[r].append(i)
            used[r] += values[i]
        else:
            rows.append([i])
            used.append(values[i])
    return _packed("bfd", rows, values, capacity)


def concat_chunk(lengths: Sequence[int], capacity: int) -> Packing:
    """Pretraining style: concatenate everything, cut rows of exactly ``capacity`` tokens.
    No padding except in the last row, but sequences are cut across rows."""
    capacity = check_int("Pack length", capacity, 1, MAX_CAPACITY)
    values = check_lengths(lengths)
    rows: list[list[int]] = [[]]
    pieces: list[list[int]] = [[]]
    split = fill = 0
    for i, n in enumerate(values):
        parts = 0
        while n > 0:
            if fill == capacity:
                rows.append([])
                pieces.append([])
                fill = 0
            take = min(n, capacity - fill)
            rows[-1].append(i)
            pieces[-1].append(take)
            fill, n, parts = fill + take, n - take, parts + 1
        split += parts > 1
    return Packing("concat-chunk", tuple(tuple(r) for r in rows), tuple(sum(p) for p in pieces),
                   (capacity,) * len(rows), tuple(tuple(p) for p in pieces), split)


def pack(strategy: str, lengths: Sequence[int], *, capacity: int, batch_size: int = 8,
         max_len: int | None = None) -> Packing:
    """Dispatch by strategy name (see :data:`STRATEGIES`)."""
    strategy = check_choice("Strategy", strategy, STRATEGIES)
    if strategy == "pad-max":
        return pad_batches(lengths, batch_size, width=max_len or max(check_lengths(lengths)))
    if strategy in ("pad-batch", "pad-sorted"):
        return pad_batches(lengths, batch_size, sort=strategy == "pad-sorted")
    fn = {"next-fit": pack_next_fit, "ffd": pack_ffd, "bfd": pack_bfd, "concat-chunk": concat_chunk}
    return fn[strategy](lengths, capacity)


@dataclass(frozen=True)
class StrategyStats:
    strategy: str                 # key of STRATEGIES
    label: str                    # human name
    rows: int                     # rows (padded: sequences)
    batches: int                  # batches at the shared batch shape
    real_tokens: int
    slots: int                    # positions computed, padding included
    efficiency: float             # real / slots
    waste: float                  # padding / slots
    tokens_per_batch: float       # real tokens per batch
    attention_scores: int         # score entries an attention over full rows computes (sum of width^2)
    varlen_scores: int            # score entries a varlen kernel computes (sum of length^2)
    split_sequences: int          # sequences cut across rows


def loader_order(lengths: Sequence[int], seed: int | None = 0) -> list[int]:
    """The sequences in the order a shuffling data loader sees them (``seed=None``: as given)."""
    values = check_lengths(lengths)
    if seed is not None:
        random.Random(seed).shuffle(values)
    return values


def compare_strategies(lengths: Sequence[int], *, capacity: int, batch_size: int,
                       max_len: int | None = None, seed: int | None = 0,
                       strategies: Sequence[str] = tuple(STRATEGIES)) -> list[StrategyStats]:
    """Every strategy on the same (shuffled, like a data loader) sequences.

    Batches share one shape budget: a padded batch is ``batch_size`` x ``max_len``
    tokens, so a packed batch holds ``max(1, batch_size * max_len // capacity)`` rows.
    """
    values = check_lengths(lengths)
    capacity = check_int("Pack length", capacity, 1, MAX_CAPACITY)
    check_lengths(values, capacity)
    batch_size = check_int("Batch size", batch_size, 1, MAX_SEQUENCES)
    max_len = max(values) if max_len is None else check_int("Maximum sample length", max_len, 1, MAX_SAMPLE_TOKENS)
    values = loader_order(values, seed)
    rows_per_batch = max(1, batch_size * max_len // capacity)
    out = []
    for name in strategies:
        p = pack(name, values, capacity=capacity, batch_size=batch_size, max_len=max(max_len, max(values)))
        per_batch = batch_size if name.startswith("pad") else rows_per_batch
        batches = math.ceil(p.n_rows / per_batch)
        out.append(StrategyStats(
            name, STRATEGIES[name], p.n_rows, batches, p.real_tokens, p.slots, p.efficiency,
            p.waste, p.real_tokens / batches, sum(w * w for w in p.row_width),
            sum(n * n for n in values), p.split_sequences))
    return out


def strategy_layout(strategy: str, lengths: Sequence[int], *, capacity: int, batch_size: int,
                    max_len: int | None = None, seed: int | None = 0) -> tuple[Packing, tuple[int, ...]]:
    """The :class:`Packing` of one strategy on the same shuffled sequences :func:`compare_strategies`
    sees, and those sequences (a row's pieces index into them)."""
    values = loader_order(lengths, seed)
    return pack(strategy, values, capacity=capacity, batch_size=batch_size, max_len=max_len), tuple(values)


# ====================================================================== packed tensors
def cu_seqlens(lengths: Sequence[int]) -> torch.Tensor:
    """Cumulative sequence lengths [0, l0, l0+l1, ...] (int32, as flash-attn's varlen API wants)."""
    values = check_lengths(lengths)
    return torch.tensor([0, *itertools.accumulate(values)], dtype=torch.int32)   # (n + 1,)


def document_ids(cu: torch.Tensor, total: int | None = None) -> torch.Tensor:
    """Which sequence each position belongs to: (T,) long, -1 for padding after cu[-1]."""
    cu = cu.to(torch.long)
    n_real = int(cu[-1])
    total = n_real if total is None else int(total)
    if total < n_real:
        raise ValidationError(f"A row of {total} positions cannot hold {n_real} tokens.")
    ids = torch.repeat_interleave(torch.arange(len(cu) - 1), cu.diff())          # (n_real,)
    return torch.cat([ids, torch.full((total - n_real,), -1, dtype=torch.long)])  # (T,)


def restarting_positions(cu: torch.Tensor, total: int | None = None) -> torch.Tensor:
    """Position ids that restart at 0 for every sequence: (T,) long (padding: 0, 1, ...)."""
    cu = cu.to(torch.long)
    doc = document_ids(cu, total)                                                 # (T,)
    starts = torch.cat([cu[:-1], cu[-1:]])                                        # pad run starts at cu[-1]
    return torch.arange(len(doc)) - starts[torch.where(doc >= 0, doc, len(cu) - 1)]


def block_causal_mask(doc: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Boolean "may attend" mask from document ids (B, T) -> (B, 1, T, T).

    Query i sees key j iff both are in the same sequence (and j <= i if causal).
    Padding (id -1) sees only padding, so no row of the mask is empty.
    """
    same = doc[:, :, None] == doc[:, None, :]                                     # (B, T, T)
    if causal:
        T = doc.shape[-1]
        same = same & torch.ones(T, T, dtype=torch.bool, device=doc.device).tril()
    return same[:, None]                                                          # (B, 1, T, T)


@dataclass(frozen=True)
class RowLayout:
    """One packed row spelled out (for display)."""

    cu_seqlens: tuple[int, ...]
    doc: tuple[int, ...]              # sequence id of each position (-1 = padding)
    positions: tuple[int, ...]        # restarting position ids
    block_mask: torch.Tensor          # (T, T) bool, block-diagonal causal
    causal_mask: torch.Tensor         # (T, T) bool, plain causal


def row_layout(lengths: Sequence[int], row: int) -> RowLayout:
    """cu_seqlens, ids, positions and both masks for sequences packed into a row of ``row``."""
    values = check_lengths(lengths)
    row = check_int("Row length", row, 1, 4096)
    check_lengths([sum(values)], row, name="The packed row")
    cu = cu_seqlens(values)
    doc = document_ids(cu, row)                                                    # (T,)
    return RowLayout(tuple(cu.tolist()), tuple(doc.tolist()), tuple(restarting_positions(cu, row).tolist()),
                     block_causal_mask(doc[None])[0, 0], torch.ones(row, row, dtype=torch.bool).tril())


def segments(doc_row: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) of each run of equal ids in one row (padding runs included)."""
    ids = doc_row.tolist()
    out, start = [], 0
    for t in range(1, len(ids) + 1):
        if t == len(ids) or ids[t] != ids[start]:
            out.append((start, t))
            start = t
    return out


# ====================================================================== the layer
@dataclass(frozen=True)
class LayerConfig:
    d_model: int = 64             # model width
    n_heads: int = 4              # attention heads (d_model % n_heads == 0, head dim even)
    d_ff: int = 172               # SwiGLU inner width
    n_layers: int = 1             # pre-norm blocks
    positions: str = "rope"       # "rope" (rotary, relative) | "learned" (absolute table, GPT-2)
    max_positions: int = 8192     # rows of the learned position table
    rope_base: float = 10_000.0   # RoPE frequency base
    seed: int = 0                 # weight initialisation

    def __post_init__(self) -> None:
        check_int("Model width", self.d_model, 8, MAX_MODEL_WIDTH)
        check_int("Heads", self.n_heads, 1, 256)
        check_int("Layers", self.n_layers, 1, MAX_MODEL_LAYERS)
        check_int("MLP width", self.d_ff, 1, 8 * MAX_MODEL_WIDTH)
        check_int("Position table size", self.max_positions, 1, MAX_CAPACITY)
        check_choice("Positions", self.positions, POSITIONS)
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValidationError("The model width must split into heads of an even width.")


@dataclass(frozen=True)
class LayerInternals:
    attention: torch.Tensor | None   # (B, H, T, T) first block's probabilities (reference path only)
    mask: torch.Tensor | None        # (B, 1, T, T) the boolean mask used; None = plain causal


def attention_path(doc: torch.Tensor | None, attn: str = "sdpa"):
    """(core.nn attention backend, causal, mask) for causal attention inside each sequence of
    ``doc`` (B, T) (None: plain causal) along the path ``attn``."""
    if attn == "varlen-loop" and doc is not None:
        return functools.partial(_varlen_loop, doc=doc), False, None
    if attn == "flex":
        return functools.partial(_flex, doc=doc), False, None
    backend = "naive" if attn == "reference" else "sdpa"
    return (backend, True, None) if doc is None else (backend, False, block_causal_mask(doc))


def _reference_attention(q, k, v, doc):
    """softmax(q k^T / sqrt(d) + mask) v written out (core.nn's naive backend); keeps the probabilities."""
    backend, causal, mask = attention_path(doc, "reference")
    return attend(q, k, v, backend=backend, causal=causal, mask=mask, return_probs=True)


def _varlen_loop(q, k, v, *, doc, causal, mask, scale, dropout, return_probs):
    """What a varlen kernel computes: causal attention on each sequence alone, no masked work."""
    out = torch.empty_like(q)                                                      # (B, H, T, hd)
    for b in range(doc.shape[0]):
        for s, e in segments(doc[b]):
            out[b:b + 1, :, s:e] = F.scaled_dot_product_attention(
                q[b:b + 1, :, s:e], k[b:b + 1, :, s:e], v[b:b + 1, :, s:e], is_causal=True, scale=scale)
    return out, None


def _flex(q, k, v, *, doc, causal, mask, scale, dropout, return_probs):
    return flex_document_attention(q, k, v, doc, compile=q.device.type == "cuda"), None


def flex_document_attention(q, k, v, doc: torch.Tensor | None, *, compile: bool = True):
    """FlexAttention with a document mask (B, T): blocks with no allowed entry are skipped.
    ``compile``: torch.compile'd kernel (CUDA); eager otherwise (on CPU: forward only)."""
    # optional: older torch builds have no FlexAttention (flex_available() says so)
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    B, _, T, _ = q.shape
    if doc is None:
        def mask_mod(b, h, qi, ki):
            return qi >= ki
    else:
        def mask_mod(b, h, qi, ki):
            return (doc[b, qi] == doc[b, ki]) & (qi >= ki)
    block = create_block_mask(mask_mod, B, None, T, T, device=q.device)
    fn = _compiled_flex() if compile else flex_attention
    return fn(q, k, v, block_mask=block)


_FLEX: list = []


def _compiled_flex():
    if not _FLEX:
        # optional: older torch builds have no FlexAttention (flex_available() says so)
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX.append(torch.compile(flex_attention, dynamic=False))
    return _FLEX[0]


def flex_available(device: torch.device | str, backward: bool = True) -> bool:
    """FlexAttention runs here (CPU torch 2.13: forward only, so False with ``backward``)."""
    try:
        # optional: probes for FlexAttention, which older torch builds lack
        import torch.nn.attention.flex_attention
    except ImportError:
        return False
    return torch.device(device).type == "cuda" or not backward


class Block(DecoderBlock):
    """core.nn's pre-norm block (RMSNorm, RoPE, SwiGLU, no biases), attending inside each sequence."""

    def __init__(self, cfg: LayerConfig) -> None:
        d = cfg.d_model
        super().__init__(AttentionShape(d, cfg.n_heads, cfg.n_heads, d // cfg.n_heads), d_ff=cfg.d_ff,
                         mlp="swiglu", norm="rmsnorm", norm_eps=NORM_EPS)
        self.cfg = cfg

    def forward(self, x, rope, doc, attn):
        """x (B, T, D) -> (x, probabilities (B, H, T, T) on the reference path else None)."""
        backend, causal, mask = attention_path(doc, attn)
        x, inner = super().forward(x, rope=rope, backend=backend, causal=causal, mask=mask,
                                   return_internals=attn == "reference")
        return x, (inner.probs if inner is not None else None)


class PackedTransformer(nn.Module):
    """A stack of blocks that takes explicit position ids and document ids.

    ``forward(x, positions, doc)``: x (B, T, D) token vectors, positions (B, T),
    doc (B, T) sequence ids (-1 = padding) or None for a plain causal mask.
    """

    def __init__(self, cfg: LayerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pos = nn.Embedding(cfg.max_positions, cfg.d_model) if cfg.positions == "learned" else None
        if self.pos is not None:
            nn.init.normal_(self.pos.weight, std=0.5)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))

    def forward(self, x, positions, doc=None, *, attn: str = "sdpa", return_internals: bool = False):
        attn = check_choice("Attention", attn, ATTENTION)
        if int(positions.max()) >= self.cfg.max_positions and self.pos is not None:
            raise ValidationError(f"Position {int(positions.max()):,} is past the learned table "
                                  f"({self.cfg.max_positions:,} positions).")
        rope = None
        if self.pos is not None:
            x = x + self.pos(positions)                                                    # (B, T, D)
        else:
            rope = rope_cos_sin(positions, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_base, x.dtype)  # (B, 1, T, hd/2)
        first = None
        for i, block in enumerate(self.blocks):
            x, probs = block(x, rope, doc, attn)
            first = probs if i == 0 else first
        if not return_internals:
            return x
        mask = None if doc is None else block_causal_mask(doc)
        return x, LayerInternals(first, mask)


def build_model(cfg: LayerConfig, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> PackedTransformer:
    """The model with weights drawn from ``cfg.seed`` (the same weights in every dtype)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = PackedTransformer(cfg)
    return model.to(device=torch.device(device), dtype=dtype)


# ====================================================================== packed == alone?
VARIANTS = {
    "packed": N_("Block mask + restarting positions (correct packing)"),
    "plain-causal": N_("Plain causal mask (attends across sequences)"),
    "positions-continue": N_("Block mask, position ids not restarting"),
    "naive": N_("Plain causal mask and positions not restarting"),
}
NOISE = {"float64": 1e-12, "float32": 1e-5, "bfloat16": 3e-2, "float16": 3e-3}   # rel. error of rounding


@dataclass(frozen=True)
class VariantError:
    variant: str                  # key of VARIANTS
    label: str
    max_abs: tuple[float, ...]    # per sequence: max |packed - alone|
    rel: tuple[float, ...]        # per sequence: ||packed - alone|| / ||alone||


@dataclass(frozen=True)
class LayerComparison:
    lengths: tuple[int, ...]
    cu_seqlens: tuple[int, ...]
    positions: str                # "rope" | "learned"
    dtype: str
    attn: str
    noise: float                  # relative error expected from rounding alone in this dtype
    variants: tuple[VariantError, ...]
    attention: dict               # variant -> (T, T) head-averaged probabilities (short rows only)


def _packed_inputs(lengths: list[int], d: int, seed: int, dtype, device):
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(n, d, generator=gen, dtype=torch.float64).to(device, dtype) for n in lengths]
    cu = cu_seqlens(lengths)
    T = int(cu[-1])
    cases = {
        "packed": (document_ids(cu)[None], restarting_positions(cu)[None]),
        "plain-causal": (None, restarting_positions(cu)[None]),
        "positions-continue": (document_ids(cu)[None], torch.arange(T)[None]),
        "naive": (None, torch.arange(T)[None]),
    }
    cases = {k: (None if doc is None else doc.to(device), pos.to(device)) for k, (doc, pos) in cases.items()}
    return xs, cu, cases


def _errors(out: torch.Tensor, alone: list[torch.Tensor], cu: torch.Tensor) -> tuple[tuple, tuple]:
    max_abs, rel = [], []
    for i, ref in enumerate(alone):
        got = out[0, int(cu[i]):int(cu[i + 1])].double()                                   # (L_i, D)
        diff = got - ref.double()
        max_abs.append(float(diff.abs().max()))
        rel.append(float(diff.norm() / ref.double().norm().clamp_min(1e-300)))
    return tuple(max_abs), tuple(rel)


def compare_layer(lengths: Sequence[int], cfg: LayerConfig = LayerConfig(), *, dtype: str = "float64",
                  attn: str = "sdpa", seed: int = 0, device: str = "cpu") -> LayerComparison:
    """Run sequences alone and packed in one row (four ways); per-sequence output errors."""
    values = check_lengths(lengths)
    if len(values) > MAX_COMPARE_SEQUENCES or sum(values) > MAX_COMPARE_TOKENS:
        raise ValidationError(f"At most {MAX_COMPARE_SEQUENCES} sequences and {MAX_COMPARE_TOKENS:,} "
                              f"tokens here (got {len(values)} and {sum(values):,}).")
    dtype = check_choice("Precision", dtype, DTYPES)
    attn = check_choice("Attention", attn, ATTENTION)
    if attn == "flex" and not flex_available(device, backward=False):
        raise ValidationError("FlexAttention is not available in this torch build.")
    model = build_model(cfg, device, DTYPES[dtype])
    xs, cu, cases = _packed_inputs(values, cfg.d_model, seed, DTYPES[dtype], device)
    with torch.no_grad():
        alone = [model(x[None], torch.arange(len(x), device=device)[None], None, attn=attn)[0] for x in xs]
        packed_x = torch.cat(xs)[None]                                                       # (1, T, D)
        variants, maps = [], {}
        for key, (doc, pos) in cases.items():
            out = model(packed_x, pos, doc, attn=attn)                                       # (1, T, D)
            variants.append(VariantError(key, VARIANTS[key], *_errors(out, alone, cu)))
            if int(cu[-1]) <= 256 and key in ("packed", "plain-causal"):
                _, internals = model(packed_x, pos, doc, attn="reference", return_internals=True)
                maps[key] = internals.attention[0].mean(0).float().cpu().numpy()          # (T, T)
    return LayerComparison(tuple(values), tuple(int(c) for c in cu), cfg.positions, dtype, attn,
                           NOISE[dtype], tuple(variants), maps)


# ====================================================================== throughput
METHODS = {
    "padded": N_("Padded to the batch's longest (causal SDPA)"),
    "packed-sdpa": N_("Packed (FFD), SDPA + block-diagonal mask"),
    "packed-varlen-loop": N_("Packed (FFD), causal SDPA per sequence (cu_seqlens loop)"),
    "packed-flex": N_("Packed (FFD), FlexAttention document mask"),
}


@dataclass(frozen=True)
class ThroughputConfig:
    d_model: int = 128            # model width
    n_heads: int = 4              # heads
    n_layers: int = 2             # blocks
    batch_size: int = 8           # padded: sequences per batch
    capacity: int = 1024          # packed: tokens per row
    dtype: str = "float32"        # "float32" | "bfloat16" | "float16" | "float64"
    warmup: int = 1               # untimed passes over the sample
    repeats: int = 3              # timed passes (median reported)
    seed: int = 0

    def layer(self) -> LayerConfig:
        return LayerConfig(d_model=self.d_model, n_heads=self.n_heads, d_ff=int(8 * self.d_model / 3),
                           n_layers=self.n_layers, seed=self.seed, max_positions=max(self.capacity, 8))


@dataclass(frozen=True)
class MethodResult:
    method: str                   # key of METHODS
    label: str
    available: bool               # False: not run on this device (see note)
    note: str
    batches: int = 0              # optimizer steps for one pass over the sample
    real_tokens: int = 0
    slots: int = 0                # positions computed (real + padding)
    median_ms: float | None = None  # one forward+backward pass over the whole sample
    min_ms: float | None = None
    tokens_per_s: float | None = None   # real tokens / median time
    saved_bytes: int | None = None      # largest batch: activations saved for backward
    peak_bytes: int | None = None       # CUDA allocator peak over the pass; None elsewhere
    flops_computed: float = 0.0   # analytic forward+backward FLOPs the method computes
    flops_useful: float = 0.0     # the same for real tokens and in-sequence attention only


@dataclass(frozen=True)
class ThroughputResult:
    config: ThroughputConfig
    device: str
    lengths: tuple[int, ...]
    methods: tuple[MethodResult, ...]


@dataclass
class _Batch:
    x: torch.Tensor               # (B, T, D) token vectors
    positions: torch.Tensor       # (B, T)
    doc: torch.Tensor | None      # (B, T) sequence ids, None = plain causal (padded batches)
    weight: torch.Tensor          # (B, T) float32: 1 on real tokens, 0 on padding
    lengths: list[list[int]]      # sequence lengths in each row


def _padded_batches(values, cfg, device, dtype, gen) -> list[_Batch]:
    p = pad_batches(values, cfg.batch_size)
    out = []
    for start in range(0, p.n_rows, cfg.batch_size):
        rows = [values[r[0]] for r in p.rows[start:start + cfg.batch_size]]
        B, T = len(rows), max(rows)
        weight = (torch.arange(T)[None] < torch.tensor(rows)[:, None]).float()             # (B, T)
        x = (torch.randn(B, T, cfg.d_model, generator=gen) * weight[..., None]).to(dtype)  # (B, T, D)
        pos = torch.arange(T).expand(B, T)                                                  # (B, T)
        out.append(_Batch(x.to(device), pos.to(device), None, weight.to(device), [[n] for n in rows]))
    return out


def _packed_batches(values, cfg, device, dtype, gen) -> list[_Batch]:
    p = pack_ffd(values, cfg.capacity)
    rows_per_batch = max(1, cfg.batch_size * max(values) // cfg.capacity)
    out = []
    for start in range(0, p.n_rows, rows_per_batch):
        rows = [[values[i] for i in r] for r in p.rows[start:start + rows_per_batch]]
        cus = [cu_seqlens(r) for r in rows]
        doc = torch.stack([document_ids(cu, cfg.capacity) for cu in cus])                  # (B, C)
        pos = torch.stack([restarting_positions(cu, cfg.capacity) for cu in cus])          # (B, C)
        weight = (doc >= 0).float()                                                         # (B, C)
        x = (torch.randn(*doc.shape, cfg.d_model, generator=gen) * weight[..., None]).to(dtype)
        out.append(_Batch(x.to(device), pos.to(device), doc.to(device), weight.to(device), rows))
    return out


def _step(model, batch: _Batch, attn: str) -> None:
    """Forward + backward of one batch; the loss counts real tokens only."""
    out = model(batch.x, batch.positions, batch.doc, attn=attn)                             # (B, T, D)
    loss = (out.float().pow(2).mean(-1) * batch.weight).sum() / batch.weight.sum()
    loss.backward()
    model.zero_grad(set_to_none=True)


def _saved_bytes(model, batch: _Batch, attn: str) -> int:
    """Bytes of the distinct tensors autograd keeps for backward (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def keep(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        _step(model, batch, attn)
    return sum(seen.values())


def _flops(batches: list[_Batch], cfg: ThroughputConfig, method: str) -> tuple[float, float]:
    """Analytic forward+backward FLOPs (backward = 2 x forward): (computed, useful)."""
    d, f, layers = cfg.d_model, int(8 * cfg.d_model / 3), cfg.n_layers
    per_token = 2 * (4 * d * d + 3 * d * f)           # qkv + proj + SwiGLU matmuls, forward
    per_score = 4 * d                                 # q.k and p.v over all heads, forward
    slots = sum(b.weight.numel() for b in batches)
    seqs = [n for b in batches for row in b.lengths for n in row]
    causal = sum(n * (n + 1) / 2 for n in seqs)
    if method == "padded":
        scores = sum(b.x.shape[0] * b.x.shape[1] * (b.x.shape[1] + 1) / 2 for b in batches)
    elif method == "packed-sdpa":
        scores = sum(b.x.shape[0] * b.x.shape[1] ** 2 for b in batches)
    else:
        scores = causal
    computed = 3 * layers * (slots * per_token + scores * per_score)
    useful = 3 * layers * (sum(seqs) * per_token + causal * per_score)
    return float(computed), float(useful)


def _check_bench(lengths, cfg: ThroughputConfig) -> list[int]:
    if not isinstance(cfg, ThroughputConfig):
        raise ValidationError("Give a ThroughputConfig.")
    check_int("Pack length", cfg.capacity, 8, MAX_CAPACITY)
    values = check_lengths(lengths, cfg.capacity)
    if len(values) > MAX_BENCH_SEQUENCES or sum(values) > MAX_BENCH_TOKENS:
        raise ValidationError(f"At most {MAX_BENCH_SEQUENCES:,} sequences and {MAX_BENCH_TOKENS:,} "
                              f"tokens per measurement (got {len(values):,} and {sum(values):,}).")
    check_int("Batch size", cfg.batch_size, 1, 4096)
    if cfg.batch_size > len(values):
        raise ValidationError(f"The batch size ({cfg.batch_size}) is larger than the data "
                              f"({len(values)} sequences).")
    check_choice("Precision", cfg.dtype, DTYPES)
    check_int("Warm-up passes", cfg.warmup, 0, 10)
    check_int("Timed passes", cfg.repeats, 1, 50)
    cfg.layer()                   # validates width, heads, layers
    return values


def measure_throughput(lengths: Sequence[int], cfg: ThroughputConfig = ThroughputConfig(), *,
                       device: str = "cpu", methods: Sequence[str] = tuple(METHODS),
                       progress: Callable[[float, str], None] | None = None,
                       on_wait: Callable[[int, float], None] | None = None,
                       time_limit_s: float = 300.0) -> ThroughputResult:
    """Tokens/s and memory of one forward+backward pass over the same sequences, padded
    and packed, on ``device`` (a queued heavy job; OOM becomes a ResourceError)."""
    values = _check_bench(lengths, cfg)
    methods = [check_choice("Method", m, METHODS) for m in methods]
    dev = torch.device(device)
    results = []
    with heavy_job("Packing throughput", dev, time_limit_s=time_limit_s, on_wait=on_wait) as job:
        with oom_guard("The packing measurement", dev,
                       hint="Lower the width, layers, batch size or pack length."):
            model = build_model(cfg.layer(), dev, DTYPES[cfg.dtype])
            for i, method in enumerate(methods):
                if progress:
                    progress(i / len(methods), N_(f"Timing: {METHODS[method]}"))
                results.append(_measure_method(model, values, cfg, dev, method, job))
    if progress:
        progress(1.0, N_("Done"))
    return ThroughputResult(cfg, str(dev), tuple(values), tuple(results))


_ATTN_OF = {"padded": "sdpa", "packed-sdpa": "sdpa", "packed-varlen-loop": "varlen-loop",
            "packed-flex": "flex"}


def _measure_method(model, values, cfg: ThroughputConfig, dev, method: str, job) -> MethodResult:
    if method == "packed-flex" and not flex_available(dev):
        return MethodResult(method, METHODS[method], False,
                            N_("FlexAttention has no backward on the CPU in this torch build; CUDA only."))
    gen = torch.Generator().manual_seed(cfg.seed)
    make = _padded_batches if method == "padded" else _packed_batches
    batches = make(values, cfg, dev, DTYPES[cfg.dtype], gen)
    attn = _ATTN_OF[method]

    def one_pass() -> None:
        for batch in batches:
            job.check()
            _step(model, batch, attn)

    saved = _saved_bytes(model, max(batches, key=lambda b: b.x.numel()), attn)
    timing = time_fn(one_pass, dev, warmup=cfg.warmup, repeats=cfg.repeats,
                     max_seconds=max(1.0, job.remaining_s / 4))
    peak = peak_memory_bytes(one_pass, dev)
    computed, useful = _flops(batches, cfg, method)
    real = sum(values)
    return MethodResult(
        method, METHODS[method], True, _NOTES[method], len(batches), real,
        sum(b.weight.numel() for b in batches), timing.median_ms, timing.min_ms,
        real / (timing.median_ms / 1e3), saved, peak, computed, useful)


_NOTES = {
    "padded": N_("Each batch is as long as its longest sequence; causal SDPA (flash kernel where "
                 "available), padding computed and discarded."),
    "packed-sdpa": N_("Whole rows of the pack length; SDPA with a boolean block-diagonal mask "
                      "computes every score of the row and masks most of them."),
    "packed-varlen-loop": N_("Exact varlen work (no masked scores), one small causal SDPA call per "
                             "sequence: launch/loop overhead instead of wasted FLOPs."),
    "packed-flex": N_("FlexAttention (torch.compile) with a document mask: fully masked blocks "
                      "are skipped."),
}
