"""core/views/tokens.py: the coloured token view escapes user text, marks specials, caps what it draws."""

from __future__ import annotations

import pytest

from core import tokenizers
from core.models import bpe
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


def test_token_view_round_trip_and_dropped_bytes():
    view = token_view.token_view("cl100k_base", "Hello <b>world</b>")
    assert view.ids == tuple(tokenizers.encode_ids("cl100k_base", "Hello <b>world</b>"))
    assert view.n == len(view.ids) and view.decoded == "Hello <b>world</b>" and view.utf8_bytes == 18
    assert "<b>" not in view.html and view.dropped.count == 0
    lossy = token_view.token_view("smollm2", "a\x04b")
    assert lossy.decoded == "ab" and lossy.dropped.count == 1 and lossy.n == 2
    assert 'class="gap"' in lossy.html                       # the dropped character drawn as uncovered text
    nfc = token_view.token_view("qwen2.5", "e\u0301")
    assert nfc.shown == "é" and nfc.utf8_bytes == 2


def test_token_view_special_tokens_only_when_allowed():
    prompt = "<|im_start|>user\nHi<|im_end|>"
    special = token_view.token_view("smollm2", prompt, allow_special=True)
    plain = token_view.token_view("smollm2", prompt)
    assert special.ids[0] == 1 and 'class="t sp"' in special.html
    assert plain.n > special.n and 1 not in plain.ids


def test_merge_view_counts_tokens_before_and_after_a_merge():
    model = bpe.train("low lower lowest " * 50, bpe.BPEConfig(n_merges=5))
    view = token_view.merge_view(model, "lowest", 1)
    assert view.before == len(bpe.encode(model, "lowest", 0)) == 6
    assert view.after == len(bpe.encode(model, "lowest", 1)) < view.before
    assert view.before_html.count('class="t ') == view.before and view.after_html.count('class="t ') == view.after


def test_byte_runs_split_whole_characters_from_cut_ones():
    guo = "国".encode()                                 # e5 9b bd
    assert token_view.utf8_runs(b"") == []
    assert token_view.utf8_runs("a国".encode()) == ["a国"]
    assert token_view.utf8_runs(b"a" + guo[:2]) == ["a", guo[:2]]
    assert token_view.utf8_runs(guo[2:] + b" x" + guo[:1]) == [guo[2:], " x", guo[:1]]
    assert token_view.utf8_runs(b"\xff\xfeok") == [b"\xff\xfe", "ok"]      # two bad bytes: one run
    for data in (b"a" + guo[:2], guo[1:] + b"\xe4\xb8", b"\x80\x80\x80\x80", b"ok"):
        assert b"".join(r.encode() if isinstance(r, str) else r for r in token_view.utf8_runs(data)) == data
    assert token_view.byte_text(guo[1:] + b"!" + guo[:1]) == "⟨9b bd⟩!⟨e5⟩"
    assert token_view.is_piece(guo[:2]) and not token_view.is_piece(guo) and not token_view.is_piece(b"")
    html = token_view._piece_label(b"<" + guo[:2], __import__("html").escape)
    assert html == '&lt;<span class="hex">e5 9b</span>'
