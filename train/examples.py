"""Training examples from a reasoning-enriched LeRobot dataset, read lazily per episode.

`refinevla-bench annotate D` writes D/annotations/<teacher>/dataset: the source dataset plus a
per-step `reasoning` text column. Every step becomes one `TrainingExample` (full camera frame,
instruction, rationale, action); the model's processor resizes frames, not this module.

Frames are decoded one whole episode at a time (an mp4 is cheapest to decode front to back)
and only a few decoded episodes are kept. So that a batch still mixes episodes, the training
order shuffles the episodes, then shuffles the steps within windows of `episodes_in_memory`
consecutive episodes: each window is decoded once per epoch.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch.utils.data

from refinevla_bench.harness.datasets.features import features_from_info
from refinevla_bench.harness.datasets.lerobot_episodes import (
    EpisodeLocation,
    locate_v2_episodes,
    locate_v3_episodes,
)
from refinevla_bench.harness.datasets.lerobot_meta import (
    CONSOLIDATED_VERSIONS,
    INFO_PATH,
    PER_EPISODE_VERSIONS,
    load_info,
)
from refinevla_bench.harness.datasets.lerobot_reader import ACTION_KEY, LeRobotDataset
from refinevla_bench.harness.datasets.parquet_columns import numpy_column
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.train.action_tokens import ActionStats
from refinevla_bench.train.vla import TrainingExample

# Names the `annotate` command writes (teacher/outputs.py, teacher/commands.py); repeated here so
# that training does not import the teacher package and its API dependencies.
ANNOTATIONS_DIR = "annotations"
MERGED_DIR = "dataset"
ANNOTATION_MANIFEST = "manifest.json"
REASONING_COLUMN = "reasoning"
DEFAULT_EVAL_FRACTION = 0.05


@dataclass(frozen=True)
class AnnotatedDataset:
    """A LeRobot dataset located for training: its episodes, and where its rationales came from."""

    root: Path
    annotation_dir: Path | None  # the annotation run whose merged dataset this is, if any
    locations: Mapping[int, EpisodeLocation]  # by episode index, in dataset order
    has_reasoning: bool
    camera: str

    @property
    def episode_indices(self) -> tuple[int, ...]:
        return tuple(self.locations)

    def location(self, episode_index: int) -> EpisodeLocation:
        found = self.locations.get(episode_index)
        if found is None:
            raise IndexError(f"{self.root} has no episode {episode_index}")
        return found

    def annotation_manifest(self) -> dict[str, Any] | None:
        """The teacher's manifest (teacher, model, prompt version, counts), for the run record."""
        if self.annotation_dir is None:
            return None
        path = self.annotation_dir / ANNOTATION_MANIFEST
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return manifest


def locate_training_data(path: Path) -> Path:
    """The LeRobot folder to train on, from what a user may pass as --data: the merged dataset
    itself, its annotation folder, or the source dataset D with one annotation run."""
    if not path.is_dir():
        raise HarnessError(f"--data {path} is not a folder", "pass a dataset folder")
    if (path / ANNOTATION_MANIFEST).is_file() and (path / MERGED_DIR / INFO_PATH).is_file():
        return path / MERGED_DIR
    annotations = path / ANNOTATIONS_DIR
    merged = sorted(info.parent.parent for info in annotations.glob(f"*/{MERGED_DIR}/{INFO_PATH}"))
    if len(merged) > 1:
        choices = ", ".join(str(folder) for folder in merged)
        raise HarnessError(
            f"{path} has {len(merged)} annotated datasets: {choices}",
            f"pass the one to train on, e.g. --data {merged[0]}",
        )
    if merged:
        return merged[0]
    if (path / INFO_PATH).is_file():
        return path
    raise HarnessError(
        f"{path} is not a LeRobot dataset (no {INFO_PATH}) and has no {ANNOTATIONS_DIR}/*/"
        f"{MERGED_DIR}",
        "pass a dataset written by `refinevla-bench collect` and annotated by "
        "`refinevla-bench annotate`, or its annotations/<teacher>/dataset folder",
    )


