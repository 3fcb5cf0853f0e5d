"""pages/flash_attention.py through app/main.py (AppTest): renders clean, steps through
the tiles, runs a tiny benchmark, runs SmolLM2 through each attention backend, and answers
bad settings with messages."""

from __future__ import annotations

import json

import pytest

from app.cache import attention as attention_cache
from core.measure.llm_runs import INTERPRETER_MAX_TOKENS
from core.runtime import recorded
from core.runtime.device import kernel_interpreted, pick_device
from core.runtime.recorded import recorded_gpu_results
from tests.pages.apptest import assert_clean, errors, metric, open_page, texts


@pytest.fixture(scope="module")
def page():
    at = open_page("flash_attention.py")
    assert_clean(at)
    return at


def test_renders_with_tiles_kernel_check_and_io(page):
    assert "FlashAttention" in texts(page.title)
    labels = {m.label: m.value for m in page.metric}
    assert labels["Tiles loaded (this query block)"].startswith("1 / ")
    assert "Standard attention (Alg. 0)" in labels and "FlashAttention (Alg. 1)" in labels
    markdown = " ".join(texts(page.markdown))
    assert "Our Triton kernel" in markdown and "max |O − naive|" in markdown
    assert not errors(page)


def test_stepping_to_the_last_key_block_agrees_with_naive(page):
    last = page.slider(key="fa_kblock").max
    page.slider(key="fa_kblock").set_value(last).run()
    assert_clean(page)
    assert any("equals naive softmax" in s for s in texts(page.success))
    page.toggle(key="fa_causal").set_value(True).run()
    assert_clean(page)
    labels = {m.label: m.value for m in page.metric}
    assert int(labels["Skipped (causal)"]) > 0
    page.radio(key="fa_blocks").set_value("h200").run()
    page.slider(key="fa_n").set_value(300).run()
    assert_clean(page)
    assert any("equals naive softmax" in s or "normalised" in s for s in texts(page.success) + texts(page.info))


def test_io_controls(page):
    page.select_slider(key="fa_io_n").set_value(131072).run()
    page.select_slider(key="fa_io_sram").set_value(48).run()
    page.toggle(key="fa_io_causal").set_value(True).run()
    assert_clean(page)
    labels = {m.label: m.value for m in page.metric}
    assert labels["Standard attention (Alg. 0)"].endswith("GB")


def test_run_a_tiny_benchmark(page):
    page.multiselect(key="fa_b_seqs").set_value([64]).run()
    page.multiselect(key="fa_b_impls").set_value(["naive", "sdpa", "triton"]).run()
    page.slider(key="fa_b_heads").set_value(1).run()
    page.toggle(key="fa_b_bwd").set_value(True).run()
    page.button(key="fa_run").click().run()
    assert_clean(page)
    assert not errors(page)
    assert len(page.dataframe) >= 2


def test_bad_benchmark_settings_show_a_message():
    at = open_page("flash_attention.py")
    at.multiselect(key="fa_b_seqs").set_value([]).run()
    at.button(key="fa_run").click().run()
    assert_clean(at)
    assert any("sequence lengths" in e for e in errors(at))


def test_recorded_gpu_tab_is_graceful(page):
    if recorded_gpu_results() is not None:
        assert any("Recorded on" in c for c in texts(page.caption))
    else:
        assert any("Not yet recorded on a GPU" in i and "bash bench/gpu_check.sh" in i for i in texts(page.info))


@pytest.mark.slow
def test_real_minilm_head():
    at = open_page("flash_attention.py")
    at.toggle(key="fa_kernel_check").set_value(False).run()
    at.radio(key="fa_source").set_value("minilm").run()
    assert_clean(at)
    assert not errors(at)
    assert at.slider(key="fa_tokens").value == 160 and at.slider(key="fa_layer").value == 1
    assert any("equals naive softmax" in s or "normalised" in s for s in texts(at.success) + texts(at.info))


