"""OpenVLA's image processor, tiny: PIL images in, the image normalised once per vision
backbone and stacked on the channel axis (6 channels) out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature
from transformers.image_processing_base import ImageProcessingMixin


class PrismaticImageProcessor(ImageProcessingMixin):
    model_input_names: list[str] = ["pixel_values"]  # noqa: RUF012  # transformers' own layout

    def __init__(
        self,
        image_size: int = 32,
        means: Sequence[Sequence[float]] = ((0.485, 0.456, 0.406), (0.5, 0.5, 0.5)),
        stds: Sequence[Sequence[float]] = ((0.229, 0.224, 0.225), (0.5, 0.5, 0.5)),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # untyped in transformers
        self.image_size = image_size
        self.means = [list(mean) for mean in means]
        self.stds = [list(std) for std in stds]

    def __call__(
        self, images: Sequence[Image.Image], return_tensors: str | None = None, **kwargs: Any
    ) -> BatchFeature:
        del kwargs
        pixels = torch.stack([self._pixels(image) for image in images])
        return BatchFeature({"pixel_values": pixels}, tensor_type=return_tensors)

    def _pixels(self, image: Image.Image) -> torch.Tensor:
        side = self.image_size
        resized = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
        values = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return torch.cat(
            [
                (values - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
                for mean, std in zip(self.means, self.stds, strict=True)
            ]
        )
