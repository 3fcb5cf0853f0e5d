"""core/views/tiling.py: the FlashAttention page's tiling walkthrough (real tiles, running
max / sum per row, the kernel check on the same inputs)."""


from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.measure import attention_bench
from core.runtime.validation import ValidationError
from core.views import tiling


def qkv(b, h, n, d, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=gen, dtype=torch.float64).to(dtype) for _ in range(3)]


# ---------------------------------------------------------------- benchmark runner
TINY = attention_bench.BenchConfig(seqs=(16, 33), batch=1, heads=2, head_dim=16, backward=True, warmup=0, repeats=1)


# ---------------------------------------------------------------- walkthrough
def test_tiling_walkthrough_and_row_progress():
    view = tiling.tiling_walkthrough(tiling.TilingConfig(n=70, head_dim=16, block_m=32, block_n=16, causal=True))
    assert view.out_max_err < 1e-12 and view.lse_max_err < 1e-12
    row = 40
    t_c = math.ceil(70 / 16)
    last = tiling.row_progress(view, row, t_c - 1)
    assert last.visited == (0, 1, 2, 3) and last.skipped == (4,)
    assert last.lse_err < 1e-12 and last.prob_err < 1e-12
    np.testing.assert_allclose(last.final, view.probs[row])
    mid = tiling.row_progress(view, row, 1)
    assert mid.lse_err is None and mid.done == 2
    seen = np.isfinite(mid.estimate)
    assert seen.sum() == 32 and mid.estimate[seen].sum() == pytest.approx(1.0)
    assert mid.l[1] == pytest.approx(np.exp(view.scores[row, :32] - mid.m[1]).sum())
    assert 32 <= tiling.busiest_row(view, 1) < 64
    with pytest.raises(ValidationError):
        tiling.row_progress(view, 70, 0)


def test_kernel_check_agrees_with_naive():
    view = tiling.tiling_walkthrough(tiling.TilingConfig(n=40, head_dim=16, block_m=32, block_n=16))
    check = tiling.kernel_check(view, "cpu")
    assert check.out_max_err < 1e-5 and check.lse_max_err < 1e-5
    assert (check.block_m, check.block_n) == (32, 16)


@pytest.mark.parametrize("changes", [{"n": 0}, {"n": 10_000}, {"head_dim": 8}, {"block_m": 8}, {"source": "file"},
                                     {"layer": 6}, {"head": 12}, {"causal": None}])
def test_tiling_config_refuses(changes):
    with pytest.raises(ValidationError):
        tiling.tiling_walkthrough(tiling.TilingConfig(**changes))


@pytest.mark.slow
def test_minilm_head_is_the_models_own_attention():
    """q, k from all-MiniLM-L6-v2's layer 2 give exactly the model's attention probabilities."""
    from core.data import minilm

    text = "FlashAttention computes exact attention without writing the score matrix to memory."
    q, k, v, tokens = tiling.minilm_qkv(text, 2, 64)
    assert q.shape == k.shape == v.shape == (1, 12, len(tokens), 32) and tokens[0] == "[CLS]"
    ids = torch.tensor([minilm.load_tokenizer().encode(text).ids])
    with torch.inference_mode():
        probs = minilm.load_model("cpu").eval()(input_ids=ids, output_attentions=True).attentions[2]  # (1, 12, T, T)
    ours = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(32), dim=-1)
    torch.testing.assert_close(ours, probs, atol=1e-5, rtol=1e-4)
    view = tiling.tiling_walkthrough(tiling.TilingConfig(source="minilm", text=text, n=12, layer=2, head=3,
                                               block_m=16, block_n=16))
    assert view.n == 12 and view.head_dim == 32 and view.tokens[-1] == "[SEP]"


def test_minilm_text_is_checked():
    with pytest.raises(ValidationError):
        tiling.minilm_qkv("   ", 0, 64)
