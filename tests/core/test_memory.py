"""core.memory: model states (ZeRO), activations (Korthikanti et al.), checkpointing, plans, URL state.

KV-cache functions are tested in tests/core/test_memory_kv.py.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from core.configs import PRESETS, param_count
from core.memory import (
    CHECKPOINT_STRATEGIES,
    GIB,
    RECIPES,
    TrainingPlan,
    activation_bytes_per_layer,
    activation_terms,
    checkpoint_graph,
    checkpoint_plan,
    dp_sweep,
    kv_cache_bytes,
    kv_cache_bytes_per_gpu,
    model_activation_bytes,
    model_state_bytes,
    plan_from_query,
    plan_memory,
    plan_to_query,
    recompute_cost,
    seq_sweep,
    strategy_table,
    validate_plan,
)
from core.runtime.validation import ValidationError

GB = 1e9


# ---------------------------------------------------------------- model states (ZeRO)
@pytest.mark.parametrize("stage, expected_gb", [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_figure1_golden(stage, expected_gb):
    """ZeRO paper (Rajbhandari et al. 2020), Figure 1: Psi = 7.5B, N_d = 64, K = 12:
    baseline 120 GB, P_os 31.4 GB, P_os+g 16.6 GB, P_os+g+p 1.9 GB per device."""
    out = model_state_bytes(7_500_000_000, zero_stage=stage, dp=64, recipe="mixed-adam")
    assert out["total"] / GB == pytest.approx(expected_gb, abs=0.05)


def test_zero_formulas_term_by_term():
    """ZeRO paper section 5.1-5.3: P_os 4Psi + K Psi/N_d, P_os+g 2Psi + (2+K)Psi/N_d,
    P_os+g+p (2+2+K)Psi/N_d (K = 12)."""
    psi, nd, k = 1_000_000_000, 16, 12
    stage = {s: model_state_bytes(psi, zero_stage=s, dp=nd) for s in range(4)}
    assert stage[0]["total"] == (2 + 2 + k) * psi
    assert stage[1]["total"] == pytest.approx(4 * psi + k * psi / nd)
    assert stage[2]["total"] == pytest.approx(2 * psi + (2 + k) * psi / nd)
    assert stage[3]["total"] == pytest.approx((2 + 2 + k) * psi / nd)
    assert stage[1]["optimizer"] == pytest.approx(k * psi / nd)
    assert stage[2]["grads"] == pytest.approx(2 * psi / nd)


def test_gpt2_15b_needs_24gb():
    """ZeRO paper section 3.1: a 1.5B-parameter GPT-2 with mixed-precision Adam needs at least
    24 GB for its model states (16 bytes per parameter)."""
    assert model_state_bytes(1_500_000_000)["total"] / GB == pytest.approx(24.0)


@pytest.mark.parametrize("recipe, per_param", [
    ("fp32", 16.0),          # 4 weights + 4 grads + 8 Adam (m, v)
    ("mixed-adam", 16.0),    # ZeRO: 2 + 2 + 12
    ("bf16", 8.0),           # 2 + 2 + 2 + 2
    ("fp8-deepseek", 13.0 + 4 / 128**2),   # DeepSeek-V3 3.3.3: FP8 weight (+ block scale) + FP32 grad/master + BF16 m, v
])
def test_recipe_bytes_per_param(recipe, per_param):
    """Bytes per parameter of each recipe at stage 0 (the seed: 7B x 16 B = 112 GB)."""
    assert RECIPES[recipe].bytes_per_param == pytest.approx(per_param)
    assert model_state_bytes(7_000_000_000, recipe=recipe)["total"] == pytest.approx(7e9 * per_param)


def test_deepseek_recipe_matches_report_wording():
    """DeepSeek-V3 report 3.3.3: BF16 first and second moments; FP32 master weights and gradients."""
    rec = RECIPES["fp8-deepseek"]
    assert (rec.moment_bytes, rec.master_bytes, rec.grad_bytes) == (4, 4, 4)
    assert rec.param_bytes == pytest.approx(1.0, abs=1e-3)


def test_offload_and_tensor_parallel():
    base = model_state_bytes(8_000_000_000, zero_stage=1, dp=8)
    off = model_state_bytes(8_000_000_000, zero_stage=1, dp=8, offload_optimizer=True)
    assert off["optimizer"] == 0 and off["offloaded"] == pytest.approx(base["optimizer"])
    assert off["total"] == pytest.approx(base["total"] - base["optimizer"])
    tp = model_state_bytes(8_000_000_000, zero_stage=1, dp=8, tp=4)
    assert tp["total"] == pytest.approx(base["total"] / 4)


@pytest.mark.parametrize("kwargs", [
    {"n_params": 0}, {"n_params": -5}, {"n_params": "lots"}, {"n_params": 1e9, "zero_stage": 4},
    {"n_params": 1e9, "dp": 0}, {"n_params": 1e9, "dp": 10**9}, {"n_params": 1e9, "recipe": "fp4"},
    {"n_params": 1e9, "tp": 0}, {"n_params": float("nan")},
])
def test_model_states_bad_input(kwargs):
    n = kwargs.pop("n_params")
    with pytest.raises(ValidationError):
        model_state_bytes(n, **kwargs)


# ---------------------------------------------------------------- activations (Korthikanti et al.)
SHAPES = [  # (s, b, h, a, t): GPT-3 175B and 530B/1T shapes from the paper's Table 3, and a small one
    (2048, 1, 12288, 96, 8), (2048, 1, 20480, 128, 8), (2048, 1, 25600, 160, 8), (512, 4, 1024, 16, 2),
]


@pytest.mark.parametrize("s, b, h, a, t", SHAPES)
def test_table2_rows(s, b, h, a, t):
    """Korthikanti et al. 2022, Table 2 (bytes per layer, 16-bit):
    none sbh(34 + 5as/h); TP sbh(10 + 24/t + 5as/(ht)); TP+SP sbh/t (34 + 5as/h);
    TP + selective sbh(10 + 24/t); TP + SP + selective sbh 34/t; full 2sbh."""
    sbh, kw = s * b * h, {"seq": s, "batch": b, "hidden": h, "heads": a}
    assert activation_bytes_per_layer(**kw) == pytest.approx(sbh * (34 + 5 * a * s / h))
    assert activation_bytes_per_layer(**kw, tp=t) == pytest.approx(sbh * (10 + 24 / t + 5 * a * s / (h * t)))
    assert activation_bytes_per_layer(**kw, tp=t, sequence_parallel=True) == pytest.approx(
        sbh / t * (34 + 5 * a * s / h))
    assert activation_bytes_per_layer(**kw, tp=t, recompute="selective") == pytest.approx(sbh * (10 + 24 / t))
    assert activation_bytes_per_layer(**kw, tp=t, sequence_parallel=True, recompute="selective") == \
        pytest.approx(sbh * 34 / t)
    assert activation_bytes_per_layer(**kw, tp=t, recompute="full") == pytest.approx(2 * sbh)


def test_section41_breakdown():
    """Korthikanti et al. 2022, section 4.1: attention block 11sbh + 5as^2b, MLP 19sbh,
    the two layer norms 4sbh."""
    s, b, h, a = 1024, 2, 2048, 16
    blocks: dict[str, float] = {}
    for term in activation_terms(seq=s, batch=b, hidden=h, heads=a):
        blocks[term.block] = blocks.get(term.block, 0.0) + term.bytes
    assert blocks["attention"] == pytest.approx(11 * s * b * h + 5 * a * s * s * b)
    assert blocks["mlp"] == pytest.approx(19 * s * b * h)
    assert blocks["layernorm"] == pytest.approx(4 * s * b * h)


def test_gpt3_selective_saves_70_percent():
    """Korthikanti et al. 2022, section 5: for GPT-3 (a = 96, s = 2048, h = 12288) 5as/h = 80,
    so selective recomputation keeps 34/(34+80) of the activations: it saves ~70 %."""
    kw = {"seq": 2048, "batch": 1, "hidden": 12288, "heads": 96}
    sbh = 2048 * 1 * 12288
    full, selective = activation_bytes_per_layer(**kw), activation_bytes_per_layer(**kw, recompute="selective")
    assert (full / sbh, selective / sbh) == (34 + 80, 34)          # sbh(34 + 5as/h), then sbh * 34
    assert 1 - selective / full == pytest.approx(0.70, abs=0.005)


@pytest.mark.parametrize("s, b, h, a, t", SHAPES)
def test_flash_attention_drops_the_attention_matrix(s, b, h, a, t):
    """FlashAttention (Dao et al. 2022) stores no a s^2 b matrix, only fp32 logsumexp (a s b x 4 B):
    the 5as/h term is gone, as with selective recomputation."""
    kw = {"seq": s, "batch": b, "hidden": h, "heads": a, "tp": t}
    flash = activation_bytes_per_layer(**kw, flash_attention=True)
    assert flash == pytest.approx(activation_bytes_per_layer(**kw, recompute="selective") + 4 * a * s * b / t)


def test_no_dropout_drops_masks():
    """Without dropout the two sbh masks, the as^2b mask and the 2as^2b dropout output are not stored."""
    s, b, h, a = 256, 2, 512, 8
    kw = {"seq": s, "batch": b, "hidden": h, "heads": a}
    assert activation_bytes_per_layer(**kw, dropout=False) == pytest.approx(s * b * h * (32 + 2 * a * s / h))


def test_bytes_per_value_scales_values_not_masks():
    kw = {"seq": 128, "batch": 2, "hidden": 256, "heads": 4}
    sbh, as2b = 128 * 2 * 256, 4 * 128 * 128 * 2
    fp32 = activation_bytes_per_layer(**kw, bytes_per_value=4)
    assert fp32 == pytest.approx(2 * (32 * sbh + 4 * as2b) + 2 * sbh + as2b)   # masks stay 1 byte


@pytest.mark.parametrize("kwargs, message", [
    ({"heads": 5}, "divide the hidden"),            # 5 does not divide 512
    ({"tp": 3}, "must divide the 8"),               # TP must divide heads
    ({"seq": 0}, "Sequence length"),
    ({"batch": -1}, "Micro-batch"),
    ({"hidden": 10**9}, "Hidden size"),
    ({"recompute": "some"}, "Recompute mode"),
])
def test_activation_bad_input(kwargs, message):
    base = {"seq": 128, "batch": 1, "hidden": 512, "heads": 8}
    with pytest.raises(ValidationError, match=message):
        activation_bytes_per_layer(**{**base, **kwargs})


# ---------------------------------------------------------------- checkpointing along the chain
@pytest.mark.parametrize("layers", [1, 2, 4, 7, 12, 32, 61, 96])
def test_sqrt_plan_matches_checkpoint_sequential_layout(layers):
    """Chen et al. 2016 with torch.utils.checkpoint.checkpoint_sequential's layout: round(sqrt(L))
    segments of L // segments layers, the last one not checkpointed."""
    plan = checkpoint_plan(layers, "sqrt")
    m = max(1, round(math.sqrt(layers)))
    size = layers // m
    assert len(plan.segments) == m - 1
    assert all(last - first + 1 == size for first, last in plan.segments)
    assert plan.kept_layers == tuple(range(size * (m - 1), layers))
    assert sorted(plan.recomputed_layers + plan.kept_layers) == list(range(layers))


