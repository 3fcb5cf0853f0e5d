"""RNN vs Transformer: unrolling, training, measured time, gradient flow, gates, memory, attention,
and the real SmolLM2 continuing the toy models' prompt."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import cache, ui
from app.cache import sequence_models as sequence_models_cache
from app.i18n import N_, t, tr
from core.data import char_data
from core.measure import sequence_timing
from core.models import sequence_models, sequence_probes
from core.runtime.validation import ResourceError, ValidationError

KINDS = sequence_models.KINDS
LABELS = sequence_models.LABELS
COLORS = {"rnn": ui.PALETTE[0], "lstm": ui.PALETTE[1], "gru": ui.PALETTE[2], "transformer": ui.PALETTE[3]}
BUDGETS = [25_000, 50_000, 100_000, 200_000, 400_000, 800_000]
PROBE_TEXT = ("The history of the city begins with a small settlement on the river, "  # i18n: skip (English input:
              "which grew into a trading port in the twelfth century.")  # i18n: skip (the models read English)
MAX_PROBE_CHARS = 240                # characters shown in gate and attention heatmaps
MAX_PROMPT_CHARS = 200
SEED = 0                             # the samples' seed (toy models and SmolLM2 alike)

TABS = (N_("Training"), N_("Unrolling"), N_("Time vs length"), N_("Gradient flow"), N_("LSTM/GRU gates"),
        N_("Long-range memory"), N_("Attention"))
HIDDEN, CELL = N_("hidden h"), N_("cell c")      # shown beside the gates (core's GATE_NAMES)

ui.page_header(
    t("RNN vs Transformer"),
    t("A vanilla **RNN**, an **LSTM**, a **GRU** and a small causal **Transformer** with the same "
      "parameter budget, trained live on Wikipedia text, character by character. An RNN must read "
      "token after token (hₜ waits for hₜ₋₁); attention links every position in one step. Below: "
      "the unrolled graphs, loss curves, time measured on this device, gradients across distance, "
      "LSTM/GRU gates, a long-range recall task and the Transformer's attention on your text."),
)
device = cache.device_name()


def architecture(cfg) -> str:
    """core's describe(cfg) ("2 x LSTM, hidden 96", "2 blocks, d=64, 4 heads, d_ff=256") in the
    session's language."""
    if cfg.kind != "transformer":
        return t("{layers} x {model}, hidden {hidden}", layers=cfg.n_layers, model=LABELS[cfg.kind],
                 hidden=cfg.d_hidden)
    blocks = t("1 block") if cfg.n_layers == 1 else t("{n} blocks", n=cfg.n_layers)
    heads = t("1 head") if cfg.n_heads == 1 else t("{n} heads", n=cfg.n_heads)
    return t("{blocks}, d={d}, {heads}, d_ff={d_ff}", blocks=blocks, d=cfg.d_model, heads=heads, d_ff=cfg.d_ff)


def labels_of(values) -> dict:
    """Each option's label in this run's language, for format_func (AppTest calls it after the run)."""
    return {v: tr(v) for v in values}


def legend_room(fig: go.Figure) -> go.Figure:
    """Leave room above the plot for the horizontal legend (it sits above the axes)."""
    fig.update_layout(margin={"t": 70})
    return fig


