"""core/nn: the building blocks against written-out float64 references, on odd shapes."""

from __future__ import annotations

import math

import pytest
import torch

from core.nn import (
    BACKENDS,
    DecoderConfig,
    DecoderLM,
    KVCache,
    RMSNorm,
    SamplingConfig,
    apply_rope,
    attend,
    causal_mask,
    expand_kv,
    next_token_distribution,
    padding_mask,
    rope_cos_sin,
    sample_token,
    window_mask,
)
from core.nn.attention import CACHE_CHUNK
from core.nn.sampling import check_sampling
from core.runtime.validation import ResourceError, ValidationError

pytestmark = pytest.mark.usefixtures("one_thread")


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def reference_attention(q, k, v, causal, mask=None):
    """Loops over query heads, reading K/V head h // group: float64, no shared code."""
    B, H, Tq, D = q.shape
    G = k.shape[1]
    out = torch.zeros(B, H, Tq, D, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            g = h // (H // G)
            s = q[b, h].double() @ k[b, g].double().T / math.sqrt(D)            # (Tq, Tk)
            Tk = s.shape[1]
            for i in range(Tq):
                for j in range(Tk):
                    hidden = (causal and j > Tk - Tq + i) or (mask is not None and not bool(mask[i, j]))
                    if hidden:
                        s[i, j] = -math.inf
            out[b, h] = torch.softmax(s, -1) @ v[b, g].double()
    return out


# ---------------------------------------------------------------- norms, RoPE, masks
def test_rmsnorm_matches_torch_and_keeps_dtype():
    x = rand(3, 5, 37)
    norm = RMSNorm(37, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.copy_(rand(37, seed=1))
    ref = torch.nn.functional.rms_norm(x, (37,), norm.weight, 1e-5)
    torch.testing.assert_close(norm(x), ref, atol=1e-14, rtol=0)
    assert norm.float().to(torch.bfloat16)(x.bfloat16()).dtype == torch.bfloat16


def test_rope_equals_complex_rotation():
    """RoFormer eq. 34: pair (x_i, x_{i+d/2}) as a complex number times e^{i pos theta_i}."""
    T, D, theta = 13, 10, 500.0
    x = rand(2, 3, T, D)
    cos, sin = rope_cos_sin(torch.arange(T), D, theta, torch.float64)
    got = apply_rope(x, cos, sin)
    freqs = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * freqs                # (T, D/2)
    z = torch.complex(x[..., : D // 2], x[..., D // 2:]) * torch.polar(torch.ones_like(angle), angle)
    torch.testing.assert_close(got, torch.cat([z.real, z.imag], -1), atol=1e-12, rtol=0)


def test_rope_relative_property_and_batched_positions():
    """<R_m q, R_n k> depends only on m - n; per-sequence positions (B, T) broadcast over heads."""
    D = 8
    q, k = rand(1, 1, 1, D, seed=1), rand(1, 1, 1, D, seed=2)

    def dot(m, n):
        cq, sq = rope_cos_sin(torch.tensor([m]), D, 10000.0, torch.float64)
        ck, sk = rope_cos_sin(torch.tensor([n]), D, 10000.0, torch.float64)
        return float((apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum())

    assert dot(7, 3) == pytest.approx(dot(104, 100), abs=1e-9)
    cos, sin = rope_cos_sin(torch.tensor([[0, 1, 2], [5, 0, 1]]), D, 10000.0, torch.float64)
    assert cos.shape == (2, 1, 3, D // 2)
    shared, _ = rope_cos_sin(torch.tensor([5, 0, 1]), D, 10000.0, torch.float64)
    torch.testing.assert_close(cos[1, 0], shared)


def test_rope_freq_factors_divide_frequencies():
    pos = torch.arange(4)
    plain, _ = rope_cos_sin(pos * 2, 4, 100.0, torch.float64)
    halved, _ = rope_cos_sin(pos, 4, 100.0, torch.float64, freq_factors=torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(plain, halved)


def test_masks():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]
    with pytest.raises(ValueError):
        causal_mask(4, 2)
    assert window_mask(4, 2).tolist() == [[True, False, False, False], [True, True, False, False],
                                          [False, True, True, False], [False, False, True, True]]
    assert padding_mask(torch.tensor([2, 3]), 3)[:, 0, 0].tolist() == [[True, True, False], [True, True, True]]


# ---------------------------------------------------------------- attention
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(1, 3, 3, 17, 16), (2, 4, 2, 33, 32), (1, 2, 1, 1, 16)])
@pytest.mark.parametrize("causal", [False, True])
def test_backends_match_float64_reference(backend, shape, causal):
    """(B, H, H_kv, T, D) with GQA groups of 1, 2 and 2; odd lengths; fp32 inputs."""
    B, H, G, T, D = shape
    q, k, v = rand(B, H, T, D, seed=1), rand(B, G, T, D, seed=2), rand(B, G, T, D, seed=3)
    ref = reference_attention(q, k, v, causal)
    out, probs = attend(q.float(), k.float(), v.float(), backend=backend, causal=causal)
    assert probs is None
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_step_and_masks_fall_back_correctly(backend):
    """One query over a longer cache (bottom-right causal) and an explicit window mask."""
    q, k, v = rand(1, 4, 3, 16, seed=4), rand(1, 2, 9, 16, seed=5), rand(1, 2, 9, 16, seed=6)
    out, _ = attend(q, k, v, backend=backend, causal=True)
    torch.testing.assert_close(out, reference_attention(q, k, v, True), atol=1e-12, rtol=0)
    qq = rand(1, 2, 7, 16, seed=7)
    kk, vv = rand(1, 2, 7, 16, seed=8), rand(1, 2, 7, 16, seed=9)
    win = window_mask(7, 3)
    out, _ = attend(qq, kk, vv, backend=backend, causal=True, mask=win)
    torch.testing.assert_close(out, reference_attention(qq, kk, vv, True, win), atol=1e-12, rtol=0)


def test_probabilities_are_returned_and_causal():
    q, k, v = rand(1, 3, 6, 8), rand(1, 1, 6, 8, seed=1), rand(1, 1, 6, 8, seed=2)
    out, probs = attend(q, k, v, backend="sdpa", return_probs=True)
    assert probs.shape == (1, 3, 6, 6)
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 3, 6, dtype=torch.float64))
    assert float(probs.triu(1).abs().max()) == 0.0
    torch.testing.assert_close(out, reference_attention(q, k, v, True), atol=1e-12, rtol=0)


def test_expand_kv_order():
    k = torch.arange(2)[None, :, None, None].expand(1, 2, 1, 1).float()
    assert expand_kv(k, 3)[0, :, 0, 0].tolist() == [0, 0, 0, 1, 1, 1]


def test_kv_cache_grows_in_chunks_and_counts_bytes():
    cache = KVCache(2)
    for layer in range(2):
        cache.update(layer, torch.zeros(1, 3, 5, 64), torch.zeros(1, 3, 5, 64))
    assert cache.length == 5
    assert cache.nbytes() == 2 * 2 * 3 * 5 * 64 * 4                  # layers x (k, v) x heads x T x D x fp32
    assert cache.allocated_bytes() == 2 * 2 * 3 * CACHE_CHUNK * 64 * 4
    k, v = cache.update(0, torch.ones(1, 3, CACHE_CHUNK, 64), torch.ones(1, 3, CACHE_CHUNK, 64))
    assert k.shape[2] == 5 + CACHE_CHUNK and float(k[:, :, :5].abs().sum()) == 0.0
    assert float(k[:, :, 5:].min()) == 1.0


# ---------------------------------------------------------------- the decoder
def tiny(**changes):
    base = {"vocab_size": 61, "d_model": 48, "n_layers": 3, "n_heads": 6, "n_kv_heads": 2, "head_dim": 8, "d_ff": 72}
    return DecoderConfig(**{**base, **changes})


@pytest.mark.parametrize("cfg", [
    tiny(),
    tiny(mlp="gelu", norm="layernorm", positions="learned", linear_bias=True, head_bias=True, n_kv_heads=6),
    tiny(positions="sinusoidal", tied_embeddings=True, qkv_bias=True),
], ids=["llama", "gpt2", "sinusoidal"])
def test_cached_decoding_equals_full_forward(cfg):
    torch.manual_seed(0)
    model = DecoderLM(cfg).double().eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 11))
    with torch.no_grad():
        full = model(ids)                                                         # (2, 11, V)
        cache = KVCache(cfg.n_layers)
        steps = [model(ids[:, :4], cache=cache)] + [model(ids[:, t:t + 1], cache=cache) for t in range(4, 11)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-12, rtol=0)


