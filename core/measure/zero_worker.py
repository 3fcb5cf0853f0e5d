"""One rank of a ZeRO memory run: train a small GPT a few steps and count per-rank bytes.

Started by :func:`core.measure.zero.run_zero` (one process per rank on this
machine), or by torchrun, which sets the same environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT)::

    # one machine, 4 ranks (gloo on CPU, NCCL with one GPU per rank)
    torchrun --nproc-per-node 4 -m core.measure.zero_worker --strategies ddp,zero1,zero2,zero3 --out runs/zero
    # two machines, 8 GPUs each: run on both, node-rank 0 and 1
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 --rdzv-backend c10d \\
        --rdzv-endpoint host0:29500 -m core.measure.zero_worker --hidden 1024 --layers 8 --out runs/zero

On a CUDA machine the ranks use NCCL, one GPU each (LOCAL_RANK); ``ATLAS_DEVICE=cpu``
makes them use gloo on the CPU instead.

Strategies (Rajbhandari et al. 2020 stages; PyTorch implementations):
- ``ddp``   DistributedDataParallel + Adam: everything replicated (stage 0)
- ``zero1`` DDP + torch.distributed.optim.ZeroRedundancyOptimizer: optimizer states
  partitioned (P_os), by whole parameters
- ``zero2`` FSDP2 ``fully_shard(reshard_after_forward=False)``: parameters,
  gradients and optimizer states sharded at rest, parameters kept gathered from
  forward to backward (about P_os+g)
- ``zero3`` FSDP2 ``fully_shard(reshard_after_forward=True)``: parameters
  re-sharded after forward and gathered again for backward (P_os+g+p)

Each rank writes ``rank<r>.json`` into ``--out``: bytes of parameters at rest,
parameters held between forward and backward, gradients, optimizer state
(storages counted once, DTensors by their local shard), the CUDA peak on GPUs,
and the losses. Model and data: core.measure.activations.TinyGPT in fp32, synthetic tokens
(memory does not depend on the data). A watchdog ends the process if its
parent dies or its deadline passes, so no rank outlives a run.
Does not handle: mixed-precision policies, CPU offload, pipeline or tensor parallelism.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh
from torch.nn.parallel import DistributedDataParallel as DDP

from core import write_atomically
from core.measure.activations import TinyGPT, TinyGPTConfig, build_model

STRATEGIES = ("ddp", "zero1", "zero2", "zero3")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="One rank of a ZeRO memory run (see module docstring).")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deadline-s", type=float, default=900.0, help="exit after this long, whatever happens")
    ap.add_argument("--inject", default="", choices=("", "crash", "hang"),
                    help="tests only: make the last rank fail or hang")
    return ap.parse_args(argv)


def start_watchdog(deadline_s: float) -> None:
    """End this process when its parent goes away or the deadline passes."""
    parent, end = os.getppid(), time.monotonic() + deadline_s

    def watch() -> None:
        while True:
            if os.getppid() != parent or time.monotonic() > end:
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="zero-watchdog").start()


def setup(deadline_s: float) -> tuple[int, int, torch.device, str]:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if torch.cuda.is_available() and os.environ.get("ATLAS_DEVICE", "cuda").startswith("cuda"):
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world,
                            timeout=timedelta(seconds=max(30.0, deadline_s)))
    return rank, world, device, backend


# ---------------------------------------------------------------- byte counting
def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and shards counted once)."""
    seen: dict[tuple, int] = {}
    for t in tensors:
        if t is None or not isinstance(t, torch.Tensor):
            continue
        storage = _local(t).untyped_storage()
        seen[(str(storage.device), storage.data_ptr())] = int(storage.nbytes())
    return sum(seen.values())


def optimizer_tensors(optimizer) -> list[torch.Tensor]:
    inner = getattr(optimizer, "optim", optimizer)          # ZeroRedundancyOptimizer wraps the local one
    return [v for state in inner.state.values() for v in state.values() if isinstance(v, torch.Tensor)]


# ---------------------------------------------------------------- strategies
def wrap(model: TinyGPT, strategy: str, device: torch.device, world: int, lr: float):
    """The model as the strategy runs it, and its optimizer."""
    ids = [device.index] if device.type == "cuda" else None
    if strategy in ("ddp", "zero1"):
        model = DDP(model, device_ids=ids, gradient_as_bucket_view=True)
        if strategy == "ddp":
            return model, torch.optim.Adam(model.parameters(), lr=lr)
        # start-up cost: ~0.9 s to import in every rank; only zero1 uses it
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return model, ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=lr)
    # start-up cost: FSDP takes ~0.7 s to import in every rank; only zero2/zero3 use it
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    reshard = strategy == "zero3"
    for block in model.blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard)
    return model, torch.optim.Adam(model.parameters(), lr=lr)


def run_strategy(cfg: TinyGPTConfig, strategy: str, args, rank: int, world: int,
                 device: torch.device, report) -> dict:
    """Train ``args.steps`` steps; measure bytes on the last one."""
    model, opt = wrap(build_model(cfg, str(device), seed=0), strategy, device, world, args.lr)
    at_rest = list(model.parameters())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses, times, sizes = [], [], {}
    for step in range(args.steps):
        report(step)
        maybe_inject(args, rank, world)
        gen = torch.Generator().manual_seed(1000 * rank + step)
        idx = torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq + 1), generator=gen).to(device)  # (B, S+1)
        t0 = time.perf_counter()
        logits = model(idx[:, :-1])                                                           # (B, S, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), idx[:, 1:].flatten())
        held = storage_bytes([*at_rest, *model.parameters()])     # sharded + whatever is gathered now
        loss.backward()
        grads = storage_bytes(p.grad for p in model.parameters())
        opt.step()
        sizes = {"params_bytes": storage_bytes(model.parameters()), "params_held_bytes": held,
                 "grads_bytes": grads, "optimizer_bytes": storage_bytes(optimizer_tensors(opt))}
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
        losses.append(float(loss.detach()))
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return {"strategy": strategy, **sizes, "cuda_peak_bytes": peak, "losses": losses,
            "step_ms": statistics.median(times)}


def maybe_inject(args, rank: int, world: int) -> None:
    if args.inject and rank == world - 1:
        if args.inject == "crash":
            raise RuntimeError("injected failure (test)")
        time.sleep(10**6)


def _write_json(path: Path, doc: dict) -> None:
    text = json.dumps(doc)
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def main(argv=None) -> int:
    args = parse_args(argv)
    start_watchdog(args.deadline_s)
    args.out.mkdir(parents=True, exist_ok=True)
    rank, world, device, backend = setup(args.deadline_s)
    cfg = TinyGPTConfig(vocab=args.vocab, hidden=args.hidden, heads=args.heads, layers=args.layers,
                        seq=args.seq, batch=args.batch, dropout=0.0, attention="eager", dtype="float32")
    strategies = [s for s in args.strategies.split(",") if s]
    progress = args.out / "progress.json"
    results = []
    try:
        for i, strategy in enumerate(strategies):
            def report(step, i=i, strategy=strategy):
                if rank == 0:
                    _write_json(progress, {"index": i, "count": len(strategies), "strategy": strategy,
                                           "step": step, "steps": args.steps})
            results.append(run_strategy(cfg, strategy, args, rank, world, device, report))
            dist.barrier()
        n_params = sum(p.numel() for p in TinyGPT(cfg).parameters())
        _write_json(args.out / f"rank{rank}.json", {
            "rank": rank, "world": world, "backend": backend, "device": str(device),
            "n_params": n_params, "torch": torch.__version__, "results": results})
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
