"""PredictConfig: every setting of ``rvl-llm predict``, once, checked on construction. The model
and the prompt come from the checkpoint's recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rvl_llm.errors import RvlError
from rvl_llm.options import (
    batch_size_field,
    class_chunk_field,
    cli,
    max_len_field,
    progress_field,
    trust_remote_code_field,
)
from rvl_llm.predict.inputs import TEXT_FIELD_HELP

DEFAULT_TOP_K = 3  # most probable classes listed per document (predict and Classifier)


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
    batch_size: int = batch_size_field()
    max_len: int | None = max_len_field(None, "the max-len the run trained with")
    text_field: str | None = field(default=None, metadata=cli(
        "--text-field", help=TEXT_FIELD_HELP))
    class_chunk: int | None = class_chunk_field()
    min_probability: float | None = field(default=None, metadata=cli(
        "--min-probability", type=float,
        help="Below this top probability the label is null (the top-k are kept) [always "
             "answer]."))
    allow_skips: bool = field(default=False, metadata=cli(
        "--allow-skips", help="Exit 0 even if bad inputs were skipped."))
    trust_remote_code: bool = trust_remote_code_field()
    progress: bool | None = progress_field()

    def __post_init__(self) -> None:
        # INPUT itself (none, - twice) is checked by iter_inputs, before anything is read.
        positive = {"--top-k": self.top_k, "--batch-size": self.batch_size,
                    "--max-len": self.max_len, "--class-chunk": self.class_chunk}
        for option, value in positive.items():
            if value is not None and value < 1:
                raise RvlError(f"{option} {value}: must be a positive whole number")
        if self.min_probability is not None and not 0.0 <= self.min_probability <= 1.0:
            raise RvlError(f"--min-probability {self.min_probability}: must be a probability "
                           "between 0 and 1")