# ---------------------------------------------------------------- models and training
def training_controls() -> tuple[int, int, sequence_models.TrainConfig]:
    c = st.columns(6)
    budget = c[0].select_slider(t("Parameter budget"), BUDGETS, 100_000, key="rvt_budget",
                                format_func=ui.fmt_count)
    layers = c[1].select_slider(t("Layers"), [1, 2, 3], 2, key="rvt_layers")
    steps = c[2].slider(t("Training steps"), 20, 2000, 200, 10, key="rvt_steps")
    batch = c[3].select_slider(t("Batch (windows)"), [8, 16, 32, 64], 32, key="rvt_batch")
    block = c[4].select_slider(t("Window (characters)"), [32, 64, 128, 256], 64, key="rvt_block")
    lr = c[5].select_slider(t("Learning rate"), [1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2], 1e-2, key="rvt_lr",
                            format_func=lambda v: f"{v:g}")
    train = sequence_models.TrainConfig(steps=int(steps), batch=int(batch), block=int(block),
                                        lr=float(lr), eval_every=max(int(steps) // 10, 1))
    return int(budget), int(layers), train


def config_table(configs: dict, block: int) -> pd.DataFrame:
    return pd.DataFrame([{
        t("Model"): LABELS[r["kind"]], t("Architecture"): architecture(configs[r["kind"]]),
        t("Parameters"): f"{r['params']:,}", t("Forward FLOPs / char"): ui.fmt_count(r["flops_per_char"]),
        t("Sequential steps (T = {block})", block=block): r["sequential_steps"],
    } for r in sequence_models_cache.config_rows(configs, block)])


def trained_models():
    """The trained models of this session's last Train click, else the models at initialisation."""
    spec = st.session_state.get("rvt_spec")
    if spec is not None:
        try:
            return train_with_progress(spec)
        except ResourceError as exc:             # time limit or memory: say so, fall back
            ui.show_error(exc)
            del st.session_state["rvt_spec"]
    budget, layers = st.session_state.get("rvt_budget", 100_000), st.session_state.get("rvt_layers", 2)
    return sequence_models_cache.fresh(sequence_models_cache.configs(budget, layers), device)


def train_with_progress(spec: dict):
    configs = sequence_models_cache.configs(spec["budget"], spec["layers"])
    return ui.run_with_progress(sequence_models_cache.trained, configs, spec["train"], device,
                                text=t("Training the four models…"))


def need_models():
    """The models for the analyses, or a clear message when they could not be set up."""
    if trained is None:
        raise ValidationError(N_("The models could not be set up (see the message at the top)."))
    return trained


st.subheader(t("The four models"))
trained, corpus, budget, layers = None, None, 100_000, 2
with ui.guard():
    with st.spinner(t("Loading the Wikipedia sample…")):
        corpus = sequence_models_cache.corpus()
    budget, layers, train_cfg = training_controls()
    configs = sequence_models_cache.configs(budget, layers)
    st.dataframe(config_table(configs, train_cfg.block), hide_index=True, width="stretch")
    if st.button(t("Train the four models"), key="rvt_train", type="primary", icon=":material/school:"):
        st.session_state["rvt_spec"] = {"budget": budget, "layers": layers, "train": train_cfg}
    st.caption(t("Character level: {vocab} symbols (printable ASCII, newline, and � for anything else). "
                 "Training text: gensim's Wikipedia sample, {train:,} characters (validation: {val:,}, other "
                 "articles). Every model sees the same batches; Adam with warm-up and cosine decay, "
                 "gradient clipping at 1.", vocab=char_data.VOCAB_SIZE, train=corpus.train.numel(),
                 val=corpus.val.numel()))
    trained = trained_models()
    if trained.train is None:
        st.info(t("The analyses below use the models **at initialisation** until you press *Train*: "
                  "gradient flow at initialisation is the classic picture; gates and attention become "
                  "meaningful after training (about a minute per model on 2 CPU cores at the defaults)."),
                icon=":material/info:")
    else:
        run = trained.train
        mean_params = sequence_models_cache.mean_params(trained)
        st.success(t("Using models trained for {steps:,} steps ({batch} × {block} characters per step, learning "
                     "rate {lr:g}), ≈ {params} parameters each. Change the settings and press *Train* again to "
                     "retrain.", steps=run.steps, batch=run.batch, block=run.block, lr=run.lr,
                     params=ui.fmt_count(mean_params)),
                   icon=":material/check_circle:")

tabs = st.tabs([tr(name) for name in TABS])


# ---------------------------------------------------------------- training tab
def loss_figure(trained) -> go.Figure:
    fig = go.Figure()
    train_hover = t("step %{{x}}: %{{y:.3f}} nats/char (train, smoothed)<extra>{model}</extra>")
    val_hover = t("step %{{x}}: %{{y:.3f}} nats/char (validation)<extra>{model}</extra>")
    for kind, h in sequence_models_cache.loss_curves(trained).items():
        fig.add_scatter(x=h["steps"], y=h["train"], mode="lines", name=LABELS[kind],
                        line={"color": COLORS[kind], "width": 1.5}, legendgroup=kind,
                        hovertemplate=train_hover.format(model=LABELS[kind]))
        fig.add_scatter(x=h["val_steps"], y=h["val"], mode="markers+lines", name=LABELS[kind],
                        line={"color": COLORS[kind], "dash": "dot"}, legendgroup=kind, showlegend=False,
                        hovertemplate=val_hover.format(model=LABELS[kind]))
    fig.add_hline(y=math.log(char_data.VOCAB_SIZE), line_dash="dash", line_color="#868E96",
                  annotation_text=t("uniform guess ln {n} = {nats:.2f}", n=char_data.VOCAB_SIZE,
                                    nats=math.log(char_data.VOCAB_SIZE)))
    if trained.unigram_entropy:
        fig.add_hline(y=trained.unigram_entropy, line_dash="dot", line_color="#868E96",
                      annotation_text=t("letter frequencies only: {nats:.2f}", nats=trained.unigram_entropy),
                      annotation_position="bottom right")
    ui.style_figure(fig, x_title=t("training step"), y_title=t("cross-entropy (nats per character)"),
                    height=420)
    return legend_room(fig)


def result_table(trained) -> pd.DataFrame:
    return pd.DataFrame([{
        t("Model"): LABELS[r["kind"]], t("Parameters"): f"{r['params']:,}",
        t("Validation loss (nats/char)"): round(r["val_loss"], 3),
        t("Bits per character"): round(r["val_loss"] / math.log(2), 3),
        t("Training time"): ui.fmt_ms(1e3 * r["seconds"]),
        t("Characters / s (training)"): ui.fmt_count(r["tokens"] / r["seconds"] if r["seconds"] else None),
    } for r in sequence_models_cache.result_rows(trained)])


def samples_section(trained) -> None:
    c1, c2, c3 = st.columns([3, 1, 1])
    prompt = c1.text_input(t("Prompt"), "The ", key="rvt_prompt", max_chars=MAX_PROMPT_CHARS)  # i18n: skip
    temperature = c2.slider(t("Temperature"), 0.0, 1.5, 0.8, 0.05, key="rvt_temp")
    n_new = c3.slider(t("Characters"), 50, 500, 200, 50, key="rvt_nchars")
    prepared = sequence_models_cache.prepare_text(prompt, MAX_PROMPT_CHARS)
    unknown_notice(prepared)
    samples = sequence_models_cache.samples(trained, prepared.encoded.ids, int(n_new), float(temperature), SEED)
    cols = st.columns(2)
    for i, (kind, text) in enumerate(samples.items()):
        with cols[i % 2]:
            st.markdown(f"**{LABELS[kind]}**")
            st.code(prepared.encoded.text + text, language=None, wrap_lines=True)
    with ui.guard():
        llm_section(trained, prepared.encoded.text, int(n_new), float(temperature))


def llm_section(trained, prompt: str, n_chars: int, temperature: float) -> None:
    """SmolLM2 continues the same prompt, same characters, temperature and seed."""
    st.markdown(t("**SmolLM2-135M-Instruct**, a real pretrained LLM, continues the same prompt"))
    wait = st.empty()
    with st.spinner(t("SmolLM2 is writing…")):
        out = sequence_models_cache.llm_continuation(device, prompt, n_chars, temperature, SEED,
                                                     _on_wait=ui.wait_callback(wait))
    wait.empty()
    with st.container(border=True):
        st.text(prompt + out.text, width="stretch")
    toy = next(r for r in sequence_models_cache.result_rows(trained) if r["kind"] == "transformer")
    how = t("greedy (temperature 0)") if temperature == 0 else \
        t("temperature {temperature:g}, seed {seed}", temperature=temperature, seed=SEED)
    end = t(" (it ended its text early)") if out.stopped else ""
    st.caption(t(
        "The same architecture family at **{ratio:,.0f}× the parameters**, trained on trillions of tokens: a "
        "decoder-only Transformer like the toy one (Llama-style: RMSNorm, RoPE, SwiGLU, grouped-query "
        "attention), {params:,} parameters against the toy Transformer's {toy:,}, pretrained on about 2 "
        "trillion tokens (Allal et al. 2025) against {chars:,} characters here, and reading {vocab:,} "
        "byte-level BPE tokens instead of {symbols} characters. {tokens} tokens in {seconds:.1f} s on "
        "{device}, {how}; the prompt as plain text, no chat template{end}.",
        ratio=out.params / toy["params"], params=out.params, toy=toy["params"], chars=toy["tokens"],
        vocab=out.vocab, symbols=char_data.VOCAB_SIZE, tokens=out.tokens, seconds=out.seconds, device=device,
        how=how, end=end))


def unknown_notice(prepared) -> None:
    ui.notice_truncated(prepared.checked, len(prepared.checked.text))
    if prepared.encoded.unknown:
        shown = " ".join(prepared.encoded.unknown[:30])
        st.warning(t("{n} character(s) are outside the models' {vocab}-symbol vocabulary and were replaced "
                     "by �: {chars}", n=len(prepared.encoded.unknown), vocab=char_data.VOCAB_SIZE, chars=shown),
                   icon=":material/warning:")


with tabs[0], ui.guard():
    if trained is None or trained.train is None:
        st.info(t("Press **Train the four models** above: the loss curves, the table and text sampled "
                  "from each model appear here, beside the real SmolLM2 continuing the same prompt."),
                icon=":material/school:")
    else:
        ui.plot(loss_figure(trained), key="rvt_loss")
        st.caption(t("Solid: training loss of each batch (trailing mean); dotted with markers: loss on "
                     "held-out validation text. Lower is better; the grey lines are a uniform guess "
                     "over the 97 symbols and a model that only knows letter frequencies."))
        st.dataframe(result_table(trained), hide_index=True, width="stretch")
        st.markdown(t("**Samples** (each model continues your prompt one character at a time, "
                      "carrying its state: h_t for the RNNs, the key/value cache for the Transformer)"))
        samples_section(trained)


# ---------------------------------------------------------------- unrolling tab
ROLE_COLORS = {"input": "#868E96", "state": ui.PALETTE[0], "output": ui.PALETTE[2]}


def graph_figure(g: dict, T: int, n_layers: int, title: str, state_name: str) -> go.Figure:
    fig = go.Figure()
    xs, ys = g["coords"]["edges"]
    fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": "rgba(134,142,150,0.35)", "width": 1},
                    hoverinfo="skip", name=t("dependency"))
    xs, ys = g["coords"]["path"]
    fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": ui.PALETTE[1], "width": 4},
                    hoverinfo="skip", name=t("longest path ({n} edges)", n=g["depth"]))
    for role, color in ROLE_COLORS.items():
        pts = [(p, n) for p, r, n in g["nodes"] if r == role]
        fig.add_scatter(x=[p[0] for p, _ in pts], y=[p[1] for p, _ in pts], mode="markers",
                        marker={"size": 11, "color": color, "line": {"width": 1, "color": "white"}},
                        name=role, text=[node_label(n, state_name) for _, n in pts],
                        hovertemplate="%{text}<extra></extra>", showlegend=False)
    levels = [t("input x_t"), *[t("layer {n}", n=i) for i in range(1, n_layers + 1)], t("output y_t")]
    fig.update_yaxes(tickvals=list(range(n_layers + 2)), ticktext=levels, range=[-0.5, n_layers + 1.5])
    fig.update_xaxes(tickvals=list(range(T)), range=[-0.5, T - 0.5])
    ui.style_figure(fig, x_title=t("position t"), y_title=None, height=300 + 40 * n_layers, title=title)
    fig.update_layout(margin={"t": 80}, legend={"y": 1.0, "yanchor": "bottom"}, title={"y": 0.97})
    return fig


