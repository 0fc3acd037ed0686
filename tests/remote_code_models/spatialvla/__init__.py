"""A tiny SpatialVLA checkpoint's code: a PaliGemma-like configuration and model."""
