"""FP8 formats and DeepSeek-V3's fine-grained scaling: quantize, dequantize, measure the error.

Formats (Micikevicius et al. 2022, "FP8 Formats for Deep Learning", section 3):
E4M3 (bias 7, no infinities, max 448) and E5M2 (bias 15, IEEE-like, max 57344);
:func:`format_limits` equals torch.finfo(torch.float8_e4m3fn / float8_e5m2).

Scaling (DeepSeek-V3 report, section 3.3.2 "Fine-Grained Quantization"):
activations are grouped and scaled per 1x128 tile ("per token per 128
channels"), weights per 128x128 block ("per 128 input channels per 128 output
channels"); the scale comes online from each group's max |x|, so one outlier
only coarsens its own group. Per-tensor scaling (one amax for the whole tensor)
is the baseline it replaces; per-row scaling (one scale per output channel of a
weight, per token of an activation) sits between the two. Outlier channels in activations: Dettmers et al.
2022 ("LLM.int8()", section 3).

The fast path casts with torch (``Tensor.to(torch.float8_e4m3fn)``); the
reference path (:func:`round_to_grid`) rounds onto the FP8 grid in float64,
round-half-to-even, so tests can compare the two exactly.

Does not handle: stochastic rounding, delayed (history-based) scaling, FP8
matmul accumulation precision (section 3.3.2's promotion to CUDA cores), or
tensors with more than two dimensions (flatten them first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from safetensors import safe_open

from core.data.minilm import MAX_SENTENCE_TOKENS, load_model, load_tokenizer, model_path
from core.runtime.text import N_
from core.runtime.validation import (
    ValidationError,
    check_choice,
    check_float,
    check_int,
    check_text,
)

GROUP = 128                       # DeepSeek-V3's tile width and block side
SCHEMES = ("tensor", "row", "tile", "block")
SCHEME_LABELS = {"tensor": N_("per-tensor"), "row": N_("per row (weights: per output channel)"),
                 "tile": N_("1x128 tile"), "block": N_("128x128 block")}
MAX_ELEMENTS = 16_000_000         # a quantized tensor may hold at most this many values
MAX_TOKENS = 8192                 # synthetic / MiniLM activations: rows
MAX_CHANNELS = 8192               # synthetic activations: columns
MAX_TEXT_CHARS = 4000             # text fed to MiniLM for real activations


@dataclass(frozen=True)
class FP8Format:
    name: str             # "e4m3" | "e5m2"
    exponent_bits: int
    mantissa_bits: int
    bias: int
    ieee_special: bool    # True: the top exponent holds inf/NaN (E5M2); False: only S.1111.111 is NaN (E4M3)
    torch_dtype: str      # attribute name in torch

    @property
    def max(self) -> float:
        top = 2**self.exponent_bits - (2 if self.ieee_special else 1) - self.bias
        top_mantissa = 2**self.mantissa_bits - (1 if self.ieee_special else 2)
        return (1 + top_mantissa / 2**self.mantissa_bits) * 2.0**top

    @property
    def min_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.mantissa_bits)

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.torch_dtype)


FORMATS = {
    "e4m3": FP8Format("e4m3", 4, 3, 7, False, "float8_e4m3fn"),
    "e5m2": FP8Format("e5m2", 5, 2, 15, True, "float8_e5m2"),
}


def get_format(name: str) -> FP8Format:
    return FORMATS[check_choice("FP8 format", name, FORMATS)]


def format_limits(name: str) -> dict:
    """Largest finite value, smallest normal and smallest subnormal of an FP8 format."""
    fmt = get_format(name)
    return {"max": fmt.max, "min_normal": fmt.min_normal, "min_subnormal": fmt.min_subnormal}


def finfo_table() -> list[dict]:
    """Our limits beside torch's: finfo's max and smallest normal, and the float value of
    the bit pattern 0x01 (the smallest subnormal)."""
    rows = []
    for name, f in FORMATS.items():
        info = torch.finfo(f.dtype)
        tiniest = float(torch.tensor([1], dtype=torch.uint8).view(f.dtype).float())
        ours = format_limits(name)
        rows.append({"format": name, "exponent bits": f.exponent_bits, "mantissa bits": f.mantissa_bits,
                     "max": ours["max"], "min normal": ours["min_normal"],
                     "min subnormal": ours["min_subnormal"],
                     "agrees with torch": (ours["max"], ours["min_normal"], ours["min_subnormal"])
                     == (float(info.max), float(info.smallest_normal), tiniest)})
    return rows


# ---------------------------------------------------------------- reference rounding
def round_to_grid(y: torch.Tensor, name: str) -> torch.Tensor:
    """Round ``y`` onto the FP8 grid in float64 (round half to even, saturating at max).

    The readable reference for ``y.to(fp8).to(float64)``: the spacing of
    representable values in [2^e, 2^(e+1)) is 2^(e - mantissa_bits), and
    subnormals share the spacing of the smallest normal binade.
    """
    fmt = get_format(name)
    y64 = y.to(torch.float64)
    mag = y64.abs()
    exponent = torch.floor(torch.log2(mag)).clamp(min=1 - fmt.bias)       # zeros land in the subnormal binade
    ulp = torch.pow(2.0, exponent - fmt.mantissa_bits)
    rounded = (torch.round(mag / ulp) * ulp).clamp(max=fmt.max)          # torch.round: half to even
    return torch.copysign(rounded, y64)


# ---------------------------------------------------------------- quantize / dequantize
@dataclass(frozen=True)
class Quantized:
    data: torch.Tensor     # (M, K) FP8 values (padded groups removed)
    scales: torch.Tensor   # float32: (1, 1) tensor | (M, 1) row | (M, ceil(K/128)) tile | (ceil(M/128), ceil(K/128)) block
    fmt: str
    scheme: str

    @property
    def scale_bytes(self) -> int:
        return self.scales.numel() * 4

    @property
    def nbytes(self) -> int:
        return self.data.numel() + self.scale_bytes


def _check_matrix(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.numel() == 0:
        raise ValidationError("FP8 quantization takes a non-empty 2-D tensor (rows, columns).")
    if x.numel() > MAX_ELEMENTS:
        raise ValidationError(f"At most {MAX_ELEMENTS:,} values at a time (got {x.numel():,}).")
    if not torch.isfinite(x).all():
        raise ValidationError("The tensor holds inf or NaN values.")
    return x.float()


def _group_shape(scheme: str, m: int, k: int) -> tuple[int, int]:
    """(rows, columns) of one scaling group of an (M, K) tensor."""
    gm = {"block": GROUP, "tile": 1, "row": 1}.get(scheme, m)
    gk = GROUP if scheme in ("tile", "block") else k
    return gm, gk


def _group_view(x: torch.Tensor, scheme: str) -> tuple[torch.Tensor, int, int]:
    """Zero-pad to whole groups; returns (Mg, gm, Kg, gk) view and the padded sizes."""
    m, k = x.shape
    gm, gk = _group_shape(scheme, m, k)
    pm, pk = math.ceil(m / gm) * gm, math.ceil(k / gk) * gk
    padded = torch.nn.functional.pad(x, (0, pk - k, 0, pm - m))                      # (pm, pk)
    return padded.view(pm // gm, gm, pk // gk, gk), pm, pk                          # (Mg, gm, Kg, gk)


def compute_scales(x: torch.Tensor, fmt: str = "e4m3", scheme: str = "tile",
                   pow2: bool = False) -> torch.Tensor:
    """One fp32 scale per group: amax / FP8 max (online, as DeepSeek-V3 section 3.3.2)."""
    scheme = check_choice("Scaling scheme", scheme, SCHEMES)
    return _scales(_check_matrix(x), get_format(fmt), scheme, pow2)


def _scales(xf: torch.Tensor, f: FP8Format, scheme: str, pow2: bool) -> torch.Tensor:
    groups, _, _ = _group_view(xf, scheme)
    amax = groups.abs().amax(dim=(1, 3))                                              # (Mg, Kg)
    scales = torch.where(amax > 0, amax / f.max, torch.ones_like(amax))
    if pow2:   # integral powers of two (DeepSeek-V3 3.3.3 for some activations): exact rescaling
        scales = torch.pow(2.0, torch.ceil(torch.log2(scales)))
    return scales.float()


def _expand(scales: torch.Tensor, shape: tuple[int, int], scheme: str) -> torch.Tensor:
    m, k = shape
    gm, gk = _group_shape(scheme, m, k)
    full = scales.repeat_interleave(gm, dim=0).repeat_interleave(gk, dim=1)           # (pm, pk)
    return full[:m, :k]


def quantize(x: torch.Tensor, fmt: str = "e4m3", scheme: str = "tile", pow2: bool = False) -> Quantized:
    """FP8 values and their scales: x ≈ data * scale, group by group."""
    scheme = check_choice("Scaling scheme", scheme, SCHEMES)
    return _quantize(_check_matrix(x), get_format(fmt), scheme, pow2)


def _quantize(xf: torch.Tensor, f: FP8Format, scheme: str, pow2: bool) -> Quantized:
    scales = _scales(xf, f, scheme, pow2)
    y = (xf / _expand(scales, tuple(xf.shape), scheme)).clamp(-f.max, f.max)          # (M, K) in FP8 range
    return Quantized(y.to(f.dtype), scales, f.name, scheme)


def dequantize(q: Quantized) -> torch.Tensor:
    """float32 (M, K) values back from FP8 data and scales."""
    return q.data.float() * _expand(q.scales, tuple(q.data.shape), q.scheme)


def quantize_reference(x: torch.Tensor, fmt: str = "e4m3", scheme: str = "tile",
                       pow2: bool = False) -> torch.Tensor:
    """Float64 reference of dequantize(quantize(x)): the same float32 scaled values
    (x / scale, as the fast path divides), rounded onto the grid in float64."""
    xf = _check_matrix(x)
    full = _expand(compute_scales(xf, fmt, scheme, pow2), tuple(xf.shape), scheme)     # (M, K) fp32
    return round_to_grid(xf / full, fmt) * full.double()


# ---------------------------------------------------------------- error analysis
def error_stats(x: torch.Tensor, x_hat: torch.Tensor) -> dict:
    """Relative Frobenius error, SNR in dB, max |error|, and the share of non-zero values lost to zero."""
    x64, e64 = x.double(), (x_hat.double() - x.double())
    signal, noise = float((x64**2).sum()), float((e64**2).sum())
    nonzero = x64 != 0
    flushed = float(((x_hat == 0) & nonzero).sum()) / max(int(nonzero.sum()), 1)
    return {
        "rel_error": math.sqrt(noise / signal) if signal > 0 else 0.0,
        "snr_db": 10 * math.log10(signal / noise) if noise > 0 else math.inf,
        "max_abs_error": float(e64.abs().max()),
        "flushed_to_zero": flushed,
    }


@dataclass(frozen=True)
class SchemeResult:
    scheme: str                 # "tensor" | "tile" | "block"
    stats: dict                 # error_stats of the round trip
    bytes_per_value: float      # FP8 byte + scale overhead
    n_scales: int
    log2_edges: tuple           # histogram edges of log2(|x| / scale)
    log2_counts: tuple          # counts per bin (non-zero x only)
    rel_err_edges: tuple        # histogram edges of log10 relative error per value
    rel_err_counts: tuple


def analyze(x: torch.Tensor, fmt: str = "e4m3", schemes=SCHEMES, bins: int = 60) -> list[SchemeResult]:
    """Quantize ``x`` with each scheme; errors and histograms of where values land in FP8's range."""
    xf = _check_matrix(x)
    bins = check_int("Histogram bins", bins, 10, 200)
    f = get_format(fmt)
    out = []
    for scheme in schemes:
        q = _quantize(xf, f, check_choice("Scaling scheme", scheme, SCHEMES), False)
        x_hat = dequantize(q)
        nz = xf != 0
        scaled = (xf / _expand(q.scales, tuple(xf.shape), scheme))[nz].abs()           # (nnz,)
        log2 = torch.log2(scaled).clamp(min=math.log2(f.min_subnormal) - 8)
        counts, edges = torch.histogram(log2.double(), bins=bins,
                                        range=(math.log2(f.min_subnormal) - 8, math.log2(f.max) + 1))
        rel = ((x_hat - xf)[nz].abs() / xf[nz].abs()).clamp(min=1e-8, max=10.0)
        rcounts, redges = torch.histogram(torch.log10(rel).double(), bins=bins, range=(-8.0, 1.0))
        out.append(SchemeResult(scheme, error_stats(xf, x_hat), q.nbytes / xf.numel(),
                                q.scales.numel(), tuple(edges.tolist()), tuple(counts.tolist()),
                                tuple(redges.tolist()), tuple(rcounts.tolist())))
    return out


