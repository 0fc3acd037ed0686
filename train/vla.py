"""A pretrained VLM turned into a reasoning-aware VLA: the ReFineVLA model interface.

The model reads prompt (image + instruction) and writes rationale tokens, an end-of-rationale
marker, one token per action dimension and eos. Training scores the action and rationale
tokens separately so the trainer can weigh them (loss = action + lambda x rationale); acting
decodes greedily with action positions constrained to action tokens. The family table
(`train/families.py`) holds everything that differs between VLM families, including how the
remote-code families' published forwards differ (OpenVLA splices the image in after BOS, so
its targets sit at later output positions; SpatialVLA builds its training mask only when
given labels).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import transformers
from torch import nn
from torch.nn import functional
from transformers import AutoImageProcessor, AutoTokenizer, GenerationConfig, LogitsProcessorList
from transformers.utils.hub import cached_file

from refinevla_bench import __version__
from refinevla_bench.harness.errors import HarnessError
from refinevla_bench.harness.observations import resize_images
from refinevla_bench.train.action_decoding import (
    ActionLayoutProcessor,
    DecodedRow,
    Grammar,
    split_generated,
)
from refinevla_bench.train.action_tokens import ActionStats, ActionTokenizer
from refinevla_bench.train.families import FamilySpec, family_by_name, module_at
from refinevla_bench.train.family_prompts import PromptBatch, PromptParts
from refinevla_bench.train.remote_code import (
    REMOTE_CODE_FIX,
    load_remote_model,
    read_config_dict,
    resolve_family,
    run_checkpoint_code,
)
from refinevla_bench.train.token_layout import (
    RowTokens,
    TokenBatch,
    by_output_position,
    prompt_batch,
    training_batch,
    unshifted_labels,
)
from refinevla_bench.train.vla_checkpoint import (
    ActionConventions,
    CheckpointInfo,
    read_action_stats,
    read_checkpoint_info,
    write_checkpoint_files,
)

MARKER_TOKEN = "<end_of_rationale>"
PROCESSOR_CONFIG = "processor_config.json"  # where SpatialVLA keeps its camera intrinsics


@dataclass(frozen=True)
class TrainingExample:
    """One step of a reasoning-enriched dataset."""

    image: npt.NDArray[np.uint8]  # (H, W, 3)
    instruction: str
    rationale: str  # "" when the step has none: its rationale loss is then masked
    action: npt.NDArray[np.float32]  # (D,)


@dataclass
class EncodedBatch:
    """Model inputs with shifted targets: `labels[:, t]` is the token the output at t must
    predict (-100 where nothing is trained); the masks mark those positions by kind. Outputs
    outnumber inputs for a model that splices its image in (see `token_layout`)."""

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor  # (B, T)
    action_mask: torch.Tensor  # (B, T) bool
    rationale_mask: torch.Tensor  # (B, T) bool, rationale tokens and their end marker

    def to(self, device: torch.device | str) -> EncodedBatch:
        return EncodedBatch(
            inputs={key: value.to(device) for key, value in self.inputs.items()},
            labels=self.labels.to(device),
            action_mask=self.action_mask.to(device),
            rationale_mask=self.rationale_mask.to(device),
        )


@dataclass(frozen=True)
class LossTerms:
    action: torch.Tensor  # mean cross-entropy over action-token targets
    rationale: torch.Tensor  # mean cross-entropy over rationale targets; 0 when there are none
    action_accuracy: torch.Tensor  # share of action tokens whose constrained argmax is right
    action_tokens: int
    rationale_tokens: int


@dataclass(frozen=True)
class Prediction:
    actions: npt.NDArray[np.float64]  # (B, D), de-tokenised with the checkpoint's statistics
    rationales: list[str] | None  # generated text when reasoning was on


@dataclass(frozen=True)
class _Parts:
    model: Any
    tokenizer: Any
    image_processor: Any
    intrinsic_config: Mapping[str, Any] | None = None


class VLAModel:
    """A VLM with action tokens, an end-of-rationale marker and the family's layout."""

    def __init__(
        self,
        *,
        spec: FamilySpec,
        parts: _Parts,
        action_tokenizer: ActionTokenizer,
        image_size: tuple[int, int] | None = None,
        action_conventions: ActionConventions | None = None,
        base: str = "",
    ) -> None:
        self.spec = spec
        self.family: str = spec.name
        self.model: nn.Module = parts.model
        self.tokenizer = parts.tokenizer
        self.image_processor = parts.image_processor
        self.action_tokenizer = action_tokenizer
        self.prompt_parts = PromptParts(
            parts.tokenizer, parts.image_processor, parts.model.config, parts.intrinsic_config
        )
        self.image_size = image_size or spec.image_size(self.prompt_parts)
        # Recorded in refinevla.json for the policy: set it from the training data before save.
        self.action_conventions = action_conventions
        self.base = base
        self.marker_id = _token_id(parts.tokenizer, MARKER_TOKEN)
        self.action_token_ids = [
            _token_id(parts.tokenizer, token) for token in action_tokenizer.token_strings
        ]
        self.eos_id = _token_id(parts.tokenizer, parts.tokenizer.eos_token)
        pad = parts.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.eos_id
        self.image_token_id = spec.image_token_id(parts.model.config)
        self.inserted_patches = spec.inserted_patches(parts.model)
        self._bin_of_token = {token: index for index, token in enumerate(self.action_token_ids)}

    # ----------------------------------------------------------------- loading and saving

    @classmethod
    def from_base(
        cls,
        base: str,
        stats: ActionStats,
        *,
        trust_remote_code: bool = False,
        dtype: torch.dtype = torch.float32,
        n_bins: int = 256,
        image_size: tuple[int, int] | None = None,
    ) -> VLAModel:
        """A pretrained VLM (hub id or folder) with the action tokens and marker added; their
        embedding rows start at the mean embedding. `image_size` overrides the family's."""
        spec = resolve_family(base, read_config_dict(base), trust_remote_code=trust_remote_code)
        parts = _load_parts(base, spec, dtype=dtype, trust_remote_code=trust_remote_code)
        action_tokenizer = ActionTokenizer(stats, n_bins)
        _add_layout_tokens(parts, [MARKER_TOKEN, *action_tokenizer.token_strings])
        return cls(
            spec=spec,
            parts=parts,
            action_tokenizer=action_tokenizer,
            image_size=image_size,
            base=base,
        )

    @classmethod
    def from_checkpoint(
        cls, path: Path, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False
    ) -> VLAModel:
        """A model written by `save`, with its action statistics and recorded layout."""
        info = read_checkpoint_info(path)
        spec = family_by_name(info.family)
        if spec.remote_code and not trust_remote_code:
            raise HarnessError(
                f"checkpoint {path} is a {spec.name} model, which runs code shipped with it",
                REMOTE_CODE_FIX,
            )
        parts = _load_parts(str(path), spec, dtype=dtype, trust_remote_code=trust_remote_code)
        vla = cls(
            spec=spec,
            parts=parts,
            action_tokenizer=ActionTokenizer(read_action_stats(path), info.n_bins),
            image_size=info.image_size,
            action_conventions=info.action_conventions,
            base=info.base,
        )
        if vla.layout_token_ids() != list(info.layout_token_ids):
            raise HarnessError(
                f"the tokenizer in {path} numbers the action tokens differently from "
                "refinevla.json",
                "restore the checkpoint's tokenizer files from the training run",
            )
        return vla

    def save(self, path: Path) -> None:
        """HF files (model with any code it ships, tokenizer, image processor, SpatialVLA's
        cameras) + action_stats.json + refinevla.json."""
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)  # type: ignore[operator]  # PreTrainedModel method
        self.tokenizer.save_pretrained(path)
        self.image_processor.save_pretrained(path)
        if self.prompt_parts.intrinsic_config is not None:
            cameras = {"intrinsic_config": dict(self.prompt_parts.intrinsic_config)}
            (path / PROCESSOR_CONFIG).write_text(json.dumps(cameras, indent=2) + "\n", "utf-8")
        info = CheckpointInfo(
            family=self.family,
            n_bins=self.action_tokenizer.n_bins,
            action_dim=self.action_tokenizer.action_dim,
            image_size=self.image_size,
            marker_token=MARKER_TOKEN,
            layout_token_ids=tuple(self.layout_token_ids()),
            action_conventions=self.action_conventions,
            base=self.base,
            versions={
                "refinevla_bench": __version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
        )
        write_checkpoint_files(path, info, self.action_tokenizer.stats)

    def layout_token_ids(self) -> list[int]:
        """The ids this model added: the marker, then action tokens for bins 0..n_bins-1."""
        return [self.marker_id, *self.action_token_ids]

    # ----------------------------------------------------------------- training

    def encode(
        self, examples: Sequence[TrainingExample], *, with_targets: bool = True
    ) -> EncodedBatch:
        """Training rows (right-padded, with targets), or with `with_targets=False` the
        prompts alone (left-padded, no targets), as acting feeds them before decoding."""
        images = np.stack([example.image for example in examples])
        prompt = self._prompts(images, [example.instruction for example in examples])
        if not with_targets:
            return self._encoded(prompt_batch(prompt.token_ids, self.pad_id), prompt.vision_inputs)
        rationales = self._text_ids([example.rationale for example in examples])
        actions = self._action_token_rows(np.stack([example.action for example in examples]))
        rows = [
            RowTokens(prompt_ids, rationale, self.marker_id, action_ids, self.eos_id)
            for prompt_ids, rationale, action_ids in zip(
                prompt.token_ids, rationales, actions, strict=True
            )
        ]
        return self._encoded(training_batch(rows, self.pad_id), prompt.vision_inputs)

    def loss_terms(self, batch: EncodedBatch) -> LossTerms:
        """Both cross-entropies from one forward pass; logits are computed only from the first
        target position on, and upcast to float32 only where a target is scored."""
        targets = batch.action_mask | batch.rationale_mask
        if not bool(batch.action_mask.any()):
            raise ValueError("the batch has no action targets: encode it with with_targets=True")
        first = int(targets.any(dim=0).nonzero()[0])
        kept = batch.labels.shape[1] - first
        logits = self.model_outputs(batch, logits_from=first).logits[:, -kept:]
        labels = batch.labels[:, first:]
        action_mask, rationale_mask = batch.action_mask[:, first:], batch.rationale_mask[:, first:]
        action_logits = logits[action_mask].float()
        action_targets = labels[action_mask]
        action_loss = functional.cross_entropy(action_logits, action_targets)
        if bool(rationale_mask.any()):
            rationale_loss = functional.cross_entropy(
                logits[rationale_mask].float(), labels[rationale_mask]
            )
        else:
            rationale_loss = torch.zeros((), device=action_loss.device)
        with torch.no_grad():
            ids = torch.tensor(self.action_token_ids, device=action_logits.device)
            predicted = ids[action_logits[:, ids].argmax(dim=-1)]
            accuracy = (predicted == action_targets).float().mean()
        return LossTerms(
            action=action_loss,
            rationale=rationale_loss,
            action_accuracy=accuracy,
            action_tokens=int(action_mask.sum()),
            rationale_tokens=int(rationale_mask.sum()),
        )

    # ----------------------------------------------------------------- acting

    def predict(
        self,
        images: npt.NDArray[np.uint8],
        instructions: Sequence[str],
        *,
        reasoning: bool,
        max_rationale_tokens: int = 256,
    ) -> Prediction:
        """Greedy decoding of (rationale,) marker and D action tokens for a (B, H, W, 3) batch.
        Without reasoning the marker follows the prompt: fed with it, or generated first where
        the family's first generation pass would let the prompt attend to a fed marker."""
        if len(images) != len(instructions):
            raise ValueError(f"{len(images)} images for {len(instructions)} instructions")
        rows = len(instructions)
        chunks = (
            [slice(row, row + 1) for row in range(rows)]
            if self.spec.generates_single_rows
            else [slice(0, rows)]
        )
        decoded = [
            row
            for chunk in chunks
            for row in self._generate(
                images[chunk], instructions[chunk], reasoning, max_rationale_tokens
            )
        ]
        bins = np.array([[self._bin_of_token[t] for t in row.action_token_ids] for row in decoded])
        rationales = [self._decode(row.rationale_ids) for row in decoded] if reasoning else None
        return Prediction(actions=self.action_tokenizer.values(bins), rationales=rationales)

    # ----------------------------------------------------------------- layout for the trainer

    def decoder_layers(self) -> nn.ModuleList:
        """The language model's transformer blocks, bottom to top."""
        layers = module_at(self.model, self.spec.decoder_layers_path)
        if not isinstance(layers, nn.ModuleList):
            raise HarnessError(
                f"'{self.spec.decoder_layers_path}' of the {self.family} model is not a list",
                "use a checkpoint whose layout matches its family (see train/families.py)",
            )
        return layers

    def vision_modules(self) -> list[nn.Module]:
        """Vision tower and projector (Qwen2.5-VL's projector lives inside its tower)."""
        return [module_at(self.model, path) for path in self.spec.vision_paths]

    def head_modules(self) -> list[nn.Module]:
        """The final norm and lm_head. Input embeddings are not included: where they are tied
        to lm_head (PaliGemma) training the head trains them; elsewhere the new tokens' input
        rows live in `model.get_input_embeddings()` at `layout_token_ids()`."""
        return [
            module_at(self.model, self.spec.final_norm_path),
            module_at(self.model, self.spec.lm_head_path),
        ]

    def image_token_positions(self, batch: EncodedBatch) -> torch.Tensor:
        """(B, T) bool over the model's sequence (the positions of its outputs and attention
        maps, like the batch's masks): where the image features sit."""
        if self.inserted_patches == 0 and self.image_token_id is not None:
            return batch.inputs["input_ids"].eq(self.image_token_id)
        positions = torch.zeros_like(batch.action_mask)
        positions[:, 1 : 1 + self.inserted_patches] = True
        return positions

    def model_outputs(self, batch: EncodedBatch, *, logits_from: int = 0, **options: Any) -> Any:
        """The model's forward on a training batch, as the family's published forward wants
        it: labels for one that builds its training mask only with them, logits only from
        output position `logits_from` on where it can skip the rest. `options` (e.g.
        output_attentions=True) go to the model."""
        inputs = self._forward_inputs(batch.inputs)
        length = batch.labels.shape[1]
        expected = {length}
        if self.spec.logits_to_keep:
            options["logits_to_keep"] = length - logits_from
            expected.add(length - logits_from)
        if self.spec.training_needs_labels:
            options["labels"] = unshifted_labels(batch.labels, inputs["input_ids"].shape[1])
        outputs = self.model(**inputs, **options)
        returned = int(outputs.logits.shape[1])
        if returned not in expected:
            raise HarnessError(
                f"the {self.family} model returned logits for {returned} positions where its "
                f"targets index {length} ({self.inserted_patches} image patches spliced in)",
                "use a checkpoint whose layout matches its family (see train/families.py)",
            )
        return outputs

    # ----------------------------------------------------------------- internals

    def _prompts(self, images: npt.NDArray[np.uint8], instructions: Sequence[str]) -> PromptBatch:
        if len(images) != len(instructions):
            raise ValueError(f"{len(images)} images for {len(instructions)} instructions")
        sized = resize_images(np.asarray(images, dtype=np.uint8), self.image_size, "bilinear")
        return self.spec.build_prompts(self.prompt_parts, list(sized), instructions)

    def _text_ids(self, texts: list[str]) -> list[list[int]]:
        encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [
            list(map(int, ids)) if text.strip() else []
            for text, ids in zip(texts, encoded, strict=True)
        ]

    def _action_token_rows(self, actions: npt.NDArray[np.float32]) -> list[list[int]]:
        ids = np.asarray(self.action_token_ids)[self.action_tokenizer.bins(actions)]
        return [list(map(int, row)) for row in ids]

    def _encoded(self, tokens: TokenBatch, vision_inputs: dict[str, torch.Tensor]) -> EncodedBatch:
        inputs = {
            "input_ids": tokens.input_ids,
            "attention_mask": tokens.attention_mask,
            **self.spec.token_inputs(tokens.input_ids, tokens.is_prompt, self.image_token_id),
            **vision_inputs,
        }
        targets = by_output_position(tokens, self.inserted_patches)
        return EncodedBatch(inputs, targets.labels, targets.action_mask, targets.rationale_mask)

    def _generate(
        self,
        images: npt.NDArray[np.uint8],
        instructions: Sequence[str],
        reasoning: bool,
        max_rationale_tokens: int,
    ) -> list[DecodedRow]:
        feed_marker = not reasoning and not self.spec.bidirectional_first_pass
        rationale_cap = max_rationale_tokens if reasoning else 0
        prompt = self._prompts(images, instructions)
        suffix = [self.marker_id] if feed_marker else []
        tokens = prompt_batch(prompt.token_ids, self.pad_id, suffix)
        device = _device_of(self.model)
        inputs = self._forward_inputs(self._encoded(tokens, prompt.vision_inputs).to(device).inputs)
        prompt_length = tokens.input_ids.shape[1]
        layout = ActionLayoutProcessor(
            self._grammar(),
            prompt_length=prompt_length,
            marker_in_prompt=feed_marker,
            max_rationale=rationale_cap,
        )
        rationale_tokens = 0 if feed_marker else rationale_cap + 1  # the marker included
        new_tokens = rationale_tokens + self.action_tokenizer.action_dim + 1
        config = GenerationConfig(  # type: ignore[no-untyped-call]  # untyped in transformers
            max_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=self.eos_id,
            pad_token_id=self.pad_id,
        )
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                generated = self.model.generate(  # type: ignore[operator]  # GenerationMixin
                    **inputs,
                    generation_config=config,
                    logits_processor=LogitsProcessorList([layout]),
                )
        finally:
            self.model.train(was_training)
        return split_generated(
            generated[:, prompt_length:].cpu(), self._grammar(), marker_in_prompt=feed_marker
        )

    def _forward_inputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Floating inputs (pixels) in the model's dtype."""
        dtype = next(self.model.parameters()).dtype
        return {
            key: value.to(dtype) if value.is_floating_point() else value
            for key, value in inputs.items()
        }

    def _grammar(self) -> Grammar:
        action_ids = torch.tensor(self.action_token_ids)
        special = [self.eos_id, self.pad_id]
        if self.image_token_id is not None:
            special.append(self.image_token_id)
        return Grammar(
            marker_id=self.marker_id,
            eos_id=self.eos_id,
            action_ids=action_ids,
            banned_in_rationale=torch.cat([action_ids, torch.tensor(special)]),
            action_dim=self.action_tokenizer.action_dim,
        )

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True)).strip()


