"""PrepareConfig: every setting of the prepare stage, once, checked on construction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rvl_llm.errors import RvlError
from rvl_llm.labels import load_labels
from rvl_llm.pipeline.manifest import SPLITS

DEFAULT_RESPONSE_TEMPLATE = "\n\n### Classification:"
DEFAULT_CACHE_DIR = Path("data_cache")


@dataclass(frozen=True)
class PrepareConfig:
    data_dir: Path  # folder of OCR JSON files
    model: str  # preset name, local folder or hub id: only its tokenizer is used here
    max_len: int = 512  # tokens per row, specials and completion included
    generative: bool = False  # prompt + " class name" + EOS with a completion-only loss mask
    response_template: str = DEFAULT_RESPONSE_TEMPLATE  # the directive after the document
    splits: tuple[str, ...] = SPLITS  # which splits to build (the cache key covers all)
    prefix_train: str = "train_"
    prefix_validation: str = "validation_"
    prefix_test: str = "test_"
    suffix: str = "_aws"  # file names end in {suffix}.json
    labels_file: Path | None = None  # one class name a line; RVL-CDIP's 16 classes when None
    labels: tuple[str, ...] | None = None  # the label set itself (eval: from the recipe)
    cache_dir: Path = DEFAULT_CACHE_DIR
    skip_bad_files: bool = False  # skip (and list in the manifest) files that would be errors
    trust_remote_code: bool = False
    batch_size: int = 512  # documents per tokenizer batch and per record batch
    progress: bool | None = None  # None: a bar only on a terminal

    def __post_init__(self) -> None:
        if self.max_len < 1:
            raise RvlError(f"--max-len {self.max_len}: must be a positive number of tokens")
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown or not self.splits:
            raise RvlError(f"--splits {','.join(self.splits)}: choose from {', '.join(SPLITS)}")
        if self.generative and not self.response_template.strip():
            raise RvlError("--response-template: must not be empty in generative mode")
        if self.batch_size < 1:
            raise RvlError(f"--batch-size {self.batch_size}: must be positive")

    def label_names(self) -> tuple[str, ...]:
        if self.labels is not None:
            return tuple(self.labels)
        return load_labels(self.labels_file)

    @property
    def mode(self) -> str:
        return "generative" if self.generative else "classifier"

    def prefix(self, split: str) -> str:
        return {
            "train": self.prefix_train,
            "validation": self.prefix_validation,
            "test": self.prefix_test,
        }[split]
