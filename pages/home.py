"""Home: what the atlas covers, one card per topic page, and the device it runs on."""

import streamlit as st

from app import cache, ui
from app.i18n import t, tr
from app.navigation import SECTIONS, section_pages

ui.page_header(
    t("LLM Atlas"),
    t("How large language models work inside, shown by running **real models and real "
      "kernels** on the machine serving this page. Every number here is computed or "
      "measured on the spot, on the GPU when there is one."),
)

info = cache.device_info()
if info.kind == "cpu":
    st.info(t("This server computes on its **CPU** ({name}, {threads} torch threads): timings on these "
              "pages are CPU timings, and kernel pages also show GPU results recorded earlier. "
              "torch {torch}", name=ui.escape(info.name), threads=info.cpu_threads, torch=info.torch_version),
            icon=":material/computer:")
else:
    st.info(t("This server computes on **{device}** · torch {torch}",
              device=ui.escape(ui.device_label(info)), torch=info.torch_version), icon=":material/memory:")

for section in SECTIONS:
    specs = section_pages(section)
    if not specs:
        continue
    st.subheader(tr(section))
    columns = st.columns(3)
    for i, spec in enumerate(specs):
        with columns[i % 3].container(border=True):
            st.page_link(spec.script, label=f"**{tr(spec.title)}**", icon=spec.icon)
            st.caption(tr(spec.teaser))

ui.page_footer(
    t("Pick a topic in the sidebar or on a card. Pages start with a small default that "
      "shows something within seconds on a laptop CPU; heavier runs (training, benchmarks) "
      "start when you press their button and show their progress. The sidebar says which "
      "device computes: on a CPU, timings are CPU timings, and pages show GPU results "
      "recorded earlier where they have them."),
    [
        ("Vaswani et al. 2017, Attention Is All You Need", "https://arxiv.org/abs/1706.03762"),
        ("Dao 2023, FlashAttention-2", "https://arxiv.org/abs/2307.08691"),
        ("Rajbhandari et al. 2020, ZeRO", "https://arxiv.org/abs/1910.02054"),
        ("DeepSeek-AI 2024, DeepSeek-V3 Technical Report", "https://arxiv.org/abs/2412.19437"),
    ],
)