def node_label(node: tuple, state_name: str) -> str:
    kind, level, pos = node
    if kind == "x":
        return t("input x_{t}", t=pos)
    if kind == "y":
        return t("output y_{t}", t=pos)
    return t("{state}^{level}_{t} (layer {level}, position {t})", state=state_name, level=level, t=pos)


def depth_figure(n_layers: int) -> go.Figure:
    curves = sequence_models_cache.depth_curves(n_layers)
    fig = go.Figure()
    fig.add_scatter(x=curves["T"], y=curves["recurrent"], name="RNN / LSTM / GRU: T + L − 1",  # i18n: skip
                    line={"color": COLORS["rnn"]},
                    hovertemplate=t("T = %{x:,}: %{y:,} dependent steps<extra>RNN / LSTM / GRU</extra>"))
    fig.add_scatter(x=curves["T"], y=curves["transformer"], name="Transformer: L",  # i18n: skip
                    line={"color": COLORS["transformer"]},
                    hovertemplate=t("T = %{x:,}: %{y:,} dependent steps<extra>Transformer</extra>"))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    ui.style_figure(fig, x_title=t("sequence length T (positions, log)"),
                    y_title=t("dependent steps, first input → last output (log)"), height=300)
    return legend_room(fig)


with tabs[1], ui.guard():
    c1, c2 = st.columns(2)
    T = c1.slider(t("Positions T"), 2, 24, 8, key="rvt_graph_T")
    g_layers = c2.select_slider(t("Layers L"), [1, 2, 3], 2, key="rvt_graph_layers")
    graphs = sequence_models_cache.unroll(int(T), int(g_layers))
    left, right = st.columns(2)
    with left:
        ui.plot(graph_figure(graphs["rnn"], T, g_layers, t("RNN unrolled over time"), "h"), key="rvt_g_rnn")
        st.caption(t("{n:,} dependencies; longest path **{depth} edges** (T + L): h_t cannot start before "
                     "h_(t−1) is done.", n=graphs["rnn"]["n_edges"], depth=graphs["rnn"]["depth"]))
    with right:
        ui.plot(graph_figure(graphs["transformer"], T, g_layers, t("Causal self-attention"), "z"),
                key="rvt_g_tf")
        st.caption(t("{n:,} dependencies (every position reads all earlier ones); longest path **{depth} "
                     "edges** (L + 1), whatever T: all positions of a layer run in parallel.",
                     n=graphs["transformer"]["n_edges"], depth=graphs["transformer"]["depth"]))
    ui.plot(depth_figure(int(g_layers)), key="rvt_depth")
    st.caption(t("The trade: the Transformer does O(T²) work per layer but only L sequential steps; "
                 "the RNN does O(T) work but T sequential steps (Vaswani et al. 2017, Table 1)."))


