"""RLDS datasets in TFDS folders, read without TensorFlow.

The shards here are made by independent code: tf.train.Example messages from classes that
protoc generated from TensorFlow's own example.proto (shipped by the `tfrecord` package), and
record framing from TensorBoard's writer, which computes its CRC-32C in pure Python. So the
tests prove the reader takes what TensorFlow's schema and framing produce.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from tensorboard.summary.writer.record_writer import RecordWriter

from refinevla_bench.harness.datasets.open import open_dataset
from refinevla_bench.harness.datasets.rlds_reader import RldsDataset
from refinevla_bench.harness.datasets.tf_example import parse_example
from refinevla_bench.harness.errors import HarnessError

HEIGHT, WIDTH = 48, 64
Frames = npt.NDArray[np.uint8]


def load_tensorflow_example_classes() -> Any:
    """The generated module alone: the `tfrecord` package's __init__ would also import torch."""
    package = importlib.util.find_spec("tfrecord")
    assert package is not None and package.submodule_search_locations
    path = Path(next(iter(package.submodule_search_locations))) / "example_pb2.py"
    spec = importlib.util.spec_from_file_location("tensorflow_example_pb2", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE_PB2 = load_tensorflow_example_classes()


@dataclass(frozen=True)
class Episode:
    """What one RLDS episode holds, kept to compare with what the reader returns."""

    instruction: str
    actions: npt.NDArray[np.float32]
    state: npt.NDArray[np.float32]
    frames: Frames
    episode_id: int

    @property
    def length(self) -> int:
        return len(self.actions)


def camera_frames(length: int, rng: np.random.Generator) -> Frames:
    """Gradients that change colour step by step, with a little noise for PNG to keep."""
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH]
    smooth = [
        np.stack([columns * 3, rows * 4, np.full_like(rows, 20 + 40 * step)], axis=-1)
        for step in range(length)
    ]
    noise = rng.integers(0, 8, size=(length, HEIGHT, WIDTH, 3))
    return np.asarray(np.asarray(smooth) + noise, dtype=np.uint8)


def random_episode(length: int, seed: int) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        instruction=f"put the spoon on the towel {seed}",
        actions=rng.normal(size=(length, 7)).astype(np.float32),
        state=rng.normal(size=(length, 7)).astype(np.float32),
        frames=camera_frames(length, rng),
        episode_id=seed - 1,  # episode 0 stores -1: negative int64 values
    )


def closest_step(frame: Frames, frames: Frames) -> tuple[int, float]:
    differences = np.abs(frames.astype(np.int16) - frame.astype(np.int16)).mean(axis=(1, 2, 3))
    return int(differences.argmin()), float(differences.min())


def encode(frame: Frames, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format=image_format)
    return buffer.getvalue()


def bridge_example(episode: Episode) -> bytes:
    """Serialized the way TFDS stores Bridge V2: steps flattened under `steps/...`."""
    example = EXAMPLE_PB2.Example()
    feature = example.features.feature
    steps = episode.length
    feature["steps/action"].float_list.value.extend(episode.actions.reshape(-1).tolist())
    feature["steps/observation/state"].float_list.value.extend(episode.state.reshape(-1).tolist())
    feature["steps/observation/image_0"].bytes_list.value.extend(
        [encode(frame, "PNG") for frame in episode.frames]
    )
    feature["steps/observation/image_1"].bytes_list.value.extend(
        [encode(frame, "JPEG") for frame in episode.frames]
    )
    feature["steps/observation/depth_0"].bytes_list.value.extend(
        [encode(frame[..., 0], "PNG") for frame in episode.frames]
    )
    feature["steps/language_instruction"].bytes_list.value.extend(
        [episode.instruction.encode()] * steps
    )
    feature["steps/is_first"].int64_list.value.extend([1] + [0] * (steps - 1))
    feature["steps/is_last"].int64_list.value.extend([0] * (steps - 1) + [1])
    feature["steps/reward"].float_list.value.extend([0.0] * (steps - 1) + [1.0])
    feature["episode_metadata/file_path"].bytes_list.value.append(b"/raw/bridge/traj0")
    feature["episode_metadata/episode_id"].int64_list.value.append(episode.episode_id)
    return bytes(example.SerializeToString())


