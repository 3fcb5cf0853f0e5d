"""Compile report for Hopper without a GPU: registers, spills, shared memory and blocks
per SM of every FlashAttention kernel, compiled ahead of time for sm_90 with Triton's own
compiler and its bundled ptxas, on the installed triton and on triton 3.6 (the GPU
machine's) from a side folder.

    python -m bench.compile_report                     # installed triton + .cache/triton36 if there
    python -m bench.compile_report --shipped-only      # only the kernels' shipped Hopper tables
    python -m bench.compile_report --triton-path DIR   # another triton (a --target install)
    make triton36                                      # puts triton 3.6 in .cache/triton36

Each triton runs in its own subprocess (``--worker``) with TRITON_INTERPRET=0 and
PYTHONPATH pointing at it, so the installed triton is never touched. Writes
compile-sm90.json (bench/results/ unless --out); every row names the kernel, head_dim,
causal, ragged N (the masked edge loops compiled in), the block config and whether it is
the shipped table or a candidate. The Hopper table in kernels/flash_attention.py is
chosen from this report: no spills on triton 3.6, then the most blocks per SM.

References
- NVIDIA CUDA C++ Programming Guide, "Compute Capabilities" table, compute capability
  9.0: 64K 32-bit registers per SM, at most 255 per thread, 228 KB shared memory per SM
  (227 KB per block, 1 KB reserved per block), 64 warps and 32 blocks per SM; registers
  are allocated per warp in units of 256.
- NVIDIA Hopper Tuning Guide, Sec. "Occupancy".
Does not handle: timing (needs a GPU: bench/attention.py --sweep), other GPUs than sm_90,
fp16/fp32 variants (bf16 only: the benchmark's dtype; fp16 compiles to the same code).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import parser, write_result

ROOT = Path(__file__).resolve().parents[1]
TRITON36_DIR = ROOT / ".cache" / "triton36"      # `make triton36` installs triton 3.6 here
SM90 = {"regs_per_sm": 65536, "max_regs_per_thread": 255, "reg_unit": 256, "smem_per_sm": 228 * 1024,
        "smem_per_block": 227 * 1024, "smem_reserved_per_block": 1024, "warps_per_sm": 64,
        "blocks_per_sm": 32}
KERNELS = ("fwd", "fwd_tma", "fwd_tma_ws", "dkdv", "dq")
ODD_HEAD_DIM = 80                                # padded to 128 inside: the masked-head_dim variants
# The Hopper candidates (#16), compiled next to the shipped table:
# (kernel, head_dim, block_m, block_n, num_warps, num_stages)
CANDIDATES = (
    ("dkdv", 64, 32, 128, 4, 4),     # the old table: spills on 3.6 (causal)
    ("dkdv", 64, 16, 128, 4, 4),
    ("dkdv", 64, 16, 128, 8, 4),
    ("dq", 64, 128, 32, 4, 4),
    ("dq", 64, 128, 32, 8, 4),
    ("fwd", 128, 128, 64, 8, 3),         # the old d=128 forward (pointer loads)
    ("fwd_tma", 128, 128, 64, 8, 3),
    ("fwd_tma", 128, 128, 128, 8, 2),
    ("fwd_tma", 128, 64, 64, 4, 3),
    ("dkdv", 128, 32, 128, 8, 3),
    ("dkdv", 128, 16, 128, 8, 3),
)


# ----------------------------------------------------------------------------- the plan
def shipped_jobs() -> list[dict]:
    """Every kernel a Hopper bf16 run of the shipped table can launch (TMA forward, its
    warp-specialized variant, the pointer fallback, dK/dV, dQ), causal or not, even or ragged N."""
    # after ensure_triton_backend(): importing kernels decorates the Triton kernels
    from kernels.flash_attention import hopper_tables

    jobs = []
    tables = hopper_tables()
    for d, cfg in sorted(tables.items()):
        for causal in (False, True):
            for ragged in (False, True):
                jobs += _table_jobs(cfg, d, causal, ragged)
    return jobs + _table_jobs(tables[128], ODD_HEAD_DIM, True, True)   # head dims padded inside


def _table_jobs(cfg, d: int, causal: bool, ragged: bool) -> list[dict]:
    fwd = ["fwd_tma", "fwd"] if cfg.tma else ["fwd"]
    ws = ["fwd_tma_ws"] if cfg.tma and cfg.warp_specialize and not causal else []
    return [_job(kernel, d, causal, ragged, *_launch_of(kernel, cfg), "shipped")
            for kernel in ws + fwd + ["dkdv", "dq"]]


def candidate_jobs() -> list[dict]:
    """The candidates above, plus warp specialization of the shipped non-causal forward."""
    # after ensure_triton_backend(): importing kernels decorates the Triton kernels
    from kernels.flash_attention import hopper_tables

    jobs = [_job(kernel, d, causal, ragged, bm, bn, w, s, "candidate")
            for kernel, d, bm, bn, w, s in CANDIDATES for causal in (False, True) for ragged in (False, True)]
    for d, cfg in sorted(hopper_tables().items()):
        jobs += [_job("fwd_tma_ws", d, False, ragged, cfg.block_m, cfg.block_n, cfg.num_warps,
                      cfg.num_stages, "candidate") for ragged in (False, True)]
    return jobs


def _launch_of(kernel: str, cfg) -> tuple[int, int, int, int]:
    if kernel.startswith("fwd"):
        return cfg.block_m, cfg.block_n, cfg.num_warps, cfg.num_stages
    if kernel == "dkdv":
        return cfg.bwd_block_m1, cfg.bwd_block_n1, cfg.bwd_num_warps, cfg.bwd_num_stages
    return cfg.bwd_block_m2, cfg.bwd_block_n2, cfg.bwd_num_warps, cfg.bwd_num_stages


def _job(kernel, d, causal, ragged, bm, bn, warps, stages, role) -> dict:
    return {"kernel": kernel, "head_dim": d, "causal": causal, "ragged": ragged, "block_m": bm,
            "block_n": bn, "num_warps": warps, "num_stages": stages, "role": role}


# ----------------------------------------------------------------------------- occupancy
def blocks_per_sm(regs: int, shared: int, warps: int) -> dict:
    """Resident blocks per SM on sm_90 and what limits them (registers, shared memory, warps)."""
    per_warp = -(-regs * 32 // SM90["reg_unit"]) * SM90["reg_unit"]        # registers, rounded up
    by_regs = (SM90["regs_per_sm"] // per_warp) // warps
    by_smem = SM90["smem_per_sm"] // (shared + SM90["smem_reserved_per_block"])
    if shared > SM90["smem_per_block"]:
        by_smem = 0
    by_warps = SM90["warps_per_sm"] // warps
    limits = {"registers": by_regs, "shared memory": by_smem, "warps": by_warps,
              "blocks": SM90["blocks_per_sm"]}
    blocks = min(limits.values())
    return {"blocks_per_sm": blocks, "warps_per_sm": blocks * warps,
            "limited_by": min(limits, key=limits.get)}


# ----------------------------------------------------------------------------- worker (one triton)
_POINTERS = {"Q": "*bf16", "K": "*bf16", "V": "*bf16", "Out": "*bf16", "DO": "*bf16", "DK": "*bf16",
             "DV": "*bf16", "DQ": "*bf16", "LSE": "*fp32", "DELTA": "*fp32"}


def _signature(fn, consts: dict, job: dict) -> tuple[dict, dict]:
    """Triton signature and divisibility hints of a bench-shaped launch (bf16, 16-aligned)."""
    block_d = consts["BLOCK_D"]
    descs = {"desc_q": job["block_m"], "desc_o": job["block_m"], "desc_k": job["block_n"],
             "desc_v": job["block_n"]}
    sig, attrs = {}, {}
    for i, arg in enumerate(fn.arg_names):
        if arg in consts:
            sig[arg] = "constexpr"
        elif arg in descs:
            sig[arg] = f"tensordesc<bf16[1, {descs[arg]}, {block_d}]>"
        else:
            sig[arg] = _POINTERS.get(arg, "fp32" if arg.endswith("scale") else "i32")
        if arg in _POINTERS or arg.startswith("stride"):
            attrs[(i,)] = [["tt.divisibility", 16]]
    return sig, attrs


def _constants(job: dict) -> tuple:
    # after ensure_triton_backend(): importing kernels decorates the Triton kernels
    import kernels.flash_attention as fa

    d = job["head_dim"]
    block_d = max(16, 1 << (d - 1).bit_length())
    common = {"BLOCK_D": block_d, "BLOCK_M": job["block_m"], "BLOCK_N": job["block_n"],
              "CAUSAL": job["causal"], "MASK_N": job["ragged"], "FP32_DOT": False, "PRECISION": "tf32"}
    if job["kernel"].startswith("fwd_tma"):
        return fa._fwd_tma_kernel, {**common, "WARP_SPECIALIZE": job["kernel"] == "fwd_tma_ws"}
    fn = {"fwd": fa._fwd_kernel, "dkdv": fa._bwd_dkdv_kernel, "dq": fa._bwd_dq_kernel}[job["kernel"]]
    return fn, {**common, "HEAD_DIM": d, "EVEN_D": block_d == d}


def compile_job(job: dict) -> dict:
    """Compile one kernel for sm_90; registers and spills from ptxas's own log."""
    # after ensure_triton_backend(): triton must not be imported before TRITON_INTERPRET is set
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn, consts = _constants(job)
    sig, attrs = _signature(fn, consts, job)
    started, log = time.monotonic(), io.StringIO()
    try:
        with contextlib.redirect_stdout(log):     # TRITON_DUMP_PTXAS_LOG=1: ptxas -v is printed
            kernel = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs),
                                    target=GPUTarget("cuda", 90, 32),
                                    options={"num_warps": job["num_warps"], "num_stages": job["num_stages"]})
    except Exception as exc:   # a config this triton cannot compile is a result, not a crash
        return {**job, "status": f"failed: {type(exc).__name__}: {str(exc).strip()[:300]}"}
    return {**job, **_resources(log.getvalue(), kernel), "status": "ok",
            "compile_s": round(time.monotonic() - started, 2)}


