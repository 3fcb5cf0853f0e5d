"""The Sequence packing page: real lengths on first load, bad inputs become messages,
the packed-vs-alone check and a small measurement run from the page."""

from __future__ import annotations

from app import i18n
from tests.pages.apptest import assert_clean, errors, open_page


def test_first_load_shows_real_lengths_and_the_layer_check():
    at = open_page("packing.py")
    assert_clean(at)
    assert not errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Samples"] == "6,084"                 # paragraphs of the Wikipedia sample
    assert "Least padding" in metrics
    assert len(at.get("plotly_chart")) >= 6
    verdict = " ".join(c.value for c in at.caption)
    assert "plain causal mask" in verdict


def test_bad_inputs_are_messages():
    at = open_page("packing.py")
    at.text_input(key="pk_mask_lengths").input("5, x, 3").run()
    assert any("whole numbers" in e for e in errors(at))
    at.text_input(key="pk_mask_lengths").input("20, 30").run()
    assert any("pack length" in e or "shorter" in e for e in errors(at))
    at.text_input(key="pk_layer_lengths").input("0, 4").run()
    assert any("between" in e for e in errors(at))
    at.select_slider(key="pk_max_len").set_value(4096).run()
    at.select_slider(key="pk_capacity").set_value(256).run()
    assert any("pack length" in e for e in errors(at))
    assert_clean(at)


def test_own_text_and_a_measurement():
    at = open_page("packing.py")
    at.selectbox(key="pk_source").set_value("text").run()
    assert_clean(at)
    assert any("Type or upload" in i.value for i in at.info)
    at.text_area(key="pk_text").input("<script>alert(1)</script> a first line of text\n"
                                      "a second, longer line of text to pack\nthird").run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Samples"] == "3"
    at.selectbox(key="pk_source").set_value("wiki-paragraph").run()
    at.slider(key="pk_speed_n").set_value(8).run()
    at.select_slider(key="pk_speed_width").set_value(64).run()
    at.slider(key="pk_speed_layers").set_value(1).run()
    at.slider(key="pk_speed_batch").set_value(2).run()
    at.multiselect(key="pk_speed_methods").set_value(["padded", "packed-sdpa"]).run()
    at.button(key="pk_speed_run").click().run()
    assert_clean(at)
    assert not errors(at)
    assert any("tokens/s" in str(df.value.columns.tolist()) for df in at.dataframe)


def test_the_page_in_chinese():
    """?lang=zh: own (Chinese) text, the mask, the layer check and a small measurement, with nothing
    asked of the catalog left untranslated and core's labels and errors in Chinese."""
    before = set(i18n.MISSING)
    at = open_page("packing.py", lang="zh")
    assert_clean(at)
    assert not errors(at)
    assert "序列打包 (packing)" in [t.value for t in at.title]
    table = next(df.value for df in at.dataframe if "策略" in df.value.columns)
    assert "首次适应递减 (FFD)" in set(table["策略"])
    at.selectbox(key="pk_source").set_value("text").run()
    at.text_area(key="pk_text").input("长城是中国古代的军事防御工程。\n大熊猫主要生活在四川的竹林中。\n第三行").run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}[i18n.translate("Samples", "zh")] == "3"
    at.text_input(key="pk_mask_lengths").input("5, x, 3").run()
    assert any("整数" in e for e in errors(at))
    at.selectbox(key="pk_layer_attn").set_value("reference").run()
    at.selectbox(key="pk_layout").set_value("pad-batch").run()
    assert_clean(at)
    at.slider(key="pk_speed_n").set_value(3).run()
    at.select_slider(key="pk_speed_width").set_value(64).run()
    at.slider(key="pk_speed_layers").set_value(1).run()
    at.slider(key="pk_speed_batch").set_value(2).run()
    at.multiselect(key="pk_speed_methods").set_value(["padded", "packed-varlen-loop"]).run()
    at.button(key="pk_speed_run").click().run()
    assert_clean(at)
    assert any("每轮耗时" in df.value.columns for df in at.dataframe)
    at.multiselect(key="pk_speed_methods").set_value([]).run()
    assert any("请至少选择一种要测量的方法" in e for e in errors(at))
    missing = sorted(m for lang, m in i18n.MISSING - before if lang == "zh")
    assert not missing, missing
