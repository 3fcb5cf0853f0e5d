"""Benchmark: RNN, LSTM, GRU and a causal Transformer, time versus sequence length and in generation.

    python -m bench.sequence_models                 # T = 64 .. 4096, batch 8, 100 K parameters
    python -m bench.sequence_models --quick         # tiny smoke run
    python -m bench.sequence_models --threads 1     # CPU: one torch thread

Models are freshly initialised at one parameter budget (core.models.sequence_models.
configs_for_budget) and fed random token ids: timing needs no text, so this
runs on the GPU machine without gensim. Per point: warm-up, repeats, median
(core.measure.timing.time_fn: CUDA events on a GPU). Analytic FLOPs and the number of
sequential steps are reported beside the times, not mixed into them.
Generation: greedy tokens from a 1-token prompt; RNNs carry their state, the
Transformer uses a KV cache or recomputes the prefix.
References: Vaswani et al. 2017, Sec. 4 and Table 1; Appleyard et al. 2016 (cuDNN RNNs).
"""

from __future__ import annotations

import torch

from bench.common import parser, write_and_report
from core.measure.sequence_timing import (
    GenerationSpec,
    TimingSpec,
    generation_speed,
    time_vs_length,
)
from core.models.sequence_models import configs_for_budget, describe, param_count
from core.runtime.device import pick_device

GPU_CHECK_ARGS = ["--lengths", "64,256,1024,4096,16384", "--batch", "16", "--budget", "400000",
                  "--gen-tokens", "64,256,1024", "--repeats", "2", "--max-point-s", "3",
                  "--time-limit-s", "25"]
GPU_CHECK_TIMEOUT_S = 90


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def _args(argv):
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="64,256,1024,4096", help="sequence lengths T")
    ap.add_argument("--batch", type=int, default=8, help="sequences per timed call")
    ap.add_argument("--budget", type=int, default=100_000, help="parameters per model")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--gen-tokens", default="64,256,1024", help="tokens generated per call")
    ap.add_argument("--gen-batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="CPU torch threads (default: all)")
    ap.add_argument("--max-point-s", type=float, default=5.0,
                    help="a slower point stops the larger sizes of that model")
    ap.add_argument("--time-limit-s", type=float, default=600.0, help="per section")
    args = ap.parse_args(argv)
    if args.quick:
        args.lengths, args.batch, args.budget, args.gen_tokens = "16,32", 2, 5_000, "8"
        args.repeats = 1
    return args


def main(argv=None) -> dict:
    args = _args(argv)
    device = str(pick_device(args.device))
    configs = configs_for_budget(args.budget, args.layers)
    spec = TimingSpec(lengths=_ints(args.lengths), batch=args.batch, repeats=args.repeats,
                      max_point_s=args.max_point_s, threads=args.threads)
    gen_spec = GenerationSpec(n_tokens=_ints(args.gen_tokens), batch=args.gen_batch,
                              repeats=args.repeats, max_point_s=args.max_point_s, threads=args.threads)
    say = lambda f, m: print(f"  [{100 * f:3.0f}%] {m}", flush=True)  # noqa: E731
    print(f"time vs length on {device}", flush=True)
    timing = time_vs_length(configs, spec, device, progress=say, time_limit_s=args.time_limit_s)
    print(f"generation on {device}", flush=True)
    generation = generation_speed(configs, gen_spec, device, progress=say,
                                  time_limit_s=args.time_limit_s)
    payload = {
        "config": {"budget": args.budget, "layers": args.layers, "batch": args.batch,
                   "gen_batch": args.gen_batch, "repeats": args.repeats, "threads": args.threads,
                   "threads_label": _threads_label(device, args.threads), "quick": args.quick},
        "models": {k: {"describe": describe(c), "params": param_count(c)} for k, c in configs.items()},
        "timing": timing,
        "generation": generation,
        "summary": summary_lines(timing, generation),
    }
    write_and_report("sequence_models", payload, out_dir=args.out, device=device)
    return payload


def _threads_label(device: str, threads: int | None) -> str:
    if not device.startswith("cpu"):
        return "GPU"
    n = threads or torch.get_num_threads()
    return f"{n} CPU thread{'s' if n > 1 else ''}"


def summary_lines(timing: list[dict], generation: list[dict]) -> list[str]:
    """Short lines: the largest measured T per mode, the crossover, and generation speed."""
    lines = []
    for mode in dict.fromkeys(r["mode"] for r in timing):
        rows = [r for r in timing if r["mode"] == mode and r["median_ms"] is not None]
        if not rows:
            continue
        T = max(r["T"] for r in rows)
        at_T = sorted((r for r in rows if r["T"] == T), key=lambda r: r["median_ms"])
        lines.append(f"{mode}, T={T}: " + ", ".join(f"{r['model']} {r['median_ms']:.1f} ms"
                                                    for r in at_T))
        lines.append(f"{mode}: {_crossover(rows)}")
    longest = max((r["n_tokens"] for r in generation if r["tokens_per_s"]), default=None)
    if longest:
        best = [r for r in generation if r["n_tokens"] == longest and r["tokens_per_s"]]
        lines.append(f"generate {longest} tokens: " + ", ".join(
            f"{r['model']} ({r['mode']}) {r['tokens_per_s']:,.0f} tok/s" for r in best))
    return lines


def _crossover(rows: list[dict]) -> str:
    """The smallest T from which the Transformer beats every recurrent model (if any)."""
    lengths = sorted({r["T"] for r in rows})
    wins = []
    for T in lengths:
        at = {r["kind"]: r["median_ms"] for r in rows if r["T"] == T}
        rnn_best = min((v for k, v in at.items() if k != "transformer"), default=None)
        if "transformer" in at and rnn_best is not None:
            wins.append((T, at["transformer"] < rnn_best))
    if not wins:
        return "no comparable points"
    for i, (T, _) in enumerate(wins):
        if all(w for _, w in wins[i:]):
            return f"Transformer fastest from T={T} on (measured up to T={wins[-1][0]})"
    return f"a recurrent model is fastest at T={wins[-1][0]}"


if __name__ == "__main__":
    main()
