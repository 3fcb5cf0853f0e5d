"""Looking inside the sequence models: gradient flow, gate activations, attention, unrolling.

- Gradient flow (Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio
  2013, Sec. 2): the norm of dLoss/dh_t for a loss at the last position T,
  against the distance T - t. The recurrent models are unrolled one step at a
  time through the module itself so that h_t is a real node of the graph (a
  fused cuDNN/oneDNN call hides the per-step states), and the gradient comes
  from ``torch.autograd.grad`` (parameters' ``.grad`` are never touched). For
  the Transformer the per-position "state" is its residual-stream input
  (token embedding + position) at position t.
- Gate activations: LSTM (i, f, g, o) and GRU (r, z, n) gates computed
  explicitly from the module's own weights (PyTorch's equations in the
  nn.LSTM / nn.GRU documentation) and checked against the module's outputs.
- Attention probabilities from the Transformer's reference path, checked
  against the fused scaled_dot_product_attention path.
- Unrolled computation graphs (networkx) and their longest path: T steps for
  an RNN, L layers for a Transformer (Vaswani et al. 2017, Sec. 4, Table 1,
  "sequential operations").
Does not handle: bidirectional or projected (proj_size) LSTMs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.data.char_data import corpus_window
from core.models.sequence_models import RecurrentLM, TransformerLM, cpu_threads
from core.runtime.device import oom_guard
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import ValidationError, check_float, check_int

MAX_PROBE_T = 4096          # characters in a gradient-flow probe
MAX_TRACE_T = 1024          # characters in a gate trace / attention map
MAX_GRAPH_T = 64            # positions in a drawn unrolling graph
MAX_GRAPH_LAYERS = 6
PROBE_TIME_LIMIT_S = 120.0  # one gradient-flow probe


def _on_model(idx, model: nn.Module) -> torch.Tensor:
    """Token ids (tensor or sequence; 1-D means one sequence) as (B, T) int64 on the model's device."""
    idx = torch.as_tensor(idx, dtype=torch.long)
    if idx.ndim == 1:
        idx = idx[None, :]
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValidationError("The text is empty.")
    vocab = model.embed.num_embeddings
    if int(idx.min()) < 0 or int(idx.max()) >= vocab:
        raise ValidationError(f"Token ids must lie in [0, {vocab - 1}].")
    return idx.to(next(model.parameters()).device)


# ---------------------------------------------------------------- gradient flow
@dataclass(frozen=True)
class GradientFlow:
    kind: str                       # "rnn" | "lstm" | "gru" | "transformer"
    distance: np.ndarray            # (T,) T - 1 - t: steps between position t and the loss
    h_norm: np.ndarray              # (T,) ||dL/dh_t|| (all layers' h_t; Transformer: dL/dx_t)
    c_norm: np.ndarray | None       # (T,) ||dL/dc_t|| of the LSTM cell state, else None
    loss: float                     # the cross-entropy at the last position (nats)


def gradient_flow(model: nn.Module, idx: torch.Tensor, recurrent_scale: float = 1.0,
                  threads: int | None = 1, on_wait=None) -> GradientFlow:
    """||dL/dh_t|| for the loss of predicting idx[:, T] from idx[:, :T]; idx is (B, T + 1).

    Norms are averaged over the batch. ``recurrent_scale`` multiplies the
    recurrent matrices W_hh (of a copy) to show vanishing (< 1) or exploding (> 1).
    ``threads``: CPU torch threads (see core.models.sequence_models.cpu_threads). Runs
    as a heavy job (T steps one after another, then their backward).
    """
    idx = _on_model(idx, model)                                     # (B, T + 1)
    T = check_int("Probe length", idx.shape[1] - 1, 1, MAX_PROBE_T)
    scale = check_float("Recurrent weight scale", recurrent_scale, 0.0, 10.0)
    probe = copy.deepcopy(model).train().requires_grad_(False)      # cuDNN backward needs train()
    inputs, target = idx[:, :T], idx[:, T]                          # (B, T), (B,)
    with heavy_job("gradient-flow probe", idx.device, time_limit_s=PROBE_TIME_LIMIT_S,
                   on_wait=on_wait) as job, \
            oom_guard("The gradient probe", idx.device, hint="Use a shorter window."), \
            cpu_threads(idx.device, threads):
        if isinstance(probe, TransformerLM):
            return _transformer_flow(probe, inputs, target)
        if scale != 1.0:
            with torch.no_grad():
                for name, p in probe.rnn.named_parameters():
                    if name.startswith("weight_hh"):
                        p.mul_(scale)
        return _recurrent_flow(probe, inputs, target, job.check)


