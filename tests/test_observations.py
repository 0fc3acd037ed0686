"""Images reach a policy at the size and with the resampling it declared."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refinevla_bench.harness.observations import for_policy, resize_images
from refinevla_bench.policies.protocol import ObservationBatch, PolicyConventions, ResizeMethod

RNG = np.random.default_rng(0)
FRAMES = RNG.integers(0, 256, size=(2, 480, 640, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("method", "pil_filter"),
    [
        ("bilinear", Image.Resampling.BILINEAR),
        ("lanczos", Image.Resampling.LANCZOS),
        ("area", Image.Resampling.BOX),
        ("nearest", Image.Resampling.NEAREST),
    ],
)
def test_resize_matches_pil_per_frame(method: ResizeMethod, pil_filter: Image.Resampling) -> None:
    resized = resize_images(FRAMES, (224, 224), method)
    assert resized.shape == (2, 224, 224, 3) and resized.dtype == np.uint8
    expected = np.asarray(Image.fromarray(FRAMES[1]).resize((224, 224), pil_filter))
    np.testing.assert_array_equal(resized[1], expected)


def test_area_resize_of_an_exact_factor_is_the_block_mean() -> None:
    frame = RNG.integers(0, 256, size=(1, 8, 8, 3), dtype=np.uint8)
    resized = resize_images(frame, (4, 4), "area").astype(float)
    blocks = frame[0].reshape(4, 2, 4, 2, 3).mean(axis=(1, 3))
    assert np.abs(resized[0] - blocks).max() <= 1.0  # PIL rounds in fixed point


def test_for_policy_resizes_only_when_asked() -> None:
    batch = ObservationBatch(FRAMES, ("a", "b"))
    assert for_policy(batch, PolicyConventions()) is batch
    small = for_policy(batch, PolicyConventions(image_size=(256, 320), resize="area"))
    assert small.images.shape == (2, 256, 320, 3)
    assert small.instructions == batch.instructions
    assert batch.images.shape == (2, 480, 640, 3)  # the harness's own copy is untouched
