"""core/attention.py: the naive and tiled references, their trace, the FLOP and IO
calculators, the benchmark runner and the page's walkthrough data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import core.attention as A
from core.scheduler import JobTimeout
from core.validation import ResourceError, ValidationError


def qkv(b, h, n, d, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=gen, dtype=torch.float64).to(dtype) for _ in range(3)]


# ---------------------------------------------------------------- naive
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1, 8), (2, 3, 17, 16), (1, 2, 64, 64)])
def test_naive_matches_sdpa_float64(shape, causal):
    q, k, v = qkv(*shape)
    torch.testing.assert_close(A.naive_attention(q, k, v, causal),
                               F.scaled_dot_product_attention(q, k, v, is_causal=causal), atol=1e-12, rtol=1e-12)


def test_naive_custom_scale_and_half_precision():
    q, k, v = qkv(1, 2, 20, 16)
    ref = F.scaled_dot_product_attention(q, k, v, scale=0.7)
    torch.testing.assert_close(A.naive_attention(q, k, v, sm_scale=0.7), ref, atol=1e-12, rtol=0)
    half = [t.bfloat16() for t in (q, k, v)]
    out = A.naive_attention(*half, sm_scale=0.7)
    assert out.dtype == torch.bfloat16
    exact = F.scaled_dot_product_attention(*(t.double() for t in half), scale=0.7)   # same rounded inputs
    # scores are rounded to bf16 (spacing 2^-5 near |s| = 4) before the fp32 softmax: ~5e-2 worst case
    torch.testing.assert_close(out.double(), exact, atol=8e-2, rtol=0)
    assert float((out.double() - exact).abs().mean()) < 1e-2


def test_naive_refuses_what_does_not_fit():
    """N = 32768 needs 8 GiB of fp32 scores+probs for one head; a CPU allows 2 GiB."""
    q = torch.zeros(1, 1, 32768, 16)
    with pytest.raises(ResourceError, match="GiB"):
        A.naive_attention(q, q, q)
    assert A.naive_scores_bytes(1, 1, 32768, torch.float32) == 2 * 32768**2 * 4 + 32768**2


def test_reference_attention_in_chunks():
    q, k, v = qkv(2, 2, 50, 8, dtype=torch.float32)
    chunked = A.reference_attention(q, k, v, True, max_chunk_elements=300)     # 1-row chunks
    assert chunked.dtype == torch.float64
    torch.testing.assert_close(chunked, A.naive_attention(q.double(), k.double(), v.double(), True),
                               atol=1e-12, rtol=0)


def test_attention_lse_matches_logsumexp():
    q, k, _ = qkv(1, 1, 9, 4)
    s = (q @ k.transpose(-2, -1))[0, 0] / 2.0
    torch.testing.assert_close(A.attention_lse(q, k)[0, 0], torch.logsumexp(s, -1))


# ---------------------------------------------------------------- tiled
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("blocks", [(16, 16), (64, 64), (32, 16), (16, 32), (7, 5), (1, 1)])
@pytest.mark.parametrize("n", [1, 5, 64, 100])
def test_tiled_matches_naive(n, blocks, causal):
    q, k, v = qkv(2, 2, n, 8, seed=n)
    out = A.tiled_attention(q, k, v, causal, block_m=blocks[0], block_n=blocks[1])
    torch.testing.assert_close(out, A.naive_attention(q, k, v, causal), atol=1e-12, rtol=1e-12)


def test_tiled_default_blocks_half_precision_and_grads():
    q, k, v = qkv(1, 2, 150, 32)
    half = A.tiled_attention(q.half(), k.half(), v.half(), True)
    assert half.dtype == torch.float16
    exact = A.naive_attention(q.half().double(), k.half().double(), v.half().double(), True)
    torch.testing.assert_close(half.double(), exact, atol=2e-3, rtol=0)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    refs = [t.clone().requires_grad_() for t in (q, k, v)]
    do = torch.randn_like(q)
    A.tiled_attention(*leaves, True, block_m=32, block_n=16).backward(do)
    A.naive_attention(*refs, True).backward(do)
    for a, b in zip(leaves, refs, strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("causal", [False, True])
def test_trace_records_the_online_softmax(causal):
    n, bm, bn = 70, 32, 16
    q, k, v = qkv(2, 3, n, 8, seed=5)
    out, trace = A.tiled_attention(q, k, v, causal, block_m=bm, block_n=bn, return_trace=True, trace_head=(1, 2))
    assert trace.head == (1, 2) and len(trace.steps) == math.ceil(n / bm) * math.ceil(n / bn)
    torch.testing.assert_close(trace.lse, A.attention_lse(q, k, causal)[1, 2], atol=1e-12, rtol=0)
    for i in range(math.ceil(n / bm)):
        steps = [s for s in trace.steps if s.q_block == i]
        r1 = min((i + 1) * bm, n)
        assert [s.skipped for s in steps] == [causal and s.cols[0] >= r1 for s in steps]
        visited = [s for s in steps if not s.skipped]
        assert torch.all(visited[0].alpha == 0)                   # m starts at -inf
        for prev, cur in zip(visited, visited[1:], strict=False):
            assert torch.all(cur.m >= prev.m) and torch.all((cur.alpha > 0) & (cur.alpha <= 1))
            torch.testing.assert_close(cur.alpha, torch.exp(prev.m - cur.m))
        assert [s.edge for s in steps] == [s.cols[0] + bn > n for s in steps]
        assert [s.causal_masked for s in visited] == [causal and s.cols[1] - 1 > s.rows[0] for s in visited]


def test_trace_limits():
    q, k, v = qkv(1, 1, A.MAX_TRACE_SEQ + 1, 4)
    with pytest.raises(ValidationError, match="trace"):
        A.tiled_attention(q, k, v, return_trace=True)
    q, k, v = qkv(1, 1, 8, 4)
    with pytest.raises(ValidationError):
        A.tiled_attention(q, k, v, return_trace=True, trace_head=(0, 3))
    with pytest.raises(ValidationError):
        A.tiled_attention(q, k, v, block_m=0)


def test_tiled_step_cap(monkeypatch):
    monkeypatch.setattr(A, "MAX_TILED_STEPS", 10)
    q, k, v = qkv(1, 1, 64, 4)
    with pytest.raises(ValidationError, match="tiles"):
        A.tiled_attention(q, k, v, block_m=8, block_n=8)


# ---------------------------------------------------------------- input checks
@pytest.mark.parametrize("bad", [
    lambda q: (q, q[:, :, :3], q), lambda q: (q, q.float(), q), lambda q: (q[0], q[0], q[0]),
    lambda q: (q.long(), q.long(), q.long()), lambda q: (q, q.to("meta"), q), lambda q: (q[:, :, :0],) * 3,
    lambda q: ("q", q, q), lambda q: (torch.zeros(1, 1, 2, 1024),) * 3,
], ids=["shape", "dtype", "3d", "int", "device", "empty", "not-tensor", "head-dim"])
def test_check_qkv_refuses(bad):
    q = torch.zeros(1, 2, 5, 8, dtype=torch.float64)
    with pytest.raises(ValidationError):
        A.naive_attention(*bad(q))


@pytest.mark.parametrize("scale", [0.0, -1.0, float("inf"), float("nan"), "x", 1e6])
def test_bad_scale(scale):
    q = torch.zeros(1, 1, 3, 4)
    with pytest.raises(ValidationError):
        A.tiled_attention(q, q, q, sm_scale=scale)


# ---------------------------------------------------------------- calculators
def test_attention_flops_golden():
    """FlashAttention-2 paper Sec. 4.1: 4 * seqlen^2 * head_dim * heads forward; /2 causal; x3.5 fwd+bwd."""
    assert A.attention_flops(1, 1, 1024, 64) == 268_435_456
    assert A.attention_flops(2, 16, 4096, 128, causal=True) == 2 * 16 * 4096**2 * 128 * 2
    assert A.attention_flops(1, 1, 1024, 64, backward=True) == 3.5 * 268_435_456


def test_io_analysis_golden():
    """Hand count from FlashAttention paper Alg. 0/1 (Sec. 3.2, Thm. 2), N=1024, d=64, M=96 KiB
    of 2-byte elements (49,152 elements): B_c = ceil(49152/256) = 192, B_r = 64, T_c = 6.
    Standard: (4Nd + 4N^2)*2 = 8,912,896 B. Alg. 1: (3Nd + 6*3Nd)*2 + (2N + 6*4N)*4 = 2,859,008 B.
    Ours (BLOCK_M 128, T_r = 8): (2Nd + 2d*8N)*2 + 4N = 2,363,392 B; causal reads
    K, V for 128*(1+...+8) = 4,608 keys: (2Nd + 2d*4608)*2 + 4N = 1,445,888 B."""
    io = A.io_analysis(A.IOConfig(n=1024, head_dim=64, sram_bytes=96 * 1024, block_m=128))
    assert (io.block_c, io.block_r, io.t_c, io.t_r) == (192, 64, 6, 8)
    assert (io.naive_bytes, io.flash_bytes, io.ours_bytes) == (8_912_896, 2_859_008, 2_363_392)
    causal = A.io_analysis(A.IOConfig(n=1024, head_dim=64, sram_bytes=96 * 1024, block_m=128, causal=True))
    assert causal.ours_bytes == 1_445_888 and causal.naive_bytes == io.naive_bytes
    assert io.naive_extra_bytes == 2 * 1024**2 * 2 and io.flash_extra_bytes == 4 * 1024
    # writes: standard S, P, O = (2N^2 + Nd)*2; Alg. 1 O, l, m each outer step (+ init); ours O + LSE
    assert io.naive_bytes - io.naive_read_bytes == (2 * 1024**2 + 1024 * 64) * 2
    assert io.flash_bytes - io.flash_read_bytes == (1024 * 64 + 6 * 1024 * 64) * 2 + (2 * 1024 + 6 * 2 * 1024) * 4
    assert io.ours_bytes - io.ours_read_bytes == 1024 * 64 * 2 + 4 * 1024


def test_io_analysis_follows_theorem_2():
    """Standard attention's traffic does not depend on M; FlashAttention's falls ~1/M and grows ~N^2 d^2."""
    small, big = (A.io_analysis(A.IOConfig(n=65536, head_dim=64, sram_bytes=m)) for m in (64 * 1024, 256 * 1024))
    assert small.naive_bytes == big.naive_bytes
    assert 3.5 < small.flash_bytes / big.flash_bytes < 4.5
    assert small.flash_order / big.flash_order == pytest.approx(4.0)
    long = A.io_analysis(A.IOConfig(n=131072, head_dim=64, sram_bytes=64 * 1024))
    assert long.flash_bytes / small.flash_bytes == pytest.approx(4.0, rel=0.05)
    assert A.io_analysis(A.IOConfig(n=4096, head_dim=64, sram_bytes=228 * 1024, batch_heads=8)).naive_bytes == \
        8 * A.io_analysis(A.IOConfig(n=4096, head_dim=64, sram_bytes=228 * 1024)).naive_bytes


@pytest.mark.parametrize("changes", [{"n": 0}, {"head_dim": 0}, {"sram_bytes": 10}, {"sram_bytes": 2048, "head_dim": 512},
                                     {"bytes_per_elem": 0}, {"batch_heads": 0}])
def test_io_analysis_refuses(changes):
    base = {"n": 1024, "head_dim": 64, "sram_bytes": 96 * 1024}
    with pytest.raises(ValidationError):
        A.io_analysis(A.IOConfig(**{**base, **changes}))


# ---------------------------------------------------------------- benchmark runner
TINY = A.BenchConfig(seqs=(16, 33), batch=1, heads=2, head_dim=16, backward=True, warmup=0, repeats=1)


def test_run_benchmark_tiny_cpu():
    progress = []
    rows = A.run_benchmark(TINY, "cpu", progress=lambda f, m: progress.append(f))
    assert len(rows) == 2 * 4 * 2 and progress[-1] == 1.0
    for r in rows:
        assert r.max_err is not None and r.max_err < 1e-5, r
        if r.mode == "fwd+bwd":
            assert r.grad_err is not None and r.grad_err < 1e-4, r
        if r.impl == "triton" and A.kernel_interpreted("cpu"):
            assert r.status == A.INTERPRETER_STATUS and r.ms is None and r.tflops is None
        else:
            assert r.status == "ok" and r.ms > 0 and r.tflops > 0 and r.peak_bytes is None


def test_run_benchmark_refusals_and_budget(monkeypatch):
    monkeypatch.setattr(A, "NAIVE_CPU_MAX_BYTES", 1000)
    cfg = A.BenchConfig(seqs=(300,), head_dim=16, heads=1, impls=("naive", "triton"), warmup=0, repeats=1)
    naive, triton = A.run_benchmark(cfg, "cpu")
    assert naive.status.startswith("refused") and "GiB" in naive.status and naive.ms is None
    if A.kernel_interpreted("cpu"):
        assert triton.status.startswith("skipped") and "interpreter" in triton.status
    skipped = A.run_benchmark(TINY, "cpu", deadline=0.0)
    assert all(r.status == "skipped: time budget spent" for r in skipped)


def test_run_benchmark_stops_on_job_timeout():
    class Job:
        def check(self):
            raise JobTimeout("stopped after its time limit")

    with pytest.raises(JobTimeout):
        A.run_benchmark(TINY, "cpu", job=Job())


@pytest.mark.parametrize("changes", [
    {"seqs": ()}, {"seqs": (8192,)}, {"seqs": tuple(range(1, 20))}, {"head_dim": 8}, {"head_dim": 256},
    {"dtype": "float64"}, {"impls": ("flash3",)}, {"impls": ()}, {"batch": 16, "heads": 32},
    {"batch": 8, "heads": 32, "head_dim": 128, "seqs": (4096,)}, {"sdpa_backend": "cudnn"},
    {"repeats": 0}, {"causal": "no"}, {"backward": 1},
])
def test_bench_config_refuses(changes):
    base = {"seqs": (64,), "head_dim": 64}
    with pytest.raises(ValidationError):
        A.check_bench_config(A.BenchConfig(**{**base, **changes}), "cpu")


def test_bench_config_batch_heads_cap_is_per_device():
    """CPU: 256 (per-head Python loops); CUDA: 64 x 128, memory being capped by the element count.
    The FlashAttention-2 paper's set-up (16k tokens x 2048 hidden) at N=1k, d=64 is batch 16 x heads 32."""
    paper = A.BenchConfig(seqs=(1024,), batch=16, heads=32, head_dim=64, dtype="bfloat16")
    assert A.check_bench_config(paper, "cuda").batch == 16
    with pytest.raises(ValidationError, match="256"):
        A.check_bench_config(paper, "cpu")
    with pytest.raises(ValidationError, match="elements"):
        A.check_bench_config(A.BenchConfig(seqs=(32768,), batch=64, heads=128, head_dim=128), "cuda")