# ---------------------------------------------------------------- time vs length tab
LENGTHS = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
DASH = {"forward": "solid", "forward+backward": "dash"}


def timing_figure(rows: list[dict], y: str, y_title: str) -> go.Figure:
    fig = go.Figure()
    df = pd.DataFrame(rows)
    df = df[df["median_ms"].notna()]
    for (kind, mode), part in df.groupby(["kind", "mode"], sort=False):
        name = f"{LABELS[kind]} {tr(mode)}"
        fig.add_scatter(x=part["T"], y=part[y], mode="lines+markers", name=name,
                        line={"color": COLORS[kind], "dash": DASH[mode]},
                        hovertemplate="T = %{x:,}: %{y:,.3~s}<extra>" + name + "</extra>")  # i18n: skip
    fig.update_xaxes(type="log", tickvals=sorted(df["T"].unique()))
    fig.update_yaxes(type="log")
    ui.style_figure(fig, x_title=t("sequence length T (characters, log)"), y_title=y_title,
                    height=420)
    return legend_room(fig)


def timing_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        t("Model"): r["model"], t("Mode"): tr(r["mode"]), "T": r["T"], t("Batch"): r["batch"],
        t("Median"): ui.fmt_ms(r["median_ms"]),
        t("Tokens / s"): ui.fmt_count(r["tokens_per_s"]),
        t("GFLOP (analytic)"): round(r["flops"] / 1e9, 3),
        t("Sequential steps"): r["sequential_steps"], t("Status"): tr(r["status"]),
    } for r in rows])


def winners(rows: list[dict], mode: str) -> str:
    """"T = 64: GRU · T = 4,096: Transformer" — fastest model per length for one mode."""
    df = pd.DataFrame([r for r in rows if r["mode"] == mode and r["median_ms"] is not None])
    if df.empty:
        return "—"
    best = df.loc[df.groupby("T")["median_ms"].idxmin()]
    return " · ".join(f"T = {T:,}: **{m}**" for T, m in zip(best["T"], best["model"], strict=True))


def gen_figure(rows: list[dict]) -> go.Figure:
    fig = go.Figure()
    df = pd.DataFrame(rows)
    df = df[df["tokens_per_s"].notna()]
    hover = t("%{{x:,}} tokens: %{{y:,.0f}} tokens/s<extra>{model}</extra>")
    for (kind, mode), part in df.groupby(["kind", "mode"], sort=False):
        fig.add_scatter(x=part["n_tokens"], y=part["tokens_per_s"], mode="lines+markers",
                        name=f"{LABELS[kind]} ({tr(mode)})",
                        line={"color": COLORS[kind], "dash": "dot" if mode == "recompute" else "solid"},
                        hovertemplate=hover.format(model=LABELS[kind]))
    fig.update_xaxes(type="log", tickvals=sorted(df["n_tokens"].unique()))
    fig.update_yaxes(type="log")
    ui.style_figure(fig, x_title=t("tokens generated (log)"), y_title=t("tokens per second (log)"),
                    height=380)
    return legend_room(fig)


def gen_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        t("Model"): r["model"], t("Mode"): tr(r["mode"]), t("Tokens"): r["n_tokens"], t("Batch"): r["batch"],
        t("Time"): ui.fmt_ms(r["median_ms"]), t("Tokens / s"): ui.fmt_count(r["tokens_per_s"]),
        t("State at the end"): ui.fmt_bytes(r["state_bytes"]) if r["state_bytes"] else t("— (none kept)"),
        t("Status"): tr(r["status"]),
    } for r in rows])


def show_timing(rows: list[dict], key: str) -> None:
    ui.plot(timing_figure(rows, "median_ms", t("median time per call (ms, log)")), key=f"{key}_ms")
    for mode in dict.fromkeys(r["mode"] for r in rows):
        st.markdown(t("Fastest, {mode}: {winners}", mode=tr(mode), winners=winners(rows, mode)))
    skipped = [r for r in rows if r["status"] != "ok"]
    if skipped:
        st.warning(t("{n} point(s) not measured: {why}", n=len(skipped), why="; ".join(
            dict.fromkeys(f"{r['model']} {tr(r['mode'])}: {tr(r['status'])}" for r in skipped))),
            icon=":material/memory:")
    with st.expander(t("All measured points")):
        st.dataframe(timing_table(rows), hide_index=True, width="stretch")


