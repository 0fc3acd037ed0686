"""Task objects from upstream's model databases (real2sim/data/custom/info_*.json).

Upstream's `_build_actor_helper`: multiple convex collision shapes from `collision.obj`, the
model's scale and density from the database entry (density overridable), a physical material,
and the visual mesh preferred as textured.obj, then textured.dae, then textured.glb.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import sapien
from mani_skill.utils.structs.actor import Actor

from refinevla_bench.harness.errors import HarnessError

ASSET_FIX = "refinevla-bench assets fetch --suite google_robot"


@dataclass(frozen=True)
class ModelInfo:
    """One entry of a model database: scale, density and the bounding box (model frame)."""

    model_id: str
    scale: float
    density: float
    bbox_min: tuple[float, float, float]
    bbox_max: tuple[float, float, float]

    @property
    def half_size(self) -> tuple[float, float, float]:
        return tuple(  # type: ignore[return-value]
            (high - low) * self.scale / 2
            for low, high in zip(self.bbox_min, self.bbox_max, strict=True)
        )


@cache
def _database(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def model_info(data_dir: Path, database: str, model_id: str) -> ModelInfo:
    """The database entry of `model_id` (custom/<database>), or a one-line error."""
    path = data_dir / "custom" / database
    if not path.is_file():
        raise HarnessError(f"missing model database {path}", ASSET_FIX)
    entries = _database(path)
    if model_id not in entries:
        raise HarnessError(f"{path} has no model {model_id!r}", "use a model id listed there")
    entry = entries[model_id]
    bbox = entry.get("bbox", {"min": [0.0] * 3, "max": [0.0] * 3})
    return ModelInfo(
        model_id=model_id,
        scale=float(entry.get("scales", [1.0])[0]),
        density=float(entry.get("density", 1000.0)),
        bbox_min=tuple(float(v) for v in bbox["min"]),  # type: ignore[arg-type]
        bbox_max=tuple(float(v) for v in bbox["max"]),  # type: ignore[arg-type]
    )


def visual_file(model_dir: Path) -> Path:
    """Upstream's preference: textured.obj, then .dae, then .glb (else the collision mesh)."""
    for suffix in ("obj", "dae", "glb"):
        path = model_dir / f"textured.{suffix}"
        if path.is_file():
            return path
    return model_dir / "collision.obj"


def build_model(
    scene: Any,
    data_dir: Path,
    info: ModelInfo,
    *,
    name: str,
    friction: float = 0.5,
    density: float | None = None,
    damping: float = 0.1,
    initial_pose: sapien.Pose | None = None,
    static: bool = False,
    scene_idxs: Sequence[int] | None = None,
) -> Actor:
    """A dynamic (or static) actor of the model, with upstream's damping on dynamic ones;
    `scene_idxs` builds it only in those env rows (tasks whose rows hold different models)."""
    model_dir = data_dir / "custom" / "models" / info.model_id
    collision = model_dir / "collision.obj"
    if not collision.is_file():
        raise HarnessError(f"missing Google Robot task asset {collision}", ASSET_FIX)
    builder = scene.create_actor_builder()
    scale = [info.scale] * 3
    material = sapien.physx.PhysxMaterial(friction, friction, 0.0)
    builder.add_multiple_convex_collisions_from_file(
        str(collision),
        scale=scale,
        material=material,
        density=info.density if density is None else density,
    )
    builder.add_visual_from_file(str(visual_file(model_dir)), scale=scale)
    builder.initial_pose = initial_pose or sapien.Pose(p=[0.0, 0.0, 2.0])
    if scene_idxs is not None:
        builder.set_scene_idxs(list(scene_idxs))
    if static:
        actor: Actor = builder.build_static(name=name)
        return actor
    actor = builder.build(name=name)
    actor.set_linear_damping(damping)
    actor.set_angular_damping(damping)
    return actor