# ---------------------------------------------------------------- tensors to quantize
def synthetic_activations(tokens: int = 512, channels: int = 1024, outlier_channels: int = 4,
                          outlier_scale: float = 100.0, seed: int = 0) -> torch.Tensor:
    """(tokens, channels) Gaussian activations with a few outlier channels (LLM.int8's
    "emergent features") and a log-normal per-token scale (tokens differ in norm)."""
    t = check_int("Tokens", tokens, 1, MAX_TOKENS)
    c = check_int("Channels", channels, 1, MAX_CHANNELS)
    n_out = check_int("Outlier channels", outlier_channels, 0, c)
    scale = check_float("Outlier scale", outlier_scale, 1.0, 1e4)
    gen = torch.Generator().manual_seed(check_int("Seed", seed, 0, 2**31 - 1))
    x = torch.randn(t, c, generator=gen)                                              # (T, C)
    x = x * torch.exp(0.5 * torch.randn(t, 1, generator=gen))                         # per-token norm
    idx = torch.randperm(c, generator=gen)[:n_out]
    x[:, idx] *= scale
    return x


def minilm_weight_names() -> list[str]:
    """The 2-D weight matrices of all-MiniLM-L6-v2 (from its safetensors file)."""
    with safe_open(str(model_path() / "model.safetensors"), framework="pt") as fh:
        names = list(fh.keys())
        return sorted(n for n in names if n.endswith("weight") and len(fh.get_slice(n).get_shape()) == 2)


