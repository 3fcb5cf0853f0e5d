"""Shared plumbing for benchmarks: CLI flags, result files with device metadata, loading.

A benchmark module ``bench/<name>.py`` provides ``main(argv=None) -> dict``
(the payload it wrote) and may set ``GPU_CHECK_ARGS`` (a list of CLI args) and
``GPU_CHECK_TIMEOUT_S`` to join bench/gpu_check.sh. Results are JSON files
named ``<name>-<device kind>.json`` with a ``meta`` block (device, versions,
date); the GPU check also writes one combined ``gpu-check-cuda.json``.
Pages show recorded results with "recorded on <device>, <date>".
Runs without streamlit (the GPU machine has none).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def default_out_dir() -> Path:
    """$OUT when set (the device tool's return folder), else bench/results/."""
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else RESULTS_DIR


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every benchmark shares."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", type=Path, default=None, help="folder for the JSON result")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run, CI)")
    ap.add_argument("--device", default=None, help="force a device (default: cuda > mps > cpu)")
    return ap


def metadata(device: str | None = None) -> dict:
    """Device, software versions, date and git commit of this run."""
    from core.device import device_info, pick_device

    dev = pick_device(device)
    info = dataclasses.asdict(device_info(dev))
    return {
        "device": info,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "host": platform.node(),
        "commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_result(name: str, payload: dict, *, out_dir: Path | None = None,
                 device: str | None = None) -> Path:
    """Write ``{"meta": ..., "benchmark": name, **payload}`` to <out>/<name>-<kind>.json."""
    meta = metadata(device)
    out = Path(out_dir) if out_dir else default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{meta['device']['kind']}.json"
    doc = {"benchmark": name, "meta": meta, **payload}
    path.write_text(json.dumps(doc, indent=1, default=_jsonable) + "\n", encoding="utf-8")
    return path


def write_and_report(name: str, payload: dict, *, out_dir: Path | None = None,
                     device: str | None = None) -> Path:
    """write_result, then print the payload's ``summary`` lines and the file written."""
    path = write_result(name, payload, out_dir=out_dir, device=device)
    print("\n".join(payload["summary"]))
    print(f"wrote {path}")
    return path


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


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
