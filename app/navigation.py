"""The atlas's pages: one registry that main.py, the home page and the tests read.

Adding a page = adding its script under pages/ and one PageSpec here. The page
smoke tests and the browser test iterate over this registry, and a test fails
if a script in pages/ is missing from it, so no page escapes the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app.i18n import N_, tr

SECTIONS = (N_("Text & embeddings"), N_("Architectures"), N_("Kernels & systems"), N_("Training memory"))


@dataclass(frozen=True)
class PageSpec:
    path: str        # script file name under pages/
    title: str       # shown in the sidebar, on the home card, and as the page title (English msgid)
    icon: str        # Streamlit material icon, e.g. ":material/token:"
    section: str     # one of SECTIONS ("" for the home page)
    teaser: str      # one line for the home page card (English msgid; t() translates it)

    @property
    def script(self) -> str:
        """Path relative to app/main.py, as st.Page, st.page_link and AppTest want it."""
        return f"../pages/{self.path}"


HOME = PageSpec("home.py", N_("LLM Atlas"), ":material/explore:", "", N_("What the atlas covers."))

PAGES: tuple[PageSpec, ...] = (
    # Text & embeddings
    PageSpec("tokenization.py", N_("Tokenization"), ":material/token:", N_("Text & embeddings"),
             N_("Real tokenizers side by side, down to the bytes, and BPE trained merge by merge.")),
    PageSpec("embeddings.py", N_("Embedding neighbourhoods"), ":material/scatter_plot:", N_("Text & embeddings"),
             N_("Exact neighbours in MiniLM's spaces, projections, kNN graphs, and word2vec trained live.")),
    PageSpec("contrastive.py", N_("Contrastive learning"), ":material/compare_arrows:",
             N_("Text & embeddings"),
             N_("InfoNCE on MiniLM sentence pairs, the log N bound, and a CPC model trained live.")),
    # Architectures
    PageSpec("llm.py", N_("Inside a real LLM"), ":material/psychology:", N_("Architectures"),
             N_("SmolLM2-135M-Instruct on our own blocks: next-token odds, generation, attention, logit lens.")),
    PageSpec("rnn_vs_transformer.py", N_("RNN vs Transformer"), ":material/timeline:", N_("Architectures"),
             N_("RNN, LSTM, GRU and a Transformer trained live: unrolling, measured time, gradients, memory.")),
    PageSpec("mla.py", N_("Multi-head latent attention"), ":material/compress:", N_("Architectures"),
             N_("DeepSeek's latent KV cache: real bytes per token, and the absorbed form checked live.")),
    PageSpec("mtp.py", N_("Multi-token prediction"), ":material/fast_forward:", N_("Architectures"),
             N_("DeepSeek-V3's MTP modules trained live, then used to draft tokens for the main model.")),
    PageSpec("vision_tokens.py", N_("Vision tokens at native resolution"), ":material/grid_on:",
             N_("Architectures"), N_("Kimi-VL's 14-px patches, 2x2 merge and packing vs a fixed 336x336 encoder.")),
    PageSpec("moe_routing.py", N_("MoE routing"), ":material/hub:", N_("Architectures"),
             N_("DeepSeekMoE trained live three ways: expert load, aux-loss-free bias, routing heatmaps.")),
    # Kernels & systems
    PageSpec("flash_attention.py", N_("FlashAttention"), ":material/bolt:", N_("Kernels & systems"),
             N_("Our Triton FlashAttention-2: its tiles and online softmax, its memory traffic, its speed.")),
    PageSpec("packing.py", N_("Sequence packing"), ":material/view_agenda:", N_("Kernels & systems"),
             N_("Padding vs packing on real token lengths, cu_seqlens masks checked, speed measured.")),
    # Training memory
    PageSpec("training_memory.py", N_("Training memory"), ":material/memory:", N_("Training memory"),
             N_("ZeRO stages, activations and checkpointing, mixed precision and FP8: calculated, then measured.")),
)


def section_pages(section: str) -> tuple[PageSpec, ...]:
    """The pages of one section, in registry order (empty for a section without pages)."""
    return tuple(p for p in PAGES if p.section == section)


def all_pages() -> tuple[PageSpec, ...]:
    """Home first, then the topic pages in section order."""
    ordered = sorted(PAGES, key=lambda p: SECTIONS.index(p.section))
    return (HOME, *ordered)


def build_navigation():
    """st.navigation over all pages, grouped by section (sections without pages are left out),
    titles in the session's language."""
    groups: dict[str, list] = {"": [st.Page(HOME.script, title=tr(HOME.title), icon=HOME.icon, default=True)]}
    for section in SECTIONS:
        pages = [st.Page(p.script, title=tr(p.title), icon=p.icon) for p in section_pages(section)]
        if pages:
            groups[tr(section)] = pages
    return st.navigation(groups, expanded=True)
