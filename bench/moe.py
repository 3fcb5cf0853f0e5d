"""MoE training throughput: tokens/s of one optimizer step of the small DeepSeekMoE LM.

For each size and each dispatch path of core/models/moe.py ("sorted": one matmul chain per expert
on its slice of the tokens sorted by expert; "padded": one batched matmul over an
(experts, capacity, width) buffer), times a full training step (forward, balance losses,
backward, AdamW, aux-free bias update) and the MoE layer alone (forward + backward):
warm-up, repeats, median (core.measure.timing.time_fn: CUDA events on a GPU). The analytic FLOP
count is kept apart: 6 x the matmul parameters a token uses (top-k routed + shared experts,
router, attention projections, LM head) plus 6 x 2 x S x D per layer for the attention
scores and values (full square; a causal kernel may skip half), per token.

Tokens: characters of gensim's Wikipedia sample when gensim is installed, else synthetic
Zipf-distributed ids over the same vocabulary size (`--data synthetic`; the GPU check has
no gensim). On a CPU the steps run with core.models.moe.CPU_TRAIN_THREADS intra-op threads, as
the page does.

    python -m bench.moe            # CPU sizes
    python -m bench.moe --quick    # one small size, few repeats
    python -m bench.moe --preset gpu --data synthetic
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from bench.common import parser, write_and_report
from core.measure.timing import time_fn
from core.models import moe
from core.models.moe import wiki_corpus
from core.runtime.device import pick_device

GPU_CHECK_ARGS = ["--preset", "gpu", "--data", "synthetic"]
GPU_CHECK_TIMEOUT_S = 60
VOCAB = 106                 # the Wikipedia sample's character vocabulary size


@dataclass(frozen=True)
class Size:
    d: int          # model width
    n: int          # routed experts
    k: int          # top-k
    layers: int     # blocks
    seq: int        # context
    batch: int      # sequences per step
    hidden: int     # expert width
    groups: int = 1        # expert groups
    topk_groups: int = 1   # groups per token

    @property
    def label(self) -> str:
        g = f", {self.topk_groups}/{self.groups} groups" if self.groups > 1 else ""
        return (f"D={self.d}, {self.n} experts top-{self.k}{g}, {self.layers} layers, "
                f"{self.batch}x{self.seq} tokens")


PRESETS = {
    "quick": [Size(64, 16, 2, 2, 64, 16, 32)],
    "cpu": [Size(64, 16, 2, 2, 64, 16, 32), Size(128, 32, 4, 2, 128, 16, 64),
            Size(128, 64, 8, 2, 128, 16, 32, groups=8, topk_groups=4)],
    "gpu": [Size(64, 16, 2, 2, 64, 16, 32), Size(512, 64, 6, 4, 256, 32, 256),
            Size(1024, 64, 8, 4, 512, 32, 512, groups=8, topk_groups=4)],
}


def train_config(size: Size, moe):
    layer = moe.MoEConfig(d_model=size.d, n_routed=size.n, top_k=size.k, n_shared=1,
                          expert_hidden=size.hidden, n_groups=size.groups, topk_groups=size.topk_groups)
    return moe.TrainConfig(moe=layer, n_layers=size.layers, n_heads=max(1, size.d // 64),
                           seq_len=size.seq, batch=size.batch, steps=1000)


def tokens(kind: str, n: int) -> torch.Tensor:
    """n character ids: the Wikipedia sample, or Zipf-distributed synthetic ids."""
    if kind == "wiki":
        return wiki_corpus().train[:n]
    ranks = torch.arange(1, VOCAB, dtype=torch.float64)
    probs = 1.0 / ranks / (1.0 / ranks).sum()
    return torch.multinomial(probs, n, replacement=True, generator=torch.Generator().manual_seed(0)) + 1


def step_flops(size: Size) -> float:
    """Analytic training FLOPs of one step (6 per multiply-add-parameter-token, see module doc)."""
    d, h = size.d, size.hidden
    expert = 3 * d * h
    per_layer = 4 * d * d + (size.k + 1) * expert + size.n * d          # attn proj, experts, router
    matmul_params = size.layers * per_layer + VOCAB * d                  # + LM head
    attention = size.layers * 2 * size.seq * d                           # QK^T and AV, per token
    return 6.0 * (matmul_params + attention) * size.batch * size.seq


def measure(size: Size, dispatch: str, data: torch.Tensor, device: str, repeats: int) -> dict:
    """Median training-step and MoE-layer times for one size and dispatch path."""
    cfg = train_config(size, moe)
    model = moe.build_model(VOCAB, cfg, device, dispatch=dispatch).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x, y = (t.to(device) for t in moe.sample_batch(data, size.batch, size.seq, gen))
    balance = cfg.balance("aux_free")
    step = time_fn(lambda: moe.train_step(model, opt, x, y, balance), device, warmup=2,
                   repeats=repeats, max_seconds=20)
    layer = model.blocks[0].moe
    h = torch.randn(size.batch * size.seq, size.d, device=device, requires_grad=True)
    fwd_bwd = time_fn(lambda: layer(h).sum().backward(), device, warmup=2, repeats=repeats, max_seconds=10)
    with torch.no_grad():
        internals = model(x, return_internals=True).layers
    n_tok = size.batch * size.seq
    return {
        "size": size.label, "dispatch": dispatch,
        "step_ms": round(step.median_ms, 3), "tokens_per_s": round(n_tok / step.median_ms * 1e3),
        "achieved_gflops": round(step_flops(size) / step.median_ms / 1e6, 2),
        "moe_layer_fwd_bwd_ms": round(fwd_bwd.median_ms, 3),
        "max_vio_layer1": round(moe.max_violation(internals[0].load), 3),
        "repeats": step.repeats,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None)
    ap.add_argument("--data", choices=["wiki", "synthetic"], default=None)
    ap.add_argument("--repeats", type=int, default=None)
    opts = ap.parse_args(argv)

    device = str(pick_device(opts.device))
    preset = "quick" if opts.quick else (opts.preset or ("gpu" if device.startswith("cuda") else "cpu"))
    data_kind = opts.data or _default_data()
    repeats = opts.repeats or (3 if opts.quick else 7)
    data = tokens(data_kind, 400_000)
    started, rows = time.perf_counter(), []
    with moe.cpu_threads(device):
        for size in PRESETS[preset]:
            for dispatch in moe.DISPATCHES:
                rows.append(measure(size, dispatch, data, device, repeats))
                print(rows[-1], flush=True)
    payload = {"preset": preset, "data": data_kind, "torch_threads": _threads(device, moe),
               "rows": rows, "seconds": round(time.perf_counter() - started, 1),
               "summary": _summary(rows, device)}
    write_and_report("moe", payload, out_dir=opts.out, device=opts.device)
    return payload


def _default_data() -> str:
    try:
        import gensim  # noqa: F401  (optional: the GPU check machine has no gensim)
    except ImportError:
        return "synthetic"
    return "wiki"


def _threads(device: str, moe) -> int:
    with moe.cpu_threads(device):
        return torch.get_num_threads()


def _summary(rows: list[dict], device: str) -> list[str]:
    lines = []
    for row in rows:
        lines.append(f"{row['size']} [{row['dispatch']}]: {row['tokens_per_s']:,} tokens/s per "
                     f"training step ({row['step_ms']:.1f} ms, {row['achieved_gflops']} GFLOP/s) on {device}")
    by_size: dict[str, dict] = {}
    for row in rows:
        by_size.setdefault(row["size"], {})[row["dispatch"]] = row
    for size, pair in by_size.items():
        if {"sorted", "padded"} <= set(pair):
            ratio = pair["padded"]["moe_layer_fwd_bwd_ms"] / pair["sorted"]["moe_layer_fwd_bwd_ms"]
            lines.append(f"{size}: padded MoE layer takes {ratio:.2f}x the sorted one at MaxVio "
                         f"{pair['sorted']['max_vio_layer1']} (its buffer holds the busiest expert's load)")
    return lines


if __name__ == "__main__":
    main()
