"""core/measure/attention_bench.py: the benchmark runner, its config checks, refusals and
budget, and the memory footprint by formula and measured."""


from __future__ import annotations

import pytest
import torch

from core import attention
from core.measure import attention_bench
from core.runtime.device import kernel_interpreted
from core.runtime.scheduler import JobTimeout
from core.runtime.validation import ValidationError


def qkv(b, h, n, d, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=gen, dtype=torch.float64).to(dtype) for _ in range(3)]


# ---------------------------------------------------------------- benchmark runner
TINY = attention_bench.BenchConfig(seqs=(16, 33), batch=1, heads=2, head_dim=16, backward=True, warmup=0, repeats=1)


def test_run_benchmark_tiny_cpu():
    progress = []
    rows = attention_bench.run_benchmark(TINY, "cpu", progress=lambda f, m: progress.append(f))
    assert len(rows) == 2 * 4 * 2 and progress[-1] == 1.0
    for r in rows:
        assert r.max_err is not None and r.max_err < 1e-5, r
        if r.mode == "fwd+bwd":
            assert r.grad_err is not None and r.grad_err < 1e-4, r
        if r.impl == "triton" and kernel_interpreted("cpu"):
            assert r.status == attention_bench.INTERPRETER_STATUS and r.ms is None and r.tflops is None
        else:
            assert r.status == "ok" and r.ms > 0 and r.tflops > 0 and r.peak_bytes is None


def test_run_benchmark_refusals_and_budget(monkeypatch):
    monkeypatch.setattr(attention, "NAIVE_CPU_MAX_BYTES", 1000)
    cfg = attention_bench.BenchConfig(seqs=(300,), head_dim=16, heads=1, impls=("naive", "triton"), warmup=0, repeats=1)
    naive, triton = attention_bench.run_benchmark(cfg, "cpu")
    assert naive.status.startswith("refused") and "GiB" in naive.status and naive.ms is None
    if kernel_interpreted("cpu"):
        assert triton.status.startswith("skipped") and "interpreter" in triton.status
    skipped = attention_bench.run_benchmark(TINY, "cpu", deadline=0.0)
    assert all(r.status == "skipped: time budget spent" for r in skipped)


def test_run_benchmark_stops_on_job_timeout():
    class Job:
        def check(self):
            raise JobTimeout("stopped after its time limit")

    with pytest.raises(JobTimeout):
        attention_bench.run_benchmark(TINY, "cpu", job=Job())


@pytest.mark.parametrize("changes", [
    {"seqs": ()}, {"seqs": (8192,)}, {"seqs": tuple(range(1, 20))}, {"head_dim": 8}, {"head_dim": 256},
    {"dtype": "float64"}, {"impls": ("flash3",)}, {"impls": ()}, {"batch": 16, "heads": 32},
    {"batch": 8, "heads": 32, "head_dim": 128, "seqs": (4096,)}, {"sdpa_backend": "cudnn"},
    {"repeats": 0}, {"causal": "no"}, {"backward": 1},
])
def test_bench_config_refuses(changes):
    base = {"seqs": (64,), "head_dim": 64}
    with pytest.raises(ValidationError):
        attention_bench.check_bench_config(attention_bench.BenchConfig(**{**base, **changes}), "cpu")


def test_bench_config_batch_heads_cap_is_per_device():
    """CPU: 256 (per-head Python loops); CUDA: 64 x 128, memory being capped by the element count.
    The FlashAttention-2 paper's set-up (16k tokens x 2048 hidden) at N=1k, d=64 is batch 16 x heads 32."""
    paper = attention_bench.BenchConfig(seqs=(1024,), batch=16, heads=32, head_dim=64, dtype="bfloat16")
    assert attention_bench.check_bench_config(paper, "cuda").batch == 16
    with pytest.raises(ValidationError, match="256"):
        attention_bench.check_bench_config(paper, "cpu")
    with pytest.raises(ValidationError, match="elements"):
        attention_bench.check_bench_config(attention_bench.BenchConfig(seqs=(32768,), batch=64, heads=128, head_dim=128), "cuda")


def test_sdpa_variants_are_bench_only_and_skip_on_cpu():
    assert "sdpa_cudnn" not in attention_bench.IMPLEMENTATIONS and {"sdpa_flash", "sdpa_cudnn"} <= set(attention_bench.BENCH_IMPLEMENTATIONS)
    cfg = attention_bench.BenchConfig(seqs=(16,), heads=1, head_dim=16, impls=("sdpa_flash", "sdpa_cudnn"), warmup=0, repeats=1)
    rows = attention_bench.run_benchmark(cfg, "cpu")
    assert [r.impl for r in rows] == ["sdpa_flash", "sdpa_cudnn"]
    assert all(r.status.startswith("skipped") and "CUDA" in r.status and r.ms is None for r in rows)


def test_sdpa_default_backend_is_named():
    q = torch.zeros(1, 2, 16, 16)
    assert attention_bench.sdpa_default_backend(q, q, q, causal=True) in {"FLASH_ATTENTION", "MATH", "EFFICIENT_ATTENTION", None}


def test_timing_quantiles_bracket_the_median():
    median, p20, p80 = attention_bench.timing_quantiles(lambda: torch.ones(64, 64) @ torch.ones(64, 64), "cpu",
                                          warmup=1, repeats=5)
    assert 0 < p20 <= median <= p80


def test_bench_config_sorts_and_dedupes():
    cfg = attention_bench.check_bench_config(attention_bench.BenchConfig(seqs=(128, 64, 128), impls=("sdpa", "sdpa")), "cpu")
    assert cfg.seqs == (64, 128) and cfg.impls == ("sdpa",)


def test_memory_footprint_formula_on_cpu():
    rows = attention_bench.memory_footprint(attention_bench.BenchConfig(seqs=(1024,), batch=1, heads=4, head_dim=64), "cpu")
    by = {r.impl: r for r in rows}
    out = 4 * 1024 * 64 * 4
    assert by["naive"].analytic_bytes == out + attention.naive_scores_bytes(1, 4, 1024, torch.float32)
    assert by["triton"].analytic_bytes == out + 4 * 1024 * 4
    assert by["sdpa"].analytic_bytes is None
    assert all(r.measured_bytes is None for r in rows)
    assert by["naive"].analytic_bytes > 10 * by["triton"].analytic_bytes