def _resources(ptxas_log: str, kernel) -> dict:
    regs = re.search(r"Used (\d+) registers", ptxas_log)
    spills = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", ptxas_log)
    ptx = kernel.asm.get("ptx", "")
    out = {"regs": int(regs.group(1)) if regs else None,
           "stack_bytes": int(spills.group(1)) if spills else None,
           "spill_stores": int(spills.group(2)) if spills else None,
           "spill_loads": int(spills.group(3)) if spills else None,
           "shared": int(kernel.metadata.shared), "wgmma": "wgmma" in ptx,
           "tma": "cp.async.bulk.tensor" in ptx, "setmaxnreg": "setmaxnreg" in ptx}
    if out["regs"] is None:          # no ptxas log (a cached kernel): the cubin's own numbers
        out.update(_cubin_usage(kernel.asm.get("cubin", b"")))
    if out["regs"] is not None:
        out.update(blocks_per_sm(out["regs"], out["shared"], kernel.metadata.num_warps))
    return out


def _cubin_usage(cubin: bytes) -> dict:
    """Registers and stack frame from ``cuobjdump --dump-resource-usage`` (bundled with triton);
    a stack frame in these kernels (no local arrays, no calls) means spills."""
    # after ensure_triton_backend(): triton must not be imported before TRITON_INTERPRET is set
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as fh:
        fh.write(cubin)
        fh.flush()
        try:
            text = subprocess.run([str(tool), "--dump-resource-usage", fh.name], capture_output=True,
                                  text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return {}
    found = re.search(r"REG:(\d+) STACK:(\d+)", text)
    return {"regs": int(found.group(1)), "stack_bytes": int(found.group(2))} if found else {}


def worker(jobs: list[dict]) -> dict:
    """Compile every job with the triton on sys.path (this process: TRITON_INTERPRET=0);
    a job seen before (a candidate equal to the shipped table) reuses its row."""
    # after ensure_triton_backend(): triton must not be imported before TRITON_INTERPRET is set
    import triton

    done, rows = {}, []
    for job in jobs:
        key = tuple(v for k, v in sorted(job.items()) if k != "role")
        if key not in done:
            done[key] = compile_job(job)
        rows.append({**done[key], "role": job["role"]})
    return {"triton": triton.__version__, "rows": rows}


# ----------------------------------------------------------------------------- driver
def run_triton(jobs: list[dict], triton_path: Path | None, timeout_s: float = 1800) -> dict:
    """Run the worker in a subprocess with ``triton_path`` first on PYTHONPATH (None: installed)."""
    with tempfile.TemporaryDirectory(prefix="atlas-aot-") as tmp:
        jobs_file = Path(tmp) / "jobs.json"
        jobs_file.write_text(json.dumps(jobs), encoding="utf-8")
        paths = [str(triton_path)] if triton_path else []
        env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_DUMP_PTXAS_LOG": "1",
               "TRITON_CACHE_DIR": str(Path(tmp) / "cache"),      # fresh: ptxas runs, its log is read
               "PYTHONPATH": os.pathsep.join([*paths, str(ROOT)])}
        proc = subprocess.run([sys.executable, "-m", "bench.compile_report", "--worker", str(jobs_file)],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout_s)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    if proc.returncode != 0 or not lines:
        return {"triton": None, "path": str(triton_path) if triton_path else None, "rows": [],
                "error": (proc.stderr or proc.stdout)[-3000:]}
    return {**json.loads(lines[-1][len("REPORT "):]), "path": str(triton_path) if triton_path else None}


