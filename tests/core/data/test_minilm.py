"""core.data.minilm: the packaged all-MiniLM-L6-v2 loads offline; our pooling equals sentence-transformers."""

from __future__ import annotations

import pytest
import torch

from core.data import minilm
from core.runtime.validation import ValidationError


def test_files_ship_in_the_package():
    path = minilm.model_path()
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    assert minilm.load_tokenizer().get_vocab_size() == 30522


def test_model_shape_and_size():
    model = minilm.load_model("cpu")
    assert sum(p.numel() for p in model.parameters()) == 22_713_216
    assert model.embeddings.word_embeddings.weight.shape == (30522, 384)


def test_encode_sentences_equals_sentence_transformers():
    texts = ["The cat sits on the mat.", "A dog runs in the park!", "naïve café — ünïcödé 😀",
             "word " * 400]  # the last is cut at 256 tokens by both
    ours = minilm.encode_sentences(texts, "cpu", batch_size=3)
    ref = torch.as_tensor(minilm.load_sentence_transformer("cpu").encode(texts))
    assert ours.shape == (4, 384)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(4), atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [[], "not a list", ["x"] * (minilm.MAX_SENTENCES + 1)])
def test_encode_sentences_refuses(bad):
    with pytest.raises(ValidationError):
        minilm.encode_sentences(bad)