def test_sdpa_variants_are_bench_only_and_skip_on_cpu():
    assert "sdpa_cudnn" not in A.IMPLEMENTATIONS and {"sdpa_flash", "sdpa_cudnn"} <= set(A.BENCH_IMPLEMENTATIONS)
    cfg = A.BenchConfig(seqs=(16,), heads=1, head_dim=16, impls=("sdpa_flash", "sdpa_cudnn"), warmup=0, repeats=1)
    rows = A.run_benchmark(cfg, "cpu")
    assert [r.impl for r in rows] == ["sdpa_flash", "sdpa_cudnn"]
    assert all(r.status.startswith("skipped") and "CUDA" in r.status and r.ms is None for r in rows)


def test_sdpa_default_backend_is_named():
    q = torch.zeros(1, 2, 16, 16)
    assert A.sdpa_default_backend(q, q, q, causal=True) in {"FLASH_ATTENTION", "MATH", "EFFICIENT_ATTENTION", None}


def test_timing_quantiles_bracket_the_median():
    median, p20, p80 = A.timing_quantiles(lambda: torch.ones(64, 64) @ torch.ones(64, 64), "cpu",
                                          warmup=1, repeats=5)
    assert 0 < p20 <= median <= p80


def test_bench_config_sorts_and_dedupes():
    cfg = A.check_bench_config(A.BenchConfig(seqs=(128, 64, 128), impls=("sdpa", "sdpa")), "cpu")
    assert cfg.seqs == (64, 128) and cfg.impls == ("sdpa",)


