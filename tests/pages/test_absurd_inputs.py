"""Every page survives absurd values sent straight to its widgets (bypassing the browser).

A crafted client can send any value for a widget; Streamlit passes it on. For
each registered page this sets every number input to a huge, then a negative
value, and every text box to 1 MB of text, and checks that the page answers
with messages (st.error/st.warning), never an exception or 'Unexpected error'.
Limits are enforced in core/, so nothing heavy starts (buttons are not pressed).
"""

from __future__ import annotations

import pytest

from app.navigation import all_pages
from tests.pages.apptest import assert_clean, open_page

HUGE_TEXT = ("<script>alert(1)</script> 漢字 😀 " * 40_000)[:1_000_000]


def _set_all(widgets, value) -> int:
    changed = 0
    for widget in widgets:
        try:
            widget.set_value(value)
        except Exception:   # AppTest refuses some values itself (e.g. of the wrong type)
            continue
        changed += 1
    return changed


@pytest.mark.parametrize("spec", all_pages(), ids=lambda s: s.path)
@pytest.mark.parametrize("value", [10**12, -(10**12)], ids=["huge", "negative"])
def test_absurd_numbers(spec, value):
    at = open_page(spec.path)
    if not _set_all(at.number_input, value):
        pytest.skip(f"{spec.path} has no number input on first load")
    at.run()
    assert_clean(at)


@pytest.mark.parametrize("spec", all_pages(), ids=lambda s: s.path)
def test_megabyte_of_text(spec):
    at = open_page(spec.path)
    if not _set_all([*at.text_area, *at.text_input], HUGE_TEXT):
        pytest.skip(f"{spec.path} has no text box on first load")
    at.run()
    assert_clean(at)