def recorded_section() -> None:
    runs = [r for r in cache.recorded("sequence_models") if r.get("timing")]
    if not runs:
        st.caption(t("No recorded benchmark yet (python -m bench.sequence_models writes one)."))
        return
    labels = [f"{r['meta']['device']['name']} · {r['meta']['date']}" for r in runs]
    pick = st.selectbox(t("Recorded run"), range(len(runs)), format_func=lambda i: labels[i],
                        key="rvt_recorded")
    run = runs[pick]
    cfg = run.get("config", {})
    st.caption(ui.recorded_caption(run["meta"]) + " " + t(
        "Batch {batch}, {threads}; models of {budget} parameters: {models}", batch=cfg.get("batch", "?"),
        threads=cfg.get("threads_label", "?"), budget=ui.fmt_count(cfg.get("budget")),
        models="; ".join(f"{LABELS.get(k, k)} {m['describe']}" for k, m in run.get("models", {}).items())))
    show_timing(run["timing"], "rvt_rec")
    if run.get("generation"):
        ui.plot(gen_figure(run["generation"]), key="rvt_rec_gen")


def live_timing_controls(max_T: int):
    c = st.columns([3, 1, 3, 1])
    options = [n for n in LENGTHS if n <= max_T]
    lengths = c[0].multiselect(t("Lengths T"), options, [64, 256, 1024], key="rvt_lengths")
    batch = c[1].select_slider(t("Batch"), [1, 2, 4, 8, 16], 4, key="rvt_tbatch")
    mode_labels = labels_of(sequence_timing.MODES)
    modes = c[2].multiselect(t("Modes"), list(sequence_timing.MODES), list(sequence_timing.MODES),
                             key="rvt_modes", format_func=lambda m: mode_labels.get(m, m))
    threads = None
    if device == "cpu":
        thread_labels = {"1": "1", "all": t("all")}
        one = c[3].radio(t("CPU threads"), ["1", "all"], key="rvt_threads", horizontal=True,
                         format_func=lambda v: thread_labels.get(v, v)) == "1"
        threads = 1 if one else None
    return sequence_timing.TimingSpec(lengths=tuple(sorted(lengths)), batch=int(batch),
                                      modes=tuple(modes), threads=threads)


with tabs[2]:
    st.markdown(t("Forward and forward + backward time of the four models (freshly initialised at the "
                  "budget chosen above; weights do not change the time) on random characters, median of "
                  "repeats after a warm-up. The RNNs run through torch.nn.RNN/LSTM/GRU (cuDNN on a GPU), "
                  "the Transformer through scaled_dot_product_attention."))
    with ui.guard():
        recorded_section()
    with ui.guard():
        st.markdown(t("**Measure on this device**"))
        spec = live_timing_controls(32768 if device.startswith("cuda") else 8192)
        if st.button(t("Measure time vs length"), key="rvt_time", icon=":material/timer:"):
            st.session_state["rvt_timing"] = (spec, budget, layers)
        if "rvt_timing" in st.session_state:
            t_spec, t_budget, t_layers = st.session_state["rvt_timing"]
            rows = ui.run_with_progress(sequence_models_cache.time_vs_length, sequence_models_cache.configs(t_budget, t_layers),
                                        t_spec, device)
            where = "GPU" if device != "cpu" else (t("1 thread") if t_spec.threads == 1 else t("all threads"))
            st.caption(t("Measured here on {device} ({where}), batch {batch}, {budget}-parameter models.",
                         device=device, where=where, batch=t_spec.batch, budget=ui.fmt_count(t_budget)))
            show_timing(rows, "rvt_live")
    with ui.guard():
        st.markdown(t("**Generation: tokens per second.** One token at a time from a 1-character prompt "
                      "(greedy). The RNNs carry a fixed-size state; the Transformer either keeps a "
                      "**KV cache** (one new query attends over t cached keys per step) or "
                      "**recomputes** the whole prefix each step (no cache)."))
        c = st.columns([3, 1, 1])
        n_tokens = c[0].multiselect(t("Tokens to generate"), [16, 64, 256, 1024, 2048], [64, 256],
                                    key="rvt_gen_n")
        g_batch = c[1].select_slider(t("Batch"), [1, 4, 16], 1, key="rvt_gen_batch")
        if c[2].button(t("Measure generation"), key="rvt_gen", icon=":material/speed:"):
            st.session_state["rvt_gen_spec"] = (sequence_timing.GenerationSpec(
                n_tokens=tuple(sorted(n_tokens)), batch=int(g_batch),
                threads=1 if device == "cpu" else None), budget, layers)
        if "rvt_gen_spec" in st.session_state:
            g_spec, g_budget, g_layers = st.session_state["rvt_gen_spec"]
            g_rows = ui.run_with_progress(sequence_models_cache.generation_speed,
                                          sequence_models_cache.configs(g_budget, g_layers), g_spec, device)
            ui.plot(gen_figure(g_rows), key="rvt_gen_fig")
            st.dataframe(gen_table(g_rows), hide_index=True, width="stretch")