def test_memory_footprint_formula_on_cpu():
    rows = A.memory_footprint(A.BenchConfig(seqs=(1024,), batch=1, heads=4, head_dim=64), "cpu")
    by = {r.impl: r for r in rows}
    out = 4 * 1024 * 64 * 4
    assert by["naive"].analytic_bytes == out + A.naive_scores_bytes(1, 4, 1024, torch.float32)
    assert by["triton"].analytic_bytes == out + 4 * 1024 * 4
    assert by["sdpa"].analytic_bytes is None
    assert all(r.measured_bytes is None for r in rows)
    assert by["naive"].analytic_bytes > 10 * by["triton"].analytic_bytes


# ---------------------------------------------------------------- walkthrough
def test_tiling_walkthrough_and_row_progress():
    view = A.tiling_walkthrough(A.TilingConfig(n=70, head_dim=16, block_m=32, block_n=16, causal=True))
    assert view.out_max_err < 1e-12 and view.lse_max_err < 1e-12
    row = 40
    t_c = math.ceil(70 / 16)
    last = A.row_progress(view, row, t_c - 1)
    assert last.visited == (0, 1, 2, 3) and last.skipped == (4,)
    assert last.lse_err < 1e-12 and last.prob_err < 1e-12
    np.testing.assert_allclose(last.final, view.probs[row])
    mid = A.row_progress(view, row, 1)
    assert mid.lse_err is None and mid.done == 2
    seen = np.isfinite(mid.estimate)
    assert seen.sum() == 32 and mid.estimate[seen].sum() == pytest.approx(1.0)
    assert mid.l[1] == pytest.approx(np.exp(view.scores[row, :32] - mid.m[1]).sum())
    assert 32 <= A.busiest_row(view, 1) < 64
    with pytest.raises(ValidationError):
        A.row_progress(view, 70, 0)


