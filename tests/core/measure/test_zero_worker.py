"""core.measure.zero_worker: argument parsing, the byte accounting (storages counted once,
optimizer state, a wrapped optimizer), fault injection, and one real 1-rank gloo run of every
strategy in a subprocess, whose bytes are ZeRO's with dp = 1: nothing sharded.

Predictions (Rajbhandari et al. 2020, section 5, the fp32 Adam recipe): parameters 4 Psi,
gradients 4 Psi, optimizer 8 Psi bytes, plus Adam's 4-byte step counter per parameter tensor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from core import ROOT
from core.measure import zero_worker
from core.measure.activations import TinyGPT, TinyGPTConfig
from core.measure.zero import free_port


# ---------------------------------------------------------------- arguments
def test_defaults_run_every_strategy(tmp_path):
    args = zero_worker.parse_args(["--out", str(tmp_path)])
    assert args.strategies == "ddp,zero1,zero2,zero3" and args.out == tmp_path
    assert (args.vocab, args.hidden, args.heads, args.layers, args.seq, args.batch, args.steps) == (
        512, 128, 4, 2, 64, 2, 3)
    assert args.lr == 1e-3 and args.deadline_s == 900.0 and args.inject == ""


def test_arguments_are_typed(tmp_path):
    args = zero_worker.parse_args(["--out", str(tmp_path / "runs"), "--strategies", "zero3", "--hidden", "64",
                                   "--deadline-s", "30", "--lr", "0.5", "--inject", "crash"])
    assert args.strategies == "zero3" and args.hidden == 64 and args.inject == "crash"
    assert args.deadline_s == 30.0 and args.lr == 0.5 and args.out == tmp_path / "runs"


@pytest.mark.parametrize("argv", [[], ["--out", "x", "--inject", "segfault"], ["--out", "x", "--hidden", "big"]])
def test_bad_arguments_stop_the_worker(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        zero_worker.parse_args(argv)
    assert stop.value.code == 2 and "error" in capsys.readouterr().err


# ---------------------------------------------------------------- byte accounting
def test_storage_bytes_counts_each_storage_once():
    a, b = torch.zeros(10), torch.zeros(3, 4, dtype=torch.float64)          # 40 and 96 bytes
    assert zero_worker.storage_bytes([a]) == 40
    assert zero_worker.storage_bytes([a, a[:5], a.view(2, 5), b, b.t()]) == 40 + 96
    assert zero_worker.storage_bytes([None, a, 3, "x"]) == 40               # no gradient, not a tensor
    assert zero_worker.storage_bytes(iter([b])) == 96                       # any iterable (generators)
    assert zero_worker.storage_bytes([]) == 0


def test_a_view_counts_its_whole_storage():
    """What a rank holds is the storage, not the slice of it a tensor shows."""
    assert zero_worker.storage_bytes([torch.zeros(100)[:10]]) == 400


def _stepped_adam(model: nn.Module) -> torch.optim.Adam:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return opt


def test_optimizer_state_is_adams_two_moments_and_step_counters():
    model = nn.Linear(3, 2)                                                 # 6 + 2 = 8 parameters
    assert zero_worker.optimizer_tensors(torch.optim.Adam(model.parameters())) == []   # no state before a step
    opt = _stepped_adam(model)
    tensors = zero_worker.optimizer_tensors(opt)
    assert len(tensors) == 3 * 2                                            # exp_avg, exp_avg_sq, step per tensor
    assert zero_worker.storage_bytes(tensors) == 8 * 8 + 2 * 4              # 8 Psi + a 4-byte step each


def test_a_wrapping_optimizer_is_read_through_its_optim():
    """ZeroRedundancyOptimizer keeps the local shard's optimizer as ``.optim``."""
    opt = _stepped_adam(nn.Linear(3, 2))

    class Wrapper:
        optim = opt
        state: dict = {}                                                    # the wrapper's own: not counted

    assert zero_worker.storage_bytes(zero_worker.optimizer_tensors(Wrapper())) == 72


# ---------------------------------------------------------------- fault injection
def test_crash_injection_fails_only_the_last_rank(tmp_path):
    args = zero_worker.parse_args(["--out", str(tmp_path), "--inject", "crash"])
    zero_worker.maybe_inject(args, rank=0, world=2)                         # not the last rank: nothing
    with pytest.raises(RuntimeError, match="injected failure"):
        zero_worker.maybe_inject(args, rank=1, world=2)
    quiet = zero_worker.parse_args(["--out", str(tmp_path)])
    zero_worker.maybe_inject(quiet, rank=1, world=2)                        # no injection asked: nothing
    assert list(tmp_path.iterdir()) == []


def test_results_are_written_whole(tmp_path):
    path = tmp_path / "rank0.json"
    zero_worker._write_json(path, {"rank": 0, "results": [1, 2]})
    assert json.loads(path.read_text(encoding="utf-8")) == {"rank": 0, "results": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.json"]    # no .tmp left behind


# ---------------------------------------------------------------- one real rank
MODEL = TinyGPTConfig(vocab=64, hidden=32, heads=2, layers=1, seq=16, batch=2, dropout=0.0)


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory) -> dict:
    """``python -m core.measure.zero_worker`` as rank 0 of 1 (gloo on the CPU), every strategy."""
    out = tmp_path_factory.mktemp("zero1rank")
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "ATLAS_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    m = MODEL
    cmd = [sys.executable, "-m", "core.measure.zero_worker", "--out", str(out), "--steps", "2",
           "--vocab", str(m.vocab), "--hidden", str(m.hidden), "--heads", str(m.heads), "--layers", str(m.layers),
           "--seq", str(m.seq), "--batch", str(m.batch), "--deadline-s", "240"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "rank0.json").read_text(encoding="utf-8"))


def test_one_rank_run_reports_every_strategy(one_rank):
    psi = sum(p.numel() for p in TinyGPT(MODEL).parameters())
    assert (one_rank["rank"], one_rank["world"], one_rank["backend"], one_rank["device"]) == (0, 1, "gloo", "cpu")
    assert one_rank["n_params"] == psi
    assert [r["strategy"] for r in one_rank["results"]] == list(zero_worker.STRATEGIES)
    assert all(len(r["losses"]) == 2 and r["cuda_peak_bytes"] is None for r in one_rank["results"])


def test_one_rank_holds_everything_under_every_strategy(one_rank):
    """dp = 1: every stage keeps the whole model, its gradients and Adam's state on the one rank."""
    psi = one_rank["n_params"]
    n_tensors = len(list(TinyGPT(MODEL).parameters()))
    for r in one_rank["results"]:
        assert r["params_bytes"] == pytest.approx(4 * psi, rel=0.01), r["strategy"]
        assert r["grads_bytes"] == pytest.approx(4 * psi, rel=0.01), r["strategy"]
        assert r["optimizer_bytes"] == pytest.approx(8 * psi + 4 * n_tensors, rel=0.01), r["strategy"]
        assert r["params_held_bytes"] >= r["params_bytes"], r["strategy"]
    ddp = one_rank["results"][0]
    assert (ddp["params_bytes"], ddp["grads_bytes"]) == (4 * psi, 4 * psi)      # replicated: exact


def test_one_rank_trains_the_same_model_under_every_strategy(one_rank):
    losses = {r["strategy"]: r["losses"] for r in one_rank["results"]}
    for name in ("zero1", "zero2", "zero3"):
        assert losses[name] == pytest.approx(losses["ddp"], rel=1e-4)
