"""core.models.vision_tokens: token counts of known sizes, image checks, packing and the 2D-RoPE encoder."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from core.models import vision_tokens as vt
from core.runtime.validation import ValidationError


@pytest.mark.parametrize("h, w, canvas, grid, tokens", [
    # Kimi-VL rule: pad to multiples of 28, patches (H'/14)(W'/14), tokens = patches / 4.
    (427, 640, (448, 644), (32, 46), 368),        # sklearn china.jpg / flower.jpg
    (14, 14, (28, 28), (2, 2), 1),
    (1, 1, (28, 28), (2, 2), 1),
    (28, 56, (28, 56), (2, 4), 2),
    (336, 336, (336, 336), (24, 24), 144),
    (896, 896, (896, 896), (64, 64), 1024),       # 4096 patches: exactly at in_token_limit, no downscale
    # 1000x1000: 71*71 = 5041 > 4096 -> scale sqrt(4096/5041), int(1000*0.9014) = 901 -> pad 924
    (1000, 1000, (924, 924), (66, 66), 1089),
    # 1080x1920: 77*137 = 10549 -> scale 0.6231 -> 672 x 1196 -> pad 672 x 1204
    (1080, 1920, (672, 1204), (48, 86), 1032),
])
def test_kimi_token_counts(h, w, canvas, grid, tokens):
    """Kimi-VL image_processing_kimi_vl.py rescale() with preprocessor_config.json
    (patch_size 14, merge_kernel_size [2, 2], in_token_limit 4096, pad_input true)."""
    plan = vt.kimi_plan(h, w)
    assert plan.canvas == canvas and plan.grid == grid
    assert plan.patches == grid[0] * grid[1] and plan.tokens == tokens
    assert plan.patches <= 4 * 4096 and plan.canvas[0] % 28 == 0 and plan.canvas[1] % 28 == 0


def test_fixed_336_is_always_576():
    """LLaVA-1.5 (Liu et al. 2023): CLIP ViT-L/14 at 336 px gives (336/14)^2 = 576 visual tokens."""
    for h, w in ((427, 640), (20, 20), (4000, 300)):
        plan = vt.fixed_plan(h, w)
        assert plan.tokens == 576 and plan.grid == (24, 24)
    assert vt.fixed_plan(427, 640).aspect_change == pytest.approx((336 / 336) / (640 / 427))


@pytest.mark.parametrize("h, w", [(427, 640), (14, 14), (1080, 1920), (4000, 3000), (50, 9000),
                                  (10000, 10000), (57, 57), (100, 30)])
def test_qwen2vl_matches_transformers(h, w):
    """Our smart_resize == transformers' Qwen2-VL smart_resize (factor 28) for the same pixel bounds."""
    ref_mod = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    ref = ref_mod.smart_resize(h, w, factor=28, min_pixels=vt.QWEN_MIN_PIXELS,
                               max_pixels=vt.QWEN_MAX_PIXELS)
    plan = vt.qwen2vl_plan(h, w)
    assert plan.resized == tuple(ref)
    assert plan.tokens == (ref[0] // 28) * (ref[1] // 28)


def test_qwen2vl_china_golden():
    """427x640 -> round to multiples of 28 -> 420x644 -> 15 x 23 = 345 tokens."""
    assert vt.qwen2vl_plan(427, 640).tokens == 345


def test_elongated_and_bad_sizes_refused():
    with pytest.raises(ValidationError, match="elongated"):
        vt.kimi_plan(10, 100_000)
    with pytest.raises(ValidationError, match="Aspect"):
        vt.qwen2vl_plan(10, 5000)
    with pytest.raises(ValidationError):
        vt.kimi_plan(0, 10)
    assert [p.scheme for p in vt.all_plans(10, 5000)] == ["kimi-vl", "fixed-336"]


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims the given size (no pixel data needed for Pillow's lazy open)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + struct.pack(">I", 0) + b"IEND"
            + struct.pack(">I", zlib.crc32(b"IEND")))


def test_load_image_ok_and_rgba_over_white():
    rgba = Image.new("RGBA", (30, 20), (255, 0, 0, 0))
    loaded = vt.load_image(_png(rgba), "a.png")
    assert loaded.size == (20, 30) and loaded.format == "PNG" and not loaded.downscaled
    assert tuple(loaded.pixels[0, 0]) == (255, 255, 255)        # transparent -> white


@pytest.mark.parametrize("data, match", [
    (b"", "empty"),
    (b"hello, I am text", "not an image"),
    (b"<script>alert(1)</script>", "not an image"),
    (_png_header(0, 10), "not an image|zero|could not be decoded"),
    (_png_header(20_000, 20_000), "megapixels"),
    (_png_header(9_000, 9_000), "megapixels"),
])
def test_load_image_refuses(data, match):
    with pytest.raises(ValidationError, match=match):
        vt.load_image(data, "bad")


def test_load_image_caps(monkeypatch):
    monkeypatch.setattr(vt, "MAX_WORK_SIDE", 64)
    loaded = vt.load_image(_png(Image.new("RGB", (200, 100))), "big.png")
    assert loaded.downscaled and loaded.size == (32, 64) and loaded.original_size == (100, 200)
    monkeypatch.setattr(vt, "MAX_UPLOAD_BYTES", 10)
    with pytest.raises(ValidationError, match="MB"):
        vt.load_image(_png(Image.new("RGB", (20, 20))), "x.png")


@pytest.mark.parametrize("name", vt.SAMPLES)
def test_samples(name):
    img = vt.sample_image(name)
    assert img.pixels.dtype == np.uint8 and img.pixels.ndim == 3 and img.pixels.shape[2] == 3
    if name.startswith(("china.jpg", "flower")):
        assert img.size == (427, 640)


def test_patchify_order_and_overlay():
    img = vt.from_array("t", np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8))
    plan = vt.kimi_plan(*img.size)
    canvas = vt.make_canvas(img, plan)
    assert canvas.shape == (56, 56, 3) and canvas[30:].max() == 0      # padded with black
    patches, grid = vt.patchify(canvas)
    assert grid == (4, 4) and patches.shape == (16, 3 * 14 * 14)
    block = torch.from_numpy(canvas[14:28, 28:42]).float().div(255).sub(0.5).div(0.5)  # row 1, col 2
    torch.testing.assert_close(patches[1 * 4 + 2], block.permute(2, 0, 1).reshape(-1))
    over = vt.grid_overlay(canvas, plan)
    assert over.shape == canvas.shape and over[40, 5].tolist() != canvas[40, 5].tolist()


