"""core.models.packing: packing never overflows or loses a token, masks and positions from cu_seqlens,
packed == per-sequence outputs (and gradients) in float64, the measurement, the benchmark."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.models import packing
from core.nn import attend
from core.runtime.validation import ValidationError

lengths_st = st.lists(st.integers(1, 64), min_size=1, max_size=60)


# ---------------------------------------------------------------- packing algorithms
def check_layout(p: packing.Packing, values: list[int], capacity: int | None) -> None:
    """Every sequence placed exactly once (or in pieces that add up), no row over capacity."""
    placed: dict[int, int] = {}
    for row, pieces in zip(p.rows, p.pieces, strict=True):
        assert len(row) == len(pieces)
        for i, n in zip(row, pieces, strict=True):
            placed[i] = placed.get(i, 0) + n
    assert placed == dict(enumerate(values))
    assert p.row_tokens == tuple(sum(x) for x in p.pieces)
    assert p.real_tokens == sum(values)
    assert all(t <= w for t, w in zip(p.row_tokens, p.row_width, strict=True))
    if capacity is not None:
        assert all(w == capacity for w in p.row_width)
    assert 0 < p.efficiency <= 1 and math.isclose(p.efficiency + p.waste, 1.0)


@settings(max_examples=60, deadline=None)
@given(values=lengths_st, capacity=st.integers(64, 200))
def test_bin_packers_never_exceed_capacity_and_lose_nothing(values, capacity):
    for fn in (packing.pack_next_fit, packing.pack_ffd, packing.pack_bfd, packing.pack_ffd_reference, packing.pack_bfd_reference):
        p = fn(values, capacity)
        check_layout(p, values, capacity)
        assert all(len(r) == len(set(r)) for r in p.rows)          # never split


@settings(max_examples=60, deadline=None)
@given(values=lengths_st, capacity=st.integers(1, 100))
def test_concat_chunk_fills_rows_and_counts_cuts(values, capacity):
    p = packing.concat_chunk(values, capacity)
    check_layout(p, values, capacity)
    assert all(t == capacity for t in p.row_tokens[:-1])           # only the last row is short
    cut = sum(1 for i in range(len(values)) if sum(i in r for r in p.rows) > 1)
    assert p.split_sequences == cut


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.integers(1, 100), min_size=1, max_size=120), capacity=st.integers(100, 300))
def test_fast_ffd_and_bfd_equal_their_readable_loops(values, capacity):
    assert packing.pack_ffd(values, capacity) == packing.pack_ffd_reference(values, capacity)
    assert packing.pack_bfd(values, capacity) == packing.pack_bfd_reference(values, capacity)


@settings(max_examples=40, deadline=None)
@given(values=lengths_st, batch=st.integers(1, 12), sort=st.booleans())
def test_padded_batches_pad_to_the_batch_longest(values, batch, sort):
    p = packing.pad_batches(values, batch, sort=sort)
    check_layout(p, values, None)
    for start in range(0, p.n_rows, batch):
        rows = p.rows[start:start + batch]
        assert set(p.row_width[start:start + batch]) == {max(values[r[0]] for r in rows)}


def test_golden_small_example():
    """Worked by hand: FFD on [5, 3, 7, 2, 8, 1] at 10 puts 8+2, 7+3, 5+1 (3 rows, 26/30)."""
    values = [5, 3, 7, 2, 8, 1]
    ffd = packing.pack_ffd(values, 10)
    assert [sorted(values[i] for i in r) for r in ffd.rows] == [[2, 8], [3, 7], [1, 5]]
    assert ffd.slots == 30 and ffd.real_tokens == 26
    nf = packing.pack_next_fit(values, 10)
    assert [[values[i] for i in r] for r in nf.rows] == [[5, 3], [7, 2], [8, 1]]
    padded = packing.pad_batches(values, 2)                                # widths 5, 7, 8 -> 40 slots
    assert padded.slots == 40 and math.isclose(padded.efficiency, 26 / 40)
    assert packing.pad_batches(values, 2, width=10).slots == 60


def test_compare_strategies_shares_one_token_budget():
    values = [100, 20, 300, 45, 60, 512, 7, 250] * 8
    stats = {s.strategy: s for s in packing.compare_strategies(values, capacity=1024, batch_size=4, max_len=512)}
    assert set(stats) == set(packing.STRATEGIES)
    assert stats["ffd"].waste < stats["pad-batch"].waste < stats["pad-max"].waste
    assert stats["ffd"].batches == math.ceil(stats["ffd"].rows / 2)   # 4 x 512 / 1024 rows per batch
    assert all(s.real_tokens == sum(values) for s in stats.values())
    assert stats["concat-chunk"].split_sequences > 0 and stats["ffd"].split_sequences == 0


def test_strategy_layout_is_the_layout_compare_strategies_counts():
    values = [100, 20, 300, 45, 60, 512, 7, 250] * 8
    order = packing.loader_order(values, seed=0)
    assert sorted(order) == sorted(values) and order != values             # shuffled, nothing lost
    assert packing.loader_order(values, seed=0) == order                   # seeded
    assert packing.loader_order(values, seed=None) == values
    stats = {s.strategy: s for s in packing.compare_strategies(values, capacity=1024, batch_size=4, max_len=512)}
    for strategy in packing.STRATEGIES:
        layout, shown = packing.strategy_layout(strategy, values, capacity=1024, batch_size=4, max_len=512)
        assert shown == tuple(order)
        assert (layout.n_rows, layout.slots, layout.real_tokens) == (
            stats[strategy].rows, stats[strategy].slots, stats[strategy].real_tokens)
        check_layout(layout, list(shown), None if strategy.startswith("pad") else 1024)


def test_source_token_counts_of_a_users_text():
    text = "first line of text\n\nsecond line, a little longer than the first\nthird"
    paragraphs = packing.source_token_counts("text", "paragraph", "cl100k_base", text)
    assert paragraphs == packing.document_token_counts(packing.text_documents(text, "paragraph"))
    assert len(paragraphs) == 3 and len(packing.source_token_counts("text", "article", text=text)) == 2
    with pytest.raises(ValidationError, match="Samples"):
        packing.source_token_counts("<script>", "paragraph", text=text)
    with pytest.raises(ValidationError, match="empty"):
        packing.source_token_counts("text", "paragraph", text="   ")


@pytest.mark.parametrize(("call", "message"), [
    (lambda: packing.pack_ffd([], 10), "no sequences"),
    (lambda: packing.pack_ffd([5, 30], 10), "pack length"),
    (lambda: packing.pack_bfd([0, 3], 10), "between"),
    (lambda: packing.pack_next_fit([3], 0), "Pack length"),
    (lambda: packing.parse_lengths("5, x"), "whole numbers"),
    (lambda: packing.parse_lengths("   "), "empty"),
    (lambda: packing.compare_strategies([5, 9], capacity=8, batch_size=2), "pack length"),
    (lambda: packing.cut_lengths([5], 0), "Maximum sample length"),
    (lambda: packing.row_layout([5, 6], 10), "pack length"),
    (lambda: packing.sample_sequences([1, 2], 3), "the data has 2"),
])
def test_bad_input_is_a_clear_message(call, message):
    with pytest.raises(ValidationError, match=message):
        call()


def test_cut_lengths_and_histograms():
    assert packing.cut_lengths([1000, 512, 3], 512) == [512, 488, 512, 3]
    hist = packing.length_histogram([1, 5, 10, 10, 40], bins=4)
    assert hist["edges"] == [0, 10, 20, 30, 40] and hist["counts"] == [4, 0, 0, 1]
    drawn = packing.lengths_from_histogram(hist, 200, seed=1)
    assert len(drawn) == 200 and all(1 <= n <= 40 for n in drawn)
    assert not any(10 < n <= 30 for n in drawn)                       # empty bins never drawn


# ---------------------------------------------------------------- cu_seqlens, ids, masks
def test_cu_seqlens_ids_and_positions_golden():
    cu = packing.cu_seqlens([5, 3, 7, 2])
    assert cu.dtype == torch.int32 and cu.tolist() == [0, 5, 8, 15, 17]
    assert packing.document_ids(cu, 20).tolist() == [0] * 5 + [1] * 3 + [2] * 7 + [3] * 2 + [-1] * 3
    assert packing.restarting_positions(cu, 20).tolist() == [*range(5), *range(3), *range(7), 0, 1, 0, 1, 2]
    with pytest.raises(ValidationError):
        packing.document_ids(cu, 16)


@pytest.mark.parametrize("causal", [True, False])
def test_block_mask_equals_the_definition(causal):
    doc = packing.document_ids(packing.cu_seqlens([3, 1, 4]), 10)[None]
    mask = packing.block_causal_mask(doc, causal)[0, 0]
    d = doc[0].tolist()
    for i in range(10):
        for j in range(10):
            assert bool(mask[i, j]) == (d[i] == d[j] and (j <= i or not causal))
    assert mask.any(dim=1).all()                                      # no empty row, even in padding


# ---------------------------------------------------------------- the layer
ATTNS = ["sdpa", "varlen-loop", "reference"]


@pytest.mark.parametrize("attn", ATTNS)
@pytest.mark.parametrize("positions", packing.POSITIONS)
def test_packed_equals_alone_and_what_breaks(attn, positions):
    """float64: correct packing equals running each sequence alone to rounding; a plain causal
    mask contaminates every sequence but the first; non-restarting positions break learned
    positions and (RoPE is relative) leave RoPE at rounding level."""
    res = packing.compare_layer([9, 14, 5, 11], packing.LayerConfig(positions=positions, n_layers=2), attn=attn)
    v = {x.variant: x for x in res.variants}
    assert max(v["packed"].rel) < 1e-12 and max(v["packed"].max_abs) < 1e-12
    assert v["plain-causal"].rel[0] < 1e-12
    assert min(v["plain-causal"].rel[1:]) > 1e-3
    if positions == "learned":
        assert min(v["positions-continue"].rel[1:]) > 1e-2
    else:
        assert max(v["positions-continue"].rel) < 1e-10
    assert set(res.attention) == {"packed", "plain-causal"}
    probs = res.attention["packed"]
    assert abs(probs[9:, :9]).max() == 0                              # nothing crosses a boundary


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_packed_error_is_at_the_rounding_level_of_the_dtype(dtype):
    res = packing.compare_layer([20, 7, 33], dtype=dtype)
    packed = next(v for v in res.variants if v.variant == "packed")
    assert max(packed.rel) < 10 * res.noise


def _sum_sq(out):
    return out.pow(2).sum()


def test_packed_gradients_equal_per_sequence_gradients_float64():
    """Training equivalence: one packed row (with padding) gives the same weight gradients as
    the sequences one by one."""
    cfg = packing.LayerConfig(d_model=32, n_heads=4, d_ff=48, n_layers=2, positions="learned")
    model = packing.build_model(cfg, dtype=torch.float64)
    lengths, row = [6, 10, 3], 24
    xs = [torch.randn(n, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(n)) for n in lengths]
    for x in xs:
        _sum_sq(model(x[None], torch.arange(len(x))[None])).backward()
    alone = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    cu = packing.cu_seqlens(lengths)
    doc = packing.document_ids(cu, row)[None]
    x = torch.cat([*xs, torch.zeros(row - sum(lengths), 32, dtype=torch.float64)])[None]
    out = model(x, packing.restarting_positions(cu, row)[None], doc)
    _sum_sq(out[doc >= 0]).backward()
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, alone[k], atol=1e-10, rtol=1e-10, msg=k)


def test_right_padded_batch_with_a_causal_mask_matches_alone():
    model = packing.build_model(packing.LayerConfig(), dtype=torch.float64)
    a, b = torch.randn(7, 64, dtype=torch.float64), torch.randn(4, 64, dtype=torch.float64)
    x = torch.zeros(2, 7, 64, dtype=torch.float64)
    x[0], x[1, :4] = a, b
    out = model(x, torch.arange(7).expand(2, 7))
    torch.testing.assert_close(out[1, :4], model(b[None], torch.arange(4)[None])[0], atol=1e-12, rtol=1e-12)


def test_layer_config_and_inputs_are_checked():
    with pytest.raises(ValidationError):
        packing.LayerConfig(d_model=30, n_heads=4)
    with pytest.raises(ValidationError, match="At most"):
        packing.compare_layer([1000] * 5)
    with pytest.raises(ValidationError, match="past the learned table"):
        packing.compare_layer([40, 40], packing.LayerConfig(positions="learned", max_positions=50))


# ---------------------------------------------------------------- measurement and data
def test_measure_throughput_tiny():
    cfg = packing.ThroughputConfig(d_model=32, n_heads=2, n_layers=1, batch_size=4, capacity=64,
                             warmup=0, repeats=1)
    values = [5, 17, 30, 8, 64, 3, 22, 40]
    res = packing.measure_throughput(values, cfg, device="cpu")
    by = {m.method: m for m in res.methods}
    for name in ("padded", "packed-sdpa", "packed-varlen-loop"):
        m = by[name]
        assert m.available and m.real_tokens == sum(values) and m.slots >= sum(values)
        assert m.tokens_per_s > 0 and m.saved_bytes > 0 and m.peak_bytes is None
        assert m.flops_computed >= m.flops_useful > 0
    assert by["packed-varlen-loop"].flops_computed < by["packed-sdpa"].flops_computed
    assert not by["packed-flex"].available                            # no CPU backward
    with pytest.raises(ValidationError, match="larger than the data"):
        packing.measure_throughput(values[:3], cfg)
    with pytest.raises(ValidationError, match="pack length"):
        packing.measure_throughput([100, 3, 4, 5], cfg)


def test_sample_lengths_are_real_token_counts():
    from core.tokenizers import encode_ids

    texts = ["Packing puts sequences end to end.", "", "A second, slightly longer document here."]
    got = packing.sample_lengths(texts, tokenizer="cl100k_base", max_len=4)
    counts = [len(encode_ids("cl100k_base", t)) + 1 for t in texts if t]
    assert sum(got) == sum(counts) and max(got) <= 4
    docs = packing.text_documents("para one\npara two\n\nsecond article", "article")
    assert docs == ["para one\npara two", "second article"]
    with pytest.raises(ValidationError):
        packing.text_documents("   ", "paragraph")


@pytest.mark.slow
def test_recorded_histogram_matches_the_corpus():
    """bench/packing.py's WIKI_PARAGRAPH_HISTOGRAM (used on the GPU box) is the real one."""
    from bench import packing as bench

    hist = bench.recorded_histogram()
    assert hist["edges"] == bench.WIKI_PARAGRAPH_HISTOGRAM["edges"]
    assert hist["counts"] == bench.WIKI_PARAGRAPH_HISTOGRAM["counts"]