# ---------------------------------------------------------------- gradient flow tab
def flow_figure(flows: dict) -> go.Figure:
    fig = go.Figure()
    hover = t("distance %{{x}}: %{{y:.3e}}<extra>{model}</extra>")
    for kind, f in flows.items():
        y = np.where(f.h_norm > 0, f.h_norm, np.nan)
        name = t("{model} ‖∂L/∂x_t‖ (residual input)", model=LABELS[kind]) if kind == "transformer" else \
            f"{LABELS[kind]} ‖∂L/∂h_t‖"
        fig.add_scatter(x=f.distance, y=y, mode="lines", name=name, line={"color": COLORS[kind]},
                        hovertemplate=hover.format(model=LABELS[kind]))
        if f.c_norm is not None:
            fig.add_scatter(x=f.distance, y=np.where(f.c_norm > 0, f.c_norm, np.nan), mode="lines",
                            name=t("LSTM ‖∂L/∂c_t‖ (cell)"), line={"color": COLORS[kind], "dash": "dot"},
                            hovertemplate=hover.format(model=t("LSTM cell")))
    fig.update_yaxes(type="log", exponentformat="power")
    ui.style_figure(fig, x_title=t("distance T − t between position t and the loss (characters)"),
                    y_title=t("gradient norm (log)"), height=440)
    return legend_room(fig)


def flow_summary(flows: dict) -> pd.DataFrame:
    exact_zero = t("∞ (exactly 0)")
    return pd.DataFrame([{t("Model"): LABELS[r["kind"]], t("‖grad‖ at distance 0"): f"{r['near']:.2e}"} | {
        t("÷ at distance {d}", d=d): f"{ratio:.1e}" if ratio is not None else exact_zero
        for d, ratio in r["ratios"].items()
    } for r in sequence_models_cache.flow_rows(flows)])


def weights_word(trained) -> str:
    return t("Trained") if trained.train else t("Untrained (initialised)")


with tabs[3], ui.guard():
    st.markdown(t("The loss of predicting the character after a window of T characters, differentiated "
                  "with respect to each model's state at every earlier position t (torch.autograd.grad "
                  "on the states of the step-by-step unrolled module). A signal from far back can only "
                  "shape learning if this gradient survives the distance."))
    c = st.columns(4)
    g_T = c[0].select_slider(t("Window T"), [32, 64, 128, 256, 512, 1024, 2048], 256, key="rvt_grad_T")
    scale = c[1].slider(t("Scale recurrent weights W_hh by"), 0.25, 3.0, 1.0, 0.25, key="rvt_grad_scale",
                        help=t("Multiplies the RNN/LSTM/GRU recurrent matrices of a copy: < 1 vanishes "
                               "faster, > 1 can explode (Pascanu et al. 2013)."))
    g_batch = c[2].select_slider(t("Windows averaged"), [1, 4, 16], 4, key="rvt_grad_batch")
    g_seed = c[3].number_input(t("Seed"), 0, 10_000, 0, key="rvt_grad_seed")
    trained = need_models()
    wait = st.empty()
    flows = sequence_models_cache.gradient_flow(trained, int(g_T), int(g_seed), float(scale), int(g_batch),
                                                _on_wait=ui.wait_callback(wait))
    wait.empty()
    ui.plot(flow_figure(flows), key="rvt_flow")
    st.dataframe(flow_summary(flows), hide_index=True, width="stretch")
    st.caption(t("{weights} weights; validation text. Gaps in a curve are gradients that underflowed to "
                 "exactly 0 in float32. The Transformer's curve is flat because every position is one "
                 "attention step from the loss.", weights=weights_word(trained)))


