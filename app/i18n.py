"""Two languages, one function: every string a person reads goes through ``t("...")``.

GNU gettext catalogs read with Python's gettext (Babel extracts and compiles them):
- app/locale/<lang>/*.po: the translations, one file per page or topic (translators can
  work on pages side by side); ``python -m app.i18n compile`` (run by ``make run`` and
  ``make test``) merges them into app/locale/<lang>/LC_MESSAGES/atlas.mo, which is never
  committed.
- Named placeholders, so a translation can reorder them: ``t("{n:,} tokens", n=5)``.
- Messages from core/ (core stays language-free) are catalogued as the templates they are
  written with in the source (``f"{name} must be between {lo:,} and {hi:,}, got {x:,}."``);
  ``translate_message`` matches a raised message against them and renders the translation
  with the same values (app/ui.show_error calls it).
The language: ``?lang=zh`` or ``?lang=en`` in the URL (a shared link opens in the same
language), else the browser's language (Accept-Language), else English; the sidebar switch
writes the URL parameter.
Does not handle: plural forms (the atlas words counts so that none is needed), right-to-left
scripts, languages other than English and Simplified Chinese.
"""

from __future__ import annotations

import functools
import gettext
import logging
import re
import string
from pathlib import Path

import streamlit as st

from core import write_atomically

# N_ is core's marker, re-exported: pages mark text where it is defined, t()/tr() show it
from core.runtime.text import N_ as N_

log = logging.getLogger("atlas.i18n")

LANGUAGES = {"en": "English", "zh": "简体中文"}
DEFAULT = "en"
DOMAIN = "atlas"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
STATE_KEY = "lang"
MISSING: set[tuple[str, str]] = set()     # (lang, msgid) asked for but not translated (tests read it)


