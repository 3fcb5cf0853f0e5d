"""core/runtime/recorded.py: readers of recorded benchmark results (bench/results/)."""


from __future__ import annotations

import pytest
import torch

from core.measure import attention_bench
from core.runtime import recorded


def qkv(b, h, n, d, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=gen, dtype=torch.float64).to(dtype) for _ in range(3)]


# ---------------------------------------------------------------- benchmark runner
TINY = attention_bench.BenchConfig(seqs=(16, 33), batch=1, heads=2, head_dim=16, backward=True, warmup=0, repeats=1)


# ---------------------------------------------------------------- recorded results
def test_recorded_rows_and_speed_ratios():
    doc = {"cases": [{"head_dim": 64, "causal": False, "dtype": "bfloat16", "batch": 4, "heads": 32, "rows": [
        {"impl": "triton", "n": 4096, "mode": "fwd", "ms": 2.0, "tflops": 300.0},
        {"impl": "sdpa", "n": 4096, "mode": "fwd", "ms": 2.5, "tflops": 240.0},
        {"impl": "triton", "n": 4096, "mode": "fwd+bwd", "ms": None, "tflops": None},
        {"impl": "sdpa", "n": 4096, "mode": "fwd+bwd", "ms": 9.0, "tflops": 300.0},
    ]}, "junk"]}
    rows = recorded.recorded_rows(doc)
    assert len(rows) == 4 and rows[0]["head_dim"] == 64 and rows[0]["dtype"] == "bfloat16"
    (ratio,) = recorded.speed_ratios(rows)
    assert ratio["mode"] == "fwd" and ratio["ratio"] == pytest.approx(1.25)
    assert recorded.recorded_rows({"no": "cases"}) == [] and recorded.recorded_rows([]) == []


def test_compare_rows_against_both_backends():
    """vs_flash = flash time / row time at the same (head_dim, causal, N, mode); old files (impl
    "sdpa" with sdpa_backend "flash") count as the flash baseline."""
    base = {"head_dim": 64, "causal": True, "n": 2048, "mode": "fwd"}
    rows = recorded.compare_rows([{**base, "impl": "triton", "ms": 2.0}, {**base, "impl": "sdpa_flash", "ms": 3.0},
                           {**base, "impl": "sdpa_cudnn", "ms": 1.5}, {**base, "impl": "naive", "ms": None},
                           {**base, "impl": "triton", "n": 4096, "ms": 1.0}])
    ours = rows[0]
    assert ours["vs_flash"] == pytest.approx(1.5) and ours["vs_cudnn"] == pytest.approx(0.75)
    assert rows[1]["vs_flash"] == pytest.approx(1.0) and rows[3]["vs_flash"] is None
    assert rows[4]["vs_flash"] is None and rows[4]["vs_cudnn"] is None
    old = recorded.compare_rows([{**base, "impl": "triton", "ms": 2.0}, {**base, "impl": "sdpa", "sdpa_backend": "flash", "ms": 2.0}])
    assert old[0]["vs_flash"] == pytest.approx(1.0) and old[0]["vs_cudnn"] is None


def test_recorded_gpu_results_reads_the_bundle(tmp_path):
    import json

    assert recorded.recorded_gpu_results(tmp_path) is None
    att = {"benchmark": "attention", "meta": {"device": {"kind": "cuda", "name": "NVIDIA H200"}}, "cases": []}
    (tmp_path / "gpu-check-cuda.json").write_text(json.dumps(
        {"benchmark": "gpu-check", "results": {"attention-cuda": {**att, "dry_run": True}}}))
    assert recorded.recorded_gpu_results(tmp_path) is None                     # a dry run is not a result
    (tmp_path / "gpu-check-cuda.json").write_text(json.dumps(
        {"benchmark": "gpu-check", "results": {"attention-cuda": att}}))
    assert recorded.recorded_gpu_results(tmp_path)["meta"]["device"]["name"] == "NVIDIA H200"
    (tmp_path / "gpu-check-cuda.json").write_text("{broken")
    cpu = {**att, "meta": {"device": {"kind": "cpu"}}}
    (tmp_path / "attention-cuda.json").write_text(json.dumps(cpu))
    assert recorded.recorded_gpu_results(tmp_path) is None
