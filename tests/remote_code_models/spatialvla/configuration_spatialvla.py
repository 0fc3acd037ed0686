"""SpatialVLA's configuration, tiny: PaliGemma-like (SigLIP vision, Gemma text), with the
published switches for its camera-aware position encoding (`use_vision_zoe`) and its shared
spatial action-token embeddings (`use_spatial_token`)."""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import GemmaConfig, PreTrainedConfig, SiglipVisionConfig


class SpatialVLAConfig(PreTrainedConfig):  # type: ignore[no-untyped-call]  # untyped in transformers
    model_type = "spatialvla"
    sub_configs: ClassVar[dict[str, Any]] = {
        "vision_config": SiglipVisionConfig,
        "text_config": GemmaConfig,
    }

    def __init__(
        self,
        vision_config: dict[str, Any] | SiglipVisionConfig | None = None,
        text_config: dict[str, Any] | GemmaConfig | None = None,
        image_token_index: int = 0,
        use_vision_zoe: bool = True,
        use_spatial_token: bool = True,
        spatial_token_num: int = 0,
        action_token_begin_idx: int = 0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(vision_config, SiglipVisionConfig):
            vision_config = SiglipVisionConfig(**(vision_config or {}))
        if not isinstance(text_config, GemmaConfig):
            text_config = GemmaConfig(**(text_config or {}))
        self.vision_config = vision_config
        self.text_config = text_config
        self.image_token_index = image_token_index
        self.use_vision_zoe = use_vision_zoe
        self.use_spatial_token = use_spatial_token
        self.spatial_token_num = spatial_token_num
        self.action_token_begin_idx = action_token_begin_idx
        super().__init__(**kwargs)