def gradient_flows(models: dict[str, nn.Module], data: torch.Tensor, length: int, seed: int = 0,
                   recurrent_scale: float = 1.0, batch: int = 4, on_wait=None) -> dict[str, GradientFlow]:
    """:func:`gradient_flow` of every model (kind -> GradientFlow) on the same ``batch`` windows of
    ``length`` + 1 ids drawn from ``data`` (validation text) with ``seed``."""
    windows = corpus_window(data, length + 1, seed, batch)                   # (B, T + 1)
    return {kind: gradient_flow(model, windows, recurrent_scale=recurrent_scale, on_wait=on_wait)
            for kind, model in models.items()}


def _recurrent_flow(model: RecurrentLM, inputs, target, check=None) -> GradientFlow:
    x = model.embed(inputs).detach().requires_grad_(True)           # (B, T, E)
    state, states = None, []
    for t in range(inputs.shape[1]):
        if check is not None and t % 256 == 0:
            check()                                                 # the job's time limit
        _, state = model.step(x[:, t:t + 1], state)                 # state: (L, B, H) or (h, c)
        states.append(state)
    is_lstm = model.config.kind == "lstm"
    hs = [s[0] if is_lstm else s for s in states]                   # each (L, B, H)
    loss = F.cross_entropy(model.head(hs[-1][-1]), target)          # top layer's h_T: (B, H)
    cs = [s[1] for s in states] if is_lstm else []
    grads = torch.autograd.grad(loss, hs + cs, allow_unused=True)
    h_norm = _batch_norms(grads[: len(hs)])
    c_norm = _batch_norms(grads[len(hs):]) if is_lstm else None
    T = inputs.shape[1]
    return GradientFlow(model.config.kind, np.arange(T - 1, -1, -1), h_norm, c_norm, float(loss.detach()))


def _batch_norms(grads) -> np.ndarray:
    """Per time step: ||g_t|| over layers and features, averaged over the batch. -> (T,)"""
    rows = [torch.zeros(()) if g is None else g.detach().transpose(0, 1).flatten(1).norm(dim=1).mean()
            for g in grads]                                         # g: (L, B, H)
    return torch.stack([r.double().cpu() for r in rows]).numpy()


def _transformer_flow(model: TransformerLM, inputs, target) -> GradientFlow:
    x = model.embed_tokens(inputs).detach().requires_grad_(True)    # (B, T, C)
    logits, _ = model.forward_embeddings(x)                         # (B, T, V)
    loss = F.cross_entropy(logits[:, -1], target)
    (g,) = torch.autograd.grad(loss, [x])                           # (B, T, C)
    h_norm = g.norm(dim=-1).mean(dim=0).double().cpu().numpy()      # (T,)
    T = inputs.shape[1]
    return GradientFlow("transformer", np.arange(T - 1, -1, -1), h_norm, None, float(loss.detach()))


# ---------------------------------------------------------------- gates
@dataclass(frozen=True)
class GateTrace:
    kind: str                       # "rnn" | "lstm" | "gru"
    layer: int                      # which layer's gates are returned (0 = first)
    gates: dict[str, np.ndarray]    # gate name -> (T, H) activations of that layer
    hidden: np.ndarray              # (T, H) h_t of that layer
    cell: np.ndarray | None         # (T, H) c_t of that layer (LSTM), else None
    max_abs_error: float            # explicit vs module: top-layer outputs and final states


GATE_NAMES = {"lstm": (N_("input i"), N_("forget f"), N_("cell candidate g"), N_("output o")),
              "gru": (N_("reset r"), N_("update z"), N_("new n")), "rnn": ()}


@torch.no_grad()
def gate_trace(model: RecurrentLM, idx: torch.Tensor, layer: int = 0,
               threads: int | None = 1) -> GateTrace:
    """Gates of every time step for one sequence idx (1, T), computed from the weights."""
    if not isinstance(model, RecurrentLM):
        raise ValidationError("Gate traces need a recurrent model (RNN, LSTM or GRU).")
    idx = _on_model(idx, model)                                     # (1, T)
    check_int("Text length", idx.shape[1], 1, MAX_TRACE_T)
    layer = check_int("Layer", layer, 0, model.config.n_layers - 1)
    with cpu_threads(idx.device, threads):
        return _gate_trace(model, idx, layer)


