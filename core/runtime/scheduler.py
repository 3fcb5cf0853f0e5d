"""One queue per device for heavy work: benchmarks, live training, distributed runs.

Streamlit serves every browser session as a thread of one process. Timings
taken while another session trains a model on the same device are wrong, and
two trainings at once slow everyone down. Heavy work therefore runs inside
``heavy_job(...)``: jobs on the same device run one after another in arrival
order (FIFO), a waiting caller is told how many jobs are ahead of it, and every
job has a time limit that the work checks cooperatively (``job.check()``) or
that a launcher of worker processes enforces by killing them. Each device's queue
has a cap (ATLAS_MAX_QUEUE jobs running or waiting, default 16): past it a new job
is refused at once with :class:`QueueFull` ("the server is busy") instead of
waiting behind a crowd.

Does not handle: fairness between processes (several server replicas each have
their own queue) or pre-emption of a job that never calls ``check()``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from core.runtime.validation import ResourceError

log = logging.getLogger("atlas.scheduler")

DEFAULT_TIME_LIMIT_S = 300.0   # a job may run this long unless it asks for less
MAX_TIME_LIMIT_S = 1800.0      # no job may ask for more
DEFAULT_MAX_WAIT_S = 900.0     # a caller gives up waiting after this long
JOB_CAP_ENV = "ATLAS_MAX_JOB_SECONDS"   # an operator's cap on every job's time limit
DEFAULT_MAX_QUEUE = 16         # jobs running or waiting per device before new ones are refused
QUEUE_CAP_ENV = "ATLAS_MAX_QUEUE"       # an operator's cap on each device's queue


def device_key(device) -> str:
    """One queue per physical device: "cuda" and "cuda:0" are the same GPU; all CPUs are "cpu"."""
    try:
        import torch  # start-up cost: torch takes ~1.5 s to import; the queue itself needs none

        dev = torch.device(str(device))
    except (RuntimeError, TypeError, ValueError):
        return str(device)
    if dev.type == "cuda":
        return f"cuda:{dev.index if dev.index is not None else 0}"
    return dev.type if dev.index is None or dev.type == "cpu" else f"{dev.type}:{dev.index}"


def job_time_cap() -> float:
    """The largest time limit a job may have: MAX_TIME_LIMIT_S, or less if the operator says so."""
    try:
        cap = float(os.environ.get(JOB_CAP_ENV, MAX_TIME_LIMIT_S))
    except ValueError:
        cap = MAX_TIME_LIMIT_S
    return min(max(cap, 0.1), MAX_TIME_LIMIT_S)


def queue_cap() -> int:
    """Jobs (running or waiting) a device's queue holds: ATLAS_MAX_QUEUE, else DEFAULT_MAX_QUEUE."""
    try:
        cap = int(os.environ.get(QUEUE_CAP_ENV, DEFAULT_MAX_QUEUE))
    except ValueError:
        cap = DEFAULT_MAX_QUEUE
    return max(cap, 1)


class JobTimeout(ResourceError):
    """A heavy job ran past its time limit and was stopped."""


class QueueTimeout(ResourceError):
    """A heavy job waited too long for its device."""


class QueueFull(ResourceError):
    """A device's queue was at its cap: the job was refused without waiting."""


@dataclass
class JobRecord:
    job_id: int
    name: str
    device: str
    time_limit_s: float
    queued_at: float                  # time.time() when it asked for the device
    started_at: float | None = None   # when it got the device
    ended_at: float | None = None
    status: str = "queued"            # queued | running | done | timeout | error | gave-up | refused


@dataclass
class Job:
    """Handle given to the work: check the deadline, see the time left."""

    record: JobRecord
    deadline: float                   # time.monotonic() after which the job must stop
    _started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """Raise :class:`JobTimeout` once the job is past its time limit."""
        if time.monotonic() > self.deadline:
            raise JobTimeout(
                f"{self.record.name!s} stopped after its time limit of "
                f"{self.record.time_limit_s:.0f} s. Lower the size or number of steps."
            )


WaitCallback = Callable[[int, float], None]   # (jobs ahead, seconds waited); 0 ahead: your turn


