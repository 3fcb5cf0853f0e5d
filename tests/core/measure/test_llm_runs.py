"""core/measure/llm_runs.py: each measurement on SmolLM2 against its prediction (CPU, small sizes)."""

from __future__ import annotations

import math

import pytest

from core.measure import llm_runs
from core.memory import kv_cache_bytes_per_token
from core.runtime.validation import ValidationError


def test_kv_cache_measured_equals_prediction(smollm):
    m = llm_runs.measure_kv_cache(smollm, 100)
    assert m.measured_bytes == m.predicted_bytes == kv_cache_bytes_per_token(smollm.config, 4) * 100
    assert m.allocated_bytes >= m.measured_bytes
    rows = {r["name"]: r for r in m.rows}
    gqa, mha, mla = rows["This model (GQA)"], rows["As MHA"], rows["With MLA latents"]
    assert gqa["values_per_token_layer"] == 2 * 3 * 64 and mha["bytes"] == 3 * gqa["bytes"]
    assert mla["values_per_token_layer"] == 4 * 64 + 32
    assert rows["DeepSeek-V3 (MLA)"]["values_per_token_layer"] == 576
    with pytest.raises(ValidationError):
        llm_runs.measure_kv_cache(smollm, 0)


def test_backends_agree_and_the_interpreter_is_capped(smollm):
    ids = smollm.encode("Attention backends must agree on the next token of this sentence")
    runs = {r.backend: r for r in llm_runs.compare_backends(smollm, ids)}
    assert set(runs) == {"sdpa", "naive", "tiled", "triton"}
    for r in runs.values():
        assert r.ran and r.top1_agree == 1.0 and r.max_abs_dlogit <= 1e-3, r
        assert r.top_ids[0] == runs["sdpa"].top_ids[0]
    assert runs["naive"].attention_bytes > runs["triton"].attention_bytes and runs["sdpa"].attention_bytes is None
    long = smollm.encode("word " * (llm_runs.INTERPRETER_MAX_TOKENS + 5))
    triton = llm_runs.compare_backends(smollm, long, backends=("triton",))[0]
    assert not triton.ran and "interpreter" in triton.reason


def test_finetune_memory_is_explained_term_by_term(smollm):
    full, ckpt = llm_runs.finetune_memory(smollm, llm_runs.FinetuneConfig(seq=32, steps=3))
    for run in (full, ckpt):
        assert run.saved_bytes == run.explained_bytes               # every byte accounted for
        assert run.peak_bytes > run.gradient_bytes and run.update_peak_bytes > 0
        assert len(run.losses) == 3 and all(math.isfinite(x) for x in run.losses) and run.step_ms > 0
    assert abs(full.saved_bytes - full.predicted_bytes) / full.predicted_bytes < 0.2
    assert abs(ckpt.saved_bytes - ckpt.predicted_bytes) / ckpt.predicted_bytes < 0.02
    assert ckpt.saved_bytes < full.saved_bytes / 3
    assert full.losses[1] < full.losses[0]                          # AdamW did learn this batch


def test_finetune_settings_are_checked(smollm):
    for cfg in (llm_runs.FinetuneConfig(seq=4), llm_runs.FinetuneConfig(seq=100_000), llm_runs.FinetuneConfig(steps=2),
                llm_runs.FinetuneConfig(backend="tiled"), llm_runs.FinetuneConfig(lr=1.0)):
        with pytest.raises(ValidationError):
            llm_runs.finetune_memory(smollm, cfg)


def test_fp8_recipes_rank_as_expected(smollm):
    rows = {r.recipe: r for r in llm_runs.fp8_quality(smollm, ("file", "e4m3-row", "e5m2-block"),
                                                eval_tokens=128, window=64)}
    base, e4m3, e5m2 = rows["file"], rows["e4m3-row"], rows["e5m2-block"]
    assert base.bytes_per_param == 0.625 and base.rel_err_max is None     # Q4_1: 20 bytes / 32 weights
    assert 1.0 < e4m3.bytes_per_param < 1.01 and e4m3.tensors == 210
    assert 0.005 < e4m3.rel_err_mean < 0.05 < e5m2.rel_err_mean < 0.1     # 3 vs 2 mantissa bits
    for row in rows.values():
        assert math.isfinite(row.perplexity) and row.perplexity == pytest.approx(math.exp(row.nll))
    assert e4m3.perplexity < base.perplexity * 1.2
    with pytest.raises(ValidationError):
        llm_runs.fp8_quality(smollm, ("int3",))
