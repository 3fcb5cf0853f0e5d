"""core.train: the schedules against their formulas, the shared loop's cadence, smoothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.train import (
    default_warmup,
    every_and_last,
    linear_decay,
    optimizer_step,
    set_lr,
    smooth,
    train,
    warmup_cosine,
)


# ---------------------------------------------------------------- schedules
def test_warmup_cosine_golden():
    """Goyal et al. 2017 warm-up ((s + 1) / w of the peak), then SGDR's cosine (Loshchilov &
    Hutter 2017, eq. 5): lr = peak (floor + (1 - floor) (1 + cos(pi p)) / 2), p = (s - w) / (S - w)."""
    assert warmup_cosine(0, 100, 10, 1e-2) == pytest.approx(1e-3)
    assert warmup_cosine(9, 100, 10, 1e-2) == pytest.approx(1e-2)
    assert warmup_cosine(10, 100, 10, 1e-2) == pytest.approx(1e-2)
    assert warmup_cosine(55, 100, 10, 1e-2) == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5))   # p = 1/2
    assert warmup_cosine(100, 100, 10, 1e-2) == pytest.approx(1e-3)
    assert warmup_cosine(500, 100, 10, 1e-2) == pytest.approx(1e-3)                      # stays at the floor
    assert warmup_cosine(32, 100, 10, 2.0, floor=0.0) == pytest.approx(
        2.0 * 0.5 * (1 + math.cos(math.pi * 22 / 90)))


def test_warmup_cosine_edge_cases():
    assert warmup_cosine(0, 1, 1) == 1.0                          # one step: the whole warm-up
    assert warmup_cosine(5, 10, 0, 3.0) == pytest.approx(3.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2))))
    assert [warmup_cosine(s, 50, 20, 0.5, floor=1.0) for s in (19, 20, 49)] == [0.5, 0.5, 0.5]
    rates = [warmup_cosine(s, 200, 10) for s in range(200)]
    assert max(rates) == 1.0 and all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))


def test_schedule_factor_times_base_is_the_schedule_with_that_peak():
    """Multiplying a base rate by the peak-1 factor (LambdaLR's way) gives the same rate."""
    for s in (0, 3, 7, 40, 99):
        assert 3e-3 * warmup_cosine(s, 100, 5) == pytest.approx(warmup_cosine(s, 100, 5, 3e-3), rel=1e-15)


def test_default_warmup_and_linear_decay():
    assert [default_warmup(n) for n in (1, 19, 20, 150, 1000)] == [1, 1, 1, 7, 50]
    assert linear_decay(0.0, 0.025, 1e-4) == 0.025
    assert linear_decay(1.0, 0.025, 1e-4) == pytest.approx(1e-4)
    assert linear_decay(0.25, 1.0, 0.0) == 0.75


# ---------------------------------------------------------------- the loop
class _Job:
    def __init__(self) -> None:
        self.checks = 0

    def check(self) -> None:
        self.checks += 1


def test_loop_cadence_progress_and_log():
    job, seen, calls = _Job(), [], []

    def step(i):
        calls.append(("step", i, job.checks))
        return i * i

    def evaluate(done):
        calls.append(("eval", done))
        return -done

    log = train(step, 10, job=job, evaluate=evaluate, eval_at=every_and_last(10, 4),
                progress=lambda f, m: seen.append((f, m)), progress_every=3,
                message=lambda done, out: f"{done}:{out}", span=(0.5, 1.0))
    assert log.steps == [i * i for i in range(10)]
    assert log.evals == [(4, -4), (8, -8), (10, -10)]
    assert job.checks == 10 and calls[0] == ("step", 0, 1)         # the time limit before every step
    assert [m for _, m in seen] == ["1:0", "3:4", "6:25", "9:64", "10:81"]
    assert seen[0][0] == pytest.approx(0.55) and seen[-1][0] == 1.0
    assert calls.index(("eval", 4)) == calls.index(("step", 3, 4)) + 1


def test_loop_stops_when_the_job_says_so():
    class Out(_Job):
        def check(self):
            super().check()
            if self.checks > 3:
                raise TimeoutError("over the limit")

    done = []
    with pytest.raises(TimeoutError):
        train(done.append, 10, job=Out())
    assert done == [0, 1, 2]


def test_every_and_last():
    assert every_and_last(10, 4) == {4, 8, 10}
    assert every_and_last(3, 5) == {3}
    assert every_and_last(6, 2) == {2, 4, 6}


def test_optimizer_step_clips_and_set_lr():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = torch.optim.SGD([w], lr=1.0)
    set_lr(opt, 0.5)
    optimizer_step(opt, (w * torch.tensor([30.0, 40.0])).sum(), [w], clip=1.0)   # grad (30, 40), norm 50
    torch.testing.assert_close(w.detach(), torch.tensor([3.0 - 0.5 * 0.6, 4.0 - 0.5 * 0.8]))
    assert opt.param_groups[0]["lr"] == 0.5


# ---------------------------------------------------------------- smoothing
def test_smooth_is_a_trailing_mean_with_short_first_windows():
    y = [4.0, 2.0, 6.0, 0.0, 8.0]
    np.testing.assert_allclose(smooth(y, 2), [4.0, 3.0, 4.0, 3.0, 4.0])
    np.testing.assert_allclose(smooth(y, 3), [4.0, 3.0, 4.0, 8 / 3, 14 / 3])
    np.testing.assert_allclose(smooth(y, 1), y)
    assert len(smooth(list(range(90)))) == 90
    np.testing.assert_allclose(smooth(np.arange(90.0))[5], np.mean(np.arange(3.0, 6.0)))   # window 90 // 30
    assert smooth([], 5).shape == (0,)
