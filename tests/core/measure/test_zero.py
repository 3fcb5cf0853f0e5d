"""core.measure.zero: real 2-rank gloo runs of every ZeRO stage; failing and hanging workers.

Predictions: ZeRO paper (Rajbhandari et al. 2020) section 5 formulas with the fp32 Adam
recipe (K = 8: params 4 Psi, grads 4 Psi, optimizer 8 Psi), dp = world size. Tolerances:
exact for replicated states; 1 % for sharded ones (FSDP pads each parameter to a multiple
of the world size; Adam keeps a 4-byte step counter per tensor); ZeroRedundancyOptimizer
gives whole tensors to ranks, so its largest rank may exceed the even share (10 %).
"""

from __future__ import annotations

import socket
import time

import pytest

from core.measure import zero
from core.measure.activations import TinyGPT, TinyGPTConfig
from core.runtime.validation import ValidationError

MODEL = TinyGPTConfig(vocab=256, hidden=64, heads=4, layers=2, seq=32, batch=2, dropout=0.0)


@pytest.fixture()
def launched(monkeypatch):
    """Record the worker processes run_zero starts, to check none is left afterwards."""
    procs = []
    real = zero.start_workers

    def spy(cfg, out):
        started = real(cfg, out)
        procs.extend(started)
        return started

    monkeypatch.setattr(zero, "start_workers", spy)
    return procs


def assert_no_strays(procs) -> None:
    assert procs, "no worker was started"
    deadline = time.monotonic() + 5
    while any(zero.pid_alive(p.pid) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p.pid for p in procs if zero.pid_alive(p.pid)]
    assert all(p.returncode is not None for p in procs)


def test_two_rank_gloo_run_of_every_stage(launched):
    cfg = zero.ZeroRunConfig(world_size=2, model=MODEL, steps=2, time_limit_s=240)
    result = zero.run_zero(cfg)
    assert result.backend == "gloo" and len(result.rows) == 2 * 4
    psi = result.n_params
    assert psi == sum(p.numel() for p in TinyGPT(MODEL).parameters())
    s = {row["strategy"]: row for row in result.summary()}
    # ZeRO-0: everything replicated: 4 + 4 + 8 bytes per parameter
    assert s["ddp"]["params_measured"] == s["ddp"]["params_predicted"] == 4 * psi
    assert s["ddp"]["grads_measured"] == 4 * psi
    assert s["ddp"]["optimizer_measured"] == pytest.approx(8 * psi, rel=0.01)
    # ZeRO-1: optimizer states split, by whole tensors
    assert s["zero1"]["optimizer_measured"] == pytest.approx(8 * psi / 2, rel=0.01)
    assert s["zero1"]["optimizer_max_rank"] <= 1.10 * 8 * psi / 2
    assert s["zero1"]["grads_measured"] == 4 * psi
    # ZeRO-2 / ZeRO-3 via FSDP: grads and optimizer states sharded
    for name in ("zero2", "zero3"):
        assert s[name]["grads_measured"] == pytest.approx(4 * psi / 2, rel=0.01)
        assert s[name]["optimizer_measured"] == pytest.approx(8 * psi / 2, rel=0.01)
        assert s[name]["params_measured"] == pytest.approx(4 * psi / 2, rel=0.01)
    assert s["zero3"]["params_predicted"] == 4 * psi / 2
    # ZeRO-2 keeps parameters gathered from forward to backward; ZeRO-3 does not
    assert s["zero2"]["params_held_after_forward"] >= 4 * psi
    assert s["zero3"]["params_held_after_forward"] == pytest.approx(4 * psi / 2, rel=0.01)
    # same seed and data: every strategy trains the same model
    rank0 = {r["strategy"]: r["losses"] for r in result.rows if r["rank"] == 0}
    for name in ("zero1", "zero2", "zero3"):
        assert rank0[name] == pytest.approx(rank0["ddp"], rel=1e-4)
    assert_no_strays(launched)


@pytest.mark.parametrize("inject, limit, message", [
    ("crash", 120.0, "Rank 1 of 2 failed"),
    ("hang", 6.0, "time limit"),
])
def test_failing_or_hanging_worker_is_stopped(launched, inject, limit, message):
    cfg = zero.ZeroRunConfig(world_size=2, strategies=("ddp",), model=MODEL, steps=1,
                           time_limit_s=limit, inject=inject)
    started = time.monotonic()
    with pytest.raises(zero.WorkerError, match=message) as err:
        zero.run_zero(cfg)
    assert time.monotonic() - started < limit + 30
    if inject == "crash":
        assert "injected failure" in str(err.value)
    assert_no_strays(launched)


@pytest.mark.parametrize("changes, message", [
    ({"world_size": 5}, "World size"),
    ({"world_size": 0}, "World size"),
    ({"device": "cuda", "world_size": 4}, "one GPU per rank"),   # this box / the GPU box: < 4 GPUs
    ({"device": "tpu"}, "Device"),
    ({"strategies": ()}, "strategies"),
    ({"strategies": ("ddp", "ddp")}, "strategies"),
    ({"strategies": ("zero4",)}, "Strategy"),
    ({"steps": 0}, "Steps"),
    ({"steps": 1000}, "Steps"),
    ({"time_limit_s": 10**6}, "Time limit"),
    ({"inject": "rm -rf"}, "Fault injection"),
    ({"model": TinyGPTConfig(hidden=4096, heads=32)}, "distributed run"),
    ({"model": TinyGPTConfig(hidden=100, heads=3)}, "divide"),
])
def test_bad_run_configs(changes, message):
    with pytest.raises(ValidationError, match=message):
        zero.validate_run(zero.ZeroRunConfig(**{**zero.ZeroRunConfig().__dict__, **changes}))


def test_free_port_is_a_free_tcp_port():
    """Not a privileged port, nobody holds it (it binds again), and a client reaches it there."""
    port = zero.free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert client.getpeername() == ("127.0.0.1", port)


@pytest.mark.gpu
def test_single_gpu_nccl_run():
    """With one GPU, NCCL hosts one rank: every strategy runs, nothing is sharded."""
    cfg = zero.ZeroRunConfig(world_size=1, model=MODEL, steps=2, device="cuda", time_limit_s=240)
    result = zero.run_zero(cfg)
    assert result.backend == "nccl"
    for row in result.summary():
        assert row["params_measured"] == pytest.approx(row["params_predicted"], rel=0.01)
    assert all(r["cuda_peak_bytes"] > 0 for r in result.rows)
