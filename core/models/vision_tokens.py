"""Native-resolution vision tokens: MoonViT-style patching, 2x2 merging, 2D RoPE and packing.

Kimi-VL's MoonViT (Kimi-VL Technical Report, arXiv:2504.07491, section 2.1)
reads an image at its native resolution: the image is cut into 14x14-pixel
patches, every patch is embedded, 2D rotary position embeddings (RoPE over the
row and the column index) tell attention where patches are, images of different
sizes are packed into one sequence (NaViT, Dehghani et al. 2023, section 2.2)
with attention kept inside each image, and a 2x2 "pixel shuffle" merges four
neighbouring patches into one token for the language model (the MLP projector).

Token counts (golden-tested):
- Kimi-VL (image_processing_kimi_vl.py, preprocessor_config.json: patch_size
  14, merge_kernel_size [2, 2], in_token_limit 4096, pad_input true): if
  (W//14)(H//14) > 4096, scale both sides by sqrt(4096 / ((W//14)(H//14)))
  (int()); pad right/bottom to multiples of 28; patches = (H'/14)(W'/14),
  tokens = patches / 4; a side of 512+ patches is refused ("Exceed pos emb").
- Qwen2-VL (transformers smart_resize; factor 28, min_pixels 3136, max_pixels
  12,845,056 in Qwen2-VL-7B-Instruct's preprocessor_config.json): sides rounded
  to multiples of 28, then scaled into [min, max] pixels; tokens = (H/28)(W/28).
- Fixed-resolution CLIP ViT-L/14-336 (LLaVA-1.5): every image is resized to
  336x336: (336/14)^2 = 576 tokens, whatever its size or shape.

The encoder here is a small *untrained* stand-in with the same data path
(linear patch embedding, one attention layer with 2D RoPE, 2x2 merge + MLP);
its weights are seeded, not learned, so its features show what the pixels and
the positions contribute, not what a trained MoonViT has learned.
Does not handle: video (temporal patches), MoonViT's interpolated absolute
position embedding, trained weights, image-text interleaving.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError
from torch import nn

from core.nn.rope import apply_rope, rope_cos_sin
from core.runtime.device import oom_guard
from core.runtime.scheduler import heavy_job
from core.runtime.text import N_
from core.runtime.validation import ValidationError, check_choice, check_int

PATCH = 14                       # MoonViT / CLIP ViT-L/14 patch side (pixels)
MERGE = 2                        # 2x2 patches -> one LLM token
IN_TOKEN_LIMIT = 4096            # Kimi-VL: patches per image before a downscale
MAX_SIDE_PATCHES = 512           # Kimi-VL: "Exceed pos emb" at 512 patches on a side
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 14 * 14 * 4 * 16384
FIXED_SIDE = 336                 # CLIP ViT-L/14-336 input side
MAX_UPLOAD_BYTES = 20_000_000    # refuse larger files outright
MAX_IMAGE_PIXELS = 64_000_000    # refuse larger images (decompression bombs; below Pillow's warning)
MAX_WORK_SIDE = 4096             # longer sides are downscaled first (with a notice)
MAX_PACK_IMAGES = 8
MAX_PACK_PATCHES = 16_384        # patches in one packed sequence
DENSE_CHECK_MAX = 4096           # the dense block-diagonal reference runs up to this many patches
MAX_ASPECT = 200                 # Qwen2-VL's limit (and ours for generated plans)


# ---------------------------------------------------------------- token plans
@dataclass(frozen=True)
class PatchPlan:
    scheme: str                  # "kimi-vl" | "qwen2-vl" | "fixed-336"
    original: tuple[int, int]    # (H, W) of the input image
    resized: tuple[int, int]     # (H, W) after the scheme's resize (content area)
    canvas: tuple[int, int]      # (H, W) fed to the patcher (resized + padding)
    grid: tuple[int, int]        # patches per column and per row (gh, gw)
    patches: int                 # ViT sequence length (before merging)
    tokens: int                  # visual tokens the language model reads

    @property
    def padding_fraction(self) -> float:
        """Share of the canvas that is padding, not image."""
        return 1 - (self.resized[0] * self.resized[1]) / (self.canvas[0] * self.canvas[1])

    @property
    def aspect_change(self) -> float:
        """Content aspect ratio after / before (1 = shape kept)."""
        (h0, w0), (h1, w1) = self.original, self.resized
        return (w1 / h1) / (w0 / h0)


def _check_size(h: int, w: int) -> tuple[int, int]:
    h = check_int("Image height", h, 1, 1_000_000)
    w = check_int("Image width", w, 1, 1_000_000)
    return h, w


def kimi_plan(h: int, w: int) -> PatchPlan:
    """Kimi-VL / MoonViT: native resolution, downscaled above 4096 patches, padded to 28."""
    h, w = _check_size(h, w)
    n = (w // PATCH) * (h // PATCH)
    rh, rw = h, w
    if n > IN_TOKEN_LIMIT:
        scale = math.sqrt(IN_TOKEN_LIMIT / n)
        rh, rw = int(h * scale), int(w * scale)
    unit = PATCH * MERGE
    ch, cw = -(-rh // unit) * unit, -(-rw // unit) * unit
    gh, gw = ch // PATCH, cw // PATCH
    if gh >= MAX_SIDE_PATCHES or gw >= MAX_SIDE_PATCHES:
        raise ValidationError(
            f"This image ({w}x{h} px) is too elongated: it would need {max(gh, gw)} patches on one "
            f"side, and MoonViT's position table stops at {MAX_SIDE_PATCHES}. Crop it first.")
    return PatchPlan("kimi-vl", (h, w), (rh, rw), (ch, cw), (gh, gw), gh * gw, gh * gw // MERGE**2)


def qwen2vl_plan(h: int, w: int, *, min_pixels: int = QWEN_MIN_PIXELS,
                 max_pixels: int = QWEN_MAX_PIXELS) -> PatchPlan:
    """Qwen2-VL smart_resize: sides rounded to multiples of 28, pixels kept in [min, max]."""
    h, w = _check_size(h, w)
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise ValidationError(f"Aspect ratio {max(h, w) / min(h, w):.0f}:1 is above Qwen2-VL's limit "
                              f"of {MAX_ASPECT}:1.")
    f = PATCH * MERGE
    rh, rw = round(h / f) * f, round(w / f) * f
    if rh * rw > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        rh, rw = max(f, math.floor(h / beta / f) * f), max(f, math.floor(w / beta / f) * f)
    elif rh * rw < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        rh, rw = math.ceil(h * beta / f) * f, math.ceil(w * beta / f) * f
    gh, gw = rh // PATCH, rw // PATCH
    return PatchPlan("qwen2-vl", (h, w), (rh, rw), (rh, rw), (gh, gw), gh * gw, gh * gw // MERGE**2)


def fixed_plan(h: int, w: int, side: int = FIXED_SIDE) -> PatchPlan:
    """A fixed-resolution encoder (CLIP ViT-L/14-336): any image squashed to side x side."""
    h, w = _check_size(h, w)
    g = side // PATCH
    return PatchPlan(f"fixed-{side}", (h, w), (side, side), (side, side), (g, g), g * g, g * g)


def all_plans(h: int, w: int) -> list[PatchPlan]:
    """The three schemes side by side (Qwen2-VL's is left out when the aspect ratio is refused)."""
    plans = [kimi_plan(h, w)]
    if max(h, w) / min(h, w) <= MAX_ASPECT:
        plans.append(qwen2vl_plan(h, w))
    return [*plans, fixed_plan(h, w)]


# ---------------------------------------------------------------- images
@dataclass(frozen=True)
class LoadedImage:
    name: str                    # file or sample name (user text: escape before rendering as HTML)
    pixels: np.ndarray           # (H, W, 3) uint8 RGB
    original_size: tuple[int, int]   # (H, W) as stored in the file
    downscaled: bool             # True when the longest side was capped at MAX_WORK_SIDE
    format: str                  # "JPEG", "PNG", ... or "generated"

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


def load_image(data: bytes, name: str = "upload") -> LoadedImage:
    """Decode an uploaded image (Pillow); refuse non-images, empty, zero-sized or huge ones."""
    if not isinstance(data, bytes | bytearray):
        raise ValidationError("The upload must be a file.")
    if not data:
        raise ValidationError(f"{name} is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is "
                              f"{MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    try:
        img = Image.open(io.BytesIO(bytes(data)))
        w, h = img.size
        if w < 1 or h < 1:
            raise ValidationError(f"{name} has zero width or height ({w}x{h}).")
        if w * h > MAX_IMAGE_PIXELS:
            raise ValidationError(f"{name} is {w}x{h} = {w * h / 1e6:.0f} megapixels; the limit is "
                                  f"{MAX_IMAGE_PIXELS / 1e6:.0f}.")
        fmt = img.format or "unknown"
        img.draft("RGB", (MAX_WORK_SIDE, MAX_WORK_SIDE))      # JPEG: decode at a smaller scale
        img = ImageOps.exif_transpose(img)
        rgb = _to_rgb(img)
    except ValidationError:
        raise
    except Image.DecompressionBombError:
        raise ValidationError(f"{name} is too large to decode safely (over "
                              f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels).") from None
    except UnidentifiedImageError as exc:
        raise ValidationError(f"{name} is not an image Pillow can read (PNG, JPEG, GIF, BMP, WebP, "
                              f"TIFF ...): {type(exc).__name__}.") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValidationError(f"{name} could not be decoded ({type(exc).__name__}); the file may be "
                              "truncated or corrupt.") from None
    return _capped(name, rgb, (h, w), fmt)


def _to_rgb(img):
    """RGB, transparent areas over white (first frame of animations)."""
    img.seek(0) if getattr(img, "is_animated", False) else None
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def _capped(name: str, img, original: tuple[int, int], fmt: str) -> LoadedImage:
    w, h = img.size
    downscaled = max(w, h) > MAX_WORK_SIDE or (h, w) != original
    if max(w, h) > MAX_WORK_SIDE:
        s = MAX_WORK_SIDE / max(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BICUBIC)
    return LoadedImage(name, np.asarray(img, dtype=np.uint8).copy(), original, downscaled, fmt)


def from_array(name: str, pixels: np.ndarray, fmt: str = "generated") -> LoadedImage:
    arr = np.ascontiguousarray(pixels[..., :3], dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValidationError(f"{name} has zero width or height.")
    return LoadedImage(name, arr, (arr.shape[0], arr.shape[1]), False, fmt)


SAMPLES = (N_("china.jpg (scikit-learn)"), N_("flower.jpg (scikit-learn)"), N_("tall text page (generated)"),
           N_("wide banner (generated)"), N_("small icon (generated)"), N_("china, 1:4 strip (crop)"))


def sample_image(name: str) -> LoadedImage:
    """Real photos shipped with scikit-learn (427x640) and a few generated shapes."""
    check_choice("Sample", name, SAMPLES)
    if name.startswith(("china", "flower")):
        # start-up cost: scikit-learn takes ~1.9 s to import
        from sklearn.datasets import load_sample_images

        photos = dict(zip(("china", "flower"), load_sample_images().images, strict=True))
        arr = photos["flower" if name.startswith("flower") else "china"]
        if "strip" in name:
            arr = arr[20:420, 300:400]                     # 400 x 100 px: a 1:4 strip
        return from_array(name, arr, "JPEG")
    return from_array(name, _generated(name))


def image_from_source(source: tuple) -> LoadedImage:
    """``("sample", name)`` -> :func:`sample_image`; ``("upload", name, data)`` -> :func:`load_image`."""
    if isinstance(source, tuple) and len(source) == 2 and source[0] == "sample":
        return sample_image(source[1])
    if isinstance(source, tuple) and len(source) == 3 and source[0] == "upload":
        return load_image(source[2], str(source[1]))
    raise ValidationError('An image is a sample ("sample", name) or an upload ("upload", name, bytes).')


def _generated(name: str) -> np.ndarray:
    if name.startswith("tall"):
        img = Image.new("RGB", (420, 1260), (250, 248, 240))
        draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=18)
        draw.text((30, 30), "RECEIPT  No. 2025-0142", fill=(20, 20, 20), font=ImageFont.load_default(size=24))
        for i in range(40):
            draw.text((30, 80 + 28 * i), f"item {i + 1:02d}  tokens x{(i * 37) % 90 + 10:>3}   "
                      f"{(i * 53) % 977 / 10:7.2f}", fill=(40, 40, 60), font=font)
        return np.asarray(img)
    if name.startswith("wide"):
        img = Image.new("RGB", (1568, 280), (32, 48, 96))
        draw = ImageDraw.Draw(img)
        for x in range(0, 1568, 56):
            draw.rectangle((x, 230, x + 28, 280), fill=(247, 103, 7))
        draw.text((40, 50), "Native resolution keeps the shape", fill=(255, 255, 255),
                  font=ImageFont.load_default(size=72))
        return np.asarray(img)
    img = Image.new("RGB", (64, 48), (255, 255, 255))
    ImageDraw.Draw(img).ellipse((8, 4, 56, 44), fill=(76, 110, 245), outline=(20, 20, 20))
    return np.asarray(img)


# ---------------------------------------------------------------- canvas, patches, overlay
def make_canvas(image: LoadedImage, plan: PatchPlan) -> np.ndarray:
    """(H', W', 3) uint8: the image resized as ``plan`` says, padded with black to the canvas."""
    img = Image.fromarray(image.pixels)
    rh, rw = plan.resized
    if (rh, rw) != image.size:
        img = img.resize((max(rw, 1), max(rh, 1)), Image.Resampling.BICUBIC)
    canvas = np.zeros((*plan.canvas, 3), dtype=np.uint8)
    canvas[:rh, :rw] = np.asarray(img)[: plan.canvas[0], : plan.canvas[1]]
    return canvas


def patchify(canvas: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """Row-major patches (gh*gw, 3*14*14), pixels scaled to [-1, 1] (Kimi-VL mean = std = 0.5)."""
    H, W, _ = canvas.shape
    if H % PATCH or W % PATCH:
        raise ValidationError(f"Canvas {W}x{H} is not a multiple of the {PATCH}-pixel patch.")
    gh, gw = H // PATCH, W // PATCH
    x = torch.from_numpy(canvas).float().div(255).sub(0.5).div(0.5)          # (H, W, 3)
    x = x.view(gh, PATCH, gw, PATCH, 3).permute(0, 2, 4, 1, 3)                # (gh, gw, 3, p, p)
    return x.reshape(gh * gw, 3 * PATCH * PATCH), (gh, gw)


def grid_overlay(canvas: np.ndarray, plan: PatchPlan) -> np.ndarray:
    """The canvas with the 14-px patch grid (thin), the 28-px merge grid (orange, when the scheme
    merges) and padding tinted pink."""
    out = canvas.astype(np.float32)
    rh, rw = plan.resized
    pad = np.ones(out.shape[:2], dtype=bool)
    pad[:rh, :rw] = False
    out[pad] = 0.5 * out[pad] + 0.5 * np.array([230, 73, 128])               # padding: pink tint
    grids = [(PATCH, (255, 255, 255), 0.45)]
    if plan.tokens < plan.patches:
        grids.append((PATCH * MERGE, (247, 103, 7), 0.9))
    for step, color, alpha in grids:
        for axis in (0, 1):
            idx = np.arange(0, out.shape[axis], step)
            sl = (idx, slice(None)) if axis == 0 else (slice(None), idx)
            out[sl] = (1 - alpha) * out[sl] + alpha * np.array(color)
    return out.clip(0, 255).astype(np.uint8)


def plan_overlay(image: LoadedImage, plan: PatchPlan) -> np.ndarray:
    """(H', W', 3) uint8: ``image`` as ``plan`` feeds it to the encoder, with its grids drawn."""
    return grid_overlay(make_canvas(image, plan), plan)


# ---------------------------------------------------------------- packing
@dataclass(frozen=True)
class Packing:
    lengths: tuple[int, ...]     # patches per image, in sequence order

    @property
    def cu_seqlens(self) -> tuple[int, ...]:
        """Start offsets and the total (flash-attention varlen convention)."""
        return tuple(int(x) for x in np.concatenate([[0], np.cumsum(self.lengths)]))

    @property
    def total(self) -> int:
        return int(sum(self.lengths))

    @property
    def padded_total(self) -> int:
        """Tokens if the images were a padded batch instead (every row as long as the longest)."""
        return len(self.lengths) * max(self.lengths)


def pack(lengths) -> Packing:
    lengths = tuple(check_int("Patches", n, 1, MAX_PACK_PATCHES) for n in lengths)
    if not 1 <= len(lengths) <= MAX_PACK_IMAGES:
        raise ValidationError(f"Pack between 1 and {MAX_PACK_IMAGES} images.")
    if sum(lengths) > MAX_PACK_PATCHES:
        raise ValidationError(f"The packed sequence would hold {sum(lengths):,} patches; the limit is "
                              f"{MAX_PACK_PATCHES:,}. Use fewer or smaller images.")
    return Packing(lengths)


def block_diagonal_mask(packing: Packing, device="cpu") -> torch.Tensor:
    """(N, N) bool: patch i may attend to patch j iff both belong to the same image."""
    seg = torch.repeat_interleave(torch.arange(len(packing.lengths), device=device),
                                  torch.tensor(packing.lengths, device=device))   # (N,)
    return seg[:, None] == seg[None, :]


def mask_preview(packing: Packing, cells: int = 240) -> np.ndarray:
    """(c, c) share of allowed (query, key) pairs per cell of the mask: exact, without building N x N."""
    n = packing.total
    c = min(check_int("Cells", cells, 1, 1024), n)
    edges = np.linspace(0, n, c + 1)
    cu = np.array(packing.cu_seqlens, dtype=np.float64)
    lo = np.maximum(edges[:-1, None], cu[None, :-1])
    hi = np.minimum(edges[1:, None], cu[None, 1:])
    counts = np.clip(hi - lo, 0, None)                                         # (c, images)
    width = np.diff(edges)
    return (counts @ counts.T) / np.outer(width, width)


# ---------------------------------------------------------------- encoder: patch embedding, 2D RoPE, merge
@dataclass(frozen=True)
class EncoderConfig:
    dim: int = 128               # patch-embedding width
    heads: int = 2               # attention heads (head size dim / heads, a multiple of 4)
    out_dim: int = 256           # language-model width after the 2x2 merge MLP
    rope_theta: float = 100.0    # 2D RoPE base (MoonViT: 10,000 with 72-wide heads; 100 spreads the
                                 # 16 frequencies per axis over grids of tens of patches)
    qk_gain: float = 0.8         # scale of the tied q/k projection (untrained: sets how peaked attention is)
    seed: int = 0                # weight initialisation


def grid_positions(grids, device="cpu") -> torch.Tensor:
    """(N, 2) (row, column) of every patch of every image, row-major within each image."""
    parts = []
    for gh, gw in grids:
        r, c = torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device),
                              indexing="ij")
        parts.append(torch.stack([r.reshape(-1), c.reshape(-1)], dim=-1))
    return torch.cat(parts)


def rope_2d(x: torch.Tensor, pos: torch.Tensor, theta: float) -> torch.Tensor:
    """Axial 2D RoPE on x (H, N, Dh): first half of Dh rotated by the row, second half by the column.

    Each half is core.nn's 1D RoPE of width Dh/2 at that axis's positions (angles in float64).
    """
    half = x.shape[-1] // 2
    out = []
    for axis, part in enumerate(x.split(half, dim=-1)):                      # (H, N, Dh/2) each
        cos, sin = rope_cos_sin(pos[:, axis], half, theta, x.dtype, angles_dtype=torch.float64)  # (N, Dh/4)
        out.append(apply_rope(part, cos, sin))
    return torch.cat(out, dim=-1)


@dataclass
class EncoderInternals:
    embeddings: torch.Tensor     # (N, dim) patch embeddings
    attended: torch.Tensor       # (N, dim) after the attention layer
    positions: torch.Tensor      # (N, 2) row, column


class VisionEncoder(nn.Module):
    """Linear patch embedding -> one pre-norm attention layer with 2D RoPE -> 2x2 merge + MLP."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        check_int("Width", cfg.dim, 8, 512)
        check_int("Heads", cfg.heads, 1, 16)
        if cfg.dim % cfg.heads or (cfg.dim // cfg.heads) % 4:
            raise ValidationError("The head size (width / heads) must be a multiple of 4 for 2D RoPE.")
        self.cfg = cfg
        g = torch.Generator().manual_seed(cfg.seed)
        d = cfg.dim
        self.embed = nn.Linear(3 * PATCH * PATCH, d)                          # = Conv2d(3, d, 14, stride 14)
        self.norm = nn.LayerNorm(d)
        self.qk = nn.Linear(d, d, bias=False)                                 # tied q = k projection
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.merge_norm = nn.LayerNorm(d)
        self.merge_in = nn.Linear(MERGE**2 * d, MERGE**2 * d)
        self.merge_out = nn.Linear(MERGE**2 * d, cfg.out_dim)
        with torch.no_grad():
            for lin in (self.embed, self.qk, self.v, self.o, self.merge_in, self.merge_out):
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / math.sqrt(lin.in_features))
                if lin.bias is not None:
                    lin.bias.zero_()
            self.qk.weight.mul_(cfg.qk_gain)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        N, d = x.shape
        return x.view(N, self.cfg.heads, d // self.cfg.heads).transpose(0, 1)   # (H, N, Dh)

    def qkv(self, x: torch.Tensor, pos: torch.Tensor, rope: bool):
        h = self.norm(x)
        qk, v = self.heads(self.qk(h)), self.heads(self.v(h))
        if rope:
            qk = rope_2d(qk, pos, self.cfg.rope_theta)
        return qk, qk, v

    def attend(self, x, pos, packing: Packing, *, dense: bool, rope: bool) -> torch.Tensor:
        """Attention inside each image: per-image (varlen) or one dense block-diagonal mask (reference)."""
        q, k, v = self.qkv(x, pos, rope)                                      # (H, N, Dh) each
        if dense:
            mask = block_diagonal_mask(packing, x.device)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            cu = packing.cu_seqlens
            out = torch.cat([F.scaled_dot_product_attention(q[:, a:b], k[:, a:b], v[:, a:b])
                             for a, b in zip(cu[:-1], cu[1:], strict=True)], dim=1)
        return x + self.o(out.transpose(0, 1).reshape(x.shape))              # (N, dim)

    def merge(self, x: torch.Tensor, grids) -> torch.Tensor:
        """2x2 pixel shuffle per image, then the projector MLP: (N, dim) -> (N / 4, out_dim)."""
        parts, start = [], 0
        for gh, gw in grids:
            img = self.merge_norm(x[start:start + gh * gw]).view(gh // MERGE, MERGE, gw // MERGE, MERGE, -1)
            parts.append(img.permute(0, 2, 1, 3, 4).reshape((gh // MERGE) * (gw // MERGE), -1))
            start += gh * gw
        return self.merge_out(F.gelu(self.merge_in(torch.cat(parts))))

    def forward(self, patches: torch.Tensor, grids, *, dense: bool = False, rope: bool = True,
                return_internals: bool = False):
        """patches (N, 588) packed image after image; grids [(gh, gw), ...] -> tokens (N / 4, out_dim)."""
        packing = pack([gh * gw for gh, gw in grids])
        if patches.shape[0] != packing.total:
            raise ValidationError("The patches do not match the grids.")
        pos = grid_positions(grids, patches.device)
        emb = self.embed(patches)                                             # (N, dim)
        att = self.attend(emb, pos, packing, dense=dense, rope=rope)
        tokens = self.merge(att, grids)
        return (tokens, EncoderInternals(emb, att, pos)) if return_internals else tokens

    @torch.no_grad()
    def attention_from(self, patches: torch.Tensor, grid, query: int, *, rope: bool) -> torch.Tensor:
        """(gh, gw) attention of patch ``query`` over its image, averaged over heads."""
        pos = grid_positions([grid], patches.device)
        q, k, _ = self.qkv(self.embed(patches), pos, rope)                    # (H, N, Dh)
        scores = (q[:, query:query + 1] @ k.transpose(-1, -2))[:, 0] / math.sqrt(q.shape[-1])  # (H, N)
        return torch.softmax(scores, dim=-1).mean(0).view(*grid)


# ---------------------------------------------------------------- running it on real pixels
@dataclass(frozen=True)
class ImageFeatures:
    name: str
    plan: PatchPlan
    embedding_rgb: np.ndarray    # (gh, gw, 3) in [0, 1]: first 3 principal components of the patch embeddings
    attended_rgb: np.ndarray     # (gh, gw, 3): same for the output of the 2D-RoPE attention layer
    embedding_norm: np.ndarray   # (gh, gw): L2 norm of each patch embedding


@dataclass(frozen=True)
class EncodeResult:
    images: tuple[ImageFeatures, ...]
    packing: Packing
    token_shape: tuple[int, int]     # (visual tokens, out_dim) handed to the language model
    packed_vs_separate: float        # max |packed varlen - each image alone| over the tokens
    packed_vs_dense: float | None    # max |varlen - dense block-diagonal mask|; None above DENSE_CHECK_MAX
    seconds: float


def pca_rgb(features: torch.Tensor, grid) -> np.ndarray:
    """(gh, gw, 3): the top-3 principal components of (N, d) features, each scaled to [0, 1]."""
    x = features.double() - features.double().mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)                       # v: (d, d)
    comps = x @ v[:3].T                                                      # (N, 3)
    lo, hi = comps.quantile(0.01, dim=0), comps.quantile(0.99, dim=0)
    rgb = ((comps - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    if rgb.shape[1] < 3:
        rgb = torch.cat([rgb, rgb.new_zeros(rgb.shape[0], 3 - rgb.shape[1])], dim=1)
    return rgb.view(*grid, 3).float().cpu().numpy()


def prepare(images: list[LoadedImage]) -> tuple[list[PatchPlan], torch.Tensor, list[tuple[int, int]]]:
    """Kimi-VL plans, packed patches (N, 588) and grids for a list of images."""
    if not 1 <= len(images) <= MAX_PACK_IMAGES:
        raise ValidationError(f"Choose between 1 and {MAX_PACK_IMAGES} images.")
    plans = [kimi_plan(*im.size) for im in images]
    pack([p.patches for p in plans])                                         # size checks first
    parts = [patchify(make_canvas(im, plan)) for im, plan in zip(images, plans, strict=True)]
    return plans, torch.cat([p for p, _ in parts]), [g for _, g in parts]


def encode_images(images: list[LoadedImage], cfg: EncoderConfig = EncoderConfig(), *,
                  device="cpu", on_wait=None) -> EncodeResult:
    """Pack the images, run the encoder (varlen), check it against per-image and dense-mask runs."""
    plans, patches, grids = prepare(images)
    with heavy_job("vision encoder", device, time_limit_s=120, on_wait=on_wait), \
            oom_guard("The vision encoder", device, "Use fewer or smaller images."), torch.no_grad():
        t0 = time.perf_counter()
        enc = VisionEncoder(cfg).to(device).eval()
        x = patches.to(device)
        tokens, internals = enc(x, grids, return_internals=True)
        seconds = time.perf_counter() - t0
        alone, start = [], 0
        for g in grids:
            alone.append(enc(x[start:start + g[0] * g[1]], [g]))
            start += g[0] * g[1]
        sep = float((torch.cat(alone) - tokens).abs().max())
        dense = None
        if x.shape[0] <= DENSE_CHECK_MAX:
            dense = float((enc(x, grids, dense=True) - tokens).abs().max())
        feats = _features(images, plans, grids, internals)
    return EncodeResult(tuple(feats), pack([p.patches for p in plans]), tuple(tokens.shape), sep,
                        dense, seconds)


def encode_sources(sources, cfg: EncoderConfig = EncoderConfig(), *, device="cpu",
                   on_wait=None) -> EncodeResult:
    """:func:`encode_images` of images given as sources (see :func:`image_from_source`)."""
    return encode_images([image_from_source(s) for s in sources], cfg, device=device, on_wait=on_wait)


def _features(images, plans, grids, internals: EncoderInternals) -> list[ImageFeatures]:
    out, start = [], 0
    for im, plan, g in zip(images, plans, grids, strict=True):
        sl = slice(start, start + g[0] * g[1])
        emb, att = internals.embeddings[sl], internals.attended[sl]
        out.append(ImageFeatures(im.name, plan, pca_rgb(emb, g), pca_rgb(att, g),
                                 emb.norm(dim=-1).view(*g).float().cpu().numpy()))
        start += g[0] * g[1]
    return out


def attention_maps(image: LoadedImage, query: tuple[int, int], cfg: EncoderConfig = EncoderConfig(),
                   device="cpu") -> dict[str, np.ndarray]:
    """Attention of the patch at (row, col) over its image, with and without 2D RoPE: (gh, gw) each."""
    plans, patches, grids = prepare([image])
    gh, gw = grids[0]
    r = check_int("Query row", query[0], 0, gh - 1)
    c = check_int("Query column", query[1], 0, gw - 1)
    enc = VisionEncoder(cfg).to(device).eval()
    x = patches.to(device)
    return {name: enc.attention_from(x, grids[0], r * gw + c, rope=rope).float().cpu().numpy()
            for name, rope in ((N_("with 2D RoPE"), True), (N_("without position"), False))}


def tokens_vs_side(aspect: float, sides: list[int]) -> list[dict]:
    """Tokens per scheme as the image's longer side grows (aspect = width / height)."""
    if not 1 / MAX_ASPECT <= aspect <= MAX_ASPECT:
        raise ValidationError(f"Aspect ratio must be between 1:{MAX_ASPECT} and {MAX_ASPECT}:1.")
    rows = []
    for side in sides:
        side = check_int("Side", side, 1, 100_000)
        w, h = (side, max(1, round(side / aspect))) if aspect >= 1 else (max(1, round(side * aspect)), side)
        for plan in all_plans(h, w):
            rows.append({"side": side, "width": w, "height": h, "scheme": plan.scheme,
                         "tokens": plan.tokens, "patches": plan.patches})
    return rows


def attention_by_distance(attn: np.ndarray, query: tuple[int, int]) -> list[dict]:
    """Mean attention weight per key at each (rounded) Euclidean distance from the query, in patches."""
    gh, gw = attn.shape
    r, c = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    dist = np.rint(np.hypot(r - query[0], c - query[1])).astype(int)
    sums = np.bincount(dist.ravel(), weights=attn.ravel())
    counts = np.bincount(dist.ravel())
    return [{"distance": int(d), "mean_weight": float(sums[d] / counts[d]), "keys": int(counts[d])}
            for d in range(len(counts)) if counts[d]]
