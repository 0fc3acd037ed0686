"""Running Octo (JAX): loading a checkpoint and sampling one action chunk per row.

JAX and octo are imported only when a runner is constructed, inside the octo family's
environment (docker/families/octo). API names from octo-models/octo octo/model/octo_model.py:
`OctoModel.load_pretrained`, `create_tasks(texts=...)`, `sample_actions(observations, tasks,
rng=...)`, `dataset_statistics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from refinevla_bench.policies.adapters.framework import import_framework
from refinevla_bench.policies.adapters.octo_decoding import HistoryWindow
from refinevla_bench.policies.adapters.sources import model_source

DEFAULT_CHECKPOINT = "hf://rail-berkeley/octo-base"
_HUB_PREFIX = "hf://"
FAMILY = "octo"


def octo_source(checkpoint: str) -> str:
    """A local checkpoint directory as is; a hub id (with or without `hf://`) as `hf://org/name`,
    the form `OctoModel.load_pretrained` downloads from."""
    source = model_source(checkpoint.removeprefix(_HUB_PREFIX))
    return source if Path(source).exists() else _HUB_PREFIX + source


class OctoRunner:
    """An Octo checkpoint, its per-row language tasks, and chunk sampling.

    Each row is sampled on its own with its own key, as upstream samples one episode with batch
    size one: a row's actions then do not depend on which other rows share its batch."""

    def __init__(self, checkpoint: str = DEFAULT_CHECKPOINT) -> None:
        self._jax = import_framework("jax", FAMILY)
        octo_model = import_framework("octo.model.octo_model", FAMILY)
        self._model = octo_model.OctoModel.load_pretrained(octo_source(checkpoint))
        # octo 1.0 (the version SimplerEnv pins) names the mask `pad_mask`; later versions
        # `timestep_pad_mask` (load_pretrained adds it to the example batch)
        example = self._model.example_batch["observation"]
        self._mask_key = "timestep_pad_mask" if "timestep_pad_mask" in example else "pad_mask"
        self._tasks: list[Any] = []

    def action_statistics(self) -> dict[str, Mapping[str, Sequence[float]]]:
        """Per dataset name, its action statistics (mean, std, and a mask when recorded)."""
        return {
            name: {key: np.asarray(value).tolist() for key, value in stats["action"].items()}
            for name, stats in self._model.dataset_statistics.items()
            if isinstance(stats, Mapping) and "action" in stats
        }

    def set_instructions(self, instructions: Sequence[str]) -> None:
        self._tasks = [self._model.create_tasks(texts=[text]) for text in instructions]

    def set_instruction(self, row: int, instruction: str) -> None:
        self._tasks[row] = self._model.create_tasks(texts=[instruction])

    def sample(
        self, windows: Sequence[HistoryWindow], seeds: Sequence[int]
    ) -> npt.NDArray[np.float64]:
        """Normalised chunks (rows, horizon, action dim), each row with a key from its seed."""
        chunks = []
        for task, window, seed in zip(self._tasks, windows, seeds, strict=True):
            observation = {
                "image_primary": window.frames[None],
                self._mask_key: window.pad_mask[None],
            }
            key = self._jax.random.PRNGKey(seed)
            actions = self._model.sample_actions(observation, task, rng=key)
            chunks.append(np.asarray(actions[0], dtype=np.float64))
        return np.stack(chunks)
