"""Readers of recorded benchmark results (bench/results/*.json): what pages show as
"recorded on <device>, <date>". Reads files only; app/ never imports bench/.
Does not handle: results of other projects' formats (unknown files read as nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

# ----------------------------------------------------------------------------- recorded results
RESULTS_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"   # bench/results/ (data only)
GPU_BUNDLE = "gpu-check-cuda.json"                                        # written by bench/gpu_check.sh


def recorded_gpu_results(results_dir: Path | None = None) -> dict | None:
    """The attention results of the GPU check (``results`` of gpu-check-cuda.json, with the
    bundle's meta: device, driver, versions, date, commit), else a recorded attention-cuda.json;
    None when neither holds a measured CUDA run (missing, unreadable, a dry run, not CUDA)."""
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    for name in (GPU_BUNDLE, "attention-cuda.json"):
        doc = _read_json(folder / name)
        if doc.get("benchmark") == "gpu-check":
            doc = next((r for r in (doc.get("results") or {}).values()
                        if isinstance(r, dict) and r.get("benchmark") == "attention"), {})
        meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
        if doc.get("benchmark") == "attention" and not doc.get("dry_run") and \
                (meta.get("device") or {}).get("kind") == "cuda":
            return doc
    return None


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def recorded_rows(doc: dict) -> list[dict]:
    """Flat rows (impl, n, mode, ms, tflops, errors, head_dim, causal, dtype, ...) of a
    bench/attention.py result document; unknown layouts give []."""
    rows = []
    for case in doc.get("cases", []) if isinstance(doc, dict) else []:
        if not isinstance(case, dict):
            continue
        shared = {key: case.get(key) for key in ("head_dim", "causal", "dtype", "batch", "heads", "sdpa_backend")}
        rows.extend({**shared, **row} for row in case.get("rows", []) if isinstance(row, dict))
    return rows


def speed_ratios(rows: list[dict], impl: str = "triton", baseline: str = "sdpa") -> list[dict]:
    """Per (head_dim, causal, N, mode): time(baseline) / time(impl), i.e. our speed relative
    to the baseline (1.0 = as fast), with both TFLOP/s. Rows without timings are left out."""
    def key(r):
        return r.get("head_dim"), r.get("causal"), r.get("n"), r.get("mode")

    base = {key(r): r for r in rows if r.get("impl") == baseline and r.get("ms")}
    out = []
    for r in rows:
        b = base.get(key(r))
        if r.get("impl") == impl and r.get("ms") and b is not None:
            out.append({"head_dim": r["head_dim"], "causal": r["causal"], "n": r["n"], "mode": r["mode"],
                        "tflops": r["tflops"], "baseline_tflops": b["tflops"], "ratio": b["ms"] / r["ms"]})
    return out


def _baseline(row: dict) -> str | None:
    """"flash" or "cudnn" if ``row`` times SDPA with that backend forced (old files: sdpa + flash)."""
    if row.get("impl") == "sdpa_flash" or (row.get("impl") == "sdpa" and row.get("sdpa_backend") == "flash"):
        return "flash"
    return "cudnn" if row.get("impl") == "sdpa_cudnn" else None


def compare_rows(rows: list[dict]) -> list[dict]:
    """Every row with ``vs_flash`` and ``vs_cudnn``: the baseline's time / this row's time at the
    same (head_dim, causal, N, mode), i.e. speed relative to SDPA's flash and cuDNN backends
    (1.0 = as fast; None where the row or that baseline has no time)."""
    def key(r):
        return r.get("head_dim"), r.get("causal"), r.get("n"), r.get("mode")

    base = {(name, key(r)): r["ms"] for r in rows if (name := _baseline(r)) and r.get("ms")}
    out = []
    for r in rows:
        ratios = {f"vs_{name}": (base[(name, key(r))] / r["ms"] if r.get("ms") and (name, key(r)) in base
                                 else None) for name in ("flash", "cudnn")}
        out.append({**r, **ratios})
    return out


def load_results(name: str, results_dir: Path | None = None) -> list[dict]:
    """Every recorded result of benchmark ``name``: its own files and the GPU-check bundles."""
    folder = Path(results_dir) if results_dir else RESULTS_DIR
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if doc.get("benchmark") == name:
            found.append(doc)
        elif doc.get("benchmark") == "gpu-check":
            found.extend(r for r in doc.get("results", {}).values() if r.get("benchmark") == name)
    return found