def minilm_weight(name: str) -> torch.Tensor:
    """One real weight matrix of all-MiniLM-L6-v2, float32 (out, in)."""
    check_choice("MiniLM weight", name, minilm_weight_names())
    with safe_open(str(model_path() / "model.safetensors"), framework="pt") as fh:
        return fh.get_tensor(name).float()


def minilm_activations(text: str, layer: int = 3, device: str = "cpu") -> torch.Tensor:
    """Hidden states (tokens, 384) of all-MiniLM-L6-v2 after ``layer`` (0 = embeddings) on ``text``."""
    checked = check_text(text, max_chars=MAX_TEXT_CHARS, name="Text")
    layer = check_int("MiniLM layer", layer, 0, 6)
    ids = load_tokenizer().encode(checked.text).ids[:MAX_SENTENCE_TOKENS]
    model = load_model(device)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids], device=device), output_hidden_states=True)
    return out.hidden_states[layer][0].float().cpu()                                  # (T, 384)


FP8_SOURCES = ("synthetic", "weight", "minilm")


def analyze_source(source: str, fmt: str, params: tuple, device: str = "cpu") -> tuple[tuple, list[SchemeResult]]:
    """(shape, :func:`analyze` per scheme) of one tensor to quantize, named by ``source``:
    "synthetic" with params (tokens, channels, outlier channels, outlier scale), "weight" with
    (MiniLM weight name,), "minilm" with (text, layer): MiniLM's hidden states on the text."""
    check_choice("Tensor source", source, FP8_SOURCES)
    if source == "weight":
        x = minilm_weight(*params)
    elif source == "synthetic":
        x = synthetic_activations(*params)
    else:
        x = minilm_activations(*params, device=device)
    return tuple(x.shape), analyze(x, fmt)
