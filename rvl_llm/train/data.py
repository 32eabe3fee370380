"""Datasets from the manifest's shards (tokenised and masked by prepare, memory-mapped) and the
collators that pad one batch of them into arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rvl_llm.pipeline.manifest import IGNORE_INDEX, Manifest

if TYPE_CHECKING:
    import datasets

PAD_MULTIPLE = 8  # tensor cores like widths in multiples of 8


def train_dataset(manifest: Manifest) -> datasets.Dataset:
    """The train split with the columns a batch needs, plus ``length`` for the length-grouped
    sampler (precomputed by prepare, so the sampler does not read every row)."""
    target = "labels" if manifest.generative else "label"
    return manifest.dataset("train").select_columns(["input_ids", target, "length"])


def validation_dataset(manifest: Manifest) -> datasets.Dataset:
    """The whole validation split: scoring reads ``prompt_len``, ``label`` and ``doc_id`` too."""
    return manifest.dataset("validation")


def _width(lengths: Sequence[int], at_least: int = 1) -> int:
    longest = max(max(lengths), at_least)
    return -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE


@dataclass(frozen=True)
class GenerativeCollator:
    """Left padding, so every row's completion ends at the last position and lies within the
    last ``completion_len`` positions: the loss needs logits there only.

    Labels are padded with IGNORE_INDEX, never derived from the pad id: the pad token may be
    EOS, and the completion's own EOS must keep its label.
    """

    pad_token_id: int
    completion_len: int  # the manifest template's max_completion_len

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        lengths = [len(r["input_ids"]) for r in rows]
        # One position more than the longest completion: the logit before it predicts its first.
        width = _width(lengths, self.completion_len + 1)
        ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
        labels = np.full((len(rows), width), IGNORE_INDEX, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
            ids[i, width - n :] = row["input_ids"]
            labels[i, width - n :] = row["labels"]
            mask[i, width - n :] = 1
        if (labels[:, : width - self.completion_len] != IGNORE_INDEX).any():
            raise ValueError("a label lies before the last completion_len positions: the shards "
                             "do not match the manifest's template")
        # Positions count real tokens only, so padding in front does not shift a document.
        positions = np.clip(mask.cumsum(axis=1) - 1, 0, None)
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "position_ids": torch.from_numpy(positions),
            "labels": torch.from_numpy(labels),
        }


@dataclass(frozen=True)
class ClassifierCollator:
    """Right padding; ``labels`` is the class index. HF sequence classifiers pool the last token
    that is not ``config.pad_token_id``, which train sets to this pad id."""

    pad_token_id: int

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        lengths = [len(r["input_ids"]) for r in rows]
        width = _width(lengths)
        ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
            ids[i, :n] = row["input_ids"]
            mask[i, :n] = 1
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "labels": torch.tensor([int(r["label"]) for r in rows], dtype=torch.long),
        }


def make_collator(manifest: Manifest, pad_token_id: int) -> GenerativeCollator | ClassifierCollator:
    if manifest.generative:
        return GenerativeCollator(pad_token_id, manifest.template.max_completion_len)
    return ClassifierCollator(pad_token_id)
