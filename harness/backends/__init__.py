"""Simulator backends: turn a suite's task spec into a running, batched environment."""
