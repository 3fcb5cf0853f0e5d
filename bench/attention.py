"""Benchmark: our Triton FlashAttention-2 vs PyTorch SDPA and naive attention, forward and
forward+backward, in ms and TFLOP/s, with the max error vs a float64 reference.

    python -m bench.attention                 # full sizes on this device
    python -m bench.attention --quick         # smoke run
    python -m bench.attention --sweep         # also time a few kernel block configs (CUDA)

On CUDA (the GPU check): bf16, head_dim 64 and 128, N = 1k..16k, causal and not,
16k tokens per batch (batch = 16384 / N) and 2048 hidden (heads = 2048 / head_dim),
like the FlashAttention-2 paper's Sec. 4.1 set-up; SDPA forced to its flash backend
(PyTorch's FlashAttention-2 kernel). Timing: triton.testing.do_bench, median.
Target (a benchmark, not a test): our forward at least as fast as SDPA's flash
backend, forward+backward at least 0.8x; the summary reports ratio and TFLOP/s.
On a CPU: fp32, small N; our kernel runs in Triton's interpreter and is checked
for correctness only (never timed).
FLOPs: core.attention.attention_flops (4*B*H*N^2*D forward, /2 causal, x3.5 with backward).
Does not handle: fp8, other head dims than those listed, varlen batches.
"""

from __future__ import annotations

import dataclasses
import os
import time

import torch

from bench.common import parser, write_result
from core.attention import (
    BenchConfig,
    attention_flops,
    median_ms,
    recorded_rows,
    run_benchmark,
    speed_ratios,
)
from core.device import pick_device

GPU_CHECK_ARGS = ["--budget-s", "110", "--sweep"]   # + start-up; the sweep only uses what is left
GPU_CHECK_TIMEOUT_S = 150
TARGETS = {"fwd": 1.0, "fwd+bwd": 0.8}       # our speed / SDPA flash speed, on an H200 in bf16
TOKENS, HIDDEN = 16384, 2048                  # batch * N and heads * head_dim on CUDA


