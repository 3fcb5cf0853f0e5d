"""kernels/flash_attention.py: the Triton FlashAttention-2 forward and backward.

On a CPU the kernels run in Triton's interpreter (tests/conftest.py sets
TRITON_INTERPRET=1), so those cases are tiny: N in {1, 17, 33, 64, 70} (smaller
than a block, not a multiple of it, exactly a multiple), head_dim 16..64, one or
two heads, with 16/32-wide blocks so that several blocks, the causal diagonal and
the masked edges are all exercised. fp32 is compared with a float64 reference.
GPU-marked tests (fp16/bf16, longer odd shapes, backward, the real block tables)
run on CUDA via bench/gpu_check.sh.
"""

from __future__ import annotations

import math

import pytest
import torch

from core.attention import attention_lse, naive_attention, reference_attention
from core.runtime.validation import ResourceError, ValidationError
from kernels import flash_attention as fa
from kernels.flash_attention import (
    KernelConfig,
    block_sizes,
    check_config,
    flash_attention,
    flash_attention_forward,
    with_blocks,
)

CPU = block_sizes(64, torch.float32, "cpu")
SMALL = with_blocks(CPU, block_m=32, block_n=16, bwd_block_m1=16, bwd_block_n1=32,
                    bwd_block_m2=32, bwd_block_n2=16)                    # BLOCK_M > BLOCK_N
SQUARE = with_blocks(CPU, block_m=16, block_n=16, bwd_block_m1=16, bwd_block_n1=16,
                     bwd_block_m2=16, bwd_block_n2=16)                   # every block 16
ATOL = RTOL = 2e-5                                                        # fp32 vs float64


def qkv(b, h, n, d, dtype=torch.float32, seed=0, requires_grad=False, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=gen).to(device=device, dtype=dtype).requires_grad_(requires_grad)
            for _ in range(3)]


def grads_f64(q, k, v, do, causal, scale=None):
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    naive_attention(*leaves, causal, scale).backward(do.double())
    return [t.grad for t in leaves]


