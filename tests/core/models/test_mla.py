"""core.models.mla: absorbed == plain MLA, cached decode == full forward, cache bytes == formula."""

from __future__ import annotations

import pytest
import torch

from core.configs import PRESETS
from core.memory import kv_cache_bytes_per_token
from core.models.mla import (
    SMALL_CHANGES,
    AttentionConfig,
    GroupedQueryAttention,
    MLAConfig,
    apply_rope,
    build_live_mla,
    cache_bytes_per_token,
    compare_forms,
    decode_cost,
    kv_cache_curve,
    max_context,
    mla_param_count,
    preset_cache_check,
    rope_cos_sin,
    small_module_run,
    validate_mla_config,
)
from core.runtime.validation import ValidationError

CONFIGS = [
    MLAConfig(hidden=64, heads=4, q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8,
              qk_rope_head_dim=4, v_head_dim=12),
    MLAConfig(hidden=48, heads=3, q_lora_rank=0, kv_lora_rank=32, qk_nope_head_dim=16,
              qk_rope_head_dim=8, v_head_dim=16),   # no query compression (DeepSeek-V2-Lite style)
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["q-compressed", "full-rank-q"])
@pytest.mark.parametrize("batch, seq", [(1, 7), (2, 16)])
def test_absorbed_equals_plain_fp64(cfg, batch, seq):
    """DeepSeek-V2 section 2.1.2: folding W_UK into the query and W_UV into the output is exact."""
    m = build_live_mla(cfg, seed=3)
    x = torch.randn(batch, seq, cfg.hidden, dtype=torch.float64)
    with torch.no_grad():
        plain, pi = m(x, mode="plain", return_internals=True)
        absorbed, ai = m(x, mode="absorbed", return_internals=True)
    torch.testing.assert_close(absorbed, plain, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(ai.probs, pi.probs, atol=1e-13, rtol=0)
    assert pi.cache_values.shape == (batch, seq, cfg.cache_width)


def test_absorbed_fp32_within_tolerance():
    """fp32: both forms stay within 1e-5 (absolute, outputs of order 1) of the float64 reference."""
    cfg = CONFIGS[0]
    m64, m32 = build_live_mla(cfg, seed=1), build_live_mla(cfg, seed=1, dtype=torch.float32)
    x = torch.randn(2, 12, cfg.hidden, dtype=torch.float64)
    with torch.no_grad():
        ref = m64(x, mode="plain")
        for mode in ("plain", "absorbed"):
            torch.testing.assert_close(m32(x.float(), mode=mode).double(), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("decompressed, mode", [(False, "absorbed"), (False, "plain"),
                                                (True, "plain")])
def test_incremental_decode_equals_full_forward(decompressed, mode):
    cfg = CONFIGS[0]
    m = build_live_mla(cfg, seed=2)
    x = torch.randn(2, 10, cfg.hidden, dtype=torch.float64)
    cache = m.new_cache(2, 10, decompressed=decompressed)
    with torch.no_grad():
        full = m(x, mode="plain")
        parts = [m(x[:, :4], cache=cache, mode=mode)]
        parts += [m(x[:, t:t + 1], start_pos=t, cache=cache, mode=mode) for t in range(4, 10)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-12, rtol=1e-10)


def test_matches_transformers_deepseek_v3_attention():
    """Same weights in transformers' DeepseekV3Attention (rope_interleave=False) give the same output.

    HF computes RoPE angles in float32, hence atol 1e-6 on outputs of order 1.
    """
    pytest.importorskip("transformers")
    from transformers.models.deepseek_v3.configuration_deepseek_v3 import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
        DeepseekV3Attention,
        DeepseekV3RotaryEmbedding,
    )

    cfg = CONFIGS[0]
    hf_cfg = DeepseekV3Config(
        hidden_size=cfg.hidden, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
        q_lora_rank=cfg.q_lora_rank, kv_lora_rank=cfg.kv_lora_rank,
        qk_nope_head_dim=cfg.qk_nope_head_dim, qk_rope_head_dim=cfg.qk_rope_head_dim,
        v_head_dim=cfg.v_head_dim, rope_interleave=False, attention_bias=False, rms_norm_eps=1e-6)
    hf_cfg._attn_implementation = "eager"
    hf = DeepseekV3Attention(hf_cfg, 0).double().eval()
    m = build_live_mla(cfg, seed=4)
    hf.load_state_dict({
        "q_a_proj.weight": m.wq_a.weight, "q_a_layernorm.weight": m.q_norm.weight,
        "q_b_proj.weight": m.wq_b.weight, "kv_a_proj_with_mqa.weight": m.wkv_a.weight,
        "kv_a_layernorm.weight": m.kv_norm.weight, "kv_b_proj.weight": m.wkv_b.weight,
        "o_proj.weight": m.wo.weight}, strict=True)
    T = 9
    x = torch.randn(2, T, cfg.hidden, dtype=torch.float64)
    cos, sin = DeepseekV3RotaryEmbedding(hf_cfg)(x, torch.arange(T)[None].expand(2, T))
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)[None, None]
    with torch.no_grad():
        ref, _ = hf(x, (cos.double(), sin.double()), mask)
        ours = m(x, mode="absorbed")
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
def test_gqa_incremental_equals_full(kv_heads):
    cfg = AttentionConfig(hidden=32, heads=4, kv_heads=kv_heads, head_dim=8)
    torch.manual_seed(0)
    m = GroupedQueryAttention(cfg, dtype=torch.float64).eval()
    x = torch.randn(1, 8, 32, dtype=torch.float64)
    cache = m.new_cache(1, 8)
    with torch.no_grad():
        full = m(x)
        steps = [m(x[:, :3], cache=cache)] + [m(x[:, t:t + 1], start_pos=t, cache=cache)
                                              for t in range(3, 8)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-12, rtol=1e-10)
    assert cache_bytes_per_token(cache) == 2 * kv_heads * 8 * 8   # K and V, fp64


