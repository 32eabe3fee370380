"""PrepareConfig: every setting of the prepare stage, once, checked on construction.

This is the one place a prepare setting is added. Its ``cli`` metadata makes the option of
`prepare` and `train` (``rvl_llm.options``), the run recipe nests the whole config verbatim, and
eval and resume take it from there with ``dataclasses.replace``: a new field reaches every stage
with no other edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path

import click

from rvl_llm.errors import RvlError
from rvl_llm.labels import load_labels
from rvl_llm.options import cli
from rvl_llm.pipeline.manifest import SPLITS

DEFAULT_RESPONSE_TEMPLATE = "\n\n### Classification:"
DEFAULT_CACHE_DIR = Path("data_cache")  # also the default of `rvl-llm cache ls/verify`
# What --data can be: a folder of OCR JSON files, table files, or a Hugging Face dataset.
DATA_FORMATS = ("folder", "jsonl", "json", "csv", "parquet", "datasets")
PROMPT_STYLES = ("plain", "chat")


@dataclass(frozen=True)
class PrepareConfig:
    data_dir: Path = field(metadata=cli(
        "-d", "--data",
        help="A folder of OCR JSON files; a .jsonl, .json, .csv or .parquet file or a folder of "
        "them; a datasets save_to_disk folder; or hf:NAME[:CONFIG]."))
    model: str = field(metadata=cli(
        "-m", "--model", help="Preset, local folder or hub id (prepare uses its tokenizer)."))
    max_len: int = field(default=512, metadata=cli(
        "--max-len", help="Tokens per document row, special tokens and completion included."))
    generative: bool = field(default=False, metadata=cli(
        "-g", "--generative",
        help="Prompt + ' class name' + EOS with a completion-only loss mask (else a classifier)."))
    response_template: str = field(default=DEFAULT_RESPONSE_TEMPLATE, metadata=cli(
        "--response-template", help="Directive after the document in generative mode."))
    prompt: str | None = field(default=None, metadata=cli(
        "--prompt", type=click.Choice(PROMPT_STYLES),
        help="Generative prompt: plain (document + response template) or chat (the tokenizer's "
        "chat template) [the preset's, else plain]."))
    instruction: str | None = field(default=None, metadata=cli(
        "--instruction", help="Chat prompt: the user turn's instruction before the document "
        "[names the label set]."))
    label_descriptions: Path | None = field(default=None, metadata=cli(
        "--label-descriptions",
        help="Chat prompt: a file of 'class name: description' lines added to the instruction."))
    splits: tuple[str, ...] = field(default=SPLITS, metadata=cli(
        "--splits", help="Splits to build, comma-separated (the cache key covers all)."))
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
    split_file: Path | None = field(default=None, metadata=cli(
        "--split-file", help="JSON or text file listing the document ids (or file names) of "
        "each split: a published subset."))
    cache_dir: Path = field(default=DEFAULT_CACHE_DIR, metadata=cli("--cache-dir"))
    skip_bad_files: bool = field(default=False, metadata=cli(
        "--skip-bad-rows", "--skip-bad-files",
        help="Skip files or table rows that would be errors; the manifest lists them."))
    trust_remote_code: bool = field(default=False, metadata=cli(
        "--trust-remote-code", help="Allow the model's own code from the hub (off unless asked)."))
    tokenize_batch: int = 512  # documents per tokenizer batch and per record batch
    progress: bool | None = field(default=None, metadata=cli(
        "--progress/--no-progress", help="Progress bar [on a terminal]."))

    def __post_init__(self) -> None:
        if self.max_len < 1:
            raise RvlError(f"--max-len {self.max_len}: must be a positive number of tokens")
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown or not self.splits:
            raise RvlError(f"--splits {','.join(self.splits)}: choose from {', '.join(SPLITS)}")
        if self.generative and not self.response_template.strip():
            raise RvlError("--response-template: must not be empty in generative mode")
        self._check_prompt()
        if self.tokenize_batch < 1:
            raise RvlError(f"tokenize_batch {self.tokenize_batch}: must be positive")
        for option, value in (("--train-size", self.train_size),
                              ("--train-per-class", self.train_per_class)):
            if value is not None and value < 1:
                raise RvlError(f"{option} {value}: must be a positive whole number")
        if self.train_size is not None and self.train_per_class is not None:
            raise RvlError("--train-size and --train-per-class: choose one way to sample")
        self._check_prefixes()

    def _check_prompt(self) -> None:
        """What needs no preset: a chat prompt is generative; an instruction is a chat prompt's
        (a preset's plain prompt with --instruction is refused where the preset is resolved)."""
        if self.prompt == "chat" and not self.generative:
            raise RvlError("--prompt chat: a prompt is for generative mode; add -g (a classifier "
                           "reads the document alone)")
        for option, value in (("--instruction", self.instruction),
                              ("--label-descriptions", self.label_descriptions)):
            if value is not None and (not self.generative or self.prompt == "plain"):
                raise RvlError(f"{option}: only a chat prompt has an instruction; pass -g "
                               "--prompt chat (or a preset whose prompt is chat)")
        if self.instruction is not None and not self.instruction.strip():
            raise RvlError("--instruction: must not be empty")

    def _check_prefixes(self) -> None:
        """Every file must belong to one split at most: an empty prefix, or one that starts
        another, would put the same documents (test ones, say) into two splits."""
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

    def resolved(self) -> PrepareConfig:
        """The settings with every path made absolute (a dataset name ``hf:NAME`` stays as it
        is): what a recipe records, so a checkpoint is evaluated the same from any folder."""
        from rvl_llm.pipeline.sources import resolved_data

        return replace(
            self,
            data_dir=resolved_data(self.data_dir),
            cache_dir=self.cache_dir.resolve(),
            split_file=self.split_file.resolve() if self.split_file else None,
            label_descriptions=(self.label_descriptions.resolve() if self.label_descriptions
                                else None),
        )

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
