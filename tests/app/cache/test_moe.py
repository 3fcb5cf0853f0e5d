"""app/cache/moe.py: a cached routing or specialisation belongs to the model its key names.

The wrappers take the frozen TrainConfig, the device and trained/untrained, and fetch the shared
comparison inside; these tests would catch a key that can disagree with the model it is used
for (two configurations, or a trained and an untrained model, sharing one cached answer).
Streamlit's caches work without a running app (bare mode), so the wrappers are called directly.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.cache import moe as moe_cache
from core.models import moe
from core.runtime.validation import ValidationError

TEXT = "Mixture-of-experts models send each token to a few specialists."


def _cfg(route_scale: float = 1.0, n_routed: int = 4, steps: int = 6) -> moe.TrainConfig:
    layer = moe.MoEConfig(d_model=32, n_routed=n_routed, top_k=2, expert_hidden=16,
                          route_scale=route_scale)
    return moe.TrainConfig(moe=layer, n_layers=1, n_heads=2, seq_len=32, batch=4, steps=steps,
                           eval_every=steps)


def test_two_configs_never_share_a_cached_routing():
    one = moe_cache.route_text(_cfg(route_scale=1.0), "cpu", False, "none", TEXT)
    other = moe_cache.route_text(_cfg(route_scale=2.5), "cpu", False, "none", TEXT)
    np.testing.assert_allclose(one.gates.sum(-1), 1.0, atol=1e-5)       # gates sum to the route scale
    np.testing.assert_allclose(other.gates.sum(-1), 2.5, atol=1e-5)
    wider = moe_cache.route_text(_cfg(n_routed=8), "cpu", False, "none", TEXT)
    assert wider.gates.shape[-1] == 8 and one.gates.shape[-1] == 4


@pytest.mark.parametrize("cfg", [_cfg(), _cfg(route_scale=2.0, n_routed=6)], ids=["small", "wider"])
def test_cached_answers_are_those_of_the_cached_model(cfg):
    comp = moe_cache.comparison(cfg, "cpu", False)
    assert moe_cache.comparison(cfg, "cpu", False) is comp                # one shared resource
    model = comp.runs["none"].model
    routing = moe_cache.route_text(cfg, "cpu", False, "none", TEXT)
    np.testing.assert_array_equal(routing.gates, moe.route_text(model, comp.vocab, TEXT).gates)
    specs = moe_cache.specialisation(cfg, "cpu", False, "none")
    assert [s.experts for s in specs] == [s.experts for s in
                                          moe.expert_specialisation(model, comp.vocab, comp.val)]


def test_trained_and_untrained_models_are_different_entries():
    cfg = _cfg(steps=6)
    untrained = moe_cache.route_text(cfg, "cpu", False, "none", TEXT)
    trained = moe_cache.route_text(cfg, "cpu", True, "none", TEXT)
    assert not np.array_equal(untrained.scores, trained.scores)           # training moved the router
    comp = moe_cache.comparison(cfg, "cpu", True)
    np.testing.assert_array_equal(
        trained.scores, moe.route_text(comp.runs["none"].model, comp.vocab, TEXT).scores)
    with pytest.raises(ValidationError, match="no run"):
        moe_cache.route_text(cfg, "cpu", False, "aux_free", TEXT)      # the untrained model has one run
