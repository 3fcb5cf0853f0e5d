"""pages/moe_routing.py through app/main.py: default view, bad settings, a short training run."""

from __future__ import annotations

import pytest

from tests.pages.apptest import assert_clean, errors, open_page

PAGE = "moe_routing.py"


@pytest.fixture(scope="module")
def at():
    return open_page(PAGE)


def test_first_load_shows_untrained_routing_and_scale_view(at):
    assert_clean(at)
    assert "MoE routing" in [t.value for t in at.title]
    assert not errors(at)
    assert at.button(key="moe_train")
    labels = [t.label for t in at.tabs]
    assert "DeepSeek-V3 at scale" in labels and "Routing of your text" in labels
    totals = {m.label: m.value for m in at.metric}
    assert totals["Total parameters"] == "671.03 B"          # DeepSeek-V3, core.configs
    assert totals["Routed experts"] == "256"
    assert any("Untrained model" in c.value for c in at.caption)


@pytest.mark.parametrize("changes,words", [
    ({"moe_experts": 4, "moe_topk": 5}, "cannot exceed"),
    ({"moe_experts": 0}, "at least one routed expert"),
    ({"moe_groups": 3}, "divide"),
    ({"moe_groups": 4, "moe_topk_groups": 6}, "Groups per token"),
    ({"moe_gamma": 0.5}, "gamma"),
    ({"moe_gamma": -0.01}, "gamma"),
    ({"moe_alpha": 2.0}, "alpha"),
    ({"moe_layers": 9}, "Layers"),
])
def test_bad_settings_give_clear_messages(at, changes, words):
    for key, value in changes.items():
        at.number_input(key=key).set_value(value)
    at.run()
    assert_clean(at)
    assert any(words in e for e in errors(at)), errors(at)
    assert "671.03 B" in [m.value for m in at.metric]        # the rest of the page still works
    defaults = {"moe_experts": 16, "moe_topk": 2, "moe_groups": 1, "moe_topk_groups": 1,
                "moe_gamma": 0.01, "moe_alpha": 0.01, "moe_layers": 2}
    for key in changes:
        at.number_input(key=key).set_value(defaults[key])
    at.run()
    assert not errors(at)


def test_short_training_then_routing_of_hostile_text(at):
    at.slider(key="moe_steps").set_value(10)
    at.number_input(key="moe_experts").set_value(8)
    at.run()
    at.button(key="moe_train").click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    labels = [m.label for m in at.metric]
    assert labels.count("Held-out loss") == 3 and labels.count("MaxVio (last 10 %)") == 3
    at.text_area(key="moe_text").input("<script>alert(1)</script> & more").run()
    assert_clean(at)
    html = "".join(m.value for m in at.markdown)
    assert "<script>" not in html and "&lt;" in html
    at.segmented_control(key="moe_route_model").set_value("none").run()
    at.segmented_control(key="moe_route_layer").set_value(1).run()
    at.segmented_control(key="moe_route_show").set_value("affinities").run()
    at.segmented_control(key="moe_train_layer").set_value(1).run()
    assert_clean(at)
    assert not errors(at)
    assert at.dataframe                                     # the specialisation table


def test_long_text_is_capped_with_a_notice(at):
    at.text_area(key="moe_text").input("abc " * 200).run()
    assert_clean(at)
    assert any("only the first" in w.value for w in at.warning)
    at.text_area(key="moe_text").input("   ").run()
    assert_clean(at)
    assert any("empty" in e for e in errors(at))


def test_training_and_every_control_in_chinese():
    """?lang=zh: a short training run, every segmented control and the scale tab render without an
    error and without text missing from the catalog."""
    from app import i18n

    before = set(i18n.MISSING)
    at = open_page(PAGE, lang="zh")
    assert_clean(at)
    assert i18n.translate("DeepSeek-V3 at scale", "zh") in [t.label for t in at.tabs]
    at.slider(key="moe_steps").set_value(10)
    at.number_input(key="moe_experts").set_value(8)
    at.number_input(key="moe_groups").set_value(2)                # group-limited routing in the description
    at.run()
    at.button(key="moe_train").click().run()
    assert_clean(at)
    assert not errors(at), errors(at)
    assert [m.label for m in at.metric].count(i18n.translate("Held-out loss", "zh")) == 3
    at.segmented_control(key="moe_train_layer").set_value(1).run()
    at.segmented_control(key="moe_route_model").set_value("aux_loss").run()
    at.segmented_control(key="moe_route_layer").set_value(1).run()
    at.segmented_control(key="moe_route_show").set_value("affinities").run()
    at.segmented_control(key="moe_spec_model").set_value("none").run()
    at.segmented_control(key="moe_spec_layer").set_value(1).run()
    at.text_area(key="moe_text").input("混合专家 routes 中文 too: 东京").run()   # characters it has never seen
    at.selectbox(key="moe_scale_preset").set_value("deepseek-v2").run()
    assert_clean(at)
    assert not errors(at), errors(at)
    at.number_input(key="moe_topk").set_value(20).run()            # a bad setting: core's message, in Chinese
    assert errors(at) and all(any("\u4e00" <= ch <= "\u9fff" for ch in e) for e in errors(at))
    missing = sorted(m for lang, m in i18n.MISSING - before if lang == "zh")
    assert not missing, missing
