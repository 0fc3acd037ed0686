"""LeRobot datasets: the v2.1 writer, its crash recovery, the v2.x/v3.0 reader, derived copies."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from refinevla_bench.harness.datasets.derive import derive_with_columns
from refinevla_bench.harness.datasets.features import FeatureSpec, camera_feature
from refinevla_bench.harness.datasets.lerobot_reader import LeRobotDataset
from refinevla_bench.harness.datasets.lerobot_writer import EpisodeData, LeRobotWriter
from refinevla_bench.harness.datasets.open import open_dataset
from refinevla_bench.harness.errors import HarnessError

HEIGHT, WIDTH, FPS = 48, 64, 5
CAMERA = "observation.images.image"
FEATURES = {
    CAMERA: camera_feature(HEIGHT, WIDTH),
    "observation.state": FeatureSpec("float32", (7,), ["x", "y", "z", "r", "p", "yaw", "grip"]),
    "observation.privileged.tcp_pose": FeatureSpec("float32", (7,)),
    "observation.privileged.source_grasped": FeatureSpec("float32", (1,)),
    "action": FeatureSpec("float32", (7,)),
}
Frames = npt.NDArray[np.uint8]


def smooth_frames(length: int, shade: int) -> Frames:
    """Gradients that H.264 keeps nearly intact; neighbouring frames differ by ~8 on average."""
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = [
        np.stack(
            [columns * 2 + shade, rows * 3 + 10 * step, np.full_like(rows, 30 + 20 * step)], -1
        )
        for step in range(length)
    ]
    return np.asarray(frames, dtype=np.uint8)


def episode(length: int, seed: int, instruction: str = "put carrot on plate") -> EpisodeData:
    rng = np.random.default_rng(seed)
    return EpisodeData(
        instruction=instruction,
        frames={CAMERA: smooth_frames(length, shade=seed * 7)},
        columns={
            "observation.state": rng.normal(size=(length, 7)),
            "observation.privileged.tcp_pose": rng.normal(size=(length, 7)),
            "observation.privileged.source_grasped": (np.arange(length) > 2).astype(np.float32),
            "action": rng.normal(size=(length, 7)),
        },
        metadata={"refinevla": {"task": "carrot_on_plate", "seed": seed, "success": seed % 2 == 0}},
    )


def create(
    root: Path, fps: float = FPS, features: dict[str, FeatureSpec] = FEATURES
) -> LeRobotWriter:
    return LeRobotWriter.create_or_resume(
        root, fps=fps, robot_type="widowx", features=features, extra_info={"refinevla": {"v": 1}}
    )


def values(data: EpisodeData, name: str) -> npt.NDArray[np.float32]:
    return np.asarray(data.columns[name], dtype=np.float32)


def closest_frame(frame: Frames, candidates: Frames) -> tuple[int, float]:
    """Index of the most similar candidate and the mean absolute difference to it."""
    differences = np.abs(candidates.astype(np.int16) - frame.astype(np.int16)).mean(axis=(1, 2, 3))
    return int(differences.argmin()), float(differences.min())


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


WRITTEN = [episode(6, 0), episode(9, 1), episode(5, 2, "stack the green block")]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("written") / "widowx"
    writer = create(root)
    for data in WRITTEN:
        writer.add_episode(data)
    return root


def test_written_episodes_read_back_through_open_dataset(written: Path) -> None:
    dataset = open_dataset(written)
    assert isinstance(dataset, LeRobotDataset)
    assert (dataset.name, dataset.fps, len(dataset)) == ("widowx", 5.0, 3)
    for view, data in zip(dataset, WRITTEN, strict=True):
        length = len(data.columns["action"])
        assert view.length == length and view.instruction == data.instruction
        assert view.actions.dtype == np.float32
        np.testing.assert_array_equal(view.actions, values(data, "action"))
        np.testing.assert_array_equal(
            view.state["observation.state"], values(data, "observation.state")
        )
        np.testing.assert_array_equal(
            view.privileged("tcp_pose"), values(data, "observation.privileged.tcp_pose")
        )
        grasped = view.privileged("source_grasped")
        assert grasped is not None and grasped.shape == (length,)
        assert view.metadata == data.metadata["refinevla"]
        assert view.cameras == (CAMERA,)
        steps = [length - 1, 0, 3, 3]
        decoded = view.frames(steps)
        assert decoded.shape == (4, HEIGHT, WIDTH, 3)
        for frame, step in zip(decoded, steps, strict=True):
            closest, difference = closest_frame(frame, data.frames[CAMERA])
            assert closest == step and difference < 3


def test_meta_and_data_files_follow_the_v21_layout(written: Path) -> None:
    info = json.loads((written / "meta/info.json").read_text())
    expected = {
        "codebase_version": "v2.1",
        "robot_type": "widowx",
        "total_episodes": 3,
        "total_frames": 20,
        "total_tasks": 2,
        "total_videos": 3,
        "total_chunks": 1,
        "chunks_size": 1000,
        "fps": 5,
        "splits": {"train": "0:3"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": (
            "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
        ),
        "refinevla": {"v": 1},
    }
    assert {key: info[key] for key in expected} == expected
    assert info["features"][CAMERA] == {
        "dtype": "video",
        "shape": [HEIGHT, WIDTH, 3],
        "names": ["height", "width", "channels"],
        "info": {
            "video.fps": 5.0,
            "video.height": HEIGHT,
            "video.width": WIDTH,
            "video.channels": 3,
            "video.codec": "h264",
            "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False,
            "has_audio": False,
        },
    }
    assert info["features"]["observation.state"]["names"][:2] == ["x", "y"]
    assert info["features"]["index"] == {"dtype": "int64", "shape": [1], "names": None}
    assert lines(written / "meta/tasks.jsonl") == [
        {"task_index": 0, "task": "put carrot on plate"},
        {"task_index": 1, "task": "stack the green block"},
    ]
    assert lines(written / "meta/episodes.jsonl")[1] == {
        "episode_index": 1,
        "tasks": ["put carrot on plate"],
        "length": 9,
        "refinevla": {"task": "carrot_on_plate", "seed": 1, "success": False},
    }
    table = pq.read_table(written / "data/chunk-000/episode_000002.parquet")
    assert table.schema.field("timestamp").type == pa.float32()
    assert table.schema.field("action").type == pa.list_(pa.float32(), 7)
    assert table.schema.field("observation.privileged.source_grasped").type == pa.float32()
    assert CAMERA not in table.column_names
    assert table["index"].to_pylist() == list(range(15, 20))  # after episodes of 6 and 9 frames
    assert table["frame_index"].to_pylist() == list(range(5))
    assert table["timestamp"].to_pylist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert set(table["episode_index"].to_pylist()) == {2}
    assert set(table["task_index"].to_pylist()) == {1}
    video = written / "videos/chunk-000" / CAMERA / "episode_000002.mp4"
    reader: Any = imageio.get_reader(video, format="FFMPEG")
    with reader:
        assert reader.get_meta_data()["codec"] == "h264"


def test_episode_stats_are_lerobot_shaped_and_exact(written: Path) -> None:
    stats_lines = lines(written / "meta/episodes_stats.jsonl")
    assert [line["episode_index"] for line in stats_lines] == [0, 1, 2]
    stats = stats_lines[1]["stats"]
    action = values(WRITTEN[1], "action").astype(np.float64)
    assert stats["action"]["min"] == pytest.approx(action.min(axis=0).tolist())
    assert stats["action"]["max"] == pytest.approx(action.max(axis=0).tolist())
    assert stats["action"]["mean"] == pytest.approx(action.mean(axis=0).tolist())
    assert stats["action"]["std"] == pytest.approx(action.std(axis=0).tolist())
    assert stats["action"]["count"] == [9]
    assert stats["observation.privileged.source_grasped"]["max"] == [1.0]
    assert stats["frame_index"]["max"] == [8] and stats["index"]["min"] == [6]
    assert stats["timestamp"]["max"] == pytest.approx([1.6])
    camera = stats[CAMERA]
    assert np.asarray(camera["mean"]).shape == (3, 1, 1)
    channel_means = WRITTEN[1].frames[CAMERA].reshape(-1, 3).mean(axis=0) / 255
    assert np.asarray(camera["mean"]).reshape(3) == pytest.approx(channel_means)
    assert np.asarray(camera["max"]).reshape(3)[2] == pytest.approx((30 + 20 * 8) / 255)
    assert camera["count"] == [9]


def simulate_kill_during_third_episode(root: Path) -> None:
    """What a kill leaves behind: episode 2's renamed files, half-written temporary files, its
    stats line and a torn episode line; and an info.json one episode behind."""
    data, videos = root / "data/chunk-000", root / "videos/chunk-000" / CAMERA
    shutil.copy(data / "episode_000001.parquet", data / "episode_000002.parquet")
    shutil.copy(videos / "episode_000001.mp4", videos / "episode_000002.mp4")
    (videos / ".episode_000003.partial.mp4").write_bytes(b"\x00" * 100)
    (root / "meta/.info.partial.json").write_text("{")
    stats = root / "meta/episodes_stats.jsonl"
    stats.write_text(stats.read_text() + '{"episode_index":2,"stats":{}}\n')
    episodes = root / "meta/episodes.jsonl"
    episodes.write_text(episodes.read_text() + '{"episode_index":2,"tas')
    info = json.loads((root / "meta/info.json").read_text())
    info.update(total_episodes=1, total_frames=6, splits={"train": "0:1"})
    (root / "meta/info.json").write_text(json.dumps(info))


def test_killed_collection_opens_and_resumes_without_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "killed"
    writer = create(root)
    writer.add_episode(WRITTEN[0])
    writer.add_episode(WRITTEN[1])
    simulate_kill_during_third_episode(root)

    assert len(open_dataset(root)) == 2  # the finished episodes, before any repair

    resumed = create(root)
    assert [row.index for row in resumed.episodes] == [0, 1]
    assert resumed.episodes[1].extra == WRITTEN[1].metadata
    assert not [path for path in root.rglob("*") if path.name.startswith(".")]
    assert not (root / "data/chunk-000/episode_000002.parquet").exists()
    assert json.loads((root / "meta/info.json").read_text())["total_episodes"] == 2
    assert len(lines(root / "meta/episodes_stats.jsonl")) == 2

    third = episode(7, 5, "stack the green block")
    assert resumed.add_episode(third).index == 2
    dataset = LeRobotDataset(root)
    assert dataset.episode_indices == (0, 1, 2)
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 22, 2)
    assert [line["episode_index"] for line in lines(root / "meta/episodes.jsonl")] == [0, 1, 2]
    assert [line["episode_index"] for line in lines(root / "meta/episodes_stats.jsonl")] == [
        0,
        1,
        2,
    ]
    global_index = [
        frame
        for index in range(3)
        for frame in pq.read_table(root / f"data/chunk-000/episode_{index:06d}.parquet")["index"]
    ]
    assert [frame.as_py() for frame in global_index] == list(range(22))
    np.testing.assert_array_equal(dataset.episode(2).actions, values(third, "action"))
    assert closest_frame(dataset.episode(2).frames([6])[0], third.frames[CAMERA])[0] == 6


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    create(root).add_episode(WRITTEN[0])
    with pytest.raises(HarnessError) as other_fps:
        create(root, fps=10)
    assert "fps 5 instead of 10" in other_fps.value.problem
    assert "new directory" in other_fps.value.fix
    wider_state = {**FEATURES, "observation.state": FeatureSpec("float32", (8,))}
    with pytest.raises(HarnessError, match=r"different features \['observation.state'\]"):
        create(root, features=wider_state)
    assert len(create(root).episodes) == 1


def test_writer_refuses_a_folder_with_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a dataset")
    with pytest.raises(HarnessError, match="not a dataset this writer can extend"):
        create(tmp_path)


def test_episode_that_does_not_fit_is_rejected_before_any_file(tmp_path: Path) -> None:
    writer = create(tmp_path / "dataset")
    short_action = episode(6, 0)
    bad = EpisodeData(
        short_action.instruction,
        short_action.frames,
        {**short_action.columns, "action": np.zeros((5, 7))},
    )
    with pytest.raises(ValueError, match="same, non-zero frame count"):
        writer.add_episode(bad)
    missing = EpisodeData("x", short_action.frames, {"action": np.zeros((6, 7))})
    with pytest.raises(ValueError, match="an episode needs frames"):
        writer.add_episode(missing)
    assert writer.episodes == ()
    assert not (tmp_path / "dataset/data").exists()


def png(frame: Frames) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def write_mp4(path: Path, frames: Frames, fps: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: Any = imageio.get_writer(
        path, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1, quality=None,
        output_params=["-crf", "15"],
    )  # fmt: skip
    with writer:
        for frame in frames:
            writer.append_data(frame)


def write_v3_dataset(root: Path, lengths: Sequence[int], fps: int) -> list[EpisodeData]:
    """A LeRobot v3.0 dataset built file by file: episodes 0 and 1 share a data file and a
    video file, episode 2 has the next ones; a wrist camera is stored as PNG in the parquet."""
    episodes = [episode(length, seed) for seed, length in enumerate(lengths)]
    files = [(0, 0), (0, 0), (0, 1)]  # (chunk, file) per episode
    starts = np.cumsum([0, *lengths])
    for file_index in (0, 1):
        members = [index for index, (_, file) in enumerate(files) if file == file_index]
        frames = np.concatenate([episodes[index].frames[CAMERA] for index in members])
        write_mp4(root / f"videos/{CAMERA}/chunk-000/file-{file_index:03d}.mp4", frames, fps)
        columns: dict[str, list[Any]] = {name: [] for name in ("action", "observation.state")}
        columns.update(wrist=[], timestamp=[], frame_index=[], episode_index=[], index=[])
        for index in members:
            data, length = episodes[index], lengths[index]
            for name in ("action", "observation.state"):
                columns[name] += values(data, name).tolist()
            columns["wrist"] += [
                {"bytes": png(frame), "path": None} for frame in data.frames[CAMERA]
            ]
            columns["timestamp"] += [step / fps for step in range(length)]
            columns["frame_index"] += list(range(length))
            columns["episode_index"] += [index] * length
            columns["index"] += list(range(starts[index], starts[index] + length))
        table = pa.table(
            {
                "action": pa.array(columns["action"], pa.list_(pa.float32())),
                "observation.state": pa.array(columns["observation.state"], pa.list_(pa.float32())),
                "observation.images.wrist": pa.array(columns["wrist"]),
                "timestamp": pa.array(columns["timestamp"], pa.float32()),
                "frame_index": pa.array(columns["frame_index"], pa.int64()),
                "episode_index": pa.array(columns["episode_index"], pa.int64()),
                "index": pa.array(columns["index"], pa.int64()),
            }
        )
        (root / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / f"data/chunk-000/file-{file_index:03d}.parquet")
    video_starts = [0.0, lengths[0] / fps, 0.0]
    meta_rows = [
        {
            "episode_index": index,
            "tasks": [episodes[index].instruction],
            "length": lengths[index],
            "data/chunk_index": chunk,
            "data/file_index": file,
            "dataset_from_index": int(starts[index]),
            "dataset_to_index": int(starts[index + 1]),
            f"videos/{CAMERA}/chunk_index": chunk,
            f"videos/{CAMERA}/file_index": file,
            f"videos/{CAMERA}/from_timestamp": video_starts[index],
            f"videos/{CAMERA}/to_timestamp": video_starts[index] + lengths[index] / fps,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
            "stats/action/mean": values(episodes[index], "action").mean(0).tolist(),
        }
        for index, (chunk, file) in enumerate(files)
    ]
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(meta_rows), root / "meta/episodes/chunk-000/file-000.parquet"
    )
    camera_info = {"video.fps": float(fps), "video.codec": "h264", "video.pix_fmt": "yuv420p"}
    vector = {"dtype": "float32", "shape": [7], "names": None}
    info = {
        "codebase_version": "v3.0",
        "fps": fps,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {
            CAMERA: {"dtype": "video", "shape": [HEIGHT, WIDTH, 3], "info": camera_info},
            "observation.images.wrist": {"dtype": "image", "shape": [HEIGHT, WIDTH, 3]},
            "observation.state": vector,
            "action": vector,
            "timestamp": {"dtype": "float32", "shape": [1]},
        },
    }
    (root / "meta/info.json").write_text(json.dumps(info))
    return episodes


def test_v3_dataset_seeks_inside_concatenated_files(tmp_path: Path) -> None:
    root = tmp_path / "bridge_v3"
    lengths = (4, 6, 5)
    episodes = write_v3_dataset(root, lengths, fps=10)
    dataset = open_dataset(root)
    assert isinstance(dataset, LeRobotDataset) and len(dataset) == 3
    assert dataset.cameras == (CAMERA, "observation.images.wrist")
    for index in (1, 2, 0):
        view, data = dataset.episode(index), episodes[index]
        assert view.length == lengths[index] and view.instruction == data.instruction
        np.testing.assert_array_equal(view.actions, values(data, "action"))
        np.testing.assert_array_equal(
            view.state["observation.state"], values(data, "observation.state")
        )
        assert set(view.state) == {"observation.state"} and view.metadata == {}
        steps = [lengths[index] - 1, 0, 2]
        for frame, step in zip(view.frames(steps, CAMERA), steps, strict=True):
            closest, difference = closest_frame(frame, data.frames[CAMERA])
            assert closest == step and difference < 3
        wrist = view.frames(steps, "observation.images.wrist")
        np.testing.assert_array_equal(wrist, data.frames[CAMERA][steps])


def test_derived_copy_adds_text_columns_and_links_videos(written: Path, tmp_path: Path) -> None:
    dest = tmp_path / "enriched"
    lengths = {0: 6, 1: 9, 2: 5}
    reasoning = {
        index: {"reasoning": [f"ep{index} step{step}" for step in range(length)]}
        for index, length in lengths.items()
    }
    derive_with_columns(written, dest, reasoning)

    info = json.loads((dest / "meta/info.json").read_text())
    assert info["features"]["reasoning"] == {"dtype": "string", "shape": [1], "names": None}
    assert info["total_episodes"] == 3
    table = pq.read_table(dest / "data/chunk-000/episode_000001.parquet")
    assert table["reasoning"].to_pylist() == reasoning[1]["reasoning"]
    assert table["action"].equals(
        pq.read_table(written / "data/chunk-000/episode_000001.parquet")["action"]
    )
    video = Path("videos/chunk-000") / CAMERA / "episode_000002.mp4"
    assert (dest / video).stat().st_ino == (written / video).stat().st_ino
    assert "reasoning" not in json.loads((written / "meta/info.json").read_text())["features"]
    assert (dest / "meta/episodes_stats.jsonl").read_text() == (
        written / "meta/episodes_stats.jsonl"
    ).read_text()
    np.testing.assert_array_equal(
        LeRobotDataset(dest).episode(2).actions, LeRobotDataset(written).episode(2).actions
    )

    derive_with_columns(
        written, dest, lambda index, length: {"reasoning": [f"v2 {index}"] * length}
    )
    assert (
        pq.read_table(dest / "data/chunk-000/episode_000000.parquet")["reasoning"][0].as_py()
        == "v2 0"
    )
    with pytest.raises(ValueError, match="episode 0 has 6 frames"):
        derive_with_columns(written, dest, lambda index, length: {"reasoning": ["too short"]})
    assert (
        pq.read_table(dest / "data/chunk-000/episode_000000.parquet")["reasoning"][0].as_py()
        == "v2 0"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["enriched"]


def test_derived_copy_leaves_out_what_a_kill_left(tmp_path: Path) -> None:
    source, dest = tmp_path / "source", tmp_path / "dest"
    writer = create(source)
    writer.add_episode(WRITTEN[0])
    writer.add_episode(WRITTEN[2])
    with (source / "meta/episodes_stats.jsonl").open("a") as stats:
        stats.write('{"episode_index":2,"stats":{}}\n')
    with (source / "meta/episodes.jsonl").open("a") as episodes:
        episodes.write('{"episode_index":2,"tas')
    (source / "meta/.info.partial.json").write_text("{")

    derive_with_columns(source, dest, lambda index, length: {"reasoning": ["r"] * length})
    assert [line["episode_index"] for line in lines(dest / "meta/episodes.jsonl")] == [0, 1]
    assert [line["episode_index"] for line in lines(dest / "meta/episodes_stats.jsonl")] == [0, 1]
    assert sorted(path.name for path in (dest / "meta").iterdir()) == [
        "episodes.jsonl",
        "episodes_stats.jsonl",
        "info.json",
        "tasks.jsonl",
    ]

    info = json.loads((source / "meta/info.json").read_text())
    (source / "meta/info.json").write_text(json.dumps({**info, "total_episodes": 1}))
    with pytest.raises(HarnessError, match=r"lists 2 episodes, its info\.json 1") as unfinished:
        derive_with_columns(source, dest, lambda index, length: {"reasoning": ["r"] * length})
    assert "rerun the `collect` command" in unfinished.value.fix


def test_unreadable_datasets_fail_with_a_fix(written: Path, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="neither a LeRobot dataset") as not_a_dataset:
        open_dataset(tmp_path)
    assert not_a_dataset.value.one_line().startswith("error: ")
    old = tmp_path / "old"
    (old / "meta").mkdir(parents=True)
    (old / "meta/info.json").write_text(json.dumps({"codebase_version": "v1.6", "fps": 10}))
    with pytest.raises(HarnessError, match=r"codebase_version v1\.6") as too_old:
        open_dataset(old)
    assert "v2.1 or v3.0" in too_old.value.fix
    broken = tmp_path / "broken"
    shutil.copytree(written, broken)
    (broken / "data/chunk-000/episode_000001.parquet").unlink()
    (broken / "videos/chunk-000" / CAMERA / "episode_000000.mp4").unlink()
    dataset = open_dataset(broken)
    with pytest.raises(HarnessError, match=r"data file .* is missing"):
        dataset.episode(1)
    with pytest.raises(HarnessError, match=r"video .* is missing"):
        dataset.episode(0).frames([0])
