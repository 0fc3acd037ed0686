"""Tiny stand-ins for checkpoints that ship their own model code (OpenVLA, SpatialVLA).

Each folder holds the Python files a published checkpoint names in its `auto_map`, written
from scratch for transformers 5 with the published interface (class names, config fields,
module layout, forward arguments and behaviour) and tiny random weights. Tests copy them into
a checkpoint folder, so transformers imports them through its remote-code loader.
"""
