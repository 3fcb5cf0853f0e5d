"""bench/llm.py: the rate arithmetic, a tiny measurement of both models, the summary, the GPU-check skip."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench import llm as bench


def test_rates_and_ratios():
    assert bench.tokens_per_s(128, 250.0) == pytest.approx(512.0)
    assert bench.decode_tokens_per_s(129, 8_100.0, 100.0) == pytest.approx(16.0)   # 128 steps in 8 s
    assert bench.decode_tokens_per_s(1, 100.0, 100.0) is None                      # no decode step
    assert bench.decode_tokens_per_s(16, 90.0, 100.0) is None                      # noise beat the decode
    assert bench.ratio(20.0, 16.0) == pytest.approx(1.25)
    assert bench.ratio(None, 16.0) is None and bench.ratio(3.0, None) is None


def test_a_tiny_run_of_both_models(smollm, hf_smollm):
    model, _ = hf_smollm
    prefill = bench.measure_prefill(smollm, model, (16,), "cpu", 0, 1)
    assert prefill[0]["tokens"] == 16 and prefill[0]["ours_tok_s"] > 0 and prefill[0]["ratio"] > 0
    decode = bench.measure_decode(smollm, model, 4, "cpu", 0, 1)
    assert decode["identical"] and decode["new_tokens"] == 4 and decode["prompt_tokens"] == bench.DECODE_PROMPT
    payload = {"model": "m", "device_used": "cpu", "dtype": "float32", "threads": 2, "repeats": 1,
               "prefill": prefill, "decode": decode}
    lines = bench.summary(payload)
    assert lines[1].startswith("prefill T=   16") and "identical: True" in lines[-1]


def test_summary_with_an_unknown_decode_rate():
    payload = {"model": "m", "device_used": "cpu", "dtype": "float32", "threads": 1, "repeats": 1, "prefill": [],
               "decode": {"new_tokens": 1, "identical": True, "ours_tok_s": None, "transformers_tok_s": 3.0,
                          "ratio": None}}
    assert bench.summary(payload)[-1].endswith("ours — tok/s, transformers 3.0 tok/s, ours/transformers —")


def test_gpu_check_skip_is_a_literal_and_dry_run_stops():
    tree = ast.parse(Path(bench.__file__).read_text(encoding="utf-8"))
    skips = [n.value.value for n in tree.body if isinstance(n, ast.Assign)
             and any(getattr(t, "id", "") == "GPU_CHECK_SKIP" for t in n.targets)]
    assert skips == ["the model file (98 MB) cannot travel to the GPU machine (64 MiB limit)"]
    with pytest.raises(SystemExit) as stop:
        bench.main(["--dry-run"])
    assert stop.value.code == 0
