"""app.ui formatting: units always present, None shown as a dash, user text escaped."""

from __future__ import annotations

import networkx as nx
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


def test_category_colors_are_distinct_for_any_count():
    assert ui.category_colors(3) == list(ui.PALETTE[:3])
    for n in (10, 40, 64, 200):
        colors = ui.category_colors(n)
        assert len(colors) == n and len(set(colors)) == n


def test_text_color_on_picks_the_readable_one():
    assert ui.text_color_on("#FFFFFF") == "#000" and ui.text_color_on("#FFD8A8") == "#000"
    assert ui.text_color_on("#000000") == "#fff" and ui.text_color_on("#4C6EF5") == "#fff"
    assert ui.text_color_on("transparent") is None and ui.text_color_on("hsl(0, 70%, 50%)") is None


def test_marked_text_escapes_and_keeps_whitespace_visible():
    html = ui.marked_text([ui.Mark("<b>", "#4C6EF5", 'tip "quoted" <i>'), ui.Mark("\n", "#FFD8A8"),
                           ui.Mark("a b", dotted=True), ui.Mark("prompt", muted=True)])
    assert "<b>" not in html and "<i>" not in html
    assert "&lt;b&gt;" in html and 'title="tip &quot;quoted&quot; &lt;i&gt;"' in html
    assert "background:#4C6EF5;color:#fff;" in html and "background:#FFD8A8;color:#000;" in html
    assert "⏎<br>" in html and "\n" not in html            # no raw newline: markdown would end the block
    assert "text-decoration:underline dotted" in html and ">a b</span>" in html
    assert "color:#868E96" in html
    assert html.count("<span") == 4 and html.count("<wbr>") == 4


def test_legend_chips():
    html = ui.legend_chips([("0: 12", "#4C6EF5"), ("<x>", "#FFD8A8")])
    assert html.count("<span") == 2 and "&lt;x&gt;" in html and "<x>" not in html
    assert "background:#4C6EF5;color:#fff;" in html and ">0: 12</span>" in html
    assert ui.legend_chips([]) == ""


def test_graph_points_flattens_positions_and_fields():
    g = nx.DiGraph()
    g.add_node("a", pos=(0, 1), role="kept")
    g.add_node("b", pos=(2, 3), role="dropped")
    g.add_edge("a", "b")
    nodes, edges = ui.graph_points(g, ("role",))
    assert nodes == [("a", 0, 1, "kept"), ("b", 2, 3, "dropped")]
    assert edges == [((0, 1), (2, 3))]


def test_token_label_escapes_marks_whitespace_and_cuts():
    assert ui.token_label(" <b>x</b>") == "␣&lt;b&gt;x&lt;/b&gt;"
    assert ui.token_label("") == "∅"
    assert ui.token_label("abcdefgh", 4) == "abc…"
