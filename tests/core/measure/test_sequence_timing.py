"""core.measure.sequence_timing: analytic counts, memory caps, and the timing loops on tiny sizes (no timing asserts)."""

from __future__ import annotations

import pytest

from core.measure import sequence_timing
from core.models import sequence_models
from core.runtime.validation import ResourceError, ValidationError

TINY = sequence_models.configs_for_budget(3_000, 1, vocab_size=13)


def test_forward_flops_golden_rnn():
    """One Elman layer: W_ih x (E*H) + W_hh h (H*H) + head (H*V) multiply-adds per token, 2 FLOPs each."""
    cfg = sequence_models.RNNConfig(vocab_size=10, d_embed=4, d_hidden=5, n_layers=1)
    assert sequence_timing.forward_flops(cfg, batch=2, T=3) == 2 * 2 * 3 * (5 * (4 + 5) + 5 * 10)


def test_forward_flops_golden_transformer():
    """Per token: qkv 3d^2, proj d^2, MLP 2 d f, head d V; attention QK^T and PV over the causal triangle."""
    cfg = sequence_models.TransformerConfig(vocab_size=10, d_model=4, n_heads=2, n_layers=1, d_ff=8)
    T = 3
    dense = 4 * 16 + 2 * 4 * 8 + 4 * 10
    attn = 2 * 4 * (1 + 2 + 3)
    assert sequence_timing.forward_flops(cfg, batch=1, T=T) == 2 * (T * dense + attn)


def test_sequential_steps():
    assert sequence_timing.sequential_steps(sequence_models.make_config("lstm", 8, 3), 100) == 102
    assert sequence_timing.sequential_steps(sequence_models.make_config("transformer", 8, 3), 100) == 3


def test_check_fits_caps_tokens_and_memory(monkeypatch):
    cfg = TINY["lstm"]
    with pytest.raises(ResourceError, match="cap"):
        sequence_timing.check_fits(cfg, 1024, sequence_timing.MAX_TIMING_T, "forward", "cpu")
    monkeypatch.setattr(sequence_timing, "available_bytes", lambda device: 1000)
    with pytest.raises(ResourceError, match="free"):
        sequence_timing.check_fits(cfg, 4, 512, "forward+backward", "cpu")
    assert sequence_timing.estimate_bytes(cfg, 4, 512, "forward+backward") > sequence_timing.estimate_bytes(cfg, 4, 512, "forward")


def test_timing_spec_validation():
    with pytest.raises(ValidationError):
        sequence_timing.TimingSpec(lengths=())
    with pytest.raises(ValidationError):
        sequence_timing.TimingSpec(lengths=(sequence_timing.MAX_TIMING_T + 1,))
    with pytest.raises(ValidationError):
        sequence_timing.TimingSpec(modes=("backward",))
    with pytest.raises(ValidationError):
        sequence_timing.GenerationSpec(n_tokens=(0,))
    with pytest.raises(ValidationError):
        sequence_timing.GenerationSpec(batch=10_000)


def test_time_vs_length_runs_every_point():
    spec = sequence_timing.TimingSpec(lengths=(8, 16), batch=2, warmup=0, repeats=1, threads=1)
    seen = []
    rows = sequence_timing.time_vs_length(TINY, spec, "cpu", progress=lambda f, m: seen.append(m))
    assert len(rows) == 4 * 2 * 2 and len(seen) == len(rows)
    for row in rows:
        assert row["status"] == "ok", row
        assert row["median_ms"] > 0 and row["tokens_per_s"] > 0
        assert row["flops"] == sequence_timing.forward_flops(TINY[row["kind"]], 2, row["T"]) * (
            3 if row["mode"] == "forward+backward" else 1)


def test_points_over_the_memory_cap_are_skipped_not_raised(monkeypatch):
    monkeypatch.setattr(sequence_timing, "available_bytes", lambda device: 400_000)
    spec = sequence_timing.TimingSpec(lengths=(4, 4096, 8192), batch=1, warmup=0, repeats=1, threads=1)
    rows = sequence_timing.time_vs_length({"gru": TINY["gru"]}, spec, "cpu")
    by_T = {(r["mode"], r["T"]): r["status"] for r in rows}
    assert by_T[("forward", 4)] == "ok"
    assert by_T[("forward+backward", 4096)].startswith("skipped")
    assert by_T[("forward+backward", 8192)].startswith("skipped")      # larger T not attempted


