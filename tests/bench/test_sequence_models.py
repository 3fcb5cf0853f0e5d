"""bench/sequence_models.py: a quick run writes its JSON with summary lines; the crossover logic."""

from __future__ import annotations

import json

from bench import sequence_models as bench


def test_quick_run_writes_result(tmp_path):
    payload = bench.main(["--quick", "--threads", "1", "--out", str(tmp_path), "--device", "cpu"])
    doc = json.loads((tmp_path / "sequence_models-cpu.json").read_text())
    assert doc["benchmark"] == "sequence_models"
    assert len(doc["timing"]) == 4 * 2 * 2                    # models x modes x lengths
    assert len(doc["generation"]) == 5                        # 3 RNNs + KV cache + recompute
    assert doc["summary"] and payload["summary"] == doc["summary"]
    assert doc["config"]["threads_label"] == "1 CPU thread"
    assert set(doc["models"]) == {"rnn", "lstm", "gru", "transformer"}


def _row(kind, T, ms):
    return {"kind": kind, "model": kind.upper(), "mode": "forward", "T": T, "median_ms": ms}


def test_crossover_finds_the_first_length_from_which_the_transformer_wins():
    rows = [_row("lstm", 64, 1.0), _row("transformer", 64, 2.0),
            _row("lstm", 256, 4.0), _row("transformer", 256, 3.0),
            _row("lstm", 1024, 16.0), _row("transformer", 1024, 9.0)]
    assert bench._crossover(rows).startswith("Transformer fastest from T=256")
    rows.append(_row("gru", 1024, 5.0))
    assert bench._crossover(rows) == "a recurrent model is fastest at T=1024"
    assert bench._crossover([_row("lstm", 64, 1.0)]) == "no comparable points"


def test_gpu_check_settings_are_literals():
    assert isinstance(bench.GPU_CHECK_ARGS, list) and bench.GPU_CHECK_TIMEOUT_S == 90
