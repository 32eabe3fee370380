"""PredictConfig: every setting of ``rvl-llm predict``, once, checked on construction.

Everything about the model and the prompt comes from the checkpoint's recipe; only what a
prediction job may choose lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rvl_llm.errors import RvlError
from rvl_llm.options import cli
from rvl_llm.predict.classifier import DEFAULT_BATCH_SIZE, DEFAULT_TOP_K
from rvl_llm.predict.inputs import TEXT_FIELD_HELP


@dataclass(frozen=True)
class PredictConfig:
    checkpoint: Path = field(metadata=cli(
        "-c", "--checkpoint",
        help="A run's final/ or checkpoint-N/ folder, a run folder (its final/) or an export."))
    inputs: tuple[str, ...] = ()  # the INPUT arguments: files, folders, or - for standard input
    out: Path | None = field(default=None, metadata=cli(
        "-o", "--out", help="Write .jsonl, .csv or .tsv (by suffix) [JSON lines to stdout]."))
    top_k: int = field(default=DEFAULT_TOP_K, metadata=cli(
        "--top-k", help="Most probable classes listed per document."))
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata=cli(
        "-b", "--batch-size", help="Documents per forward pass."))
    max_len: int | None = field(default=None, metadata=cli(
        "--max-len", help="Tokens per document row [the max-len the run trained with]."))
    text_field: str | None = field(default=None, metadata=cli(
        "--text-field", help=TEXT_FIELD_HELP))
    class_chunk: int | None = field(default=None, metadata=cli(
        "--class-chunk", help="Classes scored per forward pass, to bound memory [all]."))
    allow_skips: bool = field(default=False, metadata=cli(
        "--allow-skips", help="Exit 0 even if bad inputs were skipped."))
    trust_remote_code: bool = field(default=False, metadata=cli(
        "--trust-remote-code",
        help="Allow the model's own code (never taken from the checkpoint's recipe)."))
    progress: bool | None = field(default=None, metadata=cli(
        "--progress/--no-progress", help="Progress bar on stderr [on a terminal]."))

    def __post_init__(self) -> None:
        # INPUT itself (none, - twice) is checked by iter_inputs, before anything is read.
        positive = {"--top-k": self.top_k, "--batch-size": self.batch_size,
                    "--max-len": self.max_len, "--class-chunk": self.class_chunk}
        for option, value in positive.items():
            if value is not None and value < 1:
                raise RvlError(f"{option} {value}: must be a positive whole number")
