"""The RNN vs Transformer page's view models: the numbers of its tables and curves, shaped for
one picture each (pure data, no Streamlit, no model logic of their own).

- the four models' configs side by side (parameters, forward FLOPs per character, sequential
  steps; core.models.sequence_models, core.measure.sequence_timing);
- loss curves (training loss smoothed by core.train's trailing mean) and the result table;
- dependent steps against sequence length (T + L - 1 for a recurrent stack, L for attention;
  Vaswani et al. 2017, Table 1);
- the gradient-flow summary (how many times smaller the gradient is at distance d);
- a gate trace as a (units, T) matrix, most variable units first.
Does not handle: formatting (units, thousands separators): the page formats.
"""

from __future__ import annotations

import numpy as np

from core.measure.sequence_timing import forward_flops, sequential_steps
from core.models.sequence_models import TrainedModels, describe, make_config, n_params, param_count
from core.train import smooth

DEPTH_LENGTHS = tuple(2**k for k in range(15))     # T = 1 ... 16,384 for the depth curves
FLOW_DISTANCES = (16, 64, 256, 1024)              # gradient-flow distances reported (and the longest)


def config_rows(configs: dict, block: int) -> list[dict]:
    """One row per model: kind, architecture, parameters, forward FLOPs per character at T = block,
    and the sequential steps of a forward at T = block."""
    return [{"kind": kind, "architecture": describe(cfg), "params": param_count(cfg),
             "flops_per_char": forward_flops(cfg, 1, block) / block,
             "sequential_steps": sequential_steps(cfg, block)} for kind, cfg in configs.items()]


def mean_params(trained: TrainedModels) -> float:
    """The models' mean parameter count (their budgets are matched)."""
    return sum(map(param_count, trained.configs.values())) / len(trained.configs)


def result_rows(trained: TrainedModels) -> list[dict]:
    """Per trained model: parameters counted on the module, last validation loss (nats/char),
    training seconds and characters trained on."""
    return [{"kind": kind, "params": n_params(trained.models[kind]), "val_loss": h.val_loss[-1],
             "seconds": h.seconds, "tokens": h.tokens} for kind, h in trained.history.items()]


def loss_curves(trained: TrainedModels, points: int = 50) -> dict[str, dict]:
    """kind -> steps, the training loss smoothed over about len / ``points`` steps, and the
    validation steps and losses."""
    out = {}
    for kind, h in trained.history.items():
        out[kind] = {"steps": list(h.steps), "train": smooth(h.train_loss, max(1, len(h.train_loss) // points)),
                     "val_steps": list(h.val_steps), "val": list(h.val_loss)}
    return out


def depth_curves(n_layers: int, lengths: tuple[int, ...] = DEPTH_LENGTHS) -> dict[str, list[int]]:
    """Dependent steps from the first input to the last output at each T: recurrent and attention."""
    rnn, tf = make_config("lstm", 8, n_layers), make_config("transformer", 8, n_layers)
    return {"T": list(lengths), "recurrent": [sequential_steps(rnn, T) for T in lengths],
            "transformer": [sequential_steps(tf, T) for T in lengths]}


def flow_rows(flows: dict) -> list[dict]:
    """Per model: the gradient norm at distance 0 and how many times smaller it is at each of
    FLOW_DISTANCES below the longest distance, and at the longest (None: exactly 0 there)."""
    rows = []
    for kind, f in flows.items():
        near = float(f.h_norm[f.distance == 0][0])
        longest = int(f.distance.max())
        picks = [d for d in FLOW_DISTANCES if d < longest] + ([longest] if longest > 0 else [])
        ratios = {}
        for d in picks:
            far = float(f.h_norm[f.distance == d][0])
            ratios[d] = near / far if far > 0 else None
        rows.append({"kind": kind, "near": near, "ratios": ratios})
    return rows


def gate_matrix(trace, gate: str, units: int) -> tuple[np.ndarray, np.ndarray]:
    """(units, T) activations of ``gate`` ("hidden h", "cell c" or a gate name), the ``units`` most
    variable units first, and their unit indices."""
    z = trace.gates.get(gate, trace.cell if gate == "cell c" else trace.hidden)   # (T, H)
    order = np.argsort(-z.var(axis=0))[:units]
    return z[:, order].T, order


def gate_means(trace) -> dict[str, np.ndarray]:
    """Each gate's mean over units at every time step: name -> (T,)."""
    return {name: z.mean(axis=1) for name, z in trace.gates.items()}