def spilled(row: dict) -> bool:
    """ptxas spilled registers (spill stores, or a stack frame where only the cubin was read)."""
    return bool(row.get("spill_stores") or row.get("stack_bytes"))


def summarize(reports: list[dict]) -> list[str]:
    """One line per triton: shipped kernels compiled, the worst registers, any spills or failures."""
    lines = []
    for rep in reports:
        if rep.get("error"):
            lines.append(f"triton at {rep.get('path') or 'installed'}: worker failed: {rep['error'][-200:]}")
            continue
        shipped = [r for r in rep["rows"] if r["role"] == "shipped"]
        bad = [r for r in shipped if r["status"] != "ok" or spilled(r)]
        worst = max((r for r in shipped if r.get("regs")), key=lambda r: r["regs"], default=None)
        lines.append(f"triton {rep['triton']}: {len(shipped)} shipped kernels, "
                     f"{'no spills' if not bad else f'{len(bad)} spill or fail'}"
                     + (f", most registers {worst['regs']} ({worst['kernel']} d={worst['head_dim']})" if worst else ""))
    return lines


def table(reports: list[dict]) -> list[str]:
    """A fixed-width table: kernel, config, registers, spills, blocks per SM per triton."""
    out = [f"{'triton':7s} {'role':9s} {'kernel':10s} {'d':>3s} {'mask':6s} {'ragged':6s} {'BMxBN/w/s':14s} "
           f"{'regs':>4s} {'spill st/ld':>11s} {'smem KB':>7s} {'blk/SM':>6s} status"]
    for rep in reports:
        for r in rep.get("rows", []):
            spill = (f"{r['spill_stores']}/{r['spill_loads']}" if r.get("spill_stores") is not None
                     else f"stack {r['stack_bytes']}" if r.get("stack_bytes") is not None else "—")
            out.append(f"{rep.get('triton') or '?':7s} {r['role']:9s} {r['kernel']:10s} {r['head_dim']:3d} "
                       f"{'causal' if r['causal'] else 'full':6s} {'yes' if r['ragged'] else 'no':6s} "
                       f"{r['block_m']}x{r['block_n']}/{r['num_warps']}/{r['num_stages']:<6} "
                       f"{r.get('regs') or '—':>4} {spill:>11s} {(r.get('shared') or 0) / 1024:7.1f} "
                       f"{r.get('blocks_per_sm', '—'):>6} {r['status'][:60]}")
    return out


def main(argv=None) -> dict:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--triton-path", type=Path, action="append", default=None,
                    help="a folder holding another triton (repeatable); default: .cache/triton36 if there")
    ap.add_argument("--shipped-only", action="store_true", help="only the shipped Hopper tables")
    opts = ap.parse_args(argv)
    if opts.worker:
        print("REPORT " + json.dumps(worker(json.loads(opts.worker.read_text(encoding="utf-8")))), flush=True)
        return {}
    jobs = shipped_jobs() + ([] if opts.shipped_only or opts.quick else candidate_jobs())
    sides = opts.triton_path if opts.triton_path is not None else (
        [TRITON36_DIR] if (TRITON36_DIR / "triton").is_dir() else [])
    reports = [run_triton(jobs, None)] + [run_triton(jobs, p) for p in sides]
    payload = {"target": "sm_90 (Hopper: H100/H200)", "limits": SM90, "reports": reports,
               "summary": summarize(reports)}
    path = write_result("compile-sm90", payload, out_dir=opts.out, device="cpu", stem="compile-sm90")
    print("\n".join(table(reports) + payload["summary"]))
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
