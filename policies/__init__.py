"""Policies: the batched protocol every policy speaks, the registry, and built-in adapters."""
