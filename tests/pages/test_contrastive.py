"""The Contrastive learning page: InfoNCE on real MiniLM pairs on first load, bad inputs
become messages, and a (tiny) CPC run from the button."""

from __future__ import annotations

from app import i18n
from tests.pages.apptest import assert_clean, errors, open_page, texts


def test_first_load_shows_infonce_on_real_pairs():
    at = open_page("contrastive.py")
    assert_clean(at)
    assert not errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["log N"] == "2.773 nats"              # N = 16
    loss = float(metrics["InfoNCE loss"].split()[0])
    bound = float(metrics["MI bound log N − L"].split()[0])
    assert loss >= 0 and bound <= 2.773
    assert len(at.get("plotly_chart")) >= 2              # heatmap + bound curve


def test_bad_inputs_and_own_text():
    at = open_page("contrastive.py")
    at.radio(key="cl_source").set_value("text").run()
    assert_clean(at)
    at.text_area(key="cl_text").input("<script>alert(1)</script> is just one short sentence here.").run()
    assert any("at least 2" in e for e in errors(at))
    text = ("Packing removes padding from training batches. Attention must not cross the sequence "
            "boundaries then. Position ids restart at zero for every packed sequence. The mask is "
            "block diagonal and causal inside each block.")
    at.text_area(key="cl_text").input(text).run()
    assert_clean(at)
    assert not errors(at)
    assert {m.label: m.value for m in at.metric}["log N"] == "1.099 nats"   # 3 pairs -> N = 3


def test_cpc_trains_from_the_button():
    at = open_page("contrastive.py")
    at.select_slider(key="cl_cpc_steps").set_value(20).run()
    at.slider(key="cl_cpc_k").set_value(2).run()
    at.select_slider(key="cl_cpc_batch").set_value(8).run()
    at.button(key="cl_cpc_train").click().run()
    assert_clean(at)
    labels = [m.label for m in at.metric]
    assert "k = 1 accuracy" in labels and "Parameters" in labels


def test_chinese_examples_show_what_an_english_model_does_with_chinese():
    """MiniLM is English-only: the Chinese sentences crowd together (true pairs barely above the
    rest), their English translations separate well; the page says so with the measured numbers."""
    at = open_page("contrastive.py")
    at.radio(key="cl_source").set_value("zh").run()
    assert_clean(at)
    assert not errors(at)
    assert any("MiniLM is English-only" in w and "[UNK]" in w for w in texts(at.warning))
    table = next(df.value for df in at.dataframe if "mean cos, true pairs" in df.value.columns)
    zh, en = (table.iloc[i] for i in (0, 1))
    gap = {lang: float(row["mean cos, true pairs"]) - float(row["mean cos, other pairs"]) for lang, row in
           (("zh", zh), ("en", en))}
    assert gap["zh"] < 0.1 < gap["en"]
    assert float(zh["mean cos, other pairs"]) > 0.3 > float(en["mean cos, other pairs"])
    assert {m.label: m.value for m in at.metric}["log N"] == "2.773 nats"   # 20 pairs, N = 16


def test_the_page_in_chinese():
    """?lang=zh: the Chinese examples, a Chinese text (no pairs: a message in Chinese), the bound tab
    and a tiny CPC run, with nothing asked of the catalog left untranslated."""
    before = set(i18n.MISSING)
    at = open_page("contrastive.py", lang="zh")
    assert_clean(at)
    assert "对比学习" in [t.value for t in at.title]
    at.radio(key="cl_source").set_value("zh").run()
    assert_clean(at)
    assert not errors(at)
    assert any("MiniLM 只懂英文" in w for w in texts(at.warning))
    at.toggle(key="cl_sym").set_value(True).run()
    at.slider(key="cl_draws").set_value(2).run()
    assert_clean(at)
    at.radio(key="cl_source").set_value("text").run()
    at.text_area(key="cl_text").input("长城是中国古代修建的军事防御工程。它现存的墙体大多建于明朝。").run()
    assert_clean(at)
    assert any("你的文本只得到 0 个样本对" in e for e in errors(at))
    at.select_slider(key="cl_cpc_steps").set_value(20).run()
    at.slider(key="cl_cpc_k").set_value(2).run()
    at.select_slider(key="cl_cpc_batch").set_value(8).run()
    at.button(key="cl_cpc_train").click().run()
    assert_clean(at)
    assert "k = 1 准确率" in [m.label for m in at.metric]
    missing = sorted(m for lang, m in i18n.MISSING - before if lang == "zh")
    assert not missing, missing
