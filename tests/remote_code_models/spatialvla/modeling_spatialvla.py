"""SpatialVLA's model, tiny, with the published interface and layout.

PaliGemma-like: `<image>` placeholders take the projected SigLIP patches (plus a position
encoding computed from the camera `intrinsic`, standing in for the published depth-based
one), then a Gemma language model. As published: the attention mask is the training one
(causal, prefix bidirectional by `token_type_ids`) only when `labels` are given, otherwise a
first pass attends over every input token; spatial action tokens share `spatial_embed_tokens`,
which `from_pretrained` copies into the last rows of the input embeddings.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from transformers import GemmaForCausalLM, GenerationMixin, PreTrainedModel, SiglipVisionModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_spatialvla import SpatialVLAConfig

IGNORE_INDEX = -100


class SpatialVLAForConditionalGeneration(PreTrainedModel, GenerationMixin):  # type: ignore[no-untyped-call]  # untyped in transformers
    config_class = SpatialVLAConfig
    config: SpatialVLAConfig
    _supports_sdpa = True

    def __init__(self, config: SpatialVLAConfig) -> None:
        super().__init__(config)
        vision_width = config.vision_config.hidden_size
        text_width = config.text_config.hidden_size
        self.vision_tower = SiglipVisionModel(config.vision_config)
        self.multi_modal_projector = nn.Linear(vision_width, text_width)
        self.language_model = GemmaForCausalLM(config.text_config)
        if config.use_vision_zoe:
            self.position_embedding_3d = nn.Linear(9, vision_width)
        if config.use_spatial_token:
            self.spatial_embed_tokens = nn.Embedding(config.spatial_token_num, text_width)
        self.post_init()  # type: ignore[no-untyped-call]  # untyped in transformers

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        model: Any = super().from_pretrained(*args, **kwargs)
        if model.config.use_spatial_token:
            rows = model.config.spatial_token_num
            embeddings = model.get_input_embeddings().weight
            embeddings.data[-rows:] = model.spatial_embed_tokens.weight.data
        return model

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        head: nn.Module = self.language_model.get_output_embeddings()  # type: ignore[no-untyped-call]  # untyped in transformers
        return head

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.language_model.set_output_embeddings(new_embeddings)  # type: ignore[no-untyped-call]  # untyped in transformers

    def image_features(
        self, pixel_values: torch.Tensor, intrinsic: torch.Tensor | None
    ) -> torch.Tensor:
        """Pixels arrive in [0, 1]: the model normalises them for SigLIP itself."""
        patches = self.vision_tower((pixel_values - 0.5) / 0.5).last_hidden_state
        if self.config.use_vision_zoe:
            if intrinsic is None:
                raise ValueError("use_vision_zoe needs the camera `intrinsic` (b, 3, 3)")
            camera = intrinsic.reshape(-1, 9).expand(patches.shape[0], 9) / 100.0
            patches = patches + self.position_embedding_3d(camera.to(patches.dtype))[:, None]
        projected: torch.Tensor = self.multi_modal_projector(patches)
        return projected / math.sqrt(self.config.text_config.hidden_size)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        actions: torch.FloatTensor | None = None,
        intrinsic: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        token_type_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_logits_to_keep: int = 0,
    ) -> CausalLMOutputWithPast:
        del actions, return_dict  # continuous actions are a published option this model ignores
        if input_ids is None:
            raise ValueError("this model needs input_ids")
        embeddings = self.get_input_embeddings()(input_ids).clone()
        if self.config.use_spatial_token:
            spatial = input_ids - self.config.action_token_begin_idx
            selected = (spatial >= 0) & (spatial < self.config.spatial_token_num)
            embeddings[selected] = self.spatial_embed_tokens(spatial[selected])
        if pixel_values is not None:
            features = self.image_features(pixel_values, intrinsic).to(embeddings.dtype)
            slots = (input_ids == self.config.image_token_index).unsqueeze(-1)
            embeddings = embeddings.masked_scatter(slots.expand_as(embeddings), features)
        seen = past_key_values.get_seq_length() if past_key_values is not None else 0
        mask = attention_mask
        if mask is None:
            mask = input_ids.new_ones((input_ids.shape[0], seen + input_ids.shape[1]))
        training = token_type_ids is not None and labels is not None
        bias = self._attention_bias(
            mask, token_type_ids if training else None, input_ids.shape[1], seen
        ).to(embeddings.dtype)
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
        output: CausalLMOutputWithPast = self.language_model(
            inputs_embeds=embeddings,
            attention_mask=bias,
            position_ids=positions + 1,  # PaliGemma counts positions from 1
            past_key_values=past_key_values,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            logits_to_keep=num_logits_to_keep,
        )
        if labels is not None and output.logits is not None:
            logits = output.logits[:, :-1].float()
            targets = labels[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)
            output.loss = functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
            )
        return output

    @staticmethod
    def _attention_bias(
        attention_mask: torch.Tensor, prefix_types: torch.Tensor | None, queries: int, seen: int
    ) -> torch.Tensor:
        """(B, 1, queries, keys) additive mask. Training: causal, and every query sees the
        prefix (token type 0). A first pass outside training: every input sees every other.
        Cached steps: causal. Padding keys are never seen."""
        keys = attention_mask.shape[1]
        query_at = torch.arange(seen, seen + queries, device=attention_mask.device)
        key_at = torch.arange(keys, device=attention_mask.device)
        allowed = (key_at[None, :] <= query_at[:, None]).unsqueeze(0)
        if prefix_types is not None:
            allowed = allowed | (prefix_types == 0)[:, None, :]
        elif seen == 0:
            allowed = torch.ones_like(allowed)
        allowed = allowed & attention_mask.bool()[:, None, :]
        blocked = torch.finfo(torch.float32).min
        bias = torch.zeros(allowed.shape, device=attention_mask.device)
        return bias.masked_fill(~allowed, blocked).unsqueeze(1)

    def prepare_inputs_for_generation(  # type: ignore[override]  # the published signature
        self,
        input_ids: torch.LongTensor,
        past_key_values: Any = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        intrinsic: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        del token_type_ids  # token types shape the mask only in training
        first = past_key_values is None or past_key_values.get_seq_length() == 0
        inputs: dict[str, Any] = {
            "input_ids": input_ids if first else input_ids[:, -1:],
            "attention_mask": attention_mask,
            "past_key_values": past_key_values,
            "use_cache": True,
        }
        if first:
            inputs.update(pixel_values=pixel_values, intrinsic=intrinsic)
        return inputs
