"""core/attention.py: the naive and tiled references, their trace, the FLOP and IO
calculators, the benchmark runner and the page's walkthrough data."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core import attention
from core.measure import attention_bench
from core.runtime.validation import ResourceError, ValidationError


def qkv(b, h, n, d, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=gen, dtype=torch.float64).to(dtype) for _ in range(3)]


# ---------------------------------------------------------------- benchmark runner
TINY = attention_bench.BenchConfig(seqs=(16, 33), batch=1, heads=2, head_dim=16, backward=True, warmup=0, repeats=1)


# ---------------------------------------------------------------- naive
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1, 8), (2, 3, 17, 16), (1, 2, 64, 64)])
def test_naive_matches_sdpa_float64(shape, causal):
    q, k, v = qkv(*shape)
    torch.testing.assert_close(attention.naive_attention(q, k, v, causal),
                               F.scaled_dot_product_attention(q, k, v, is_causal=causal), atol=1e-12, rtol=1e-12)


def test_naive_custom_scale_and_half_precision():
    q, k, v = qkv(1, 2, 20, 16)
    ref = F.scaled_dot_product_attention(q, k, v, scale=0.7)
    torch.testing.assert_close(attention.naive_attention(q, k, v, sm_scale=0.7), ref, atol=1e-12, rtol=0)
    half = [t.bfloat16() for t in (q, k, v)]
    out = attention.naive_attention(*half, sm_scale=0.7)
    assert out.dtype == torch.bfloat16
    exact = F.scaled_dot_product_attention(*(t.double() for t in half), scale=0.7)   # same rounded inputs
    # scores are rounded to bf16 (spacing 2^-5 near |s| = 4) before the fp32 softmax: ~5e-2 worst case
    torch.testing.assert_close(out.double(), exact, atol=8e-2, rtol=0)
    assert float((out.double() - exact).abs().mean()) < 1e-2


def test_naive_refuses_what_does_not_fit():
    """N = 32768 needs 8 GiB of fp32 scores+probs for one head; a CPU allows 2 GiB."""
    q = torch.zeros(1, 1, 32768, 16)
    with pytest.raises(ResourceError, match="GiB"):
        attention.naive_attention(q, q, q)
    assert attention.naive_scores_bytes(1, 1, 32768, torch.float32) == 2 * 32768**2 * 4 + 32768**2


def test_reference_attention_in_chunks():
    q, k, v = qkv(2, 2, 50, 8, dtype=torch.float32)
    chunked = attention.reference_attention(q, k, v, True, max_chunk_elements=300)     # 1-row chunks
    assert chunked.dtype == torch.float64
    torch.testing.assert_close(chunked, attention.naive_attention(q.double(), k.double(), v.double(), True),
                               atol=1e-12, rtol=0)


def test_attention_lse_matches_logsumexp():
    q, k, _ = qkv(1, 1, 9, 4)
    s = (q @ k.transpose(-2, -1))[0, 0] / 2.0
    torch.testing.assert_close(attention.attention_lse(q, k)[0, 0], torch.logsumexp(s, -1))


# ---------------------------------------------------------------- tiled
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("blocks", [(16, 16), (64, 64), (32, 16), (16, 32), (7, 5), (1, 1)])
@pytest.mark.parametrize("n", [1, 5, 64, 100])
def test_tiled_matches_naive(n, blocks, causal):
    q, k, v = qkv(2, 2, n, 8, seed=n)
    out = attention.tiled_attention(q, k, v, causal, block_m=blocks[0], block_n=blocks[1])
    torch.testing.assert_close(out, attention.naive_attention(q, k, v, causal), atol=1e-12, rtol=1e-12)


def test_tiled_default_blocks_half_precision_and_grads():
    q, k, v = qkv(1, 2, 150, 32)
    half = attention.tiled_attention(q.half(), k.half(), v.half(), True)
    assert half.dtype == torch.float16
    exact = attention.naive_attention(q.half().double(), k.half().double(), v.half().double(), True)
    torch.testing.assert_close(half.double(), exact, atol=2e-3, rtol=0)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    refs = [t.clone().requires_grad_() for t in (q, k, v)]
    do = torch.randn_like(q)
    attention.tiled_attention(*leaves, True, block_m=32, block_n=16).backward(do)
    attention.naive_attention(*refs, True).backward(do)
    for a, b in zip(leaves, refs, strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("causal", [False, True])
def test_trace_records_the_online_softmax(causal):
    n, bm, bn = 70, 32, 16
    q, k, v = qkv(2, 3, n, 8, seed=5)
    out, trace = attention.tiled_attention(q, k, v, causal, block_m=bm, block_n=bn, return_trace=True, trace_head=(1, 2))
    assert trace.head == (1, 2) and len(trace.steps) == math.ceil(n / bm) * math.ceil(n / bn)
    torch.testing.assert_close(trace.lse, attention.attention_lse(q, k, causal)[1, 2], atol=1e-12, rtol=0)
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
    q, k, v = qkv(1, 1, attention.MAX_TRACE_SEQ + 1, 4)
    with pytest.raises(ValidationError, match="trace"):
        attention.tiled_attention(q, k, v, return_trace=True)
    q, k, v = qkv(1, 1, 8, 4)
    with pytest.raises(ValidationError):
        attention.tiled_attention(q, k, v, return_trace=True, trace_head=(0, 3))
    with pytest.raises(ValidationError):
        attention.tiled_attention(q, k, v, block_m=0)


def test_tiled_step_cap(monkeypatch):
    monkeypatch.setattr(attention, "MAX_TILED_STEPS", 10)
    q, k, v = qkv(1, 1, 64, 4)
    with pytest.raises(ValidationError, match="tiles"):
        attention.tiled_attention(q, k, v, block_m=8, block_n=8)


# ---------------------------------------------------------------- input checks
@pytest.mark.parametrize("bad", [
    lambda q: (q, q[:, :, :3], q), lambda q: (q, q.float(), q), lambda q: (q[0], q[0], q[0]),
    lambda q: (q.long(), q.long(), q.long()), lambda q: (q, q.to("meta"), q), lambda q: (q[:, :, :0],) * 3,
    lambda q: ("q", q, q), lambda q: (torch.zeros(1, 1, 2, 1024),) * 3,
], ids=["shape", "dtype", "3d", "int", "device", "empty", "not-tensor", "head-dim"])
def test_check_qkv_refuses(bad):
    q = torch.zeros(1, 2, 5, 8, dtype=torch.float64)
    with pytest.raises(ValidationError):
        attention.naive_attention(*bad(q))


@pytest.mark.parametrize("scale", [0.0, -1.0, float("inf"), float("nan"), "x", 1e6])
def test_bad_scale(scale):
    q = torch.zeros(1, 1, 3, 4)
    with pytest.raises(ValidationError):
        attention.tiled_attention(q, q, q, sm_scale=scale)


# ---------------------------------------------------------------- calculators
def test_attention_flops_golden():
    """FlashAttention-2 paper Sec. 4.1: 4 * seqlen^2 * head_dim * heads forward; /2 causal; x3.5 fwd+bwd."""
    assert attention.attention_flops(1, 1, 1024, 64) == 268_435_456
    assert attention.attention_flops(2, 16, 4096, 128, causal=True) == 2 * 16 * 4096**2 * 128 * 2
    assert attention.attention_flops(1, 1, 1024, 64, backward=True) == 3.5 * 268_435_456


def test_io_analysis_golden():
    """Hand count from FlashAttention paper Alg. 0/1 (Sec. 3.2, Thm. 2), N=1024, d=64, M=96 KiB
    of 2-byte elements (49,152 elements): B_c = ceil(49152/256) = 192, B_r = 64, T_c = 6.
    Standard: (4Nd + 4N^2)*2 = 8,912,896 B. Alg. 1: (3Nd + 6*3Nd)*2 + (2N + 6*4N)*4 = 2,859,008 B.
    Ours (BLOCK_M 128, T_r = 8): (2Nd + 2d*8N)*2 + 4N = 2,363,392 B; causal reads
    K, V for 128*(1+...+8) = 4,608 keys: (2Nd + 2d*4608)*2 + 4N = 1,445,888 B."""
    io = attention.io_analysis(attention.IOConfig(n=1024, head_dim=64, sram_bytes=96 * 1024, block_m=128))
    assert (io.block_c, io.block_r, io.t_c, io.t_r) == (192, 64, 6, 8)
    assert (io.naive_bytes, io.flash_bytes, io.ours_bytes) == (8_912_896, 2_859_008, 2_363_392)
    causal = attention.io_analysis(attention.IOConfig(n=1024, head_dim=64, sram_bytes=96 * 1024, block_m=128, causal=True))
    assert causal.ours_bytes == 1_445_888 and causal.naive_bytes == io.naive_bytes
    assert io.naive_extra_bytes == 2 * 1024**2 * 2 and io.flash_extra_bytes == 4 * 1024
    # writes: standard S, P, O = (2N^2 + Nd)*2; Alg. 1 O, l, m each outer step (+ init); ours O + LSE
    assert io.naive_bytes - io.naive_read_bytes == (2 * 1024**2 + 1024 * 64) * 2
    assert io.flash_bytes - io.flash_read_bytes == (1024 * 64 + 6 * 1024 * 64) * 2 + (2 * 1024 + 6 * 2 * 1024) * 4
    assert io.ours_bytes - io.ours_read_bytes == 1024 * 64 * 2 + 4 * 1024


def test_io_analysis_follows_theorem_2():
    """Standard attention's traffic does not depend on M; FlashAttention's falls ~1/M and grows ~N^2 d^2."""
    small, big = (attention.io_analysis(attention.IOConfig(n=65536, head_dim=64, sram_bytes=m)) for m in (64 * 1024, 256 * 1024))
    assert small.naive_bytes == big.naive_bytes
    assert 3.5 < small.flash_bytes / big.flash_bytes < 4.5
    assert small.flash_order / big.flash_order == pytest.approx(4.0)
    long = attention.io_analysis(attention.IOConfig(n=131072, head_dim=64, sram_bytes=64 * 1024))
    assert long.flash_bytes / small.flash_bytes == pytest.approx(4.0, rel=0.05)
    assert attention.io_analysis(attention.IOConfig(n=4096, head_dim=64, sram_bytes=228 * 1024, batch_heads=8)).naive_bytes == \
        8 * attention.io_analysis(attention.IOConfig(n=4096, head_dim=64, sram_bytes=228 * 1024)).naive_bytes


@pytest.mark.parametrize("changes", [{"n": 0}, {"head_dim": 0}, {"sram_bytes": 10}, {"sram_bytes": 2048, "head_dim": 512},
                                     {"bytes_per_elem": 0}, {"batch_heads": 0}])
def test_io_analysis_refuses(changes):
    base = {"n": 1024, "head_dim": 64, "sram_bytes": 96 * 1024}
    with pytest.raises(ValidationError):
        attention.io_analysis(attention.IOConfig(**{**base, **changes}))
