"""Cached wrappers around core/: the only place pages get models, data and results.

- st.cache_resource: things loaded once per process and shared by all
  sessions (models, tokenizers, trained weights). They must be safe to share:
  read-only after loading.
- st.cache_data: results (arrays, tables) copied per caller; every wrapper
  sets ``max_entries`` (and ``ttl`` where inputs are free text) so memory does
  not grow with the number of sessions.
- Progress: a cached function takes ``_progress`` / ``_on_wait`` callbacks
  (leading underscore: not part of the cache key) built by app/ui.py from an
  st.progress bar made *outside* the cached function.
Cached functions take everything they use as arguments; they never read globals.
"""

from __future__ import annotations

import streamlit as st

from core import device as core_device


@st.cache_resource(show_spinner=False)
def device_name() -> str:
    """The torch device string this process computes on ("cuda", "mps", "cpu")."""
    return str(core_device.pick_device())


@st.cache_resource(show_spinner=False)
def device_info() -> core_device.DeviceInfo:
    return core_device.device_info(device_name())


@st.cache_data(max_entries=16, ttl=300, show_spinner=False)
def recorded(name: str) -> list[dict]:
    """Recorded runs of bench/<name>.py under bench/results/ (all devices, GPU-check bundles too)."""
    from bench.common import load_results

    return load_results(name)


# ---- Multi-head latent attention ----
@st.cache_data(max_entries=64, show_spinner=False)
def mla_preset_check(name: str, dtype_name: str, device: str):
    from core import mla

    return mla.preset_cache_check(name, dtype_name, device)


@st.cache_data(max_entries=32, show_spinner=False)
def mla_compare_forms(cfg, seq: int, batch: int, seed: int, device: str, cache_dtype: str):
    from core import mla

    return mla.compare_forms(cfg, seq=seq, batch=batch, seed=seed, device=device,
                             cache_dtype=cache_dtype)


@st.cache_data(max_entries=16, show_spinner=False)
def mla_small_run(name: str, dtype_name: str, device: str):
    from core import mla

    return mla.small_module_run(name, dtype_name=dtype_name, device=device)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def mla_decode_timing(cfg, context: int, device: str, dtype_name: str, _progress=None, _on_wait=None):
    from core import mla

    return mla.time_decode_step(cfg, context, device=device, dtype_name=dtype_name,
                                progress=_progress, on_wait=_on_wait)


# ---- Tokenization ----
@st.cache_resource(show_spinner="Loading tokenizer vocabularies…")
def tokenizers_ready(names: tuple[str, ...]) -> tuple[str, ...]:
    """Load (once per process) the vocabularies of ``names``; returns the names."""
    from core import tokenizers

    for name in names:
        tokenizers.id_bytes_table(name)
    return names


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)   # up to ~2 MB of HTML an entry
def token_view(name: str, text: str, show_whitespace: bool, allow_special: bool = False) -> dict:
    """Coloured-span HTML and the token ids of ``text`` (dict: html, ids, decoded)."""
    from core import tokenizers

    toks = tokenizers.encode(name, text, allow_special=allow_special)
    special = frozenset(tokenizers.special_tokens(name).values())
    html = tokenizers.render_html(tokenizers.prepare(name, text), toks, special,
                                  tokenizers.ViewOptions(show_whitespace=show_whitespace),
                                  unk_id=tokenizers.special_tokens(name).get("[UNK]"))
    ids = [t.id for t in toks]
    return {"html": html, "ids": ids, "tokens": toks[:2000], "n": len(toks),
            "decoded": tokenizers.decode(name, ids)}


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def token_stats(names: tuple[str, ...], text: str) -> list:
    from core import tokenizers

    return [tokenizers.token_stats(n, text) for n in names]


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def text_report(text: str):
    from core import tokenizers

    return tokenizers.analyze_text(text)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def bpe_corpus(kind: str, max_chars: int) -> str:
    from core import bpe

    return bpe.load_corpus(kind, max_chars)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def bpe_train(text: str, config, device: str, _progress=None, _on_wait=None):
    from core import bpe

    return bpe.train(text, config, progress=_progress, on_wait=_on_wait, device=device)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def bpe_hf_compare(text: str, config, _model):
    """HF BpeTrainer on the same text and settings (keyed by text + config; the model is not hashed)."""
    from core import bpe

    return bpe.hf_compare(text, _model)


