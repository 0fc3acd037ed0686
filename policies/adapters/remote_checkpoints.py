"""Loading checkpoints that ship their own model code (OpenVLA, SpatialVLA): refused until the
user allows the code, built by the checkpoint's classes, failures reduced to one line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from refinevla_bench.harness.choices import one_of
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.policies.adapters.framework import family_environment_fix
from refinevla_bench.policies.adapters.robots import controller_gripper
from refinevla_bench.policies.protocol import PolicyConventions, Robot

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "bfloat16", "float16", "float32")
IMAGE_SIZE = (224, 224)
DETAIL_LIMIT = 300  # characters of a foreign exception kept in a one-line error

Loaded = TypeVar("Loaded")


def remote_vla_conventions(robot: Robot | None) -> PolicyConventions:
    """OpenVLA and SpatialVLA as SimplerEnv evaluates them: roll/pitch/yaw deltas, 224x224
    images resized with OpenCV's INTER_AREA (the harness's `area`, PIL's BOX filter)."""
    return PolicyConventions(
        rotation="roll_pitch_yaw",
        gripper=controller_gripper(robot),
        image_size=IMAGE_SIZE,
        resize="area",
        robot=robot,
    )


def require_trusted(checkpoint: str, trust_remote_code: bool, family: str) -> None:
    """Refuse before anything is downloaded or imported unless the user allowed the code."""
    if not trust_remote_code:
        raise HarnessError(
            f"the {family} checkpoint '{checkpoint}' runs Python code shipped with it "
            "(its published model and processor code), and running checkpoint code is off",
            "review that code, then pass --policy-arg trust_remote_code=true",
        )


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on a GPU (as upstream evaluates), float32 on the CPU."""
    import torch

    chosen = one_of(name, DTYPES, "--policy-arg dtype")
    if chosen == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype: torch.dtype = getattr(torch, chosen)
    return dtype


def run_checkpoint_code(source: str, family: str, load: Callable[[], Loaded]) -> Loaded:
    """`load()`, which runs the checkpoint's code: its failures become one-line errors."""
    try:
        return load()
    except HarnessError:
        raise
    except OSError as error:
        raise HarnessError(
            f"cannot load the {family} checkpoint '{source}': {_one_line(error)}",
            "pass a complete checkpoint folder or a hub id you can reach",
        ) from error
    except Exception as error:  # foreign code: it can fail in any way
        import transformers

        raise HarnessError(
            f"the model code shipped with '{source}' failed under transformers "
            f"{transformers.__version__}: {_one_line(error)}",
            family_environment_fix(family),
        ) from error


def load_remote_model(
    source: str, auto_keys: Sequence[str], dtype: torch.dtype, family: str
) -> tuple[Any, Any]:
    """(config, model) built by the checkpoint's own classes, named by the first of
    `auto_keys` its config.json `auto_map` has (works whether or not the installed
    transformers still has that Auto class)."""
    from transformers import AutoConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    def load() -> tuple[Any, Any]:
        config = AutoConfig.from_pretrained(source, trust_remote_code=True)
        auto_map = dict(getattr(config, "auto_map", None) or {})
        key = next((key for key in auto_keys if key in auto_map), None)
        if key is None:
            raise HarnessError(
                f"the config.json of '{source}' names no {' or '.join(auto_keys)} in its auto_map",
                f"pass a published {family} checkpoint",
            )
        model_class: Any = get_class_from_dynamic_module(auto_map[key], source)
        # `torch_dtype` and `low_cpu_mem_usage` (as upstream loads) for the transformers the
        # families pin; transformers 5 still takes the first and ignores the second
        model = model_class.from_pretrained(
            source, config=config, torch_dtype=dtype, low_cpu_mem_usage=True
        )
        return config, model.eval()

    return run_checkpoint_code(source, family, load)


def rows_by_length(sequences: Sequence[Sequence[int]]) -> list[list[int]]:
    """Row indices grouped by sequence length, in first-seen order: each group stacks into
    one batch without padding."""
    groups: dict[int, list[int]] = {}
    for row, sequence in enumerate(sequences):
        groups.setdefault(len(sequence), []).append(row)
    return list(groups.values())


def _one_line(error: Exception) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 3] + "..."