def test_rope_is_relative():
    """RoFormer section 3.4: <R_m q, R_n k> depends on m - n only."""
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    cos, sin = rope_cos_sin(torch.tensor([3, 10, 103, 110]), 16, 10000.0, torch.float64)
    rq, rk = apply_rope(q.expand(4, 16), cos, sin), apply_rope(k.expand(4, 16), cos, sin)
    torch.testing.assert_close(rq[1] @ rk[0], rq[3] @ rk[2], atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_real_width_cache_bytes_equal_formula(name, dtype):
    """A real-width layer of each preset allocates exactly kv_cache_bytes_per_token / layers."""
    check = preset_cache_check(name, dtype)
    assert check.matches
    bpv = 2 if dtype == "bfloat16" else 4
    assert check.formula_bytes_per_token == kv_cache_bytes_per_token(PRESETS[name], bpv)


def test_deepseek_v3_golden_cache():
    """DeepSeek-V3 config.json: (kv_lora_rank 512 + qk_rope_head_dim 64) x 61 layers x 2 B = 70,272 B;
    caching full per-head K (128 x 192) and V (128 x 128) instead costs 4,997,120 B (71x)."""
    check = preset_cache_check("deepseek-v3", "bfloat16")
    assert check.allocated_bytes_per_token == 70_272
    assert check.naive_bytes_per_token == (128 * 192 + 128 * 128) * 61 * 2


@pytest.mark.parametrize("name", list(SMALL_CHANGES))
def test_small_stack_cache_and_decode(name):
    run = small_module_run(name, dtype_name="float64", tokens=8)
    assert run.check.matches
    assert run.decode_vs_full < 1e-12
    bf16 = small_module_run(name, dtype_name="bfloat16", tokens=4)
    assert bf16.check.matches and bf16.check.formula_bytes_per_token * 4 == run.check.formula_bytes_per_token


def test_compare_forms_summary():
    r = compare_forms(CONFIGS[0], seq=8, cache_dtype="bfloat16")
    assert r.absorbed_vs_plain_fp64 < 1e-12 * max(r.max_abs_out, 1)
    assert r.decode_latent_vs_full < 1e-12 and r.decode_decompressed_vs_full < 1e-12
    assert r.absorbed_fp32_vs_fp64 < 1e-5
    assert r.latent_bytes_per_token == (16 + 4) * 2
    assert r.decompressed_bytes_per_token == 4 * (12 + 12) * 2
    assert r.probs.shape == (8, 8)


@pytest.mark.parametrize("changes, match", [
    ({"kv_lora_rank": 128}, "exceeds the hidden size"),
    ({"q_lora_rank": 100}, "q_lora_rank"),
    ({"kv_lora_rank": 60, "heads": 2, "qk_nope_head_dim": 8, "v_head_dim": 8}, "heads x"),
    ({"qk_rope_head_dim": 5}, "even"),
    ({"heads": 0}, "Heads"),
])
def test_bad_configs_refused(changes, match):
    base = MLAConfig(hidden=64, heads=4, q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16,
                     qk_rope_head_dim=8, v_head_dim=16)
    with pytest.raises(ValidationError, match=match):
        validate_mla_config(MLAConfig(**{**base.__dict__, **changes}))


def test_capacity_and_mode_checked():
    m = build_live_mla(CONFIGS[0])
    cache = m.new_cache(1, 4)
    x = torch.randn(1, 5, CONFIGS[0].hidden, dtype=torch.float64)
    with pytest.raises(ValidationError, match="cache holds"):
        m(x, cache=cache)
    with pytest.raises(ValidationError):
        m(x, mode="fast")
    with pytest.raises(ValidationError):
        m(x, cache=m.new_cache(1, 8, decompressed=True), mode="absorbed")


def test_calculators():
    rows = kv_cache_curve(["llama-2-7b", "deepseek-v3"], [1024, 4096], batch=2)
    assert rows[1]["bytes"] == 2 * 4096 * 524_288
    assert rows[3]["bytes"] == 2 * 4096 * 70_272
    assert max_context("llama-2-7b", 80 * 2**30) == 80 * 2**30 // 524_288
    cost = decode_cost(MLAConfig.from_model(PRESETS["deepseek-v3"]), 4096)
    assert cost["absorbed"]["flops"] < cost["plain"]["flops"] / 10
    assert cost["decompressed"]["cache_bytes_read"] / cost["absorbed"]["cache_bytes_read"] == 40960 / 576
    with pytest.raises(ValidationError):
        kv_cache_curve(["nope"], [10])
    with pytest.raises(ValidationError):
        decode_cost(MLAConfig(), -1)


def test_param_count_matches_module_and_configs():
    """mla_param_count == the module's weights; at DeepSeek-V3 width == core.configs.attention_params."""
    from core.configs import attention_params

    cfg = CONFIGS[0]
    assert mla_param_count(cfg)["total"] == sum(p.numel() for p in build_live_mla(cfg).parameters())
    v3 = PRESETS["deepseek-v3"]
    assert mla_param_count(MLAConfig.from_model(v3))["total"] == attention_params(v3)


@pytest.mark.gpu
def test_cuda_forms_cache_and_timing():
    """On CUDA: absorbed == plain (fp64 and fp32), caches sized as the formula, timing runs."""
    from core.models.mla import time_decode_step

    r = compare_forms(CONFIGS[0], seq=16, device="cuda", cache_dtype="bfloat16")
    assert r.absorbed_vs_plain_fp64 < 1e-12 and r.decode_latent_vs_full < 1e-12
    assert r.absorbed_fp32_vs_fp64 < 1e-4          # TF32 may be on for CUDA matmuls
    assert preset_cache_check("deepseek-v3", "bfloat16", "cuda").matches
    run = small_module_run("deepseek-v3", dtype_name="float64", device="cuda")
    assert run.check.matches and run.decode_vs_full < 1e-12
    timings = time_decode_step(CONFIGS[0], 64, device="cuda", dtype_name="bfloat16")
    assert set(timings) == {"plain", "decompressed", "absorbed"}