def test_out_of_memory_becomes_a_row_status(monkeypatch):
    def boom(model, x):
        def run():
            raise MemoryError("simulated")
        return run

    monkeypatch.setattr(sequence_timing, "_train_fn", boom)
    spec = sequence_timing.TimingSpec(lengths=(4, 8), batch=1, modes=("forward+backward",), warmup=0, repeats=1)
    rows = sequence_timing.time_vs_length({"rnn": TINY["rnn"]}, spec, "cpu")
    assert rows[0]["status"].startswith("out of memory")
    assert rows[1]["status"] == "skipped (T = 4 failed: see that row)"


def test_a_point_predicted_too_slow_is_skipped(monkeypatch):
    from core.measure import timing

    slow = timing.Timing(median_ms=3000.0, min_ms=3000.0, max_ms=3000.0, repeats=1, samples_ms=(3000.0,))
    monkeypatch.setattr(sequence_timing, "time_fn", lambda *a, **k: slow)
    spec = sequence_timing.TimingSpec(lengths=(8, 16, 32), batch=1, modes=("forward",), max_point_s=5.0)
    rows = sequence_timing.time_vs_length({"lstm": TINY["lstm"], "transformer": TINY["transformer"]}, spec, "cpu")
    status = {(r["kind"], r["T"]): r["status"] for r in rows}
    assert status[("lstm", 8)] == "ok"
    assert status[("lstm", 16)].startswith("skipped: T = 8 took 3.00 s, so T = 16 would take about 6 s")
    assert status[("lstm", 32)] == status[("lstm", 16)]
    assert status[("transformer", 16)].endswith("about 8 s (over 5 s per call)")     # T^1.5 guess


def test_prediction_uses_the_measured_slope():
    class Job:
        remaining_s = 100.0

    linear = [(256, 100.0), (1024, 400.0)]
    quadratic = [(256, 100.0), (1024, 1600.0)]
    assert sequence_timing._skip_reason(Job, linear, 4096, 2.0, 5.0, "T") is None            # 1.6 s predicted
    assert "about 26 s" in sequence_timing._skip_reason(Job, quadratic, 4096, 1.0, 5.0, "T")
    Job.remaining_s = 0.0
    assert "time limit" in sequence_timing._skip_reason(Job, None, 64, 1.0, 5.0, "T")


def test_too_many_points_is_a_validation_error():
    spec = sequence_timing.TimingSpec(lengths=tuple(range(1, 80)), batch=1)
    with pytest.raises(ValidationError):
        sequence_timing.time_vs_length(TINY, spec, "cpu")


def test_generation_speed_rows_and_state_bytes():
    spec = sequence_timing.GenerationSpec(n_tokens=(4,), batch=2, repeats=1, threads=1)
    rows = sequence_timing.generation_speed(TINY, spec, "cpu")
    assert [(r["kind"], r["mode"]) for r in rows] == [
        ("rnn", "state"), ("lstm", "state"), ("gru", "state"),
        ("transformer", "KV cache"), ("transformer", "recompute")]
    by = {(r["kind"], r["mode"]): r for r in rows}
    for kind in ("rnn", "gru"):
        assert by[(kind, "state")]["state_bytes"] == 1 * 2 * TINY[kind].d_hidden * 4   # (L, B, H)
    assert by[("lstm", "state")]["state_bytes"] == 2 * 1 * 2 * TINY["lstm"].d_hidden * 4
    d = TINY["transformer"].d_model
    assert by[("transformer", "KV cache")]["state_bytes"] == 2 * 1 * 2 * d * 4 * 4   # k+v, L, B, d, 4 pos
    assert by[("transformer", "recompute")]["state_bytes"] is None
    assert all(r["tokens_per_s"] > 0 for r in rows)
