"""core/views/tokens.py: the coloured token view escapes user text, marks specials, caps what it draws."""

from __future__ import annotations

import pytest

from core import tokenizers
from core.views import tokens as token_view


def test_render_html_escapes_and_marks():
    text = "<script>alert('x')</script> 東 a\u200bb\n"
    html = token_view.render_html(text, tokenizers.encode("cl100k_base", text), options=token_view.ViewOptions(show_whitespace=True))
    assert "<script" not in html and "&lt;" in html and "&#x27;x&#x27;" in html
    assert 'class="g"' in html                    # 東 split into byte pieces, grouped
    assert "U+200B" in html and "↵" in html and "·" in html
    assert "id 9906" in token_view.render_html("Hello", tokenizers.encode("cl100k_base", "Hello"))


def test_render_html_caps_drawn_tokens():
    text = "word " * 100
    tokens = tokenizers.encode("cl100k_base", text)
    html = token_view.render_html(text, tokens, options=token_view.ViewOptions(max_tokens=10))
    assert f"{len(tokens) - 10} more tokens not drawn" in html


def test_render_html_own_colours_and_notes():
    text = "Hi <b>there</b> 東"
    tokens = tokenizers.encode("cl100k_base", text)
    colours = ["#ffd8a8"] * len(tokens)
    notes = [f"p = 0.{k} <i>" for k in range(len(tokens))]
    html = token_view.render_html(text, tokens, colours=colours, notes=notes)
    assert html.count('style="background:#ffd8a8"') == len(tokens)
    assert "p = 0.1 &lt;i&gt;" in html and "<i>" not in html and "<b>" not in html
    assert 'class="g"' in html                    # 東's byte pieces keep their group, and their notes
    with pytest.raises(ValueError, match="hex colour"):
        token_view.render_html(text, tokens, colours=['red;" onmouseover="x'] * len(tokens))


def test_render_html_wordpiece_gaps():
    text = "Hello,   World"
    html = token_view.render_html(text, tokenizers.encode("bert-wordpiece", text))
    assert 'class="gap"' in html                  # the dropped spaces are drawn grey
