"""The training loop every live run shares: steps, evaluation cadence, time limit, progress.

``train(step, steps, ...)`` calls ``job.check()`` (core.runtime.scheduler: the job's time limit),
then ``step(i)`` for i = 0 .. steps - 1; after step i it evaluates when i + 1 is in
``eval_at`` and reports ``progress(fraction, message(i + 1, result))`` on the first step,
every ``progress_every`` steps and on the last. What a step does (its batch, its loss,
its optimiser, its learning rate from core.train.schedule) stays with the model; the
loop returns what the steps and evaluations returned (a TrainLog), in order.
``optimizer_step`` is the update every model here makes: zero the gradients, backward,
clip the gradient norm (Pascanu et al. 2013, Sec. 3.2), step. ``set_lr`` writes a rate
into every parameter group (what torch's LambdaLR does, without its hidden state).
Does not handle: gradient accumulation, mixed-precision loss scaling, early stopping,
resuming a run (the loop keeps no state between calls).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

import torch

from core.runtime.text import N_

Progress = Callable[[float, str], None]


@dataclass
class TrainLog:
    steps: list = field(default_factory=list)    # what step(i) returned, one entry per step
    evals: list = field(default_factory=list)    # (steps done, what evaluate returned)


def every_and_last(steps: int, every: int) -> frozenset[int]:
    """The step counts every, 2 every, ... and ``steps`` itself: when a run evaluates."""
    return frozenset(range(every, steps + 1, every)) | {steps}


def train(step: Callable[[int], object], steps: int, *, job=None,
          evaluate: Callable[[int], object] | None = None, eval_at: Collection[int] = (),
          progress: Progress | None = None, progress_every: int = 1,
          message: Callable[[int, object], str] | None = None,
          span: tuple[float, float] = (0.0, 1.0)) -> TrainLog:
    """Run ``steps`` steps; progress fractions run from span[0] to span[1] (one run of several)."""
    log = TrainLog()
    for i in range(steps):
        if job is not None:
            job.check()
        log.steps.append(step(i))
        done = i + 1
        if evaluate is not None and done in eval_at:
            log.evals.append((done, evaluate(done)))
        if progress is not None and (done == 1 or done % progress_every == 0 or done == steps):
            text = message(done, log.steps[-1]) if message is not None else N_(f"step {done}/{steps}")
            progress(span[0] + (span[1] - span[0]) * done / steps, text)
    return log


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor,
                   params: Iterable[torch.Tensor], clip: float = 1.0) -> None:
    """zero_grad -> loss.backward() -> clip the gradient norm of ``params`` at ``clip`` -> step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """The learning rate of every parameter group."""
    for group in opt.param_groups:
        group["lr"] = lr