def _fake_gpu_doc() -> dict:
    """A document shaped like bench/attention.py's output on CUDA (test data for the renderer,
    not a measurement): ours, SDPA flash and SDPA cuDNN rows per case, naive at N=1k."""
    cases = []
    for d in (64, 128):
        for causal in (False, True):
            for n in (1024, 4096):
                rows = []
                impls = (("triton", 1.0), ("sdpa_flash", 1.1), ("sdpa_cudnn", 0.9)) + ((("naive", 4.0),) if n == 1024 else ())
                for impl, ms in impls:
                    for mode, scale in (("fwd", 1.0), ("fwd+bwd", 3.2)):
                        t = ms * scale * n / 1024
                        rows.append({"impl": impl, "n": n, "mode": mode, "ms": t, "p20_ms": 0.98 * t, "p80_ms": 1.03 * t,
                                     "tflops": 300.0 / ms, "max_err": 4e-3, "grad_err": 8e-3 if mode != "fwd" else None,
                                     "peak_bytes": 1 << 20, "status": "ok"})
                cases.append({"head_dim": d, "causal": causal, "dtype": "bfloat16", "batch": 16384 // n,
                              "heads": 2048 // d, "sdpa_backend": "flash", "status": "ok", "rows": rows,
                              "sdpa_default": "FLASH_ATTENTION", "kernel_path": "tma"})
    return {"benchmark": "attention", "meta": {"device": {"kind": "cuda", "name": "NVIDIA H200"},
                                               "date": "2026-01-02 03:04 UTC", "driver": "570.1", "cudnn": 91002},
            "cases": cases, "sweep": [{"head_dim": 64, "n": 4096, "mode": "fwd", "block_m": 128, "ms": 1.0,
                                       "tflops": 500.0, "status": "ok"}],
            "targets": {"fwd": 1.0, "fwd+bwd": 0.8}, "dry_run": False, "summary": []}


def test_recorded_gpu_results_render(tmp_path, monkeypatch):
    bundle = {"benchmark": "gpu-check", "results": {"attention-cuda": _fake_gpu_doc()}}
    (tmp_path / "gpu-check-cuda.json").write_text(json.dumps(bundle), encoding="utf-8")
    monkeypatch.setattr(recorded, "RESULTS_DIR", tmp_path)
    attention_cache.gpu_results.clear()
    try:
        at = open_page("flash_attention.py")
        assert_clean(at)
        assert any("Recorded on NVIDIA H200, 2026-01-02" in c and "cudnn 91002" in c for c in texts(at.caption))
        columns = [set(df.value.columns) for df in at.dataframe]
        assert any({"vs SDPA flash", "vs SDPA cuDNN", "target", "met"} <= c for c in columns)
        assert any({"spread", "vs SDPA cuDNN", "grad max |err|"} <= c for c in columns)
        assert any("SDPA's own choice of backend" in c and "FLASH_ATTENTION" in c for c in texts(at.caption))
    finally:
        attention_cache.gpu_results.clear()


# ---------------------------------------------------------------- Inside SmolLM2
def test_inside_smollm2_waits_for_its_button(page):
    assert page.button(key="fa_llm_run") and page.button(key="fa_llm_time")
    assert page.text_area(key="fa_llm_text").value.startswith("The Eiffel Tower")
    assert any("Press the button to load the model" in c for c in texts(page.caption))
    if kernel_interpreted(pick_device()):
        assert any(f"up to **{INTERPRETER_MAX_TOKENS} tokens**" in i for i in texts(page.info))


def test_inside_smollm2_backends_agree_and_bad_prompts_are_answered():
    at = open_page("flash_attention.py")
    at.button(key="fa_llm_run").click().run()
    assert_clean(at)
    assert not errors(at)
    assert metric(at, "sdpa: max |Δ logit|") == "reference"
    side = next(df.value for df in at.dataframe if "triton token" in df.value.columns)
    table = next(df.value for df in at.dataframe if "attention bytes (one layer)" in df.value.columns)
    assert len(side) == 10 and set(table["ran"]) == {"✓"}
    if pick_device().type == "cpu":             # float32: the backends differ by rounding only (bf16 on CUDA: more)
        for backend in ("naive", "tiled", "triton"):
            assert float(metric(at, f"{backend}: max |Δ logit|")) < 1e-3        # ~1e-5 measured
        assert list(side["sdpa token"])[:3] == list(side["naive token"])[:3] == list(side["triton token"])[:3]
        assert set(table["top-1 agreement"]) == {"100.0 %"}
    if kernel_interpreted(pick_device()):       # a prompt past the interpreter's cap: Triton says why
        at.text_area(key="fa_llm_text").input("word " * (INTERPRETER_MAX_TOKENS + 4)).run()
        assert any("Showing the last run" in c for c in texts(at.caption))
        at.button(key="fa_llm_run").click().run()
        assert_clean(at)
        assert any("interpreter" in w and f"up to {INTERPRETER_MAX_TOKENS} tokens" in w for w in texts(at.warning))
        assert metric(at, "triton: max |Δ logit|") == "not run"
    at.text_area(key="fa_llm_text").input("   \n ").run()
    at.button(key="fa_llm_run").click().run()
    assert_clean(at)
    assert any("only whitespace" in e for e in errors(at))


