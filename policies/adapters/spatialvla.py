"""The `spatialvla` policy: SpatialVLA through the model and processor code published with
its checkpoint.

As SimplerEnv's evaluation does: 224x224 images (resized there with OpenCV's INTER_AREA, here
with the harness's `area`, PIL's BOX filter), the instruction as the prompt, the processor
called with the robot's statistics key and `do_normalize=False` (the model normalises pixels
itself), greedy generation, the processor's `decode_actions` turning the spatial action tokens
into an un-normalised chunk; `spatialvla_decoding` then ensembles the chunks and maps the
gripper. The published `predict_action` casts every floating input to bfloat16 and generates
up to 256 tokens for one row; here the inputs take the model's dtype (bfloat16 on a GPU, the
same cast), generation stops after the chunk's 3 tokens per action (greedy, so the same
tokens), and rows with inputs of equal length share one pass, unpadded.

Loading runs Python code shipped with the checkpoint, so it needs
`--policy-arg trust_remote_code=true`; the code needs transformers 4.47
(docker/families/spatialvla).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.devices import torch_device
from refinevla_bench.policies.adapters.framework import import_framework
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
from refinevla_bench.policies.adapters.spatialvla_decoding import (
    SpatialVLAPostprocessor,
    select_unnorm_key,
)
from refinevla_bench.policies.protocol import ACTION_DIM, ObservationBatch, PolicyConventions

TOKENS_PER_ACTION = 3  # translation, rotation, gripper
# What the processor makes per row; anything else it returns (the camera intrinsics of the
# statistics key) is the same for every row.
PER_ROW_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values")
PROCESSOR_ATTRIBUTES = ("decode_actions", "action_chunk_size", "statistics", "num_obs_steps")


class SpatialVLAPolicy:
    """SpatialVLA (a chunk of spatial action tokens per step), with SimplerEnv's statistics,
    chunk ensembling and gripper handling."""

    # A placeholder for `policies list`: each instance declares its robot's gripper mode.
    conventions: PolicyConventions = remote_vla_conventions(None)
    # Chunks are ensembled across steps on every robot.
    stateless = False

    def __init__(
        self,
        checkpoint: str = "IPEC-COMMUNITY/spatialvla-4b-224-pt",
        robot: str = "widowx",
        unnorm_key: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
    ) -> None:
        parsed = parse_robot(robot)
        require_trusted(checkpoint, trust_remote_code, "spatialvla")
        self.conventions = remote_vla_conventions(parsed)
        import_framework("torch", "spatialvla")
        import_framework("transformers", "spatialvla")
        from PIL import Image
        from transformers import AutoProcessor

        self._image_from_array = Image.fromarray
        self.device = torch_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        source = model_source(checkpoint)
        _, model = load_remote_model(source, ("AutoModel",), self.dtype, "spatialvla")
        self.model = model.to(self.device)
        self.processor = run_checkpoint_code(
            source,
            "spatialvla",
            lambda: AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]  # untyped
                source, trust_remote_code=True
            ),
        )
        _check_processor(self.processor, checkpoint)
        self.unnorm_key = select_unnorm_key(
            self.processor.statistics, unnorm_key, parsed, checkpoint
        )
        self.chunk_size = int(self.processor.action_chunk_size)
        self.postprocess = SpatialVLAPostprocessor(self.chunk_size, parsed)

    def reset(self, instructions: Sequence[str]) -> None:
        self.postprocess.reset(len(instructions))

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        rows = [
            self.processor(
                images=[self._image_from_array(image)],
                text=instruction,
                unnorm_key=self.unnorm_key,
                return_tensors="pt",
                do_normalize=False,
            )
            for image, instruction in zip(observation.images, observation.instructions, strict=True)
        ]
        chunks = np.zeros((observation.batch_size, self.chunk_size, ACTION_DIM))
        prompts = [row["input_ids"][0].tolist() for row in rows]
        for group in rows_by_length(prompts):
            for row, tokens in zip(group, self._generate([rows[r] for r in group]), strict=True):
                decoded = self.processor.decode_actions(
                    generation_outputs=tokens[None], unnorm_key=self.unnorm_key
                )
                chunks[row] = np.asarray(decoded["actions"], dtype=np.float64)
        return self.postprocess(chunks)

    def _generate(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        """The generated tokens (rows, 3 * chunk) of rows with inputs of equal length."""
        import torch

        batch: dict[str, Any] = {}
        for name, value in rows[0].items():
            if name in PER_ROW_INPUTS:
                value = torch.cat([row[name] for row in rows])
            value = value.to(self.device)
            batch[name] = value.to(self.dtype) if torch.is_floating_point(value) else value
        with torch.inference_mode():
            generated = self.model.generate(
                **batch,
                max_new_tokens=TOKENS_PER_ACTION * self.chunk_size,
                do_sample=False,
            )
        return generated[:, batch["input_ids"].shape[1] :].cpu()


def _check_processor(processor: Any, checkpoint: str) -> None:
    """The published SpatialVLAProcessor's interface, and one image per step (the published
    checkpoints' `num_obs_steps`; image histories are not implemented here)."""
    missing = [name for name in PROCESSOR_ATTRIBUTES if not hasattr(processor, name)]
    if missing:
        raise HarnessError(
            f"the processor of '{checkpoint}' lacks {', '.join(missing)}: it is not "
            "SpatialVLA's published processor",
            "pass a SpatialVLA checkpoint (e.g. IPEC-COMMUNITY/spatialvla-4b-224-pt)",
        )
    if int(processor.num_obs_steps) != 1:
        raise HarnessError(
            f"'{checkpoint}' conditions on {processor.num_obs_steps} images per step; this "
            "adapter feeds one",
            "use a checkpoint with num_obs_steps 1 (the published SpatialVLA checkpoints)",
        )
