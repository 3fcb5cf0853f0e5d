"""core/views/sequences.py: the RNN vs Transformer page's tables and curves, checked against the
calculators they come from."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.char_data import corpus_from_text
from core.measure.sequence_timing import forward_flops, sequential_steps
from core.models import sequence_models
from core.models.sequence_probes import GateTrace, GradientFlow
from core.train import smooth
from core.views import sequences


def test_config_rows_are_the_calculators_numbers():
    configs = sequence_models.configs_for_budget(100_000, 2)
    rows = sequences.config_rows(configs, 64)
    assert [r["kind"] for r in rows] == list(sequence_models.KINDS)
    for r, cfg in zip(rows, configs.values(), strict=True):
        assert r["params"] == sequence_models.param_count(cfg)
        assert r["flops_per_char"] == forward_flops(cfg, 1, 64) / 64
        assert r["sequential_steps"] == sequential_steps(cfg, 64)
        assert r["architecture"] == sequence_models.describe(cfg)


def test_depth_curves_recurrent_grows_with_T_attention_does_not():
    curves = sequences.depth_curves(3, (1, 8, 64))
    assert curves["recurrent"] == [1 + 3 - 1, 8 + 3 - 1, 64 + 3 - 1]          # T + L - 1
    assert curves["transformer"] == [3, 3, 3]                                 # L


def test_loss_curves_and_results_of_a_tiny_training():
    corpus = corpus_from_text("the cat sat on the mat. " * 100)
    configs = sequence_models.configs_for_budget(3_000, 1)
    train = sequence_models.TrainConfig(steps=6, batch=4, block=16, warmup=1, eval_every=3, eval_batches=1)
    trained = sequence_models.train_models(configs, train, corpus, "cpu")
    curves = sequences.loss_curves(trained, points=3)
    for kind, h in trained.history.items():
        np.testing.assert_allclose(curves[kind]["train"], smooth(h.train_loss, 2))
        assert curves[kind]["val_steps"] == [3, 6] and curves[kind]["val"] == h.val_loss
    rows = {r["kind"]: r for r in sequences.result_rows(trained)}
    assert rows["lstm"]["params"] == sequence_models.n_params(trained.models["lstm"])
    assert rows["gru"]["tokens"] == 6 * 4 * 16
    assert sequences.mean_params(trained) == pytest.approx(
        sum(sequence_models.param_count(c) for c in configs.values()) / 4)


def test_flow_rows_ratios_and_exact_zeros():
    h = np.array([1e-9, 0.0, 1e-3, 1.0])                                      # distances 3, 2, 1, 0
    flows = {"rnn": GradientFlow("rnn", np.array([3, 2, 1, 0]), h, None, 1.0)}
    row = sequences.flow_rows(flows)[0]
    assert row["near"] == 1.0 and row["ratios"] == {3: pytest.approx(1e9)}
    zero = GradientFlow("gru", np.arange(19, -1, -1), np.r_[np.zeros(1), np.ones(19)], None, 1.0)
    assert sequences.flow_rows({"gru": zero})[0]["ratios"] == {16: 1.0, 19: None}


def test_gate_matrix_most_variable_units_first():
    t = np.linspace(0, 1, 5)[:, None]
    gates = {"input i": np.hstack([0 * t, 3 * t, t])}                       # (T, H): unit 1 varies most
    trace = GateTrace("lstm", 0, gates, hidden=gates["input i"] * 2, cell=gates["input i"] * 4, max_abs_error=0.0)
    z, order = sequences.gate_matrix(trace, "input i", 2)
    assert order.tolist() == [1, 2] and z.shape == (2, 5)
    np.testing.assert_array_equal(z[0], 3 * t[:, 0])
    assert sequences.gate_matrix(trace, "cell c", 1)[0][0].tolist() == (12 * t[:, 0]).tolist()
    np.testing.assert_allclose(sequences.gate_means(trace)["input i"], (4 * t[:, 0]) / 3)
