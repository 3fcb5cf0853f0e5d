"""Timing and peak-memory measurement: warm up, repeat, report the median.

On CUDA, time with CUDA events (kernel time on the stream, not Python time);
elsewhere with ``time.perf_counter`` after synchronising. The analytic FLOP
and byte counts live with each model/benchmark, apart from the timing.
Does not handle: clock locking or L2 flushing between repeats (use
triton.testing.do_bench for kernel-level GPU numbers).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.device import synchronize


@dataclass(frozen=True)
class Timing:
    median_ms: float          # median over repeats
    min_ms: float
    max_ms: float
    repeats: int
    samples_ms: tuple[float, ...]


def time_fn(
    fn: Callable[[], object],
    device: torch.device | str,
    *,
    warmup: int = 2,
    repeats: int = 5,
    max_seconds: float | None = None,
) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` timed; median in ms.

    ``max_seconds`` stops repeating early (at least one timed run) so a slow
    configuration on a CPU cannot hold a page for minutes.
    """
    dev = torch.device(device)
    for _ in range(max(warmup, 0)):
        fn()
    synchronize(dev)
    samples: list[float] = []
    started = time.perf_counter()
    for _ in range(max(repeats, 1)):
        samples.append(_one_run_ms(fn, dev))
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            break
    return Timing(
        median_ms=statistics.median(samples),
        min_ms=min(samples),
        max_ms=max(samples),
        repeats=len(samples),
        samples_ms=tuple(samples),
    )


def _one_run_ms(fn: Callable[[], object], dev: torch.device) -> float:
    if dev.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    t0 = time.perf_counter()
    fn()
    synchronize(dev)
    return (time.perf_counter() - t0) * 1e3


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str) -> int | None:
    """Peak device memory allocated while ``fn`` runs, above what was allocated before.

    CUDA only (torch's allocator statistics); None on other devices (unknown).
    """
    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    before = torch.cuda.memory_allocated(dev)
    fn()
    synchronize(dev)
    return int(torch.cuda.max_memory_allocated(dev) - before)
