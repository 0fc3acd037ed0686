"""What `--base` names: a hub id or local folder of a VLM, or `tiny:FAMILY`, a tiny randomly
initialised model of that family whose tokenizer is trained on the dataset's own text.

`tiny:` exists for smoke runs and CI (the whole loop on a CPU, no download). Its folder is
keyed by a hash of the family and the text, under the user cache, so runs on the same data
(lambda 0 and lambda 1, a resumed run) start from the identical base.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.train.examples import AnnotatedDataset, read_rationales
from refinevla_bench.train.tiny import DEFAULT_CORPUS, TINY_FAMILIES, build_tiny_base

TINY_PREFIX = "tiny:"
CORPUS_EPISODES = 32  # enough text for the tokenizer's merges, read in a second


def tiny_bases_dir() -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "refinevla-bench" / "tiny-bases"


def dataset_corpus(dataset: AnnotatedDataset) -> list[str]:
    """Instructions and distinct rationales of the first episodes, in a stable order."""
    texts: dict[str, None] = dict.fromkeys(DEFAULT_CORPUS)
    for index in dataset.episode_indices[:CORPUS_EPISODES]:
        location = dataset.location(index)
        texts.update(dict.fromkeys(location.row.tasks))
        if dataset.has_reasoning:
            texts.update(dict.fromkeys(text for text in read_rationales(location) if text))
    return list(texts)


def resolve_base(
    base: str, dataset: AnnotatedDataset, is_main: bool, wait: Callable[[], None]
) -> str:
    """The folder or hub id to load; builds a `tiny:` base once (main process) if needed."""
    if not base.startswith(TINY_PREFIX):
        return base
    family = base.removeprefix(TINY_PREFIX) or "paligemma"
    if family not in TINY_FAMILIES:
        raise HarnessError(
            f"no tiny model of family '{family}'",
            f"use --base {' or '.join(TINY_PREFIX + known for known in TINY_FAMILIES)}",
        )
    corpus = dataset_corpus(dataset)
    digest = hashlib.sha256("\n".join([family, *corpus]).encode()).hexdigest()[:16]
    folder = tiny_bases_dir() / f"{family}-{digest}"
    if is_main and not (folder / "config.json").is_file():
        staging = folder.with_name(f".{folder.name}.{os.getpid()}")
        build_tiny_base(staging, family, corpus)
        staging.replace(folder)  # a killed build never leaves a folder that looks complete
    wait()
    return str(folder)
