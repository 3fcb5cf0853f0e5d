"""core.runtime.health: liveness, readiness before and after the warm-up, errors recorded not
raised, the job log and resident memory. Each test gets its own warm-up state and scheduler."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest
import torch

from core.runtime import health
from core.runtime.scheduler import DeviceScheduler


@pytest.fixture()
def fresh(monkeypatch) -> DeviceScheduler:
    """No warm-up yet, a scheduler of the test's own, the CPU as the device."""
    sched = DeviceScheduler()
    monkeypatch.setattr(health, "_warm", {})
    monkeypatch.setattr(health, "_warm_thread", None)
    monkeypatch.setattr(health, "scheduler", lambda: sched)
    monkeypatch.setattr(health, "pick_device", lambda: torch.device("cpu"))
    return sched


def test_liveness_needs_nothing(fresh, monkeypatch):
    monkeypatch.setattr(health, "STARTED_AT", time.time() - 100)
    live = health.liveness()
    assert live["status"] == "ok" and live["pid"] == os.getpid()
    assert live["uptime_s"] >= 100.0


def test_not_ready_before_the_warm_up(fresh):
    state = health.readiness()
    assert state["ready"] is False and state["warm_up"] == {}
    assert state["device"] == "cpu" and state["queues"] == {"cpu": 0}


def test_ready_once_every_task_has_finished(fresh):
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        assert release.wait(30)

    calls = []
    tasks = {"fast": lambda: calls.append("fast"), "slow": slow}
    thread = health.start_warm_up(tasks)
    assert started.wait(30)
    during = health.readiness()
    assert during["ready"] is False
    assert during["warm_up"]["fast"]["status"] == "ok" and during["warm_up"]["slow"]["status"] == "running"
    release.set()
    thread.join(30)
    after = health.readiness()
    assert after["ready"] is True and calls == ["fast"]
    assert {name: s["status"] for name, s in after["warm_up"].items()} == {"fast": "ok", "slow": "ok"}
    assert all(s["error"] is None and isinstance(s["seconds"], float) for s in after["warm_up"].values())


def test_pending_tasks_are_listed_before_they_run(fresh):
    release = threading.Event()
    thread = health.start_warm_up({"first": lambda: release.wait(30), "second": lambda: None})
    state = health.readiness()["warm_up"]
    assert state["second"]["status"] == "pending" and state["first"]["status"] in ("pending", "running")
    release.set()
    thread.join(30)
    assert health.readiness()["ready"] is True


def test_warm_up_runs_once_per_process(fresh):
    calls = []
    first = health.start_warm_up({"count": lambda: calls.append(1)})
    second = health.start_warm_up({"count": lambda: calls.append(2)})
    assert second is first
    first.join(30)
    assert calls == [1]


def test_a_failing_task_is_recorded_not_raised(fresh):
    """The warm-up goes on after a failure; the error is kept (300 characters at most)."""
    def broken():
        raise ValueError("no corpus here " + "x" * 1000)

    ran = []
    health.warm_up({"broken": broken, "after": lambda: ran.append(True)})
    warm = health.readiness()["warm_up"]
    assert warm["broken"]["status"] == "error" and ran == [True]
    assert warm["broken"]["error"].startswith("ValueError: no corpus here ")
    assert len(warm["broken"]["error"]) == 300
    assert warm["after"]["status"] == "ok" and warm["after"]["error"] is None
    assert health.readiness()["ready"] is True          # an error counts as finished


def test_seconds_are_measured(fresh):
    health.warm_up({"nap": lambda: time.sleep(0.05)})
    assert health.readiness()["warm_up"]["nap"]["seconds"] >= 0.05


def test_queues_count_the_jobs_on_the_device(fresh):
    holding, release = threading.Event(), threading.Event()

    def hold():
        with fresh.job("another session's training", "cpu"):
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(30)
        assert health.readiness()["queues"] == {"cpu": 1}
    finally:
        release.set()
        thread.join(30)
    assert health.readiness()["queues"] == {"cpu": 0}


def test_jobs_is_the_schedulers_log_as_dicts(fresh):
    for name in ("first", "second", "third"):
        with fresh.job(name, "cpu"):
            pass
    with pytest.raises(RuntimeError), fresh.job("failed", "cpu"):
        raise RuntimeError("boom")
    log = health.jobs()
    assert [(j["name"], j["device"], j["status"]) for j in log] == [
        ("first", "cpu", "done"), ("second", "cpu", "done"), ("third", "cpu", "done"), ("failed", "cpu", "error")]
    assert all(j["started_at"] is not None and j["ended_at"] is not None for j in log)
    assert [j["name"] for j in health.jobs(limit=2)] == ["third", "failed"]     # the most recent, oldest first


def test_rss_bytes_of_this_and_another_process(fresh):
    mine = health.rss_bytes()
    assert mine == pytest.approx(psutil.Process().memory_info().rss, rel=0.2)
    assert mine > 50 * 2**20                             # Python with torch loaded
    assert health.readiness()["rss_bytes"] > 50 * 2**20
    assert health.rss_bytes(os.getppid()) > 0


def test_rss_bytes_of_a_process_that_does_not_exist_is_unknown():
    with open("/proc/sys/kernel/pid_max", encoding="utf-8") as fh:
        beyond = int(fh.read()) + 1                       # no process can have this id
    assert health.rss_bytes(beyond) is None


def test_default_tasks_are_what_the_pages_load_first():
    from core import tokenizers

    tasks = health.default_warm_up_tasks("cpu")
    assert {"wikipedia sample", "MiniLM tokenizer", "MiniLM model", "LLM"} <= set(tasks)
    assert {f"tokenizer {name}" for name in tokenizers.list_tokenizers()} <= set(tasks)
    assert tasks["tokenizer cl100k_base"]() == tokenizers.encode_ids("cl100k_base", "warm up")
