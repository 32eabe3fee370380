"""EvalConfig: every setting of the eval stage, once, checked on construction.

Only what can differ from training lives here; the rest (model, labels, template, prefixes,
mode) comes from the run's ``recipe.json``, so an eval cannot silently disagree with its training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.inference import DECODES
from rvl_llm.pipeline.manifest import SPLITS

DEFAULT_OUT_NAME = "eval"  # default output folder: CHECKPOINT/eval/


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: Path  # a run's final/ or checkpoint-N/ folder (holds recipe.json)
    data_dir: Path | None = None  # OCR JSON folder; None: the recipe's data_dir
    max_len: int | None = None  # tokens per row; None: the recipe's (train-time) max_len
    out_dir: Path | None = None  # None: CHECKPOINT/eval
    batch_size: int = 8  # documents per forward pass
    split: str = "test"
    # generative only: "score" ranks every class's completion; "generate" decodes greedily
    decode: str = "score"
    cache_dir: Path | None = None  # prepared shards; None: the recipe's cache_dir
    class_chunk: int | None = None  # classes per completion forward (memory); None: all
    progress: bool | None = None  # None: a bar only on a terminal

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

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
