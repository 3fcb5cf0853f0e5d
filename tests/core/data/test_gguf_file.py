"""core/data/gguf_file.py + core/llm.load_gguf on tiny random Llama GGUFs that the test writes
itself (other widths, head counts, vocabularies, quantizations), against transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.gguf_file import GGUF_ENV, load_file, model_path, unpermute_rows
from core.llm import load_gguf, load_pretrained
from core.runtime.validation import ValidationError
from tests.core.data.tiny_gguf import TinySpec, permute, write_tiny_llama

SPECS = {
    "f32-gqa-tied": TinySpec(),
    "q8-mha-untied": TinySpec(d_model=64, n_heads=4, n_kv_heads=4, d_ff=96, qtype="Q8_0", tied=False, seed=1),
    "q4-mqa": TinySpec(d_model=64, n_layers=3, n_heads=8, n_kv_heads=1, d_ff=128, qtype="Q4_1",
                       rope_theta=100000.0, seed=2),
}


@pytest.fixture(scope="module", params=list(SPECS))
def tiny_file(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    return write_tiny_llama(folder / "tiny.gguf", SPECS[request.param]), SPECS[request.param]


def hf_reference(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return model.eval(), tok


def test_unpermute_inverts_llama_cpp_permute():
    w = np.arange(6 * 8 * 3, dtype=np.float32).reshape(48, 3)
    np.testing.assert_array_equal(unpermute_rows(permute(w, 6), 6), w)
    assert not np.array_equal(permute(w, 6), w)


def test_tiny_model_equals_transformers(tiny_file):
    path, spec = tiny_file
    lm = load_gguf(path, device="cpu", dtype=torch.float32)
    model, tok = hf_reference(path)
    assert lm.config.heads == spec.n_heads and lm.config.kv_heads == spec.n_kv_heads
    assert lm.config.tied_embeddings == spec.tied
    assert sum(p.numel() for p in lm.model.parameters()) == sum(p.numel() for p in model.parameters())
    text = "the cat sat on the mat, then 12 hats!"
    ids = lm.encode(text)
    assert ids == tok(text, add_special_tokens=False).input_ids
    ours = lm.logits(ids)[0]
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].float()
    assert float((ours - ref).abs().max()) <= 1e-4 * float(ref.abs().max())
    with torch.no_grad():
        greedy = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                eos_token_id=None, pad_token_id=0)[0, len(ids):]
    assert lm.generate(ids, 8)[: len(greedy)] == greedy.tolist()


def test_tiny_chat_template_and_specials(tiny_file):
    path, _ = tiny_file
    lm = load_gguf(path, device="cpu", dtype=torch.float32)
    _, tok = hf_reference(path)
    chat = [{"role": "user", "content": "the hat"}]
    ref = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
    ref = ref["input_ids"] if not isinstance(ref, list) else ref
    assert lm.chat_ids(chat) == list(ref)
    assert lm.info.eos_ids == (2,) and lm.info.control_ids == (0, 1, 2)


def test_second_load_comes_from_the_cache(tiny_file):
    path, _ = tiny_file
    first, second = load_file(path), load_file(path)
    assert second.from_cache
    assert first.state.keys() == second.state.keys()
    for name, tensor in first.state.items():
        assert torch.equal(tensor, second.state[name]), name
    assert second.tokenizer.encode("the mat").ids == first.tokenizer.encode("the mat").ids


def test_corrupt_and_truncated_files_are_refused(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    with pytest.raises(ValidationError, match="not a readable GGUF"):
        load_gguf(junk, device="cpu")
    good = write_tiny_llama(tmp_path / "good.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValidationError, match="not a readable GGUF"):
        load_gguf(cut, device="cpu")


def test_unsupported_architecture_is_refused(tmp_path):
    path = write_tiny_llama(tmp_path / "qwen.gguf", TinySpec(architecture="qwen2"))
    with pytest.raises(ValidationError, match="Only Llama-architecture"):
        load_gguf(path, device="cpu")


def test_operator_file_from_the_environment(tmp_path, monkeypatch):
    path = write_tiny_llama(tmp_path / "mine.gguf", TinySpec(seed=5))
    monkeypatch.setenv(GGUF_ENV, str(path))
    assert model_path() == path
    lm = load_pretrained(device="cpu", dtype=torch.float32)
    assert lm.info.path == str(path.resolve()) and lm.info.name == "Tiny random llama"
    monkeypatch.setenv(GGUF_ENV, str(tmp_path / "missing.gguf"))
    with pytest.raises(ValidationError, match="is not a file"):
        load_pretrained(device="cpu")
