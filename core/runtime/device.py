"""Which device this process computes on, what it is, and how to survive OOM.

Order of preference: CUDA > MPS > CPU. ``ATLAS_DEVICE=cpu`` (or ``cuda``,
``cuda:1``, ``mps``) forces a choice. Hardware is probed when a function is
called, never at import time. Triton kernels need TRITON_INTERPRET=1 on a
machine without CUDA; :func:`ensure_triton_backend` sets it before kernels are
decorated (kernels.INTERPRETED calls it).
Does not handle: multi-GPU placement (one device per process).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import os
import platform
import threading
from dataclasses import dataclass

import torch

import kernels
from core.runtime.validation import ResourceError, check_int


class DeviceOutOfMemory(ResourceError):
    """Raised by :func:`oom_guard`: the run ran out of device memory (the cache was freed)."""


@dataclass(frozen=True)
class DeviceInfo:
    kind: str                    # "cuda" | "mps" | "cpu"
    name: str                    # e.g. "NVIDIA H200" or the CPU model
    total_memory: int | None     # bytes of device memory; None when unknown
    capability: str | None       # CUDA compute capability "9.0"; None otherwise
    cpu_threads: int             # torch intra-op threads
    torch_version: str
    triton_version: str | None   # None when triton is not installed
    triton_interpreted: bool     # kernels run in Triton's CPU interpreter


def pick_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` or ATLAS_DEVICE if set, else cuda > mps > cpu."""
    choice = (prefer or os.environ.get("ATLAS_DEVICE", "")).strip().lower()
    if choice:
        if choice.startswith("cuda") and not torch.cuda.is_available():
            return torch.device("cpu")
        if choice == "mps" and not _mps_available():
            return torch.device("cpu")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def device_info(device: torch.device | str | None = None) -> DeviceInfo:
    """Name, memory and software versions of ``device`` (default: pick_device())."""
    dev = torch.device(device) if device is not None else pick_device()
    name, memory, capability = _cpu_name(), _host_memory(), None
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        name, memory = props.name, int(props.total_memory)
        capability = f"{props.major}.{props.minor}"
    elif dev.type == "mps":
        name = "Apple GPU (MPS)"
    return DeviceInfo(
        kind=dev.type,
        name=name,
        total_memory=memory,
        capability=capability,
        cpu_threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        triton_version=_triton_version(),
        triton_interpreted=os.environ.get("TRITON_INTERPRET") == "1" or dev.type != "cuda",
    )


def _cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "CPU"


def _host_memory() -> int | None:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def _triton_version() -> str | None:
    # Read the installed version without importing triton: importing it decorates
    # triton.language's own @jit helpers (tl.zeros, tl.max, ...), and that must not
    # happen before ensure_triton_backend() has chosen the interpreter.
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure_triton_backend() -> bool:
    """Set TRITON_INTERPRET=1 unless kernels can run on CUDA; returns True if interpreted.

    Must run before any @triton.jit decoration. An explicit TRITON_INTERPRET
    in the environment is respected. The rule lives in kernels/__init__.py
    (kernels/ imports nothing from core/); this is the same function.
    """
    return kernels.ensure_triton_backend()


def kernel_interpreted(device) -> bool:
    """True when our Triton kernel would run in the CPU interpreter for tensors on ``device``."""
    # kernels.INTERPRETED: decided once per process, after ensure_triton_backend
    return kernels.INTERPRETED or torch.device(device).type != "cuda"


def is_oom(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU out-of-memory errors."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def free_memory(device: torch.device | str | None = None) -> None:
    """Drop garbage and return cached blocks to the device."""
    gc.collect()
    dev = torch.device(device) if device is not None else pick_device()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    elif dev.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


@contextlib.contextmanager
def oom_guard(what: str, device: torch.device | str | None = None, hint: str = ""):
    """Turn an out-of-memory error inside the block into a :class:`DeviceOutOfMemory`
    (a :class:`ResourceError`, so pages show its message).

    The device cache is freed first, so the next run starts clean. ``hint``
    tells the user what to lower (e.g. "Lower the sequence length.").
    """
    try:
        yield
    except Exception as exc:
        if not is_oom(exc):
            raise
        free_memory(device)
        dev = torch.device(device) if device is not None else pick_device()
        if hint:
            raise DeviceOutOfMemory(f"{what} ran out of memory on {dev.type}. {hint}") from None
        raise DeviceOutOfMemory(f"{what} ran out of memory on {dev.type}.") from None


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (no-op on CPU)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps" and hasattr(torch, "mps"):
        torch.mps.synchronize()


_threads_lock = threading.Lock()
_threads_users = 0              # blocks currently inside cpu_threads()
_threads_saved: int | None = None


@contextlib.contextmanager
def cpu_threads(device: torch.device | str, n: int | None = 1):
    """Run the block with ``n`` torch intra-op threads when ``device`` is a CPU.

    Small models step through tiny matrix products: on a CPU each OpenMP
    fork/join costs more than the arithmetic, and on a shared machine a second
    thread that is not scheduled stalls every step (measured on a loaded 2-core
    box: 3.1 s vs 0.04 s per training step of a 30 K-parameter RNN).
    Under OpenMP the setting belongs to the calling thread, but threads started
    later inherit the latest value. So each block restores its own thread's
    value, and the last of overlapping blocks (other sessions' threads) restores
    the value from before the first one, which new threads then inherit.
    ``n=None`` or a non-CPU device leaves the setting alone.
    """
    global _threads_users, _threads_saved
    if n is None or torch.device(device).type != "cpu":
        yield
        return
    n = check_int("Threads", n, 1, 256)
    own = torch.get_num_threads()
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved = own
        _threads_users += 1
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            last = _threads_users == 0
            torch.set_num_threads(_threads_saved if last and _threads_saved else own)
