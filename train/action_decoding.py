"""Constrained greedy decoding: free rationale text, the end-of-rationale marker, exactly D
action tokens, then eos. Constraining the action positions to action-token ids means even a
barely trained model always emits D valid bins, and it cannot end a rationale with eos.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LogitsProcessor


@dataclass(frozen=True)
class Grammar:
    """The token ids the layout is made of."""

    marker_id: int
    eos_id: int
    action_ids: torch.Tensor  # (n_bins,) long, bin i -> action_ids[i]
    banned_in_rationale: torch.Tensor  # (k,) long: action tokens, eos, padding, image tokens
    action_dim: int


def marker_positions(
    generated: torch.Tensor, marker_id: int, marker_in_prompt: bool
) -> torch.Tensor:
    """Per row, the index of the first marker among generated tokens; -1 when the marker
    ended the prompt; the row length when none was generated yet."""
    rows, length = generated.shape
    if marker_in_prompt:
        return torch.full((rows,), -1, dtype=torch.long, device=generated.device)
    if length == 0:
        return torch.zeros((rows,), dtype=torch.long, device=generated.device)
    is_marker = generated == marker_id
    first = torch.where(is_marker.any(dim=1), is_marker.int().argmax(dim=1), length)
    return first.long()


class ActionLayoutProcessor(LogitsProcessor):
    """Masks the scores of each row to what its place in the layout allows."""

    def __init__(
        self, grammar: Grammar, *, prompt_length: int, marker_in_prompt: bool, max_rationale: int
    ) -> None:
        self.grammar = grammar
        self.prompt_length = prompt_length
        self.marker_in_prompt = marker_in_prompt
        self.max_rationale = max_rationale

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.FloatTensor:
        grammar = self.grammar
        generated = input_ids[:, self.prompt_length :]
        length = generated.shape[1]
        marker_at = marker_positions(generated, grammar.marker_id, self.marker_in_prompt)
        reasoning = marker_at >= length
        acted = length - marker_at - 1
        allowed = torch.zeros_like(scores, dtype=torch.bool)
        allowed[reasoning] = True
        allowed[reasoning.unsqueeze(1) & _columns(scores, grammar.banned_in_rationale)] = False
        if length >= self.max_rationale:
            allowed[reasoning] = False
            allowed[reasoning, grammar.marker_id] = True
        acting = ~reasoning & (acted < grammar.action_dim)
        allowed[acting.unsqueeze(1) & _columns(scores, grammar.action_ids)] = True
        done = ~reasoning & (acted >= grammar.action_dim)
        allowed[done, grammar.eos_id] = True
        masked = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        return masked  # type: ignore[return-value]  # FloatTensor is Tensor at runtime


def _columns(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(1, V) bool marking `ids` among the vocabulary columns."""
    marked = torch.zeros(scores.shape[1], dtype=torch.bool, device=scores.device)
    marked[ids.to(scores.device)] = True
    return marked.unsqueeze(0)


@dataclass(frozen=True)
class DecodedRow:
    rationale_ids: list[int]
    action_token_ids: list[int]


def split_generated(
    generated: torch.Tensor, grammar: Grammar, *, marker_in_prompt: bool
) -> list[DecodedRow]:
    """Rationale ids (before the marker) and the D action token ids (after it) per row."""
    marker_at = marker_positions(generated, grammar.marker_id, marker_in_prompt)
    rows = []
    for row, position in zip(generated.tolist(), marker_at.tolist(), strict=True):
        start = position + 1
        rows.append(
            DecodedRow(
                rationale_ids=row[: max(position, 0)],
                action_token_ids=row[start : start + grammar.action_dim],
            )
        )
    return rows
