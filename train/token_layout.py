"""Token layout of one training row and the batch tensors built from it.

A row reads: prompt (image + instruction) ; rationale tokens ; end-of-rationale marker ;
D action tokens ; eos. Targets are stored shifted (`labels[t]` is the token at t + 1), so a
mask position is the position whose output predicts that token. A row without a rationale
still holds the marker, as an input that is not trained: acting without reasoning feeds the
marker right after the prompt, and training sees the same layout.

Targets are indexed by output position. For most families that is the input position; a
model whose forward splices image embeddings in after the first token (OpenVLA) has more
outputs than inputs, and `by_output_position` moves the targets to where its outputs are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

IGNORED = -100  # the label cross-entropy skips


@dataclass(frozen=True)
class RowTokens:
    prompt: list[int]
    rationale: list[int]  # empty: nothing to learn about reasoning for this row
    marker: int
    actions: list[int]
    eos: int

    def ids(self) -> list[int]:
        return [*self.prompt, *self.rationale, self.marker, *self.actions, self.eos]

    def target_kinds(self) -> list[str]:
        """Per token: "prompt", "rationale", "action" or "none" (inputs never trained)."""
        reasoning = "rationale" if self.rationale else "none"
        return [
            *["prompt"] * len(self.prompt),
            *["rationale"] * len(self.rationale),
            reasoning,
            *["action"] * len(self.actions),
            "none",
        ]


@dataclass(frozen=True)
class TokenBatch:
    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long
    is_prompt: torch.Tensor  # (B, T) bool, prompt tokens (and left padding)
    labels: torch.Tensor  # (B, T) long, shifted targets or IGNORED
    action_mask: torch.Tensor  # (B, T) bool
    rationale_mask: torch.Tensor  # (B, T) bool


def training_batch(rows: Sequence[RowTokens], pad_id: int) -> TokenBatch:
    """Right-padded rows with shifted targets for the action and rationale tokens."""
    length = max(len(row.ids()) for row in rows)
    shape = (len(rows), length)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    is_prompt = torch.zeros(shape, dtype=torch.bool)
    labels = torch.full(shape, IGNORED, dtype=torch.long)
    action_mask = torch.zeros(shape, dtype=torch.bool)
    rationale_mask = torch.zeros(shape, dtype=torch.bool)
    for index, row in enumerate(rows):
        ids, kinds = row.ids(), row.target_kinds()
        input_ids[index, : len(ids)] = torch.tensor(ids)
        attention_mask[index, : len(ids)] = 1
        is_prompt[index, : len(row.prompt)] = True
        for position, (token, kind) in enumerate(zip(ids[1:], kinds[1:], strict=True)):
            if kind in ("action", "rationale"):
                labels[index, position] = token
                mask = action_mask if kind == "action" else rationale_mask
                mask[index, position] = True
    return TokenBatch(input_ids, attention_mask, is_prompt, labels, action_mask, rationale_mask)


def prompt_batch(
    prompts: Sequence[list[int]], pad_id: int, suffix: Sequence[int] = ()
) -> TokenBatch:
    """Left-padded prompts, each followed by `suffix` (e.g. the marker when acting without
    reasoning), without targets: ready for generation, which appends on the right."""
    length = max(len(prompt) for prompt in prompts) + len(suffix)
    shape = (len(prompts), length)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    is_prompt = torch.ones(shape, dtype=torch.bool)
    for index, prompt in enumerate(prompts):
        input_ids[index, length - len(prompt) - len(suffix) :] = torch.tensor([*prompt, *suffix])
        attention_mask[index, length - len(prompt) - len(suffix) :] = 1
    is_prompt[:, length - len(suffix) :] = False
    no_targets = torch.zeros(shape, dtype=torch.bool)
    return TokenBatch(
        input_ids,
        attention_mask,
        is_prompt,
        labels=torch.full(shape, IGNORED, dtype=torch.long),
        action_mask=no_targets,
        rationale_mask=no_targets.clone(),
    )


@dataclass(frozen=True)
class OutputTargets:
    labels: torch.Tensor  # (B, T + inserted) long
    action_mask: torch.Tensor  # (B, T + inserted) bool
    rationale_mask: torch.Tensor  # (B, T + inserted) bool


def by_output_position(tokens: TokenBatch, inserted: int) -> OutputTargets:
    """Targets of a model that splices `inserted` embeddings in right after the first input
    token: the input at t >= 1 sits at t + inserted, so the output predicting it (formerly at
    t - 1) is at t - 1 + inserted; the first `inserted` outputs predict spliced embeddings and
    have no target."""

    def moved(values: torch.Tensor, blank: int | bool) -> torch.Tensor:
        rows = values.shape[0]
        return torch.cat([values.new_full((rows, inserted), blank), values], dim=1)

    return OutputTargets(
        labels=moved(tokens.labels, IGNORED),
        action_mask=moved(tokens.action_mask, False),
        rationale_mask=moved(tokens.rationale_mask, False),
    )


def unshifted_labels(labels: torch.Tensor, inputs: int) -> torch.Tensor:
    """Output-indexed shifted targets -> transformers' convention, for a model that scores
    labels itself: (B, inputs), each target token at its own input position (a model splicing
    embeddings in splices its labels like its input_ids). Of the L outputs, those at
    L - inputs .. L - 2 predict inputs 1 .. inputs - 1."""
    unshifted = labels.new_full((labels.shape[0], inputs), IGNORED)
    unshifted[:, 1:] = labels[:, labels.shape[1] - inputs : labels.shape[1] - 1]
    return unshifted
