"""Real text corpora shipped inside installed PyPI packages (nothing downloaded).

- Wikipedia sample: gensim's bundled, shortened English Wikipedia dump
  (``enwiki-latest-pages-articles1...-shortened.bz2``, 106 articles after
  redirects are dropped), turned into plain prose with gensim's
  ``extract_pages``/``filter_wiki``: markup, tables and list fragments removed,
  paragraphs kept (~2.5 MB of text).
- Lee news corpus (``lee_background.cor``): 300 short Australian news texts.
- questions-words.txt: Mikolov et al.'s word-analogy test set.

Extraction takes ~2 s; the result is cached in memory and on disk
(``<cache_dir>/corpus/``).
Does not handle: other languages, or the full Wikipedia.
"""

from __future__ import annotations

import bz2
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from core import cache_dir, write_atomically
from core.runtime.validation import CheckedText, decode_upload

WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_CACHE_VERSION = 1
MIN_WORDS_PER_PARAGRAPH = 6   # shorter lines are table cells, captions, list fragments
_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Article:
    title: str
    text: str      # paragraphs separated by "\n"


def gensim_data_path(name: str) -> Path:
    """Absolute path of a file in gensim's bundled test data."""
    from gensim.test.utils import datapath  # start-up cost: gensim takes ~0.9 s to import

    path = Path(datapath(name))
    if not path.exists():
        raise FileNotFoundError(f"gensim's test data has no {name!r}")
    return path


@functools.lru_cache(maxsize=1)
def wiki_articles() -> tuple[Article, ...]:
    """The Wikipedia sample as clean prose articles (cached on disk after the first call)."""
    cached = cache_dir() / "corpus" / f"wiki-v{_CACHE_VERSION}.json"
    if cached.exists():
        rows = json.loads(cached.read_text(encoding="utf-8"))
        return tuple(Article(r["title"], r["text"]) for r in rows)
    articles = _extract_wiki(gensim_data_path(WIKI_FILE))
    cached.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps([a.__dict__ for a in articles])
    write_atomically(cached, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return articles


def _extract_wiki(path: Path) -> tuple[Article, ...]:
    # start-up cost: gensim takes ~0.9 s to import; only the first extraction needs it
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    articles = []
    with bz2.open(path, "rb") as fh:
        for title, markup, _page_id in extract_pages(fh):
            if markup.lstrip().lower().startswith("#redirect"):
                continue
            text = clean_wiki_text(filter_wiki(markup))
            if text:
                articles.append(Article(title, text))
    return tuple(articles)


def clean_wiki_text(text: str) -> str:
    """Prose paragraphs from filter_wiki output: bold/italic quotes, headings and fragments dropped."""
    text = text.replace("'''", "").replace("''", "")
    keep = []
    for line in text.splitlines():
        line = re.sub(r"\s+", " ", line).strip()
        if line.startswith("=") or line.startswith(("*", "#", "|", "!", "{", "}")):
            continue
        if len(line.split()) >= MIN_WORDS_PER_PARAGRAPH:
            keep.append(line)
    return "\n".join(keep)


def wiki_text(max_chars: int | None = None) -> str:
    """All articles as one text (blank line between articles), optionally cut."""
    text = "\n\n".join(a.text for a in wiki_articles())
    return text if max_chars is None else text[:max_chars]


@functools.lru_cache(maxsize=1)
def lee_texts() -> tuple[str, ...]:
    """The Lee background news corpus, one text per document."""
    raw = gensim_data_path("lee_background.cor").read_text(encoding="utf-8", errors="replace")
    return tuple(line.strip() for line in raw.splitlines() if line.strip())


def questions_words_path() -> Path:
    """Path of the questions-words analogy set (": section" headers, 4 words a line)."""
    return gensim_data_path("questions-words.txt")


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters and inner apostrophes): the word-level view of a text."""
    return _WORD_RE.findall(text.lower())


def sentences(text: str) -> list[list[str]]:
    """Paragraphs of ``text`` as lists of lower-case words (empty ones dropped)."""
    rows = (words(line) for line in text.splitlines())
    return [row for row in rows if row]


def upload_text(data: bytes, *, max_bytes: int = 5_000_000) -> CheckedText:
    """A user's uploaded corpus, decoded and checked (see core.runtime.validation.decode_upload)."""
    return decode_upload(data, max_bytes=max_bytes, name="The uploaded corpus")