# ---- FlashAttention ----
@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def attention_block_sizes(head_dim: int, dtype: str, device: str, capability: tuple[int, int] | None = None):
    """The Triton kernel's block sizes for this head_dim/dtype on ``device`` (or a GPU capability)."""
    from core import attention

    return attention.kernel_block_sizes(head_dim, dtype, device, capability)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def attention_tiling(cfg):
    """Naive and tiled attention on one head, with the tiled run's trace (core.attention)."""
    from core import attention

    return attention.tiling_walkthrough(cfg)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def attention_kernel_check(cfg, device: str):
    """Our Triton kernel on the walkthrough's head, with the drawn block sizes."""
    from core import attention

    return attention.kernel_check(attention_tiling(cfg), device)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def attention_benchmark(cfg, device: str, _progress=None, _on_wait=None):
    """Timings and errors of every implementation (a heavy job on ``device``)."""
    from core import attention
    from core.scheduler import heavy_job

    with heavy_job("FlashAttention benchmark", device, time_limit_s=attention.BENCH_TIME_LIMIT_S,
                   on_wait=_on_wait) as job:
        return attention.run_benchmark(cfg, device, progress=_progress, job=job)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def attention_memory(cfg, device: str, _on_wait=None):
    """Analytic and (CUDA) measured peak memory of each implementation's forward."""
    from core import attention
    from core.scheduler import heavy_job

    with heavy_job("FlashAttention memory", device, time_limit_s=120, on_wait=_on_wait) as job:
        return attention.memory_footprint(cfg, device, job=job)


@st.cache_data(max_entries=1, ttl=3600, show_spinner=False)
def attention_wiki_titles(limit: int = 40) -> tuple[str, ...]:
    from core.corpus import wiki_articles

    return tuple(a.title for a in wiki_articles()[:limit])


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def attention_wiki_text(title: str) -> str:
    from core.corpus import wiki_articles

    return next((a.text for a in wiki_articles() if a.title == title), "")


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def attention_row_progress(cfg, row: int, key_block: int):
    """One row's online-softmax state after key block ``key_block`` of the walkthrough."""
    from core import attention

    return attention.row_progress(attention_tiling(cfg), row, key_block)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def attention_busiest_row(cfg, q_block: int) -> int:
    from core import attention

    return attention.busiest_row(attention_tiling(cfg), q_block)


@st.cache_data(max_entries=4, ttl=300, show_spinner=False)
def attention_gpu_results() -> dict | None:
    """The recorded GPU-check attention results (bench/results/gpu-check-cuda.json), or None."""
    from core import attention

    return attention.recorded_gpu_results()


@st.cache_data(max_entries=256, ttl=3600, show_spinner=False)
def attention_io(cfg):
    """FlashAttention paper's IO analysis (pure arithmetic)."""
    from core import attention

    return attention.io_analysis(cfg)


# ---- Training memory ----
@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def tm_plan_from_query(items: tuple[tuple[str, str], ...]):
    """(plan, problems) from URL query parameters given as sorted (key, value) pairs."""
    from core import memory

    return memory.plan_from_query(dict(items))


@st.cache_data(max_entries=128, show_spinner=False)
def tm_plan_memory(plan) -> dict:
    from core import memory

    return memory.plan_memory(plan)


@st.cache_data(max_entries=64, show_spinner=False)
def tm_plan_terms(plan) -> list:
    from core import memory

    return memory.plan_activation_terms(plan)


@st.cache_data(max_entries=64, show_spinner=False)
def tm_strategy_table(plan) -> list[dict]:
    from core import memory

    return memory.strategy_table(plan)


@st.cache_data(max_entries=32, show_spinner=False)
def tm_dp_sweep(plan) -> list[dict]:
    from core import memory

    return memory.dp_sweep(plan)


@st.cache_data(max_entries=32, show_spinner=False)
def tm_seq_sweep(plan) -> list[dict]:
    from core import memory

    return memory.seq_sweep(plan)


