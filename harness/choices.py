"""Checking a command-line word against a fixed set of choices, with one error shape for all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from refinevla_bench.harness.errors import HarnessError

Choice = TypeVar("Choice", bound=str)


def one_of(value: str, choices: Sequence[Choice], option: str) -> Choice:
    """`value` typed as the matching choice; otherwise an error naming the option and choices.

    `option` is how a user sets it: "--keep" or "--policy-arg robot"."""
    for choice in choices:
        if value == choice:
            return choice
    separator = "=" if option.startswith("--policy-arg ") else " "
    raise HarnessError(f"unknown {option} '{value}'", f"use {option}{separator}{'|'.join(choices)}")
