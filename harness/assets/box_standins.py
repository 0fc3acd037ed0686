"""Box stand-ins for upstream meshes a local asset copy lacks.

Upstream's `ManiSkill2_real2sim` data holds every model its model databases list and every
mesh its cabinet URDFs name; a partial copy (like the one CI installs from) may not. A task
that needs one would stop, so installing from a local tree writes a box in its place (an
object model: its database bounding box; a cabinet mesh: the collision box at the same spot)
and records it as a stand-in: runs that use it are flagged in manifests and tables.
"""

from __future__ import annotations

import json
from pathlib import Path

from refinevla_bench.harness.assets.catalog import AssetSource
from refinevla_bench.harness.assets.store import StandIn

# (source id, model database, model id): models the Google Robot tasks load
NEEDED_MODELS: tuple[tuple[str, str, str], ...] = (
    ("real2sim_data", "custom/info_pick_custom_v0.json", "bridge_spoon_generated_modified"),
)


# (source id, mesh path under the source, box size in metres, where the size comes from)
NEEDED_MESHES: tuple[tuple[str, str, tuple[float, float, float], str], ...] = (
    (
        "real2sim_data",
        "custom/models/stone_tabletop.glb",
        (0.63, 0.615, 0.02),
        "mk_station3.urdf's tabletop collision box",
    ),
)


def box_obj(low: list[float], high: list[float]) -> str:
    """A closed box mesh (Wavefront OBJ, outward faces) spanning `low`..`high`."""
    corners = [
        (x, y, z) for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])
    ]
    faces = ((1, 2, 4, 3), (5, 7, 8, 6), (1, 5, 6, 2), (3, 4, 8, 7), (1, 3, 7, 5), (2, 6, 8, 4))
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in corners]
    lines += [f"f {a} {b} {c} {d}" for a, b, c, d in faces]
    return "\n".join(lines) + "\n"


def add_box_standins(content: Path, source: AssetSource) -> list[StandIn]:
    """Write a box for every needed model and mesh of `source` missing under `content`."""
    return [*_model_boxes(content, source), *_mesh_boxes(content, source)]


def _mesh_boxes(content: Path, source: AssetSource) -> list[StandIn]:
    import trimesh

    added: list[StandIn] = []
    for source_id, relative, size, origin in NEEDED_MESHES:
        path = content / relative
        if source_id != source.id or path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        trimesh.creation.box(extents=size).export(str(path))
        added.append(
            StandIn(
                path=f"{source.target}/{relative}",
                stand_in_for=f"{source.target}/{relative} (absent in the copy)",
                what=f"box {size[0]} x {size[1]} x {size[2]} m ({origin})",
            )
        )
    return added


def _model_boxes(content: Path, source: AssetSource) -> list[StandIn]:
    added: list[StandIn] = []
    for source_id, database, model_id in NEEDED_MODELS:
        model_dir = content / "custom" / "models" / model_id
        db_path = content / database
        if source_id != source.id or (model_dir / "collision.obj").is_file():
            continue
        if not db_path.is_file():
            continue
        entry = json.loads(db_path.read_text(encoding="utf-8")).get(model_id)
        if entry is None:
            continue
        mesh = box_obj(entry["bbox"]["min"], entry["bbox"]["max"])
        model_dir.mkdir(parents=True, exist_ok=True)
        for name in ("collision.obj", "textured.obj"):
            (model_dir / name).write_text(mesh, encoding="utf-8")
            added.append(
                StandIn(
                    path=f"{source.target}/custom/models/{model_id}/{name}",
                    stand_in_for=f"{source.target}/custom/models/{model_id} (absent in the copy)",
                    what=f"box of the model database's bounding box ({database})",
                )
            )
    return added