@st.cache_data(max_entries=32, show_spinner=False)
def tm_checkpoint_layout(layers: int, strategy: str) -> dict:
    """Node positions, roles and edges of the checkpointing diagram (networkx layout)."""
    from core import memory

    graph = memory.checkpoint_graph(memory.checkpoint_plan(layers, strategy))
    return {"nodes": [(n, *d["pos"], d["role"], d["row"], d["layer"]) for n, d in graph.nodes(data=True)],
            "edges": [(graph.nodes[u]["pos"], graph.nodes[v]["pos"]) for u, v in graph.edges()]}


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def tm_measure_activations(cfg, checkpointing: str, device: str, _progress=None, _on_wait=None):
    from core import measure

    return measure.measure_activations(cfg, checkpointing, device, progress=_progress, on_wait=_on_wait)


@st.cache_data(max_entries=4, ttl=3600, show_spinner=False)
def tm_run_zero(cfg, _progress=None, _on_wait=None):
    from core import distributed

    return distributed.run_zero(cfg, progress=_progress, on_wait=_on_wait)


@st.cache_data(max_entries=1, show_spinner=False)
def tm_minilm_weight_names() -> list[str]:
    from core import fp8

    return fp8.minilm_weight_names()


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def tm_fp8_analysis(source: str, fmt: str, params: tuple, device: str) -> tuple[tuple, list]:
    """(tensor shape, per-scheme results) for a tensor source:
    "weight" (name,), "synthetic" (tokens, channels, outliers, scale), "minilm" (text, layer)."""
    from core import fp8

    if source == "weight":
        x = fp8.minilm_weight(params[0])
    elif source == "synthetic":
        x = fp8.synthetic_activations(*params)
    else:
        x = fp8.minilm_activations(params[0], params[1], device)
    return tuple(x.shape), fp8.analyze(x, fmt)


# ---- MoE routing ----
@st.cache_resource(max_entries=4, show_spinner=False)
def moe_comparison(cfg, device: str, _progress=None, _on_wait=None):
    """Three small MoE LMs trained live, one per balancing mode (shared, read-only after training)."""
    from core import moe

    return moe.train_balancing_modes(cfg, device, progress=_progress, on_wait=_on_wait)


@st.cache_resource(max_entries=4, show_spinner=False)
def moe_untrained(cfg, device: str):
    """The same MoE LM at its initial weights (routing before any training)."""
    from core import moe

    return moe.untrained_comparison(cfg, device)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def moe_route_text(key: tuple, mode: str, text: str, _comparison):
    """Routing of the user's text by run ``mode`` of the comparison identified by ``key``."""
    from core import moe

    run = _comparison.runs[mode]
    return moe.route_text(run.model, _comparison.vocab, text)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def moe_specialisation(key: tuple, mode: str, _comparison):
    """Which characters each expert prefers on the held-out sample, per layer."""
    from core import moe

    run = _comparison.runs[mode]
    return moe.expert_specialisation(run.model, _comparison.vocab, _comparison.val)


@st.cache_data(max_entries=16, show_spinner=False)
def moe_bias_demo(layer_cfg, gamma: float):
    """The aux-free bias update alone on a frozen, skewed router."""
    from core import moe

    return moe.bias_demo(layer_cfg, gamma)


@st.cache_data(max_entries=16, show_spinner=False)
def moe_scale(preset: str, context: int):
    from core import moe

    return moe.scale_view(preset, context)


# ---- RNN vs Transformer ----
@st.cache_resource(show_spinner="Loading the Wikipedia sample…", max_entries=1)
def seq_corpus():
    """gensim's Wikipedia sample as character ids (train/validation split)."""
    from core import char_data

    return char_data.wiki_corpus()


@st.cache_data(max_entries=32, show_spinner=False)
def seq_configs(budget: int, n_layers: int) -> dict:
    """RNN/LSTM/GRU/Transformer configs matched to one parameter budget."""
    from core import sequence_models

    return sequence_models.configs_for_budget(budget, n_layers)


@st.cache_resource(show_spinner=False, max_entries=4)
def seq_trained(configs: dict, train, device: str, _corpus=None, _progress=None, _on_wait=None):
    """The four models trained live on the Wikipedia sample (shared, read-only)."""
    from core import sequence_models

    return sequence_models.train_models(configs, train, _corpus, device, progress=_progress,
                                        on_wait=_on_wait, time_limit_s=600.0)


