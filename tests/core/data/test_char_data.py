"""core.data.char_data: the 97-symbol character vocabulary, folding, unknown characters, batches."""

from __future__ import annotations

import pytest
import torch

from core.data import char_data
from core.runtime.validation import ValidationError


def test_vocabulary_is_printable_ascii_newline_and_unknown():
    assert char_data.VOCAB_SIZE == 97
    assert char_data.VOCAB[0] == "\n" and char_data.VOCAB[-1] == char_data.UNK
    assert len(set(char_data.VOCAB)) == char_data.VOCAB_SIZE


@pytest.mark.parametrize("text", ["Hello, world!\n", "a ~ b {x} [y] 123", "<script>alert(1)</script>"])
def test_ascii_round_trips(text):
    enc = char_data.encode(text)
    assert char_data.decode(enc.ids) == text
    assert enc.unknown == ()


def test_folding_accents_dashes_quotes():
    enc = char_data.encode("Café — naïve ‘quote’ “q”")
    assert enc.text == "Cafe - naive 'quote' \"q\""
    assert enc.unknown == ()


def test_unknown_characters_are_reported_and_mapped():
    enc = char_data.encode("a漢α b")
    assert set(enc.unknown) == {"漢", "α"}
    assert enc.ids[1] == char_data.UNK_ID and enc.ids[2] == char_data.UNK_ID
    assert len(enc.ids) == len(enc.text)
    # the unknown symbol itself survives a second round (no NFKD decomposition)
    again = char_data.encode(char_data.decode(enc.ids))
    assert again.ids == enc.ids and again.unknown == ()


def test_encode_array_matches_encode():
    text = "Mixed: é, 漢, tab\tend\r\n"
    assert char_data.encode_array(text).tolist() == list(char_data.encode(text).ids)


def test_prepare_text_rejects_empty_and_caps():
    with pytest.raises(ValidationError, match="empty"):
        char_data.prepare_text("   \n", 100)
    p = char_data.prepare_text("x" * 50, 10)
    assert p.checked.truncated and len(p.encoded.ids) == 10
    with pytest.raises(ValidationError):
        char_data.prepare_text(None, 10)


def test_corpus_split_and_unigram_entropy():
    corpus = char_data.corpus_from_text("abab" * 100)
    assert corpus.train.numel() + corpus.val.numel() == 400
    assert corpus.unigram_entropy_nats == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-3)
    with pytest.raises(ValidationError):
        char_data.corpus_from_text("too short")


def test_sample_batch_targets_are_inputs_shifted():
    data = torch.arange(1000) % 97
    gen = torch.Generator().manual_seed(0)
    x, y = char_data.sample_batch(data, 4, 16, gen)
    assert x.shape == y.shape == (4, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(ValidationError):
        char_data.sample_batch(data, 4, 5000, gen)
    with pytest.raises(ValidationError):
        char_data.sample_batch(data, 0, 16, gen)


def test_corpus_window_shapes_and_seed():
    data = torch.arange(500)
    a = char_data.corpus_window(data, 33, seed=1, batch=3)
    assert a.shape == (3, 33)
    assert torch.equal(a, char_data.corpus_window(data, 33, seed=1, batch=3))
    assert torch.equal(a[:, 1:] - a[:, :-1], torch.ones(3, 32, dtype=a.dtype))
    with pytest.raises(ValidationError):
        char_data.corpus_window(data, 600)


# ---------------------------------------------------------------- the frequency vocabulary (MoE page)
def test_frequency_vocab_ranks_characters_and_maps_the_rest_to_zero():
    text = "aaaa bbb cc d" * 3
    vocab = char_data.build_vocab(text, max_size=4, min_count=4)       # 3 characters + unknown
    assert vocab.chars == "a b" and vocab.size == 4                    # by count, ties by character
    ids = vocab.encode("abcé")
    assert ids.tolist() == [1, 3, 0, 0]
    assert vocab.decode([1, 2, 0, 9]) == ["a", " ", char_data.UNK, char_data.UNK]


def test_corpus_with_a_frequency_vocab_and_split():
    text = "the cat sat on the mat. " * 20
    vocab = char_data.build_vocab(text, max_size=128, min_count=1)
    corpus = char_data.corpus_from_text(text, vocab, val_fraction=0.05)
    assert corpus.vocab is vocab and corpus.unknown_fraction == 0.0
    assert corpus.train.numel() == int(len(text) * 0.95)
    assert torch.equal(torch.cat([corpus.train, corpus.val]), vocab.encode(text))
    assert char_data.corpus_from_text(text).vocab is None              # the fixed ASCII vocabulary
    with pytest.raises(ValidationError):
        char_data.corpus_from_text(text, vocab, val_fraction=0.9)


def test_random_and_even_windows():
    data = torch.arange(300)
    gen = torch.Generator().manual_seed(3)
    w = char_data.random_windows(data, 5, 17, gen)
    assert w.shape == (5, 17) and torch.equal(w[:, 1:] - w[:, :-1], torch.ones(5, 16, dtype=w.dtype))
    again = char_data.random_windows(data, 5, 17, torch.Generator().manual_seed(3))
    assert torch.equal(w, again)
    x, y = char_data.sample_batch(data, 5, 16, torch.Generator().manual_seed(3))
    assert torch.equal(x, w[:, :-1]) and torch.equal(y, w[:, 1:])     # the same draw, shifted targets
    even = char_data.even_windows(data, 4, 10)
    assert even[:, 0].tolist() == [0, 96, 192, 289] and even.shape == (4, 10)
    with pytest.raises(ValidationError):
        char_data.even_windows(data, 2, 300)
