"""Feature declarations as LeRobot's meta/info.json spells them (codebase v2.0 to v3.0).

A feature is one named per-frame quantity: a camera (`video` in mp4 files, or `image` bytes in
the parquet), a numeric vector, or a `string` (reasoning text). Shapes exclude the frame axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CAMERA_DTYPES = ("video", "image")
STRING_DTYPE = "string"
VIDEO_CODEC = "h264"  # what libx264 produces, under the name ffprobe and LeRobot report
VIDEO_PIX_FMT = "yuv420p"

FeatureNames = Sequence[str] | Mapping[str, Sequence[str]] | None


@dataclass(frozen=True)
class FeatureSpec:
    dtype: str  # "float32", "int64", "bool", "string", "video", "image", ...
    shape: tuple[int, ...]
    names: FeatureNames = None
    info: Mapping[str, Any] = field(default_factory=dict)  # video features only

    @property
    def is_camera(self) -> bool:
        return self.dtype in CAMERA_DTYPES

    @property
    def is_string(self) -> bool:
        return self.dtype == STRING_DTYPE

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "names": _names_to_json(self.names),
        }
        if self.info:
            payload["info"] = dict(self.info)
        return payload

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            dtype=str(payload["dtype"]),
            shape=tuple(int(size) for size in payload.get("shape", ())),
            names=payload.get("names"),
            info=dict(payload.get("info") or {}),
        )


def _names_to_json(names: FeatureNames) -> Any:
    if names is None:
        return None
    if isinstance(names, Mapping):
        return {axis: list(labels) for axis, labels in names.items()}
    return list(names)


def camera_feature(height: int, width: int) -> FeatureSpec:
    """An RGB camera stored as mp4; the writer fills in the video `info` block."""
    return FeatureSpec("video", (height, width, 3), ("height", "width", "channels"))


def with_video_info(spec: FeatureSpec, fps: float) -> FeatureSpec:
    """The `info` block LeRobot v2.1 keeps beside each video feature, for how we encode."""
    height, width, channels = spec.shape
    info = {
        "video.fps": float(fps),
        "video.height": height,
        "video.width": width,
        "video.channels": channels,
        "video.codec": VIDEO_CODEC,
        "video.pix_fmt": VIDEO_PIX_FMT,
        "video.is_depth_map": False,
        "has_audio": False,
    }
    return FeatureSpec(spec.dtype, spec.shape, spec.names, info)


# The bookkeeping columns every LeRobot frame carries, in LeRobot's order.
DEFAULT_FEATURES: Mapping[str, FeatureSpec] = {
    "timestamp": FeatureSpec("float32", (1,)),
    "frame_index": FeatureSpec("int64", (1,)),
    "episode_index": FeatureSpec("int64", (1,)),
    "index": FeatureSpec("int64", (1,)),
    "task_index": FeatureSpec("int64", (1,)),
}


def features_from_info(info: Mapping[str, Any]) -> dict[str, FeatureSpec]:
    return {name: FeatureSpec.from_json(raw) for name, raw in info.get("features", {}).items()}