def test_kernel_check_agrees_with_naive():
    view = A.tiling_walkthrough(A.TilingConfig(n=40, head_dim=16, block_m=32, block_n=16))
    check = A.kernel_check(view, "cpu")
    assert check.out_max_err < 1e-5 and check.lse_max_err < 1e-5
    assert (check.block_m, check.block_n) == (32, 16)


@pytest.mark.parametrize("changes", [{"n": 0}, {"n": 10_000}, {"head_dim": 8}, {"block_m": 8}, {"source": "file"},
                                     {"layer": 6}, {"head": 12}, {"causal": None}])
def test_tiling_config_refuses(changes):
    with pytest.raises(ValidationError):
        A.tiling_walkthrough(A.TilingConfig(**changes))


@pytest.mark.slow
def test_minilm_head_is_the_models_own_attention():
    """q, k from all-MiniLM-L6-v2's layer 2 give exactly the model's attention probabilities."""
    from core import minilm

    text = "FlashAttention computes exact attention without writing the score matrix to memory."
    q, k, v, tokens = A.minilm_qkv(text, 2, 64)
    assert q.shape == k.shape == v.shape == (1, 12, len(tokens), 32) and tokens[0] == "[CLS]"
    ids = torch.tensor([minilm.load_tokenizer().encode(text).ids])
    with torch.inference_mode():
        probs = minilm.load_model("cpu").eval()(input_ids=ids, output_attentions=True).attentions[2]  # (1, 12, T, T)
    ours = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(32), dim=-1)
    torch.testing.assert_close(ours, probs, atol=1e-5, rtol=1e-4)
    view = A.tiling_walkthrough(A.TilingConfig(source="minilm", text=text, n=12, layer=2, head=3,
                                               block_m=16, block_n=16))
    assert view.n == 12 and view.head_dim == 32 and view.tokens[-1] == "[SEP]"


