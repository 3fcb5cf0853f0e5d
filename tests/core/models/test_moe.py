"""core/models/moe.py: DeepSeekMoE routing, balancing, dispatch, the small LM and the scale view.

References: DeepSeek-V3 technical report section 2.1.2 (eq. 12-20), DeepSeek-V3's
inference/model.py Gate (group score = sum of the top-2 biased affinities), Wang et al. 2024
(bias update, MaxVio), Switch Transformer section 2.2 (aux loss is minimal, = 1 without
alpha, under uniform routing).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.data.char_data import corpus_from_text
from core.models import moe
from core.runtime.validation import ValidationError


def _scores(t: int, n: int, seed: int = 0, skew: float = 0.0) -> torch.Tensor:
    """Sigmoid affinities (T, N); ``skew`` makes low-numbered experts popular."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(t, n, generator=g, dtype=torch.float64)
    logits = logits + skew * torch.linspace(1.0, -1.0, n, dtype=torch.float64)
    return torch.sigmoid(logits)


ROUTINGS = [  # (n_routed, top_k, n_groups, topk_groups)
    (4, 1, 1, 1), (8, 2, 1, 1), (16, 4, 4, 2), (12, 3, 3, 1), (64, 8, 8, 4), (6, 6, 1, 1),
]


# ---------------------------------------------------------------- routing
@pytest.mark.parametrize("n,k,g,tg", ROUTINGS)
def test_exactly_k_distinct_experts_per_token(n, k, g, tg):
    cfg = moe.MoEConfig(n_routed=n, top_k=k, n_groups=g, topk_groups=tg)
    bias = torch.randn(n, dtype=torch.float64) * 0.3
    weights, idx = moe.route(_scores(257, n, seed=n), bias, cfg)
    assert idx.shape == (257, k) and weights.shape == (257, k)
    assert all(len(set(row)) == k for row in idx.tolist())
    assert idx.min() >= 0 and idx.max() < n
    groups_used = (idx // cfg.group_size).tolist()
    assert all(len(set(row)) <= tg for row in groups_used)


@pytest.mark.parametrize("scale", [1.0, 2.5, 0.3])
@pytest.mark.parametrize("n,k,g,tg", ROUTINGS)
def test_gate_weights_sum_to_route_scale(n, k, g, tg, scale):
    cfg = moe.MoEConfig(n_routed=n, top_k=k, n_groups=g, topk_groups=tg, route_scale=scale)
    weights, _ = moe.route(_scores(64, n), torch.randn(n, dtype=torch.float64), cfg)
    torch.testing.assert_close(weights.sum(-1), torch.full((64,), scale, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    assert (weights > 0).all()


def test_bias_changes_selection_but_not_weight_normalisation():
    cfg = moe.MoEConfig(n_routed=8, top_k=2, route_scale=2.5)
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.2, 0.3, 0.05, 0.4, 0.6]], dtype=torch.float64)
    w0, i0 = moe.route(scores, None, cfg)
    assert sorted(i0[0].tolist()) == [0, 1]
    bias = torch.zeros(8, dtype=torch.float64)
    bias[5] = 2.0                                   # push a weak expert into the top-2
    w1, i1 = moe.route(scores, bias, cfg)
    assert sorted(i1[0].tolist()) == [0, 5]
    # gates come from the unbiased affinities of the chosen experts only
    expected = {0: 0.9 / 0.95 * 2.5, 5: 0.05 / 0.95 * 2.5}
    got = dict(zip(i1[0].tolist(), w1[0].tolist(), strict=True))
    assert got == pytest.approx(expected, abs=1e-12)
    torch.testing.assert_close(w0.sum(), w1.sum(), atol=1e-12, rtol=0)
    # a bias that does not change the choice does not change the weights either
    w2, i2 = moe.route(scores, torch.full((8,), 0.7, dtype=torch.float64), cfg)
    assert i2.tolist() == i0.tolist()
    torch.testing.assert_close(w2, w0, atol=0, rtol=0)


