"""The `openvla` policy: OpenVLA through the model code published with its checkpoint.

As SimplerEnv's evaluation does: 224x224 images (resized there with OpenCV's INTER_AREA, here
with the harness's `area`, PIL's BOX filter), the instruction as the prompt, OpenVLA's empty
token appended after it, 7 greedy action tokens. The tokens are decoded by our
`openvla_decoding` (the published bin rule, statistics from the checkpoint's config) rather
than by the model's `predict_action`, which generates one row at a time: rows with prompts of
equal length share one forward pass here, with no padding, so each row's result is the one it
would get alone.

Loading runs Python code shipped with the checkpoint, so it needs
`--policy-arg trust_remote_code=true`; the code pins transformers 4.40.1 and timm 0.9
(docker/families/openvla).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.choices import one_of
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.devices import torch_device
from refinevla_bench.policies.adapters.framework import import_framework
from refinevla_bench.policies.adapters.openvla_decoding import (
    OpenVLADecoder,
    action_statistics,
    select_unnorm_key,
)
from refinevla_bench.policies.adapters.remote_checkpoints import (
    load_remote_model,
    pick_dtype,
    remote_vla_conventions,
    require_trusted,
    rows_by_length,
    run_checkpoint_code,
)
from refinevla_bench.policies.adapters.robots import parse_robot
from refinevla_bench.policies.adapters.sources import model_source
from refinevla_bench.policies.protocol import (
    ACTION_DIM,
    ObservationBatch,
    PolicyConventions,
    Robot,
)

if TYPE_CHECKING:
    import torch

# "simpler": the instruction as is (SimplerEnv's evaluation); "openvla": the template of
# OpenVLA's own README and evaluations.
PROMPTS = ("simpler", "openvla")
# The SentencePiece piece OpenVLA's predict_action appends after the prompt (id 29871 in its
# Llama-2 vocabulary), as its training inputs had it.
EMPTY_PIECE = "\u2581"


def prompt_text(instruction: str, style: str) -> str:
    """What the tokenizer gets: the instruction as is (`simpler`) or OpenVLA's template."""
    if style == "openvla":
        return f"In: What action should the robot take to {instruction.lower()}?\nOut:"
    return instruction


def with_empty_token(ids: list[int], empty_token_id: int | None) -> list[int]:
    """The prompt's ids ending in the empty piece, as `predict_action` makes them."""
    if empty_token_id is None or ids[-1] == empty_token_id:
        return ids
    return [*ids, empty_token_id]


class OpenVLAPolicy:
    """OpenVLA (7 greedy action tokens per step), with SimplerEnv's per-robot statistics and
    gripper handling."""

    # A placeholder for `policies list`: each instance declares its robot's gripper mode.
    conventions: PolicyConventions = remote_vla_conventions(None)

    def __init__(
        self,
        checkpoint: str = "openvla/openvla-7b",
        robot: str = "widowx",
        unnorm_key: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        prompt: str = "simpler",
    ) -> None:
        parsed = parse_robot(robot)
        self.prompt_style = one_of(prompt, PROMPTS, "--policy-arg prompt")
        require_trusted(checkpoint, trust_remote_code, "openvla")
        self.conventions = remote_vla_conventions(parsed)
        # The sticky gripper on Google Robot carries state from step to step.
        self.stateless = parsed == "widowx"
        import_framework("torch", "openvla")
        import_framework("transformers", "openvla")
        from PIL import Image
        from transformers import AutoImageProcessor, AutoTokenizer

        self._image_from_array = Image.fromarray
        self.device = torch_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        source = model_source(checkpoint)
        config, model = load_remote_model(
            source, ("AutoModelForVision2Seq", "AutoModelForImageTextToText"), self.dtype, "openvla"
        )
        self.model = model.to(self.device)
        self.tokenizer, self.image_processor = run_checkpoint_code(
            source,
            "openvla",
            lambda: (
                AutoTokenizer.from_pretrained(source, trust_remote_code=True),
                AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]  # untyped
                    source, trust_remote_code=True
                ),
            ),
        )
        self.decoder = _decoder_from_config(config, unnorm_key, parsed, checkpoint)
        self.empty_token_id = _empty_token_id(self.tokenizer)

    def reset(self, instructions: Sequence[str]) -> None:
        self.decoder.reset(len(instructions))

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        import torch

        prompts = [self._prompt_ids(text) for text in observation.instructions]
        images = [self._image_from_array(image) for image in observation.images]
        pixels = self.image_processor(images, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, dtype=self.dtype)
        tokens = np.zeros((observation.batch_size, ACTION_DIM), dtype=np.int64)
        for rows in rows_by_length(prompts):
            ids = torch.tensor([prompts[row] for row in rows], device=self.device)
            tokens[rows] = self._greedy_tokens(ids, pixels[rows])
        return self.decoder(tokens)

    def _prompt_ids(self, instruction: str) -> list[int]:
        ids = self.tokenizer(prompt_text(instruction, self.prompt_style))["input_ids"]
        return with_empty_token(list(ids), self.empty_token_id)

    def _greedy_tokens(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor
    ) -> npt.NDArray[np.int64]:
        """7 greedy tokens for rows of equal prompt length. The first pass goes through the
        published multimodal forward; the cached steps go to its `language_model` directly,
        as that forward does itself for one row (it refuses cached steps of several rows)."""
        import torch

        chosen: list[torch.Tensor] = []
        with torch.inference_mode():
            output = self.model(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                pixel_values=pixel_values,
                use_cache=True,
            )
            for step in range(ACTION_DIM):
                token = output.logits[:, -1].argmax(dim=-1)
                chosen.append(token)
                if step + 1 < ACTION_DIM:
                    output = self.model.language_model(
                        input_ids=token[:, None],
                        past_key_values=output.past_key_values,
                        use_cache=True,
                    )
        tokens: npt.NDArray[np.int64] = torch.stack(chosen, dim=1).cpu().numpy()
        return tokens


def _decoder_from_config(
    config: Any, unnorm_key: str | None, robot: Robot, checkpoint: str
) -> OpenVLADecoder:
    """The published OpenVLAConfig keeps the statistics (`norm_stats`), the bin count
    (`n_action_bins`) and the rows its vocabulary was padded with (`pad_to_multiple_of`)."""
    norm_stats = getattr(config, "norm_stats", None)
    n_bins = getattr(config, "n_action_bins", None)
    padding = getattr(config, "pad_to_multiple_of", None)
    if not isinstance(norm_stats, dict) or not norm_stats or n_bins is None or padding is None:
        raise HarnessError(
            f"'{checkpoint}' is not an OpenVLA checkpoint: its config lacks norm_stats, "
            "n_action_bins or pad_to_multiple_of",
            "pass an OpenVLA checkpoint (e.g. openvla/openvla-7b)",
        )
    key = select_unnorm_key(norm_stats, unnorm_key, robot, checkpoint)
    vocabulary = int(config.text_config.vocab_size) - int(padding)
    return OpenVLADecoder(vocabulary, int(n_bins), action_statistics(norm_stats, key), robot)


def _empty_token_id(tokenizer: Any) -> int | None:
    """The id of the empty piece, or None when the vocabulary has no such token."""
    found = tokenizer.convert_tokens_to_ids(EMPTY_PIECE)
    if not isinstance(found, int) or found == tokenizer.unk_token_id:
        return None
    return found
