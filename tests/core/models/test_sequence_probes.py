"""core.models.sequence_probes: gradient flow (hand-checked and finite differences), gates, attention, graphs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.data.char_data import corpus_window
from core.models import sequence_models
from core.models import sequence_probes as sp
from core.runtime.validation import ValidationError


def _tiny_rnn() -> sequence_models.RecurrentLM:
    model = sequence_models.build_model(sequence_models.RNNConfig(vocab_size=2, d_embed=1, d_hidden=1, n_layers=1)).double()
    with torch.no_grad():
        model.embed.weight.copy_(torch.tensor([[0.5], [-1.0]], dtype=torch.float64))
        model.rnn.weight_ih_l0.fill_(0.8)
        model.rnn.weight_hh_l0.fill_(0.9)
        model.rnn.bias_ih_l0.fill_(0.1)
        model.rnn.bias_hh_l0.fill_(-0.05)
        model.head.weight.copy_(torch.tensor([[1.5], [-0.5]], dtype=torch.float64))
        model.head.bias.copy_(torch.tensor([0.2, -0.1], dtype=torch.float64))
    return model


def test_gradient_flow_matches_hand_computation_for_one_unit_rnn():
    """h_t = tanh(0.8 e_x + 0.9 h_(t-1) + 0.05); dL/dh_T = sum_j (p_j - [j = y]) a_j and
    dL/dh_t = dL/dh_(t+1) * 0.9 * (1 - h_(t+1)^2): the chain rule written out by hand."""
    ids, target = [0, 1, 1, 0, 1], 0
    emb = {0: 0.5, 1: -1.0}
    h, hs = 0.0, []
    for x in ids:
        h = math.tanh(0.8 * emb[x] + 0.1 + 0.9 * h - 0.05)
        hs.append(h)
    logits = [1.5 * hs[-1] + 0.2, -0.5 * hs[-1] - 0.1]
    z = sum(math.exp(v) for v in logits)
    p = [math.exp(v) / z for v in logits]
    grads = [0.0] * len(ids)
    grads[-1] = (p[0] - 1) * 1.5 + p[1] * -0.5
    for t in range(len(ids) - 2, -1, -1):
        grads[t] = grads[t + 1] * 0.9 * (1 - hs[t + 1] ** 2)
    flow = sp.gradient_flow(_tiny_rnn(), torch.tensor([ids + [target]]))
    np.testing.assert_allclose(flow.h_norm, np.abs(grads), rtol=1e-10, atol=0)
    assert flow.distance.tolist() == [4, 3, 2, 1, 0]
    assert flow.loss == pytest.approx(-math.log(p[0]), rel=1e-12)
    assert flow.c_norm is None


def _finite_difference_norms(model, ids, target, t, eps=1e-6):
    """||dL/ds_t|| by central differences on every coordinate of the state s_t (h and c)."""
    def loss_with(bump):
        x = model.embed(ids)                                     # (1, T, E)
        state = None
        for s in range(ids.shape[1]):
            _, state = model.step(x[:, s:s + 1], state)
            if s == t:
                state = bump(state)
        h_top = (state[0] if isinstance(state, tuple) else state)[-1]
        return float(F.cross_entropy(model.head(h_top), target))

    norms = []
    parts = 2 if model.config.kind == "lstm" else 1
    for part in range(parts):
        sq = 0.0
        shape = (model.config.n_layers, 1, model.config.d_hidden)
        for coord in np.ndindex(*shape):
            def bump(state, sign, part=part, coord=coord):
                tensors = list(state) if isinstance(state, tuple) else [state]
                tensors[part] = tensors[part].clone()
                tensors[part][coord] += sign * eps
                return tuple(tensors) if isinstance(state, tuple) else tensors[0]
            d = (loss_with(lambda s, b=bump: b(s, 1)) - loss_with(lambda s, b=bump: b(s, -1))) / (2 * eps)
            sq += d * d
        norms.append(math.sqrt(sq))
    return norms


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_gradient_flow_matches_finite_differences(kind):
    cfg = sequence_models.make_config(kind, 3, 2, vocab_size=5)
    model = sequence_models.build_model(cfg, seed=1).double()
    ids = torch.tensor([[1, 4, 0, 2, 3, 1, 2]])
    flow = sp.gradient_flow(model, ids)
    T = ids.shape[1] - 1
    with torch.no_grad():
        for t in (0, 3, T - 1):
            fd = _finite_difference_norms(model, ids[:, :T], ids[:, T], t)
            assert flow.h_norm[t] == pytest.approx(fd[0], rel=1e-5)
            if kind == "lstm":
                assert flow.c_norm[t] == pytest.approx(fd[1], rel=1e-5)


def test_transformer_gradient_flow_matches_finite_differences():
    cfg = sequence_models.TransformerConfig(vocab_size=5, d_model=4, n_heads=2, n_layers=2, d_ff=8)
    model = sequence_models.build_model(cfg, seed=2).double()
    ids = torch.tensor([[1, 4, 0, 2, 3, 1]])
    flow = sp.gradient_flow(model, ids)
    inputs, target = ids[:, :5], ids[:, 5]
    eps = 1e-6
    with torch.no_grad():
        x0 = model.embed_tokens(inputs)                          # (1, 5, 4)
        for t in (0, 2, 4):
            sq = 0.0
            for c in range(4):
                xp, xm = x0.clone(), x0.clone()
                xp[0, t, c] += eps
                xm[0, t, c] -= eps
                lp = F.cross_entropy(model.forward_embeddings(xp)[0][:, -1], target)
                lm = F.cross_entropy(model.forward_embeddings(xm)[0][:, -1], target)
                sq += float((lp - lm) / (2 * eps)) ** 2
            assert flow.h_norm[t] == pytest.approx(math.sqrt(sq), rel=1e-5)


def test_zero_recurrent_weights_cut_the_gradient_path():
    model = sequence_models.build_model(sequence_models.make_config("rnn", 6, 1, vocab_size=7))
    flow = sp.gradient_flow(model, torch.randint(0, 7, (2, 12)), recurrent_scale=0.0)
    assert flow.h_norm[-1] > 0
    assert np.all(flow.h_norm[:-1] == 0)


def test_probe_leaves_the_shared_model_untouched():
    model = sequence_models.build_model(sequence_models.make_config("lstm", 6, 1, vocab_size=7)).eval().requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sp.gradient_flow(model, torch.randint(0, 7, (1, 10)), recurrent_scale=2.0)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 3])
def test_gate_trace_reproduces_the_module(kind, layers):
    model = sequence_models.build_model(sequence_models.make_config(kind, 10, layers, vocab_size=9), seed=3)
    ids = torch.randint(0, 9, (1, 25))
    trace = sp.gate_trace(model, ids, layer=layers - 1)
    assert trace.max_abs_error < 1e-5
    assert trace.hidden.shape == (25, 10)
    assert set(trace.gates) == set(sp.GATE_NAMES[kind])
    for name, z in trace.gates.items():
        assert z.shape == (25, 10)
        if name.split()[-1] in ("i", "f", "o", "r", "z"):
            assert z.min() >= 0 and z.max() <= 1
        else:
            assert z.min() >= -1 and z.max() <= 1
    assert (trace.cell is not None) == (kind == "lstm")


def test_gate_trace_in_float64_is_exact():
    model = sequence_models.build_model(sequence_models.make_config("lstm", 8, 2, vocab_size=9)).double()
    assert sp.gate_trace(model, torch.randint(0, 9, (1, 30))).max_abs_error < 1e-12


def test_gate_trace_lstm_cell_equation():
    """c_t = f * c_(t-1) + i * g and h_t = o * tanh(c_t) (nn.LSTM documentation)."""
    model = sequence_models.build_model(sequence_models.make_config("lstm", 5, 1, vocab_size=9)).double()
    tr = sp.gate_trace(model, torch.randint(0, 9, (1, 12)))
    i, f, g, o = (tr.gates[n] for n in sp.GATE_NAMES["lstm"])
    c_prev = np.vstack([np.zeros((1, 5)), tr.cell[:-1]])
    np.testing.assert_allclose(tr.cell, f * c_prev + i * g, atol=1e-12)
    np.testing.assert_allclose(tr.hidden, o * np.tanh(tr.cell), atol=1e-12)


def test_attention_maps_are_causal_distributions():
    cfg = sequence_models.TransformerConfig(vocab_size=9, d_model=8, n_heads=2, n_layers=3, d_ff=16)
    maps = sp.attention_maps(sequence_models.build_model(cfg), list(range(9)) + [1, 2])
    assert maps.probs.shape == (3, 2, 11, 11)
    np.testing.assert_allclose(maps.probs.sum(-1), 1.0, atol=1e-6)
    assert np.all(np.triu(maps.probs[0, 0], k=1) == 0)
    assert maps.max_abs_error < 1e-5


def test_probe_inputs_are_validated():
    rnn = sequence_models.build_model(sequence_models.make_config("rnn", 4, 1, vocab_size=5))
    tf = sequence_models.build_model(sequence_models.make_config("transformer", 4, 1, vocab_size=5, n_heads=2))
    with pytest.raises(ValidationError):
        sp.gate_trace(tf, [1, 2])
    with pytest.raises(ValidationError):
        sp.attention_maps(rnn, [1, 2])
    with pytest.raises(ValidationError):
        sp.gate_trace(rnn, [1, 7])                                # id outside the vocabulary
    with pytest.raises(ValidationError):
        sp.attention_maps(tf, [])
    with pytest.raises(ValidationError):
        sp.gradient_flow(rnn, [1])                                # needs a target after the input
    with pytest.raises(ValidationError):
        sp.gradient_flow(rnn, [1, 2], recurrent_scale=-1)
    with pytest.raises(ValidationError):
        sp.attention_maps(tf, [1] * (sp.MAX_TRACE_T + 1))


@pytest.mark.parametrize("T", [1, 5, 12])
@pytest.mark.parametrize("L", [1, 3])
def test_unrolled_graphs_longest_path_and_edges(T, L):
    rnn, tf = sp.rnn_graph(T, L), sp.transformer_graph(T, L)
    assert rnn.depth == T + L                                     # x -> L layers -> T-1 steps -> y
    assert tf.depth == L + 1                                      # x -> L layers -> y
    assert rnn.n_edges == T * L + L * (T - 1) + T
    assert tf.n_edges == L * T * (T + 1) // 2 + T
    for ug in (rnn, tf):
        assert ug.path[0] == ("x", 0, 0) and ug.path[-1] == ("y", L + 1, T - 1)
        assert all(ug.graph.has_edge(u, v) for u, v in zip(ug.path, ug.path[1:], strict=False))
        coords = sp.edge_coordinates(ug)
        assert len(coords["path"][0]) == 3 * ug.depth
        assert len(coords["edges"][0]) == 3 * (ug.n_edges - ug.depth)


def test_graph_caps():
    with pytest.raises(ValidationError):
        sp.transformer_graph(sp.MAX_GRAPH_T + 1, 1)
    with pytest.raises(ValidationError):
        sp.rnn_graph(4, 0)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", sequence_models.KINDS)
def test_cuda_probes_match_cpu(kind, monkeypatch):
    """cuDNN's RNN backward (train mode on a copy) gives the same gradient flow as the CPU."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    model = sequence_models.build_model(sequence_models.make_config(kind, 32, 2, vocab_size=11)).eval().requires_grad_(False)
    ids = torch.randint(0, 11, (2, 65))
    cpu = sp.gradient_flow(model, ids)
    gpu = sp.gradient_flow(model.to("cuda"), ids)
    keep = cpu.h_norm > 1e-20
    np.testing.assert_allclose(gpu.h_norm[keep], cpu.h_norm[keep], rtol=1e-3)
    if kind == "transformer":
        assert sp.attention_maps(model, ids[0, :40]).max_abs_error < 1e-4
    else:
        assert sp.gate_trace(model, ids[:1, :40], layer=1).max_abs_error < 1e-4


