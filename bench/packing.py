"""Benchmark: padded vs packed forward+backward, tokens/s and memory (issue #10).

The same sequences run through the same pre-norm transformer stack
(core.models.packing.PackedTransformer) as padded batches (causal SDPA, padded to
each batch's longest) and as packed rows of the pack length (first-fit
decreasing) with three varlen attentions: SDPA with a boolean block-diagonal
mask, a loop of causal SDPA calls over cu_seqlens, and FlexAttention with a
document mask (CUDA only: no CPU backward in torch 2.13).

Lengths: real cl100k_base token counts of the Wikipedia sample's paragraphs
(+1 end-of-text), or, with ``--lengths histogram`` (the GPU check: that machine
has no gensim), synthetic lengths drawn from :data:`WIKI_PARAGRAPH_HISTOGRAM`,
the histogram of those same lengths recorded here with ``--record-histogram``
(the JSON says which). Timings: warm-up, repeats, median (core.measure.timing: CUDA
events on a GPU); memory: CUDA allocator peak, and everywhere the bytes saved
for backward. Analytic FLOPs are kept apart from the timings. Results are
written after every method, so a time-out keeps what was measured.

    python -m bench.packing                 # CPU: real lengths, small model
    python -m bench.packing --quick         # smoke run
    python -m bench.packing --lengths histogram --n 1024 --d-model 1024 ...   # GPU check
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from bench.common import parser, write_result
from core.models import packing
from core.runtime.device import pick_device

# FlexAttention is left out of the GPU check: its first torch.compile (forward + backward) alone
# may take most of the 30 s budget. Add ``packed-flex`` to --methods to measure it.
GPU_CHECK_ARGS = ["--lengths", "histogram", "--n", "512", "--d-model", "1024", "--heads", "16",
                  "--layers", "4", "--capacity", "4096", "--batch-size", "16", "--dtype", "bfloat16",
                  "--warmup", "1", "--repeats", "5",
                  "--methods", "padded,packed-sdpa,packed-varlen-loop"]
GPU_CHECK_TIMEOUT_S = 50

# cl100k_base token counts (+1 end-of-text) of the 6,084 paragraphs of gensim's Wikipedia
# sample, 40 bins; regenerate with `python -m bench.packing --record-histogram`.
WIKI_PARAGRAPH_HISTOGRAM = {
    "source": "cl100k_base tokens + 1 end-of-text, gensim Wikipedia sample paragraphs, cut at 1024",
    "edges": [0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 220, 240, 260, 280, 300, 320, 340,
              360, 380, 400, 420, 440, 460, 480, 500, 520, 540, 560, 580, 600, 620, 640, 660, 680,
              700, 720, 740, 760, 780, 800],
    "counts": [882, 801, 645, 719, 688, 621, 443, 384, 275, 177, 138, 105, 76, 42, 35, 14, 11, 7,
               3, 3, 1, 3, 4, 1, 1, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
}


def _args(argv):
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--lengths", choices=("corpus", "histogram"), default="corpus")
    ap.add_argument("--unit", choices=("paragraph", "article"), default="paragraph")
    ap.add_argument("--max-len", type=int, default=1024, help="cut samples at this many tokens")
    ap.add_argument("--n", type=int, default=128, help="sequences measured")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--capacity", type=int, default=1024, help="pack length (tokens per row)")
    ap.add_argument("--batch-size", type=int, default=8, help="sequences per padded batch")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="padded,packed-sdpa,packed-varlen-loop,packed-flex")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave as is)")
    ap.add_argument("--record-histogram", action="store_true",
                    help="print the corpus length histogram for WIKI_PARAGRAPH_HISTOGRAM and exit")
    opts = ap.parse_args(argv)
    if opts.quick:
        opts.n, opts.d_model, opts.heads, opts.layers = min(opts.n, 24), 32, 2, 1
        opts.capacity, opts.max_len, opts.warmup, opts.repeats = 512, 512, 0, 1
    return opts


def corpus_lengths(unit: str, max_len: int) -> list[int]:
    return packing.sample_lengths(packing.corpus_documents(unit), tokenizer="cl100k_base", max_len=max_len)


def recorded_histogram() -> dict:
    """The paragraph-length histogram of the corpus (what WIKI_PARAGRAPH_HISTOGRAM holds)."""
    hist = packing.length_histogram(corpus_lengths("paragraph", 1024), bins=40)
    return {"source": "cl100k_base tokens + 1 end-of-text, gensim Wikipedia sample paragraphs, "
                      "cut at 1024", **hist}


def _lengths(opts) -> tuple[list[int], str]:
    if opts.lengths == "histogram":
        pool = packing.lengths_from_histogram(WIKI_PARAGRAPH_HISTOGRAM, max(opts.n, 1), seed=0)
        pool = packing.cut_lengths(pool, opts.max_len)
        return pool[: opts.n], ("synthetic: drawn from the recorded histogram of Wikipedia paragraph "
                                "lengths (cl100k_base); this machine has no gensim corpus")
    pool = corpus_lengths(opts.unit, opts.max_len)
    sample = packing.sample_sequences(pool, min(opts.n, len(pool)), seed=0)
    return sample, f"corpus: Wikipedia sample {opts.unit}s, cl100k_base tokens + 1 end-of-text"


def _summary(methods: list[dict], stats: list[dict]) -> list[str]:
    lines = [f"{s['label']}: {100 * s['waste']:.1f} % padding" for s in stats
             if s["strategy"] in ("pad-batch", "ffd")]
    ran = {m["method"]: m for m in methods if m["available"]}
    for m in ran.values():
        peak = f", CUDA peak {m['peak_bytes'] / 2**20:,.0f} MiB" if m["peak_bytes"] else ""
        lines.append(f"{m['method']}: {m['tokens_per_s']:,.0f} tokens/s, {m['median_ms']:.1f} ms/pass, "
                     f"saved {m['saved_bytes'] / 2**20:,.1f} MiB{peak}")
    if "padded" in ran:
        for name in ("packed-sdpa", "packed-varlen-loop", "packed-flex"):
            if name in ran:
                lines.append(f"{name} vs padded: {ran[name]['tokens_per_s'] / ran['padded']['tokens_per_s']:.2f}x "
                             "tokens/s")
    return lines


def main(argv=None) -> dict:
    opts = _args(argv)
    if opts.record_histogram:
        print(json.dumps(recorded_histogram()))
        return {}
    lengths, source = _lengths(opts)
    if opts.threads > 0:
        packing.torch.set_num_threads(opts.threads)
    cfg = packing.ThroughputConfig(d_model=opts.d_model, n_heads=opts.heads, n_layers=opts.layers,
                                   batch_size=min(opts.batch_size, len(lengths)), capacity=opts.capacity,
                                   dtype=opts.dtype, warmup=opts.warmup, repeats=opts.repeats)
    dev = str(pick_device(opts.device))
    stats = [dataclasses.asdict(s) for s in packing.compare_strategies(
        lengths, capacity=cfg.capacity, batch_size=cfg.batch_size, max_len=opts.max_len)]
    payload = {"lengths_source": source, "config": dataclasses.asdict(cfg), "n_sequences": len(lengths),
               "real_tokens": sum(lengths), "lengths": lengths, "packing": stats, "methods": [],
               "torch_threads": packing.torch.get_num_threads(),
               "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    for method in [m for m in opts.methods.split(",") if m]:
        res = packing.measure_throughput(lengths, cfg, device=dev, methods=[method], time_limit_s=600)
        payload["methods"].append(dataclasses.asdict(res.methods[0]))
        payload["summary"] = _summary(payload["methods"], stats)
        path = write_result("packing", payload, out_dir=opts.out, device=dev)
        print(f"[packing] {method}: written to {path}", flush=True)
    for line in payload.get("summary", []):
        print(line)
    return payload


if __name__ == "__main__":
    main()
    sys.exit(0)
