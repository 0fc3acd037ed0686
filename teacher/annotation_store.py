"""The annotation output folder on disk.

    <out>/episodes/episode_000042.json   one AnnotationRecord per episode
    <out>/manifest.json                  what produced the folder, counts, tokens, cost
    <out>/prompt-<version>.txt           the full prompt templates the records were asked with
    <out>/cache/                         the default reply cache (see cache.py)

Every file is replaced atomically (temporary file, fsync, rename), so a kill at any moment
leaves each file either absent, old or new: never half written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from refinevla_bench.harness.datasets.atomic_files import (
    write_bytes_atomically,
    write_json_atomically,
)
from refinevla_bench.teacher.schema import AnnotationRecord

EPISODES_DIR = "episodes"
MANIFEST_NAME = "manifest.json"
CACHE_DIR = "cache"


def record_path(out_dir: Path, episode_index: int) -> Path:
    return out_dir / EPISODES_DIR / f"episode_{episode_index:06d}.json"


def prompt_path(out_dir: Path, prompt_version: str) -> Path:
    return out_dir / f"prompt-{prompt_version}.txt"


def manifest_path(out_dir: Path) -> Path:
    return out_dir / MANIFEST_NAME


def read_record(path: Path) -> AnnotationRecord | None:
    """The record at `path`; None when absent or unreadable (then it is annotated again)."""
    try:
        return AnnotationRecord.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None


def load_records(out_dir: Path) -> Iterator[AnnotationRecord]:
    """Every readable record of the folder, in episode order."""
    for path in sorted((out_dir / EPISODES_DIR).glob("episode_*.json")):
        record = read_record(path)
        if record is not None:
            yield record


def write_record(out_dir: Path, record: AnnotationRecord) -> None:
    path = record_path(out_dir, record.episode_index)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(path, record.model_dump(mode="json"), indent=2, sort_keys=True)


def write_manifest(out_dir: Path, manifest: Mapping[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(manifest_path(out_dir), manifest, indent=2, sort_keys=True)


def write_prompt(out_dir: Path, prompt_version: str, text: str) -> None:
    """Store the templates once per version; an identical copy is left untouched."""
    path = prompt_path(out_dir, prompt_version)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    write_bytes_atomically(path, text.encode("utf-8"))
