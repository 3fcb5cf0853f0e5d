"""Liveness, readiness and the job log of a hosted atlas process (for a reverse proxy).

- liveness: the process answers (no model needed).
- readiness: the warm-up (corpus extraction, tokenizers, MiniLM, the real LLM) has finished,
  so the first visitor of a page does not pay for loading; reports the device,
  the scheduler's queue lengths, memory in use and uptime.
- jobs: the scheduler's recent heavy jobs (name, device, queued/started/ended,
  status) so an operator (or a load test) can check that GPU work never overlapped.
Does not handle: authentication (put the proxy's auth in front), metrics export.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable

import psutil

from core import llm, tokenizers
from core.data import corpus, minilm
from core.runtime.device import pick_device
from core.runtime.scheduler import device_key, scheduler

log = logging.getLogger("atlas.health")
STARTED_AT = time.time()

_lock = threading.Lock()
_warm: dict[str, dict] = {}           # task name -> {"status", "seconds", "error"}
_warm_thread: threading.Thread | None = None


def default_warm_up_tasks(device: str) -> dict[str, Callable[[], object]]:
    """What the pages load first: the Wikipedia sample, tokenizers, MiniLM and the LLM
    (SmolLM2-135M-Instruct or ATLAS_LLM_GGUF's file, loaded once per process by core.llm)."""
    tasks: dict[str, Callable[[], object]] = {
        "wikipedia sample": corpus.wiki_articles,
        "MiniLM tokenizer": minilm.load_tokenizer,
        "MiniLM model": lambda: minilm.load_model(device),
        "LLM": lambda: llm.load_pretrained(device=device),
    }
    for name in tokenizers.list_tokenizers():
        tasks[f"tokenizer {name}"] = lambda name=name: tokenizers.encode_ids(name, "warm up")
    return tasks


def warm_up(tasks: dict[str, Callable[[], object]]) -> None:
    """Run each task once, recording status and seconds (errors are recorded, not raised)."""
    for name, task in tasks.items():
        with _lock:
            _warm[name] = {"status": "running", "seconds": None, "error": None}
        start = time.monotonic()
        try:
            task()
            status, error = "ok", None
        except Exception as exc:
            log.exception("warm-up task %s failed", name)
            status, error = "error", f"{type(exc).__name__}: {exc}"[:300]
        with _lock:
            _warm[name] = {"status": status, "seconds": round(time.monotonic() - start, 2),
                           "error": error}


def start_warm_up(tasks: dict[str, Callable[[], object]]) -> threading.Thread:
    """Warm up in a background thread (once per process); readiness turns true when done."""
    global _warm_thread
    with _lock:
        if _warm_thread is None:
            for name in tasks:
                _warm[name] = {"status": "pending", "seconds": None, "error": None}
            _warm_thread = threading.Thread(target=warm_up, args=(tasks,), name="atlas-warm-up",
                                            daemon=True)
            _warm_thread.start()
        return _warm_thread


def liveness() -> dict:
    return {"status": "ok", "uptime_s": round(time.time() - STARTED_AT, 1), "pid": os.getpid()}


def readiness() -> dict:
    """{"ready": bool, "warm_up": {...}, "device": str, "queues": {...}, "rss_bytes": int, ...}."""
    with _lock:
        warm = {k: dict(v) for k, v in _warm.items()}
    ready = bool(warm) and all(v["status"] in ("ok", "error") for v in warm.values())
    device = str(pick_device())
    sched = scheduler()
    return {
        "ready": ready,
        "warm_up": warm,
        "device": device,
        "queues": {device_key(dev): sched.queue_length(dev) for dev in sorted({device, "cpu"})},
        "rss_bytes": rss_bytes(),
        "uptime_s": round(time.time() - STARTED_AT, 1),
    }


def jobs(limit: int = 200) -> list[dict]:
    """The scheduler's most recent jobs, oldest first, as plain dicts."""
    return [dataclasses.asdict(r) for r in scheduler().records()[-limit:]]


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident memory of a process (default: this one); None if unknown."""
    try:
        return int(psutil.Process(pid or os.getpid()).memory_info().rss)
    except Exception:
        return None
