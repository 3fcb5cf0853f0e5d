"""core.measure.timing: warm-up, repeats and the median; the tensor-bytes tracker.

Times are checked only from below (a sleep of s seconds takes at least s), never from above:
a busy machine can only make a run slower.
"""

from __future__ import annotations

import statistics
import time

import torch

from core.measure.timing import TensorBytesTracker, peak_memory_bytes, time_fn, time_interleaved

STEP_S = 0.01        # call i of a test function sleeps i * STEP_S


def sleeper(calls: list[int]):
    """A function whose i-th call (from 1) sleeps at least i * STEP_S seconds."""
    def fn():
        calls.append(len(calls) + 1)
        time.sleep(calls[-1] * STEP_S)
    return fn


def test_time_fn_counts_warmup_and_repeats():
    calls = []
    result = time_fn(lambda: calls.append(1), "cpu", warmup=3, repeats=4)
    assert len(calls) == 7
    assert result.repeats == 4 and len(result.samples_ms) == 4
    assert result.min_ms <= result.median_ms <= result.max_ms


def test_time_fn_times_the_runs_after_the_warm_up():
    """Warm-up calls 1-2 are not timed: the samples are calls 3, 4, 5, each at least as long as
    its sleep, and the median is the middle one's."""
    calls = []
    result = time_fn(sleeper(calls), "cpu", warmup=2, repeats=3)
    assert calls == [1, 2, 3, 4, 5]
    assert len(result.samples_ms) == result.repeats == 3
    for sample, call in zip(result.samples_ms, (3, 4, 5), strict=True):
        assert sample >= call * STEP_S * 1e3
    assert result.median_ms == statistics.median(result.samples_ms) >= 4 * STEP_S * 1e3
    assert (result.min_ms, result.max_ms) == (min(result.samples_ms), max(result.samples_ms))


def test_time_fn_stops_early_with_max_seconds():
    calls = []
    result = time_fn(lambda: calls.append(1), "cpu", warmup=0, repeats=100, max_seconds=0.0)
    assert result.repeats == 1 and len(calls) == 1


def test_time_fn_runs_at_least_once():
    calls = []
    result = time_fn(lambda: calls.append(1), "cpu", warmup=-1, repeats=0)
    assert calls == [1] and result.repeats == 1


def test_peak_memory_unknown_on_cpu():
    assert peak_memory_bytes(lambda: torch.ones(10), "cpu") is None


def test_time_interleaved_takes_turns_and_alternates_the_order():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    result = time_interleaved(fns, "cpu", warmup=1, repeats=4)
    assert calls == ["a", "b"] + ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert set(result) == {"a", "b"} and all(t.repeats == 4 for t in result.values())
    assert all(t.min_ms <= t.median_ms <= t.max_ms for t in result.values())


def test_time_interleaved_times_each_function_on_its_own():
    fns = {"short": lambda: time.sleep(STEP_S), "long": lambda: time.sleep(3 * STEP_S)}
    result = time_interleaved(fns, "cpu", warmup=0, repeats=3)
    assert result["short"].min_ms >= STEP_S * 1e3
    assert result["long"].min_ms >= 3 * STEP_S * 1e3
    assert all(len(t.samples_ms) == 3 for t in result.values())


# ---------------------------------------------------------------- TensorBytesTracker
def test_tracker_counts_new_storages_and_sees_them_freed():
    with TensorBytesTracker() as tracker:
        a = torch.ones(1000)                       # 4,000 bytes (float32)
        b = a * 2                                  # 4,000 more: 8,000 live
        del b
        c = a + 1                                  # b's storage is gone: still 8,000 live
    assert tracker.peak_bytes == 8_000
    assert tracker.live_bytes == 8_000
    assert c.sum().item() == 2_000


def test_tracker_does_not_count_views_in_place_results_or_older_tensors():
    weight = torch.ones(100, 100)                  # before the block: not counted
    with TensorBytesTracker() as tracker:
        view = weight[:10]                         # a view shares the weight's storage
        weight.mul_(2)                             # in place: no new memory
        transposed = weight.t()
    assert (tracker.peak_bytes, tracker.live_bytes) == (0, 0)
    assert view.shape == (10, 100) and transposed.shape == (100, 100)


def test_tracker_peak_is_the_largest_live_total_and_frees_show_at_the_next_operation():
    with TensorBytesTracker() as tracker:
        for _ in range(3):
            tmp = torch.zeros(256, dtype=torch.float64)   # 2,048 bytes, dropped each loop
            del tmp
    assert tracker.peak_bytes == 2_048             # each loop's zeros replace the last one's
    assert tracker.live_bytes == 2_048             # the last free is seen by no later operation
