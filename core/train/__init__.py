"""Training, once for every live run: the loop, the learning-rate schedules, curve smoothing.

Read loop.py (the step / evaluate / progress skeleton and the optimiser update), then
schedule.py (warm-up + cosine, linear decay) and smoothing.py (the trailing mean the
pages draw loss curves with).
"""

from core.train.loop import TrainLog, every_and_last, optimizer_step, set_lr, train
from core.train.schedule import default_warmup, linear_decay, warmup_cosine
from core.train.smoothing import smooth

__all__ = ["TrainLog", "default_warmup", "every_and_last", "linear_decay", "optimizer_step",
           "set_lr", "smooth", "train", "warmup_cosine"]
