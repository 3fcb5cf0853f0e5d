"""pages/training_memory.py through app/main.py: knobs, URL state, bad input, Measure it, FP8."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.pages.apptest import MAIN, TIMEOUT_S, assert_clean, errors, metric, open_page, spec_for

PAGE = "training_memory.py"


def open_with_query(query: dict) -> AppTest:
    at = AppTest.from_file(str(MAIN), default_timeout=TIMEOUT_S)
    at.run()
    at.switch_page(spec_for(PAGE).script)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_knobs_update_numbers_and_url():
    at = open_page(PAGE)
    assert_clean(at)
    assert "Training memory" in [t.value for t in at.title]
    assert at.query_params["preset"] == "llama-2-7b"
    per_gpu = metric(at, "Per GPU")
    at.select_slider(key="tm_zero_stage").set_value(3).run()
    assert_clean(at)
    assert metric(at, "Per GPU") != per_gpu
    assert at.query_params["zero"] == "3"
    at.selectbox(key="tm_recompute").set_value("full").run()
    assert at.query_params["rc"] == "full"
    assert len(at.get("plotly_chart")) >= 4 and len(at.dataframe) >= 3
    # TP that does not divide Llama-2's 32 heads: a clear message, the rest of the page still renders
    at.number_input(key="tm_tp").set_value(3).run()
    assert_clean(at)
    assert any("must divide the 32" in e for e in errors(at))
    assert "Fix the settings above" in " ".join(i.value for i in at.info)
    at.number_input(key="tm_tp").set_value(4).run()
    at.toggle(key="tm_sp").set_value(True).run()
    assert_clean(at)
    assert not errors(at)


def test_url_state_is_read_and_garbage_is_reported():
    at = open_with_query({"preset": "gpt2", "zero": "2", "dp": "64", "seq": "1024", "rc": "sqrt"})
    assert_clean(at)
    assert at.selectbox(key="tm_preset").value == "gpt2"
    assert at.number_input(key="tm_dp").value == 64
    assert at.selectbox(key="tm_recompute").value == "sqrt"
    bad = open_with_query({"dp": "lots", "preset": "<script>alert(1)</script>", "sp": "maybe",
                           "seq": "9" * 500, "h": "0", "kvr": "-1", "zero": "7"})
    assert_clean(bad)
    warnings = " ".join(w.value for w in bad.warning)
    assert "'dp' must be a whole number" in warnings and "'preset' must be one of" in warnings
    assert "too long" in warnings and "true or false" in warnings
    assert bad.selectbox(key="tm_preset").value == "llama-2-7b"
    clash = open_with_query({"preset": "falcon-7b", "tp": "2"})
    assert_clean(clash)
    assert any("do not work together" in w.value for w in clash.warning)


def test_measure_it_and_fp8():
    at = open_page(PAGE)
    for key, value in (("tm_m_hidden", 32), ("tm_m_heads", 2), ("tm_m_layers", 2), ("tm_m_seq", 16)):
        at.number_input(key=key).set_value(value)
    at.button(key="tm_m_run").click().run()
    assert_clean(at)
    assert "Measured: saved for backward" in [m.label for m in at.metric]
    # a measurement that cannot fit: a clear message, no exception
    for key, value in (("tm_m_hidden", 4096), ("tm_m_heads", 64), ("tm_m_layers", 48),
                       ("tm_m_seq", 8192), ("tm_m_batch", 64)):
        at.number_input(key=key).set_value(value)
    at.button(key="tm_m_run").click().run()
    assert_clean(at)
    assert any("Lower the sequence length" in e for e in errors(at))
    at.number_input(key="tm_m_heads").set_value(3).run()       # 3 does not divide 4096
    assert_clean(at)
    at.selectbox(key="tm_f_source").set_value("weight").run()
    at.radio(key="tm_f_fmt").set_value("e5m2").run()
    assert_clean(at)
    assert not [e for e in errors(at) if "FP8" in e]
