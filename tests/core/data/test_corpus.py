"""core.data.corpus: the shipped Wikipedia sample, Lee corpus and analogy set load offline."""

from __future__ import annotations

import pytest

from core.data import corpus
from core.runtime.validation import ValidationError


def test_wiki_sample_is_real_prose():
    articles = corpus.wiki_articles()
    assert len(articles) > 100
    assert articles[0].title == "Anarchism"
    text = corpus.wiki_text()
    assert 2_000_000 < len(text) < 4_000_000
    assert "'''" not in text and "==" not in text
    assert "political philosophy" in text


def test_wiki_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path))
    corpus.wiki_articles.cache_clear()
    first = corpus.wiki_articles()
    assert list(tmp_path.glob("corpus/wiki-v*.json"))
    corpus.wiki_articles.cache_clear()
    assert corpus.wiki_articles() == first     # now read back from the disk cache


def test_clean_wiki_text_drops_fragments():
    raw = "'''Bold''' words make a sentence of six words.\n==Heading==\nTuscaloosa\n* a list item here ok"
    assert corpus.clean_wiki_text(raw) == "Bold words make a sentence of six words."


def test_lee_and_questions_words():
    assert len(corpus.lee_texts()) == 300
    lines = corpus.questions_words_path().read_text().splitlines()
    assert lines[0].startswith(": capital-common-countries")
    assert len(lines) > 19_000


def test_words_and_sentences():
    assert corpus.words("Don't stop, U.S. 42 times!") == ["don't", "stop", "u", "s", "times"]
    assert corpus.sentences("A b\n\n123\nC") == [["a", "b"], ["c"]]


def test_upload_text_checks():
    assert corpus.upload_text(b"some words here").text == "some words here"
    with pytest.raises(ValidationError, match="binary"):
        corpus.upload_text(b"\x00\x00\x00")