def tensor(shape: Sequence[int], dtype: str = "float32") -> dict[str, Any]:
    return {"tensor": {"shape": {"dimensions": [str(size) for size in shape]}, "dtype": dtype}}


def image(channels: int) -> dict[str, Any]:
    shape = {"dimensions": [str(HEIGHT), str(WIDTH), str(channels)]}
    return {"image": {"shape": shape, "dtype": "uint8", "encodingFormat": "png"}}


def features_dict(features: dict[str, Any]) -> dict[str, Any]:
    return {"featuresDict": {"features": features}}


BRIDGE_FEATURES = features_dict(
    {
        "steps": {
            "sequence": {
                "feature": features_dict(
                    {
                        "action": tensor([7]),
                        "observation": features_dict(
                            {
                                "state": tensor([7]),
                                "image_0": image(3),
                                "image_1": image(3),
                                "depth_0": image(1),
                            }
                        ),
                        "language_instruction": {"text": {}},
                        "is_first": tensor([], "bool"),
                        "is_last": tensor([], "bool"),
                        "reward": tensor([]),
                    }
                ),
                "length": "-1",
            }
        },
        "episode_metadata": features_dict({"file_path": {"text": {}}, "episode_id": tensor([])}),
    }
)


def write_shard(path: Path, records: Sequence[bytes]) -> None:
    writer = RecordWriter(path.open("wb"))
    for record in records:
        writer.write(record)
    writer.close()


def write_bridge(root: Path, shards: dict[str, Sequence[Sequence[Episode]]]) -> Path:
    """A TFDS folder `<root>/bridge_dataset/1.0.0` with the given episodes per split and shard."""
    folder = root / "bridge_dataset" / "1.0.0"
    folder.mkdir(parents=True)
    splits = []
    for split, split_shards in shards.items():
        for number, episodes in enumerate(split_shards):
            name = f"bridge_dataset-{split}.tfrecord-{number:05d}-of-{len(split_shards):05d}"
            write_shard(folder / name, [bridge_example(episode) for episode in episodes])
        lengths = [str(len(episodes)) for episodes in split_shards]
        splits.append({"name": split, "numBytes": "1", "shardLengths": lengths})
    info = {"name": "bridge_dataset", "version": "1.0.0", "fileFormat": "tfrecord"}
    (folder / "dataset_info.json").write_text(json.dumps({**info, "splits": splits}))
    (folder / "features.json").write_text(json.dumps(BRIDGE_FEATURES))
    return folder


TRAIN = [random_episode(4, 0), random_episode(6, 1), random_episode(5, 2)]
VAL = [random_episode(3, 3)]


@pytest.fixture
def bridge(tmp_path: Path) -> Path:
    return write_bridge(tmp_path, {"train": [TRAIN[:2], TRAIN[2:]], "val": [VAL]})


