"""Data and model files, offline: the Wikipedia sample and other gensim corpora (corpus),
character vocabularies and windows for the live training runs (char_data), MiniLM's files
(minilm) and Llama-architecture GGUF files such as SmolLM2's (gguf_file)."""