def test_benchmark_quick_run_writes_json(tmp_path):
    from bench import packing as bench

    payload = bench.main(["--quick", "--lengths", "histogram", "--n", "12", "--out", str(tmp_path),
                          "--methods", "padded,packed-varlen-loop,packed-flex"])
    doc = json.loads((tmp_path / "packing-cpu.json").read_text())
    assert doc["benchmark"] == "packing" and "synthetic" in doc["lengths_source"]
    assert [m["method"] for m in doc["methods"]] == ["padded", "packed-varlen-loop", "packed-flex"]
    assert doc["summary"] and payload["n_sequences"] == 12


# ---------------------------------------------------------------- CUDA
@pytest.mark.gpu
def test_flex_attention_matches_the_reference_on_cuda():
    torch.manual_seed(0)
    doc = packing.document_ids(packing.cu_seqlens([70, 33, 150]), 256)[None].cuda()
    q, k, v = (torch.randn(1, 4, 256, 32, device="cuda", requires_grad=True) for _ in range(3))
    out = packing.flex_document_attention(q, k, v, doc, compile=False)
    ref, _ = packing._reference_attention(q, k, v, doc)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=2e-5)
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


@pytest.mark.gpu
def test_packed_equals_alone_on_cuda_and_peak_memory_is_measured():
    res = packing.compare_layer([40, 90, 17], dtype="float32", device="cuda")
    assert max(next(v for v in res.variants if v.variant == "packed").rel) < 1e-4
    cfg = packing.ThroughputConfig(d_model=64, n_heads=2, n_layers=1, batch_size=2, capacity=128,
                             warmup=0, repeats=1)
    out = packing.measure_throughput([30, 60, 90, 20], cfg, device="cuda", methods=["padded", "packed-sdpa"])
    assert all(m.peak_bytes and m.peak_bytes > 0 for m in out.methods)


def test_attention_paths_are_core_backends():
    """sdpa / reference: core.nn's backends under the block mask (plain causal without doc ids);
    varlen-loop and flex: backends of their own; every path gives the reference's output."""
    doc = packing.document_ids(packing.cu_seqlens([3, 5]))[None]
    backend, causal, mask = packing.attention_path(doc, "sdpa")
    assert backend == "sdpa" and not causal and torch.equal(mask, packing.block_causal_mask(doc))
    assert packing.attention_path(None, "reference") == ("naive", True, None)
    assert packing.attention_path(None, "varlen-loop") == ("sdpa", True, None)
    assert callable(packing.attention_path(doc, "varlen-loop")[0])
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 8, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    ref, probs = packing._reference_attention(q, k, v, doc)
    assert float(probs[..., 3:, :3].abs().max()) == 0.0
    for attn in ("sdpa", "varlen-loop"):
        backend, causal, mask = packing.attention_path(doc, attn)
        out, _ = attend(q, k, v, backend=backend, causal=causal, mask=mask)
        torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
