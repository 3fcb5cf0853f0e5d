"""core.char_data: the 97-symbol character vocabulary, folding, unknown characters, batches."""

from __future__ import annotations

import pytest
import torch

from core import char_data
from core.validation import ValidationError


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
