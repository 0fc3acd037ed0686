"""Read RLDS datasets stored by TFDS (the Open X-Embodiment originals) as `EpisodeView`s.

RLDS keeps one tf.train.Example per episode with its steps flattened: `steps/action` holds
every step's action back to back, `steps/observation/image_0` one encoded image per step.
Mapped to an episode view:
- instruction: the first step's `language_instruction`, else `observation/natural_language_
  instruction` (Fractal);
- actions: `steps/action`, or for dict actions RT-1's world_vector + rotation_delta +
  gripper_closedness_action when present, else every numeric `steps/action/*` in name order;
- state: each numeric `steps/observation/<name>` as `observation.<name>`;
- cameras: the RGB image features under `steps/observation/` (as features.json declares them;
  without it, any PNG/JPEG bytes there), as `observation.images.<name>`;
- metadata: `episode_metadata/<name>` values (text decoded, one-element lists unwrapped).
RLDS does not record a control rate; known datasets get theirs, others need `fps`.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.datasets.episode import IMAGE_PREFIX, EpisodeView, FrameLoader
from refinevla_bench.harness.datasets.image_codec import decode_image
from refinevla_bench.harness.datasets.tf_example import FeatureValue, parse_example
from refinevla_bench.harness.datasets.tfds_layout import (
    FEATURES_FILE,
    INFO_FILE,
    VERSION,
    feature_tree,
    find_split,
    read_json,
    version_folder,
)
from refinevla_bench.harness.datasets.tfrecord import TFRecordFile
from refinevla_bench.harness.errors import HarnessError

KNOWN_CONTROL_RATES_HZ = {"bridge_dataset": 5.0, "bridge": 5.0, "fractal20220817_data": 3.0}
OBSERVATION = "steps/observation/"
ACTION = "steps/action"
RT1_ACTION_PARTS = ("world_vector", "rotation_delta", "gripper_closedness_action")
INSTRUCTION_KEYS = ("steps/language_instruction", "steps/observation/natural_language_instruction")
LENGTH_KEYS = ("steps/is_first", "steps/is_last", *INSTRUCTION_KEYS)
METADATA_PREFIX = "episode_metadata/"
IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff")  # PNG, JPEG


class RldsDataset:
    """An `EpisodeSource` over one split; episodes are numbered in shard order from 0."""

    def __init__(self, root: Path, *, split: str = "train", fps: float | None = None) -> None:
        folder = version_folder(root)
        info = read_json(folder / INFO_FILE)
        default_name = folder.parent.name if VERSION.match(folder.name) else folder.name
        self.name = str(info.get("name") or default_name)
        rate = fps or KNOWN_CONTROL_RATES_HZ.get(self.name)
        if rate is None:
            raise HarnessError(
                f"RLDS dataset {self.name} does not record its control rate",
                "pass fps (steps per second) when opening it",
            )
        self.fps = float(rate)
        features_path = folder / FEATURES_FILE
        self._tree = feature_tree(read_json(features_path)) if features_path.is_file() else None
        found = find_split(folder, info, self.name, split)
        self._shards = [TFRecordFile(path) for path in found.shards]
        lengths = found.shard_lengths or [len(shard.offsets()) for shard in self._shards]
        self._shard_starts = [0, *itertools.accumulate(lengths)]

    def __len__(self) -> int:
        return self._shard_starts[-1]

    def __iter__(self) -> Iterator[EpisodeView]:
        index = 0
        for shard in self._shards:
            for record in shard:
                yield self._view(index, record, shard.path)
                index += 1

    def episode(self, index: int) -> EpisodeView:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name} has {len(self)} episodes, not episode {index}")
        number = bisect.bisect_right(self._shard_starts, index) - 1
        shard = self._shards[number]
        try:
            record = shard.record(index - self._shard_starts[number])
        except IndexError as error:
            raise HarnessError(
                f"{shard.path} holds fewer episodes than dataset_info.json lists",
                "download the dataset again; its shards and dataset_info.json disagree",
            ) from error
        return self._view(index, record, shard.path)

    def _view(self, index: int, record: bytes, shard: Path) -> EpisodeView:
        try:
            return self._decode(index, parse_example(record), shard)
        except ValueError as error:  # malformed protobuf, or values that do not fit the steps
            raise HarnessError(
                f"{shard}: episode {index} is not a valid RLDS episode ({error})",
                "download this shard again",
            ) from error

    def _decode(self, index: int, example: Mapping[str, FeatureValue], shard: Path) -> EpisodeView:
        steps = _episode_length(example, shard, index)
        shapes = self._tree.shapes if self._tree else {}
        state = {
            "observation." + key.removeprefix(OBSERVATION).replace("/", "."): _per_step(
                value, steps, shapes.get(key)
            ).astype(np.float64)
            for key, value in example.items()
            if key.startswith(OBSERVATION) and isinstance(value, np.ndarray)
        }
        images = {
            IMAGE_PREFIX + key.removeprefix(OBSERVATION).replace("/", "."): value
            for key, value in example.items()
            if key.startswith(OBSERVATION)
            and isinstance(value, list)
            and self._is_rgb_image(key, value)
        }
        return EpisodeView(
            dataset=self.name,
            index=index,
            instruction=_instruction(example),
            fps=self.fps,
            actions=_actions(example, steps, shard, index),
            state=state,
            cameras=tuple(sorted(images)),  # image_0, Bridge's main camera, first
            metadata=_metadata(example),
            load_frames=_image_loader(images),
        )

    def _is_rgb_image(self, key: str, value: list[bytes]) -> bool:
        if self._tree is not None:
            return key in self._tree.rgb_images
        return bool(value) and value[0].startswith(IMAGE_SIGNATURES)


def _episode_length(example: Mapping[str, FeatureValue], shard: Path, index: int) -> int:
    for key in LENGTH_KEYS:
        if key in example:
            return len(example[key])
    raise HarnessError(
        f"{shard}: episode {index} has none of {LENGTH_KEYS}, so its length is unknown",
        "use an RLDS dataset (steps with is_first/is_last or a language instruction)",
    )


def _per_step(
    values: npt.NDArray[Any], steps: int, shape: Sequence[int] | None
) -> npt.NDArray[Any]:
    """(steps, ...) values; the per-step shape from features.json when it fits."""
    if shape is not None and -1 not in shape and int(np.prod(shape)) * steps == values.size:
        return values.reshape(steps, *shape)
    if steps == 0 or values.size % steps:
        raise ValueError(f"{values.size} values do not split into {steps} steps")
    return values.reshape(steps, -1)


def _actions(
    example: Mapping[str, FeatureValue], steps: int, shard: Path, index: int
) -> npt.NDArray[np.float32]:
    whole = example.get(ACTION)
    if isinstance(whole, np.ndarray):
        return _per_step(whole, steps, None).astype(np.float32)
    numeric = {
        key.removeprefix(ACTION + "/"): value
        for key, value in example.items()
        if key.startswith(ACTION + "/") and isinstance(value, np.ndarray)
    }
    if not numeric:
        raise HarnessError(
            f"{shard}: episode {index} has no numeric {ACTION} feature",
            "use an RLDS dataset recorded with actions",
        )
    names = RT1_ACTION_PARTS if set(RT1_ACTION_PARTS) <= set(numeric) else sorted(numeric)
    parts = [_per_step(numeric[name], steps, None) for name in names]
    return np.concatenate(parts, axis=1).astype(np.float32)


def _instruction(example: Mapping[str, FeatureValue]) -> str:
    for key in INSTRUCTION_KEYS:
        value = example.get(key)
        if isinstance(value, list) and value:
            return value[0].decode("utf-8", errors="replace")
    return ""


def _metadata(example: Mapping[str, FeatureValue]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for key, value in example.items():
        if not key.startswith(METADATA_PREFIX):
            continue
        if isinstance(value, list):
            items: list[Any] = [item.decode("utf-8", errors="replace") for item in value]
        else:
            items = value.tolist()
        name = key.removeprefix(METADATA_PREFIX).replace("/", ".")
        metadata[name] = items[0] if len(items) == 1 else items
    return metadata


def _image_loader(images: Mapping[str, list[bytes]]) -> FrameLoader:
    def load_frames(camera: str, steps: Sequence[int]) -> npt.NDArray[np.uint8]:
        return np.stack([decode_image(images[camera][step]) for step in steps])

    return load_frames
