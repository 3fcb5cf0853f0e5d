"""Launch real torch.distributed workers on this machine and compare their memory with ZeRO's formulas.

:func:`run_zero` starts ``world_size`` processes of :mod:`core.measure.zero_worker`
(gloo on CPU, NCCL with one GPU per rank), each in its own process group, on a
free port found by binding a socket. They train a small GPT a few steps per
strategy (DDP, ZeroRedundancyOptimizer = ZeRO-1, FSDP2 without / with
re-sharding after forward ≈ ZeRO-2 / ZeRO-3) and report per-rank bytes of
parameters, gradients and optimizer state. The launcher enforces a time limit;
a worker that fails or hangs gets its whole process group terminated (then
killed), the failure is reported with the tail of its log, and every process
is reaped. The same worker runs under torchrun across machines (see
core/measure/zero_worker.py).

The prediction is :func:`core.memory.model_state_bytes` for the same
parameter count, recipe "fp32" (the workers train in fp32 with Adam: 4 + 4 + 8
bytes per parameter) and dp = world size. Differences the formula leaves out:
ZeroRedundancyOptimizer assigns whole tensors to ranks (uneven shards); FSDP
pads every parameter to a multiple of the world size; Adam's per-tensor step
counters; ZeRO-2 keeps gathered parameters from forward to backward.

Does not handle: several machines from the page (use torchrun), more than
MAX_WORLD ranks, mixed precision or offload in the measured run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core import ROOT
from core.measure.activations import TinyGPTConfig, validate_tiny
from core.memory import model_state_bytes
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import (
    ResourceError,
    ValidationError,
    check_choice,
    check_float,
    check_int,
)

STRATEGIES = ("ddp", "zero1", "zero2", "zero3")
STRATEGY_STAGE = {"ddp": 0, "zero1": 1, "zero2": 2, "zero3": 3}
STRATEGY_LABELS = {
    "ddp": N_("DDP + Adam (ZeRO-0)"),
    "zero1": N_("ZeroRedundancyOptimizer (ZeRO-1)"),
    "zero2": N_("FSDP, no reshard after forward (≈ZeRO-2)"),
    "zero3": N_("FSDP, reshard after forward (ZeRO-3)"),
}
MAX_WORLD = 4
MAX_STEPS = 10
MAX_RUN_HIDDEN = 1024
MAX_RUN_LAYERS = 12
MAX_RUN_SEQ = 512
MAX_RUN_VOCAB = 8192
MAX_TIME_LIMIT_S = 600.0
KILL_GRACE_S = 3.0
POLL_S = 0.2
DEFAULT_MODEL = TinyGPTConfig(vocab=512, hidden=128, heads=4, layers=2, seq=64, batch=2, dropout=0.0)


class WorkerError(ResourceError):
    """A worker failed, hung past the time limit, or returned no result; all were stopped."""


@dataclass(frozen=True)
class ZeroRunConfig:
    world_size: int = 2                          # ranks on this machine
    strategies: tuple[str, ...] = STRATEGIES     # subset of STRATEGIES, run in order
    model: TinyGPTConfig = DEFAULT_MODEL         # fp32, eager attention, no dropout
    steps: int = 3                               # training steps per strategy (the last is measured)
    device: str = "cpu"                          # "cpu" (gloo) | "cuda" (NCCL, one GPU per rank)
    time_limit_s: float = 180.0                  # the whole run, start-up included
    inject: str = ""                             # tests only: "crash" | "hang" on the last rank


def validate_run(cfg: ZeroRunConfig) -> ZeroRunConfig:
    """Check sizes, strategies and that this machine can host ``world_size`` ranks."""
    kind = check_choice("Device", str(cfg.device).split(":")[0], ("cpu", "cuda"))
    world = check_int("World size", cfg.world_size, 1, MAX_WORLD)
    if kind == "cuda":
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if world > gpus:
            raise ValidationError(
                f"NCCL needs one GPU per rank: this machine has {gpus} GPU(s), so at most "
                f"{gpus} rank(s) (or run the ranks on the CPU with gloo).")
    if not cfg.strategies or len(set(cfg.strategies)) != len(cfg.strategies):
        raise ValidationError("Choose one or more different strategies.")
    for s in cfg.strategies:
        check_choice("Strategy", s, STRATEGIES)
    check_int("Steps", cfg.steps, 1, MAX_STEPS)
    check_float("Time limit", cfg.time_limit_s, 5.0, MAX_TIME_LIMIT_S)
    check_choice("Fault injection", cfg.inject, ("", "crash", "hang"))
    m = validate_tiny(cfg.model, kind)
    check_int("Hidden size (distributed run)", m.hidden, 8, MAX_RUN_HIDDEN)
    check_int("Layers (distributed run)", m.layers, 1, MAX_RUN_LAYERS)
    check_int("Sequence length (distributed run)", m.seq, 1, MAX_RUN_SEQ)
    check_int("Vocabulary (distributed run)", m.vocab, 2, MAX_RUN_VOCAB)
    return cfg


def free_port() -> int:
    """A TCP port nobody listens on now (bind to port 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- processes
def _worker_args(cfg: ZeroRunConfig, out: Path) -> list[str]:
    m = cfg.model
    return [sys.executable, "-m", "core.measure.zero_worker", "--strategies", ",".join(cfg.strategies),
            "--vocab", str(m.vocab), "--hidden", str(m.hidden), "--heads", str(m.heads),
            "--layers", str(m.layers), "--seq", str(m.seq), "--batch", str(m.batch),
            "--steps", str(cfg.steps), "--out", str(out), "--deadline-s", str(cfg.time_limit_s + 30),
            *(["--inject", cfg.inject] if cfg.inject else [])]


def start_workers(cfg: ZeroRunConfig, out: Path) -> list[subprocess.Popen]:
    """One process per rank, each the leader of its own process group."""
    port, procs = free_port(), []
    base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "WORLD_SIZE": str(cfg.world_size), "OMP_NUM_THREADS": "1",
            "ATLAS_DEVICE": str(cfg.device), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    try:
        for rank in range(cfg.world_size):
            env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
            with open(out / f"rank{rank}.log", "w", encoding="utf-8") as log:
                procs.append(subprocess.Popen(_worker_args(cfg, out), cwd=ROOT, env=env, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
    except BaseException:
        stop_workers(procs)
        raise
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each worker's process group, SIGKILL what is left after a grace period, reap all."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in procs if p.poll() is None]
        for p in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)
        end = time.monotonic() + KILL_GRACE_S
        while alive and time.monotonic() < end:
            alive = [p for p in alive if p.poll() is None]
            time.sleep(0.05)
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=KILL_GRACE_S)


def _log_tail(out: Path, rank: int, chars: int = 1200) -> str:
    with contextlib.suppress(OSError):
        return (out / f"rank{rank}.log").read_text(encoding="utf-8", errors="replace")[-chars:]
    return ""


def _read_progress(out: Path) -> dict | None:
    with contextlib.suppress(OSError, json.JSONDecodeError):
        return json.loads((out / "progress.json").read_text(encoding="utf-8"))
    return None


def wait_workers(procs, out: Path, deadline: float, progress=None, job=None) -> None:
    """Return when every rank exited 0; raise WorkerError on a failure or at the deadline."""
    while True:
        codes = [p.poll() for p in procs]
        failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            r = failed[0]
            raise WorkerError(f"Rank {r} of {len(procs)} failed (exit code {codes[r]}); all workers "
                              f"were stopped. Its last output:\n{_log_tail(out, r)}")
        if all(c == 0 for c in codes):
            return
        if time.monotonic() > deadline:
            running = [r for r, c in enumerate(codes) if c is None]
            raise WorkerError(f"The distributed run did not finish within its time limit; rank(s) "
                              f"{running} were still running and were stopped. Lower the model "
                              "size or the number of steps, or raise the time limit.")
        if job is not None:
            job.check()
        _report(progress, _read_progress(out))
        time.sleep(POLL_S)


def _report(progress, state: dict | None) -> None:
    if progress is None or not state:
        return
    done = state["index"] * state["steps"] + state["step"]
    total = max(state["count"] * state["steps"], 1)
    progress(0.1 + 0.85 * done / total,
             N_(f"{STRATEGY_LABELS.get(state['strategy'], state['strategy'])}: step {state['step'] + 1}"
                f" of {state['steps']}"))


# ---------------------------------------------------------------- the run
@dataclass(frozen=True)
class ZeroRunResult:
    config: ZeroRunConfig
    backend: str                  # "gloo" | "nccl"
    n_params: int                 # parameters of the measured model
    rows: tuple[dict, ...]        # one per (strategy, rank): measured bytes
    predicted: dict               # strategy -> model_state_bytes(...) for recipe fp32, dp = world
    wall_s: float                 # launch to last result
    pids: tuple[int, ...] = field(default=())   # worker process ids (all reaped)

    def summary(self) -> list[dict]:
        """Per strategy: predicted vs measured (mean and max over ranks), bytes."""
        out = []
        for s in self.config.strategies:
            ranks = [r for r in self.rows if r["strategy"] == s]
            row = {"strategy": s, "label": STRATEGY_LABELS[s], "stage": STRATEGY_STAGE[s]}
            for part, key in (("params", "params_bytes"), ("grads", "grads_bytes"),
                              ("optimizer", "optimizer_bytes")):
                row[f"{part}_predicted"] = self.predicted[s][part]
                row[f"{part}_measured"] = sum(r[key] for r in ranks) / len(ranks)
                row[f"{part}_max_rank"] = max(r[key] for r in ranks)
            row["params_held_after_forward"] = sum(r["params_held_bytes"] for r in ranks) / len(ranks)
            out.append(row)
        return out


def run_zero(cfg: ZeroRunConfig, progress: Callable[[float, str], None] | None = None,
             on_wait: Callable[[int, float], None] | None = None) -> ZeroRunResult:
    """Launch the workers, wait (with the time limit), collect and compare; nothing is left running."""
    cfg = validate_run(cfg)
    started = time.monotonic()
    with heavy_job("distributed ZeRO run", cfg.device, time_limit_s=cfg.time_limit_s + 5,
                   on_wait=on_wait) as job, tempfile.TemporaryDirectory(prefix="atlas-zero-") as tmp:
        out = Path(tmp)
        if progress:
            progress(0.02, N_(f"starting {cfg.world_size} worker process(es)"))
        procs = start_workers(cfg, out)
        try:
            wait_workers(procs, out, started + cfg.time_limit_s, progress, job)
        finally:
            stop_workers(procs)
        docs = _collect(out, cfg.world_size)
    return _result(cfg, docs, time.monotonic() - started, tuple(p.pid for p in procs))


def _collect(out: Path, world: int) -> list[dict]:
    docs = []
    for rank in range(world):
        try:
            docs.append(json.loads((out / f"rank{rank}.json").read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            raise WorkerError(f"Rank {rank} exited without a result. Its last output:\n"
                              f"{_log_tail(out, rank)}") from None
    return docs


def _result(cfg: ZeroRunConfig, docs: list[dict], wall_s: float, pids: tuple) -> ZeroRunResult:
    n_params = int(docs[0]["n_params"])
    rows = tuple({"rank": d["rank"], **r} for d in docs for r in d["results"])
    predicted = {s: model_state_bytes(n_params, zero_stage=STRATEGY_STAGE[s], dp=cfg.world_size,
                                      recipe="fp32") for s in cfg.strategies}
    return ZeroRunResult(cfg, docs[0]["backend"], n_params, rows, predicted, wall_s, pids)


def pid_alive(pid: int) -> bool:
    """True if a process with this id exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
