"""core.measure.activations: bytes autograd saves for backward on a real small transformer vs Korthikanti's terms.

Tolerance: after accounting for what the formula leaves out (LayerNorm's mean/rstd,
dropout masks wider than 1 byte), measured and predicted agree within 0.5 %;
activations alone within 0.5 %.
"""

from __future__ import annotations

import pytest
import torch

from core.measure.activations import (
    TinyGPT,
    TinyGPTConfig,
    build_model,
    check_fits,
    estimate_cost,
    measure_activations,
    predict_tiny,
    validate_tiny,
)
from core.memory import activation_bytes_per_layer
from core.runtime.validation import ResourceError, ValidationError

SMALL = TinyGPTConfig(vocab=64, hidden=64, heads=2, layers=3, seq=32, batch=2, dropout=0.1)
CASES = [(att, dt, p, "none") for att in ("eager", "sdpa") for dt in ("float32", "bfloat16")
         for p in (0.0, 0.1)]
CASES += [("eager", "float32", 0.1, ck) for ck in ("full", "sqrt")]
CASES += [("sdpa", "bfloat16", 0.0, ck) for ck in ("full", "sqrt")]


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/core/conftest.py


@pytest.mark.parametrize("attention, dtype, dropout, checkpointing", CASES)
def test_measured_matches_prediction(attention, dtype, dropout, checkpointing):
    """Korthikanti et al. 2022, section 4.1 terms at the run's dtype, checkpointed layers keeping
    only their input (Table 2, 'full': 2sbh in 16-bit), sqrt(n) as checkpoint_sequential."""
    cfg = TinyGPTConfig(**{**SMALL.__dict__, "attention": attention, "dtype": dtype, "dropout": dropout})
    m = measure_activations(cfg, checkpointing, "cpu")
    assert abs(m.diff_vs_explained) < 0.005, (m.measured_by_category, m.predicted_by_category)
    pred_act = m.predicted_by_category["activation"]
    assert m.measured_by_category["activation"] == pytest.approx(pred_act, rel=0.005)
    if dropout == 0.0:       # nothing but LayerNorm statistics left out
        assert abs(m.diff_vs_dtype) < 0.03
    assert m.cuda_peak_bytes is None and m.n_saved > 0


def test_eager_matches_the_paper_formula_in_16_bit():
    """bf16, no dropout, explicit softmax: measured ≈ L x sbh(32 + 2as/h) (the paper's terms
    without the masks) plus LayerNorm statistics only."""
    cfg = TinyGPTConfig(vocab=64, hidden=128, heads=4, layers=2, seq=64, batch=2, dropout=0.0,
                        dtype="bfloat16")
    m = measure_activations(cfg, "none", "cpu")
    s, b, h, a, L = 64, 2, 128, 4, 2
    formula = L * activation_bytes_per_layer(seq=s, batch=b, hidden=h, heads=a, dropout=False)
    assert m.predicted_dtype == pytest.approx(formula)
    assert m.measured_by_category["activation"] == formula


def test_checkpointing_keeps_only_layer_inputs():
    m = measure_activations(SMALL, "full", "cpu")
    assert m.measured_bytes == SMALL.layers * SMALL.seq * SMALL.batch * SMALL.hidden * 4   # fp32 inputs
    assert m.predicted_peak > m.predicted_dtype


