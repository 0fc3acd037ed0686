"""OpenVLA's configuration, tiny: one image size per vision backbone and a Llama text config.

The published config names timm backbones; here a patch size and width stand in for them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import LlamaConfig, PreTrainedConfig


class OpenVLAConfig(PreTrainedConfig):  # type: ignore[no-untyped-call]  # untyped in transformers
    model_type = "openvla"
    sub_configs: ClassVar[dict[str, Any]] = {"text_config": LlamaConfig}

    def __init__(
        self,
        image_sizes: list[int] | None = None,
        patch_size: int = 8,
        vision_width: int = 16,
        text_config: dict[str, Any] | LlamaConfig | None = None,
        **kwargs: Any,
    ) -> None:
        self.image_sizes = list(image_sizes or [32, 32])
        self.patch_size = patch_size
        self.vision_width = vision_width
        if not isinstance(text_config, LlamaConfig):
            text_config = LlamaConfig(**(text_config or {}))
        self.text_config = text_config
        super().__init__(**kwargs)
