"""EvalConfig: every setting of the eval stage, once, checked on construction.

Only what can differ from training lives here; the rest (model, labels, template, prefixes,
mode) comes from the run's ``recipe.json``, so an eval cannot silently disagree with its training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from rvl_llm.errors import RvlError
from rvl_llm.inference import DECODES
from rvl_llm.options import cli
from rvl_llm.pipeline.manifest import SPLITS

DEFAULT_OUT_NAME = "eval"  # default output folder: CHECKPOINT/eval/


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: Path = field(metadata=cli(
        "-c", "--checkpoint",
        help="A run's final/ or checkpoint-N/ folder (or the run folder: its final/)."))
    data_dir: Path | None = field(default=None, metadata=cli(
        "-d", "--data", help="Folder of OCR JSON files [the recipe's]."))
    max_len: int | None = field(default=None, metadata=cli(
        "--max-len", help="Tokens per document row [the max-len the run trained with]."))
    out_dir: Path | None = field(default=None, metadata=cli(
        "-o", "--out-dir",
        help="Outputs go to OUT_DIR/<max-len>-max-len/<eval>/ [CHECKPOINT/eval]."))
    batch_size: int = field(default=8, metadata=cli(
        "-b", "--batch-size", help="Documents per forward pass."))
    split: str = field(default="test", metadata=cli("--split", type=click.Choice(SPLITS)))
    decode: str = field(default="score", metadata=cli(
        "--decode", type=click.Choice(DECODES),
        help="Generative runs: score every class name, or generate greedily (old eval)."))
    cache_dir: Path | None = field(default=None, metadata=cli(
        "--cache-dir", help="Prepared-shard cache [the recipe's]."))
    class_chunk: int | None = field(default=None, metadata=cli(
        "--class-chunk", help="Classes scored per forward pass, to bound memory [all]."))
    skip_bad_files: bool = field(default=False, metadata=cli(
        "--skip-bad-files", help="Skip bad files of the split (on too if training skipped)."))
    trust_remote_code: bool = field(default=False, metadata=cli(
        "--trust-remote-code",
        help="Allow the model's own code (never taken from the checkpoint's recipe)."))
    progress: bool | None = field(default=None, metadata=cli(
        "--progress/--no-progress", help="Progress bar [on a terminal]."))

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise RvlError(f"--split {self.split}: choose from {', '.join(SPLITS)}")
        if self.decode not in DECODES:
            raise RvlError(f"--decode {self.decode}: choose from {', '.join(DECODES)}")
        if self.batch_size < 1:
            raise RvlError(f"--batch-size {self.batch_size}: must be a positive whole number")
        if self.max_len is not None and self.max_len < 1:
            raise RvlError(f"--max-len {self.max_len}: must be a positive number of tokens")
        if self.class_chunk is not None and self.class_chunk < 1:
            raise RvlError(f"--class-chunk {self.class_chunk}: must be a positive whole number")

    @property
    def resolved_out_dir(self) -> Path:
        return self.out_dir if self.out_dir is not None else self.checkpoint / DEFAULT_OUT_NAME