# ---------------------------------------------------------------- gates tab
def gate_figure(trace, gate: str, text: str, units: int) -> go.Figure:
    z, order = sequence_models_cache.gate_matrix(trace, gate, units)    # (units, T), most active first
    tanh_like = gate in ("cell candidate g", "new n", "hidden h") or gate == "cell c"
    chars = [ui.visible_whitespace(ch) for ch in text]
    unit = t("unit {u}")
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(len(chars))), y=[unit.format(u=u) for u in order],
        colorscale="RdBu" if tanh_like else "Viridis", zmid=0 if tanh_like else None,
        zmin=None if gate == "cell c" else (-1 if tanh_like else 0), zmax=None if gate == "cell c" else 1,
        customdata=np.array([chars] * z.shape[0]),
        hovertemplate=t("%{y}, char %{x} '%{customdata}': %{z:.3f}<extra></extra>")))
    step = max(1, len(chars) // 80)
    fig.update_xaxes(tickvals=list(range(0, len(chars), step)), ticktext=chars[::step], tickangle=0,
                     showgrid=False)
    fig.update_yaxes(showgrid=False, autorange="reversed")             # most variable unit on top
    return ui.style_figure(fig, x_title=t("input character (time step t)"), y_title=t("hidden unit"),
                           height=160 + min(14 * z.shape[0], 720))


def gate_means_figure(trace, text: str) -> go.Figure:
    fig = go.Figure()
    for name, mean in sequence_models_cache.gate_means(trace).items():
        shown = tr(name)
        fig.add_scatter(x=list(range(len(text))), y=mean, mode="lines", name=shown,
                        customdata=list(text),
                        hovertemplate="'%{customdata}': %{y:.3f}<extra>" + shown + "</extra>")  # i18n: skip
    ui.style_figure(fig, x_title=t("input character (time step t)"), y_title=t("mean over units"),
                    height=260)
    return legend_room(fig)


with tabs[4], ui.guard():
    text = st.text_area(t("Input text"), PROBE_TEXT, key="rvt_gate_text", height=80)
    prepared = sequence_models_cache.prepare_text(text, MAX_PROBE_CHARS)
    unknown_notice(prepared)
    c = st.columns(4)
    trained = need_models()
    g_kind = c[0].radio(t("Model"), ["lstm", "gru"], format_func=LABELS.get, key="rvt_gate_model",
                        horizontal=True)
    n_layers = trained.configs[g_kind].n_layers
    g_layer = c[1].select_slider(t("Layer"), list(range(1, n_layers + 1)), 1, key="rvt_gate_layer") \
        if n_layers > 1 else 1
    names = [*sequence_probes.GATE_NAMES[g_kind], HIDDEN] + ([CELL] if g_kind == "lstm" else [])
    gate_labels = labels_of(names)
    gate = c[2].selectbox(t("Show"), names, key=f"rvt_gate_name_{g_kind}",
                          format_func=lambda g: gate_labels.get(g, g))
    units = c[3].slider(t("Units (most variable first)"), 8, 128, 32, 8, key="rvt_gate_units")
    trace = sequence_models_cache.gate_trace(trained, g_kind, prepared.encoded.ids, int(g_layer) - 1)
    ui.plot(gate_figure(trace, gate, prepared.encoded.text, int(units)), key="rvt_gate_heat")
    ui.plot(gate_means_figure(trace, prepared.encoded.text), key="rvt_gate_means")
    if g_kind == "lstm":
        st.caption(t("Gates recomputed from the module's own weights (weight_ih, weight_hh, biases; PyTorch's "
                     "gate order). They reproduce the module's h_t and c_t to within {error:.1e}. LSTM: c_t = "
                     "f⊙c_(t−1) + i⊙g, h_t = o⊙tanh(c_t); a forget gate near 1 keeps memory.",
                     error=trace.max_abs_error))
    else:
        st.caption(t("Gates recomputed from the module's own weights (weight_ih, weight_hh, biases; PyTorch's "
                     "gate order). They reproduce the module's h_t to within {error:.1e}. GRU: h_t = (1 − z)⊙n "
                     "+ z⊙h_(t−1); an update gate near 1 keeps the old state.", error=trace.max_abs_error))


# ---------------------------------------------------------------- long-range memory tab
def recall_figure(result) -> go.Figure:
    df = pd.DataFrame(result.rows)
    fig = go.Figure()
    for kind, part in df.groupby("kind", sort=False):
        fig.add_scatter(x=part["delay"], y=100 * part["accuracy"], mode="lines+markers",
                        name=LABELS[kind], line={"color": COLORS[kind]},
                        hovertemplate="k = %{x}: %{y:.1f} %<extra>" + LABELS[kind] + "</extra>")
    fig.add_hline(y=100 * result.chance, line_dash="dash", line_color="#868E96",
                  annotation_text=t("chance {pct:.1f} %", pct=100 * result.chance), annotation_position="top left")
    delays = sorted(df["delay"].unique())
    fig.update_xaxes(type="log", tickvals=delays, ticktext=[str(d) for d in delays])
    ui.style_figure(fig, x_title=t("delay k (steps back to the symbol to recall, log)"),
                    y_title=t("recall accuracy (%)"), height=400)
    return legend_room(fig)


with tabs[5], ui.guard():
    st.markdown(t("**Delayed recall.** A stream of random symbols; at every position t the model must "
                  "output the symbol it saw k steps earlier. An RNN has to carry the last k symbols in "
                  "its state; attention can look back directly. One fresh model per (architecture, k), "
                  "same parameter budget, trained live."))
    c = st.columns([2, 1, 1, 1, 2])
    delays = c[0].multiselect(t("Delays k"), [1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64],
                              [2, 6, 10, 20], key="rvt_rec_delays")
    r_steps = c[1].select_slider(t("Steps"), [50, 100, 150, 250, 400, 800], 250, key="rvt_rec_steps")
    r_budget = c[2].select_slider(t("Parameters"), [5_000, 10_000, 20_000, 50_000], 20_000,
                                  key="rvt_rec_budget", format_func=ui.fmt_count)
    r_symbols = c[3].select_slider(t("Symbols"), [2, 4, 8, 16], 8, key="rvt_rec_symbols")
    r_kinds = tuple(c[4].multiselect(t("Models"), KINDS, list(KINDS), format_func=LABELS.get,
                                     key="rvt_rec_models"))
    if st.button(t("Train the recall models"), key="rvt_recall", icon=":material/psychology:"):
        seq_len = max(32, 2 * max(delays)) if delays else 32
        st.session_state["rvt_recall_cfg"] = (sequence_models.RecallConfig(
            delays=tuple(sorted(delays)), n_symbols=int(r_symbols), seq_len=seq_len,
            budget=int(r_budget), steps=int(r_steps)), r_kinds)
    if "rvt_recall_cfg" in st.session_state:
        r_cfg, kinds = st.session_state["rvt_recall_cfg"]
        result = ui.run_with_progress(sequence_models_cache.recall, r_cfg, kinds, device)
        ui.plot(recall_figure(result), key="rvt_recall_fig")
        model_word = t("{model} {architecture} ({params:,} parameters)")
        st.caption(t("{steps} Adam steps of {batch} sequences × {length} symbols per run; accuracy on {fresh} "
                     "fresh sequences. Models: {models}", steps=r_cfg.steps, batch=r_cfg.batch,
                     length=r_cfg.seq_len, fresh=r_cfg.eval_batches * r_cfg.batch, models="; ".join(
                         model_word.format(model=LABELS[r["kind"]], architecture=architecture(result.configs[r["kind"]]),
                                           params=r["params"])
                         for r in sequence_models_cache.config_rows(result.configs, r_cfg.seq_len))))
    else:
        st.info(t("Press **Train the recall models** (about 5–15 s per run on 2 CPU cores)."),
                icon=":material/psychology:")


# ---------------------------------------------------------------- attention tab
def attention_figure(probs: np.ndarray, text: str, title: str) -> go.Figure:
    chars = [ui.visible_whitespace(ch) for ch in text]
    T = len(chars)
    z = np.where(np.tril(np.ones((T, T), dtype=bool)), probs, np.nan)
    fig = go.Figure(go.Heatmap(
        z=z, colorscale="Blues", zmin=0,
        customdata=np.array([[f"'{chars[i]}' → '{chars[j]}'" for j in range(T)] for i in range(T)]),
        hovertemplate=t("query %{y} → key %{x} (%{customdata}): p = %{z:.3f}<extra></extra>")))
    xt = list(range(0, T, max(1, T // 60)))
    yt = list(range(0, T, max(1, T // 40)))
    fig.update_xaxes(tickvals=xt, ticktext=[chars[i] for i in xt], tickangle=0, showgrid=False)
    fig.update_yaxes(tickvals=yt, ticktext=[chars[i] for i in yt], tickangle=0, showgrid=False,
                     autorange="reversed", scaleanchor="x", tickfont={"size": 11})
    return ui.style_figure(fig, x_title=t("key position (character attended to)"),
                           y_title=t("query position (character)"), height=680, title=title)


with tabs[6], ui.guard():
    a_text = st.text_area(t("Your text"), PROBE_TEXT[:80], key="rvt_attn_text", height=80,
                          help=t("Up to {n} characters are shown.", n=MAX_PROBE_CHARS))
    prepared = sequence_models_cache.prepare_text(a_text, MAX_PROBE_CHARS)
    unknown_notice(prepared)
    trained = need_models()
    tf_cfg = trained.configs["transformer"]
    c1, c2 = st.columns(2)
    a_layer = c1.select_slider(t("Layer"), list(range(1, tf_cfg.n_layers + 1)), 1, key="rvt_attn_layer") \
        if tf_cfg.n_layers > 1 else 1
    heads = ["mean", *range(1, tf_cfg.n_heads + 1)]
    head_labels = {"mean": t("mean of heads"), **{h: t("head {h}", h=h) for h in heads[1:]}}
    a_head = c2.selectbox(t("Head"), heads, key="rvt_attn_head", format_func=lambda h: head_labels.get(h, h))
    maps = sequence_models_cache.attention(trained, prepared.encoded.ids)
    layer_probs = maps.probs[int(a_layer) - 1]                      # (H, T, T)
    probs = layer_probs.mean(axis=0) if a_head == "mean" else layer_probs[int(a_head) - 1]
    ui.plot(attention_figure(probs, prepared.encoded.text,
                             t("Layer {layer}, {head}", layer=a_layer, head=head_labels[a_head])),
            key="rvt_attn_heat")
    st.caption(t("{weights} Transformer. Probabilities from the readable reference path (softmax(QKᵀ/√d) under "
                 "the causal mask); its logits match the fused scaled_dot_product_attention path to within "
                 "{error:.1e}. Each row sums to 1 over the characters up to the query.",
                 weights=weights_word(trained), error=maps.max_abs_error))


ui.page_footer(
    t("**Unrolling**: circles are values, lines are dependencies; the orange path is the longest chain "
      "of computations that must happen one after another. **Time vs length**: log–log; a slope of 1 "
      "is linear in T. On a GPU the Transformer's parallel positions win once T is large enough to "
      "fill the device, while each RNN step is a small kernel that waits for the previous one; on a "
      "CPU with one thread there is no parallelism to win, and the Transformer's O(T²) attention shows. "
      "In generation the RNN's cost per token is constant; with a KV cache the Transformer's grows "
      "with t (it attends over t keys) and so does its memory; without a cache every token re-reads "
      "the whole prefix. **Gradient flow**: a straight falling line on the log scale is exponential "
      "vanishing: what lies k steps back hardly changes the update. **Gates**: bright = open (near 1). "
      "**Long-range memory**: chance is 1/symbols; where a curve drops to chance, the model could not "
      "learn to carry the symbol that far in the steps given. **Attention**: row i shows which earlier "
      "characters position i reads."),
    [
        ("Elman 1990, Finding Structure in Time (simple recurrent network)",
         "https://doi.org/10.1207/s15516709cog1402_1"),
        ("Hochreiter & Schmidhuber 1997, Long Short-Term Memory (Sec. 4; Sec. 5 long time lags)",
         "https://doi.org/10.1162/neco.1997.9.8.1735"),
        ("Cho et al. 2014, Learning Phrase Representations using RNN Encoder–Decoder (Sec. 2.3, GRU)",
         "https://arxiv.org/abs/1406.1078"),
        ("Bengio, Simard & Frasconi 1994, Learning long-term dependencies with gradient descent is difficult",
         "https://doi.org/10.1109/72.279181"),
        ("Pascanu, Mikolov & Bengio 2013, On the difficulty of training RNNs (Sec. 2, 3)",
         "https://arxiv.org/abs/1211.5063"),
        ("Vaswani et al. 2017, Attention Is All You Need (Sec. 3.5 positions; Sec. 4, Table 1)",
         "https://arxiv.org/abs/1706.03762"),
        ("Xiong et al. 2020, On Layer Normalization in the Transformer Architecture (pre-norm)",
         "https://arxiv.org/abs/2002.04745"),
        ("Allal et al. 2025, SmolLM2: When Smol Goes Big (the 135M model: 2T tokens of pretraining)",
         "https://arxiv.org/abs/2502.02737"),
        ("Karpathy 2015, The Unreasonable Effectiveness of Recurrent Neural Networks",
         "https://karpathy.github.io/2015/05/21/rnn-effectiveness/"),
        ("Appleyard, Kočiský & Blunsom 2016, Optimizing Performance of RNNs on GPUs (cuDNN)",
         "https://arxiv.org/abs/1604.01946"),
        ("PyTorch docs: torch.nn.LSTM and torch.nn.GRU equations (gate order)",
         "https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html"),
    ],
)
