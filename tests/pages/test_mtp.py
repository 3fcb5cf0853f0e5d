"""The multi-token prediction page: fast first load, live training from the button, decoding, bad input."""

from __future__ import annotations

from tests.pages.apptest import assert_clean, errors, open_page


def _tiny_training(at):
    at.select_slider(key="mtp_width").set_value(32)
    at.slider(key="mtp_layers").set_value(1)
    at.select_slider(key="mtp_window").set_value(16)
    at.number_input(key="mtp_steps").set_value(10)
    at.select_slider(key="mtp_batch").set_value(4)
    at.run()
    return at.button(key="mtp_train_btn").click().run()


def test_first_load_shows_targets_without_training():
    at = open_page("mtp.py")
    assert_clean(at)
    assert "Multi-token prediction" in [t.value for t in at.title]
    assert at.dataframe, "the target table should show on first load"
    assert any("Press **Train**" in i.value for i in at.info)
    at.text_area(key="mtp_prompt").input("").run()
    assert_clean(at)
    assert any("empty" in e for e in errors(at))


def test_train_then_decode_and_escape():
    at = _tiny_training(open_page("mtp.py"))
    assert_clean(at)
    labels = [m.label for m in at.metric]
    assert "Main head: next char" in labels and "Tokens per main pass" in labels
    assert [m.value for m in at.metric if m.label == "Same text as plain greedy"] == ["yes"]
    at.text_input(key="mtp_decode_prompt").input("<script>alert(1)</script> café").run()
    at.slider(key="mtp_new").set_value(10).run()
    assert_clean(at)
    html = " ".join(m.value for m in at.markdown)
    assert "&lt;script&gt;" in html and "<script>" not in html
    at.text_input(key="mtp_decode_prompt").input("   ").run()
    assert_clean(at)
    assert any("empty" in e for e in errors(at))


def test_targets_training_and_decoding_in_chinese():
    """?lang=zh: the target table, a tiny training run and decoding (a prompt with characters the
    model does not know, an empty one) render without an error and without text missing from the catalog."""
    from app import i18n

    def zh(msgid: str) -> str:
        return i18n.translate(msgid, "zh")

    before = set(i18n.MISSING)
    at = open_page("mtp.py", lang="zh")
    assert_clean(at)
    assert zh("Multi-token prediction") in [t.value for t in at.title]
    assert zh("Train live") in [t.label for t in at.tabs]
    rows = list(at.dataframe[0].value.index)
    assert rows[:2] == [zh("input tᵢ"), zh("main head → tᵢ₊₁")] and "MTP 2 读入 tᵢ₊₂" in rows
    assert any("记录的运行" in m.value and "留出集准确率" in m.value for m in at.markdown), "the recorded run, in Chinese"
    at.slider(key="mtp_view_depth").set_value(3).run()
    assert_clean(at)
    at = _tiny_training(at)
    assert_clean(at)
    assert not errors(at), errors(at)
    labels = [m.label for m in at.metric]
    assert zh("Main head: next char") in labels and zh("Tokens per main pass") in labels
    assert [m.value for m in at.metric if m.label == zh("Same text as plain greedy")] == [zh("yes")]
    at.text_input(key="mtp_decode_prompt").input("多词元预测 draft tokens").run()   # outside the alphabet
    at.slider(key="mtp_new").set_value(10).run()
    assert_clean(at)
    assert any("未知符号" in w.value for w in at.warning)
    at.text_input(key="mtp_decode_prompt").input("   ").run()
    assert errors(at) and all(any("\u4e00" <= ch <= "\u9fff" for ch in e) for e in errors(at))
    missing = sorted(m for lang, m in i18n.MISSING - before if lang == "zh")
    assert not missing, missing
