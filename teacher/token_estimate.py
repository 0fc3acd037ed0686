"""Tokens a request will take, known before anything is sent (dry runs and budgets).

Text is counted at about four characters per token, OpenAI's rule of thumb for English and
JSON; it avoids a tokenizer dependency and errs by a few percent, which a budget can absorb.
Images follow OpenAI's published tile formula for GPT-4o-class models: a flat 85 tokens at low
detail; at high detail the image is shrunk to fit 2048x2048 and then to a shortest side of 768,
and each 512-pixel tile costs 170 more. "auto" is counted as high (an upper bound).
"""

from __future__ import annotations

import math
from typing import Literal

ImageDetail = Literal["low", "high", "auto"]
IMAGE_DETAILS: tuple[ImageDetail, ...] = ("low", "high", "auto")

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators of one chat message
BASE_IMAGE_TOKENS = 85
TILE_TOKENS = 170
TILE_SIDE = 512
HIGH_DETAIL_FIT = 2048
HIGH_DETAIL_SHORT_SIDE = 768
# A rationale field is one or two sentences; five of them plus keys come to about 250 tokens.
OUTPUT_TOKENS_PER_SEGMENT = 250
OUTPUT_TOKENS_PER_ANSWER = 20  # the enclosing object


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def image_tokens(width: int, height: int, detail: ImageDetail) -> int:
    if detail == "low":
        return BASE_IMAGE_TOKENS
    width, height = _shrink(width, height, HIGH_DETAIL_FIT / max(width, height))
    width, height = _shrink(width, height, HIGH_DETAIL_SHORT_SIDE / min(width, height))
    tiles = math.ceil(width / TILE_SIDE) * math.ceil(height / TILE_SIDE)
    return BASE_IMAGE_TOKENS + TILE_TOKENS * tiles


def _shrink(width: int, height: int, scale: float) -> tuple[int, int]:
    if scale >= 1.0:
        return width, height
    return round(width * scale), round(height * scale)


def answer_tokens(segments: int) -> int:
    return OUTPUT_TOKENS_PER_ANSWER + OUTPUT_TOKENS_PER_SEGMENT * segments
