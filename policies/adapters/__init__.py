"""Adapters for published VLA policies (OpenVLA, SpatialVLA, pi0, Octo, RT-1/RT-1-X).

Each adapter keeps two parts apart: a model runner that imports its heavy framework (torch and
a pinned transformers, JAX, TensorFlow) only when constructed, and a pure-numpy decoder that
turns the model's raw outputs into actions in the conventions the adapter declares. The decoders
are what the convention tests check against the upstream rules; the runners need weights.
"""