def _gate_trace(model: RecurrentLM, idx: torch.Tensor, layer: int) -> GateTrace:
    x = model.embed(idx[:1])[0]                                     # (T, E)
    traces = []
    for i in range(model.config.n_layers):
        traces.append(_layer_gates(model.rnn, model.config.kind, i, x))
        x = traces[-1]["h"]                                         # (T, H) input of next layer
    ref_out, ref_state = model.rnn(model.embed(idx[:1]))            # (1, T, H)
    err = _trace_error(traces, ref_out[0], ref_state, model.config.kind)
    chosen = traces[layer]
    names = GATE_NAMES[model.config.kind]
    gates = {n: chosen[n].cpu().double().numpy() for n in names}
    cell = chosen["c"].cpu().double().numpy() if "c" in chosen else None
    return GateTrace(model.config.kind, layer, gates, chosen["h"].cpu().double().numpy(), cell, err)


def _layer_gates(rnn: nn.RNNBase, kind: str, layer: int, x: torch.Tensor) -> dict:
    """Explicit recurrence of one layer over x (T, E_in): gates, h and c as (T, H) tensors."""
    w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
    b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
    xi = x @ w_ih.T + b_ih                                          # (T, G*H)
    H = w_hh.shape[1]
    h = x.new_zeros(H)
    c = x.new_zeros(H)
    rows: dict[str, list] = {n: [] for n in (*GATE_NAMES[kind], "h", "c")}
    for t in range(x.shape[0]):
        hh = w_hh @ h + b_hh                                        # (G*H,)
        if kind == "lstm":
            i, f, g, o = (xi[t] + hh).chunk(4)
            i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
            c = f * c + i * g
            h = o * c.tanh()
            values = (i, f, g, o)
        elif kind == "gru":
            (xr, xz, xn), (hr, hz, hn) = xi[t].chunk(3), hh.chunk(3)
            r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
            n = (xn + r * hn).tanh()
            h = (1 - z) * n + z * h
            values = (r, z, n)
        else:
            h, values = (xi[t] + hh).tanh(), ()
        for name, v in zip((*GATE_NAMES[kind], "h", "c"), (*values, h, c), strict=True):
            rows[name].append(v)
    out = {n: torch.stack(v) for n, v in rows.items()}              # each (T, H)
    if kind != "lstm":
        out.pop("c")
    return out


def _trace_error(traces: list[dict], ref_out: torch.Tensor, ref_state, kind: str) -> float:
    """Max |explicit - module| over the top layer's outputs and every layer's final h (and c)."""
    errs = [(traces[-1]["h"] - ref_out).abs().max()]
    h_last = ref_state[0] if kind == "lstm" else ref_state          # (L, 1, H)
    for i, tr in enumerate(traces):
        errs.append((tr["h"][-1] - h_last[i, 0]).abs().max())
        if kind == "lstm":
            errs.append((tr["c"][-1] - ref_state[1][i, 0]).abs().max())
    return float(torch.stack(errs).max())


# ---------------------------------------------------------------- attention
@dataclass(frozen=True)
class AttentionMaps:
    probs: np.ndarray               # (L, H, T, T) attention probabilities (rows sum to 1)
    max_abs_error: float            # logits: reference attention path vs fused SDPA path


@torch.no_grad()
def attention_maps(model: TransformerLM, idx: torch.Tensor, threads: int | None = 1) -> AttentionMaps:
    """Every layer's and head's attention on one sequence idx (1, T)."""
    if not isinstance(model, TransformerLM):
        raise ValidationError("Attention maps need the Transformer.")
    idx = _on_model(idx, model)                                     # (1, T)
    check_int("Text length", idx.shape[1], 1, MAX_TRACE_T)
    with cpu_threads(idx.device, threads):
        ref_logits, _, internals = model(idx[:1], return_internals=True)   # (1, T, V)
        fused_logits, _ = model(idx[:1])
    probs = torch.stack([p[0] for p in internals.attention])           # (L, H, T, T)
    err = float((ref_logits - fused_logits).abs().max())
    return AttentionMaps(probs.double().cpu().numpy(), err)


