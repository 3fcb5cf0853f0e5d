"""core.runtime.device: device choice, info, Triton backend and the OOM guard."""

from __future__ import annotations

import pytest
import torch

from core.runtime import device as dev
from core.runtime.validation import ResourceError


def test_atlas_device_env_forces_cpu(monkeypatch):
    monkeypatch.setenv("ATLAS_DEVICE", "cpu")
    assert dev.pick_device().type == "cpu"


def test_unavailable_cuda_request_falls_back(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.pick_device("cuda").type == "cpu"
    monkeypatch.delenv("ATLAS_DEVICE", raising=False)
    assert dev.pick_device().type in {"cpu", "mps"}


def test_device_info_cpu():
    info = dev.device_info("cpu")
    assert info.kind == "cpu" and info.name
    assert info.total_memory is None or info.total_memory > 2**28
    assert info.torch_version == torch.__version__
    assert info.triton_interpreted


def test_ensure_triton_backend_respects_explicit_setting(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert dev.ensure_triton_backend() is False
    monkeypatch.delenv("TRITON_INTERPRET")
    monkeypatch.setenv("ATLAS_DEVICE", "cpu")
    assert dev.ensure_triton_backend() is True


@pytest.mark.parametrize("exc, expected", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), True),
    (MemoryError(), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 1 TB"), True),
    (RuntimeError("shape mismatch"), False),
    (ValueError("out of memory"), False),
])
def test_is_oom(exc, expected):
    assert dev.is_oom(exc) is expected


def test_oom_guard_turns_oom_into_resource_error():
    with pytest.raises(ResourceError, match="Lower the sequence length"):
        with dev.oom_guard("Naive attention", "cpu", hint="Lower the sequence length."):
            raise torch.OutOfMemoryError("CUDA out of memory")


def test_oom_guard_passes_other_errors():
    with pytest.raises(KeyError), dev.oom_guard("x", "cpu"):
        raise KeyError("k")


def test_real_cpu_allocation_failure_is_caught():
    with pytest.raises(ResourceError), dev.oom_guard("A huge tensor", "cpu"):
        torch.empty(2**62, dtype=torch.uint8)


def test_cpu_threads_sets_and_restores():
    before = torch.get_num_threads()
    with dev.cpu_threads("cpu", 1):
        assert torch.get_num_threads() == 1
        with dev.cpu_threads("cpu", 1):          # nested: still 1
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1      # inner exit keeps the outer's setting
    assert torch.get_num_threads() == before
    with dev.cpu_threads("cpu", None):
        assert torch.get_num_threads() == before


def test_cpu_threads_overlapping_threads_restore_once():
    import threading

    before = torch.get_num_threads()
    entered, release = threading.Event(), threading.Event()

    def other_session():
        with dev.cpu_threads("cpu", 1):
            entered.set()
            release.wait(5)

    t = threading.Thread(target=other_session)
    with dev.cpu_threads("cpu", 1):
        t.start()
        entered.wait(5)
    release.set()
    t.join(5)
    assert torch.get_num_threads() == before
    seen = []
    fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    fresh.start()
    fresh.join(5)
    assert seen == [before]                      # threads started later inherit the original


def test_cpu_threads_refuses_bad_counts():
    with pytest.raises(Exception, match="Threads"), dev.cpu_threads("cpu", 0):
        pass
