"""Fixtures shared by the core tests.

``one_thread``: a module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``
to run its tests with one torch intra-op thread.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors: one intra-op thread avoids OpenMP contention on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
