"""bench.common and bench.run_all: result files with metadata, loading, discovery."""

from __future__ import annotations

import json

from bench import run_all
from bench.common import load_results, write_result


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