def test_internals_add_up_and_checkpointing_keeps_gradients():
    cfg = tiny()
    torch.manual_seed(1)
    model = DecoderLM(cfg).double()
    ids = torch.randint(0, cfg.vocab_size, (1, 9))
    logits, inner = model(ids, return_internals=True)
    assert len(inner.residual) == cfg.n_layers + 1
    for i, b in enumerate(inner.blocks):
        torch.testing.assert_close(inner.residual[i + 1], inner.residual[i] + b.attn_out + b.mlp_out)
    torch.testing.assert_close(model.unembed(inner.residual[-1]), logits)
    grads = []
    for ckpt in (False, True):
        model.zero_grad()
        model(ids, checkpoint=ckpt).sum().backward()
        grads.append(model.embed.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-12, rtol=0)


def test_decoder_refuses_bad_shapes():
    with pytest.raises(ValueError):
        tiny(n_kv_heads=4)
    with pytest.raises(ValueError):
        tiny(mlp="relu")
    model = DecoderLM(tiny(max_seq=8))
    with pytest.raises(ValueError):
        model(torch.zeros(1, 9, dtype=torch.long))


# ---------------------------------------------------------------- sampling
def test_filters_cut_the_right_tokens():
    logits = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))
    greedy = next_token_distribution(logits, SamplingConfig())
    assert greedy.tolist() == [1, 0, 0, 0, 0]
    top2 = next_token_distribution(logits, SamplingConfig(1.0, top_k=2))
    torch.testing.assert_close(top2, torch.tensor([5 / 7, 2 / 7, 0, 0, 0]))
    nucleus = next_token_distribution(logits, SamplingConfig(1.0, top_p=0.8))   # 0.5 + 0.2 < 0.8 <= +0.15
    torch.testing.assert_close(nucleus, torch.tensor([0.5, 0.2, 0.15, 0, 0]) / 0.85)
    hot = next_token_distribution(logits, SamplingConfig(2.0))
    torch.testing.assert_close(hot, torch.softmax(logits / 2, -1))