@st.cache_resource(show_spinner=False, max_entries=4)
def seq_fresh(configs: dict, device: str):
    """The same models at initialisation (before any training)."""
    from core import sequence_models

    return sequence_models.fresh_models(configs, device)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def seq_samples(models_key: str, prompt_ids: tuple, n_new: int, temperature: float, seed: int,
                _trained=None) -> dict:
    """One sampled continuation per model (kind -> text)."""
    from core import sequence_models

    return {k: sequence_models.continue_text(m, prompt_ids, n_new, temperature=temperature,
                                             seed=seed)
            for k, m in _trained.models.items()}


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def seq_gradient_flow(models_key: str, length: int, seed: int, scale: float, batch: int,
                      _trained=None, _corpus=None, _on_wait=None) -> dict:
    """||dL/dh_t|| vs distance for every model, on validation windows (kind -> GradientFlow)."""
    from core import char_data, sequence_probes

    windows = char_data.corpus_window(_corpus.val, length + 1, seed, batch)    # (B, T + 1)
    return {k: sequence_probes.gradient_flow(m, windows, recurrent_scale=scale, on_wait=_on_wait)
            for k, m in _trained.models.items()}


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def seq_gate_trace(models_key: str, kind: str, ids: tuple, layer: int, _trained=None):
    from core import sequence_probes

    return sequence_probes.gate_trace(_trained.models[kind], ids, layer=layer)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def seq_attention(models_key: str, ids: tuple, _trained=None):
    from core import sequence_probes

    return sequence_probes.attention_maps(_trained.models["transformer"], ids)


@st.cache_data(max_entries=16, show_spinner=False)
def seq_unroll(T: int, n_layers: int) -> dict:
    """Unrolled RNN and Transformer graphs: edge coordinates, longest path, counts."""
    from core import sequence_probes

    out = {}
    for name, build in (("rnn", sequence_probes.rnn_graph),
                        ("transformer", sequence_probes.transformer_graph)):
        ug = build(T, n_layers)
        nodes = [(d["pos"], d["role"], n) for n, d in ug.graph.nodes(data=True)]
        out[name] = {"coords": sequence_probes.edge_coordinates(ug), "nodes": nodes,
                     "path": ug.path, "depth": ug.depth, "n_edges": ug.n_edges}
    return out


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def seq_time_vs_length(configs: dict, spec, device: str, _progress=None, _on_wait=None) -> list:
    from core import sequence_timing

    return sequence_timing.time_vs_length(configs, spec, device, progress=_progress,
                                          on_wait=_on_wait, time_limit_s=600.0)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def seq_generation_speed(configs: dict, spec, device: str, _progress=None, _on_wait=None) -> list:
    from core import sequence_timing

    return sequence_timing.generation_speed(configs, spec, device, progress=_progress,
                                            on_wait=_on_wait, time_limit_s=600.0)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def seq_recall(cfg, kinds: tuple, device: str, _progress=None, _on_wait=None):
    from core import sequence_models

    return sequence_models.run_recall(cfg, kinds, device, progress=_progress, on_wait=_on_wait,
                                      time_limit_s=900.0)


# ---- embeddings ----
@st.cache_resource(show_spinner="Reading MiniLM's token embedding table…", max_entries=4)
def emb_static_space(device: str, whole_words_only: bool):
    """MiniLM's static WordPiece table as a space (shared, read-only)."""
    from core import embeddings

    return embeddings.minilm_static_space(device, whole_words_only)


@st.cache_resource(show_spinner=False, max_entries=4)
def emb_word_space(words: tuple, device: str, _progress=None):
    """The words of a slice, each encoded alone by MiniLM (contextual space)."""
    from core import embeddings

    return embeddings.minilm_text_space(
        "minilm-words", "MiniLM contextual (each word encoded alone)", words, device, _progress)


@st.cache_resource(show_spinner=False, max_entries=2)
def emb_sentence_space(n: int, device: str, _progress=None):
    """``n`` Wikipedia sentences encoded by MiniLM (candidates for sentence queries)."""
    from core import embeddings

    return embeddings.minilm_text_space(
        "minilm-sentences", "MiniLM sentence embeddings (Wikipedia sentences)",
        embeddings.wiki_sentences(n), device, _progress)


