"""Observations as a policy declared it wants them: resized once, here, for every policy."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from refinevla_bench.policies.protocol import ObservationBatch, PolicyConventions, ResizeMethod

_PIL_FILTERS: dict[ResizeMethod, str] = {  # names in PIL.Image.Resampling
    "bilinear": "BILINEAR",
    "bicubic": "BICUBIC",
    "lanczos": "LANCZOS",
    "area": "BOX",
    "nearest": "NEAREST",
}


def resize_images(
    images: npt.NDArray[np.uint8], size: tuple[int, int], method: ResizeMethod
) -> npt.NDArray[np.uint8]:
    """Resize a (batch, height, width, 3) uint8 batch to size = (height, width)."""
    from PIL import Image  # Pillow comes with the sim extra; the CLI starts without it

    height, width = size
    resampling = getattr(Image.Resampling, _PIL_FILTERS[method])
    resized = [
        np.asarray(Image.fromarray(image).resize((width, height), resampling)) for image in images
    ]
    return np.stack(resized).astype(np.uint8, copy=False)


def for_policy(observation: ObservationBatch, conventions: PolicyConventions) -> ObservationBatch:
    """The observation at the policy's declared image size (unchanged when none is declared)."""
    size = conventions.image_size
    if size is None or observation.images.shape[1:3] == size:
        return observation
    images = resize_images(observation.images, size, conventions.resize)
    return dataclasses.replace(observation, images=images)