def test_gradient_flows_probe_every_model_on_the_same_windows():
    models = {k: sequence_models.build_model(c, "cpu", seed=0).eval()
              for k, c in sequence_models.configs_for_budget(5_000, 1, vocab_size=11).items()}
    data = torch.arange(400) % 11
    flows = sp.gradient_flows(models, data, 16, seed=2, recurrent_scale=0.5, batch=3)
    windows = corpus_window(data, 17, 2, 3)                                   # (3, 17)
    for kind, model in models.items():
        ref = sp.gradient_flow(model, windows, recurrent_scale=0.5)
        np.testing.assert_allclose(flows[kind].h_norm, ref.h_norm, rtol=1e-6, atol=0)
        assert flows[kind].distance.tolist() == list(range(15, -1, -1))


def test_unroll_view_flattens_both_graphs():
    view = sp.unroll_view(5, 2)
    for name, build in (("rnn", sp.rnn_graph), ("transformer", sp.transformer_graph)):
        ug = build(5, 2)
        assert view[name]["depth"] == ug.depth and view[name]["n_edges"] == ug.n_edges
        assert len(view[name]["nodes"]) == ug.graph.number_of_nodes() == 5 * 4
        xs, _ = view[name]["coords"]["path"]
        assert len(xs) == 3 * ug.depth                                        # (x0, x1, None) per path edge
    assert view["rnn"]["depth"] == 5 + 2 and view["transformer"]["depth"] == 2 + 1
