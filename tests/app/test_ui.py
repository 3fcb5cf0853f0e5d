"""app.ui formatting: units always present, None shown as a dash, user text escaped."""

from __future__ import annotations

import pytest

from app import ui


@pytest.mark.parametrize("n, binary, expected", [
    (0, False, "0 B"), (999, False, "999 B"), (1500, False, "1.50 KB"),
    (112e9, False, "112.00 GB"), (2**30, True, "1.00 GiB"), (1.5 * 2**40, True, "1.50 TiB"),
    (None, False, "—"),
])
def test_fmt_bytes(n, binary, expected):
    assert ui.fmt_bytes(n, binary=binary) == expected


@pytest.mark.parametrize("n, expected", [(124_439_808, "124.44 M"), (6.74e9, "6.74 B"),
                                         (512, "512"), (None, "—"), (1.5e12, "1.50 T")])
def test_fmt_count(n, expected):
    assert ui.fmt_count(n) == expected


def test_fmt_ms_and_pct():
    assert ui.fmt_ms(0.1234) == "0.123 ms"
    assert ui.fmt_ms(12.34) == "12.3 ms"
    assert ui.fmt_ms(2500) == "2.50 s"
    assert ui.fmt_pct(0.123) == "12.3 %"


def test_escape():
    assert ui.escape("<script>alert('x')</script>") == "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"


def test_browser_driver_looks_for_the_same_marker():
    from bench import browser

    assert browser.UNEXPECTED == ui.UNEXPECTED


def test_visible_whitespace():
    assert ui.visible_whitespace("a b\n\tc\r") == "a␣b⏎⇥c␍"
    assert ui.visible_whitespace(" x\n", ui.TOKEN_WHITESPACE_MARKS) == "·x↵"
    assert ui.visible_whitespace("<b> é") == "<b>␣é"                 # a label: no escaping, nothing else changed
