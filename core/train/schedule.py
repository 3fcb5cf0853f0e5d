"""Learning-rate schedules: linear warm-up then cosine decay, and a linear decay.

- ``warmup_cosine``: the rate rises linearly over ``warmup`` steps ((step + 1) / warmup of
  the peak, so step 0 already moves the weights; Goyal et al. 2017, "Accurate, Large
  Minibatch SGD", Sec. 2.2), then follows half a cosine from the peak down to
  ``floor`` x peak at step ``steps`` (Loshchilov & Hutter 2017, "SGDR", eq. 5, one
  cycle without restarts). floor = 1 keeps the peak after the warm-up (a warm-up alone).
- ``default_warmup``: 5 % of the steps, at least one.
- ``linear_decay``: word2vec's rate, alpha -> min_alpha in proportion to the training
  done (Mikolov et al. 2013; gensim's ``alpha``/``min_alpha``).

Every live training run of the atlas takes its rate from here. Pure functions of
Python numbers (no torch), so a rate can be checked against the formula by hand.
Does not handle: restarts, step decay, the inverse-square-root schedule (Vaswani et
al. 2017, eq. 3).
"""

from __future__ import annotations

import math


def default_warmup(steps: int) -> int:
    """Warm-up steps of a run of ``steps``: 5 %, at least 1."""
    return max(1, steps // 20)


def warmup_cosine(step: int, steps: int, warmup: int, peak: float = 1.0, floor: float = 0.1) -> float:
    """The rate at 0-based ``step`` of ``steps``: linear warm-up to ``peak``, cosine to floor x peak.

    With peak = 1 it is the factor a base rate is multiplied by (a LambdaLR factor).
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min((step - warmup) / max(1, steps - warmup), 1.0)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def linear_decay(done: float, start: float, end: float) -> float:
    """``start`` at done = 0, ``end`` at done = 1 (``done``: the share of training behind us)."""
    return start - (start - end) * done
