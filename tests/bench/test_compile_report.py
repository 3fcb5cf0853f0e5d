"""bench/compile_report.py: occupancy arithmetic (sm_90 limits), the job plan, the table.
The compiles themselves are tests/kernels/test_flash_attention.py's sm_90 compile tests."""

from __future__ import annotations

import pytest

from bench import compile_report as cr


@pytest.mark.parametrize("regs,shared,warps,blocks,limit", [
    (255, 64 * 1024, 4, 2, "registers"),      # 256 x 32 x 4 = 32768 regs per block: 2 per SM
    (128, 64 * 1024, 8, 2, "registers"),      # 128 x 32 x 8 = 32768
    (138, 112 * 1024, 4, 2, "shared memory"),  # (112 + 1) KB per block: 2 in 228 KB
    (186, 88 * 1024, 8, 1, "registers"),      # 192 x 256 = 49152 > 32768
    (64, 16 * 1024, 1, 13, "shared memory"),
    (100, 300 * 1024, 4, 0, "shared memory"),  # over the 227 KB a block may use
])
def test_blocks_per_sm_golden(regs, shared, warps, blocks, limit):
    """CUDA Programming Guide, compute capability 9.0: 65,536 registers (allocated per warp in
    units of 256), 228 KB shared memory per SM with 1 KB reserved per block, 64 warps, 32 blocks."""
    got = cr.blocks_per_sm(regs, shared, warps)
    assert got["blocks_per_sm"] == blocks and got["limited_by"] == limit
    assert got["warps_per_sm"] == blocks * warps


def test_shipped_jobs_cover_every_launchable_kernel():
    jobs = cr.shipped_jobs()
    kinds = {(j["kernel"], j["head_dim"], j["causal"], j["ragged"]) for j in jobs}
    for d in (64, 128):
        for causal in (False, True):
            for ragged in (False, True):
                assert {("fwd_tma", d, causal, ragged), ("fwd", d, causal, ragged), ("dkdv", d, causal, ragged),
                        ("dq", d, causal, ragged)} <= kinds
    assert ("fwd_tma", cr.ODD_HEAD_DIM, True, True) in kinds
    assert all(j["role"] == "shipped" for j in jobs)
    assert {j["role"] for j in cr.candidate_jobs()} == {"candidate"}


def test_table_and_summary_flag_spills():
    row = {"kernel": "dkdv", "head_dim": 64, "causal": True, "ragged": False, "block_m": 32, "block_n": 128,
           "num_warps": 4, "num_stages": 4, "role": "shipped", "status": "ok", "regs": 255, "spill_stores": 40,
           "spill_loads": 60, "stack_bytes": 40, "shared": 66304, "blocks_per_sm": 2}
    reports = [{"triton": "3.6.0", "rows": [row]}, {"triton": None, "path": "/x", "rows": [], "error": "boom"}]
    assert cr.spilled(row) and not cr.spilled({**row, "spill_stores": 0, "stack_bytes": 0})
    assert cr.summarize(reports)[0] == "triton 3.6.0: 1 shipped kernels, 1 spill or fail, most registers 255 (dkdv d=64)"
    assert "worker failed" in cr.summarize(reports)[1]
    lines = cr.table(reports)
    assert "40/60" in lines[1] and "32x128/4/4" in lines[1]
