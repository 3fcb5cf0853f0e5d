"""RNN vs Transformer page (AppTest): first load, a tiny live training, every control, bad inputs."""

from __future__ import annotations

import pytest

from tests.pages.apptest import assert_clean, errors, open_page

PAGE = "rnn_vs_transformer.py"


def warnings(at) -> list[str]:
    return [w.value for w in at.warning]


@pytest.fixture(scope="module")
def trained_app():
    """The page after pressing Train with the smallest settings (shared by the tests below)."""
    at = open_page(PAGE)
    at.select_slider(key="rvt_budget").set_value(25_000)
    at.slider(key="rvt_steps").set_value(20)
    at.select_slider(key="rvt_batch").set_value(8)
    at.select_slider(key="rvt_block").set_value(32)
    at.select_slider(key="rvt_layers").set_value(1)
    at.button(key="rvt_train").click().run()
    assert_clean(at)
    return at


def test_first_load_uses_models_at_initialisation():
    at = open_page(PAGE)
    assert_clean(at)
    assert any("at initialisation" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert list(table["Model"]) == ["RNN", "LSTM", "GRU", "Transformer"]
    assert not errors(at)


def test_training_shows_curves_table_and_samples(trained_app):
    at = trained_app
    assert any("trained for 20 steps" in s.value for s in at.success)
    tables = [d.value for d in at.dataframe]
    assert any("Bits per character" in t.columns for t in tables)
    assert len(at.code) == 4                                          # one sample per model


def test_prompt_with_markup_and_unknown_characters(trained_app):
    at = trained_app
    at.text_input(key="rvt_prompt").input("<script>alert(1)</script> 漢").run()
    assert_clean(at)
    assert any("outside the models'" in w and "漢" in w for w in warnings(at))
    assert all(c.value.startswith("<script>alert(1)</script>") for c in at.code)   # shown as text


def test_empty_texts_are_messages_and_the_rest_renders(trained_app):
    at = trained_app
    at.text_area(key="rvt_gate_text").input("   ").run()
    at.text_area(key="rvt_attn_text").input("").run()
    assert_clean(at)
    assert sum("empty" in e for e in errors(at)) == 2
    at.text_area(key="rvt_gate_text").input("Short text.").run()
    at.text_area(key="rvt_attn_text").input("Attention, please.").run()
    assert_clean(at)
    assert not errors(at)


def test_unrolling_gradient_and_gate_controls(trained_app):
    at = trained_app
    at.slider(key="rvt_graph_T").set_value(24)
    at.select_slider(key="rvt_graph_layers").set_value(3)
    at.select_slider(key="rvt_grad_T").set_value(64)
    at.slider(key="rvt_grad_scale").set_value(3.0)
    at.radio(key="rvt_gate_model").set_value("gru")
    at.run()
    assert_clean(at)
    assert not errors(at)
    assert any("reproduce the module" in c.value for c in at.caption)


def test_timing_and_generation_buttons(trained_app):
    at = trained_app
    at.multiselect(key="rvt_lengths").set_value([64])
    at.select_slider(key="rvt_tbatch").set_value(1)
    at.button(key="rvt_time").click().run()
    assert_clean(at)
    assert any("Measured here" in c.value for c in at.caption)
    at.multiselect(key="rvt_gen_n").set_value([16])
    at.button(key="rvt_gen").click().run()
    assert_clean(at)
    assert any("State at the end" in d.value.columns for d in at.dataframe)
    at.multiselect(key="rvt_lengths").set_value([]).run()
    assert any("at least one sequence length" in e for e in errors(at))
    assert_clean(at)


def test_recall_task_button_and_bad_selection(trained_app):
    at = trained_app
    at.multiselect(key="rvt_rec_delays").set_value([1, 4])
    at.select_slider(key="rvt_rec_steps").set_value(50)
    at.select_slider(key="rvt_rec_budget").set_value(5_000)
    at.multiselect(key="rvt_rec_models").set_value(["rnn", "transformer"])
    at.button(key="rvt_recall").click().run()
    assert_clean(at)
    assert any("Adam steps" in c.value for c in at.caption)
    at.multiselect(key="rvt_rec_delays").set_value([])
    at.button(key="rvt_recall").click().run()
    assert_clean(at)
    assert any("at least one delay" in e for e in errors(at))


def test_smollm2_continues_the_same_prompt(trained_app):
    """Beside the four toy samples, the real LLM continues the same prompt (greedy at temperature 0),
    captioned with the parameter ratio of the counts shown."""
    at = trained_app
    at.text_input(key="rvt_prompt").input("The river ").run()
    at.slider(key="rvt_temp").set_value(0.0)
    at.slider(key="rvt_nchars").set_value(50).run()
    assert_clean(at)
    assert len(at.code) == 4
    shown = [t.value for t in at.text if t.value.startswith("The river ")]
    assert len(shown) == 1 and len(shown[0]) == len("The river ") + 50
    caption = next(c.value for c in at.caption if "× the parameters" in c.value)
    toy = int(next(d.value for d in at.dataframe if "Bits per character" in d.value.columns)
              .set_index("Model").loc["Transformer", "Parameters"].replace(",", ""))
    assert f"{134_515_008 / toy:,.0f}× the parameters" in caption and "134,515,008" in caption
    assert "trillions of tokens" in caption and "greedy" in caption
    at.text_input(key="rvt_prompt").input("<b>bold</b> ").run()
    assert_clean(at)
    assert any(t.value.startswith("<b>bold</b> ") for t in at.text)         # plain text, never HTML


def test_every_button_in_chinese():
    """?lang=zh: training, both timing buttons and the recall task (the settings of the tests above,
    so the cached runs are reused), every tab rendered, nothing left untranslated."""
    from app import i18n

    before = set(i18n.MISSING)
    at = open_page(PAGE, lang="zh")
    assert_clean(at)
    at.select_slider(key="rvt_budget").set_value(25_000)
    at.slider(key="rvt_steps").set_value(20)
    at.select_slider(key="rvt_batch").set_value(8)
    at.select_slider(key="rvt_block").set_value(32)
    at.select_slider(key="rvt_layers").set_value(1)
    at.button(key="rvt_train").click().run()
    assert_clean(at)
    assert any("20" in s.value and "步" in s.value for s in at.success)
    at.multiselect(key="rvt_lengths").set_value([64])
    at.select_slider(key="rvt_tbatch").set_value(1)
    at.button(key="rvt_time").click().run()
    at.multiselect(key="rvt_gen_n").set_value([16])
    at.button(key="rvt_gen").click().run()
    assert_clean(at)
    at.multiselect(key="rvt_rec_delays").set_value([1, 4])
    at.select_slider(key="rvt_rec_steps").set_value(50)
    at.select_slider(key="rvt_rec_budget").set_value(5_000)
    at.multiselect(key="rvt_rec_models").set_value(["rnn", "transformer"])
    at.button(key="rvt_recall").click().run()
    at.radio(key="rvt_gate_model").set_value("gru").run()
    assert_clean(at)
    assert not errors(at)
    assert any("Adam" in c.value and "模型" in c.value for c in at.caption)
    missing = sorted(m for lang, m in i18n.MISSING - before if lang == "zh")
    assert not missing, missing
