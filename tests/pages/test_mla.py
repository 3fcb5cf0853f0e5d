"""The MLA page: the KV table checks out, the live layer agrees, bad ranks and empty choices are handled."""

from __future__ import annotations

from core.models.mla import MLAConfig
from tests.pages.apptest import assert_clean, errors, open_page


def test_page_tables_and_checks():
    at = open_page("mla.py")
    assert_clean(at)
    table = at.dataframe[0].value
    assert set(table["Match"]) == {"✓"}
    v3 = table[table["Model"].str.startswith("DeepSeek-V3")].iloc[0]
    assert v3["Values / token / layer"] == 576 and v3["Per token (formula)"] == "68.62 KiB"
    small = at.dataframe[1].value
    assert set(small["Match"]) == {"✓"} and len(small) == 4
    absorbed = next(m.value for m in at.metric if m.label == "Absorbed vs plain (fp64)")
    assert float(absorbed) < 1e-12


def test_bad_inputs_and_timing():
    at = open_page("mla.py")
    at.number_input(key="mla_kvrank").set_value(512).run()        # hidden is 256
    assert_clean(at)
    assert any("exceeds the hidden size" in e for e in errors(at))
    at.multiselect(key="mla_models").set_value([]).run()
    assert_clean(at)
    assert any("Pick at least one model" in i.value for i in at.info)
    at.select_slider(key="mla_ctx").set_value(256).run()
    at.button(key="mla_time_btn").click().run()
    assert_clean(at)
    timing = at.dataframe[-1].value
    assert list(timing["Form"]) == ["plain", "decompressed", "absorbed"]
    assert (timing["Median (ms)"] > 0).all()


def test_kv_cache_measured_on_smollm2():
    at = open_page("mla.py")
    assert_clean(at)
    assert at.button(key="mla_kv_run")
    assert any("Press the button to load SmolLM2" in c.value for c in at.caption)
    charts = len(at.get("plotly_chart"))
    at.multiselect(key="mla_kv_tokens").set_value([16, 64]).run()
    at.button(key="mla_kv_run").click().run()
    assert_clean(at)
    assert not errors(at)
    labels = {m.label: (m.value, m.delta) for m in at.metric}
    assert labels["Formula: kv_cache_bytes_per_token × T"][1] == "equal at every T"
    assert labels["Measured cache after 64 tokens"][0] == labels["Formula: kv_cache_bytes_per_token × T"][0]
    table = next(df.value for df in at.dataframe if "× SmolLM2" in df.value.columns)
    ratios = dict(zip(table["Model"], table["× SmolLM2"], strict=True))
    assert ratios["As MHA"] == "3.00×" and ratios["With MLA latents"] == "0.75×"
    assert len(at.get("plotly_chart")) == charts + 1                   # bytes vs T, formula and measured
    at.multiselect(key="mla_kv_tokens").set_value([]).run()
    at.button(key="mla_kv_run").click().run()
    assert_clean(at)
    assert any("Pick at least one length" in w.value for w in at.warning)


def test_in_chinese_tables_layer_cache_and_timing():
    """?lang=zh: tables, the live layer, the measured cache and the decode timing read in Chinese,
    and nothing the page asks the catalog for is missing (core's variant names included)."""
    from app import i18n

    before = set(i18n.MISSING)
    at = open_page("mla.py", lang="zh")
    assert_clean(at)
    table = at.dataframe[0].value
    assert set(table["一致"]) == {"✓"} and "每词元（公式）" in table.columns
    at.number_input(key="mla_kvrank").set_value(512).run()
    assert_clean(at)
    assert any("超过了隐藏维度" in e for e in errors(at))                # core's message, translated
    at.number_input(key="mla_kvrank").set_value(MLAConfig().kv_lora_rank).run()
    assert not errors(at)
    at.multiselect(key="mla_models").set_value([]).run()
    assert any("请至少选择一个模型" in i.value for i in at.info)
    at.multiselect(key="mla_kv_tokens").set_value([16]).run()
    at.button(key="mla_kv_run").click().run()
    assert_clean(at)
    assert not errors(at)
    measured = next(df.value for df in at.dataframe if "× SmolLM2" in df.value.columns)
    assert "改为 MHA" in set(measured["模型"])
    at.select_slider(key="mla_ctx").set_value(256).run()
    at.button(key="mla_time_btn").click().run()
    assert_clean(at)
    assert list(at.dataframe[-1].value["形式"]) == ["普通", "解压缓存", "吸收"]
    assert sorted(m for lang, m in i18n.MISSING - before if lang == "zh") == []
