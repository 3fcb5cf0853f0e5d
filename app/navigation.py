"""The atlas's pages: one registry that main.py, the home page and the tests read.

Adding a page = adding its script under pages/ and one PageSpec here. The page
smoke tests and the browser test iterate over this registry, and a test fails
if a script in pages/ is missing from it, so no page escapes the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

SECTIONS = ("Text & embeddings", "Architectures", "Kernels & systems", "Training memory")


@dataclass(frozen=True)
class PageSpec:
    path: str        # script file name under pages/
    title: str       # shown in the sidebar, on the home card, and as the page title
    icon: str        # Streamlit material icon, e.g. ":material/token:"
    section: str     # one of SECTIONS ("" for the home page)
    teaser: str      # one line for the home page card

    @property
    def script(self) -> str:
        """Path relative to app/main.py, as st.Page, st.page_link and AppTest want it."""
        return f"../pages/{self.path}"


HOME = PageSpec("home.py", "LLM Atlas", ":material/explore:", "", "What the atlas covers.")

PAGES: tuple[PageSpec, ...] = (
    # Text & embeddings
    # Architectures
    # Kernels & systems
    # Training memory
)


def all_pages() -> tuple[PageSpec, ...]:
    """Home first, then the topic pages in section order."""
    ordered = sorted(PAGES, key=lambda p: SECTIONS.index(p.section))
    return (HOME, *ordered)


def build_navigation():
    """st.navigation over all pages, grouped by section (sections without pages are left out)."""
    groups: dict[str, list] = {"": [st.Page(HOME.script, title=HOME.title, icon=HOME.icon, default=True)]}
    for section in SECTIONS:
        pages = [st.Page(p.script, title=p.title, icon=p.icon) for p in PAGES if p.section == section]
        if pages:
            groups[section] = pages
    return st.navigation(groups, expanded=True)