def _token_id(tokenizer: Any, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if found is None or found == tokenizer.unk_token_id:
        raise HarnessError(
            f"the model's tokenizer has no token {token!r}",
            "load bases with VLAModel.from_base (it adds the action tokens and marker) and "
            "fine-tuned checkpoints with from_checkpoint; a base must define an eos token",
        )
    return int(found)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _load_parts(
    source: str, spec: FamilySpec, *, dtype: torch.dtype, trust_remote_code: bool
) -> _Parts:
    remote = spec.remote_code and trust_remote_code

    def processors() -> tuple[Any, Any]:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=remote)
        image_processor = AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
            source, trust_remote_code=remote
        )
        return tokenizer, image_processor

    try:
        if remote:
            model = load_remote_model(source, spec, dtype=dtype)
            tokenizer, image_processor = run_checkpoint_code(source, spec, processors)
        else:
            model = getattr(transformers, spec.auto_class).from_pretrained(source, dtype=dtype)
            tokenizer, image_processor = processors()
    except (OSError, ValueError) as error:
        raise HarnessError(
            f"cannot load the {spec.name} model from '{source}': {error}",
            "pass a complete checkpoint folder (config, weights, tokenizer, image processor)",
        ) from error
    cameras = _camera_intrinsics(source) if spec.camera_intrinsics else None
    return _Parts(model, tokenizer, image_processor, cameras)


