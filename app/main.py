"""LLM Atlas: the Streamlit entry point.

Run with ``streamlit run app/main.py`` (or ``make run``). Puts the repository
root on sys.path, sets the page config, builds the navigation from
app/navigation.py, and shows the language switch (English / 简体中文, kept in the URL as
?lang=) and the device badge in the sidebar.
"""

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The project's own modules come after the sys.path insert above: they need the repo root on it.
import core  # noqa: F401  (offline environment defaults before any model library loads)
from app import cache, i18n, ui
from app.navigation import build_navigation

st.set_page_config(page_title=i18n.t("LLM Atlas"), page_icon=":material/explore:", layout="wide")
i18n.language_switch()
page = build_navigation()
ui.sidebar_device_badge(cache.device_info())
ui.run_safely(page)
