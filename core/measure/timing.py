"""Timing and peak-memory measurement: warm up, repeat, report the median.

On CUDA, time with CUDA events (kernel time on the stream, not Python time);
elsewhere with ``time.perf_counter`` after synchronising. The analytic FLOP
and byte counts live with each model/benchmark, apart from the timing.
Peak memory: CUDA's allocator statistics on a GPU; on any device,
:class:`TensorBytesTracker` follows the storages that tensor operations create
(a TorchDispatchMode, with weak references to see them freed), which is what a
CPU measurement reports.
Does not handle: clock locking or L2 flushing between repeats (use
triton.testing.do_bench for kernel-level GPU numbers); memory that is not a tensor
storage (allocator caches, the Python heap) in the tracker.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from core.runtime.device import synchronize


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


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    device: torch.device | str,
    *,
    warmup: int = 1,
    repeats: int = 5,
) -> dict[str, Timing]:
    """Time several functions in turns; a median per name.

    Each repeat runs every function once, in reverse order every other repeat, so
    a machine that gets busier or quieter during the run (other processes, clock
    changes) affects them alike: the ratios of their medians are what to compare.
    """
    dev = torch.device(device)
    names = list(fns)
    for _ in range(max(warmup, 0)):
        for name in names:
            fns[name]()
    synchronize(dev)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(max(repeats, 1)):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(_one_run_ms(fns[name], dev))
    return {name: Timing(statistics.median(s), min(s), max(s), len(s), tuple(s)) for name, s in samples.items()}


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


class TensorBytesTracker(TorchDispatchMode):
    """``with TensorBytesTracker() as tr: ...``: live and peak bytes of the tensor storages
    created inside the block (each storage once; views share it). Storages that existed
    before (weights, optimizer state) are not counted. Frees are seen at the next operation,
    so ``peak`` is the largest live total at any operation boundary, inputs and output of
    that operation included. Slows every operation down: track one step, time another."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.live_bytes = 0
        self.peak_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self._sweep()
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor) and t.device.type != "meta"}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._add(t.untyped_storage(), inputs)
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        return out

    def _add(self, storage, inputs: set[int]) -> None:
        """A storage the operation allocated (not a view of one of its inputs: a weight's
        transpose or an in-place result is no new memory)."""
        key = storage.data_ptr()
        if key and key not in self._live and key not in inputs:
            self._live[key] = (StorageWeakRef(storage), storage.nbytes())
            self.live_bytes += storage.nbytes()

    def _sweep(self) -> None:
        gone = [key for key, (ref, _) in self._live.items() if ref.expired()]
        for key in gone:
            self.live_bytes -= self._live.pop(key)[1]