def test_minilm_text_is_checked():
    with pytest.raises(ValidationError):
        A.minilm_qkv("   ", 0, 64)


# ---------------------------------------------------------------- recorded results
def test_recorded_rows_and_speed_ratios():
    doc = {"cases": [{"head_dim": 64, "causal": False, "dtype": "bfloat16", "batch": 4, "heads": 32, "rows": [
        {"impl": "triton", "n": 4096, "mode": "fwd", "ms": 2.0, "tflops": 300.0},
        {"impl": "sdpa", "n": 4096, "mode": "fwd", "ms": 2.5, "tflops": 240.0},
        {"impl": "triton", "n": 4096, "mode": "fwd+bwd", "ms": None, "tflops": None},
        {"impl": "sdpa", "n": 4096, "mode": "fwd+bwd", "ms": 9.0, "tflops": 300.0},
    ]}, "junk"]}
    rows = A.recorded_rows(doc)
    assert len(rows) == 4 and rows[0]["head_dim"] == 64 and rows[0]["dtype"] == "bfloat16"
    (ratio,) = A.speed_ratios(rows)
    assert ratio["mode"] == "fwd" and ratio["ratio"] == pytest.approx(1.25)
    assert A.recorded_rows({"no": "cases"}) == [] and A.recorded_rows([]) == []


