"""Benchmark: our Triton FlashAttention-2 vs PyTorch SDPA (flash and cuDNN backends) and naive
attention, forward and forward+backward, in ms and TFLOP/s, with the spread, the speed
relative to each SDPA backend and the max error (output and gradients) vs float64.

    python -m bench.attention                 # full sizes on this device
    python -m bench.attention --quick         # smoke run
    python -m bench.attention --sweep         # also time alternative kernel block configs (CUDA)
    python -m bench.attention --dry-run       # validate the whole CUDA plan here; run nothing

On CUDA (the GPU check): bf16, head_dim 64 and 128, N = 1k..16k, causal and not,
16k tokens per batch (batch = 16384 / N) and 2048 hidden (heads = 2048 / head_dim),
like the FlashAttention-2 paper's Sec. 4.1 set-up. Each (head_dim, causal, N) is one
case with three rows per pass: ours, SDPA forced to its flash backend (PyTorch's
FlashAttention-2 kernel) and SDPA forced to cuDNN; the backend SDPA picks by itself is
recorded per case. The target cases come first, naive attention last and only at N=1k.
Each case is run, caught and written on its own (status and reason), so a crash or a
timeout keeps what was measured. The block-size sweep has its own time budget.
Timing: triton.testing.do_bench, median with 20th/80th percentiles.
Target (a benchmark, not a test): our forward at least as fast as SDPA's flash
backend, forward+backward at least 0.8x; the ratio to cuDNN is reported beside it.
On a CPU: fp32, small N; our kernel runs in Triton's interpreter and is checked
for correctness only (never timed).
FLOPs: core.attention.attention_flops (4*B*H*N^2*D forward, /2 causal, x3.5 with backward).
Does not handle: fp8, other head dims than those listed, varlen batches.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend

from bench.common import parser, write_result
from core.attention import attention_flops
from core.measure.attention_bench import (
    BENCH_DTYPES,
    BenchConfig,
    BenchRow,
    check_bench_config,
    median_ms,
    run_benchmark,
    sdpa_default_backend,
)
from core.runtime.device import pick_device
from core.runtime.recorded import compare_rows, recorded_rows
from kernels.flash_attention import (
    block_sizes,
    check_launch,
    fallbacks,
    flash_attention_forward,
    forward_path,
    with_blocks,
)

GPU_CHECK_ARGS = ["--budget-s", "150", "--sweep", "--sweep-budget-s", "50"]
GPU_CHECK_TIMEOUT_S = 240                     # cases 150 s + sweep 50 s + start-up and compiles
TARGETS = {"fwd": 1.0, "fwd+bwd": 0.8}       # our speed / SDPA flash speed, on an H200 in bf16
TOKENS, HIDDEN = 16384, 2048                  # batch * N and heads * head_dim on CUDA
TARGET_IMPLS = ("triton", "sdpa_flash", "sdpa_cudnn")
NAIVE_SEQS = (1024,)                          # naive attention (N x N in memory) only here
NOT_RUN = "not run (dry run)"


def plan(device: torch.device, quick: bool) -> list[BenchConfig]:
    """The cases, most needed first. CUDA: one BenchConfig per (head_dim, causal, N) with the
    target rows, then naive attention at small N; CPU: one per (head_dim, causal)."""
    if torch.device(device).type == "cuda":
        dims, seqs = ((64,), (1024, 4096)) if quick else ((64, 128), (1024, 2048, 4096, 8192, 16384))
        shapes = [(d, causal, n) for d in dims for causal in (False, True) for n in seqs]
        targets = [_cuda_config(d, causal, n, TARGET_IMPLS) for d, causal, n in shapes]
        naive = [_cuda_config(d, causal, n, ("naive",)) for d, causal, n in shapes if n in NAIVE_SEQS]
        return targets + naive
    dims, seqs = ((32,), (64, 128)) if quick else ((64,), (128, 256, 512, 1024))
    return [BenchConfig(seqs=seqs, batch=1, heads=4, head_dim=d, dtype="float32", causal=causal,
                        backward=True, warmup=1, repeats=5) for d in dims for causal in (False, True)]


def _cuda_config(d: int, causal: bool, n: int, impls: tuple[str, ...]) -> BenchConfig:
    return BenchConfig(seqs=(n,), batch=max(1, TOKENS // n), heads=HIDDEN // d, head_dim=d, dtype="bfloat16",
                       causal=causal, backward=True, impls=impls, sdpa_backend="flash")


def _case_doc(cfg: BenchConfig, status: str, rows: list[dict], **extra) -> dict:
    return {"head_dim": cfg.head_dim, "causal": cfg.causal, "dtype": cfg.dtype, "batch": cfg.batch,
            "heads": cfg.heads, "seqs": list(cfg.seqs), "impls": list(cfg.impls),
            "sdpa_backend": cfg.sdpa_backend, "status": status, "rows": rows, **extra}


def run_case(cfg: BenchConfig, device, deadline: float) -> dict:
    """One case, measured or with the reason it was not: never raises (a KeyboardInterrupt does)."""
    started = time.monotonic()
    if time.monotonic() > deadline:
        return _case_doc(cfg, "skipped: time budget spent", [])
    try:
        rows = [dataclasses.asdict(r) for r in run_benchmark(cfg, device, deadline=deadline)]
        extra = _case_facts(cfg, device)
    except Exception as exc:   # a refused config or a crash is this case's result, not the run's
        return _case_doc(cfg, f"failed: {type(exc).__name__}: {str(exc)[:300]}", [],
                         seconds=round(time.monotonic() - started, 1))
    rows = compare_rows([{**r, "head_dim": cfg.head_dim, "causal": cfg.causal} for r in rows])
    return _case_doc(cfg, "ok", rows, seconds=round(time.monotonic() - started, 1), **extra)


def _case_facts(cfg: BenchConfig, device) -> dict:
    """The backend SDPA picks by itself, and the forward path our kernel takes, for this case."""
    dev = torch.device(device)
    shape = (cfg.batch, cfg.heads, cfg.seqs[-1], cfg.head_dim)
    q = torch.empty(shape, device=dev, dtype=BENCH_DTYPES[cfg.dtype])
    facts = {"sdpa_default": sdpa_default_backend(q, q, q, cfg.causal), "kernel_path": None}
    if "triton" in cfg.impls:
        try:
            check_launch(shape, q.dtype, dev.type)
            facts["kernel_path"] = forward_path(q, q, q, cfg.causal)
        except Exception as exc:   # e.g. over the interpreter's size cap: say so
            facts["kernel_path"] = f"n/a: {str(exc)[:120]}"
    return facts


def run_cases(configs: list[BenchConfig], device, deadline: float, on_case=None) -> list[dict]:
    """Every case in order; ``on_case(cases)`` after each (the caller writes the file)."""
    cases = []
    for i, cfg in enumerate(configs):
        case = run_case(cfg, device, deadline)
        cases.append(case)
        _print_case(i, len(configs), case)
        if on_case is not None:
            on_case(cases)
    return cases


def _print_case(i: int, total: int, case: dict) -> None:
    print(f"[{i + 1}/{total}] d={case['head_dim']} causal={case['causal']} N={case['seqs']} "
          f"{case['status']} ({case.get('seconds', 0.0)} s) SDPA default: {case.get('sdpa_default')}, "
          f"our path: {case.get('kernel_path')}", flush=True)
    for r in case["rows"]:
        print(f"   {r['impl']:10s} {r['mode']:8s} N={r['n']:6d} {_fmt(r['ms'], '8.3f')} ms "
              f"[{_fmt(r.get('p20_ms'), '.3f')}, {_fmt(r.get('p80_ms'), '.3f')}] {_fmt(r['tflops'], '7.1f')} "
              f"TFLOP/s vs flash {_fmt(r.get('vs_flash'), '.2f')} vs cuDNN {_fmt(r.get('vs_cudnn'), '.2f')} "
              f"err {_fmt(r['max_err'], '.1e')} grad err {_fmt(r['grad_err'], '.1e')}  {r['status']}", flush=True)


def _fmt(x, spec: str) -> str:
    return "—" if x is None else format(x, spec)


# ----------------------------------------------------------------------------- dry run
def dry_run_cases(configs: list[BenchConfig]) -> tuple[list[dict], list[str]]:
    """Validate every case as the CUDA run would (no tensors, no kernels): the cases marked
    not run, and the problems found (empty: the real run can start every case)."""
    cases, problems = [], []
    for cfg in configs:
        try:
            checked = check_bench_config(cfg, "cuda")
            _check_sdpa_backends(checked.impls)
            for n in checked.seqs:
                shape = (checked.batch, checked.heads, n, checked.head_dim)
                if "triton" in checked.impls:
                    check_launch(shape, BENCH_DTYPES[checked.dtype], "cuda")
                    block_sizes(checked.head_dim, BENCH_DTYPES[checked.dtype], "cuda", (9, 0))
            status = NOT_RUN
        except Exception as exc:   # every refusal is listed, not just the first
            status = f"refused: {type(exc).__name__}: {exc}"
            problems.append(f"d={cfg.head_dim} causal={cfg.causal} N={list(cfg.seqs)}: {exc}")
        rows = compare_rows([{**_not_run_row(impl, n, mode, status), "head_dim": cfg.head_dim,
                              "causal": cfg.causal} for n in cfg.seqs for impl in cfg.impls
                             for mode in (("fwd", "fwd+bwd") if cfg.backward else ("fwd",))])
        cases.append(_case_doc(cfg, status, rows, sdpa_default=None, kernel_path=None))
    return cases, problems


def _check_sdpa_backends(impls) -> None:
    """The forced SDPA backends exist in this torch (the GPU machine's may be older)."""
    for impl, backend in (("sdpa_flash", "FLASH_ATTENTION"), ("sdpa_cudnn", "CUDNN_ATTENTION")):
        if impl in impls and not hasattr(SDPBackend, backend):
            raise RuntimeError(f"this torch ({torch.__version__}) has no SDPBackend.{backend}")


def _not_run_row(impl: str, n: int, mode: str, status: str) -> dict:
    return dataclasses.asdict(BenchRow(impl, n, mode, None, None, None, None, None, status))


def dry_run_sweep() -> tuple[list[dict], list[str]]:
    """The sweep's configs checked (block rules, launch shapes) without running them."""
    rows, problems = [], []
    for d, mode, change in sweep_plan():
        row = _sweep_row(d, SWEEP_N, mode, change, NOT_RUN)
        try:
            with_blocks(_hopper_base(d), **change)
            check_launch((max(1, TOKENS // SWEEP_N), HIDDEN // d, SWEEP_N, d), torch.bfloat16, "cuda")
        except Exception as exc:
            row["status"] = f"refused: {exc}"
            problems.append(f"sweep d={d} {change}: {exc}")
        rows.append(row)
    return rows, problems


# ----------------------------------------------------------------------------- block-size sweep
SWEEP_N = 4096
# Forward: (BLOCK_M, BLOCK_N, warps, stages, TMA, warp-specialized); the shipped table first.
SWEEP_FWD = {
    64: ((128, 64, 4, 3, True, False), (128, 64, 4, 3, False, False), (64, 64, 4, 3, True, False),
         (128, 64, 8, 3, True, False), (128, 64, 4, 3, True, True)),
    128: ((64, 64, 4, 3, True, False), (128, 64, 8, 3, True, False), (128, 128, 8, 2, True, False),
          (64, 64, 4, 3, False, False), (64, 64, 4, 3, True, True)),
}
# Backward: (dK/dV m1, n1, dQ m2, n2, warps, stages); the shipped table first.
SWEEP_BWD = {
    64: ((16, 128, 128, 32, 8, 4), (16, 128, 128, 32, 4, 4), (32, 128, 128, 32, 4, 4), (32, 128, 128, 32, 8, 3)),
    128: ((16, 128, 128, 32, 8, 3), (32, 128, 128, 32, 8, 3), (16, 64, 64, 16, 4, 3)),
}
FWD_KEYS = ("block_m", "block_n", "num_warps", "num_stages", "tma", "warp_specialize")
BWD_KEYS = ("bwd_block_m1", "bwd_block_n1", "bwd_block_m2", "bwd_block_n2", "bwd_num_warps", "bwd_num_stages")


def sweep_plan() -> list[tuple[int, str, dict]]:
    """(head_dim, mode, KernelConfig changes) for every swept config, round-robin over the four
    lists (d 64/128, fwd and fwd+bwd), so a short budget still compares each table with its
    first alternatives."""
    lists = [[(d, "fwd", dict(zip(FWD_KEYS, c, strict=True))) for c in SWEEP_FWD[d]] for d in (64, 128)]
    lists += [[(d, "fwd+bwd", dict(zip(BWD_KEYS, c, strict=True))) for c in SWEEP_BWD[d]] for d in (64, 128)]
    return [items[i] for i in range(max(map(len, lists))) for items in lists if i < len(items)]


def _hopper_base(d: int):
    return block_sizes(d, torch.bfloat16, "cuda", (9, 0))


def _sweep_row(d: int, n: int, mode: str, change: dict, status: str) -> dict:
    return {"head_dim": d, "n": n, "mode": mode, **change, "ms": None, "p20_ms": None, "p80_ms": None,
            "tflops": None, "max_diff_vs_sdpa": None, "kernel_path": None, "status": status}


def sweep(device, budget_s: float, n: int = SWEEP_N, tokens: int = TOKENS, hidden: int = HIDDEN) -> list[dict]:
    """Time the swept forward/backward configs at N=4096 (bf16, non-causal) per head_dim, each
    with its max |difference| to PyTorch SDPA (output, and gradients for fwd+bwd). Has its own
    ``budget_s``; configs after it are recorded as skipped."""
    deadline, out, inputs = time.monotonic() + budget_s, [], {}
    for d, mode, change in sweep_plan():
        row = _sweep_row(d, n, mode, change, "ok")
        if time.monotonic() > deadline:
            row["status"] = "skipped: sweep budget spent"
            out.append(row)
            continue
        try:
            if d not in inputs:         # ~0.5 GB per head_dim (bf16 inputs, SDPA's output and grads)
                b, h = max(1, tokens // n), max(1, hidden // d)
                tensors = [torch.randn(b, h, n, d, device=device, dtype=torch.bfloat16) for _ in range(4)]
                inputs[d] = (tensors, _sdpa_reference(*tensors), b, h)
            _time_swept(row, change, *inputs[d], mode, device)
        except Exception as exc:  # a config may not compile or fit shared memory on this GPU
            row["status"] = f"failed: {type(exc).__name__}: {str(exc)[:160]}"
        out.append(row)
        print(f"   sweep d={d} {mode:8s} {change} -> {_fmt(row['tflops'], '.1f')} TFLOP/s, max diff vs SDPA "
              f"{_fmt(row['max_diff_vs_sdpa'], '.1e')}, path {row['kernel_path']}: {row['status']}", flush=True)
    return out


def _time_swept(row: dict, change: dict, tensors, ref, b: int, h: int, mode: str, device) -> None:
    d, n = row["head_dim"], row["n"]
    cfg = with_blocks(_hopper_base(d), **change)
    row["max_diff_vs_sdpa"] = _diff_to(ref, tensors, cfg, mode)
    row["kernel_path"] = forward_path(*tensors[:3], config=cfg)
    row["ms"] = _time_config(tensors, cfg, mode, device)
    row["tflops"] = attention_flops(b, h, n, d, backward=mode != "fwd") / row["ms"] / 1e9


def _sdpa_reference(q, k, v, do) -> tuple[torch.Tensor, ...]:
    """SDPA's output and gradients (the yardstick for the swept configs)."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*leaves)
    out.backward(do)
    return (out.detach(), *(t.grad for t in leaves))


def _diff_to(ref, tensors, cfg, mode: str) -> float:
    q, k, v, do = tensors
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = flash_attention_forward(*leaves, config=cfg)
    got = [out.detach()]
    if mode != "fwd":
        out.backward(do)
        got += [t.grad for t in leaves]
    return max(float((a.float() - b.float()).abs().max()) for a, b in zip(got, ref, strict=False))


def _time_config(tensors, cfg, mode: str, device) -> float:
    q, k, v, do = tensors
    if mode == "fwd":
        with torch.no_grad():
            return median_ms(lambda: flash_attention_forward(q, k, v, config=cfg), device)
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    return median_ms(lambda: flash_attention_forward(*leaves, config=cfg).backward(do), device,
                     grad_to_none=leaves)


# ----------------------------------------------------------------------------- summary and main
def summarize(cases: list[dict], sweep_rows: list[dict]) -> list[str]:
    """Short lines: ours vs SDPA flash (target verdict) and cuDNN per case; the best swept configs."""
    rows = [r for case in cases for r in recorded_rows({"cases": [case]})]
    lines = [_ratio_line(r) for r in rows if r.get("impl") == "triton" and r.get("vs_flash") is not None]
    errs = [r for r in rows if r.get("impl") == "triton" and r.get("max_err") is not None]
    if errs:
        worst = max(errs, key=lambda r: r["max_err"])
        lines.append(f"our max |err| vs float64: {worst['max_err']:.2e} (d={worst['head_dim']}, N={worst['n']}, "
                     f"{worst['dtype']}); status of our rows: {sorted({r['status'] for r in errs})}")
    failed = [c for c in cases if c.get("status") not in ("ok", NOT_RUN)]
    if failed:
        lines.append(f"{len(failed)} of {len(cases)} cases not measured: "
                     + "; ".join(f"d={c['head_dim']} N={c['seqs']} {c['status'][:80]}" for c in failed[:4]))
    return lines + _sweep_lines(sweep_rows)


def _ratio_line(r: dict) -> str:
    target = TARGETS[r["mode"]]
    verdict = "met" if r["vs_flash"] >= target else "NOT met"
    cudnn = f", vs cuDNN {r['vs_cudnn']:.2f}x" if r.get("vs_cudnn") is not None else ""
    return (f"d={r['head_dim']} {'causal' if r['causal'] else 'full'} N={r['n']} {r['mode']}: ours "
            f"{r['tflops']:.1f} TFLOP/s = {r['vs_flash']:.2f}x SDPA flash (target {target:.1f}x: {verdict}){cudnn}")


def _sweep_lines(sweep_rows: list[dict]) -> list[str]:
    lines = []
    for d in sorted({r["head_dim"] for r in sweep_rows}):
        for mode in ("fwd", "fwd+bwd"):
            timed = [r for r in sweep_rows if r["head_dim"] == d and r["mode"] == mode and r["tflops"]]
            if timed:
                best = max(timed, key=lambda r: r["tflops"])
                knobs = {k: best[k] for k in (FWD_KEYS if mode == "fwd" else BWD_KEYS)}
                lines.append(f"sweep d={d} {mode}: best {best['tflops']:.1f} TFLOP/s with {knobs} "
                             f"(max diff vs SDPA {best['max_diff_vs_sdpa']:.1e})")
    return lines


def main(argv=None) -> dict:
    ap = parser(__doc__.splitlines()[0], dry_run=True)
    ap.add_argument("--budget-s", type=float, default=1800.0, help="stop starting new cases after this")
    ap.add_argument("--sweep", action="store_true", help="also time alternative block configs (CUDA only)")
    ap.add_argument("--sweep-budget-s", type=float, default=120.0, help="the sweep's own time budget")
    opts = ap.parse_args(argv)
    if opts.dry_run:
        return _dry_run(opts)
    device = pick_device(opts.device)
    deadline = time.monotonic() + opts.budget_s
    cases = run_cases(plan(device, opts.quick), device, deadline, on_case=lambda c: _write(c, [], opts))
    sweep_rows = sweep(device, opts.sweep_budget_s) if opts.sweep and device.type == "cuda" else []
    payload = _write(cases, sweep_rows, opts)
    print("\n".join(payload["summary"]))
    return payload


def _dry_run(opts) -> dict:
    """The CUDA plan (and sweep with --sweep) validated and written with every case not run;
    exits 1 when some case could not start."""
    cases, problems = dry_run_cases(plan(torch.device("cuda"), opts.quick))
    sweep_rows, sweep_problems = dry_run_sweep() if opts.sweep else ([], [])
    payload = _write(cases, sweep_rows, opts, dry_run=True)
    problems += sweep_problems
    print(f"dry run: {len(cases)} CUDA cases and {len(sweep_rows)} sweep configs checked, "
          f"{len(problems)} refused", flush=True)
    for line in problems:
        print(f"  REFUSED {line}", flush=True)
    if problems:
        raise SystemExit(1)
    return payload


def _write(cases: list[dict], sweep_rows: list[dict], opts, dry_run: bool = False) -> dict:
    payload = {"cases": cases, "sweep": sweep_rows, "targets": TARGETS, "quick": opts.quick,
               "dry_run": dry_run, "load_avg": list(os.getloadavg()), "cpu_count": os.cpu_count(),
               "summary": summarize(cases, sweep_rows)}

    payload["kernel_fallbacks"] = fallbacks()        # TMA / warp-specialized paths that failed here
    out = opts.out
    if dry_run and out is None:           # never over a recorded result in bench/results/
        out = Path(tempfile.mkdtemp(prefix="atlas-dry-run-"))
    path = write_result("attention", payload, out_dir=out, device=opts.device,
                        stem="attention-cuda" if dry_run else None)
    print(f"wrote {path}", flush=True)
    return payload


if __name__ == "__main__":
    main()
