"""bench.common and bench.run_all: result files with metadata, loading, discovery."""

from __future__ import annotations

import json

from bench import run_all
from bench.common import write_result
from core.runtime.recorded import load_results


def test_write_and_load_result(tmp_path):
    path = write_result("demo", {"rows": [1, 2], "summary": ["ok"]}, out_dir=tmp_path, device="cpu")
    assert path.name == "demo-cpu.json"
    doc = json.loads(path.read_text())
    assert doc["meta"]["device"]["kind"] == "cpu" and doc["meta"]["date"]
    assert load_results("demo", tmp_path)[0]["rows"] == [1, 2]
    assert load_results("other", tmp_path) == []


def test_load_results_reads_gpu_check_bundles(tmp_path):
    bundle = {"benchmark": "gpu-check", "results": {"attention-cuda": {"benchmark": "attention", "x": 1}}}
    (tmp_path / "gpu-check-cuda.json").write_text(json.dumps(bundle))
    (tmp_path / "broken.json").write_text("{not json")
    assert load_results("attention", tmp_path) == [{"benchmark": "attention", "x": 1}]


def test_test_summary_parses_junit(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
                   '<testcase classname="a" name="t1"/><testcase classname="a" name="t2">'
                   '<failure message="x"/></testcase><testcase classname="a" name="t3"><skipped/>'
                   '</testcase></testsuite></testsuites>')
    summary = run_all.test_summary(xml)
    assert summary["passed"] == 1 and summary["failed"] == ["a::t2"]


def test_discovery_reads_constants_without_importing(tmp_path, monkeypatch):
    (tmp_path / "fake.py").write_text(
        "import not_installed_anywhere\nGPU_CHECK_ARGS = ['--n', '4']\nGPU_CHECK_TIMEOUT_S = 60\n"
        "def main(argv=None):\n    return {}\n")
    (tmp_path / "helper.py").write_text("X = 1\n")
    monkeypatch.setattr(run_all, "BENCH_DIR", tmp_path)
    assert run_all.discover() == [("fake", {"GPU_CHECK_ARGS": ["--n", "4"], "GPU_CHECK_TIMEOUT_S": 60})]


def test_metadata_has_the_bundle_header(monkeypatch):
    from bench.common import metadata

    meta = metadata("cpu")
    for key in ("device", "date", "commit", "driver", "cuda", "cudnn", "torch", "triton"):
        assert key in meta
    assert meta["driver"] is None and meta["torch"]          # no GPU driver on a CPU run


def test_commit_without_git_comes_from_the_environment(monkeypatch):
    """The GPU machine gets the working tree without .git: $ATLAS_COMMIT, else None."""
    import subprocess

    from bench import common

    def no_git(*args, **kwargs):
        return subprocess.CompletedProcess(args, 128, stdout="", stderr="fatal: not a git repository")

    monkeypatch.setattr(common.subprocess, "run", no_git)
    monkeypatch.delenv("ATLAS_COMMIT", raising=False)
    assert common.commit() is None
    monkeypatch.setenv("ATLAS_COMMIT", "abc1234")
    assert common.commit() == "abc1234"

    def missing(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(common.subprocess, "run", missing)
    assert common.commit() == "abc1234"


def test_parser_dry_run_stops_modules_that_do_not_walk_a_plan(capsys):
    import pytest

    from bench.common import parser

    plain = parser("x")
    plain.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as stop:
        plain.parse_args(["--n", "3", "--dry-run"])
    assert stop.value.code == 0 and "arguments accepted" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        plain.parse_args(["--n", "three", "--dry-run"])
    assert stop.value.code == 2                                # bad arguments still fail
    assert parser("y", dry_run=True).parse_args(["--dry-run"]).dry_run


def test_write_json_replaces_atomically(tmp_path):
    from bench.common import write_json

    path = tmp_path / "r.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2} and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def _fake_bench(tmp_path, name, body):
    (tmp_path / f"{name}.py").write_text(body + "\ndef main(argv=None):\n    return {}\n")


def test_gpu_check_skip_is_recorded_with_its_reason(tmp_path, monkeypatch):
    _fake_bench(tmp_path, "slow_thing", "GPU_CHECK_SKIP = 'needs a file the GPU machine lacks'\nGPU_CHECK_ARGS = []")
    _fake_bench(tmp_path, "llm", "GPU_CHECK_ARGS = ['--quick']")
    _fake_bench(tmp_path, "not_gpu", "X = 1")
    monkeypatch.setattr(run_all, "BENCH_DIR", tmp_path)
    out, bundle = tmp_path / "out", tmp_path / "bundle.json"
    assert run_all.main(["--gpu", "--out", str(out), "--bundle", str(bundle), "--no-table"]) == 0
    runs = json.loads(bundle.read_text())["runs"]
    assert runs == {"llm": {"status": f"skipped: {run_all.KNOWN_SKIPS['llm']}", "seconds": 0.0},
                    "slow_thing": {"status": "skipped: needs a file the GPU machine lacks", "seconds": 0.0}}
    assert "98 MB" in run_all.KNOWN_SKIPS["llm"] and "64 MiB" in run_all.KNOWN_SKIPS["llm"]


def test_runs_file_keeps_stages_and_dry_run_marks_tests(tmp_path, monkeypatch):
    _fake_bench(tmp_path, "a_skip", "GPU_CHECK_SKIP = 'reason a'")
    _fake_bench(tmp_path, "b_skip", "GPU_CHECK_SKIP = 'reason b'")
    monkeypatch.setattr(run_all, "BENCH_DIR", tmp_path)
    common = ["--gpu", "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs.json"),
              "--bundle", str(tmp_path / "b.json"), "--no-table"]
    run_all.main([*common, "--only", "a_skip"])
    run_all.main([*common, "--skip", "a_skip", "--dry-run", "--tests-command", "pytest -m gpu"])
    doc = json.loads((tmp_path / "b.json").read_text())
    assert set(doc["runs"]) == {"a_skip", "b_skip"} and doc["dry_run"]
    assert doc["tests"]["status"] == run_all.DRY_RUN_STATUS and doc["tests"]["command"] == "pytest -m gpu"


def test_is_ok_and_unreadable_junit(tmp_path):
    assert run_all.is_ok({"status": "ok"}) and run_all.is_ok({"status": "skipped: reason"})
    assert run_all.is_ok({"status": "not run (dry run): fine"})
    assert not run_all.is_ok({"status": "failed (exit 1)"}) and not run_all.is_ok({"status": "timed out after 9 s"})
    xml = tmp_path / "cut.xml"
    xml.write_text("<testsuites><testsuite tests=")
    assert run_all.test_summary(xml)["status"] == "unreadable"
