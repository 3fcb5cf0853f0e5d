"""bench/attention.py: the CUDA plan passes the project's own validation (no GPU needed), each
case is caught and written on its own, the dry run validates without running, the summary."""

from __future__ import annotations

import json

import pytest
import torch

from bench import attention as bench
from core import attention
from core.measure import attention_bench
from core.runtime import recorded


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_every_cuda_config_passes_validation(quick):
    """Issue #16: 4 of the 24 CUDA configs used to be refused (batch 16 x heads 32 > 256)."""
    configs = bench.plan(torch.device("cuda"), quick)
    assert len(configs) == (24 if not quick else 6)
    for cfg in configs:
        checked = attention_bench.check_bench_config(cfg, "cuda")
        assert checked.batch * checked.seqs[-1] == bench.TOKENS
        assert checked.heads * checked.head_dim == bench.HIDDEN
    cases, problems = bench.dry_run_cases(configs)
    assert problems == [] and all(c["status"] == bench.NOT_RUN for c in cases)


def test_cuda_plan_puts_the_targets_first_and_naive_only_at_small_n():
    configs = bench.plan(torch.device("cuda"), quick=False)
    targets = [c for c in configs if c.impls == bench.TARGET_IMPLS]
    naive = [c for c in configs if "naive" in c.impls]
    assert configs[: len(targets)] == targets and len(targets) == 20
    assert {(c.head_dim, c.causal) for c in targets} == {(64, False), (64, True), (128, False), (128, True)}
    assert all(c.dtype == "bfloat16" and c.backward for c in configs)
    assert naive and all(c.seqs[-1] in bench.NAIVE_SEQS for c in naive)


def test_the_old_cpu_cap_would_have_refused_the_plan():
    """The same configs on a CPU (cap 256 for batch x heads) are refused: the cap is per device."""
    cfg = bench.plan(torch.device("cuda"), quick=True)[0]
    with pytest.raises(attention.ValidationError, match="batch x heads"):
        attention_bench.check_bench_config(cfg, "cpu")


def test_sweep_plan_is_valid_and_starts_with_the_shipped_table():
    rows, problems = bench.dry_run_sweep()
    assert problems == [] and len(rows) == len(bench.sweep_plan())
    for d in (64, 128):
        base = bench._hopper_base(d)
        fwd = [change for dd, mode, change in bench.sweep_plan() if dd == d and mode == "fwd"]
        assert (fwd[0]["block_m"], fwd[0]["block_n"], fwd[0]["num_warps"]) == (base.block_m, base.block_n,
                                                                            base.num_warps)


def test_a_failing_case_is_recorded_and_the_rest_still_run(monkeypatch, tmp_path):
    calls = []
    real = bench.run_benchmark

    def flaky(cfg, device, deadline=None):
        calls.append(cfg.head_dim)
        if cfg.head_dim == 16:
            raise RuntimeError("kernel crashed (simulated)")
        return real(cfg, device, deadline=deadline)

    tiny = [attention_bench.BenchConfig(seqs=(16,), heads=1, head_dim=d, impls=("sdpa", "sdpa_flash"), backward=True,
                          warmup=0, repeats=2) for d in (16, 32)]
    monkeypatch.setattr(bench, "run_benchmark", flaky)
    written = []
    cases = bench.run_cases(tiny, "cpu", deadline=float("inf"), on_case=lambda c: written.append(len(c)))
    assert calls == [16, 32] and written == [1, 2]
    assert cases[0]["status"].startswith("failed: RuntimeError") and cases[0]["rows"] == []
    assert cases[1]["status"] == "ok" and cases[1]["sdpa_default"] in (None, "FLASH_ATTENTION", "MATH")
    flash = [r for r in cases[1]["rows"] if r["impl"] == "sdpa_flash"]
    assert flash and all(r["status"].startswith("skipped") for r in flash)      # needs CUDA
    timed = [r for r in cases[1]["rows"] if r["impl"] == "sdpa"]
    assert all(r["p20_ms"] <= r["ms"] <= r["p80_ms"] for r in timed)
    assert all("vs_flash" in r and "vs_cudnn" in r for r in cases[1]["rows"])


