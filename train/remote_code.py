"""The gate in front of checkpoints that ship their own Python code.

Loading such a checkpoint runs that code with the user's rights, so it happens only when the
user asked for it (`trust_remote_code=True`, the CLI's `--trust-remote-code`) after reviewing
the code. Families transformers implements itself are always loaded without running any.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.train.families import NATIVE_MODEL_TYPES, FamilySpec, family_for_model_type

REMOTE_CODE_FIX = (
    "review the Python files shipped with the checkpoint, then pass --trust-remote-code "
    "(trust_remote_code=True) to run them"
)


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
            f"could not load the remote code of '{base}': {type(error).__name__}: {error}",
            "make sure the checkpoint holds the Python files its config.json auto_map names "
            "and that they work with the installed transformers",
        ) from error
