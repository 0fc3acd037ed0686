"""Which camera frames a teacher sees, and how they are encoded for a request.

A segment's first and last frames show what changed during it; more frames cost tokens
without adding much. The choice is deterministic (the same episode always yields the same
bytes, hence the same request key and cache entry), and frames are shrunk to a small JPEG
because image tokens grow with size and dominate the request.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from refinevla_bench.harness.datasets.episode import EpisodeView
from refinevla_bench.teacher.schema import SegmentSpan

JPEG_QUALITY = 85


@dataclass(frozen=True)
class FrameChoice:
    step: int
    position: str  # "first step", "last step" or "only step" of its segment
    span: SegmentSpan


@dataclass(frozen=True)
class PromptFrame:
    choice: FrameChoice
    width: int
    height: int
    jpeg: bytes

    def data_url(self) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(self.jpeg).decode("ascii")


def choose_frames(spans: Sequence[SegmentSpan], limit: int) -> list[FrameChoice]:
    """First and last step of every segment, thinned evenly (ends kept) to at most `limit`."""
    candidates: list[FrameChoice] = []
    for span in spans:
        last = span.end - 1
        if last == span.start:
            candidates.append(FrameChoice(span.start, "only step", span))
        else:
            candidates.append(FrameChoice(span.start, "first step", span))
            candidates.append(FrameChoice(last, "last step", span))
    if len(candidates) <= limit:
        return candidates
    if limit <= 1:
        return candidates[:limit]
    stride = (len(candidates) - 1) / (limit - 1)
    return [candidates[round(number * stride)] for number in range(limit)]


def encode_jpeg(pixels: npt.NDArray[np.uint8], max_side: int) -> tuple[bytes, int, int]:
    """JPEG bytes and size of an RGB frame shrunk (never enlarged) to fit max_side."""
    image = Image.fromarray(np.ascontiguousarray(pixels))
    image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), image.width, image.height


def sample_frames(
    episode: EpisodeView,
    spans: Sequence[SegmentSpan],
    limit: int,
    max_side: int,
    camera: str | None = None,
) -> list[PromptFrame]:
    """The encoded frames to send; none when the episode has no camera (text-only request)."""
    if episode.load_frames is None or not episode.cameras:
        return []
    choices = choose_frames(spans, limit)
    if not choices:
        return []
    pixels = episode.frames([choice.step for choice in choices], camera)
    frames: list[PromptFrame] = []
    for choice, frame in zip(choices, pixels, strict=True):
        jpeg, width, height = encode_jpeg(frame, max_side)
        frames.append(PromptFrame(choice, width, height, jpeg))
    return frames
