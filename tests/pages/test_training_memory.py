"""pages/training_memory.py through app/main.py: knobs, URL state, bad input, Measure it, FP8,
and SmolLM2 measured (KV cache, fine-tuning memory, FP8 perplexity, recorded bench runs)."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from app import cache
from core.runtime import recorded
from tests.pages.apptest import (
    MAIN,
    TIMEOUT_S,
    assert_clean,
    errors,
    metric,
    open_page,
    spec_for,
    texts,
)

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


# ---------------------------------------------------------------- SmolLM2, measured
def test_smollm2_sections_wait_for_their_buttons():
    at = open_page(PAGE)
    assert_clean(at)
    for key in ("tm_kv_run", "tm_l_run", "tm_l8_run"):
        assert at.button(key=key)
    assert at.number_input(key="tm_l_seq").value == 64
    assert any("baseline is the file's Q4_1 weights" in i and "not SmolLM2's original bf16" in i
               for i in texts(at.info))
    assert any("Press the button to run the steps twice" in c for c in texts(at.caption))


def test_smollm2_kv_cache_measured_equals_the_formula():
    at = open_page(PAGE)
    at.number_input(key="tm_kv_tokens").set_value(40)
    at.button(key="tm_kv_run").click().run()
    assert_clean(at)
    assert not errors(at)
    assert metric(at, "Measured: cache tensors after 40 tokens") == metric(at, "Formula: kv_cache_bytes_per_token × T")
    table = next(df.value for df in at.dataframe if "× SmolLM2" in df.value.columns)
    rows = dict(zip(table["model"], table["values / token / layer"], strict=True))
    assert rows["This model (GQA)"] == 2 * 3 * 64 and rows["As MHA"] == 2 * 9 * 64
    assert rows["DeepSeek-V3 (MLA)"] == 576 and rows["Llama-2-7B (MHA)"] == 2 * 32 * 128
    at.number_input(key="tm_kv_tokens").set_value(10**9)   # a crafted client: Streamlit falls back to the default
    at.button(key="tm_kv_run").click().run()
    assert_clean(at)
    assert not errors(at)
    assert any(m.label == "Measured: cache tensors after 256 tokens" for m in at.metric)


def test_smollm2_finetune_is_explained_term_by_term():
    at = open_page(PAGE)
    at.number_input(key="tm_l_seq").set_value(8)
    at.button(key="tm_l_run").click().run()
    assert_clean(at)
    assert not errors(at)
    labels = [m.label for m in at.metric]
    assert {"Saved, all stored", "Saved, checkpointed", "Recompute cost", "Peak, forward + backward"} <= set(labels)
    assert metric(at, "Recompute cost").endswith("%")
    assert any("30 × one block's terms + the head's terms" in c for c in texts(at.caption))
    explained = [m for m in texts(at.markdown) if "measured − calculator" in m]
    assert len(explained) == 2 and all("(all of it)." in m for m in explained)
    terms = next(df.value for df in at.dataframe if "term" in df.value.columns and "where" in df.value.columns)
    assert (terms["bytes"] > 0).all() and terms["where"].str.contains("30 blocks").any()
    table = next(df.value for df in at.dataframe if "calculator + extras" in df.value.columns)
    assert list(table["run"]) == ["every activation stored", "checkpointed per block"]
    at.number_input(key="tm_l_seq").set_value(16).run()
    assert any("Settings changed" in c for c in texts(at.caption))


def test_smollm2_fp8_perplexity():
    at = open_page(PAGE)
    at.multiselect(key="tm_l8_recipes").set_value([]).run()
    at.button(key="tm_l8_run").click().run()
    assert_clean(at)
    assert any("Pick at least one recipe" in w for w in texts(at.warning))
    at.multiselect(key="tm_l8_recipes").set_value(["file", "e4m3-row"])
    at.number_input(key="tm_l8_tokens").set_value(64)
    at.button(key="tm_l8_run").click().run()
    assert_clean(at)
    assert not errors(at)
    table = next(df.value for df in at.dataframe if "perplexity" in df.value.columns and "bytes / weight" in df.value.columns
                 and "tensors quantized" in df.value.columns)
    assert len(table) == 2 and (table["perplexity"] > 1).all()
    assert table["bytes / weight"].iloc[0] == 0.625 and table["tensors quantized"].iloc[1] == 210


def _fake_memory_doc() -> dict:
    """A document shaped like bench/memory.py's output with its "smollm2" key (test data for the
    renderer, not a measurement)."""
    runs = [{"seq": 128, "batch": 1, "checkpoint": ckpt, "saved_MiB": 200.0 if not ckpt else 33.0,
             "predicted_MiB": 180.0 if not ckpt else 32.5, "explained_MiB": 200.0 if not ckpt else 33.0,
             "diff_vs_predicted": 0.11 if not ckpt else 0.015, "extras": [["x", 1.0]], "peak_MiB": 730.0,
             "update_peak_MiB": 500.0, "peak_kind": "tracked tensor bytes (CPU)", "predicted_peak_MiB": 700.0,
             "step_ms": 2000.0 if not ckpt else 2600.0, "losses": [3.0, 2.9, 2.8]} for ckpt in (False, True)]
    fp8 = [{"recipe": "file", "label": "The file's weights", "perplexity": 15.0, "nll": 2.7, "bytes_per_param": 0.625,
            "rel_err_max": None, "rel_err_mean": None}]
    return {"benchmark": "memory", "meta": {"device": {"kind": "cpu", "name": "Test CPU"}, "date": "2026-01-02 03:04 UTC"},
            "activations": [], "zero": None, "summary": [],
            "smollm2": {"ok": True, "model": "SmolLM2", "dtype": "float32", "finetune": runs, "fp8": fp8,
                        "fp8_eval_tokens": 2048}}


def test_recorded_smollm2_runs_render_and_a_missing_key_is_fine(tmp_path, monkeypatch):
    monkeypatch.setattr(recorded, "RESULTS_DIR", tmp_path)
    old = {"benchmark": "memory", "meta": {"device": {"kind": "cpu", "name": "Old CPU"}, "date": "2025"},
           "activations": [], "summary": []}                               # recorded before the SmolLM2 runs
    (tmp_path / "memory-old.json").write_text(json.dumps(old), encoding="utf-8")
    cache.recorded.clear()
    try:
        at = open_page(PAGE)
        assert_clean(at)
        assert any("No recorded SmolLM2 fine-tuning run yet" in c for c in texts(at.caption))
        (tmp_path / "memory-cpu.json").write_text(json.dumps(_fake_memory_doc()), encoding="utf-8")
        cache.recorded.clear()
        at = open_page(PAGE)
        assert_clean(at)
        assert any("Recorded on Test CPU, 2026-01-02" in c and "float32" in c for c in texts(at.caption))
        assert any("Recorded on Test CPU" in c and "2048 held-out tokens" in c for c in texts(at.caption))
        table = next(df.value for df in at.dataframe if "recompute cost" in df.value.columns)
        assert list(table["recompute cost"]) == ["—", "+30%"]
    finally:
        cache.recorded.clear()


# ---------------------------------------------------------------- in Chinese
def test_page_in_chinese_buttons_and_tabs():
    """?lang=zh: the calculator, a bad setting, the activation measurement, the ZeRO workers, the
    FP8 analysis and SmolLM2's KV cache, fine-tuning and FP8 runs (small settings) read in Chinese,
    and nothing the page asks the catalog for is missing (core's labels, terms and notes included)."""
    from app import i18n

    before = set(i18n.MISSING)
    at = open_page(PAGE, lang="zh")
    assert_clean(at)
    assert "训练显存" in [t.value for t in at.title]
    assert "每块 GPU" in [m.label for m in at.metric]
    breakdown = next(df.value for df in at.dataframe if "计算方式" in df.value.columns)
    assert "梯度" in set(breakdown["部分"]) and "GPU 上的总量" in set(breakdown["部分"])
    at.selectbox(key="tm_preset").set_value("deepseek-v3").run()      # MoE + MLA: core's notes
    at.selectbox(key="tm_recipe").set_value("fp8-deepseek").run()
    assert_clean(at)
    assert any("混合专家" in c for c in texts(at.caption))
    at.number_input(key="tm_tp").set_value(3).run()                  # 128 heads: not divisible
    assert_clean(at)
    assert any("张量并行度 3 必须能整除" in e for e in errors(at))
    assert "请修正上面的设置" in " ".join(i.value for i in at.info)
    at.number_input(key="tm_tp").set_value(1).run()
    at.radio(key="tm_ck_view").set_value("sqrt").run()
    assert_clean(at)
    # Measure it: a tiny transformer, then two ranks on gloo for one step
    for key, value in (("tm_m_hidden", 32), ("tm_m_heads", 2), ("tm_m_layers", 2), ("tm_m_seq", 16)):
        at.number_input(key=key).set_value(value)
    at.selectbox(key="tm_m_dtype").set_value("float32")
    at.button(key="tm_m_run").click().run()
    assert_clean(at)
    assert "实测：为反向传播保存" in [m.label for m in at.metric]
    assert any("本次运行是 fp32" in m for m in texts(at.markdown))   # core's explanation lines
    at.number_input(key="tm_z_hidden").set_value(32)
    at.number_input(key="tm_z_steps").set_value(1)
    at.multiselect(key="tm_z_strategies").set_value(["ddp", "zero3"])
    at.button(key="tm_z_run").click().run()
    assert_clean(at)
    assert not errors(at)
    zero_table = next(df.value for df in at.dataframe if "预测 MiB" in df.value.columns)
    assert "FSDP，前向后重新切分（ZeRO-3）" in set(zero_table["策略"])
    # FP8: every source
    at.selectbox(key="tm_f_source").set_value("weight").run()
    at.radio(key="tm_f_fmt").set_value("e5m2").run()
    assert_clean(at)
    scaling = next(df.value for df in at.dataframe if "缩放方式" in df.value.columns)
    assert "按张量" in set(scaling["缩放方式"])
    at.selectbox(key="tm_f_source").set_value("minilm").run()
    assert_clean(at)
    assert not errors(at)
    # SmolLM2: KV cache, fine-tuning and FP8 perplexity, small
    at.number_input(key="tm_kv_tokens").set_value(16)
    at.button(key="tm_kv_run").click().run()
    assert_clean(at)
    assert any(m.label == "实测：16 个词元之后的缓存张量" for m in at.metric)
    at.number_input(key="tm_l_seq").set_value(8)
    at.number_input(key="tm_l_steps").set_value(3)
    at.button(key="tm_l_run").click().run()
    assert_clean(at)
    assert not errors(at)
    assert {"保存量（全部保存）", "保存量（检查点）", "重计算开销"} <= {m.label for m in at.metric}
    terms = next(df.value for df in at.dataframe if "项" in df.value.columns and "位置" in df.value.columns)
    assert terms["位置"].str.contains("30 个块各一份").any()
    assert "RMSNorm 1 输入" in set(terms["项"])
    at.multiselect(key="tm_l8_recipes").set_value(["file", "e4m3-block"])
    at.number_input(key="tm_l8_tokens").set_value(64)
    at.button(key="tm_l8_run").click().run()
    assert_clean(at)
    assert not errors(at)
    fp8_table = next(df.value for df in at.dataframe if "量化的张量数" in df.value.columns)
    assert list(fp8_table["方案"]) == ["文件中的权重（Q4_1 / Q8_0，已反量化）",
                                      "E4M3，128×128 权重块 + 1×128 激活分块（DeepSeek-V3）"]
    assert sorted(m for lang, m in i18n.MISSING - before if lang == "zh") == []
