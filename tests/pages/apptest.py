"""Helpers for page tests: open a page through app/main.py's navigation, check it is clean.

Usage in a page's own tests (tests/pages/test_<page>.py)::

    from tests.pages.apptest import open_page, assert_clean
    at = open_page("tokenization.py")
    at.text_area(key="tok_text").input("Hello").run()
    assert_clean(at)
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from app.navigation import all_pages
from app.ui import UNEXPECTED

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "app" / "main.py"
TIMEOUT_S = 180          # first loads train/load real models on a 2-core CPU


def spec_for(path: str):
    """The PageSpec registered for pages/<path>."""
    for spec in all_pages():
        if spec.path == path:
            return spec
    raise KeyError(f"pages/{path} is not registered in app/navigation.py")


def open_page(path: str, timeout: float = TIMEOUT_S, lang: str | None = None) -> AppTest:
    """Run app/main.py, switch to pages/<path>, run it; returns the AppTest. ``lang`` ("en",
    "zh") goes into the URL as ?lang=, as a shared link would carry it."""
    at = AppTest.from_file(str(MAIN), default_timeout=timeout)
    if lang is not None:
        at.query_params["lang"] = lang
    at.run()
    at.switch_page(spec_for(path).script)
    return at.run()


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def texts(elements) -> list[str]:
    """The text of each element (at.caption, at.markdown, at.warning ...)."""
    return [str(e.value) for e in elements]


def metric(at: AppTest, label: str) -> str:
    """The value of the first st.metric labelled ``label``."""
    return next(m.value for m in at.metric if m.label == label)


def assert_clean(at: AppTest) -> None:
    """No exception element and no 'Unexpected error' message on the page."""
    assert not at.exception, [e.value for e in at.exception]
    unexpected = [e for e in errors(at) if UNEXPECTED in e]
    assert not unexpected, unexpected
