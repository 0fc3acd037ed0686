"""Running RT-1 / RT-1-X (TensorFlow SavedModel policies through tf_agents).

TensorFlow, tensorflow_hub and tf_agents are imported only when a runner is constructed,
inside the rt1 family's environment (docker/families/rt1). As simpler_env/policies/rt1/
rt1_model.py does: the policy is a `SavedModelPyTFEagerPolicy` with its specs from pbtxt, the
instruction is embedded with the Universal Sentence Encoder (large, v5), the image is resized
with `tf.image.resize_with_pad` to 256x320 (bilinear, padding keeps the aspect ratio) and cast
to uint8, and the policy's recurrent state is carried from step to step (here one per row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.framework import import_framework
from refinevla_bench.policies.adapters.rt1_decoding import RT1_OUTPUT_KEYS, TERMINATE_KEY

FAMILY = "rt1"
IMAGE_HEIGHT = 256
IMAGE_WIDTH = 320
DEFAULT_LANGUAGE_MODEL = "https://tfhub.dev/google/universal-sentence-encoder-large/5"
RELEASE_BUCKET = "gs://gdm-robotics-open-x-embodiment/open_x_embodiment_and_rt_x_oss"


@dataclass(frozen=True)
class RT1Release:
    """A published RT-1 checkpoint: its directory name and whether the bucket holds it zipped."""

    name: str
    zipped: bool

    @property
    def default_path(self) -> str:
        return f"checkpoints/{self.name}"  # where SimplerEnv's README puts it

    def download_fix(self) -> str:
        if self.zipped:
            fetch = f"gsutil -m cp -r {RELEASE_BUCKET}/{self.name}.zip . && unzip {self.name}.zip"
        else:
            fetch = f"gsutil -m cp -r {RELEASE_BUCKET}/{self.name} ."
        return (
            f"download it with `{fetch}` (gsutil: https://cloud.google.com/storage/docs/"
            f"gsutil_install) and pass --policy-arg checkpoint=PATH/{self.name}"
        )


RT1_CONVERGED = RT1Release("rt_1_tf_trained_for_000400120", zipped=False)
RT1_X = RT1Release("rt_1_x_tf_trained_for_002272480_step", zipped=True)


def saved_model_directory(checkpoint: str, release: RT1Release) -> Path:
    """The checkpoint as an existing local directory; SavedModels are not on the hub."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return path
    raise HarnessError(
        f"RT-1 checkpoint '{checkpoint}' is not a local directory (the TensorFlow SavedModel "
        "checkpoints are published on Google Cloud Storage, not on the Hugging Face hub)",
        release.download_fix(),
    )


@dataclass
class _Row:
    """One episode's model inputs and recurrent policy state."""

    observation: dict[str, Any]
    state: Any


class RT1Runner:
    """A loaded SavedModel policy stepping each row with its own state and instruction."""

    def __init__(self, checkpoint: str, release: RT1Release, language_model: str) -> None:
        self._tf = import_framework("tensorflow", FAMILY)
        hub = import_framework("tensorflow_hub", FAMILY)
        eager = import_framework("tf_agents.policies.py_tf_eager_policy", FAMILY)
        self._specs = import_framework("tf_agents.specs", FAMILY)
        self._time_step = import_framework("tf_agents.trajectories.time_step", FAMILY)
        directory = saved_model_directory(checkpoint, release)
        self._embed = hub.load(language_model)
        self._policy = eager.SavedModelPyTFEagerPolicy(
            model_path=str(directory), load_specs_from_pbtxt=True, use_tf_function=True
        )
        self._rows: list[_Row] = []

    def reset(self, instructions: Sequence[str]) -> None:
        self._rows = [self._fresh_row(text) for text in instructions]

    def reset_row(self, row: int, instruction: str) -> None:
        self._rows[row] = self._fresh_row(instruction)

    def _fresh_row(self, instruction: str) -> _Row:
        """Zeroed observation fields (as upstream's dummy observation) with the instruction's
        embedding, and the initial recurrent state."""
        spec = self._specs.from_spec(self._policy.time_step_spec.observation)
        observation = dict(self._specs.zero_spec_nest(spec))
        observation["natural_language_embedding"] = self._embed([instruction])[0]
        return _Row(observation, self._policy.get_initial_state(batch_size=1))

    def act(self, images: npt.NDArray[np.uint8]) -> dict[str, npt.NDArray[np.float64]]:
        """Per-row stacked outputs: RT1_OUTPUT_KEYS and the terminate one-hot."""
        if images.shape[0] != len(self._rows):
            raise ValueError(f"{images.shape[0]} images after a reset for {len(self._rows)} rows")
        tf = self._tf
        outputs: dict[str, list[npt.NDArray[np.float64]]] = {
            key: [] for key in (*RT1_OUTPUT_KEYS, TERMINATE_KEY)
        }
        for row, image in zip(self._rows, images, strict=True):
            resized = tf.image.resize_with_pad(
                image, target_height=IMAGE_HEIGHT, target_width=IMAGE_WIDTH
            )
            row.observation["image"] = tf.cast(resized, tf.uint8)
            step = self._time_step.transition(
                row.observation, reward=np.zeros((), dtype=np.float32)
            )
            policy_step = self._policy.action(step, row.state)
            row.state = policy_step.state
            for key, values in outputs.items():
                values.append(np.asarray(policy_step.action[key], dtype=np.float64).reshape(-1))
        return {key: np.stack(values) for key, values in outputs.items()}
