"""core.runtime.scheduler: one job at a time per device, FIFO, time limits, re-entrancy, the queue cap."""

from __future__ import annotations

import threading
import time

import pytest

from core.runtime.scheduler import (
    DEFAULT_MAX_QUEUE,
    DeviceScheduler,
    JobTimeout,
    QueueFull,
    QueueTimeout,
    queue_cap,
)


def test_jobs_on_one_device_never_overlap_and_run_in_order():
    sched = DeviceScheduler()
    running, order, overlaps = [], [], []
    first_in = threading.Event()

    def work(i):
        with sched.job(f"job{i}", "cuda:0"):
            if running:
                overlaps.append(i)
            running.append(i)
            order.append(i)
            first_in.set()
            time.sleep(0.05)
            running.remove(i)

    threads = [threading.Thread(target=work, args=(0,))]
    threads[0].start()
    first_in.wait(2)
    for i in (1, 2, 3):
        t = threading.Thread(target=work, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(0.02)            # arrival order 1, 2, 3
    for t in threads:
        t.join(5)
    assert not overlaps
    assert order == [0, 1, 2, 3]
    assert [r.status for r in sched.records()] == ["done"] * 4


def test_other_devices_do_not_wait():
    sched = DeviceScheduler()
    done = []

    def cpu_work():
        with sched.job("cpu work", "cpu"):
            done.append(True)

    with sched.job("gpu work", "cuda:0"):
        t = threading.Thread(target=cpu_work)
        t.start()
        t.join(2)
        assert done           # ran while the GPU job was still holding cuda:0
    assert sched.queue_length("cuda:0") == 0


def test_waiting_caller_sees_jobs_ahead():
    sched = DeviceScheduler()
    seen = []
    release = threading.Event()

    def holder():
        with sched.job("long", "cpu"):
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    time.sleep(0.05)

    def on_wait(ahead, waited):
        seen.append(ahead)
        release.set()

    with sched.job("short", "cpu", on_wait=on_wait, poll_s=0.01):
        pass
    t.join(5)
    assert seen and seen[0] == 1
    assert seen[-1] == 0           # told once the wait is over, so the notice can go away
    assert seen.count(0) == 1


def test_time_limit_is_enforced_by_check():
    sched = DeviceScheduler()
    with pytest.raises(JobTimeout, match="time limit"), sched.job("train", "cpu", time_limit_s=0.1) as job:
        while True:
            job.check()
            time.sleep(0.01)
    assert sched.records()[-1].status == "timeout"
    with sched.job("next", "cpu") as job:      # the device is free again
        assert job.remaining_s > 0


def test_gives_up_after_max_wait():
    sched = DeviceScheduler()
    release, holding = threading.Event(), threading.Event()

    def hog():
        with sched.job("hog", "cpu"):
            holding.set()
            release.wait(5)

    t = threading.Thread(target=hog)
    t.start()
    holding.wait(2)
    with pytest.raises(QueueTimeout, match="busy"), sched.job("late", "cpu", max_wait_s=0.05, poll_s=0.01):
        pass
    assert sched.queue_length("cpu") == 1     # only the hog is left
    release.set()
    t.join(5)
    assert [r.status for r in sched.records()] == ["done", "gave-up"]


def test_nested_job_in_same_thread_does_not_deadlock():
    sched = DeviceScheduler()
    with sched.job("outer", "cpu") as outer, sched.job("inner", "cpu") as inner:
        assert inner is outer
    assert sched.queue_length("cpu") == 0


def test_operator_cap_lowers_every_time_limit(monkeypatch):
    sched = DeviceScheduler()
    monkeypatch.setenv("ATLAS_MAX_JOB_SECONDS", "0.2")
    with pytest.raises(JobTimeout), sched.job("long training", "cpu", time_limit_s=600) as job:
        assert job.record.time_limit_s == pytest.approx(0.2)
        while True:
            job.check()
            time.sleep(0.01)
    monkeypatch.setenv("ATLAS_MAX_JOB_SECONDS", "not a number")
    with sched.job("x", "cpu", time_limit_s=5) as job:
        assert job.record.time_limit_s == 5


def test_device_keys_name_physical_devices():
    from core.runtime.scheduler import device_key

    assert device_key("cuda") == device_key("cuda:0") == "cuda:0"
    assert device_key("cuda:1") == "cuda:1"
    assert device_key("cpu") == "cpu"
    import torch

    assert device_key(torch.device("cpu")) == "cpu"
    sched = DeviceScheduler()
    with sched.job("a", "cuda"):
        assert sched.queue_length("cuda:0") == 1


def _fill_queue(sched, device: str, waiting: int):
    """One job holding ``device`` and ``waiting`` more queued behind it; returns (release, threads)."""
    release, holding = threading.Event(), threading.Event()

    def hog():
        with sched.job("hog", device):
            holding.set()
            release.wait(10)

    def waiter():
        with sched.job("waiter", device, poll_s=0.01):
            pass

    threads = [threading.Thread(target=hog)]
    threads[0].start()
    holding.wait(2)
    for _ in range(waiting):
        threads.append(threading.Thread(target=waiter))
        threads[-1].start()
    deadline = time.monotonic() + 5
    while sched.queue_length(device) < 1 + waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    return release, threads


def test_full_queue_refuses_at_once_and_frees_up(monkeypatch):
    monkeypatch.setenv("ATLAS_MAX_QUEUE", "3")
    sched = DeviceScheduler()
    release, threads = _fill_queue(sched, "cpu", waiting=2)
    assert sched.queue_length("cpu") == 3
    started = time.monotonic()
    with pytest.raises(QueueFull, match="server is busy: 3 jobs .* CPU .* limit is 3"), sched.job("late", "cpu"):
        pass
    assert time.monotonic() - started < 1.0        # refused, not queued behind the others
    assert sched.queue_length("cpu") == 3           # the refused job took no place
    assert sched.records()[-1].status == "refused"
    with sched.job("gpu work", "cuda:0"):           # other devices have their own queue
        pass
    release.set()
    for t in threads:
        t.join(5)
    with sched.job("after", "cpu") as job:           # room again once the queue drains
        assert job.remaining_s > 0
    assert [r.status for r in sched.records()].count("done") == 5


def test_nested_job_is_not_refused_by_a_full_queue(monkeypatch):
    monkeypatch.setenv("ATLAS_MAX_QUEUE", "1")
    sched = DeviceScheduler()
    with sched.job("outer", "cpu") as outer, sched.job("inner", "cpu") as inner:
        assert inner is outer                         # the owner re-enters; it does not queue again


def test_queue_cap_setting(monkeypatch):
    monkeypatch.delenv("ATLAS_MAX_QUEUE", raising=False)
    assert queue_cap() == DEFAULT_MAX_QUEUE == 16
    monkeypatch.setenv("ATLAS_MAX_QUEUE", "4")
    assert queue_cap() == 4
    monkeypatch.setenv("ATLAS_MAX_QUEUE", "0")
    assert queue_cap() == 1                           # at least the running job
    monkeypatch.setenv("ATLAS_MAX_QUEUE", "lots")
    assert queue_cap() == DEFAULT_MAX_QUEUE
