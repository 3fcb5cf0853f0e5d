"""Page-only view models: data shaped for one picture, no model logic.

tiling (the FlashAttention page's walkthrough of real tiles and the running softmax) and
tokens (the coloured token view as escaped HTML).
"""
