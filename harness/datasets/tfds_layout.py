"""A TFDS dataset folder (as tensorflow_datasets writes RLDS datasets) read from its JSON files.

`<name>/<version>/` holds dataset_info.json (splits, with the number of episodes per shard),
features.json (the nested feature tree) and shards `<name>-<split>.tfrecord-00000-of-00064`.
Each feature is serialized under its path in the tree, e.g. `steps/observation/image_0`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinevla_bench.harness.errors import HarnessError

INFO_FILE = "dataset_info.json"
FEATURES_FILE = "features.json"
SHARD_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
VERSION = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class Split:
    shards: tuple[Path, ...]
    shard_lengths: tuple[int, ...] | None  # episodes per shard, when dataset_info.json says


def is_tfds_folder(path: Path) -> bool:
    return (path / INFO_FILE).is_file() or any(path.glob("*.tfrecord*"))


def version_folder(root: Path) -> Path:
    """`root` itself, or its newest version folder when given `<name>/` instead."""
    if is_tfds_folder(root):
        return root
    versions = [child for child in root.glob("*") if VERSION.match(child.name)]
    versions = [child for child in versions if is_tfds_folder(child)]
    if not versions:
        raise HarnessError(
            f"{root} is not a TFDS dataset (no {INFO_FILE} or *.tfrecord* files)",
            "pass the dataset's version folder, e.g. .../bridge_dataset/1.0.0",
        )
    return max(versions, key=lambda child: tuple(int(part) for part in child.name.split(".")))


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        payload: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise HarnessError(f"{path} is not valid JSON ({error})", "download it again") from error
    return payload


def find_split(folder: Path, info: Mapping[str, Any], name: str, split: str) -> Split:
    """The split's shards in order: named by dataset_info.json, else found by name."""
    entry = next((item for item in info.get("splits", []) if item.get("name") == split), None)
    lengths = entry.get("shardLengths") if entry else None
    if entry is not None and lengths:
        template = str(entry.get("filepathTemplate") or SHARD_TEMPLATE)
        file_format = str(info.get("fileFormat") or "tfrecord")
        total = len(lengths)
        shards = tuple(
            folder
            / template.replace("{DATASET}", name)
            .replace("{SPLIT}", split)
            .replace("{FILEFORMAT}", file_format)
            .replace("{SHARD_X_OF_Y}", f"{index:05d}-of-{total:05d}")
            for index in range(total)
        )
        return Split(shards, tuple(int(length) for length in lengths))
    found = tuple(sorted(folder.glob(f"*-{split}.tfrecord*")))
    if not found:
        raise HarnessError(
            f"{folder} has no shards of split '{split}'",
            "choose a split the dataset has, or download its *.tfrecord* files",
        )
    return Split(found, None)


@dataclass(frozen=True)
class FeatureTree:
    """What features.json says about the serialized features, by serialized name."""

    rgb_images: frozenset[str]  # encoded images with 3 channels (not depth or masks)
    shapes: Mapping[str, tuple[int, ...]]  # tensors, per step for those under `steps/`


def feature_tree(features: Mapping[str, Any]) -> FeatureTree:
    images: set[str] = set()
    shapes: dict[str, tuple[int, ...]] = {}

    def visit(node: Mapping[str, Any], path: str) -> None:
        if "image" in node:
            if _dimensions(node["image"])[-1:] in ((3,), (-1,)):
                images.add(path)
        elif "tensor" in node:
            shapes[path] = _dimensions(node["tensor"])
        for child_name, child in node.get("featuresDict", {}).get("features", {}).items():
            visit(child, f"{path}/{child_name}" if path else child_name)
        if "sequence" in node:  # RLDS `steps`: serialized under the sequence's own name
            visit(node["sequence"].get("feature", {}), path)

    visit(features, "")
    return FeatureTree(frozenset(images), shapes)


def _dimensions(spec: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(int(size) for size in spec.get("shape", {}).get("dimensions", []))
