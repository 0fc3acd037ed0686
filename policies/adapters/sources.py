"""Where an adapter's weights come from: a local directory or a Hugging Face hub id."""

from __future__ import annotations

import re
from pathlib import Path

from refinevla_bench.harness.errors import HarnessError

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def model_source(checkpoint: str) -> str:
    """An existing local path as is, or a hub id (`org/name`) for the framework to download."""
    path = Path(checkpoint).expanduser()
    if path.exists():
        return str(path)
    if _HUB_ID.fullmatch(checkpoint) and not checkpoint.startswith((".", "/")):
        return checkpoint
    raise HarnessError(
        f"checkpoint '{checkpoint}' is neither an existing path nor a hub id (org/name)",
        "pass --policy-arg checkpoint=PATH or --policy-arg checkpoint=ORG/NAME",
    )