def test_group_limit_uses_top2_sum_as_deepseek_v3():
    """Group 0 has the single best expert, group 1 the best pair: V3 keeps group 1."""
    cfg = moe.MoEConfig(n_routed=8, top_k=2, n_groups=2, topk_groups=1)
    scores = torch.tensor([[0.99, 0.1, 0.1, 0.1, 0.9, 0.85, 0.1, 0.1]], dtype=torch.float64)
    _, idx = moe.route(scores, None, cfg)
    assert sorted(idx[0].tolist()) == [4, 5]


@pytest.mark.parametrize("n,k,g,tg", ROUTINGS)
def test_route_matches_naive_choice(n, k, g, tg):
    cfg = moe.MoEConfig(n_routed=n, top_k=k, n_groups=g, topk_groups=tg)
    scores, bias = _scores(100, n, seed=3), torch.randn(n, dtype=torch.float64) * 0.2
    _, idx = moe.route(scores, bias, cfg)
    for row, s in zip(idx.tolist(), scores.tolist(), strict=True):
        assert row == moe._naive_choice(s, bias.tolist(), cfg)


def test_max_violation_golden():
    """MaxVio = max/mean - 1 (Wang et al. 2024, 4.1): [1,1,1,1] -> 0; [4,0,0,0] -> 3."""
    assert moe.max_violation(np.array([1, 1, 1, 1])) == 0.0
    assert moe.max_violation(torch.tensor([4, 0, 0, 0])) == pytest.approx(3.0)
    assert moe.max_violation(np.array([3, 1, 1, 3])) == pytest.approx(0.5)
    assert moe.max_violation(np.zeros(4)) == 0.0


# ---------------------------------------------------------------- balancing
def test_update_bias_signs():
    bias = torch.zeros(4)
    moe.update_bias(bias, torch.tensor([10, 2, 4, 0]), 0.01)   # mean 4
    torch.testing.assert_close(bias, torch.tensor([-0.01, 0.01, 0.0, 0.01]), atol=1e-9, rtol=0)


def test_bias_update_moves_load_toward_uniform_on_skewed_router():
    cfg = moe.MoEConfig(n_routed=16, top_k=2)
    scores = _scores(2048, 16, seed=1, skew=3.0).float()   # a few experts take most tokens
    bias = torch.zeros(16)
    vio = []
    with moe.cpu_threads("cpu"):
        for _ in range(250):
            _, idx = moe.route(scores, bias, cfg)
            load = moe.expert_load(idx, 16)
            vio.append(moe.max_violation(load))
            moe.update_bias(bias, load, 0.01)
    assert vio[0] > 2.0, vio[0]
    assert np.mean(vio[-20:]) < 0.35, np.mean(vio[-20:])          # from > 2 to about the noise floor
    assert bias[0] < 0 < bias[-1]                      # popular expert pushed down, rare one up


def test_bias_demo_balances_and_gamma_zero_does_nothing():
    cfg = moe.MoEConfig(n_routed=8, top_k=2)
    demo = moe.bias_demo(cfg, 0.01, tokens=512, steps=150)
    assert demo.load.shape == (150, 8) and demo.bias.shape == (150, 8)
    assert demo.max_vio[0] > 1.0 and demo.max_vio[-10:].mean() < 0.5 * demo.max_vio[0]
    frozen = moe.bias_demo(cfg, 0.0, tokens=512, steps=5)
    assert (frozen.bias == 0).all() and np.allclose(frozen.max_vio, frozen.max_vio[0])
    with pytest.raises(ValidationError, match="Demo tokens"):
        moe.bias_demo(cfg, 0.01, tokens=moe.MAX_DEMO_TOKENS + 1)


