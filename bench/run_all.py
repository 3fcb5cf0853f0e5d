"""Run every benchmark in bench/ (each in its own process, with a time limit).

    python -m bench.run_all                # all benchmarks, full sizes, this device
    python -m bench.run_all --quick        # small sizes (a smoke run)
    python -m bench.run_all --gpu ...      # the GPU check: modules with GPU_CHECK_ARGS
    python -m bench.run_all --gpu --dry-run ...   # the GPU check's plan, validated, nothing run

A benchmark module is any bench/<name>.py with ``main(argv=None)``; in GPU
mode, its module-level ``GPU_CHECK_ARGS`` (list of CLI args) and
``GPU_CHECK_TIMEOUT_S`` are read from the source (not imported: the GPU machine
lacks some packages). A module with ``GPU_CHECK_SKIP = "reason"`` (or one named in
KNOWN_SKIPS) is recorded as skipped with that reason. ``--runs`` keeps the status of
every run in a JSON file, so gpu_check.sh can call this in stages; ``--bundle``
merges those runs, the results and the GPU test summary into one JSON file, rewritten
after every module (a later crash keeps it). The last thing printed is a short table.
Does not handle: running modules in parallel (one GPU, one at a time).
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

from bench.common import default_out_dir, metadata, write_json

BENCH_DIR = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"__init__", "common", "run_all"}
# Skipped in the GPU check whatever the module says (it needs what cannot reach that machine).
KNOWN_SKIPS = {"llm": "the model file (98 MB) cannot travel to the GPU machine (64 MiB limit)"}
DRY_RUN_STATUS = "not run (dry run)"
MIN_START_S = 20                       # a module is not started with less budget left than this


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


def gpu_skip_reason(name: str, consts: dict) -> str | None:
    """Why module ``name`` is skipped in the GPU check (None: it runs if it sets GPU_CHECK_ARGS)."""
    reason = consts.get("GPU_CHECK_SKIP") or KNOWN_SKIPS.get(name)
    return str(reason) if reason else None


def run_one(name: str, args: list[str], out: Path, timeout_s: float, dry_run: bool = False) -> dict:
    """Run ``python -m bench.<name> args --out out``; status, seconds and the tail of output."""
    cmd = [sys.executable, "-m", f"bench.{name}", *args, "--out", str(out), *(["--dry-run"] if dry_run else [])]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              cwd=BENCH_DIR.parent)
        tail = (proc.stdout + proc.stderr)[-3000:]
        if proc.returncode != 0:
            status = f"failed (exit {proc.returncode})"
        else:
            status = f"{DRY_RUN_STATUS}: {_last_line(proc.stdout)}" if dry_run else "ok"
    except subprocess.TimeoutExpired as exc:
        status, tail = f"timed out after {timeout_s:.0f} s", _text(exc.stdout)[-3000:]
    seconds = time.monotonic() - start
    print(f"[{name}] {status} in {seconds:.1f} s", flush=True)
    if not (status == "ok" or status.startswith(DRY_RUN_STATUS)):
        print(tail, flush=True)
    return {"status": status, "seconds": round(seconds, 1), "args": args, "log_tail": tail}


def _text(data) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("wrote ")]
    return lines[-1][:200] if lines else "arguments accepted"


def is_ok(run: dict) -> bool:
    """A run that did what it should: ran fine, was validated (dry run) or skipped on purpose."""
    status = run["status"]
    return status == "ok" or status.startswith(DRY_RUN_STATUS) or status.startswith("skipped:")


def test_summary(xml_path: Path | None) -> dict | None:
    """Counts and failing test ids from a pytest junit XML file."""
    if not xml_path or not xml_path.exists():
        return None
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:      # pytest killed while writing it
        return {"tests": 0, "failures": 0, "errors": 1, "skipped": 0, "passed": 0,
                "failed": [f"junit XML unreadable: {exc}"], "status": "unreadable"}
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root.iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in root.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "failed": failed, "status": "ran"}


def dry_run_tests(command: str) -> dict:
    """The GPU tests' entry in a dry-run bundle: same keys, nothing run."""
    return {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "passed": 0, "failed": [],
            "status": DRY_RUN_STATUS, "command": command}