# ---------------------------------------------------------------- unrolling graphs
@dataclass(frozen=True)
class UnrollGraph:
    graph: object                   # networkx.DiGraph; node attrs "pos" (x, y) and "role"
    path: tuple                     # nodes of the longest path (first input -> last output)
    depth: int                      # edges on that path: the sequential steps
    n_edges: int                    # edges in the graph (dependencies)


def rnn_graph(T: int, n_layers: int = 1) -> UnrollGraph:
    """Unrolled RNN: x_t -> h^1_t -> ... -> h^L_t -> y_t, and h^l_{t-1} -> h^l_t."""
    T, L = _check_graph(T, n_layers)
    g = _layered_nodes(T, L, "h")
    for t in range(T):
        for level in range(1, L + 1):
            g.add_edge(("x", 0, t) if level == 1 else ("h", level - 1, t), ("h", level, t))
            if t > 0:
                g.add_edge(("h", level, t - 1), ("h", level, t))
        g.add_edge(("h", L, t), ("y", L + 1, t))
    return _with_path(g, ("x", 0, 0), ("y", L + 1, T - 1))


def transformer_graph(T: int, n_layers: int = 1) -> UnrollGraph:
    """Causal self-attention: position t of layer l reads positions s <= t of layer l - 1."""
    T, L = _check_graph(T, n_layers)
    g = _layered_nodes(T, L, "z")
    for level in range(1, L + 1):
        below = "x" if level == 1 else "z"
        for t in range(T):
            for s in range(t + 1):
                g.add_edge((below, level - 1, s), ("z", level, t))
    for t in range(T):
        g.add_edge(("z", L, t), ("y", L + 1, t))
    return _with_path(g, ("x", 0, 0), ("y", L + 1, T - 1))


def _layered_nodes(T: int, L: int, state: str):
    """A DiGraph with the nodes alone: inputs x_t, states (state, level, t), outputs y_t."""
    import networkx as nx  # start-up cost: networkx takes ~0.15 s to import

    g = nx.DiGraph()
    for t in range(T):
        g.add_node(("x", 0, t), pos=(t, 0), role="input")
        g.add_node(("y", L + 1, t), pos=(t, L + 1), role="output")
        for level in range(1, L + 1):
            g.add_node((state, level, t), pos=(t, level), role="state")
    return g


def _check_graph(T: int, n_layers: int) -> tuple[int, int]:
    return (check_int("Positions T", T, 1, MAX_GRAPH_T),
            check_int("Layers", n_layers, 1, MAX_GRAPH_LAYERS))


def _with_path(g, source, target) -> UnrollGraph:
    """The longest path from the first input to the last output (a DAG: dynamic programming)."""
    import networkx as nx  # start-up cost: networkx takes ~0.15 s to import

    best = {source: (0, None)}
    for node in nx.topological_sort(g):
        if node not in best:
            continue
        for nxt in g.successors(node):
            if nxt not in best or best[node][0] + 1 > best[nxt][0]:
                best[nxt] = (best[node][0] + 1, node)
    path, node = [], target
    while node is not None:
        path.append(node)
        node = best[node][1]
    return UnrollGraph(g, tuple(reversed(path)), best[target][0], g.number_of_edges())


def edge_coordinates(ug: UnrollGraph) -> dict[str, tuple[list, list]]:
    """Line coordinates (x, y with None between segments) for "edges" and "path" edges."""
    on_path = set(zip(ug.path, ug.path[1:], strict=False))
    out = {"edges": ([], []), "path": ([], [])}
    for u, v in ug.graph.edges:
        xs, ys = out["path" if (u, v) in on_path else "edges"]
        (x0, y0), (x1, y1) = ug.graph.nodes[u]["pos"], ug.graph.nodes[v]["pos"]
        xs.extend((x0, x1, None))
        ys.extend((y0, y1, None))
    return out


def unroll_view(T: int, n_layers: int) -> dict[str, dict]:
    """The RNN's and the Transformer's unrolled graphs flattened for a plot: edge and longest-path
    line coordinates, nodes as (position, role, node), the path, its depth and the edge count."""
    out = {}
    for name, build in (("rnn", rnn_graph), ("transformer", transformer_graph)):
        ug = build(T, n_layers)
        nodes = [(d["pos"], d["role"], n) for n, d in ug.graph.nodes(data=True)]
        out[name] = {"coords": edge_coordinates(ug), "nodes": nodes, "path": ug.path, "depth": ug.depth,
                     "n_edges": ug.n_edges}
    return out
