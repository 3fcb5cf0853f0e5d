"""core.configs: presets copy published configs; parameter counts match published totals."""

from __future__ import annotations

import pytest

from core.configs import PRESETS, ModelConfig, custom_config, param_count, validate_config
from core.runtime.validation import ValidationError


@pytest.mark.parametrize("name, total", [
    # Source: HF model card / safetensors metadata of each model (exact counts).
    ("gpt2", 124_439_808),             # openai-community/gpt2: 124,439,808 params
    ("llama-2-7b", 6_738_415_616),     # meta-llama/Llama-2-7b-hf: 6.74B, 6,738,415,616
    ("llama-3-8b", 8_030_261_248),     # meta-llama/Meta-Llama-3-8B: 8,030,261,248
    ("qwen2.5-7b", 7_615_616_512),     # Qwen/Qwen2.5-7B: 7.61B (7,615,616,512)
    ("falcon-7b", 6_921_720_704),      # tiiuae/falcon-7b: 6,921,720,704
])
def test_dense_totals_exact(name, total):
    counts = param_count(PRESETS[name])
    assert counts["total"] == total
    assert counts["active"] == counts["total"]


def test_gpt3_is_175b():
    """Brown et al. 2020, Table 2.1: GPT-3 175B (96 layers, d_model 12288, 96 heads)."""
    total = param_count(PRESETS["gpt3-175b"])["total"]
    assert abs(total - 175e9) / 175e9 < 0.005


def test_deepseek_v3_total_and_active():
    """DeepSeek-V3 report and README_WEIGHTS.md: 671B total; 36.6B activated (incl. the
    0.9B output head, without the input embedding); MTP module 11.5B unique parameters."""
    counts = param_count(PRESETS["deepseek-v3"])
    assert round(counts["total"] / 1e9) == 671
    assert abs(counts["active_no_embedding"] / 1e9 - 36.6) < 0.05
    assert round(counts["active"] / 1e9) == 38 or round(counts["active"] / 1e9) == 37
    assert abs(counts["mtp"] / 1e9 - 11.5) < 0.2
    assert abs(counts["head"] / 1e9 - 0.93) < 0.01


def test_router_bias_only_where_the_model_has_one():
    """DeepSeek-V3's gate carries e_score_correction_bias (n_routed_experts per MoE layer);
    DeepSeek-V2's gate is a plain weight (modeling_deepseek.py MoEGate: no bias)."""
    v3, v2 = PRESETS["deepseek-v3"], PRESETS["deepseek-v2"]
    assert v3.router_bias and not v2.router_bias
    assert param_count(v3)["router"] == v3.moe_layers * (v3.n_routed_experts * v3.hidden + v3.n_routed_experts)
    assert param_count(v2)["router"] == v2.moe_layers * v2.n_routed_experts * v2.hidden == 48_332_800


def test_deepseek_v3_exact_active_counts():
    """37.55 B active with embedding and head, 36.63 B without the input embedding (the
    count README_WEIGHTS.md rounds to 36.7B, "including 0.9B embedding and 0.9B head")."""
    counts = param_count(PRESETS["deepseek-v3"])
    assert round(counts["active"] / 1e9, 2) == 37.55
    assert round(counts["active_no_embedding"] / 1e9, 2) == 36.63
    assert round(counts["total"] / 1e9, 2) == 671.03


def test_deepseek_v2_total_and_active():
    """DeepSeek-V2 paper (Table/abstract): 236B total, 21B activated per token."""
    counts = param_count(PRESETS["deepseek-v2"])
    assert round(counts["total"] / 1e9) == 236
    assert round(counts["active"] / 1e9) == 21


def test_parts_add_up():
    for cfg in PRESETS.values():
        c = param_count(cfg)
        parts = ("embedding", "head", "attention", "dense_mlp", "routed_experts",
                 "shared_experts", "router", "norms")
        assert sum(c[p] for p in parts) == c["total"], cfg.name


@pytest.mark.parametrize("name, kind", [("llama-2-7b", "mha"), ("llama-3-8b", "gqa"),
                                        ("falcon-7b", "mqa"), ("deepseek-v3", "mla")])
def test_attention_kind(name, kind):
    assert PRESETS[name].attention_kind == kind


def test_configs_are_hashable_cache_keys():
    assert len({PRESETS["gpt2"], PRESETS["gpt2"]}) == 1


def test_custom_config_validation():
    cfg = custom_config("llama-2-7b", layers=2, name="tiny")
    assert cfg.layers == 2 and cfg.name == "tiny"
    with pytest.raises(ValidationError, match="kv_heads"):
        custom_config("llama-2-7b", kv_heads=5)
    with pytest.raises(ValidationError, match="Unknown configuration field"):
        custom_config("llama-2-7b", wings=2)
    with pytest.raises(ValidationError, match="Unknown preset"):
        custom_config("gpt-9")
    with pytest.raises(ValidationError, match="layers"):
        validate_config(ModelConfig("x", 10, 8, 0, 2, 2, 4, 16, 8))
    with pytest.raises(ValidationError, match="top_k"):
        custom_config("deepseek-v3", top_k=300)
