"""Measurements and runs: what is measured on a real run, next to its prediction.

activations (saved-for-backward bytes by category, checkpointing), zero and zero_worker
(real torch.distributed ZeRO/FSDP runs), timing (warm-up, repeats, median; CUDA events;
tracked tensor bytes on a CPU), sequence_timing (RNN vs Transformer cost vs length),
attention_bench (the FlashAttention benchmark runner) and llm_runs (SmolLM2 measured:
KV cache, attention backends, fine-tuning memory, FP8 perplexity).
"""