def test_chain_memory_is_sublinear():
    """Chen et al. 2016, section 4: sqrt(n) checkpointing keeps O(sqrt(n)) layer activations."""
    cfg = PRESETS["gpt3-175b"]
    kw = {"seq": 2048, "batch": 1, "tp": 8, "sequence_parallel": True}
    none = model_activation_bytes(cfg, **kw)
    sq = model_activation_bytes(cfg, **kw, strategy="sqrt")
    full = model_activation_bytes(cfg, **kw, strategy="full")
    assert full["peak_layers"] < sq["peak_layers"] < none["peak_layers"]
    assert sq["peak_layers"] / none["peak_layers"] < 3 / math.sqrt(cfg.layers)
    assert full["stored"] == pytest.approx(cfg.layers * 2 * 2048 * 12288)   # 2sbh per layer (Table 2)
    assert full["peak_layers"] == pytest.approx(full["stored"] + none["per_layer"])


def test_recompute_cost():
    """Full recomputation re-runs every layer's forward: ~1/3 of a step (forward + 2x backward);
    selective recomputation re-runs only the attention core (Korthikanti et al. 2022, section 5)."""
    cfg = PRESETS["gpt3-175b"]
    full = recompute_cost(cfg, checkpoint_plan(cfg.layers, "full"), seq=2048, batch=1)
    sel = recompute_cost(cfg, checkpoint_plan(cfg.layers, "selective"), seq=2048, batch=1)
    assert full["fraction"] == pytest.approx(1 / 3, abs=0.01)
    assert 0 < sel["fraction"] < 0.02
    assert recompute_cost(cfg, checkpoint_plan(cfg.layers, "none"), seq=2048, batch=1)["fraction"] == 0


