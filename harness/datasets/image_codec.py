"""Encoded camera images (PNG, JPEG) to RGB arrays, for datasets that store images inline."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image


def decode_image(data: bytes) -> npt.NDArray[np.uint8]:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
