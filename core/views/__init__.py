"""Page-only view models: data shaped for one picture, no model logic.

tiling (the FlashAttention page's walkthrough of real tiles and the running softmax),
tokens (the coloured token view as escaped HTML), sequences (the RNN vs Transformer page's
tables and curves) and images (pixels as a PNG data URI).
"""