@st.cache_data(show_spinner=False, max_entries=8)
def emb_frequent_words(n: int) -> tuple:
    from core import embeddings

    return embeddings.frequent_words(n)


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600)
def emb_projection(vectors, config, _progress=None, _on_wait=None):
    """2-D/3-D projection of the rows of ``vectors`` (numpy, hashed by content)."""
    import torch

    from core import embeddings

    return embeddings.project(torch.as_tensor(vectors), config, _progress, on_wait=_on_wait)


@st.cache_resource(show_spinner="Preparing the Wikipedia sample…", max_entries=4)
def emb_wiki_corpus(max_words: int):
    from core import word2vec

    return word2vec.wiki_corpus(max_words)


@st.cache_resource(show_spinner=False, max_entries=4)
def emb_word2vec(config, corpus_key: str, device: str, watch: tuple, _corpus,
                 _progress=None, _on_wait=None):
    """word2vec trained on ``_corpus`` (identified by ``corpus_key``): (result, space)."""
    from core import embeddings, word2vec

    result = word2vec.train(_corpus.sentences, config, device, watch=watch, progress=_progress,
                            on_wait=_on_wait)
    space = embeddings.word_vectors_space("word2vec", "word2vec (trained here)",
                                          result.vocab.words, result.vectors, device)
    return result, space


@st.cache_resource(show_spinner=False, max_entries=4)
def emb_gensim(config, corpus_key: str, device: str, workers: int, _corpus, _progress=None):
    """gensim's Word2Vec on the same corpus and hyper-parameters: (result, space)."""
    from core import embeddings, word2vec

    result = word2vec.train_gensim(_corpus.sentences, config, workers, _progress)
    space = embeddings.word_vectors_space("gensim", "gensim Word2Vec (reference)",
                                          result.words, result.vectors, device)
    return result, space


@st.cache_resource(show_spinner=False, max_entries=1)
def emb_questions() -> tuple:
    """Mikolov et al.'s questions-words analogy set, lower-cased."""
    from core import corpus, embeddings

    return embeddings.load_questions(corpus.questions_words_path())


@st.cache_data(show_spinner=False, max_entries=8)
def emb_analogy_scores(run_key: tuple, _spaces: tuple) -> list:
    """questions-words accuracy of each space, restricted to their shared vocabulary."""
    from core import embeddings

    shared = set.intersection(*(set(s.items) for s in _spaces))
    questions = emb_questions()
    return [embeddings.analogy_accuracy(s, questions, shared) for s in _spaces]


# ---- Multi-token prediction ----
@st.cache_resource(max_entries=4, show_spinner=False)
def mtp_trained(cfg, train_cfg, device: str, _progress=None, _on_wait=None):
    """A trained MTP model (shared by all sessions; decoding works on a float64 copy)."""
    from core import mtp

    return mtp.train_mtp(cfg, train_cfg, device=device, progress=_progress, on_wait=_on_wait)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def mtp_decoding(cfg, train_cfg, device: str, prompt: str, max_new: int, _progress=None,
                 _on_wait=None):
    from core import mtp

    trained = mtp_trained(cfg, train_cfg, device)
    return mtp.compare_decoding(trained, prompt, max_new, on_wait=_on_wait, progress=_progress)


@st.cache_data(max_entries=8, show_spinner=False)
def mtp_param_counts(cfg):
    from core import mtp

    return mtp.mtp_param_counts(cfg)


# ---- Vision tokens at native resolution ----
@st.cache_data(max_entries=16, show_spinner=False)
def vision_sample(name: str):
    from core import vision_tokens

    return vision_tokens.sample_image(name)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def vision_upload(data: bytes, name: str):
    from core import vision_tokens

    return vision_tokens.load_image(data, name)


def vision_image(source: tuple):
    """("sample", name) or ("upload", name, bytes) -> core.vision_tokens.LoadedImage (cached)."""
    if source[0] == "sample":
        return vision_sample(source[1])
    return vision_upload(source[2], source[1])


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def vision_encode(sources: tuple, cfg, device: str, _on_wait=None):
    from core import vision_tokens

    images = [vision_image(s) for s in sources]
    return vision_tokens.encode_images(images, cfg, device=device, on_wait=_on_wait)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def vision_attention(source: tuple, query: tuple[int, int], cfg, device: str):
    from core import vision_tokens

    return vision_tokens.attention_maps(vision_image(source), query, cfg, device=device)


