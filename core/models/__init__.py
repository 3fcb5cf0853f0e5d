"""Models and topics, one module per page topic: each keeps only what makes it different
and builds the rest from core/nn (blocks) and core/train (loop, schedules).

sequence_models, sequence_probes (RNN vs Transformer), mla, mtp, moe, packing,
vision_tokens, embeddings, word2vec, contrastive, bpe (trained tokenizer).
"""