def test_compare_rows_against_both_backends():
    """vs_flash = flash time / row time at the same (head_dim, causal, N, mode); old files (impl
    "sdpa" with sdpa_backend "flash") count as the flash baseline."""
    base = {"head_dim": 64, "causal": True, "n": 2048, "mode": "fwd"}
    rows = A.compare_rows([{**base, "impl": "triton", "ms": 2.0}, {**base, "impl": "sdpa_flash", "ms": 3.0},
                           {**base, "impl": "sdpa_cudnn", "ms": 1.5}, {**base, "impl": "naive", "ms": None},
                           {**base, "impl": "triton", "n": 4096, "ms": 1.0}])
    ours = rows[0]
    assert ours["vs_flash"] == pytest.approx(1.5) and ours["vs_cudnn"] == pytest.approx(0.75)
    assert rows[1]["vs_flash"] == pytest.approx(1.0) and rows[3]["vs_flash"] is None
    assert rows[4]["vs_flash"] is None and rows[4]["vs_cudnn"] is None
    old = A.compare_rows([{**base, "impl": "triton", "ms": 2.0}, {**base, "impl": "sdpa", "sdpa_backend": "flash", "ms": 2.0}])
    assert old[0]["vs_flash"] == pytest.approx(1.0) and old[0]["vs_cudnn"] is None


def test_recorded_gpu_results_reads_the_bundle(tmp_path):
    import json

    assert A.recorded_gpu_results(tmp_path) is None
    att = {"benchmark": "attention", "meta": {"device": {"kind": "cuda", "name": "NVIDIA H200"}}, "cases": []}
    (tmp_path / "gpu-check-cuda.json").write_text(json.dumps(
        {"benchmark": "gpu-check", "results": {"attention-cuda": {**att, "dry_run": True}}}))
    assert A.recorded_gpu_results(tmp_path) is None                     # a dry run is not a result
    (tmp_path / "gpu-check-cuda.json").write_text(json.dumps(
        {"benchmark": "gpu-check", "results": {"attention-cuda": att}}))
    assert A.recorded_gpu_results(tmp_path)["meta"]["device"]["name"] == "NVIDIA H200"
    (tmp_path / "gpu-check-cuda.json").write_text("{broken")
    cpu = {**att, "meta": {"device": {"kind": "cpu"}}}
    (tmp_path / "attention-cuda.json").write_text(json.dumps(cpu))
    assert A.recorded_gpu_results(tmp_path) is None

