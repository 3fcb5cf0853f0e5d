"""The pre-norm decoder block: x + Attn(Norm(x)), then x + MLP(Norm(x)).

As in GPT-2 (LayerNorm, GELU) and Llama (RMSNorm, SwiGLU, RoPE, GQA): the residual
stream x is never normalised in place; each branch reads a normalised copy and adds
its output back (Xiong et al. 2020, "On Layer Normalization in the Transformer
Architecture", pre-LN). Dropout, when set, follows each branch (GPT-2's resid_pdrop)
and the attention probabilities (``attn_dropout``, default the same; SDPA's dropout_p).
``return_internals`` returns what each branch wrote and the attention probabilities
(``return_probs=False`` keeps the fused attention path). ``mlp_module`` replaces the MLP
(a MoE layer); with ``mlp_internals`` it is called with ``return_internals=True``, returns
(y, internals), and BlockInternals.mlp carries them (the MoE's routing).
Does not handle: parallel attention + MLP blocks (GPT-J, Falcon), post-norm blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.nn.attention import AttentionShape, SelfAttention
from core.nn.mlp import make_mlp
from core.nn.norms import make_norm


@dataclass(frozen=True)
class BlockInternals:
    attn_out: torch.Tensor            # (B, T, d) what attention added to the residual stream
    mlp_out: torch.Tensor             # (B, T, d) what the MLP added
    probs: torch.Tensor | None        # (B, H, T, T_k) attention probabilities (naive path) or None
    mlp: object | None = None         # what an mlp_module with internals returned (MoE routing)


class DecoderBlock(nn.Module):
    def __init__(self, attn: AttentionShape, *, d_ff: int, mlp: str = "swiglu", norm: str = "rmsnorm",
                 norm_eps: float = 1e-5, mlp_bias: bool = False, dropout: float = 0.0,
                 attn_dropout: float | None = None, mlp_module: nn.Module | None = None,
                 mlp_internals: bool = False) -> None:
        super().__init__()
        self.dropout = dropout
        self.mlp_internals = mlp_internals
        # both norms first: the parameter order (what clip_grad_norm_ sums in) of every model here
        self.attn_norm = make_norm(norm, attn.d_model, norm_eps)
        self.mlp_norm = make_norm(norm, attn.d_model, norm_eps)
        self.attn = SelfAttention(attn, dropout if attn_dropout is None else attn_dropout)
        self.mlp = mlp_module if mlp_module is not None else make_mlp(mlp, attn.d_model, d_ff, mlp_bias)

    def forward(self, x: torch.Tensor, *, rope=None, cache=None, layer: int = 0, backend="sdpa",
                causal: bool = True, mask=None, return_internals: bool = False,
                return_probs: bool | None = None):
        """x (B, T, d) -> (x (B, T, d), BlockInternals or None); probabilities as return_internals."""
        probs_wanted = return_internals if return_probs is None else return_probs
        a, probs = self.attn(self.attn_norm(x), rope=rope, cache=cache, layer=layer, backend=backend,
                             causal=causal, mask=mask, return_probs=probs_wanted)
        a = F.dropout(a, self.dropout, self.training)
        x = x + a                                                                 # (B, T, d)
        h, inner = self.mlp_norm(x), None
        if return_internals and self.mlp_internals:
            m, inner = self.mlp(h, return_internals=True)                         # (B, T, d), routing
        else:
            m = self.mlp(h)                                                       # (B, T, d)
        m = F.dropout(m, self.dropout, self.training)
        x = x + m                                                                 # (B, T, d)
        return x, (BlockInternals(a, m, probs, inner) if return_internals else None)
