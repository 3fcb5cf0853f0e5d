"""The Contrastive learning page: InfoNCE on real MiniLM pairs on first load, bad inputs
become messages, and a (tiny) CPC run from the button."""

from __future__ import annotations

from tests.pages.apptest import assert_clean, errors, open_page


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