def test_bridge_episodes_read_across_shards(bridge: Path) -> None:
    dataset = open_dataset(bridge.parent)  # the dataset folder: its newest version is used
    assert isinstance(dataset, RldsDataset)
    assert (dataset.name, dataset.fps, len(dataset)) == ("bridge_dataset", 5.0, 3)
    for index in (2, 0, 1):
        view, episode = dataset.episode(index), TRAIN[index]
        assert (view.index, view.length, view.instruction) == (
            index,
            episode.length,
            episode.instruction,
        )
        np.testing.assert_array_equal(view.actions, episode.actions)
        assert set(view.state) == {"observation.state"}
        np.testing.assert_array_equal(view.state["observation.state"], episode.state)
        assert view.metadata == {"file_path": "/raw/bridge/traj0", "episode_id": index - 1}
        assert view.cameras == ("observation.images.image_0", "observation.images.image_1")
        steps = [episode.length - 1, 0, 1]
        exact = view.frames(steps, "observation.images.image_0")
        np.testing.assert_array_equal(exact, episode.frames[steps])
        for frame, step in zip(
            view.frames(steps, "observation.images.image_1"), steps, strict=True
        ):
            closest, difference = closest_step(frame, episode.frames)
            assert closest == step and difference < 5  # JPEG
    assert [view.instruction for view in dataset] == [episode.instruction for episode in TRAIN]
    validation = open_dataset(bridge, split="val")
    assert len(validation) == 1
    np.testing.assert_array_equal(validation.episode(0).actions, VAL[0].actions)


def test_fractal_layout_without_tfds_json_files(tmp_path: Path) -> None:
    """RT-1 data: dict actions, the instruction inside the observation, shards found by name."""
    folder = tmp_path / "fractal20220817_data" / "0.1.0"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    steps = 5
    parts = {
        "world_vector": rng.normal(size=(steps, 3)),
        "rotation_delta": rng.normal(size=(steps, 3)),
        "gripper_closedness_action": rng.normal(size=(steps, 1)),
        "base_displacement_vector": rng.normal(size=(steps, 2)),
    }
    frames = camera_frames(steps, rng)
    example = EXAMPLE_PB2.Example()
    feature = example.features.feature
    for name, values in parts.items():
        feature[f"steps/action/{name}"].float_list.value.extend(values.reshape(-1).tolist())
    feature["steps/action/terminate_episode"].int64_list.value.extend([0, 1, 0] * steps)
    feature["steps/observation/image"].bytes_list.value.extend([encode(f, "PNG") for f in frames])
    feature["steps/observation/natural_language_instruction"].bytes_list.value.extend(
        [b"pick coke can"] * steps
    )
    feature["steps/observation/base_pose_tool_reached"].float_list.value.extend([0.5] * 7 * steps)
    feature["steps/is_first"].int64_list.value.extend([1] + [0] * (steps - 1))
    write_shard(
        folder / "fractal20220817_data-train.tfrecord-00000-of-00001", [example.SerializeToString()]
    )

    dataset = open_dataset(folder)
    assert (dataset.name, dataset.fps, len(dataset)) == ("fractal20220817_data", 3.0, 1)
    view = dataset.episode(0)
    assert view.instruction == "pick coke can"
    expected = np.concatenate(
        [parts["world_vector"], parts["rotation_delta"], parts["gripper_closedness_action"]], axis=1
    )
    np.testing.assert_array_equal(view.actions, expected.astype(np.float32))
    assert view.state["observation.base_pose_tool_reached"].shape == (steps, 7)
    assert view.cameras == ("observation.images.image",)
    np.testing.assert_array_equal(view.frames([3]), frames[[3]])


def flip_byte(offset_of: Callable[[int], int]) -> Callable[[Path], None]:
    def corrupt(shard: Path) -> None:
        data = bytearray(shard.read_bytes())
        data[offset_of(len(data))] ^= 0xFF
        shard.write_bytes(bytes(data))

    return corrupt


def truncate(shard: Path) -> None:
    shard.write_bytes(shard.read_bytes()[:-10])


@pytest.mark.parametrize(
    ("damage", "episode", "problem"),
    [
        (flip_byte(lambda size: 100), 0, "record at byte 0 fails its data checksum"),
        (flip_byte(lambda size: 2), 0, "record at byte 0 has a length that fails its checksum"),
        (truncate, 1, "is truncated"),
    ],
)
def test_damaged_shards_fail_with_a_fix(
    bridge: Path, damage: Callable[[Path], None], episode: int, problem: str
) -> None:
    damage(bridge / "bridge_dataset-train.tfrecord-00000-of-00002")
    dataset = open_dataset(bridge)
    np.testing.assert_array_equal(dataset.episode(2).actions, TRAIN[2].actions)  # other shard
    with pytest.raises(HarnessError) as failure:
        dataset.episode(episode)
    assert problem in failure.value.problem
    assert "download this shard again" in failure.value.fix