def _args(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="GPU check mode (GPU_CHECK_ARGS)")
    ap.add_argument("--dry-run", action="store_true", help="validate every module's GPU plan; run nothing")
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--skip", default="", help="comma-separated benchmark names to leave out")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--budget-s", type=float, default=3600.0, help="stop starting new runs after this")
    ap.add_argument("--runs", type=Path, default=None, help="JSON file of run statuses, kept across calls")
    ap.add_argument("--tests-xml", type=Path, default=None, help="pytest junit XML to summarise")
    ap.add_argument("--tests-command", default="", help="the GPU test command (recorded by a dry run)")
    ap.add_argument("--bundle", type=Path, default=None, help="write one combined JSON here")
    ap.add_argument("--no-table", action="store_true", help="do not print the summary table")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = _args(argv)
    out = opts.out or default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    runs = _load_runs(opts.runs)
    tests = dry_run_tests(opts.tests_command) if opts.dry_run else test_summary(opts.tests_xml)
    started = time.monotonic()
    for name, args, limit_s in _selected(opts):
        left = opts.budget_s - (time.monotonic() - started)
        if isinstance(args, str):                       # a skip reason
            runs[name] = {"status": f"skipped: {args}", "seconds": 0.0}
        elif left < MIN_START_S and not opts.dry_run:
            runs[name] = {"status": "skipped: time budget spent", "seconds": 0.0}
        else:
            runs[name] = run_one(name, args, out, limit_s if opts.dry_run else min(limit_s, left), opts.dry_run)
        _save(opts, runs, out, tests)
    _save(opts, runs, out, tests)
    if not opts.no_table:
        _print_table(runs, _collect(out), tests)
    return 0 if all(is_ok(r) for r in runs.values()) else 1


def _selected(opts) -> list[tuple[str, list[str] | str, float]]:
    """(name, CLI args or a skip reason, time limit) of each module this call runs."""
    only = {n for n in opts.only.split(",") if n}
    skip = {n for n in opts.skip.split(",") if n}
    chosen = []
    for name, consts in discover():
        if (only and name not in only) or name in skip:
            continue
        if opts.gpu or opts.dry_run:
            reason = gpu_skip_reason(name, consts)
            if reason:
                chosen.append((name, reason, 0.0))
            elif "GPU_CHECK_ARGS" in consts:
                chosen.append((name, list(consts["GPU_CHECK_ARGS"]), float(consts.get("GPU_CHECK_TIMEOUT_S", 600))))
            continue
        chosen.append((name, ["--quick"] if opts.quick else [], 3600.0))
    return chosen


def _load_runs(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _save(opts, runs: dict, out: Path, tests: dict | None) -> None:
    if opts.runs:
        write_json(opts.runs, runs)
    if opts.bundle:
        _write_bundle(opts.bundle, runs, _collect(out), tests, dry_run=opts.dry_run)


def _collect(out: Path) -> dict:
    results = {}
    for path in sorted(out.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict) and "benchmark" in doc and doc["benchmark"] != "gpu-check":
            results[path.stem] = doc
    return results


def _write_bundle(path: Path, runs: dict, results: dict, tests: dict | None, *, dry_run: bool = False) -> None:
    doc = {"benchmark": "gpu-check", "meta": metadata(), "dry_run": dry_run, "runs": runs, "tests": tests,
           "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, doc)


def _print_table(runs: dict, results: dict, tests: dict | None) -> None:
    print("\n=== summary ===")
    if tests and tests.get("status") == DRY_RUN_STATUS:
        print(f"GPU tests: {DRY_RUN_STATUS}: {tests.get('command', '')}")
    elif tests:
        print(f"GPU tests: {tests['passed']} passed, {tests['failures'] + tests['errors']} failed, "
              f"{tests['skipped']} skipped")
        for failed in tests["failed"]:
            print(f"  FAILED {failed}")
    for name, run in runs.items():
        print(f"{name:24s} {run['status'][:72]:72s} {run['seconds']:7.1f} s")
    for doc in results.values():
        for line in doc.get("summary", []):
            print(f"  {doc['benchmark']}: {line}")


if __name__ == "__main__":
    sys.exit(main())