class DeviceScheduler:
    """FIFO, one job at a time per device key; re-entrant for the owning thread."""

    def __init__(self, log_size: int = 1000) -> None:
        self._cond = threading.Condition()
        self._queues: dict[str, deque[int]] = {}
        self._owner: dict[str, tuple[int, Job]] = {}     # device -> (thread id, job)
        self._ids = itertools.count(1)
        self._log: deque[JobRecord] = deque(maxlen=log_size)

    def queue_length(self, device: str) -> int:
        """Jobs running or waiting on ``device``."""
        with self._cond:
            return len(self._queues.get(device_key(device), ()))

    def records(self) -> list[JobRecord]:
        """The most recent jobs, oldest first (the scheduler's log)."""
        with self._cond:
            return list(self._log)

    @contextlib.contextmanager
    def job(
        self,
        name: str,
        device,
        *,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        on_wait: WaitCallback | None = None,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        poll_s: float = 0.25,
    ) -> Iterator[Job]:
        key = device_key(device)
        limit = min(max(float(time_limit_s), 0.1), job_time_cap())
        nested = self._nested_job(key)
        if nested is not None:           # same thread already holds the device
            yield nested
            return
        record = JobRecord(next(self._ids), name, key, limit, time.time())
        self._enqueue(record)             # QueueFull: refused before it holds a place
        try:
            self._wait_turn(record, on_wait, max_wait_s, poll_s)
            job = Job(record, deadline=time.monotonic() + limit)
            self._start(record, job)
            try:
                yield job
            except JobTimeout:
                record.status = "timeout"
                raise
            except BaseException:
                record.status = "error"
                raise
            else:
                record.status = "done"
        finally:
            self._finish(record)

    def _nested_job(self, key: str) -> Job | None:
        with self._cond:
            owner = self._owner.get(key)
        if owner and owner[0] == threading.get_ident():
            return owner[1]
        return None

    def _enqueue(self, record: JobRecord) -> None:
        """Join the device's queue, or raise QueueFull when it already holds queue_cap() jobs."""
        cap = queue_cap()
        with self._cond:
            queue = self._queues.setdefault(record.device, deque())
            self._log.append(record)
            if len(queue) >= cap:
                record.status, record.ended_at = "refused", time.time()
                log.warning("refused job %d %r: %d jobs on %s", record.job_id, record.name, len(queue),
                            record.device)
                raise QueueFull(
                    f"The server is busy: {len(queue)} jobs are already running or waiting for the "
                    f"{_device_word(record.device)} (the limit is {cap}). Try again in a minute."
                )
            queue.append(record.job_id)
        log.info("queued job %d %r on %s", record.job_id, record.name, record.device)

    def _wait_turn(self, record, on_wait, max_wait_s, poll_s) -> None:
        waited_from, told = time.monotonic(), False
        with self._cond:
            while True:
                queue = self._queues[record.device]
                ahead = queue.index(record.job_id)
                if ahead == 0:
                    break
                waited = time.monotonic() - waited_from
                if waited > max_wait_s:
                    record.status = "gave-up"
                    raise QueueTimeout(
                        f"The {record.device} device stayed busy for {waited:.0f} s "
                        f"({ahead} job(s) ahead). Try again in a moment."
                    )
                if on_wait is not None:
                    told = True
                    self._cond.release()
                    try:
                        on_wait(ahead, waited)
                    finally:
                        self._cond.acquire()
                self._cond.wait(timeout=poll_s)
        if told:                          # the caller saw a queue notice: tell it the wait is over
            on_wait(0, time.monotonic() - waited_from)

    def _start(self, record: JobRecord, job: Job) -> None:
        with self._cond:
            record.started_at = time.time()
            record.status = "running"
            self._owner[record.device] = (threading.get_ident(), job)
        log.info("started job %d %r on %s", record.job_id, record.name, record.device)

    def _finish(self, record: JobRecord) -> None:
        with self._cond:
            queue = self._queues.get(record.device)
            if queue and record.job_id in queue:
                queue.remove(record.job_id)
            owner = self._owner.get(record.device)
            if owner and owner[1].record is record:
                del self._owner[record.device]
            record.ended_at = time.time()
            self._cond.notify_all()
        log.info("ended job %d %r: %s", record.job_id, record.name, record.status)


def _device_word(key: str) -> str:
    return "GPU" if key.startswith("cuda") else key.upper() if key in ("cpu", "mps") else key


_SCHEDULER = DeviceScheduler()


def scheduler() -> DeviceScheduler:
    """The process-wide scheduler (one per server process)."""
    return _SCHEDULER


def heavy_job(name: str, device, **kwargs) -> contextlib.AbstractContextManager[Job]:
    """``with heavy_job("word2vec training", device, time_limit_s=120) as job: ...``"""
    return _SCHEDULER.job(name, device, **kwargs)
