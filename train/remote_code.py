"""The gate in front of checkpoints that ship their own Python code, and their loading.

Loading such a checkpoint runs that code with the user's rights, so it happens only when the
user asked for it (`trust_remote_code=True`, the CLI's `--trust-remote-code`) after reviewing
the code. Families transformers implements itself are always loaded without running any.
Published model code is written against the transformers of its day; when it fails under the
installed one, the error says so on one line and names the version the checkpoint was saved
with, instead of surfacing a traceback from inside that code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
import transformers
from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.train.families import NATIVE_MODEL_TYPES, FamilySpec, family_for_model_type

REMOTE_CODE_FIX = (
    "review the Python files shipped with the checkpoint, then pass --trust-remote-code "
    "(trust_remote_code=True) to run them"
)
DETAIL_LIMIT = 400  # characters of the foreign exception kept in the one-line error

Loaded = TypeVar("Loaded")


def read_config_dict(base: str) -> dict[str, Any]:
    """The checkpoint's config.json as plain data: reading it runs no checkpoint code."""
    try:
        config, _ = PretrainedConfig.get_config_dict(base)
    except (OSError, ValueError) as error:
        raise HarnessError(
            f"cannot read the model config of '{base}': {error}",
            "pass a local checkpoint folder holding config.json, or a hub id you can reach",
        ) from error
    return dict(config)


def needs_remote_code(config: dict[str, Any]) -> bool:
    model_type = str(config.get("model_type", ""))
    if model_type in NATIVE_MODEL_TYPES:
        return False
    return "auto_map" in config or model_type not in CONFIG_MAPPING


def resolve_family(base: str, config: dict[str, Any], *, trust_remote_code: bool) -> FamilySpec:
    """The family of a checkpoint, refusing remote code unless it was allowed."""
    model_type = str(config.get("model_type", ""))
    if needs_remote_code(config):
        if not trust_remote_code:
            raise HarnessError(
                f"'{base}' (model type '{model_type or 'unset'}') needs Python code shipped "
                "with the checkpoint, and running checkpoint code is off",
                REMOTE_CODE_FIX,
            )
        model_type = str(load_remote_config(base).model_type)
    return family_for_model_type(model_type)


def load_remote_config(base: str) -> Any:
    """The config class the checkpoint ships, imported from its own code."""
    try:
        return AutoConfig.from_pretrained(base, trust_remote_code=True)
    except Exception as error:  # foreign code: any failure is a broken or missing checkpoint file
        raise HarnessError(
            f"could not load the remote code of '{base}': {_one_line(error)}",
            "make sure the checkpoint holds the Python files its config.json auto_map names, "
            "and run in an environment with the transformers version it was saved with "
            f"({_saved_with(base)})",
        ) from error


def load_remote_model(base: str, spec: FamilySpec, *, dtype: torch.dtype) -> Any:
    """The model, built by the checkpoint's own code through `spec.auto_class` (or the class
    an older Auto* key of its auto_map names), with the family's config overrides."""
    config = load_remote_config(base)
    auto_map = dict(getattr(config, "auto_map", None) or {})
    keys = [key for key in (spec.auto_class, *spec.auto_class_aliases) if key in auto_map]
    if not keys:
        wanted = " or ".join((spec.auto_class, *spec.auto_class_aliases))
        raise HarnessError(
            f"the config.json of '{base}' names no model class for {wanted} in its auto_map",
            f"restore the published config.json of the {spec.name} checkpoint",
        )
    config.auto_map = {**auto_map, spec.auto_class: auto_map[keys[0]]}
    for name, value in spec.config_overrides:
        setattr(config, name, value)
    auto_model = getattr(transformers, spec.auto_class)

    def build() -> Any:
        return auto_model.from_pretrained(base, config=config, dtype=dtype, trust_remote_code=True)

    return run_checkpoint_code(base, spec, build)


def run_checkpoint_code(base: str, spec: FamilySpec, load: Callable[[], Loaded]) -> Loaded:
    """`load()`, which imports and runs code shipped with the checkpoint. Missing files stay
    OSErrors; any other failure of that code becomes a one-line HarnessError."""
    try:
        return load()
    except OSError:
        raise
    except Exception as error:  # foreign code: it can fail in any way
        raise HarnessError(
            f"the model code shipped with '{base}' ({spec.name}) failed under transformers "
            f"{transformers.__version__}: {_one_line(error)}",
            f"fine-tune {spec.native_alternative} instead, or run in an environment with the "
            f"transformers version the checkpoint names ({_saved_with(base)}) and the packages "
            "its code imports",
        ) from error


def _saved_with(base: str) -> str:
    try:
        return str(read_config_dict(base).get("transformers_version", "unrecorded"))
    except HarnessError:
        return "unrecorded"


def _one_line(error: Exception) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 3] + "..."
