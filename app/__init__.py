"""LLM Atlas UI: the Streamlit entry (main.py), navigation, shared widgets and caches."""