def test_aux_loss_is_one_when_uniform_and_larger_when_skewed():
    """Switch Transformer 2.2: N * sum f_i P_i is minimised (= 1) by uniform routing."""
    n, t = 4, 8                                        # 4 experts, top-2, 8 tokens
    uniform_scores = torch.full((t, n), 0.5)
    idx = torch.tensor([[0, 1], [2, 3]] * (t // 2))
    assert moe.aux_balance_loss(uniform_scores, idx, n).item() == pytest.approx(1.0)
    skewed = torch.tensor([[0.9, 0.9, 0.1, 0.1]] * t)
    idx = torch.tensor([[0, 1]] * t)                   # f = (1/2, 1/2, 0, 0), P = (.45, .45, .05, .05)
    assert moe.aux_balance_loss(skewed, idx, n).item() == pytest.approx(4 * 0.45, abs=1e-6)


def test_aux_loss_gradient_lowers_overloaded_affinity():
    scores = _scores(64, 8, skew=2.0).float().requires_grad_(True)
    cfg = moe.MoEConfig(n_routed=8, top_k=2)
    _, idx = moe.route(scores.detach(), None, cfg)
    moe.aux_balance_loss(scores, idx, 8).backward()
    load = moe.expert_load(idx, 8)
    busiest, idlest = int(load.argmax()), int(load.argmin())
    assert scores.grad[:, busiest].mean() > scores.grad[:, idlest].mean()


def test_sequence_balance_loss_matches_eq_17_to_20():
    """Per sequence: f_i = N/(K T) sum_t 1(i chosen), P_i = mean_t s_i / sum_j s_j; L = sum f P."""
    b, s, n, k = 3, 10, 6, 2
    scores = _scores(b * s, n, seed=5).view(b, s, n)
    idx = scores.topk(k, -1).indices
    got = moe.sequence_balance_loss(scores, idx).item()
    expected = 0.0
    for bi in range(b):
        for i in range(n):
            f = n / (k * s) * sum(i in idx[bi, t].tolist() for t in range(s))
            p = sum(scores[bi, t, i].item() / scores[bi, t].sum().item() for t in range(s)) / s
            expected += f * p / b
    assert got == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- dispatch
LAYERS = [  # (d_model, n_routed, top_k, n_shared, n_groups, topk_groups, route_scale)
    (16, 4, 1, 0, 1, 1, 1.0), (32, 8, 2, 1, 1, 1, 2.5), (24, 16, 4, 2, 4, 2, 1.0),
    (16, 6, 6, 1, 3, 3, 1.0),
]


def _layer(shape, dispatch, dtype=torch.float64, seed=0) -> moe.MoELayer:
    d, n, k, sh, g, tg, rs = shape
    cfg = moe.MoEConfig(d_model=d, n_routed=n, top_k=k, n_shared=sh, expert_hidden=8,
                        n_groups=g, topk_groups=tg, route_scale=rs)
    torch.manual_seed(seed)
    layer = moe.MoELayer(cfg, dispatch).to(dtype)
    layer.bias.normal_(0, 0.1)
    return layer


@pytest.mark.parametrize("dispatch", moe.DISPATCHES)
@pytest.mark.parametrize("shape", LAYERS)
@pytest.mark.parametrize("tokens", [1, 7, 64])
def test_dispatch_equals_naive_per_token_loop(dispatch, shape, tokens):
    layer = _layer(shape, dispatch)
    x = torch.randn(tokens, shape[0], dtype=torch.float64)
    y, internals = layer(x, return_internals=True)
    y_ref, picks = moe.naive_moe_reference(layer, x)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=1e-10)
    assert internals.indices.tolist() == picks
    assert int(internals.load.sum()) == tokens * shape[2]


@pytest.mark.parametrize("dispatch", moe.DISPATCHES)
def test_float32_dispatch_close_to_float64_reference(dispatch):
    layer = _layer(LAYERS[1], dispatch, dtype=torch.float32)
    x = torch.randn(2, 33, 32)                                          # (B, S, D)
    y = layer(x)
    y_ref, _ = moe.naive_moe_reference(layer, x.reshape(-1, 32))
    torch.testing.assert_close(y.reshape(-1, 32).double(), y_ref, atol=1e-5, rtol=1e-4)


def test_sorted_and_padded_gradients_agree():
    grads = {}
    for dispatch in moe.DISPATCHES:
        layer = _layer(LAYERS[2], dispatch, seed=1)
        x = torch.randn(50, 24, dtype=torch.float64, requires_grad=True)
        (layer(x) ** 2).sum().backward()
        grads[dispatch] = [x.grad] + [p.grad for p in layer.parameters()]
    for a, b in zip(grads["sorted"], grads["padded"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_bias_receives_no_gradient_and_router_does():
    layer = _layer(LAYERS[1], "sorted", dtype=torch.float32)
    layer(torch.randn(40, 32)).sum().backward()
    assert not layer.bias.requires_grad
    assert layer.router.grad is not None and layer.router.grad.abs().sum() > 0


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs,words", [
    ({"n_routed": 4, "top_k": 5}, "cannot exceed"),
    ({"n_routed": 0}, "at least one routed expert"),
    ({"n_routed": 16, "n_groups": 3}, "divide"),
    ({"n_routed": 16, "n_groups": 4, "topk_groups": 5}, "Groups per token"),
    ({"n_routed": 16, "top_k": 6, "n_groups": 4, "topk_groups": 1}, "reach"),
    ({"n_routed": 1000}, "Routed experts"),
    ({"route_scale": 0.0}, "Route scale"),
    ({"top_k": 0}, "Top-k"),
    ({"n_shared": -1}, "Shared experts"),
])
def test_bad_layer_settings_have_clear_messages(kwargs, words):
    with pytest.raises(ValidationError, match=words):
        moe.MoEConfig(**kwargs)


@pytest.mark.parametrize("kwargs,words", [
    ({"gamma": -0.01}, "gamma"), ({"gamma": 0.5}, "gamma"), ({"alpha": 2.0}, "alpha"),
    ({"alpha": float("nan")}, "alpha"), ({"seq_alpha": 0.5}, "Sequence-wise"),
    ({"steps": 0}, "Training steps"), ({"steps": moe.MAX_STEPS + 1}, "Training steps"),
    ({"n_heads": 3}, "divide"), ({"lr": 0.0}, "Learning rate"), ({"n_layers": 50}, "Layers"),
])
def test_bad_training_settings_have_clear_messages(kwargs, words):
    with pytest.raises(ValidationError, match=words):
        moe.TrainConfig(**kwargs)


def test_bad_mode_is_refused():
    with pytest.raises(ValidationError, match="Balancing mode"):
        moe.BalanceConfig("<script>")
    with pytest.raises(ValidationError):
        moe.train_balancing_modes(moe.TrainConfig(steps=1), modes=("none", "none"))


# ---------------------------------------------------------------- data and LM
TEXT = ("the quick brown fox jumps over the lazy dog. " * 60
        + "Pack my box with five dozen liquor jugs! 1234567890 " * 30)


def _corpus() -> moe.CharCorpus:
    return corpus_from_text(TEXT, moe.build_vocab(TEXT, min_count=5))     # 90 % train


def _tiny(**kw) -> moe.TrainConfig:
    layer = moe.MoEConfig(d_model=32, n_routed=4, top_k=2, expert_hidden=16)
    base = {"moe": layer, "n_layers": 2, "n_heads": 2, "seq_len": 32, "batch": 8, "steps": 8,
            "eval_every": 4, "lr": 3e-3, "gamma": 0.01}
    return moe.TrainConfig(**{**base, **kw})


def test_vocab_roundtrip_and_unknown():
    vocab = moe.build_vocab(TEXT, min_count=5)
    ids = vocab.encode("the fox\u00e9")
    assert "".join(vocab.decode(ids.tolist()[:7])) == "the fox"
    assert ids[-1].item() == 0 and vocab.decode([0]) == [moe.UNKNOWN]
    assert vocab.size == len(vocab.chars) + 1 <= moe.MAX_VOCAB


def test_lm_shapes_and_internals():
    cfg = _tiny()
    model = moe.build_model(30, cfg)
    out = model(torch.randint(0, 30, (3, 20)), return_internals=True)
    assert out.logits.shape == (3, 20, 30)
    assert len(out.layers) == 2
    assert out.layers[0].indices.shape == (3, 20, 2) and out.layers[0].scores.shape == (3, 20, 4)
    with pytest.raises(ValidationError):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_three_modes_same_start_and_bias_only_in_aux_free():
    cfg = _tiny()
    comp = moe.train_balancing_modes(cfg, "cpu", corpus=_corpus())
    assert list(comp.runs) == list(moe.MODES)
    first = {m: r.history.loss[0] for m, r in comp.runs.items()}
    assert first["none"] == pytest.approx(first["aux_free"], abs=1e-6)   # same init, same batch
    for mode, run in comp.runs.items():
        h = run.history
        assert h.load.shape == (8, 2, 4) and h.max_vio.shape == (8, 2)
        assert (h.load.sum(-1) == 8 * 32 * 2).all()                        # B*S tokens x top-k
        assert np.isfinite(h.loss).all() and len(h.val_loss) == 2
        assert h.tokens_per_s > 0
        if mode == "aux_free":
            steps = np.abs(np.diff(np.concatenate([np.zeros((1, 2, 4)), h.bias]), axis=0))
            assert np.allclose(steps[steps > 0], cfg.gamma, atol=1e-7)
            assert np.abs(h.bias[-1]).sum() > 0
        else:
            assert (h.bias == 0).all()
    assert comp.runs["aux_loss"].history.balance_loss[0] > 0
    assert (comp.runs["none"].history.balance_loss == 0).all()


def test_training_lowers_the_loss():
    comp = moe.train_balancing_modes(_tiny(steps=40, eval_every=40), "cpu", corpus=_corpus(),
                                     modes=("aux_free",))
    h = comp.runs["aux_free"].history
    assert h.loss[-5:].mean() < h.loss[:3].mean() - 0.5


def test_route_text_and_specialisation():
    comp = moe.untrained_comparison(_tiny(), corpus=_corpus())
    model, vocab = comp.runs["none"].model, comp.vocab
    r = moe.route_text(model, vocab, "the <b>fox</b> é" * 5)
    t = len("the <b>fox</b> é" * 5)
    assert len(r.tokens) == t and r.gates.shape == (2, t, 4) and r.top_expert.shape == (2, t)
    assert ((r.gates > 0).sum(-1) == 2).all()
    assert r.tokens[-1] == "é" and not r.known[-1] and r.known[:3].all() and not r.truncated
    np.testing.assert_allclose(r.gates.sum(-1), 1.0, atol=1e-6)
    long = moe.route_text(model, vocab, "x" * (moe.MAX_TEXT_CHARS + 10))
    assert long.truncated and len(long.tokens) == moe.MAX_TEXT_CHARS
    with pytest.raises(ValidationError):
        moe.route_text(model, vocab, "   ")
    specs = moe.expert_specialisation(model, vocab, comp.val, n_tokens=200, min_count=3)
    assert len(specs) == 2
    assert sum(p.share for p in specs[0].experts) == pytest.approx(1.0)
    np.testing.assert_allclose(specs[0].class_rate.sum(-1), 2.0, atol=1e-9)


def test_text_routing_carries_its_maxvio_and_top_expert_counts():
    comp = moe.untrained_comparison(_tiny(), corpus=_corpus())
    r = moe.route_text(comp.runs["none"].model, comp.vocab, "the quick brown fox, 1969.")
    assert r.max_vio.shape == (2,) and r.top_counts.shape == (2, 4)
    for layer in range(2):
        assert r.max_vio[layer] == moe.max_violation(r.load[layer])
        np.testing.assert_array_equal(r.top_counts[layer], np.bincount(r.top_expert[layer], minlength=4))
    assert (r.top_counts.sum(-1) == len(r.tokens)).all()


def test_build_comparison_is_one_entry_point_for_trained_and_untrained():
    cfg, corpus = _tiny(), _corpus()
    untrained = moe.build_comparison(cfg, trained=False, corpus=corpus)
    assert list(untrained.runs) == ["none"] and len(untrained.runs["none"].history.loss) == 0
    trained = moe.build_comparison(cfg, trained=True, corpus=corpus)
    assert list(trained.runs) == list(moe.MODES)
    assert all(len(run.history.loss) == cfg.steps for run in trained.runs.values())
    assert trained.config == untrained.config == cfg and trained.device == "cpu"


def test_run_analyses_equal_the_model_level_calls_and_refuse_a_missing_run():
    comp = moe.build_comparison(_tiny(), trained=False, corpus=_corpus())
    model, text = comp.runs["none"].model, "the <b>fox</b>"
    via_run, direct = moe.route_run_text(comp, "none", text), moe.route_text(model, comp.vocab, text)
    np.testing.assert_array_equal(via_run.gates, direct.gates)
    assert via_run.tokens == direct.tokens
    specs = moe.run_specialisation(comp, "none")
    ref = moe.expert_specialisation(model, comp.vocab, comp.val)
    assert [s.experts for s in specs] == [s.experts for s in ref]
    with pytest.raises(ValidationError, match="no run 'aux_free'"):
        moe.route_run_text(comp, "aux_free", text)
    with pytest.raises(ValidationError, match="No balancing"):
        moe.run_specialisation(comp, "<script>")


def test_wiki_corpus_is_real_text():
    corpus = moe.wiki_corpus()
    assert 60 < corpus.vocab.size <= moe.MAX_VOCAB
    assert len(corpus.train) > 1_000_000 and len(corpus.val) > 50_000
    assert corpus.vocab.chars[0] == " "                       # the most frequent character


def test_cpu_threads_restores():
    before = torch.get_num_threads()
    with moe.cpu_threads("cpu", 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------- scale view
def test_scale_view_deepseek_v3():
    """DeepSeek-V3 config.json: 256 routed + 1 shared, top-8, 58 MoE layers; 671 B / 37 B (README)."""
    v = moe.scale_view("deepseek-v3")
    assert (v.n_routed, v.n_shared, v.top_k, v.moe_layers, v.dense_layers) == (256, 1, 8, 58, 3)
    assert (v.n_group, v.topk_group) == (8, 4)
    assert v.expert_params == 3 * 7168 * 2048
    assert round(v.params["total"] / 1e9) == 671
    assert v.combinations == math.comb(256, 8)
    assert v.flops_all_experts["routed experts"] == 32 * v.flops["routed experts"]
    weights_only = sum(f for part, f in v.flops.items() if part != "attention over context")
    assert weights_only == pytest.approx(2 * v.params["active_no_embedding"], rel=0.005)


def test_scale_view_refuses_dense_and_unknown():
    for bad in ("gpt2", "nope", "<script>"):
        with pytest.raises(ValidationError):
            moe.scale_view(bad)


# ---------------------------------------------------------------- CUDA
@pytest.mark.gpu
@pytest.mark.parametrize("dispatch", moe.DISPATCHES)
def test_cuda_dispatch_matches_reference(dispatch):
    layer = _layer(LAYERS[2], dispatch, dtype=torch.float32).cuda()
    x = torch.randn(300, 24, device="cuda")
    y = layer(x)
    y_ref, _ = moe.naive_moe_reference(layer, x[:40])
    torch.testing.assert_close(y[:40].double().cpu(), y_ref.cpu(), atol=1e-4, rtol=1e-3)


@pytest.mark.gpu
def test_cuda_training_runs():
    comp = moe.train_balancing_modes(_tiny(steps=4), "cuda", corpus=_corpus())
    assert all(np.isfinite(r.history.loss).all() for r in comp.runs.values())
    assert comp.device.startswith("cuda")


def test_lm_blocks_are_core_decoder_blocks_with_the_moe_as_mlp():
    from core.nn import DecoderBlock, SwiGLU

    model = moe.build_model(30, _tiny())
    block = model.blocks[0]
    assert isinstance(block, DecoderBlock) and block.moe is block.mlp is model.moe_layers()[0]
    assert isinstance(block.moe.shared, SwiGLU)                       # the shared experts: core.nn's SwiGLU
    gate, up = block.moe.shared.gate_up.weight.chunk(2)
    assert 0.015 < float(gate.std()) < 0.025 and 0.015 < float(up.std()) < 0.025   # N(0, 0.02) each