def test_head_term():
    """Korthikanti et al. 2022, section 4.3: the output layer adds 4sbh/t (1 + v/h) with SP
    (layer-norm and projection inputs, fp32 logits)."""
    cfg = PRESETS["gpt2"]
    out = model_activation_bytes(cfg, seq=1024, batch=2, tp=4, sequence_parallel=True, dropout=False)
    s, b, h, v, t = 1024, 2, 768, cfg.vocab_size, 4
    assert out["head"] == pytest.approx(4 * s * b * h / t * (1 + v / h))
    assert out["embedding"] == 0


def test_checkpoint_graph_roles():
    graph = checkpoint_graph(checkpoint_plan(8, "sqrt"))
    roles = {n: d["role"] for n, d in graph.nodes(data=True)}
    assert roles["F0"] == "input kept" and roles["F1"] == "dropped" and roles["F7"] == "kept"
    assert ("F0", "R0") in graph.edges and ("R3", "B3") in graph.edges and "R4" not in roles
    none = checkpoint_graph(checkpoint_plan(4, "none"))
    assert not [n for n in none if n.startswith("R")]


# ---------------------------------------------------------------- plans, sweeps, URL
def test_default_plan_llama2():
    result = plan_memory(TrainingPlan())
    assert result["n_params"] == param_count(PRESETS["llama-2-7b"])["total"]
    assert result["total"] == pytest.approx(sum(result["parts"].values()))
    assert result["parts"]["params"] == pytest.approx(2 * result["n_params"])
    assert set(result["fits"]) == {24, 40, 80, 141}


