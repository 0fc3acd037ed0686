"""OpenVLA's model, tiny, with the published interface and layout.

Two vision backbones (`vision_backbone.featurizer` and `.fused_featurizer`, each reading three
of the six channels) feed a projector; the forward splices the projected patches into the
sequence right after the first token (BOS), so logits are longer than `input_ids` by the
number of patches, and spliced `labels` get ignored entries there. Generation handles one row
at a time and drops the image after the first step, as the published code does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import GenerationMixin, LlamaForCausalLM, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_prismatic import OpenVLAConfig

IGNORE_INDEX = -100


class PatchEmbed(nn.Module):
    """Non-overlapping patches to vectors; `num_patches` is where timm keeps the count."""

    def __init__(self, image_size: int, patch_size: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        self.num_patches = (image_size // patch_size) ** 2

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        grid: torch.Tensor = self.proj(pixels)
        return grid.flatten(2).transpose(1, 2)


class Featurizer(nn.Module):
    def __init__(self, image_size: int, patch_size: int, width: int) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(image_size, patch_size, width)
        self.block = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches: torch.Tensor = self.patch_embed(pixels)
        mixed: torch.Tensor = self.block(patches)
        return patches + mixed


class PrismaticVisionBackbone(nn.Module):
    def __init__(self, config: OpenVLAConfig) -> None:
        super().__init__()
        first, second = config.image_sizes
        self.featurizer = Featurizer(first, config.patch_size, config.vision_width)
        self.fused_featurizer = Featurizer(second, config.patch_size, config.vision_width)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        image, fused_image = torch.split(pixel_values, [3, 3], dim=1)
        return torch.cat([self.featurizer(image), self.fused_featurizer(fused_image)], dim=2)


class PrismaticProjector(nn.Module):
    def __init__(self, vision_width: int, text_width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(vision_width, text_width)
        self.act_fn1 = nn.GELU()
        self.fc2 = nn.Linear(text_width, text_width)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        projected: torch.Tensor = self.fc2(self.act_fn1(self.fc1(patches)))
        return projected


class OpenVLAForActionPrediction(PreTrainedModel, GenerationMixin):  # type: ignore[no-untyped-call]  # untyped in transformers
    config_class = OpenVLAConfig
    config: OpenVLAConfig
    _supports_sdpa = True

    def __init__(self, config: OpenVLAConfig) -> None:
        super().__init__(config)
        self.vision_backbone = PrismaticVisionBackbone(config)
        self.projector = PrismaticProjector(2 * config.vision_width, config.text_config.hidden_size)
        self.language_model = LlamaForCausalLM(config.text_config)
        self.post_init()  # type: ignore[no-untyped-call]  # untyped in transformers

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        head: nn.Module = self.language_model.get_output_embeddings()  # type: ignore[no-untyped-call]  # untyped in transformers
        return head

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.language_model.set_output_embeddings(new_embeddings)  # type: ignore[no-untyped-call]  # untyped in transformers

    def resize_token_embeddings(  # type: ignore[override]  # the published signature
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None
    ) -> nn.Embedding:
        resized = self.language_model.resize_token_embeddings(new_num_tokens, pad_to_multiple_of)
        self.config.text_config.vocab_size = resized.num_embeddings
        return resized

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> CausalLMOutputWithPast:
        del return_dict  # outputs are always returned as one object
        shared = {
            "past_key_values": past_key_values,
            "use_cache": use_cache,
            "output_attentions": output_attentions,
            "output_hidden_states": output_hidden_states,
        }
        if pixel_values is None:  # a cached generation step (one row): text only
            output: CausalLMOutputWithPast = self.language_model(
                input_ids=input_ids, labels=labels, **shared
            )
            return output
        if input_ids is None:
            raise ValueError("the multimodal forward needs input_ids")
        patches = self.projector(self.vision_backbone(pixel_values))
        words = self.get_input_embeddings()(input_ids)
        spliced = torch.cat([words[:, :1], patches.to(words.dtype), words[:, 1:]], dim=1)
        patch_count = patches.shape[1]
        spliced_mask = None
        if attention_mask is not None:
            visible = attention_mask.new_ones((attention_mask.shape[0], patch_count))
            spliced_mask = torch.cat([attention_mask[:, :1], visible, attention_mask[:, 1:]], dim=1)
        spliced_labels = None
        if labels is not None:
            ignored = labels.new_full((labels.shape[0], patch_count), IGNORE_INDEX)
            spliced_labels = torch.cat([labels[:, :1], ignored, labels[:, 1:]], dim=1)
        output = self.language_model(
            inputs_embeds=spliced, attention_mask=spliced_mask, labels=spliced_labels, **shared
        )
        return output

    def prepare_inputs_for_generation(  # type: ignore[override]  # the published signature
        self,
        input_ids: torch.LongTensor,
        past_key_values: Any = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if input_ids.shape[0] > 1:
            raise ValueError("Generation with batch size > 1 is not currently supported!")
        if past_key_values is not None and past_key_values.get_seq_length() > 0:
            return {"input_ids": input_ids[:, -1:], "past_key_values": past_key_values}
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values": pixel_values,
            "past_key_values": past_key_values,
            "use_cache": True,
        }
