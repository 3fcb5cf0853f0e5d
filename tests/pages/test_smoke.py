"""Every registered page renders through app/main.py without an exception and shows its title.

The page list comes from the navigation registry itself (app/navigation.py),
so a new page is covered as soon as it is in the sidebar; tests/app checks
that every script in pages/ is registered.
"""

from __future__ import annotations

import pytest

from app import i18n
from app.navigation import all_pages
from tests.pages.apptest import assert_clean, open_page


@pytest.mark.parametrize("spec", all_pages(), ids=lambda s: s.path)
def test_page_renders_clean(spec):
    at = open_page(spec.path)
    assert_clean(at)
    titles = [t.value for t in at.title]
    assert spec.title in titles, f"{spec.path}: title {spec.title!r} not in {titles}"


@pytest.mark.parametrize("spec", all_pages(), ids=lambda s: s.path)
def test_page_renders_clean_in_chinese(spec):
    """?lang=zh: the page in Simplified Chinese, its title translated, and nothing it asked the
    catalog for on first load left untranslated (app.i18n records what it could not find)."""
    before = set(i18n.MISSING)
    at = open_page(spec.path, lang="zh")
    assert_clean(at)
    title = i18n.translate(spec.title, "zh")
    assert spec.title in i18n._catalog_keys("zh"), f"{spec.title!r} has no zh translation"
    assert title in [t.value for t in at.title]          # "FlashAttention" reads the same in Chinese
    missing = sorted(m for lang, m in i18n.MISSING - before if lang == "zh")
    assert not missing, f"{spec.path}: untranslated in zh: {missing[:20]}"