# ---- Sequence packing ----
@st.cache_data(max_entries=16, ttl=3600, show_spinner="Tokenizing the documents…")
def pack_doc_counts(source: str, unit: str, tokenizer: str, text: str = "") -> tuple:
    """Token counts (+1 end-of-text) of the Wikipedia sample's or the user's documents."""
    from core import packing

    docs = packing.corpus_documents(unit) if source == "wiki" else packing.text_documents(text, unit)
    counts = packing.document_token_counts(docs, tokenizer)
    if not counts:
        from core.validation import ValidationError

        raise ValidationError("The text holds no tokens to pack.")
    return tuple(counts)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def pack_samples(source: str, unit: str, tokenizer: str, max_len: int, text: str = "") -> tuple:
    """Sample lengths: documents cut at ``max_len`` tokens."""
    from core import packing

    return tuple(packing.cut_lengths(pack_doc_counts(source, unit, tokenizer, text), max_len))


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def pack_compare(lengths: tuple, capacity: int, batch_size: int, max_len: int, seed: int = 0):
    from core import packing

    return packing.compare_strategies(lengths, capacity=capacity, batch_size=batch_size,
                                      max_len=max_len, seed=seed)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def pack_layout(strategy: str, lengths: tuple, capacity: int, batch_size: int, max_len: int,
                seed: int = 0):
    """The Packing of one strategy on the same shuffled sequences as pack_compare."""
    import random

    from core import packing

    values = list(lengths)
    random.Random(seed).shuffle(values)
    return packing.pack(strategy, values, capacity=capacity, batch_size=batch_size,
                        max_len=max_len), tuple(values)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def pack_histogram(lengths: tuple, bins: int = 40) -> dict:
    from core import packing

    return packing.length_histogram(lengths, bins)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def pack_layer(lengths: tuple, cfg, dtype: str, attn: str, device: str):
    from core import packing

    return packing.compare_layer(lengths, cfg, dtype=dtype, attn=attn, device=device)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def pack_throughput(lengths: tuple, cfg, device: str, methods: tuple, _progress=None,
                    _on_wait=None):
    from core import packing

    return packing.measure_throughput(lengths, cfg, device=device, methods=methods,
                                      progress=_progress, on_wait=_on_wait)


# ---- Contrastive learning ----
@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def con_pool(source: str, kind: str, negatives: str, n_pairs: int, seed: int, text: str,
             device: str, _progress=None):
    """Pairs and their MiniLM embeddings: (pairs, anchors (N, 384), positives (N, 384))."""
    from core import contrastive

    if _progress:
        _progress(0.1, "Picking sentence pairs…")
    if source == "wiki":
        pairs = contrastive.corpus_pairs(n_pairs, kind=kind, negatives=negatives, seed=seed)
    else:
        pairs = contrastive.text_pairs(text, kind=kind)[:n_pairs]
    if _progress:
        _progress(0.3, f"Embedding {2 * len(pairs)} sentences with MiniLM…")
    a, b = contrastive.embed_pairs(pairs, device)
    if _progress:
        _progress(1.0, "Done")
    return tuple(pairs), a.numpy(), b.numpy()


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def con_batch(a, b, n: int, temperature: float, seed: int, symmetric: bool):
    import torch

    from core import contrastive

    return contrastive.info_nce_from_pool(torch.as_tensor(a), torch.as_tensor(b), n, temperature,
                                          seed=seed, symmetric=symmetric)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def con_curve(a, b, batch_sizes: tuple, temperatures: tuple, n_batches: int, seed: int):
    import torch

    from core import contrastive

    return contrastive.bound_curve(torch.as_tensor(a), torch.as_tensor(b), batch_sizes,
                                   temperatures, n_batches=n_batches, seed=seed)


@st.cache_data(max_entries=6, show_spinner=False)
def con_cpc(cfg, device: str, _progress=None, _on_wait=None):
    """A CPC run (training + held-out evaluation), shared by every session that asks for it."""
    from core import contrastive

    return contrastive.train_cpc(cfg, device=device, progress=_progress, on_wait=_on_wait)
