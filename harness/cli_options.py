"""Command-line options that several commands share, declared once so they read alike."""

from __future__ import annotations

from typing import Annotated

import typer

# run, collect, serve and `policies check` all build a policy from KEY=VALUE pairs
PolicyArgs = Annotated[
    list[str] | None,
    typer.Option("--policy-arg", help="Policy option KEY=VALUE (repeatable)."),
]