def test_sampling_is_seeded():
    probs = torch.softmax(rand(64, seed=3).float(), -1)
    draws = [[int(sample_token(probs, torch.Generator().manual_seed(s))) for _ in range(1)] for s in (5, 5, 6)]
    assert draws[0] == draws[1]
    gen = torch.Generator().manual_seed(0)
    assert {int(sample_token(torch.tensor([0.0, 1.0, 0.0]), gen)) for _ in range(20)} == {1}


@pytest.mark.parametrize("cfg", [SamplingConfig(-0.1), SamplingConfig(9.0), SamplingConfig(1.0, top_k=0),
                                 SamplingConfig(1.0, top_k=1000), SamplingConfig(1.0, top_p=0.0),
                                 SamplingConfig(1.0, top_p=1.5), SamplingConfig(0.0, top_k=5),
                                 SamplingConfig(float("nan"))])
def test_sampling_settings_are_checked(cfg):
    with pytest.raises(ValidationError):
        check_sampling(cfg, vocab_size=100)


# ---------------------------------------------------------------- hooks the models of the atlas use
def test_rope_angles_in_float64_for_a_float32_model():
    """angles_dtype=float64: the table is the float64 table rounded once (MLA, MTP, vision)."""
    pos = torch.arange(200, 260)
    exact, _ = rope_cos_sin(pos, 16, 10000.0, torch.float64)
    cos32, _ = rope_cos_sin(pos, 16, 10000.0, torch.float32, angles_dtype=torch.float64)
    assert cos32.dtype == torch.float32 and torch.equal(cos32, exact.float())
    plain32, _ = rope_cos_sin(pos, 16, 10000.0, torch.float32)
    assert (plain32.double() - exact).abs().max() > (cos32.double() - exact).abs().max()


def test_callable_backend_gets_the_keywords():
    seen = {}

    def mine(q, k, v, *, causal, mask, scale, dropout, return_probs):
        seen.update(causal=causal, mask=mask, scale=scale, dropout=dropout, return_probs=return_probs)
        return attend(q, k, v, backend="naive", causal=causal, mask=mask, scale=scale)

    q, k, v = rand(1, 2, 5, 8), rand(1, 1, 5, 8, seed=1), rand(1, 1, 5, 8, seed=2)
    out, probs = attend(q, k, v, backend=mine, causal=True)
    assert seen == {"causal": True, "mask": None, "scale": 1 / math.sqrt(8), "dropout": 0.0, "return_probs": False}
    assert probs is None
    torch.testing.assert_close(out, reference_attention(q, k, v, True), atol=1e-12, rtol=0)


