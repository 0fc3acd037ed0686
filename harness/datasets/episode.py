"""The one episode view the teacher and the trainer read, whatever format the data came from.

Readers turn LeRobot and RLDS episodes into `EpisodeView`s; nothing downstream knows which
format it was. Frames are decoded only when asked for: a teacher samples a handful per episode,
and decoding every frame of ~125k trajectories would dominate annotation time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

# Feature names shared by writer, readers and the teacher (LeRobot naming, dotted).
STATE_KEY = "observation.state"  # proprioception as the dataset defines it
PRIVILEGED_PREFIX = "observation.privileged."  # + a key of policies.protocol.PRIVILEGED_STATE_KEYS
IMAGE_PREFIX = "observation.images."  # + a camera name

FrameLoader = Callable[[str, Sequence[int]], npt.NDArray[np.uint8]]


@dataclass(frozen=True)
class EpisodeView:
    """One trajectory: language, per-step actions and state, and frames on demand.

    `state` maps feature names (`observation.state`, `observation.privileged.tcp_pose`, ...) to
    arrays with one row per step. `metadata` carries what the source knows about the episode
    beyond LeRobot's fields: for episodes `collect` recorded, the suite, task, grid episode id,
    seed, success, and the scene's object names (`source_object`, `target_object`).
    """

    dataset: str
    index: int
    instruction: str
    fps: float
    actions: npt.NDArray[np.float32]  # (length, action_dim)
    state: Mapping[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    cameras: tuple[str, ...] = ()  # camera feature names, e.g. "observation.images.image"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    load_frames: FrameLoader | None = field(default=None, repr=False, compare=False)

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])

    def privileged(self, key: str) -> npt.NDArray[np.float64] | None:
        """A privileged state series (`tcp_pose`, `source_pose`, ...) or None when unrecorded."""
        return self.state.get(PRIVILEGED_PREFIX + key)

    def frames(self, steps: Sequence[int], camera: str | None = None) -> npt.NDArray[np.uint8]:
        """RGB frames (len(steps), height, width, 3) of one camera (default: the first)."""
        if self.load_frames is None or not self.cameras:
            raise ValueError(f"episode {self.index} of {self.dataset} has no frames")
        name = camera or self.cameras[0]
        if name not in self.cameras:
            raise ValueError(f"episode {self.index} has no camera {name}; it has {self.cameras}")
        bad = [step for step in steps if not 0 <= step < self.length]
        if bad:
            raise IndexError(f"steps {bad} outside episode {self.index} of length {self.length}")
        return self.load_frames(name, steps)


class EpisodeSource(Protocol):
    """A dataset on disk, opened for reading episodes in order."""

    name: str
    fps: float

    def __len__(self) -> int: ...

    def episode(self, index: int) -> EpisodeView: ...

    def __iter__(self) -> Iterator[EpisodeView]: ...
