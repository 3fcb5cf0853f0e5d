"""core.measure.timing: warm-up, repeats and the median (no timing assertions)."""

from __future__ import annotations

import torch

from core.measure.timing import peak_memory_bytes, time_fn, time_interleaved


def test_time_fn_counts_warmup_and_repeats():
    calls = []
    result = time_fn(lambda: calls.append(1), "cpu", warmup=3, repeats=4)
    assert len(calls) == 7
    assert result.repeats == 4 and len(result.samples_ms) == 4
    assert result.min_ms <= result.median_ms <= result.max_ms


def test_time_fn_stops_early_with_max_seconds():
    calls = []
    result = time_fn(lambda: calls.append(1), "cpu", warmup=0, repeats=100, max_seconds=0.0)
    assert result.repeats == 1 and len(calls) == 1


def test_time_fn_runs_real_torch_work():
    a = torch.randn(64, 64)
    assert time_fn(lambda: a @ a, "cpu", warmup=1, repeats=2).median_ms >= 0


def test_peak_memory_unknown_on_cpu():
    assert peak_memory_bytes(lambda: torch.ones(10), "cpu") is None


def test_time_interleaved_takes_turns_and_alternates_the_order():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    result = time_interleaved(fns, "cpu", warmup=1, repeats=4)
    assert calls == ["a", "b"] + ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert set(result) == {"a", "b"} and all(t.repeats == 4 for t in result.values())
    assert all(t.min_ms <= t.median_ms <= t.max_ms for t in result.values())