def test_inside_smollm2_prefill_timings():
    at = open_page("flash_attention.py")
    at.multiselect(key="fa_llm_backends").set_value([]).run()
    at.button(key="fa_llm_time").click().run()
    assert_clean(at)
    assert any("Pick at least one length and one backend" in w for w in texts(at.warning))
    shortest = min(at.multiselect(key="fa_llm_seqs").value)          # a default length (64 on a CPU)
    at.multiselect(key="fa_llm_seqs").set_value([shortest]).run()
    at.multiselect(key="fa_llm_backends").set_value(["sdpa", "triton"]).run()
    at.button(key="fa_llm_time").click().run()
    assert_clean(at)
    assert not errors(at)
    table = next(df.value for df in at.dataframe if "tokens / s" in df.value.columns)
    assert len(table) == 2 and table["prefill"].iloc[0] != "—"
    if kernel_interpreted(pick_device()):
        assert table["status"].iloc[1] == "interpreter: not timed" and table["prefill"].iloc[1] == "—"


# ---------------------------------------------------------------- in Chinese
def _new_missing(before: set) -> list[str]:
    from app import i18n
    return sorted(m for lang, m in i18n.MISSING - before if lang == "zh")


def _cjk(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def test_in_chinese_tiles_benchmark_and_smollm2():
    """?lang=zh: every tab's controls and results read in Chinese, and nothing the page asks the
    catalog for (its own text, core's labels and statuses) is missing."""
    from app import i18n

    before = set(i18n.MISSING)
    at = open_page("flash_attention.py", lang="zh")
    assert_clean(at)
    assert "分块与在线 softmax" in [tab.label for tab in at.tabs]
    labels = {m.label for m in at.metric}
    assert "已加载的分块（本查询块）" in labels and "标准注意力（算法 0）" in labels
    at.slider(key="fa_kblock").set_value(at.slider(key="fa_kblock").max).run()
    at.toggle(key="fa_causal").set_value(True).run()
    assert_clean(at)
    assert any("在线 softmax 等于朴素 softmax" in s for s in texts(at.success))
    at.multiselect(key="fa_b_seqs").set_value([64]).run()
    at.multiselect(key="fa_b_impls").set_value(["naive", "sdpa", "tiled", "triton"]).run()
    at.slider(key="fa_b_heads").set_value(1).run()
    at.button(key="fa_run").click().run()
    assert_clean(at)
    assert not errors(at)
    timing = next(df.value for df in at.dataframe if "相对 float64 的最大 |误差|" in df.value.columns)
    assert set(timing["阶段"]) == {"前向"} and all(_cjk(s) for s in timing["状态"])
    at.button(key="fa_llm_run").click().run()
    assert_clean(at)
    assert not errors(at)
    assert metric(at, "sdpa：最大 |Δ logit|") == "参考"
    assert any("注意力字节数（一层）" in df.value.columns for df in at.dataframe)
    at.multiselect(key="fa_llm_seqs").set_value([min(at.multiselect(key="fa_llm_seqs").value)]).run()
    at.multiselect(key="fa_llm_backends").set_value(["sdpa", "triton"]).run()
    at.button(key="fa_llm_time").click().run()
    assert_clean(at)
    table = next(df.value for df in at.dataframe if "词元 / 秒" in df.value.columns)
    assert all(_cjk(s) for s in table["状态"])
    at.multiselect(key="fa_b_seqs").set_value([]).run()
    at.button(key="fa_run").click().run()
    assert_clean(at)
    assert any(_cjk(e) for e in errors(at))                       # core's message, translated
    assert _new_missing(before) == []
