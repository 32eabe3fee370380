"""PrepareConfig: every setting of the prepare stage, once, checked on construction.

Two parts, each the one place its kind of setting is added: ``SourceSettings`` (where documents
come from) and ``PromptSettings`` (how a document becomes a row), plus how the build runs. Each
field's ``cli`` metadata makes the option of `prepare` and `train` (``rvl_llm.options``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from itertools import combinations
from pathlib import Path

import click

from rvl_llm.errors import RvlError
from rvl_llm.labels import load_labels
from rvl_llm.options import (
    cli,
    progress_field,
    skip_bad_field,
    trust_remote_code_field,
)
from rvl_llm.pipeline.corpus import resolved_data, resolved_split_file
from rvl_llm.pipeline.manifest import SPLITS
from rvl_llm.pipeline.prompt import PromptSettings

DEFAULT_CACHE_DIR = Path("data_cache")  # also the default of `rvl-llm cache ls/verify`
# What --data can be: a folder of OCR JSON files, table files, or a Hugging Face dataset.
DATA_FORMATS = ("folder", "jsonl", "json", "csv", "parquet", "datasets")


@dataclass(frozen=True, kw_only=True)
class SourceSettings:
    """Where the documents come from: the source, its columns, the split rules, the subset."""

    data_dir: Path = field(metadata=cli(
        "-d", "--data",
        help="A folder of OCR JSON files; a .jsonl, .json, .csv or .parquet file or a folder of "
        "them; a datasets save_to_disk folder; or hf:NAME[:CONFIG]."))
    prefix_train: str = field(default="train_", metadata=cli("--prefix-train"))
    prefix_validation: str = field(default="validation_", metadata=cli("--prefix-validation"))
    prefix_test: str = field(default="test_", metadata=cli("--prefix-test"))
    suffix: str = field(default="_aws", metadata=cli(
        "--suffix", help="File names end in SUFFIX.json; the label is the number before it."))
    labels_file: Path | None = field(default=None, metadata=cli(
        "--labels", help="Label names, one a line, in class-index order [RVL-CDIP's 16]."))
    labels: tuple[str, ...] | None = None  # the label set itself (a recipe carries it inline)
    data_format: str | None = field(default=None, metadata=cli(
        "--data-format", type=click.Choice(DATA_FORMATS),
        help="What --data is [guessed from the path]."))
    data_files: tuple[str, ...] = field(default=(), metadata=cli(
        "--data-files", help="Table files per split: train=a.jsonl,validation=b.jsonl,..."))
    text_column: str | None = field(default=None, metadata=cli(
        "--text-column", help="Tables: the text column [ocr, then text]."))
    label_column: str = field(default="label", metadata=cli(
        "--label-column", help="Tables: the label column (class index or name)."))
    id_column: str = field(default="id", metadata=cli(
        "--id-column", help="Tables: the document id column [else the row number]."))
    train_size: int | None = field(default=None, metadata=cli(
        "--train-size", help="A stratified sample of N train documents [all]."))
    train_per_class: int | None = field(default=None, metadata=cli(
        "--train-per-class", help="N train documents per class (all of a smaller class) [all]."))
    subset_seed: int = field(default=1234, metadata=cli(
        "--subset-seed", help="Seed of --train-size / --train-per-class sampling."))
    split_file: tuple[str, ...] = field(default=(), metadata=cli(
        "--split-file", multiple=True, default=(), callback=None, show_default=False,
        help="A file listing the document ids of each split (a published subset; JSON, "
        "'split id' lines, bare ids whose prefix is the split, or a predictions.tsv), or "
        "SPLIT=FILE listing one split's ids. Repeatable."))

    def __post_init__(self) -> None:
        for option, value in (("--train-size", self.train_size),
                              ("--train-per-class", self.train_per_class)):
            if value is not None and value < 1:
                raise RvlError(f"{option} {value}: must be a positive whole number")
        if self.train_size is not None and self.train_per_class is not None:
            raise RvlError("--train-size and --train-per-class: choose one way to sample")
        # Every file must belong to one split at most: an empty prefix, or one that starts
        # another, would put the same documents (test ones, say) into two splits.
        for split in SPLITS:
            if not self.prefix(split):
                raise RvlError(f"--prefix-{split} '': must not be empty (it would match every "
                               "file, those of the other splits too)")
        for a, b in combinations(SPLITS, 2):
            pa, pb = self.prefix(a), self.prefix(b)
            if pa.startswith(pb) or pb.startswith(pa):
                raise RvlError(f"--prefix-{a} {pa!r} and --prefix-{b} {pb!r} overlap: a file "
                               "could belong to both splits; choose prefixes that do not start "
                               "one another")

    def label_names(self) -> tuple[str, ...]:
        return tuple(self.labels) if self.labels is not None else load_labels(self.labels_file)

    def prefix(self, split: str) -> str:
        return str(getattr(self, f"prefix_{split}"))


@dataclass(frozen=True, kw_only=True)
class PrepareConfig(PromptSettings, SourceSettings):
    """The source and the prompt settings, and how the build runs."""

    model: str = field(metadata=cli(
        "-m", "--model", help="Preset, local folder or hub id (prepare uses its tokenizer)."))
    splits: tuple[str, ...] = field(default=SPLITS, metadata=cli(
        "--splits", help="Splits to build, comma-separated (the cache key covers all)."))
    cache_dir: Path = field(default=DEFAULT_CACHE_DIR, metadata=cli("--cache-dir"))
    skip_bad_files: bool = skip_bad_field()
    trust_remote_code: bool = trust_remote_code_field()
    tokenize_batch: int = 512  # documents per tokenizer batch and per record batch
    progress: bool | None = progress_field()

    def __post_init__(self) -> None:
        SourceSettings.__post_init__(self)
        PromptSettings.__post_init__(self)
        if not self.splits or not set(self.splits) <= set(SPLITS):
            raise RvlError(f"--splits {','.join(self.splits)}: choose from {', '.join(SPLITS)}")
        if self.tokenize_batch < 1:
            raise RvlError(f"tokenize_batch {self.tokenize_batch}: must be positive")

    @property
    def prompt_settings(self) -> PromptSettings:
        """The prompt part, whole (its fields are PromptSettings')."""
        return PromptSettings(**{f.name: getattr(self, f.name) for f in fields(PromptSettings)})

    def resolved(self) -> PrepareConfig:
        """The settings with every path made absolute (a dataset name ``hf:NAME`` stays as it
        is): what a recipe records, so a checkpoint is evaluated the same from any folder."""
        descriptions = self.label_descriptions
        return replace(self, data_dir=resolved_data(self.data_dir),
                       cache_dir=self.cache_dir.resolve(),
                       split_file=tuple(resolved_split_file(spec) for spec in self.split_file),
                       label_descriptions=descriptions.resolve() if descriptions else None)
