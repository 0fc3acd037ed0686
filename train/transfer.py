"""Selective transfer: which parameters of a pretrained VLA fine-tuning may change.

ReFineVLA freezes the lower layers and trains the upper transformer blocks and the head.
Modes:
- `top_k`: the top k decoder blocks and the head train; everything else (vision tower,
  projector, lower blocks, embeddings unless the head owns them) is frozen;
- `lora`: every base weight is frozen; low-rank adapters (peft) go on the linear layers of the
  top k blocks (or of all blocks), and the head trains in full;
- `full`: every parameter trains.
The rule is "frozen unless named": a module a family adds later is frozen, never silently
trained. One exception keeps the added tokens learnable: where the input embeddings are not
tied to the trained head, their rows of the added tokens (end-of-rationale marker, action bins)
train while every other row stays frozen (a gradient mask), since those rows start identical
and a frozen copy could never tell one action token from another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from transformers import PreTrainedModel

from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.train.vla import VLAModel

TransferMode = Literal["top_k", "lora", "full"]
LoraScope = Literal["top_k", "all"]
TRANSFER_MODES: tuple[TransferMode, ...] = ("top_k", "lora", "full")
LORA_SCOPES: tuple[LoraScope, ...] = ("top_k", "all")
ADAPTER_MARKER = "lora_"  # peft names adapter parameters lora_A / lora_B / lora_embedding_*


@dataclass(frozen=True)
class TransferSettings:
    mode: TransferMode = "top_k"
    top_k: int = 4  # decoder blocks trained (top_k mode) or adapted (lora mode, scope top_k)
    lora_rank: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_scope: LoraScope = "top_k"
    lora_targets: tuple[str, ...] = ()  # linear layer names (q_proj, ...); empty: every linear

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "lora_targets": list(self.lora_targets)}


@dataclass(frozen=True)
class GroupCount:
    name: str
    trainable: int
    total: int


@dataclass(frozen=True)
class TransferReport:
    mode: TransferMode
    decoder_blocks: int
    trained_blocks: tuple[int, ...]  # indices, bottom = 0, of blocks that train or get adapters
    groups: tuple[GroupCount, ...]
    # Parameters of which only the added tokens' rows train; weight decay must skip them, or
    # it would shrink the rows their zero gradient leaves alone.
    row_masked: tuple[str, ...] = ()

    @property
    def trainable(self) -> int:
        return sum(group.trainable for group in self.groups)

    @property
    def total(self) -> int:
        return sum(group.total for group in self.groups)

    def lines(self) -> list[str]:
        blocks = ", ".join(str(index) for index in self.trained_blocks) or "none"
        lines = [
            f"transfer {self.mode}: decoder blocks trained/adapted {blocks} "
            f"of 0..{self.decoder_blocks - 1}",
        ]
        lines += [
            f"  {group.name:<14} {group.trainable:>14,} trainable of {group.total:>14,}"
            for group in self.groups
        ]
        share = 100 * self.trainable / self.total if self.total else 0.0
        lines.append(
            f"  {'all':<14} {self.trainable:>14,} trainable of {self.total:>14,} ({share:.2f}%)"
        )
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "decoder_blocks": self.decoder_blocks,
            "trained_blocks": list(self.trained_blocks),
            "groups": [asdict(group) for group in self.groups],
            "trainable": self.trainable,
            "total": self.total,
            "row_masked": list(self.row_masked),
        }


def apply_transfer(vla: VLAModel, settings: TransferSettings) -> TransferReport:
    """Set requires_grad (and add adapters in `lora` mode) on `vla.model`, in place."""
    blocks = list(vla.decoder_layers())
    vision = vla.vision_modules()
    head = vla.head_modules()
    trained = _trained_blocks(settings, len(blocks))
    model = vla.model
    if settings.mode == "full":
        model.requires_grad_(True)
    else:
        model.requires_grad_(False)
        if settings.mode == "top_k":
            for index in trained:
                blocks[index].requires_grad_(True)
        else:
            _add_adapters(model, [blocks[index] for index in trained], settings)
        for module in head:
            module.requires_grad_(True)
    embeddings = _input_embeddings(model)
    row_masked: tuple[str, ...] = ()
    if not embeddings.weight.requires_grad:
        _train_rows(embeddings.weight, vla.layout_token_ids())
        row_masked = (_parameter_name(model, embeddings.weight),)
    groups = _count_groups(
        model,
        [
            ("head", head),
            ("vision", vision),
            ("decoder top", [blocks[index] for index in trained]),
            ("decoder rest", [b for i, b in enumerate(blocks) if i not in trained]),
            ("embeddings", [embeddings]),
        ],
        rows_of={id(embeddings.weight): len(vla.layout_token_ids())} if row_masked else {},
    )
    return TransferReport(settings.mode, len(blocks), trained, groups, row_masked)


def merge_adapters(model: torch.nn.Module) -> int:
    """Fold LoRA adapters into their base weights and drop them, so the saved checkpoint is a
    plain model of its family that loads without peft; returns how many layers were merged."""
    adapted = [
        (name, module) for name, module in model.named_modules() if isinstance(module, LoraLayer)
    ]
    for name, module in adapted:
        module.merge()
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child_name, module.get_base_layer())
    return len(adapted)


def _input_embeddings(model: torch.nn.Module) -> torch.nn.Embedding:
    embeddings = model.get_input_embeddings() if isinstance(model, PreTrainedModel) else None
    if not isinstance(embeddings, torch.nn.Embedding):
        raise HarnessError(
            f"{type(model).__name__} has no input embedding table to add action tokens to",
            "fine-tune a transformers VLM of a supported family",
        )
    return embeddings


def _train_rows(weight: torch.Tensor, rows: Sequence[int]) -> None:
    keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    keep[list(rows)] = 1
    weight.requires_grad_(True)
    weight.register_hook(  # type: ignore[no-untyped-call]  # untyped in torch
        lambda grad: grad * keep.to(grad.device, grad.dtype)
    )


def _parameter_name(model: torch.nn.Module, parameter: torch.Tensor) -> str:
    return next(name for name, found in model.named_parameters() if found is parameter)


def _trained_blocks(settings: TransferSettings, count: int) -> tuple[int, ...]:
    if settings.mode not in TRANSFER_MODES:
        raise HarnessError(
            f"unknown transfer mode '{settings.mode}'", f"use one of {', '.join(TRANSFER_MODES)}"
        )
    if settings.mode == "full" or (settings.mode == "lora" and settings.lora_scope == "all"):
        return tuple(range(count))
    if not 0 <= settings.top_k <= count:
        raise HarnessError(
            f"--top-k {settings.top_k} is outside 0..{count}: the model has {count} decoder blocks",
            f"pass --top-k between 0 (head only) and {count}",
        )
    return tuple(range(count - settings.top_k, count))


def _add_adapters(
    model: torch.nn.Module, blocks: Sequence[torch.nn.Module], settings: TransferSettings
) -> None:
    if settings.lora_scope not in LORA_SCOPES:
        raise HarnessError(
            f"unknown LoRA scope '{settings.lora_scope}'", f"use one of {', '.join(LORA_SCOPES)}"
        )
    in_blocks = {id(module) for block in blocks for module in block.modules()}
    targets = [
        name
        for name, module in model.named_modules()
        if id(module) in in_blocks
        and isinstance(module, torch.nn.Linear)
        and (not settings.lora_targets or name.rpartition(".")[2] in settings.lora_targets)
    ]
    if not targets:
        wanted = ", ".join(settings.lora_targets) or "any linear layer"
        raise HarnessError(
            f"no linear layer ({wanted}) in the adapted decoder blocks",
            "pass --lora-targets with names of the blocks' linear layers (e.g. q_proj,v_proj), "
            "or a --top-k above 0",
        )
    config = LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets,
    )
    inject_adapter_in_model(config, model)


def _count_groups(
    model: torch.nn.Module,
    named: Sequence[tuple[str, Iterable[torch.nn.Module]]],
    rows_of: Mapping[int, int],
) -> tuple[GroupCount, ...]:
    """Parameters counted once each (tied weights too), adapters first, then the first group
    that holds them, in the order given; the rest under `other`. A row-masked parameter
    counts its trained rows (`rows_of`, by parameter id) as trainable."""
    seen: set[int] = set()
    counts: list[GroupCount] = []

    def claim(name: str, parameters: Iterable[tuple[str, torch.nn.Parameter]]) -> None:
        trainable = total = 0
        for parameter_name, parameter in parameters:
            if id(parameter) in seen:
                continue
            if name != "adapters" and ADAPTER_MARKER in parameter_name:
                continue
            seen.add(id(parameter))
            total += parameter.numel()
            if id(parameter) in rows_of:
                trainable += rows_of[id(parameter)] * parameter.shape[1]
            elif parameter.requires_grad:
                trainable += parameter.numel()
        if total:
            counts.append(GroupCount(name, trainable, total))

    claim(
        "adapters",
        [(n, p) for n, p in model.named_parameters() if ADAPTER_MARKER in n],
    )
    for name, modules in named:
        claim(name, [item for module in modules for item in module.named_parameters()])
    claim("other", list(model.named_parameters()))
    return tuple(counts)
