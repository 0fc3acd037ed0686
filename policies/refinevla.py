"""The `refinevla` policy: a checkpoint fine-tuned by the ReFineVLA trainer, acting in the harness.

Its conventions come from the checkpoint's refinevla.json: the rotation and gripper
conventions of the actions it was trained on, and the image size its model takes (resized
bilinearly, as training did). With `reasoning=on` it writes a rationale before every action;
the runner reads them after each step (`last_rationales`, the `ReasoningPolicy` protocol) and
stores them, one per step, in each episode's record.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.devices import torch_device
from refinevla_bench.policies.protocol import (
    ACTION_DIM,
    ObservationBatch,
    PolicyConventions,
)
from refinevla_bench.train.vla_checkpoint import CheckpointInfo, read_checkpoint_info

REASONING_MODES = ("off", "on")


class RefinevlaPolicy:
    """Greedy actions from a fine-tuned VLA, optionally with a rationale per step."""

    # A placeholder for `policies list`: each instance declares its checkpoint's conventions.
    conventions: PolicyConventions = PolicyConventions()
    # Greedy decoding, nothing kept between steps: `serve --max-batch N` may pool rows of many
    # clients into one forward pass.
    stateless = True

    def __init__(
        self,
        checkpoint: str,
        reasoning: str = "off",
        device: str = "auto",
        batch_size: int | None = None,
        max_rationale_tokens: int = 256,
        trust_remote_code: bool = False,
    ) -> None:
        if reasoning not in REASONING_MODES:
            raise HarnessError(
                f"reasoning must be one of {', '.join(REASONING_MODES)}, not '{reasoning}'",
                "pass --policy-arg reasoning=on or --policy-arg reasoning=off",
            )
        if batch_size is not None and batch_size < 1:
            raise HarnessError(
                f"batch_size must be at least 1, got {batch_size}",
                "pass --policy-arg batch_size=N with N >= 1, or leave it unset",
            )
        path = Path(checkpoint)
        info = read_checkpoint_info(path)
        self.conventions = _declared_conventions(path, info)
        self.reasoning = reasoning == "on"
        self.batch_size = batch_size
        self.max_rationale_tokens = max_rationale_tokens
        self._last_rationales: list[str] | None = None

        import torch  # the model stack loads only when a checkpoint is used

        from refinevla_bench.train.vla import VLAModel

        target = torch_device(device)
        dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
        self.vla = VLAModel.from_checkpoint(path, dtype=dtype, trust_remote_code=trust_remote_code)
        self.vla.model.to(target)

    def reset(self, instructions: Sequence[str]) -> None:
        del instructions  # the model keeps no state between steps

    def act(self, observation: ObservationBatch) -> npt.NDArray[np.floating]:
        rows = observation.batch_size
        chunk = self.batch_size or rows
        actions: list[npt.NDArray[np.floating]] = []
        rationales: list[str] = []
        for start in range(0, rows, chunk):
            prediction = self.vla.predict(
                observation.images[start : start + chunk],
                observation.instructions[start : start + chunk],
                reasoning=self.reasoning,
                max_rationale_tokens=self.max_rationale_tokens,
            )
            actions.append(prediction.actions)
            rationales.extend(prediction.rationales or [])
        self._last_rationales = rationales if self.reasoning else None
        return np.concatenate(actions)

    def last_rationales(self) -> Sequence[str] | None:
        """The rationale of each row of the last `act` batch; None with reasoning off."""
        return self._last_rationales


def _declared_conventions(path: Path, info: CheckpointInfo) -> PolicyConventions:
    if info.action_conventions is None:
        raise HarnessError(
            f"checkpoint {path} does not record the action conventions of its training data",
            "set VLAModel.action_conventions (ActionConventions.from_dataset) before saving, "
            "or add action_conventions {rotation, gripper} to its refinevla.json",
        )
    if info.action_dim != ACTION_DIM:
        raise HarnessError(
            f"checkpoint {path} acts in {info.action_dim} dimensions, the harness needs "
            f"{ACTION_DIM}",
            "train on 7-dimensional actions (translation, rotation, gripper)",
        )
    return PolicyConventions(
        rotation=info.action_conventions.rotation,
        gripper=info.action_conventions.gripper,
        image_size=info.image_size,
        resize="bilinear",
    )
