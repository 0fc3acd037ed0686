"""Registers every Google Robot task environment (import after `import_maniskill`)."""

from refinevla_bench.harness.backends.google_robot import (
    apple_in_drawer,
    drawer,
    move_near,
    pick_coke_can,
)

__all__ = ["apple_in_drawer", "drawer", "move_near", "pick_coke_can"]