def test_checkpointed_model_computes_the_same():
    """The checkpointed forward/backward (reference: no checkpointing) gives the same logits
    and gradients; return_internals exposes what full checkpointing keeps."""
    cfg = TinyGPTConfig(vocab=50, hidden=32, heads=4, layers=4, seq=16, batch=2, dropout=0.0)
    idx = torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq), generator=torch.Generator().manual_seed(0))
    grads = {}
    for mode in ("none", "full", "sqrt"):
        model = build_model(cfg, "cpu", seed=0)
        logits = model(idx, checkpointing=mode)
        logits.square().mean().backward()
        grads[mode] = (logits.detach(), torch.cat([p.grad.flatten() for p in model.parameters()]))
    for mode in ("full", "sqrt"):
        torch.testing.assert_close(grads[mode][0], grads["none"][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grads[mode][1], grads["none"][1], rtol=1e-4, atol=1e-6)
    model = build_model(cfg, "cpu", seed=0)
    logits, internals = model(idx, return_internals=True)
    assert len(internals.layer_inputs) == cfg.layers and internals.layer_inputs[0].shape == (2, 16, 32)
    torch.testing.assert_close(logits, grads["none"][0], rtol=1e-5, atol=1e-6)


def test_predict_tiny_sqrt_layout():
    cfg = TinyGPTConfig(vocab=64, hidden=64, heads=2, layers=9, seq=16, batch=1, dropout=0.0)
    pred = predict_tiny(cfg, "sqrt")
    layer_input = 16 * 64 * 4
    assert pred["plan"].stored_inputs == (0, 3)     # 3 segments of 3; the last runs normally
    assert pred["stored"] == pytest.approx(2 * layer_input + 3 * pred["per_layer"])


@pytest.mark.parametrize("changes, error", [
    ({"heads": 3}, "divide the hidden"),
    ({"hidden": 4}, "Hidden size"),
    ({"layers": 0}, "Layers"),
    ({"seq": 10**6}, "Sequence length"),
    ({"dropout": 1.5}, "Dropout"),
    ({"attention": "linear"}, "Attention"),
    ({"dtype": "float16"}, "float16"),
    ({"dtype": "int8"}, "dtype"),
])
def test_bad_configs(changes, error):
    with pytest.raises(ValidationError, match=error):
        validate_tiny(TinyGPTConfig(**{**SMALL.__dict__, **changes}), "cpu")


def test_measurement_that_does_not_fit_is_refused():
    huge = TinyGPTConfig(vocab=512, hidden=4096, heads=64, layers=48, seq=8192, batch=64)
    with pytest.raises(ResourceError, match="Lower"):
        check_fits(huge, "cpu")
    with pytest.raises(ResourceError):
        measure_activations(huge, "none", "cpu")
    assert estimate_cost(SMALL)["bytes"] < 2**30
    with pytest.raises(ValidationError):
        measure_activations(SMALL, "everything", "cpu")


def test_model_shapes():
    model = TinyGPT(SMALL)
    idx = torch.zeros(2, SMALL.seq, dtype=torch.long)
    assert model(idx).shape == (2, SMALL.seq, SMALL.vocab)


@pytest.mark.gpu
def test_cuda_peak_and_hooks_agree():
    """On CUDA the allocator's bytes held after forward match the hook count (plus the output)."""
    cfg = TinyGPTConfig(vocab=256, hidden=512, heads=8, layers=4, seq=512, batch=4, dropout=0.1,
                        dtype="bfloat16")
    m = measure_activations(cfg, "none", "cuda")
    assert m.cuda_held_bytes is not None and m.cuda_peak_bytes >= m.cuda_held_bytes
    assert m.measured_by_category.get("dropout mask", 0) == pytest.approx(
        m.predicted_by_category["dropout mask"], rel=0.01)       # 1-byte bool masks on CUDA
    assert abs(m.cuda_held_bytes - m.measured_bytes) / m.measured_bytes < 0.10


def test_paper_attention_equals_core_attention_and_takes_the_mask():
    """The eager path (scores, softmax and dropout in the activation dtype) is core.nn's naive
    attention; it takes causality from the model's buffer, never from causal=True."""
    from core.measure.activations import paper_attention
    from core.nn import attend, causal_mask

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    out, _ = attend(q, k, v, backend=paper_attention, causal=False, mask=causal_mask(9))
    ref, _ = attend(q, k, v, backend="naive", causal=True)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="mask"):
        attend(q, k, v, backend=paper_attention, causal=True)