def test_kv_cache_per_gpu():
    """GQA heads split across TP ranks (replicated past kv_heads); MLA's latent is replicated."""
    llama3 = PRESETS["llama-3-8b"]   # 8 KV heads
    total = kv_cache_bytes(llama3, seq=4096, batch=2)
    assert kv_cache_bytes_per_gpu(llama3, seq=4096, batch=2, tp=4) == total / 4
    assert kv_cache_bytes_per_gpu(llama3, seq=4096, batch=2, tp=16) == total / 8
    v3 = PRESETS["deepseek-v3"]
    assert kv_cache_bytes_per_gpu(v3, seq=100, tp=8) == kv_cache_bytes(v3, seq=100)
    plan = replace(TrainingPlan(preset="llama-3-8b", tp=4), kv_requests=2, kv_context=4096)
    assert plan_memory(plan)["parts"]["kv_cache"] == pytest.approx(total / 4)


@pytest.mark.parametrize("changes, message", [
    ({"tp": 3}, "must divide the 32"),
    ({"preset": "custom", "hidden": 1000, "heads": 16}, "divide the hidden"),
    ({"preset": "custom", "heads": 32, "kv_heads": 5}, "KV heads"),
    ({"dp": 0}, "Data-parallel"),
    ({"dp": 1_000_000, "tp": 1024}, "GPUs"),
    ({"sp": True}, "Sequence parallelism"),
    ({"seq": -4}, "Sequence length"),
    ({"micro_batch": 10**9}, "Micro-batch"),
    ({"recompute": "most"}, "Checkpointing"),
    ({"preset": "gpt-5"}, "Model"),
    ({"kv_requests": -1}, "KV-cache requests"),
    ({"flash": "yes"}, "flash"),
])
def test_plan_bad_input(changes, message):
    with pytest.raises(ValidationError, match=message):
        validate_plan(replace(TrainingPlan(), **changes))


def test_falcon_tp_must_divide_71_heads():
    with pytest.raises(ValidationError, match="71"):
        plan_memory(TrainingPlan(preset="falcon-7b", tp=2))
    assert plan_memory(TrainingPlan(preset="falcon-7b", tp=71, dp=1))["total"] > 0


def test_every_preset_and_recipe_computes():
    for preset in PRESETS:
        for recipe in RECIPES:
            for strategy in CHECKPOINT_STRATEGIES:
                result = plan_memory(TrainingPlan(preset=preset, recipe=recipe, recompute=strategy, seq=2048))
                assert result["total"] > 0 and all(v >= 0 for v in result["parts"].values())


def test_sweeps():
    plan = TrainingPlan(preset="gpt2", seq=1024, micro_batch=4)
    rows = dp_sweep(plan, dps=(1, 8, 64))
    by = {(r["zero_stage"], r["dp"]): r["model_states"] for r in rows}
    assert by[(0, 1)] == by[(0, 64)] and by[(3, 64)] == pytest.approx(by[(3, 1)] / 64)
    seq_rows = seq_sweep(plan, seqs=(256, 512))
    none = [r["activations"] for r in seq_rows if r["strategy"] == "none"]
    assert none[1] > 2 * none[0]        # the as^2b term: faster than linear in s
    table = {r["strategy"]: r for r in strategy_table(plan)}
    assert table["full"]["stored"] < table["sqrt"]["stored"] < table["none"]["stored"]


