"""Run every benchmark in bench/ (each in its own process, with a time limit).

    python -m bench.run_all                # all benchmarks, full sizes, this device
    python -m bench.run_all --quick        # small sizes (a smoke run)
    python -m bench.run_all --gpu ...      # the GPU check: modules with GPU_CHECK_ARGS

A benchmark module is any bench/<name>.py with ``main(argv=None)``; in GPU
mode, its module-level ``GPU_CHECK_ARGS`` (list of CLI args) and
``GPU_CHECK_TIMEOUT_S`` are read from the source (not imported: the GPU machine
lacks some packages). ``--bundle`` merges the results and the GPU test summary
into one JSON file. The last thing printed is a short table.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.common import default_out_dir, metadata

BENCH_DIR = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"__init__", "common", "run_all"}


def discover() -> list[tuple[str, dict]]:
    """(module name, settings) for each benchmark module, in name order."""
    found = []
    for path in sorted(BENCH_DIR.glob("*.py")):
        if path.stem in NOT_BENCHMARKS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if "main" not in names:
            continue
        found.append((path.stem, _constants(tree)))
    return found


def _constants(tree: ast.Module) -> dict:
    consts = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.startswith("GPU_CHECK_"):
                consts[target.id] = ast.literal_eval(node.value)
    return consts


def run_one(name: str, args: list[str], out: Path, timeout_s: float) -> dict:
    """Run ``python -m bench.<name> args --out out``; status, seconds and the tail of output."""
    cmd = [sys.executable, "-m", f"bench.{name}", *args, "--out", str(out)]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              cwd=BENCH_DIR.parent)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        tail = (proc.stdout + proc.stderr)[-3000:]
    except subprocess.TimeoutExpired as exc:
        status, tail = f"timed out after {timeout_s:.0f} s", str(exc.stdout or "")[-3000:]
    seconds = time.monotonic() - start
    print(f"[{name}] {status} in {seconds:.1f} s", flush=True)
    if status != "ok":
        print(tail, flush=True)
    return {"status": status, "seconds": round(seconds, 1), "log_tail": tail}


def test_summary(xml_path: Path | None) -> dict | None:
    """Counts and failing test ids from a pytest junit XML file."""
    if not xml_path or not xml_path.exists():
        return None
    root = ET.parse(xml_path).getroot()
    suites = root.iter("testsuite")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in root.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "failed": failed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="GPU check mode (GPU_CHECK_ARGS)")
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--budget-s", type=float, default=3600.0, help="stop starting new runs after this")
    ap.add_argument("--tests-xml", type=Path, default=None, help="pytest junit XML to summarise")
    ap.add_argument("--bundle", type=Path, default=None, help="write one combined JSON here")
    opts = ap.parse_args(argv)
    out = opts.out or default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    only = {n for n in opts.only.split(",") if n}
    started, runs = time.monotonic(), {}
    for name, consts in discover():
        if (only and name not in only) or (opts.gpu and "GPU_CHECK_ARGS" not in consts):
            continue
        left = opts.budget_s - (time.monotonic() - started)
        if left < 20:
            runs[name] = {"status": "skipped (time budget spent)", "seconds": 0.0}
            continue
        args = list(consts.get("GPU_CHECK_ARGS", [])) if opts.gpu else (["--quick"] if opts.quick else [])
        limit = min(float(consts.get("GPU_CHECK_TIMEOUT_S", 600)), left)
        runs[name] = run_one(name, args, out, limit)
    results = _collect(out)
    tests = test_summary(opts.tests_xml)
    if opts.bundle:
        _write_bundle(opts.bundle, runs, results, tests)
    _print_table(runs, results, tests)
    return 0 if all(r["status"] == "ok" for r in runs.values()) else 1


def _collect(out: Path) -> dict:
    results = {}
    for path in sorted(out.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if "benchmark" in doc and doc["benchmark"] != "gpu-check":
            results[path.stem] = doc
    return results


def _write_bundle(path: Path, runs: dict, results: dict, tests: dict | None) -> None:
    doc = {"benchmark": "gpu-check", "meta": metadata(), "runs": runs, "tests": tests,
           "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def _print_table(runs: dict, results: dict, tests: dict | None) -> None:
    print("\n=== summary ===")
    if tests:
        print(f"GPU tests: {tests['passed']} passed, {tests['failures'] + tests['errors']} failed, "
              f"{tests['skipped']} skipped")
        for failed in tests["failed"]:
            print(f"  FAILED {failed}")
    for name, run in runs.items():
        print(f"{name:24s} {run['status']:32s} {run['seconds']:7.1f} s")
    for doc in results.values():
        for line in doc.get("summary", []):
            print(f"  {doc['benchmark']}: {line}")


if __name__ == "__main__":
    sys.exit(main())