def test_kv_cache_capacity_is_a_clear_error():
    cache = KVCache(1, capacity=6)
    cache.update(0, torch.zeros(1, 2, 4, 8), torch.zeros(1, 2, 4, 8))
    assert cache.allocated_bytes() == 2 * 2 * 6 * 8 * 4             # one buffer of the capacity, no chunk
    cache.update(0, torch.zeros(1, 2, 2, 8), torch.zeros(1, 2, 2, 8))
    with pytest.raises(ResourceError, match="holds 6"):
        cache.update(0, torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 1, 8))


class _Doubling(torch.nn.Module):
    """An MLP with internals (what a MoE layer returns beside its output)."""

    def forward(self, x, return_internals=False):
        return (2 * x, {"seen": x.shape}) if return_internals else 2 * x


def test_block_mlp_module_internals_without_probabilities():
    from core.nn import DecoderBlock
    from core.nn.attention import AttentionShape

    torch.manual_seed(0)
    block = DecoderBlock(AttentionShape(16, 2, 2, 8), d_ff=0, mlp_module=_Doubling(), mlp_internals=True).double()
    x = rand(2, 5, 16)
    y, inner = block(x, return_internals=True, return_probs=False)
    assert inner.probs is None and inner.mlp == {"seen": (2, 5, 16)}
    torch.testing.assert_close(y, x + inner.attn_out + inner.mlp_out)
    y2, inner2 = block(x, return_internals=True)                     # probabilities as before
    assert inner2.probs.shape == (2, 2, 5, 5)
    torch.testing.assert_close(y2, y, atol=1e-12, rtol=0)
    plain, none = block(x)
    assert none is None
    torch.testing.assert_close(plain, y, atol=1e-12, rtol=0)


def test_block_attention_dropout_apart_from_branch_dropout():
    from core.nn import DecoderBlock
    from core.nn.attention import AttentionShape

    shape = AttentionShape(16, 2, 2, 8)
    assert DecoderBlock(shape, d_ff=8, dropout=0.3).attn.dropout == 0.3
    block = DecoderBlock(shape, d_ff=8, dropout=0.3, attn_dropout=0.0)
    assert block.attn.dropout == 0.0 and block.dropout == 0.3


def test_run_blocks_on_embeddings_equals_forward():
    """embed_tokens (positions 0 .. T-1 by default) -> run_blocks -> unembed is forward."""
    for cfg in (tiny(), tiny(positions="sinusoidal")):
        torch.manual_seed(2)
        model = DecoderLM(cfg).double().eval()
        ids = torch.randint(0, cfg.vocab_size, (2, 7))
        x = model.embed_tokens(ids).requires_grad_(True)
        logits = model.unembed(model.run_blocks(x))
        torch.testing.assert_close(logits, model(ids), atol=1e-12, rtol=0)
        (g,) = torch.autograd.grad(logits[:, -1].sum(), [x])
        assert float(g[:, 0].abs().sum()) > 0                      # the last position reads the first


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_cpu_inference_split_matmuls_equal_the_fused_ones(qkv_bias):
    """Without gradients a CPU runs q/k/v and gate/up as matmuls on weight slices (faster there);
    with gradients the one fused matmul (the reference) runs. Same numbers either way."""
    from core.nn import SelfAttention, SwiGLU
    from core.nn.attention import AttentionShape

    torch.manual_seed(0)
    mlp = SwiGLU(48, 80)
    attn = SelfAttention(AttentionShape(48, 6, 2, 8, qkv_bias=qkv_bias))
    x = torch.randn(2, 7, 48)
    rope = rope_cos_sin(torch.arange(7), 8, 10000.0, torch.float32)
    fused_mlp, (fused_attn, _) = mlp(x), attn(x, rope=rope)                   # grad enabled: fused
    with torch.no_grad():
        split_mlp, (split_attn, _) = mlp(x), attn(x, rope=rope)
    torch.testing.assert_close(split_mlp, fused_mlp.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(split_attn, fused_attn.detach(), atol=1e-6, rtol=1e-5)
