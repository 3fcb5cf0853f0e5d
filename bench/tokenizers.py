"""Tokenizer benchmarks (CPU): our encode vs each raw library, the coloured view, BPE training.

Targets from issue #3:
- encoding + building the coloured view of 100 KB of text stays well under 0.5 s on 2 cores;
- ``core.tokenizers.encode`` (ids + bytes + character offsets) costs at most about 2x the raw
  library's encode on the same text;
- training byte-level BPE to 1,000 merges on ~1 MB of text takes seconds (incremental pair
  counts), compared with the textbook full recount and with HF tokenizers' BpeTrainer.
Texts: 100 KB of UTF-8 each: the gensim Wikipedia sample (English) and a CJK text (the
Japanese/Chinese examples repeated, ~34k characters).
Counts (bytes, tokens) are kept apart from the timings. CPU only: tokenizers run on the CPU.

    python -m bench.tokenizers            # 100 KB texts, 1 MB / 1,000-merge training
    python -m bench.tokenizers --quick    # 20 KB texts, 100 KB / 200 merges (~30 s)
"""

from __future__ import annotations

import time

from bench.common import parser, write_and_report
from core import tokenizers
from core.data.corpus import wiki_text
from core.measure.timing import time_fn
from core.models import bpe
from core.views import tokens as token_view


def _texts(n_bytes: int) -> dict[str, str]:
    """About ``n_bytes`` of UTF-8 each: English prose (1 byte/char) and CJK (~3 bytes/char)."""
    cjk_seed = tokenizers.EXAMPLES["Japanese"] + tokenizers.EXAMPLES["Chinese"]
    seed_bytes = len(cjk_seed.encode("utf-8"))
    cjk = cjk_seed * (n_bytes // seed_bytes + 1)
    cjk = cjk[: int(len(cjk) * n_bytes / len(cjk.encode("utf-8")))]
    return {"english": wiki_text(n_bytes), "cjk": cjk}


def _raw_encoder(name: str):
    """The library call our encode wraps (tiktoken encode_ordinary / HF Tokenizer.encode)."""
    lib = tokenizers.load(name)
    if tokenizers.spec(name).backend == "tiktoken":
        return lib.encode_ordinary
    return lambda text: lib.encode(text, add_special_tokens=False).ids


def bench_encode(names: list[str], texts: dict[str, str], repeats: int) -> list[dict]:
    rows = []
    for name in names:
        tokenizers.id_bytes_table(name)                                  # load outside the timing
        raw = _raw_encoder(name)
        for label, text in texts.items():
            seen = tokenizers.prepare(name, text)
            tokens = tokenizers.encode(name, text)
            special = frozenset(tokenizers.special_tokens(name).values())
            t_raw = time_fn(lambda: raw(seen), "cpu", warmup=1, repeats=repeats)  # noqa: B023
            t_enc = time_fn(lambda: tokenizers.encode(name, text), "cpu", warmup=1, repeats=repeats)  # noqa: B023
            t_view = time_fn(lambda: token_view.render_html(seen, tokens, special), "cpu",  # noqa: B023
                             warmup=1, repeats=repeats)
            rows.append({
                "tokenizer": name, "text": label, "chars": len(text), "utf8_bytes": len(seen.encode()),
                "tokens": len(tokens), "raw_encode_ms": t_raw.median_ms, "encode_ms": t_enc.median_ms,
                "encode_over_raw": t_enc.median_ms / t_raw.median_ms,
                "encode_over_raw_best": t_enc.min_ms / t_raw.min_ms,   # fastest runs: least disturbed by load
                "view_ms": t_view.median_ms,
                "encode_plus_view_ms": t_enc.median_ms + t_view.median_ms,
            })
    return rows


def bench_bpe(corpus_chars: int, merges: int, ref_chars: int, ref_merges: int) -> dict:
    text = wiki_text(corpus_chars)
    config = bpe.BPEConfig(n_merges=merges)
    model = bpe.train(text, config)                             # timed inside (model.seconds)
    cmp = bpe.hf_compare(text, model)
    small, small_cfg = text[:ref_chars], bpe.BPEConfig(n_merges=ref_merges)
    started = time.perf_counter()
    bpe.train_reference(small, small_cfg)
    ref_s = time.perf_counter() - started
    fast_small_s = bpe.train(small, small_cfg).seconds
    return {
        "corpus_chars": len(text), "corpus_bytes": model.corpus_bytes, "unique_chunks": model.unique_chunks,
        "merges": len(model.steps), "train_s": model.seconds, "hf_train_s": cmp.hf_seconds,
        "ours_bytes_per_token": cmp.ours_bytes_per_token, "hf_bytes_per_token": cmp.hf_bytes_per_token,
        "shared_tokens": cmp.shared_tokens,
        "reference": {"chars": len(small), "merges": ref_merges, "full_recount_s": ref_s,
                      "incremental_s": fast_small_s, "speedup": ref_s / fast_small_s},
    }


def _summary(rows: list[dict], train: dict) -> list[str]:
    lines = []
    for r in rows:
        lines.append(f"{r['tokenizer']:>14} {r['text']:>7} {r['utf8_bytes'] / 1000:.0f} KB: {r['tokens']:,} tokens, "
                     f"raw {r['raw_encode_ms']:.1f} ms, encode {r['encode_ms']:.1f} ms "
                     f"({r['encode_over_raw']:.2f}x; best runs {r['encode_over_raw_best']:.2f}x), "
                     f"view {r['view_ms']:.1f} ms, "
                     f"total {r['encode_plus_view_ms']:.0f} ms")
    worst = max(rows, key=lambda r: r["encode_plus_view_ms"])
    lines.append(f"slowest encode+view: {worst['tokenizer']} {worst['text']} {worst['encode_plus_view_ms']:.0f} ms "
                 f"(target < 500 ms)")
    ref = train["reference"]
    lines.append(f"BPE: {train['merges']:,} merges on {train['corpus_bytes'] / 1e6:.2f} MB in {train['train_s']:.2f} s "
                 f"(HF BpeTrainer {train['hf_train_s']:.2f} s); bytes/token ours {train['ours_bytes_per_token']:.3f} "
                 f"vs HF {train['hf_bytes_per_token']:.3f}, {train['shared_tokens']:,} learned tokens shared")
    lines.append(f"BPE incremental vs full recount ({ref['merges']} merges, {ref['chars'] / 1000:.0f}k chars): "
                 f"{ref['incremental_s']:.2f} s vs {ref['full_recount_s']:.2f} s ({ref['speedup']:.1f}x)")
    return lines


def main(argv=None) -> dict:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--tokenizers", nargs="*", default=None, help="names (default: all installed)")
    args = ap.parse_args(argv)
    names = args.tokenizers or tokenizers.list_tokenizers()
    n_bytes, repeats = (20_000, 3) if args.quick else (100_000, 5)
    rows = bench_encode(names, _texts(n_bytes), repeats)
    train = bench_bpe(*((100_000, 200, 20_000, 50) if args.quick else (1_000_000, 1_000, 100_000, 100)))
    payload = {"quick": args.quick, "encode": rows, "bpe": train, "summary": _summary(rows, train)}
    write_and_report("tokenizers", payload, out_dir=args.out, device="cpu")
    return payload


if __name__ == "__main__":
    main()