def plan(device: torch.device, quick: bool) -> list[BenchConfig]:
    """One BenchConfig per (head_dim, causal, N)."""
    configs = []
    if device.type == "cuda":
        dims, seqs = ((64,), (1024, 4096)) if quick else ((64, 128), (1024, 2048, 4096, 8192, 16384))
        for d in dims:
            for causal in (False, True):
                for n in seqs:
                    impls = ("triton", "sdpa", "naive") if n <= 4096 else ("triton", "sdpa")
                    configs.append(BenchConfig(seqs=(n,), batch=max(1, TOKENS // n), heads=HIDDEN // d,
                                               head_dim=d, dtype="bfloat16", causal=causal, backward=True,
                                               impls=impls, sdpa_backend="flash"))
        return configs
    dims, seqs = ((32,), (64, 128)) if quick else ((64,), (128, 256, 512, 1024))
    for d in dims:
        for causal in (False, True):
            configs.append(BenchConfig(seqs=seqs, batch=1, heads=4, head_dim=d, dtype="float32",
                                       causal=causal, backward=True, warmup=1, repeats=5))
    return configs


def run_cases(configs: list[BenchConfig], device, deadline: float) -> list[dict]:
    cases = []
    for i, cfg in enumerate(configs):
        started = time.monotonic()
        rows = run_benchmark(cfg, device, deadline=deadline)
        cases.append({"head_dim": cfg.head_dim, "causal": cfg.causal, "dtype": cfg.dtype, "batch": cfg.batch,
                      "heads": cfg.heads, "sdpa_backend": cfg.sdpa_backend,
                      "rows": [dataclasses.asdict(r) for r in rows]})
        print(f"[{i + 1}/{len(configs)}] d={cfg.head_dim} causal={cfg.causal} N={list(cfg.seqs)} "
              f"({time.monotonic() - started:.1f} s)", flush=True)
        for r in rows:
            print(f"   {r.impl:7s} {r.mode:8s} N={r.n:6d} {_fmt(r.ms, '8.3f')} ms {_fmt(r.tflops, '8.3g')} TFLOP/s "
                  f"err {_fmt(r.max_err, '.1e')} grad err {_fmt(r.grad_err, '.1e')}  {r.status}", flush=True)
    return cases


def _fmt(x, spec: str) -> str:
    return "—" if x is None else format(x, spec)


SWEEP_FWD = ((128, 64, 4, 3), (128, 128, 8, 3), (128, 64, 8, 3), (64, 64, 4, 4))   # BLOCK_M, BLOCK_N, warps, stages
SWEEP_BWD = ((32, 128, 128, 32, 4, 3), (32, 128, 128, 32, 8, 3), (32, 64, 64, 32, 4, 3))  # m1, n1, m2, n2, warps, stages


def sweep(device, deadline: float, n: int = 4096, tokens: int = TOKENS, hidden: int = HIDDEN) -> list[dict]:
    """Time a few forward/backward block configs at N=4096 (bf16, non-causal) per head_dim,
    each with its max |difference| to PyTorch SDPA (output, and gradients for fwd+bwd)."""
    from kernels.flash_attention import block_sizes, with_blocks

    fwd_keys = ("block_m", "block_n", "num_warps", "num_stages")
    bwd_keys = ("bwd_block_m1", "bwd_block_n1", "bwd_block_m2", "bwd_block_n2", "bwd_num_warps", "bwd_num_stages")
    changes = ([("fwd", dict(zip(fwd_keys, c, strict=True))) for c in SWEEP_FWD]
               + [("fwd+bwd", dict(zip(bwd_keys, c, strict=True))) for c in SWEEP_BWD])
    out = []
    for d in (64, 128):
        b, h = max(1, tokens // n), max(1, hidden // d)
        tensors = [torch.randn(b, h, n, d, device=device, dtype=torch.bfloat16) for _ in range(4)]
        ref = _sdpa_reference(*tensors)
        base = block_sizes(d, torch.bfloat16, device)
        for mode, change in changes:
            if time.monotonic() > deadline:
                return out
            row = {"head_dim": d, "n": n, "mode": mode, **change, "ms": None, "tflops": None,
                   "max_diff_vs_sdpa": None, "status": "ok"}
            try:
                cfg = with_blocks(base, **change)
                row["max_diff_vs_sdpa"] = _diff_to(ref, tensors, cfg, mode)
                row["ms"] = _time_config(tensors, cfg, mode, device)
                row["tflops"] = attention_flops(b, h, n, d, backward=mode != "fwd") / row["ms"] / 1e9
            except Exception as exc:  # a config may not fit shared memory on this GPU
                row["status"] = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
            out.append(row)
            print(f"   sweep d={d} {mode:8s} {change} -> {_fmt(row['tflops'], '.1f')} TFLOP/s, max diff vs SDPA "
                  f"{_fmt(row['max_diff_vs_sdpa'], '.1e')} {row['status']}", flush=True)
    return out


def _sdpa_reference(q, k, v, do) -> tuple[torch.Tensor, ...]:
    """SDPA's output and gradients (the yardstick for the swept configs)."""
    import torch.nn.functional as F

    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*leaves)
    out.backward(do)
    return (out.detach(), *(t.grad for t in leaves))


def _diff_to(ref, tensors, cfg, mode: str) -> float:
    from kernels.flash_attention import flash_attention_forward

    q, k, v, do = tensors
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = flash_attention_forward(*leaves, config=cfg)
    got = [out.detach()]
    if mode != "fwd":
        out.backward(do)
        got += [t.grad for t in leaves]
    return max(float((a.float() - b.float()).abs().max()) for a, b in zip(got, ref, strict=False))


def _time_config(tensors, cfg, mode: str, device) -> float:
    from kernels.flash_attention import flash_attention_forward as fn

    q, k, v, do = tensors
    if mode == "fwd":
        with torch.no_grad():
            return median_ms(lambda: fn(q, k, v, config=cfg), device)
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    return median_ms(lambda: fn(*leaves, config=cfg).backward(do), device, grad_to_none=leaves)


def summarize(cases: list[dict], sweep_rows: list[dict]) -> list[str]:
    """Short lines: ours vs SDPA per case with the target verdict; the best swept configs."""
    lines = []
    rows = [r for case in cases for r in recorded_rows({"cases": [case]})]
    for r in speed_ratios(rows):
        target = TARGETS[r["mode"]]
        verdict = "met" if r["ratio"] >= target else "NOT met"
        lines.append(f"d={r['head_dim']} {'causal' if r['causal'] else 'full'} N={r['n']} {r['mode']}: "
                     f"ours {r['tflops']:.1f} vs SDPA {r['baseline_tflops']:.1f} TFLOP/s = {r['ratio']:.2f}x "
                     f"(target {target:.1f}x: {verdict})")
    errs = [r for r in rows if r.get("impl") == "triton" and r.get("max_err") is not None]
    if errs:
        worst = max(errs, key=lambda r: r["max_err"])
        lines.append(f"our max |err| vs float64: {worst['max_err']:.2e} (d={worst['head_dim']}, N={worst['n']}, "
                     f"{worst['dtype']}); status of our rows: {sorted({r['status'] for r in rows if r['impl'] == 'triton'})}")
    for d in sorted({r["head_dim"] for r in sweep_rows}):
        for mode in ("fwd", "fwd+bwd"):
            timed = [r for r in sweep_rows if r["head_dim"] == d and r["mode"] == mode and r["tflops"]]
            if timed:
                best = max(timed, key=lambda r: r["tflops"])
                knobs = {k: v for k, v in best.items()
                         if k not in ("head_dim", "n", "mode", "ms", "tflops", "status", "max_diff_vs_sdpa")}
                lines.append(f"sweep d={d} {mode}: best {best['tflops']:.1f} TFLOP/s with {knobs} "
                             f"(max diff vs SDPA {best['max_diff_vs_sdpa']:.1e})")
    return lines


def main(argv=None) -> dict:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=1800.0, help="stop starting new measurements after this")
    ap.add_argument("--sweep", action="store_true", help="also time a few block configs (CUDA only)")
    opts = ap.parse_args(argv)
    device = pick_device(opts.device)
    deadline = time.monotonic() + opts.budget_s
    cases = run_cases(plan(device, opts.quick), device, deadline)
    payload = _write(cases, [], opts)                 # written before the sweep: a timeout keeps it
    if opts.sweep and device.type == "cuda":
        payload = _write(cases, sweep(device, deadline), opts)
    print("\n".join(payload["summary"]))
    return payload


def _write(cases: list[dict], sweep_rows: list[dict], opts) -> dict:
    payload = {"cases": cases, "sweep": sweep_rows, "targets": TARGETS, "quick": opts.quick,
               "load_avg": list(os.getloadavg()), "cpu_count": os.cpu_count(),   # CPU timings are load-sensitive
               "summary": summarize(cases, sweep_rows)}
    path = write_result("attention", payload, out_dir=opts.out, device=opts.device)
    print(f"wrote {path}", flush=True)
    return payload


if __name__ == "__main__":
    main()
