"""Benchmark: train the MTP model, then measure self-speculative decoding against plain greedy.

    python -m bench.mtp            # 300 steps, default model, 4 held-out prompts x 120 characters
    python -m bench.mtp --quick    # 40 steps, small model (smoke run / GPU check)

Reports per-depth held-out accuracy, training throughput (characters/s),
tokens per main-model pass for 0..D drafted tokens, acceptance per depth and
wall times of plain vs speculative decoding (median over prompts). The
analytic count (tokens per main pass) is kept apart from the timings.
Prompts are the starts of held-out Wikipedia windows (last 10 % of the sample).
Not part of the GPU check: the corpus comes from gensim's test data, which the
GPU machine does not have.
"""

from __future__ import annotations

import statistics

from bench.common import parser, write_and_report
from core.models import mtp
from core.runtime.device import pick_device


def _prompts(count: int, chars: int, corpus_chars: int) -> list[str]:
    _, val = mtp.corpus_ids(corpus_chars)
    windows = mtp.even_windows(val, count, chars)
    return [mtp.decode(w.tolist()) for w in windows]


def _decode_runs(trained, prompts: list[str], new: int) -> dict:
    runs = [mtp.compare_decoding(trained, p, new) for p in prompts]
    D = trained.config.mtp_depth
    by_drafts = {d: statistics.median(dict(r.by_drafts)[d] for r in runs) for d in range(D + 1)}
    proposed = [sum(r.speculative.proposed[k] for r in runs) for k in range(D)]
    accepted = [sum(r.speculative.accepted[k] for r in runs) for k in range(D)]
    return {
        "tokens_per_pass_by_drafts": by_drafts,
        "acceptance": [a / p if p else None for a, p in zip(accepted, proposed, strict=True)],
        "identical": all(r.identical for r in runs),
        "plain_ms_median": 1000 * statistics.median(r.plain.seconds for r in runs),
        "speculative_ms_median": 1000 * statistics.median(r.speculative.seconds for r in runs),
        "speculative_main_ms_median": 1000 * statistics.median(r.speculative.main_seconds for r in runs),
        "samples": [{"prompt": r.prompt, "text": r.text} for r in runs[:2]],
    }


def main(argv=None) -> dict:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None)
    opts = ap.parse_args(argv)
    device = str(pick_device(opts.device))
    if opts.quick:
        cfg = mtp.MTPConfig(d_model=64, n_layers=2, n_heads=4, mtp_depth=2, window=32)
        train = mtp.TrainConfig(steps=opts.steps or 40, batch=16, corpus_chars=300_000)
        n_prompts, new = 2, 40
    else:
        cfg = mtp.MTPConfig()
        train = mtp.TrainConfig(steps=opts.steps or 300)
        n_prompts, new = 4, 120
    trained = mtp.train_mtp(cfg, train, device=device)
    decoding = _decode_runs(trained, _prompts(n_prompts, 40, train.corpus_chars), new)
    D = cfg.mtp_depth
    payload = {
        "config": cfg, "train_config": train, "device_used": device,
        "train_seconds": trained.seconds, "train_chars_per_s": trained.tokens_seen / trained.seconds,
        "final_eval": trained.final, "new_chars": new, "prompts": n_prompts, **decoding,
    }
    tpp = decoding["tokens_per_pass_by_drafts"][D]
    payload["summary"] = [
        f"trained {train.steps} steps in {trained.seconds:.1f} s "
        f"({payload['train_chars_per_s']:,.0f} chars/s) on {device}",
        "held-out accuracy " + ", ".join(f"depth {k}: {100 * trained.final[f'acc_{k}']:.1f} %"
                                         for k in range(D + 1)),
        "draft agreement with the main head on held-out text "
        + ", ".join(f"depth {k}: {100 * trained.final[f'agree_{k}']:.1f} %" for k in range(1, D + 1)),
        f"tokens per main pass with {D} drafts: {tpp:.2f} (plain 1.00); acceptance "
        + ", ".join("—" if a is None else f"{100 * a:.0f} %" for a in decoding["acceptance"]),
        f"decode {new} chars: plain {decoding['plain_ms_median']:.0f} ms, speculative "
        f"{decoding['speculative_ms_median']:.0f} ms (identical: {decoding['identical']})",
    ]
    write_and_report("mtp", payload, out_dir=opts.out, device=opts.device)
    return payload


if __name__ == "__main__":
    main()
