"""Benchmark: our SmolLM2-135M-Instruct (core/llm.py on core/nn) against transformers'
LlamaForCausalLM, on the same weights (the same GGUF file), the same device, in the same run.

    python -m bench.llm            # prefill at T = 128, 512, 2048; decode 128 new tokens (greedy)
    python -m bench.llm --quick    # T = 32, 64; 16 new tokens (smoke run)

- Prefill: one forward pass over T tokens of Wikipedia text, logits of the last position
  only on both sides (ours ``last_only=True``, transformers ``logits_to_keep=1``), no cache
  kept; tokens/s = T / median seconds.
- Decode: greedy generation with the KV cache after a 64-token Wikipedia prompt, through
  each library's own loop (``PretrainedLM.generate``, ``model.generate``). Decode tokens/s =
  (N - 1) / (t(N new tokens) - t(1 new token)): the prefill and the first token cancel out.
  Both must produce the same tokens (checked, reported as ``identical``).
The two implementations run in turns (core.measure.timing.time_interleaved: every repeat runs both,
in alternating order), after warm-up, and the medians are compared as ratios ours ÷
transformers (> 1: ours is faster). float32 on a CPU, bfloat16 on CUDA, both sides.
Not in the GPU check: the model file cannot be sent to the GPU machine.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from bench.common import parser, write_and_report
from core.data.corpus import wiki_text
from core.data.gguf_file import model_path
from core.llm import load_pretrained
from core.measure.timing import time_interleaved
from core.runtime.device import pick_device

GPU_CHECK_SKIP = "the model file (98 MB) cannot travel to the GPU machine (64 MiB limit)"

PREFILL_T = (128, 512, 2048)
DECODE_NEW = 128
DECODE_PROMPT = 64
QUICK_PREFILL_T = (32, 64)
QUICK_DECODE_NEW = 16


def tokens_per_s(tokens: int, median_ms: float) -> float:
    return tokens / (median_ms / 1000.0)


def decode_tokens_per_s(new_tokens: int, full_ms: float, one_ms: float) -> float | None:
    """(N - 1) decode steps in the time of an N-token generation minus a 1-token one; None if
    the difference is not positive (noise larger than the decode itself)."""
    spent = (full_ms - one_ms) / 1000.0
    return (new_tokens - 1) / spent if new_tokens > 1 and spent > 0 else None


def ratio(ours: float | None, reference: float | None) -> float | None:
    return ours / reference if ours and reference else None


def load_reference(device: str, dtype):
    """transformers' LlamaForCausalLM from the same GGUF (dequantized by transformers itself)."""
    path = model_path()
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    return model.to(device).eval()


def wiki_ids(lm, n: int) -> list[int]:
    ids = lm.encode(wiki_text(12 * n + 1000))[:n]
    if len(ids) < n:
        raise RuntimeError(f"the Wikipedia sample gave {len(ids)} tokens, fewer than {n}")
    return ids


def measure_prefill(lm, ref, sizes, device: str, warmup: int, repeats: int) -> list[dict]:
    rows = []
    for T in sizes:
        x = torch.tensor([wiki_ids(lm, T)], device=device)
        with torch.no_grad():
            t = time_interleaved({"ours": lambda x=x: lm.model(x, last_only=True),
                                  "transformers": lambda x=x: ref(x, logits_to_keep=1, use_cache=False)},
                                 device, warmup=warmup, repeats=repeats)
        ours, theirs = tokens_per_s(T, t["ours"].median_ms), tokens_per_s(T, t["transformers"].median_ms)
        rows.append({"tokens": T, "ours_tok_s": ours, "transformers_tok_s": theirs, "ratio": ratio(ours, theirs),
                     "ours_ms": t["ours"], "transformers_ms": t["transformers"]})
        print(f"prefill T={T}: ours {ours:,.0f} tok/s, transformers {theirs:,.0f} tok/s", flush=True)
    return rows


def measure_decode(lm, ref, new: int, device: str, warmup: int, repeats: int) -> dict:
    ids = wiki_ids(lm, DECODE_PROMPT)
    x = torch.tensor([ids], device=device)
    mask = torch.ones_like(x)
    eos = lm.info.eos_ids[0] if lm.info.eos_ids else None

    def theirs(n):
        with torch.no_grad():
            return ref.generate(x, attention_mask=mask, max_new_tokens=n, do_sample=False, pad_token_id=eos)

    fns = {"ours_full": lambda: lm.generate(ids, new), "transformers_full": lambda: theirs(new),
           "ours_one": lambda: lm.generate(ids, 1), "transformers_one": lambda: theirs(1)}
    t = time_interleaved(fns, device, warmup=warmup, repeats=repeats)
    ours_ids = lm.generate(ids, new)
    their_ids = theirs(new)[0, len(ids):].tolist()
    ours = decode_tokens_per_s(len(ours_ids), t["ours_full"].median_ms, t["ours_one"].median_ms)
    theirs_rate = decode_tokens_per_s(len(their_ids), t["transformers_full"].median_ms,
                                      t["transformers_one"].median_ms)
    return {"new_tokens": len(ours_ids), "asked": new, "prompt_tokens": len(ids), "ours_tok_s": ours,
            "transformers_tok_s": theirs_rate, "ratio": ratio(ours, theirs_rate), "identical": ours_ids == their_ids,
            "text": lm.decode(ours_ids), "timings_ms": t}


def summary(payload: dict) -> list[str]:
    lines = [f"{payload['model']} on {payload['device_used']} ({payload['dtype']}, {payload['threads']} threads), "
             f"median of {payload['repeats']} interleaved repeats"]
    for r in payload["prefill"]:
        lines.append(f"prefill T={r['tokens']:>5,}: ours {r['ours_tok_s']:8,.0f} tok/s, transformers "
                     f"{r['transformers_tok_s']:8,.0f} tok/s, ours/transformers {r['ratio']:.2f}")
    d = payload["decode"]
    rate = lambda v: "—" if v is None else f"{v:,.1f}"          # noqa: E731
    times = lambda v: "—" if v is None else f"{v:.2f}"          # noqa: E731
    lines.append(f"decode {d['new_tokens']} new tokens (greedy, identical: {d['identical']}): ours "
                 f"{rate(d['ours_tok_s'])} tok/s, transformers {rate(d['transformers_tok_s'])} tok/s, "
                 f"ours/transformers {times(d['ratio'])}")
    return lines


def main(argv=None) -> dict:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 7; quick 2)")
    opts = ap.parse_args(argv)
    device = str(pick_device(opts.device))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    sizes, new = (QUICK_PREFILL_T, QUICK_DECODE_NEW) if opts.quick else (PREFILL_T, DECODE_NEW)
    repeats = opts.repeats or (2 if opts.quick else 7)
    lm = load_pretrained(device=device, dtype=dtype)
    ref = load_reference(device, dtype)
    payload = {"model": lm.info.label, "file": lm.info.path.rsplit("/", 1)[-1], "device_used": device,
               "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
               "repeats": repeats, "warmup": 1,
               "prefill": measure_prefill(lm, ref, sizes, device, 1, repeats),
               "decode": measure_decode(lm, ref, new, device, 1, repeats)}
    payload["summary"] = summary(payload)
    write_and_report("llm", payload, out_dir=opts.out, device=opts.device)
    return payload


if __name__ == "__main__":
    main()