def test_cases_past_the_budget_are_skipped_not_lost():
    cfg = attention_bench.BenchConfig(seqs=(16,), heads=1, head_dim=16, impls=("sdpa",))
    (case,) = bench.run_cases([cfg], "cpu", deadline=0.0)
    assert case["status"] == "skipped: time budget spent"


def test_main_writes_after_every_case(monkeypatch, tmp_path):
    tiny = [attention_bench.BenchConfig(seqs=(16,), heads=1, head_dim=16, impls=("sdpa", "triton"), warmup=0, repeats=1),
            attention_bench.BenchConfig(seqs=(16,), heads=1, head_dim=16, causal=True, impls=("sdpa",), warmup=0, repeats=1)]
    monkeypatch.setattr(bench, "plan", lambda device, quick: tiny)
    seen = []
    real_write = bench._write

    def spy(cases, sweep_rows, opts, dry_run=False):
        seen.append(len(cases))
        return real_write(cases, sweep_rows, opts, dry_run)

    monkeypatch.setattr(bench, "_write", spy)
    payload = bench.main(["--device", "cpu", "--out", str(tmp_path)])
    assert seen == [1, 2, 2] and len(payload["cases"]) == 2
    doc = json.loads((tmp_path / "attention-cpu.json").read_text())
    assert doc["meta"]["date"] and [c["status"] for c in doc["cases"]] == ["ok", "ok"]
    assert doc["cases"][0]["kernel_path"] == "pointer" and doc["kernel_fallbacks"] == []


def test_dry_run_writes_every_case_not_run(tmp_path):
    payload = bench.main(["--dry-run", "--sweep", "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "attention-cuda.json").read_text())
    assert doc["dry_run"] and payload["dry_run"] and len(doc["cases"]) == 24
    rows = [r for c in doc["cases"] for r in c["rows"]]
    assert rows and all(r["status"] == bench.NOT_RUN and r["ms"] is None for r in rows)
    assert {r["impl"] for r in rows} == {"triton", "sdpa_flash", "sdpa_cudnn", "naive"}
    assert all(r["status"] == bench.NOT_RUN for r in doc["sweep"])


def test_dry_run_fails_when_a_case_could_not_start(monkeypatch, tmp_path):
    bad = [attention_bench.BenchConfig(seqs=(1024,), batch=65, heads=32, head_dim=64, dtype="bfloat16")]
    monkeypatch.setattr(bench, "plan", lambda device, quick: bad)
    with pytest.raises(SystemExit) as stop:
        bench.main(["--dry-run", "--out", str(tmp_path)])
    assert stop.value.code == 1


def test_summary_gives_ratios_to_both_backends_and_the_verdict():
    rows = recorded.compare_rows([
        {"impl": "triton", "n": 4096, "mode": "fwd", "ms": 2.0, "tflops": 300.0, "head_dim": 64, "causal": False,
         "max_err": 4e-3, "status": "ok"},
        {"impl": "sdpa_flash", "n": 4096, "mode": "fwd", "ms": 2.2, "tflops": 270.0, "head_dim": 64, "causal": False},
        {"impl": "sdpa_cudnn", "n": 4096, "mode": "fwd", "ms": 1.8, "tflops": 330.0, "head_dim": 64, "causal": False},
    ])
    case = {"head_dim": 64, "causal": False, "dtype": "bfloat16", "batch": 4, "heads": 32, "seqs": [4096],
            "status": "ok", "rows": rows}
    lines = bench.summarize([case], [])
    assert "1.10x SDPA flash (target 1.0x: met), vs cuDNN 0.90x" in lines[0]
    assert "our max |err| vs float64: 4.00e-03" in lines[1]