def open_annotated_dataset(root: Path, camera: str | None = None) -> AnnotatedDataset:
    """Index a LeRobot dataset without reading its episodes; `camera` defaults to the first."""
    info = load_info(root)
    features = features_from_info(info)
    version = info.get("codebase_version")
    if version in PER_EPISODE_VERSIONS:
        locations = locate_v2_episodes(root, info, features)
    elif version in CONSOLIDATED_VERSIONS:
        locations = locate_v3_episodes(root, info, features)
    else:
        raise HarnessError(
            f"{root} is LeRobot codebase_version {version}",
            "train on the v2.1 dataset `annotate` writes (or a v3.0 conversion)",
        )
    cameras = [name for name, spec in features.items() if spec.is_camera]
    if not cameras:
        raise HarnessError(f"{root} has no camera feature", "train on a dataset with images")
    chosen = camera or cameras[0]
    if chosen not in cameras:
        raise HarnessError(
            f"{root} has no camera {chosen}", f"pass --camera with one of {', '.join(cameras)}"
        )
    if not locations:
        raise HarnessError(f"{root} has no episodes", "collect episodes into it first")
    reasoning = features.get(REASONING_COLUMN)
    annotation_dir = root.parent if (root.parent / ANNOTATION_MANIFEST).is_file() else None
    return AnnotatedDataset(
        root=root,
        annotation_dir=annotation_dir,
        locations={location.row.index: location for location in locations},
        has_reasoning=reasoning is not None and reasoning.is_string,
        camera=chosen,
    )


def read_episode_columns(location: EpisodeLocation, names: Sequence[str]) -> pa.Table:
    """Some columns of one episode, in frame order, without reading the others."""
    schema = pq.read_schema(location.data_file)
    bookkeeping = [name for name in ("episode_index", "frame_index") if name in schema.names]
    table = pq.read_table(location.data_file, columns=[*names, *bookkeeping])
    if "episode_index" in bookkeeping:
        table = table.filter(pc.equal(table["episode_index"], pa.scalar(location.row.index)))
    if "frame_index" in bookkeeping:
        table = table.sort_by("frame_index")
    return table


def read_rationales(location: EpisodeLocation) -> list[str]:
    """One rationale per step; "" where the teacher wrote none (its loss is then masked)."""
    column = read_episode_columns(location, [REASONING_COLUMN])[REASONING_COLUMN]
    return [text or "" for text in column.to_pylist()]


@dataclass(frozen=True)
class EpisodeSplit:
    """Held-out by episode, so no evaluation step shares a trajectory with a training step."""

    train: tuple[int, ...]
    eval: tuple[int, ...]


def split_episodes(
    indices: Sequence[int], *, eval_episodes: int | None, eval_fraction: float | None, seed: int
) -> EpisodeSplit:
    """A deterministic split: the same episodes are held out for the same seed and count."""
    if eval_episodes is not None and eval_fraction is not None:
        raise HarnessError(
            "both --eval-episodes and --eval-fraction given", "pass only one of them"
        )
    if eval_episodes is None:
        fraction = DEFAULT_EVAL_FRACTION if eval_fraction is None else eval_fraction
        if not 0 <= fraction < 1:
            raise HarnessError(f"--eval-fraction {fraction} is outside [0, 1)", "use e.g. 0.05")
        eval_episodes = max(1, round(fraction * len(indices))) if fraction > 0 else 0
    if not 0 <= eval_episodes < len(indices):
        raise HarnessError(
            f"cannot hold out {eval_episodes} of {len(indices)} episodes and still train",
            f"pass --eval-episodes between 0 and {len(indices) - 1}",
        )
    shuffled = np.random.default_rng(seed).permutation(np.asarray(indices, dtype=np.int64))
    held_out = {int(index) for index in shuffled[:eval_episodes]}
    return EpisodeSplit(
        train=tuple(index for index in indices if index not in held_out),
        eval=tuple(sorted(held_out)),
    )


def training_action_stats(dataset: AnnotatedDataset, episodes: Sequence[int]) -> ActionStats:
    """Action statistics of the given (training) episodes only: held-out actions stay unseen."""
    actions = [
        numpy_column(read_episode_columns(dataset.location(index), [ACTION_KEY])[ACTION_KEY])
        for index in episodes
    ]
    stacked = np.concatenate([chunk.reshape(len(chunk), -1) for chunk in actions])
    return ActionStats.from_actions(stacked.astype(np.float64))


@dataclass(frozen=True)
class DecodedEpisode:
    instruction: str
    frames: npt.NDArray[np.uint8]  # (length, height, width, 3)
    rationales: list[str]
    actions: npt.NDArray[np.float32]  # (length, action_dim)

    def example(self, step: int) -> TrainingExample:
        return TrainingExample(
            image=self.frames[step],
            instruction=self.instruction,
            rationale=self.rationales[step],
            action=self.actions[step],
        )