# ---------------------------------------------------------------- which language
def language_from_header(header: str | None) -> str | None:
    """The first supported language of an Accept-Language header ("zh-CN,zh;q=0.9,en;q=0.8")."""
    if not header:
        return None
    ranked = []
    for i, part in enumerate(header.split(",")):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        ranked.append((-weight, i, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        base = tag.split("-")[0]
        if base in LANGUAGES:
            return base
    return None


def _query_language() -> str | None:
    value = st.query_params.get("lang")
    return value if value in LANGUAGES else None


def current_language() -> str:
    """The session's language: URL parameter, else the browser's, else English."""
    lang = _query_language()
    if lang is None:
        lang = st.session_state.get(STATE_KEY)
    if lang is None:
        try:
            lang = language_from_header(st.context.headers.get("Accept-Language"))
        except Exception:   # no browser context (bare scripts, some tests)
            lang = None
    lang = lang if lang in LANGUAGES else DEFAULT
    st.session_state[STATE_KEY] = lang
    return lang


def language_switch() -> None:
    """The sidebar's English / 简体中文 switch; the choice goes into the URL (?lang=...)."""
    lang = current_language()
    choice = st.sidebar.radio("Language · 语言", list(LANGUAGES), index=list(LANGUAGES).index(lang),
                              format_func=LANGUAGES.get, horizontal=True, key="atlas_lang")
    if choice != lang or _query_language() != choice:
        st.session_state[STATE_KEY] = choice
        st.query_params["lang"] = choice
        if choice != lang:
            st.rerun()


# ---------------------------------------------------------------- catalogs
@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang`` (English: the msgids themselves)."""
    if lang == DEFAULT:
        return gettext.NullTranslations()
    try:
        return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang])
    except OSError:
        log.warning("no compiled %s catalog in %s: run `python -m app.i18n compile`", lang, LOCALE_DIR)
        return gettext.NullTranslations()


def translate(msgid: str, lang: str) -> str:
    """``msgid`` in ``lang``; the English text when the catalog has none (and it is recorded)."""
    if lang == DEFAULT or not msgid:
        return msgid
    text = translations(lang).gettext(msgid)
    if text == msgid and msgid not in _catalog_keys(lang) and any(c.isalpha() for c in msgid):
        MISSING.add((lang, msgid))
    return text


def t(msgid: str, **params) -> str:
    """``msgid`` in the session's language, with ``params`` filled in by name."""
    text = translate(msgid, current_language())
    return text.format(**params) if params else text


def tr(text: str) -> str:
    """Text that core/ returned (a label, a note, a message), in the session's language:
    the catalog's translation of it, exact or as a filled-in template; English otherwise."""
    return translate_message(text)


# ---------------------------------------------------------------- core's messages
@functools.cache
def _templates(lang: str) -> tuple[tuple[re.Pattern, str, tuple[str, ...]], ...]:
    """(pattern, translation, field names) of every catalogued message template, the most
    literal text first: "head_dim must be a whole number, got {v0}." is tried before
    "{name} must be a whole number, got {v0}.", and "... on cuda." before "... on {dev.type}."."""
    catalog = getattr(translations(lang), "_catalog", {})
    out = []
    for msgid, msgstr in catalog.items():
        if not isinstance(msgid, str) or "{" not in msgid or not msgstr:
            continue
        pattern, names = template_pattern(msgid)
        if pattern is not None:
            literal = sum(len(text) for text, *_ in string.Formatter().parse(msgid))
            out.append((literal, pattern, msgstr, names))
    return tuple(item[1:] for item in sorted(out, key=lambda item: -item[0]))


def template_pattern(template: str) -> tuple[re.Pattern | None, tuple[str, ...]]:
    """A regex that matches what ``template.format(...)`` produces, one group per field."""
    parts, names = [], []
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return None, ()
    for literal, field, _spec, _conv in fields:
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(f"(?P<f{len(names)}>.+?)")
            names.append(field)
    return re.compile("".join(parts) + r"\Z", re.S), tuple(names)


def fill(translation: str, names: tuple[str, ...], values: tuple[str, ...], lang: str) -> str:
    """The translation with each field replaced by the (already formatted) value it matched;
    values that are themselves catalogued words (a setting's name) are translated too."""
    by_name = dict(zip(names, values, strict=True))
    out = []
    for literal, field, _spec, _conv in string.Formatter().parse(translation):
        out.append(literal)
        if field is not None:
            value = by_name.get(field, "{" + field + "}")
            out.append(_known(value, lang))
    return "".join(out)


def _known(value: str, lang: str) -> str:
    """A filled-in value in ``lang`` when it is catalogued text (a setting's name, or a whole message
    nested in another, "... : {err} ..."); anything else (numbers, user text) as it is."""
    if value in _catalog_keys(lang):
        return translate(value, lang)
    if " " in value:
        for pattern, translation, names in _templates(lang):
            m = pattern.fullmatch(value)
            if m:
                return fill(translation, names, tuple(m.group(f"f{i}") for i in range(len(names))), lang)
    return value


@functools.cache
def _catalog_keys(lang: str) -> frozenset:
    return frozenset(k for k in getattr(translations(lang), "_catalog", {}) if isinstance(k, str))


def translate_message(message: str, lang: str | None = None) -> str:
    """A message raised by core/ (ValidationError, ResourceError) in the session's language."""
    lang = lang or current_language()
    if lang == DEFAULT:
        return message
    if message in _catalog_keys(lang):
        return translate(message, lang)
    for pattern, translation, names in _templates(lang):
        m = pattern.match(message)
        if m:
            return fill(translation, names, tuple(m.group(f"f{i}") for i in range(len(names))), lang)
    MISSING.add((lang, message))
    return message


# ---------------------------------------------------------------- compile (make run / make test)
def compile_catalogs(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Merge each language's .po files into LC_MESSAGES/atlas.mo; returns the files written.
    The same msgid translated two ways in two files is an error."""
    from babel.messages.catalog import Catalog  # Babel: only needed to build the catalogs
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for lang in LANGUAGES:
        files = sorted((locale_dir / lang).glob("*.po")) if lang != DEFAULT else []
        if not files:
            continue
        merged, seen = Catalog(locale=lang, domain=DOMAIN), {}
        for path in files:
            with path.open("rb") as fh:
                for msg in read_po(fh, locale=lang):
                    if not msg.id or not msg.string:
                        continue
                    if msg.id in seen and seen[msg.id][0] != msg.string:
                        raise ValueError(f"{msg.id!r} is translated differently in {seen[msg.id][1]} and {path.name}")
                    seen[msg.id] = (msg.string, path.name)
                    merged.add(msg.id, msg.string)
        out = locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"
        out.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path, catalog=merged) -> None:
            with tmp.open("wb") as fh:
                write_mo(fh, catalog)

        write_atomically(out, write)      # test workers and servers may compile at the same time
        written.append(out)
    return written


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["compile"]:
        raise SystemExit("usage: python -m app.i18n compile")
    for path in compile_catalogs():
        print(f"compiled {path.relative_to(LOCALE_DIR.parent.parent)}")