def _camera_intrinsics(source: str) -> Mapping[str, Any] | None:
    """The `intrinsic_config` of the checkpoint's processor_config.json (plain JSON)."""
    found = cached_file(
        source,
        PROCESSOR_CONFIG,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    if found is None:
        return None
    cameras = json.loads(Path(found).read_text(encoding="utf-8")).get("intrinsic_config")
    return cameras if isinstance(cameras, dict) else None


def _add_layout_tokens(parts: _Parts, tokens: list[str]) -> None:
    """Adds the tokens the tokenizer lacks as special tokens; their embedding rows (input
    and, when untied, output) start at the mean of the existing tokens' rows."""
    vocabulary = parts.tokenizer.get_vocab()
    missing = [token for token in tokens if token not in vocabulary]
    if not missing:
        return
    known_rows = len(parts.tokenizer)
    parts.tokenizer.add_tokens(missing, special_tokens=True)
    new_ids = torch.tensor(parts.tokenizer.convert_tokens_to_ids(missing))
    model = parts.model
    if len(parts.tokenizer) > model.get_input_embeddings().num_embeddings:
        _resize_embeddings(model, len(parts.tokenizer))
    matrices = {
        id(m.weight): m.weight
        for m in (model.get_input_embeddings(), model.get_output_embeddings())
    }
    with torch.no_grad():
        for weight in matrices.values():
            weight[new_ids] = weight[:known_rows].mean(dim=0)


def _resize_embeddings(model: Any, rows: int) -> None:
    """Without mean resizing where the model offers the switch (the new rows are set right
    after); OpenVLA's published code predates it."""
    if "mean_resizing" in inspect.signature(model.resize_token_embeddings).parameters:
        model.resize_token_embeddings(rows, mean_resizing=False)
    else:
        model.resize_token_embeddings(rows)
