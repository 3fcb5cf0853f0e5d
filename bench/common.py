"""Shared plumbing for benchmarks: CLI flags, result files with device metadata, loading.

A benchmark module ``bench/<name>.py`` provides ``main(argv=None) -> dict``
(the payload it wrote) and may set ``GPU_CHECK_ARGS`` (a list of CLI args) and
``GPU_CHECK_TIMEOUT_S`` to join bench/gpu_check.sh, or ``GPU_CHECK_SKIP = "reason"``
to be listed there as skipped with that reason. Results are JSON files
named ``<name>-<device kind>.json`` with a ``meta`` block (device, driver, torch,
triton and cuDNN versions, date, commit); the GPU check also writes one combined
``gpu-check-cuda.json``. Pages show recorded results with "recorded on <device>, <date>".
Every benchmark's parser takes ``--dry-run``: a module that walks its own plan
(``parser(..., dry_run=True)``) does so; for any other the arguments are parsed,
nothing runs and the process exits 0 (the GPU check's dry run uses this).
The commit comes from git, else from $ATLAS_COMMIT (the GPU machine gets the
working tree without .git), else None.
Runs without streamlit (the GPU machine has none).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from core import write_atomically
from core.runtime.device import device_info, pick_device

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def default_out_dir() -> Path:
    """$OUT when set (the device tool's return folder), else bench/results/."""
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else RESULTS_DIR


class BenchParser(argparse.ArgumentParser):
    """argparse with ``--dry-run``: modules that do not walk their own plan stop after parsing."""

    def __init__(self, *args, dry_run: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.handles_dry_run = dry_run

    def parse_args(self, args=None, namespace=None):
        opts = super().parse_args(args, namespace)
        if opts.dry_run and not self.handles_dry_run:
            print("dry run: arguments accepted; this benchmark has no plan walk, nothing was run", flush=True)
            sys.exit(0)
        return opts


def parser(description: str, *, dry_run: bool = False) -> BenchParser:
    """An argument parser with the flags every benchmark shares; ``dry_run=True`` if the
    module itself handles ``--dry-run`` (validates its plan, runs nothing)."""
    ap = BenchParser(description=description, dry_run=dry_run)
    ap.add_argument("--out", type=Path, default=None, help="folder for the JSON result")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run, CI)")
    ap.add_argument("--device", default=None, help="force a device (default: cuda > mps > cpu)")
    ap.add_argument("--dry-run", action="store_true", help="validate the arguments (and plan); run nothing")
    return ap


def metadata(device: str | None = None) -> dict:
    """Device, driver and software versions, date and commit of this run (unknown: None)."""
    dev = pick_device(device)
    info = dataclasses.asdict(device_info(dev))
    return {
        "device": info,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "host": platform.node(),
        "commit": commit(),
        **software_versions(dev.type),
    }


def software_versions(kind: str) -> dict:
    """GPU driver, CUDA (torch's build), cuDNN, torch and triton versions; None where absent."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"driver": _nvidia_driver() if kind == "cuda" else None, "cuda": torch.version.cuda,
            "cudnn": cudnn, "torch": torch.__version__, "triton": _triton_version()}


def _triton_version() -> str | None:
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return None


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def commit() -> str | None:
    """The git commit (short) of this checkout, else $ATLAS_COMMIT, else None (no .git here)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        found = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        found = ""
    return found or os.environ.get("ATLAS_COMMIT", "").strip() or None


def write_result(name: str, payload: dict, *, out_dir: Path | None = None,
                 device: str | None = None, stem: str | None = None) -> Path:
    """Write ``{"meta": ..., "benchmark": name, **payload}`` to <out>/<name>-<kind>.json
    (<out>/<stem>.json when given). The file is replaced atomically, so a run killed
    mid-write leaves the previous complete file."""
    meta = metadata(device)
    out = Path(out_dir) if out_dir else default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem or name + '-' + meta['device']['kind']}.json"
    doc = {"benchmark": name, "meta": meta, **payload}
    write_json(path, doc)
    return path


def write_json(path: Path, doc: dict) -> None:
    """json.dumps to a temporary file beside ``path``, then rename over it."""
    text = json.dumps(doc, indent=1, default=_jsonable) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


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