# ---------------------------------------------------------------- forward, interpreter
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("d", [16, 32, 64])
@pytest.mark.parametrize("n", [1, 17, 33, 64, 70])
def test_forward_matches_float64(n, d, causal):
    q, k, v = qkv(1, 2, n, d, seed=n * d)
    out, lse = flash_attention_forward(q, k, v, causal, return_lse=True, config=SMALL)
    assert out.shape == q.shape and out.dtype == q.dtype and lse.shape == (1, 2, n)
    torch.testing.assert_close(out.double(), reference_attention(q, k, v, causal), atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(lse.double(), attention_lse(q.double(), k.double(), causal), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("config", [CPU, SQUARE], ids=["cpu-table", "square16"])
@pytest.mark.parametrize("n,d,causal", [(70, 32, True), (96, 16, False), (33, 24, True), (20, 128, False)])
def test_forward_block_configs_and_odd_head_dims(config, n, d, causal):
    """The CPU table's 64x32 blocks, all-16 blocks, and head dims 24 and 128 (padded to 32 / exact)."""
    q, k, v = qkv(2, 1, n, d, seed=7)
    out = flash_attention_forward(q, k, v, causal, config=config)
    torch.testing.assert_close(out.double(), reference_attention(q, k, v, causal), atol=ATOL, rtol=RTOL)


def test_default_config_scale_and_layout():
    """Default blocks, a custom sm_scale, and non-contiguous / expanded inputs."""
    x = torch.randn(2, 40, 3, 32)
    q = x.transpose(1, 2)                                     # (2, 3, 40, 32) with head-interleaved strides
    k = torch.randn(2, 3, 32, 40).transpose(2, 3)             # last dim not contiguous
    v = torch.randn(1, 3, 40, 32).expand(2, 3, 40, 32)        # batch stride 0
    out = flash_attention(q, k, v, causal=True, sm_scale=0.3)
    ref = reference_attention(q, k.contiguous(), v.contiguous(), True, 0.3)
    torch.testing.assert_close(out.double(), ref, atol=ATOL, rtol=RTOL)


def test_causal_first_row_is_first_value():
    q, k, v = qkv(1, 1, 33, 16)
    out = flash_attention(q, k, v, causal=True)
    torch.testing.assert_close(out[0, 0, 0], v[0, 0, 0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_under_interpreter(dtype):
    """16-bit inputs (cast to fp32 for the dots under the interpreter): error no worse than
    2x naive attention's own error in that dtype (flash-attention's test criterion)."""
    q, k, v = qkv(1, 2, 33, 32, dtype=dtype, requires_grad=True)
    ref = reference_attention(q, k, v, True)
    out = flash_attention(q, k, v, causal=True)
    assert out.dtype == dtype
    own = (naive_attention(*(t.detach() for t in (q, k, v)), True).double() - ref).abs().max()
    assert (out.double() - ref).abs().max() <= 2 * own + 1e-3
    do = torch.randn_like(out)
    out.backward(do)
    ref_grads = grads_f64(q, k, v, do, True)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    naive_attention(*leaves, True).backward(do)
    for ours, same, exact in zip((q, k, v), leaves, ref_grads, strict=True):
        assert (ours.grad.double() - exact).abs().max() <= 3 * (same.grad.double() - exact).abs().max() + 1e-3


# ---------------------------------------------------------------- backward, interpreter
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("d", [16, 32])
@pytest.mark.parametrize("n", [1, 17, 33, 64])
def test_backward_matches_float64_autograd(n, d, causal):
    q, k, v = qkv(1, 2, n, d, seed=n + d, requires_grad=True)
    out = flash_attention_forward(q, k, v, causal, config=SMALL)
    do = torch.randn_like(out)
    out.backward(do)
    for ours, exact in zip((q.grad, k.grad, v.grad), grads_f64(q, k, v, do, causal), strict=True):
        torch.testing.assert_close(ours.double(), exact, atol=5e-5, rtol=1e-4)


def test_backward_with_default_blocks_and_scale():
    q, k, v = qkv(2, 1, 45, 24, seed=3, requires_grad=True)
    out = flash_attention(q, k, v, causal=True, sm_scale=0.2)
    do = torch.randn_like(out)
    out.backward(do)
    for ours, exact in zip((q.grad, k.grad, v.grad), grads_f64(q, k, v, do, True, 0.2), strict=True):
        torch.testing.assert_close(ours.double(), exact, atol=5e-5, rtol=1e-4)


def test_lse_is_not_differentiable_but_output_is():
    q, k, v = qkv(1, 1, 17, 16, requires_grad=True)
    out, lse = flash_attention_forward(q, k, v, return_lse=True)
    assert out.requires_grad and not lse.requires_grad


# ---------------------------------------------------------------- TMA path and fallbacks, interpreter
TMA = with_blocks(SMALL, tma=True)
TMA_WS = with_blocks(SMALL, tma=True, warp_specialize=True)


@pytest.mark.parametrize("config", [TMA, TMA_WS], ids=["tma", "tma-ws"])
@pytest.mark.parametrize("n,d,causal", [(1, 16, False), (17, 32, True), (70, 24, False), (64, 64, True),
                                        (33, 80, True), (45, 128, False)])
def test_tma_forward_matches_float64(config, n, d, causal):
    """Tensor-descriptor loads: rows past N and head dims past d arrive as 0 (odd shapes)."""
    q, k, v = qkv(2, 3, n, d, seed=n + d)
    expected = "tma-ws" if config.warp_specialize and not causal else "tma"
    assert fa.forward_path(q, k, v, causal, config=config) == expected
    out, lse = flash_attention_forward(q, k, v, causal, return_lse=True, config=config)
    torch.testing.assert_close(out.double(), reference_attention(q, k, v, causal), atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(lse.double(), attention_lse(q.double(), k.double(), causal), atol=ATOL, rtol=RTOL)
    assert fa.fallbacks() == []


def test_tma_backward_matches_float64():
    q, k, v = qkv(1, 2, 33, 32, seed=5, requires_grad=True)
    out = flash_attention_forward(q, k, v, True, config=TMA)
    do = torch.randn_like(out)
    out.backward(do)
    for ours, exact in zip((q.grad, k.grad, v.grad), grads_f64(q, k, v, do, True), strict=True):
        torch.testing.assert_close(ours.double(), exact, atol=5e-5, rtol=1e-4)


def test_layouts_tma_cannot_cover_use_pointers():
    """Unmergeable (batch, heads) strides and unaligned rows fall back to pointer loads."""
    x = torch.randn(2, 40, 3, 32)
    q = x.transpose(1, 2)                                     # (2, 3, 40, 32): batch/heads do not merge
    k, v = torch.randn(2, 3, 40, 32), torch.randn(2, 3, 40, 32)
    assert fa.forward_path(q, k, v, config=TMA) == "pointer"
    torch.testing.assert_close(flash_attention_forward(q, k, v, config=TMA).double(),
                               reference_attention(q, k, v), atol=ATOL, rtol=RTOL)
    odd = [t.half() for t in qkv(1, 1, 20, 20)]               # 40-byte rows: not 16-byte aligned
    assert fa.forward_path(*odd, config=TMA) == "pointer"


def test_a_failing_path_falls_back_and_is_recorded(monkeypatch):
    """A TMA kernel that cannot compile (here: made to raise) gives the pointer path's result."""
    real = fa._launch_forward

    def broken(path, *args):
        if path != "pointer":
            raise RuntimeError("PassManager::run failed (simulated)")
        return real(path, *args)

    monkeypatch.setattr(fa, "_launch_forward", broken)
    monkeypatch.setattr(fa, "_FAILED", {})
    q, k, v = qkv(1, 2, 33, 16, seed=9)
    out = flash_attention_forward(q, k, v, False, config=TMA_WS)
    torch.testing.assert_close(out.double(), reference_attention(q, k, v), atol=ATOL, rtol=RTOL)
    assert {f["path"] for f in fa.fallbacks()} == {"tma-ws", "tma"}
    assert all("simulated" in f["reason"] for f in fa.fallbacks())
    assert fa.forward_path(q, k, v, config=TMA_WS) == "pointer"        # remembered: no retry


def test_causal_grid_runs_heaviest_query_blocks_first():
    """Reversed program ids: every query block is still computed exactly once (N = 5 blocks)."""
    q, k, v = qkv(1, 1, 80, 16, seed=2)
    for config in (SMALL, TMA):
        out = flash_attention_forward(q, k, v, True, config=config)
        torch.testing.assert_close(out.double(), reference_attention(q, k, v, True), atol=ATOL, rtol=RTOL)


def test_check_launch_without_tensors():
    fa.check_launch((16, 32, 1024, 64), torch.bfloat16, "cuda")
    fa.check_launch((1, 16, 16384, 128), torch.bfloat16, "cuda")
    for shape, dtype, where in [((1, 65536, 1, 16), torch.bfloat16, "cuda"), ((1, 1, 8, 8), torch.bfloat16, "cuda"),
                                ((1, 1, 8, 16), torch.float64, "cuda"), ((16, 32, 1024, 64), torch.float32, "cpu")]:
        with pytest.raises(ValidationError):
            fa.check_launch(shape, dtype, where)


# ---------------------------------------------------------------- block tables
@pytest.mark.parametrize("d", [16, 32, 48, 64, 80, 96, 128])
@pytest.mark.parametrize("where", [("cpu", None), ("cuda", (9, 0)), ("cuda", (8, 0))], ids=["cpu", "h100", "a100"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_block_tables_are_valid(d, where, dtype):
    device, capability = where
    cfg = block_sizes(d, dtype, device, capability)
    assert check_config(cfg) is cfg and cfg.source
    for b in cfg.blocks():
        assert b >= 16 and b & (b - 1) == 0


def test_hopper_table_is_the_compile_reports_choice():
    """bench/results/compile-sm90.json: no spills on triton 3.6 and 3.9, two blocks per SM for the
    forward; d=128 uses 64x64 tiles (two 4-warp blocks per SM), dK/dV 16x128 at 8 warps."""
    d64, d128 = (block_sizes(d, torch.bfloat16, "cuda", (9, 0)) for d in (64, 128))
    assert (d64.block_m, d64.block_n, d64.num_warps, d64.num_stages) == (128, 64, 4, 3)
    assert (d128.block_m, d128.block_n, d128.num_warps, d128.num_stages) == (64, 64, 4, 3)
    for cfg in (d64, d128):
        assert (cfg.bwd_block_m1, cfg.bwd_block_n1, cfg.bwd_num_warps) == (16, 128, 8)
        assert cfg.tma and not cfg.warp_specialize
    assert not block_sizes(64, torch.bfloat16, "cuda", (8, 0)).tma       # no TMA before Hopper
    assert fa.hopper_tables() == {64: d64, 128: d128}


@pytest.mark.parametrize("changes", [{"block_m": 24}, {"block_n": 8}, {"block_m": 512}, {"block_m": 16, "block_n": 32},
                                     {"bwd_block_n1": 16, "bwd_block_m1": 32}, {"bwd_block_m2": 16, "bwd_block_n2": 32},
                                     {"num_warps": 3}, {"bwd_num_warps": True}, {"num_stages": 0},
                                     {"bwd_num_stages": 9}, {"tma": 1}, {"warp_specialize": "yes"}])
def test_bad_block_configs_are_refused(changes):
    with pytest.raises(ValidationError):
        with_blocks(CPU, **changes)


# ---------------------------------------------------------------- bad input
def _bad_inputs():
    q, k, v = qkv(1, 2, 17, 16)
    return [
        ("shapes", (q, k[:, :, :9], v), {}),
        ("dtypes", (q, k.double(), v), {}),
        ("float64", (q.double(), k.double(), v.double()), {}),
        ("ints", (q.long(), k.long(), v.long()), {}),
        ("devices", (q, k.to("meta"), v), {}),
        ("3-D", (q[0], k[0], v[0]), {}),
        ("head_dim 8", tuple(t[..., :8] for t in (q, k, v)), {}),
        ("head_dim 256", tuple(torch.randn(1, 1, 4, 256) for _ in range(3)), {}),
        ("empty seq", tuple(t[:, :, :0] for t in (q, k, v)), {}),
        ("not a tensor", (q.tolist(), k, v), {}),
        ("batch x heads over the grid", (torch.zeros(1, 65536, 1, 16),) * 3, {}),
        ("causal str", (q, k, v), {"causal": "yes"}),
        ("sm_scale nan", (q, k, v), {"sm_scale": float("nan")}),
        ("sm_scale negative", (q, k, v), {"sm_scale": -1.0}),
    ]


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[0])
def test_bad_inputs_raise_clear_errors(case):
    _name, args, kwargs = case
    with pytest.raises(ValidationError) as err:
        flash_attention(*args, **kwargs)
    assert len(str(err.value)) > 10


def test_head_dim_out_of_range_for_block_sizes():
    with pytest.raises(ValidationError, match="head_dim"):
        block_sizes(256, torch.float16, "cuda", (9, 0))


def test_interpreter_size_cap(monkeypatch):
    monkeypatch.setattr(fa, "MAX_INTERPRETER_ELEMENTS", 1000)
    q, k, v = qkv(1, 1, 70, 16)
    if fa.INTERPRETED:
        with pytest.raises(ValidationError, match="interpreter"):
            flash_attention(q, k, v)


def test_interpreter_import_order_is_checked(monkeypatch):
    """If triton.language was decorated before TRITON_INTERPRET=1, say so instead of failing obscurely."""
    if not fa.INTERPRETED:
        pytest.skip("only meaningful under the interpreter")
    monkeypatch.setattr(fa.tl.standard, "sum", object())
    q, k, v = qkv(1, 1, 8, 16)
    with pytest.raises(ResourceError, match="before TRITON_INTERPRET"):
        flash_attention(q, k, v)


def test_concurrent_launches_from_two_threads():
    """Page sessions are threads; interpreted launches must not trample each other."""
    import threading

    results, errors = [], []

    def work(seed):
        try:
            q, k, v = qkv(1, 1, 33, 16, seed=seed)
            for _ in range(2):
                out = flash_attention_forward(q, k, v, True, config=SMALL)
                results.append(float((out.double() - reference_attention(q, k, v, True)).abs().max()))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4 and max(results) < ATOL


def test_kernel_errors_are_core_validation_errors():
    """Pages catch core.runtime.validation's classes; the kernels raise the very same ones."""
    import core.runtime.validation
    import kernels.errors

    assert core.runtime.validation.ValidationError is kernels.errors.ValidationError
    assert core.runtime.validation.ResourceError is kernels.errors.ResourceError
    with pytest.raises(core.runtime.validation.ValidationError):
        flash_attention(*qkv(1, 1, 4, 8))


def test_kernel_config_is_frozen_and_hashable():
    """Equal configs hash alike (a KernelConfig is a cache key); a different one is another key."""
    same, other = block_sizes(64, torch.float32, "cpu"), with_blocks(CPU, block_m=CPU.block_m * 2)
    assert same == CPU and hash(same) == hash(CPU) and {CPU: "cached"}.get(same) == "cached"
    assert other != CPU and {CPU: "cached"}.get(other) is None
    with pytest.raises(AttributeError):
        CPU.block_m = 8  # type: ignore[misc]
    assert isinstance(CPU, KernelConfig)


# ---------------------------------------------------------------- ahead-of-time compile for a GPU
def _compile_shipped(triton_path):
    """Compile every kernel of the shipped Hopper tables for sm_90 with one triton (no GPU)."""
    from bench import compile_report

    report = compile_report.run_triton(compile_report.shipped_jobs(), triton_path, timeout_s=1200)
    err = report.get("error", "")
    if not report["rows"] and "ptxas" in err.lower() and "not found" in err.lower():
        pytest.skip("this triton install has no CUDA toolchain (ptxas)")
    assert report["rows"], err
    return report


def _assert_hopper_ready(report):
    """No spills, shared memory within a block's 227 KB, wgmma everywhere, TMA on the TMA path."""
    from bench.compile_report import spilled

    kernels = {r["kernel"] for r in report["rows"]}
    assert {"fwd_tma", "fwd", "dkdv", "dq"} <= kernels
    for row in report["rows"]:
        assert row["status"] == "ok", row
        assert not spilled(row), row
        assert 0 < row["shared"] <= 227 * 1024 and row["wgmma"], row
        assert row["blocks_per_sm"] >= 1, row
        if row["kernel"].startswith("fwd_tma"):
            assert row["tma"], row


@pytest.mark.slow
def test_shipped_tables_compile_for_hopper_without_spills():
    """Forward (TMA and pointer fallback), dK/dV and dQ of the shipped Hopper table, causal or
    not, even or ragged N, compiled for sm_90 by the installed triton and its ptxas."""
    _assert_hopper_ready(_compile_shipped(None))


@pytest.mark.slow
def test_shipped_tables_compile_on_triton_36_without_spills():
    """The same on triton 3.6, the GPU machine's (``make triton36`` installs it aside)."""
    from bench.compile_report import TRITON36_DIR

    if not (TRITON36_DIR / "triton").is_dir():
        pytest.skip(f"triton 3.6 is not installed in {TRITON36_DIR} (run: make triton36)")
    report = _compile_shipped(TRITON36_DIR)
    assert report["triton"].startswith("3.6"), report["triton"]
    _assert_hopper_ready(report)


# ---------------------------------------------------------------- CUDA (bench/gpu_check.sh)
GPU_CASES = [(2, 3, 1, 64, False), (1, 2, 127, 128, True), (1, 3, 1000, 80, False), (1, 2, 2048, 64, True)]


def _tolerance_vs_sdpa(q, k, v, causal, ref):
    """2x SDPA's own error in the same dtype, plus a small floor (flash-attention's criterion)."""
    import torch.nn.functional as F

    sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return 2 * float((sdpa.double() - ref).abs().max()) + 1e-3


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,case", [(torch.bfloat16, c) for c in GPU_CASES] + [(torch.float16, c) for c in GPU_CASES[1:3]],
                         ids=lambda x: "x".join(map(str, x)) if isinstance(x, tuple) else str(x).removeprefix("torch."))
def test_gpu_forward_16bit(dtype, case):
    b, h, n, d, causal = case
    q, k, v = qkv(b, h, n, d, dtype=dtype, device="cuda", seed=n)
    out, lse = flash_attention_forward(q, k, v, causal, return_lse=True)
    ref = reference_attention(q, k, v, causal)
    assert float((out.double() - ref).abs().max()) <= _tolerance_vs_sdpa(q, k, v, causal, ref)
    lse_ref = attention_lse(q.double(), k.double(), causal)
    torch.testing.assert_close(lse.double(), lse_ref, atol=2e-2, rtol=1e-3)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,case", [(torch.bfloat16, (1, 2, 127, 64, True)), (torch.bfloat16, (1, 2, 1000, 128, False)),
                                        (torch.float16, (2, 2, 256, 64, False))],
                         ids=["bf16-127-64-causal", "bf16-1000-128", "fp16-256-64"])
def test_gpu_backward_16bit(dtype, case):
    import torch.nn.functional as F

    b, h, n, d, causal = case
    q, k, v = qkv(b, h, n, d, dtype=dtype, device="cuda", seed=d, requires_grad=True)
    out = flash_attention(q, k, v, causal)
    do = torch.randn_like(out)
    out.backward(do)
    exact = grads_f64(q, k, v, do, causal)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    F.scaled_dot_product_attention(*leaves, is_causal=causal).backward(do)
    for ours, sdpa, ref in zip((q, k, v), leaves, exact, strict=True):
        ours_err = float((ours.grad.double() - ref).abs().max())
        assert math.isfinite(ours_err)
        assert ours_err <= 3 * float((sdpa.grad.double() - ref).abs().max()) + 2e-3


@pytest.mark.gpu
def test_gpu_fp32_is_exact_to_float64():
    """fp32 uses 3xTF32 dots on the GPU (not plain TF32): close to float64, forward and backward."""
    q, k, v = qkv(1, 2, 300, 64, device="cuda", requires_grad=True)
    out = flash_attention(q, k, v, True)
    torch.testing.assert_close(out.double(), reference_attention(q, k, v, True), atol=1e-5, rtol=1e-5)
    do = torch.randn_like(out)
    out.backward(do)
    for ours, exact in zip((q.grad, k.grad, v.grad), grads_f64(q, k, v, do, True), strict=True):
        torch.testing.assert_close(ours.double(), exact, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("d", [64, 128])
def test_gpu_table_configs_long_sequence(d):
    """The block table the benchmark uses, at N = 4096 causal, forward and backward vs SDPA."""
    import torch.nn.functional as F

    q, k, v = qkv(1, 4, 4096, d, dtype=torch.bfloat16, device="cuda", requires_grad=True)
    out = flash_attention(q, k, v, True)
    sdpa = F.scaled_dot_product_attention(*(t.detach() for t in (q, k, v)), is_causal=True)
    torch.testing.assert_close(out.float(), sdpa.float(), atol=2e-2, rtol=2e-2)
    out.backward(torch.ones_like(out))
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_gpu_tma_warp_specialized_and_pointer_paths_agree(causal):
    """On Hopper the default forward loads through TMA; the pointer path and the warp-specialized
    request (or its recorded fallback) give the same output, all close to float64."""
    q, k, v = qkv(2, 4, 1000, 64, dtype=torch.bfloat16, device="cuda", seed=4)
    cfg = block_sizes(64, torch.bfloat16, "cuda")
    hopper = torch.cuda.get_device_capability()[0] >= 9
    assert fa.forward_path(q, k, v, causal) == ("tma" if hopper else "pointer")
    ref = reference_attention(q, k, v, causal)
    tol = _tolerance_vs_sdpa(q, k, v, causal, ref)
    for config in (cfg, with_blocks(cfg, tma=False), with_blocks(cfg, tma=hopper, warp_specialize=hopper)):
        out = flash_attention_forward(q, k, v, causal, config=config)
        assert float((out.double() - ref).abs().max()) <= tol, config
    assert all(f["path"] == "tma-ws" for f in fa.fallbacks()), fa.fallbacks()   # only WS may fall back