def test_rope_2d_is_relative():
    """Scores depend on (row, col) offsets only (RoPE applied per axis, RoFormer section 3.4)."""
    q, k = torch.randn(1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 16, dtype=torch.float64)
    def score(pq, pk):
        rq = vt.rope_2d(q, torch.tensor([pq]), 100.0)
        rk = vt.rope_2d(k, torch.tensor([pk]), 100.0)
        return float((rq * rk).sum())
    assert score((2, 3), (5, 1)) == pytest.approx(score((12, 40), (15, 38)), abs=1e-12)
    assert score((2, 3), (5, 1)) != pytest.approx(score((2, 3), (1, 5)), abs=1e-6)


@pytest.mark.parametrize("grids", [[(2, 2)], [(4, 6), (2, 2), (6, 4)], [(8, 2), (2, 8)]])
def test_packed_equals_separate_and_dense(grids):
    enc = vt.VisionEncoder(vt.EncoderConfig(dim=32, heads=2, out_dim=24)).double().eval()
    n = sum(a * b for a, b in grids)
    x = torch.randn(n, 3 * 14 * 14, dtype=torch.float64)
    with torch.no_grad():
        packed = enc(x, grids)
        dense = enc(x, grids, dense=True)
        alone, start = [], 0
        for g in grids:
            alone.append(enc(x[start:start + g[0] * g[1]], [g]))
            start += g[0] * g[1]
    assert packed.shape == (n // 4, 24)
    torch.testing.assert_close(dense, packed, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.cat(alone), packed, atol=1e-12, rtol=0)


def test_mask_preview_exact():
    packing = vt.pack([3, 5])
    full = vt.block_diagonal_mask(packing).double().numpy()
    np.testing.assert_allclose(vt.mask_preview(packing, cells=8), full)
    coarse = vt.mask_preview(packing, cells=4)          # 2x2 tokens per cell
    np.testing.assert_allclose(coarse, full.reshape(4, 2, 4, 2).mean(axis=(1, 3)))
    assert packing.cu_seqlens == (0, 3, 8) and packing.padded_total == 10
    with pytest.raises(ValidationError):
        vt.pack([vt.MAX_PACK_PATCHES, 1])


def test_encode_images_and_attention():
    images = [vt.sample_image("small icon (generated)"), vt.sample_image("china, 1:4 strip (crop)")]
    result = vt.encode_images(images, vt.EncoderConfig(dim=32, heads=2, out_dim=16))
    assert result.packing.lengths == (24, 240)
    assert result.token_shape == ((24 + 240) // 4, 16)
    assert result.packed_vs_separate < 1e-4 and result.packed_vs_dense < 1e-4
    assert result.images[1].embedding_rgb.shape == (30, 8, 3)
    maps = vt.attention_maps(images[1], (5, 3), vt.EncoderConfig(dim=32, heads=2))
    for m in maps.values():
        assert m.shape == (30, 8) and m.sum() == pytest.approx(1.0, abs=1e-5)
    prof = vt.attention_by_distance(maps["with 2D RoPE"], (5, 3))
    assert prof[0]["distance"] == 0 and sum(p["keys"] for p in prof) == 240
    with pytest.raises(ValidationError):
        vt.attention_maps(images[1], (99, 0))


def test_image_sources_overlays_and_encode_sources():
    sample = vt.image_from_source(("sample", "small icon (generated)"))
    np.testing.assert_array_equal(sample.pixels, vt.sample_image("small icon (generated)").pixels)
    upload = vt.image_from_source(("upload", "a.png", _png(Image.new("RGB", (30, 20), (9, 9, 9)))))
    assert upload.name == "a.png" and upload.size == (20, 30)
    for bad in (("sample",), ("file", "x"), ["sample", "small icon (generated)"], ("upload", "x", b"")):
        with pytest.raises(ValidationError):
            vt.image_from_source(bad)
    plan = vt.kimi_plan(*upload.size)
    np.testing.assert_array_equal(vt.plan_overlay(upload, plan),
                                  vt.grid_overlay(vt.make_canvas(upload, plan), plan))
    cfg = vt.EncoderConfig(dim=32, heads=2, out_dim=16)
    sources = (("sample", "small icon (generated)"), ("sample", "china, 1:4 strip (crop)"))
    via_sources = vt.encode_sources(sources, cfg)
    direct = vt.encode_images([vt.sample_image(name) for _, name in sources], cfg)
    assert via_sources.packing == direct.packing and via_sources.token_shape == direct.token_shape
    np.testing.assert_array_equal(via_sources.images[1].attended_rgb, direct.images[1].attended_rgb)


def test_tokens_vs_side():
    rows = vt.tokens_vs_side(16 / 9, [336, 1920])
    fixed = [r["tokens"] for r in rows if r["scheme"] == "fixed-336"]
    assert fixed == [576, 576]
    kimi = [r for r in rows if r["scheme"] == "kimi-vl"]
    assert kimi[1]["tokens"] == vt.kimi_plan(1080, 1920).tokens
    with pytest.raises(ValidationError):
        vt.tokens_vs_side(1000.0, [100])


@pytest.mark.gpu
def test_cuda_encoder_matches_cpu():
    images = [vt.sample_image("small icon (generated)"), vt.sample_image("china, 1:4 strip (crop)")]
    cfg = vt.EncoderConfig(dim=32, heads=2, out_dim=16)
    plans, patches, grids = vt.prepare(images)
    enc = vt.VisionEncoder(cfg).eval()
    with torch.no_grad():
        cpu = enc(patches, grids)
        gpu = enc.to("cuda")(patches.to("cuda"), grids).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-3)   # TF32 matmuls on CUDA
    result = vt.encode_images(images, cfg, device="cuda")
    assert result.packed_vs_separate < 1e-3 and result.packed_vs_dense < 1e-3