def test_query_round_trip():
    plan = TrainingPlan(preset="custom", hidden=2048, heads=16, kv_heads=4, layers=8, zero_stage=3,
                        dp=64, tp=2, sp=True, recompute="sqrt", flash=True, kv_requests=3)
    back, problems = plan_from_query(plan_to_query(plan))
    assert problems == [] and back == plan
    preset_query = plan_to_query(TrainingPlan())
    assert "h" not in preset_query and preset_query["preset"] == "llama-2-7b"


@pytest.mark.parametrize("query, expect", [
    ({"dp": "abc"}, "'dp' must be a whole number"),
    ({"dp": "-3"}, "between"),
    ({"dp": "1e400"}, "whole number"),
    ({"preset": "<script>alert(1)</script>"}, "'preset' must be one of"),
    ({"sp": "maybe"}, "true or false"),
    ({"seq": "9" * 200}, "too long"),
    ({"tp": "3"}, "do not work together"),
    ({"rc": ["full", "sqrt", "nonsense"]}, "'rc' must be one of"),
    ({"h": "0"}, "Hidden size"),                # custom fields are checked even for a preset
    ({"v": "99999999"}, "'v' must be between"),
])
def test_query_garbage_gives_messages(query, expect):
    plan, problems = plan_from_query(query)
    assert any(expect in p for p in problems), problems
    validate_plan(plan)          # whatever came in, the plan used is valid


def test_query_keeps_good_values_and_ignores_unknown_keys():
    plan, problems = plan_from_query({"dp": "junk", "zero": "3", "other_page_key": "x"})
    assert plan.zero_stage == 3 and plan.dp == TrainingPlan().dp and len(problems) == 1


def test_results_are_in_gib_range_for_seed_example():
    """The issue's seed: a 7B model, 16-bit mixed precision with Adam: 112 GB of model states."""
    assert model_state_bytes(7_000_000_000)["total"] / GB == pytest.approx(112.0)
    assert 100 < model_state_bytes(7_000_000_000)["total"] / GIB < 106


# ---------------------------------------------------------------- Llama-style blocks
def test_llama_block_terms_golden_smollm2():
    """SmolLM2-135M (h 576, 3 KV heads of 64: h_kv 192, f 1536, a 9) at s 128, b 1, 16-bit,
    by hand from the term list (each op keeps what its backward needs; Touvron et al. 2023
    sec. 2.2 block, Korthikanti et al. 2022 sec. 4.1 method):
      FlashAttention: (7h + 2h_kv + 4f) s b x 2 B + two fp32 1/rms (2 x 4 s b) + logsumexp (4 a s b)
                      = 10,560 x 128 x 2 + 1,024 + 4,608 = 2,708,992 B
      eager:          (6h + 2h_kv + 4f + a s) s b x 2 B + 1,024 = 2,851,840 B
      full recompute: the block input, s b h x 2 B = 147,456 B"""
    from core.memory import llama_activation_terms, llama_head_terms, llama_training_activations

    cfg = PRESETS["smollm2-135m"]
    flash = llama_activation_terms(cfg, seq=128, batch=1, bytes_per_value=2)
    eager = llama_activation_terms(cfg, seq=128, batch=1, bytes_per_value=2, flash_attention=False)
    full = llama_activation_terms(cfg, seq=128, batch=1, bytes_per_value=2, recompute="full")
    assert sum(t.bytes for t in flash) == 2_708_992
    assert sum(t.bytes for t in eager) == 2_851_840
    assert sum(t.bytes for t in full) == 147_456
    head = llama_head_terms(cfg, seq=128, batch=1, bytes_per_value=2)
    assert sum(t.bytes for t in head) == 2 * 128 * 576 * 2 + 4 * 128 + 4 * 128 * 49152
    whole = llama_training_activations(cfg, seq=128, batch=1, bytes_per_value=2)
    assert whole["stored"] == 30 * 2_708_992 + sum(t.bytes for t in head)
    ckpt = llama_training_activations(cfg, seq=128, batch=1, bytes_per_value=2, checkpoint=True)
    assert ckpt["layers_stored"] == 30 * 147_456
    assert ckpt["layers_peak"] == 30 * 147_456 + 2_708_992        # one block recomputed at a time


def test_llama_terms_reduce_to_mha_widths():
    """With kv_heads == heads (MHA) K and V are h wide each: 7h + 2h + 4f per token with FlashAttention."""
    from core.memory import llama_activation_terms

    cfg = PRESETS["llama-2-7b"]
    terms = llama_activation_terms(cfg, seq=1, batch=1, bytes_per_value=1)
    values = sum(t.bytes for t in terms if t.kind == "value")
    assert values == 9 * 4096 + 4 * 11008