class EpisodeReader:
    """Decodes whole episodes and keeps the last `capacity` of them."""

    def __init__(self, dataset: AnnotatedDataset, capacity: int) -> None:
        if capacity < 1:
            raise HarnessError(f"episodes in memory {capacity} < 1", "keep at least 1 episode")
        self.dataset = dataset
        self.capacity = capacity
        self._source = LeRobotDataset(dataset.root)
        self._cache: OrderedDict[int, DecodedEpisode] = OrderedDict()

    def episode(self, index: int) -> DecodedEpisode:
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        decoded = self.decode(index, range(self.dataset.location(index).row.length))
        self._cache[index] = decoded
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return decoded

    def decode(self, index: int, steps: Sequence[int]) -> DecodedEpisode:
        """Only the given steps of an episode (the held-out samples), not cached."""
        view = self._source.episode(index)
        if self.dataset.has_reasoning:
            all_rationales = read_rationales(self.dataset.location(index))
        else:
            all_rationales = [""] * view.length
        return DecodedEpisode(
            instruction=view.instruction,
            frames=view.frames(steps, self.dataset.camera),
            rationales=[all_rationales[step] for step in steps],
            actions=view.actions[list(steps)],
        )


class TrainingSteps(torch.utils.data.Dataset[TrainingExample]):
    """Every step of some episodes, indexed flat in episode order."""

    def __init__(self, reader: EpisodeReader, episodes: Sequence[int]) -> None:
        self.reader = reader
        self.episodes = tuple(episodes)
        lengths = [reader.dataset.location(index).row.length for index in self.episodes]
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, flat_index: int) -> TrainingExample:
        if not 0 <= flat_index < len(self):
            raise IndexError(f"step {flat_index} outside {len(self)} steps")
        position = int(np.searchsorted(self.offsets, flat_index, side="right")) - 1
        step = flat_index - int(self.offsets[position])
        return self.reader.episode(self.episodes[position]).example(step)


class WindowedShuffle:
    """Per epoch: episodes shuffled, then steps shuffled within windows of `window` episodes."""

    def __init__(self, lengths: npt.NDArray[np.int64], window: int, seed: int) -> None:
        self.lengths = lengths
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.window = window
        self.seed = seed
        self._epoch: tuple[int, npt.NDArray[np.int64]] | None = None

    @property
    def steps_per_epoch(self) -> int:
        return int(self.offsets[-1])

    def epoch_order(self, epoch: int) -> npt.NDArray[np.int64]:
        rng = np.random.default_rng([self.seed, epoch])
        episodes = rng.permutation(len(self.lengths))
        windows = []
        for start in range(0, len(episodes), self.window):
            members = episodes[start : start + self.window]
            steps = np.concatenate(
                [np.arange(self.offsets[i], self.offsets[i + 1]) for i in members]
            )
            windows.append(rng.permutation(steps))
        return np.concatenate(windows).astype(np.int64)

    def at(self, position: int) -> int:
        """The step at a position of the endless stream of epochs."""
        epoch, offset = divmod(position, self.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, self.epoch_order(epoch))
        return int(self._epoch[1][offset])


class StepSampler(torch.utils.data.Sampler[int]):
    """One process's share of the stream, from a given micro-batch on (for resuming).

    Micro-batch m of process p holds stream positions [(m * P + p) * B, ... + B): the global
    order is the same for any number of processes, and no step is skipped or seen twice.
    """

    def __init__(
        self,
        order: WindowedShuffle,
        batch_size: int,
        *,
        process_index: int,
        num_processes: int,
        start_batch: int,
    ) -> None:
        self.order = order
        self.batch_size = batch_size
        self.process_index = process_index
        self.num_processes = num_processes
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[int]:
        batch = self.start_batch
        while True:
            first = (batch * self.num_processes + self.process_index) * self.batch_size
            for position in range(first, first + self.batch_size):
                yield self.order.at(position)
            batch += 1


def held_out_examples(
    reader: EpisodeReader, episodes: Sequence[int], count: int
) -> list[TrainingExample]:
    """`count` steps spread evenly over the held-out episodes, decoded once for every eval."""
    lengths = [reader.dataset.location(index).row.length for index in episodes]
    total = sum(lengths)
    if not total or count <= 0:
        return []
    positions = sorted({round(p) for p in np.linspace(0, total - 1, min(count, total))})
    examples: list[TrainingExample] = []
    start = 0
    for index, length in zip(episodes, lengths, strict=True):
        steps = [p - start for p in positions if start <= p < start + length]
        if steps:
            decoded = reader.decode(index, steps)
            examples.extend(decoded.example(i) for i in range(len(steps)))
        start += length
    return examples
