"""core.models.bpe: the incremental trainer equals the textbook one, round trips, HF cross-check, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.models import bpe
from core.runtime.validation import ValidationError


@pytest.fixture(scope="module")
def wiki():
    return bpe.load_corpus("wiki", 40_000)


@pytest.fixture(scope="module")
def wiki_model(wiki):
    return bpe.train(wiki, bpe.BPEConfig(n_merges=200))


def test_wikipedia_example():
    """Wikipedia, "Byte pair encoding": aaabdaaabac -> Z=aa, Y=ab, X=ZY (ties: smallest pair first)."""
    model = bpe.train("aaabdaaabac", bpe.BPEConfig(n_merges=3, pattern="none"))
    assert [s.token for s in model.steps] == [b"aa", b"ab", b"aaab"]
    assert [s.count for s in model.steps] == [4, 2, 2]
    assert model.tokens_after == (11, 9, 7, 5)


@pytest.mark.parametrize("pattern", list(bpe.PATTERNS))
@pytest.mark.parametrize("size", [3_000, 12_000])
def test_fast_trainer_equals_reference(wiki, pattern, size):
    config = bpe.BPEConfig(n_merges=60, pattern=pattern)
    assert list(bpe.train(wiki[:size], config).steps) == bpe.train_reference(wiki[:size], config)


@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("aab b\nc東😀é"), min_size=1, max_size=120),
       n=st.integers(1, 30), pattern=st.sampled_from(list(bpe.PATTERNS)))
def test_fast_trainer_equals_reference_on_random_text(text, n, pattern):
    """Overlapping runs ("aaaa"), multi-byte characters and every pre-split pattern."""
    if not text.strip():
        return
    config = bpe.BPEConfig(n_merges=n, pattern=pattern, min_count=1)
    assert list(bpe.train(text, config).steps) == bpe.train_reference(text, config)


def test_training_counts_equal_encoding(wiki, wiki_model):
    """tokens_after[k] (tracked while training) equals the token count of encoding the corpus with k merges."""
    for k in (0, 1, 50, len(wiki_model.steps)):
        assert len(bpe.encode(wiki_model, wiki, k)) == wiki_model.tokens_after[k]
    assert len(bpe.encode_long(wiki_model, wiki)) == wiki_model.tokens_after[-1]


def test_merges_are_consistent(wiki_model):
    vocab = wiki_model.vocab
    assert len(vocab) == 256 + len(wiki_model.steps) == 456
    for s in wiki_model.steps:
        assert s.new_id == 256 + s.rank and s.pair[0] < s.new_id and s.pair[1] < s.new_id
        assert s.token == vocab[s.pair[0]] + vocab[s.pair[1]]
    counts = [s.count for s in wiki_model.steps]
    assert counts[0] == max(counts)
    curve = bpe.compression_curve(wiki_model, points=20)
    assert curve[0] == (0, 256, 1.0)
    assert all(a[2] <= b[2] for a, b in zip(curve, curve[1:], strict=False))


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=80))
def test_encode_decode_round_trip(wiki_model, text):
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    ids = bpe.encode(wiki_model, text)
    assert bpe.decode_bytes(wiki_model, ids) == text.encode("utf-8")
    assert bpe.decode(wiki_model, ids) == text
    assert b"".join(bpe.segment(wiki_model, text, 10)) == text.encode("utf-8")


def test_segment_tokens_and_replay(wiki_model):
    sample = "The the東 tokenizer"
    before = bpe.segment_tokens(wiki_model, sample, 0)
    after = bpe.segment_tokens(wiki_model, sample)
    assert len(before) == len(sample.encode("utf-8")) and len(after) < len(before)
    assert b"".join(t.bytes for t in after) == sample.encode("utf-8")
    assert after[-1].end == len(sample)


def test_hf_trainer_agrees(wiki, wiki_model):
    """HF tokenizers' BpeTrainer on the same text/pre-split/vocabulary: compression within 1 %."""
    cmp = bpe.hf_compare(wiki, wiki_model)
    assert cmp.vocab_size == 456 and cmp.hf_merges == cmp.ours_merges == 200
    assert abs(cmp.hf_bytes_per_token / cmp.ours_bytes_per_token - 1) < 0.01
    assert cmp.shared_tokens >= 0.95 * cmp.ours_merges


def test_stops_early_when_nothing_to_merge():
    model = bpe.train("abc", bpe.BPEConfig(n_merges=50, pattern="none"))
    assert model.steps == () and model.stopped_early
    assert bpe.encode(model, "abc") == [97, 98, 99]


def test_progress_is_reported():
    seen = []
    bpe.train("hello hello hello world", bpe.BPEConfig(n_merges=3), progress=lambda f, m: seen.append(f))
    assert seen and seen[-1] == 1.0


@pytest.mark.parametrize(("config", "text", "match"), [
    (bpe.BPEConfig(n_merges=0), "some text", "Number of merges"),
    (bpe.BPEConfig(n_merges=bpe.MAX_MERGES + 1), "some text", "Number of merges"),
    (bpe.BPEConfig(pattern="perl"), "some text", "Pre-split"),
    (bpe.BPEConfig(), "   ", "empty"),
    (bpe.BPEConfig(), None, "must be text"),
    (bpe.BPEConfig(), "x" * (bpe.MAX_CORPUS_CHARS + 1), "limit"),
])
def test_train_refuses_bad_input(config, text, match):
    with pytest.raises(ValidationError, match=match):
        bpe.train(text, config)


def test_encode_refuses_bad_input(wiki_model):
    with pytest.raises(ValidationError):
        bpe.encode(wiki_model, "x", n_merges=10_000)
    with pytest.raises(ValidationError):
        bpe.encode(wiki_model, "x" * (bpe.MAX_ENCODE_CHARS + 1))
    with pytest.raises(ValidationError):
        bpe.decode(wiki_model, [10_000])
    with pytest.raises(ValidationError):
        bpe.load_corpus("reddit", 10_000)
    with pytest.raises(ValidationError):
        bpe.load_corpus("wiki", 10**9)


def test_uploads_and_samples():
    assert bpe.check_training_upload("héllo".encode("utf-16")).text == "héllo"
    with pytest.raises(ValidationError):
        bpe.check_training_upload(b"\x00\x01\x02")
    assert len(bpe.check_sample("y" * 5_000)) == bpe.MAX_SAMPLE_CHARS
    assert bpe.check_training_text("a" * (bpe.MAX_CORPUS_CHARS + 5)).truncated
