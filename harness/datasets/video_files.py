"""mp4 files of camera frames: H.264 (libx264, yuv420p) out, any ffmpeg codec in.

Decoding seeks to the first wanted frame and reads forward: a teacher asks for a handful of
frames per episode, and LeRobot v3.0 keeps many episodes in one file, so reading from the
start of the file would cost more than the frames are worth.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.errors import HarnessError

# Near-lossless for smooth simulator renders, ~10x smaller than raw frames.
CONSTANT_RATE_FACTOR = "18"


def encode_mp4(path: Path, frames: npt.NDArray[np.uint8], fps: float) -> None:
    """Write (frames, height, width, 3) RGB frames; yuv420p needs even heights and widths."""
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"frames of {width}x{height}: H.264 yuv420p needs even sizes")
    writer: Any = imageio.get_writer(
        path,
        format="FFMPEG",
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=1,
        quality=None,
        output_params=["-crf", CONSTANT_RATE_FACTOR],
    )
    with writer:
        for frame in frames:
            writer.append_data(frame)


def decode_mp4_frames(
    path: Path, frame_numbers: Sequence[int], video_fps: float
) -> npt.NDArray[np.uint8]:
    """RGB frames at the given positions of the file, in the order asked (repeats allowed)."""
    if not path.is_file():
        raise HarnessError(f"video {path} is missing", "download the dataset's videos/ again")
    wanted = set(frame_numbers)
    first, last = min(wanted), max(wanted)
    # Seek half a frame early: ffmpeg then starts exactly at `first` despite rounding.
    start = max(0.0, (first - 0.5) / video_fps)
    seek = ["-ss", f"{start:.6f}"] if first > 0 else []
    reader: Any = imageio.get_reader(path, format="FFMPEG", input_params=seek)
    decoded: dict[int, npt.NDArray[np.uint8]] = {}
    try:
        for number, frame in enumerate(reader, start=first):
            if number in wanted:
                decoded[number] = np.asarray(frame, dtype=np.uint8)
            if number >= last:
                break
    finally:
        reader.close()
    if last not in decoded:
        raise HarnessError(
            f"video {path} ends before frame {last}",
            "the file is truncated or does not match the dataset's meta: download it again",
        )
    return np.stack([decoded[number] for number in frame_numbers])