def test_unknown_control_rate_needs_fps(bridge: Path) -> None:
    info_path = bridge / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["name"] = "my_robot_data"
    info_path.write_text(json.dumps(info))
    for split in info["splits"]:
        for shard in bridge.glob(f"bridge_dataset-{split['name']}.*"):
            shard.rename(shard.with_name(shard.name.replace("bridge_dataset", "my_robot_data")))
    with pytest.raises(HarnessError, match="does not record its control rate") as failure:
        open_dataset(bridge)
    assert "fps" in failure.value.fix
    assert open_dataset(bridge, fps=10).episode(0).fps == 10.0


def test_missing_rlds_extra_names_the_install(
    bridge: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google_crc32c", None)
    with pytest.raises(HarnessError) as failure:
        open_dataset(bridge)
    assert failure.value.fix == "pip install 'refinevla-bench[rlds]'"


def proto2_example_class() -> Any:
    """tf.train.Example declared in proto2, whose repeated numbers are written unpacked (as
    some non-TensorFlow writers do); the map is spelled as its wire-identical entry message."""
    descriptor_pb2 = importlib.import_module("google.protobuf.descriptor_pb2")
    descriptor_pool = importlib.import_module("google.protobuf.descriptor_pool")
    message_factory = importlib.import_module("google.protobuf.message_factory")
    field_type = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="proto2_example.proto", package="proto2_example", syntax="proto2"
    )
    messages: dict[str, list[tuple[str, int, int, str, bool]]] = {
        "FloatList": [("value", 1, field_type.TYPE_FLOAT, "", True)],
        "Int64List": [("value", 1, field_type.TYPE_INT64, "", True)],
        "Feature": [
            ("float_list", 2, field_type.TYPE_MESSAGE, "FloatList", False),
            ("int64_list", 3, field_type.TYPE_MESSAGE, "Int64List", False),
        ],
        "FeatureEntry": [
            ("key", 1, field_type.TYPE_STRING, "", False),
            ("value", 2, field_type.TYPE_MESSAGE, "Feature", False),
        ],
        "Features": [("feature", 1, field_type.TYPE_MESSAGE, "FeatureEntry", True)],
        "Example": [("features", 1, field_type.TYPE_MESSAGE, "Features", False)],
    }
    for name, fields in messages.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            label = field_type.LABEL_REPEATED if repeated else field_type.LABEL_OPTIONAL
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".proto2_example.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("proto2_example.Example"))


def test_unpacked_numbers_decode_like_packed_ones() -> None:
    floats, ints = [1.5, -2.25, 3.0], [7, -1, 2**40]
    unpacked = proto2_example_class()()
    entry = unpacked.features.feature.add(key="steps/action")
    entry.value.float_list.value.extend(floats)
    entry = unpacked.features.feature.add(key="steps/is_first")
    entry.value.int64_list.value.extend(ints)
    packed = EXAMPLE_PB2.Example()
    packed.features.feature["steps/action"].float_list.value.extend(floats)
    packed.features.feature["steps/is_first"].int64_list.value.extend(ints)
    unpacked_bytes, packed_bytes = unpacked.SerializeToString(), packed.SerializeToString()
    assert len(unpacked_bytes) > len(packed_bytes)  # one tag per value: really unpacked
    for data in (unpacked_bytes, packed_bytes):
        parsed = parse_example(data)
        np.testing.assert_array_equal(parsed["steps/action"], np.asarray(floats, np.float32))
        np.testing.assert_array_equal(parsed["steps/is_first"], np.asarray(ints, np.int64))
