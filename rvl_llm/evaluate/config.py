"""EvalConfig: every setting of the eval stage, once, checked on construction.

Only what can differ from training lives here; the rest (model, labels, template, prefixes,
mode) comes from the run's ``recipe.json``, so an eval cannot silently disagree with its training.

Without a checkpoint, an eval is a zero-shot baseline of the untrained model: the prompt settings
a recipe would hold are then prepare's own (:class:`PrepareConfig`, nested as ``zero_shot``, its
defaults written once in its fields and offered as the same options).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import click

from rvl_llm.errors import RvlError
from rvl_llm.inference import DECODES, Decode
from rvl_llm.options import (
    CLI_KEY,
    DEFAULT_MAX_LEN,
    batch_size_field,
    class_chunk_field,
    cli,
    field_default,
    max_len_field,
    progress_field,
    skip_bad_field,
    trust_remote_code_field,
)
from rvl_llm.pipeline.config import DEFAULT_CACHE_DIR, PrepareConfig
from rvl_llm.pipeline.manifest import SPLITS

DEFAULT_OUT_NAME = "eval"  # default output folder: CHECKPOINT/eval/
ZERO_SHOT_OUT_DIR = Path("results")  # default output folder of a zero-shot eval (no -c)
NO_HEAD = ("-m/--model without -g/--generative: a classifier's head would be untrained "
           "(random); pass -g for a zero-shot baseline or -c for a trained classifier")


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: Path | None = field(default=None, metadata=cli(
        "-c", "--checkpoint",
        help="A run's final/ or checkpoint-N/ folder (or the run folder: its final/). "
             "Without it: a zero-shot baseline of -m MODEL -g on -d DATA."))
    data_dir: Path | None = field(default=None, metadata=cli(
        "-d", "--data", help="Folder of OCR JSON files [the recipe's; needed without -c]."))
    max_len: int | None = max_len_field(
        None, f"the max-len the run trained with; {DEFAULT_MAX_LEN} without -c")
    out_dir: Path | None = field(default=None, metadata=cli(
        "-o", "--out-dir",
        help=f"Outputs go to OUT_DIR/<max-len>-max-len/<eval>/ [CHECKPOINT/{DEFAULT_OUT_NAME}; "
             f"{ZERO_SHOT_OUT_DIR} without -c]."))
    batch_size: int = batch_size_field()
    split: str = field(default="test", metadata=cli("--split", type=click.Choice(SPLITS)))
    decode: str = field(default=Decode.SCORE.value, metadata=cli(
        "--decode", type=click.Choice(DECODES),
        help="Generative runs: score every class name, or generate greedily (old eval)."))
    cache_dir: Path | None = field(default=None, metadata=cli(
        "--cache-dir",
        help=f"Prepared-shard cache [the recipe's; {DEFAULT_CACHE_DIR} without -c]."))
    class_chunk: int | None = class_chunk_field()
    skip_bad_files: bool = skip_bad_field()
    trust_remote_code: bool = trust_remote_code_field()
    progress: bool | None = progress_field()
    test_sets: tuple[Path, ...] = field(default=(), metadata=cli(
        "--test-sets", multiple=True, default=(), type=click.Path(path_type=Path),
        help="Split files, each a test set of the split (ids as --split-file matches them): "
             "accuracy and macro-F1 per set, their mean and standard deviation. Repeatable; "
             "`--test-sets splits/test_*.txt` takes every file the shell expands."))
    calibrate: bool = field(default=False, metadata=cli(
        "--calibrate", help="Fit a temperature on the validation split and store it in "
                            "CHECKPOINT/calibration.json (predict and export use it)."))
    # Without a checkpoint: the untrained model and its prompt, prepared for this one split.
    zero_shot: PrepareConfig | None = None

    def __post_init__(self) -> None:
        if self.checkpoint is None and self.zero_shot is None:
            raise RvlError("-c/--checkpoint: needed, or -m MODEL -g -d DATA for a zero-shot "
                           "baseline of the untrained model")
        if self.checkpoint is not None and self.zero_shot is not None:
            raise RvlError("-c/--checkpoint: the checkpoint's recipe names the model and prompt; "
                           "a zero-shot eval takes none")
        if self.zero_shot is not None and not self.zero_shot.generative:
            raise RvlError(NO_HEAD)
        if self.split not in SPLITS:
            raise RvlError(f"--split {self.split}: choose from {', '.join(SPLITS)}")
        if self.decode not in DECODES:
            raise RvlError(f"--decode {self.decode}: choose from {', '.join(DECODES)}")
        if self.batch_size < 1:
            raise RvlError(f"--batch-size {self.batch_size}: must be a positive whole number")
        if self.max_len is not None and self.max_len < 1:
            raise RvlError(f"--max-len {self.max_len}: must be a positive number of tokens")
        if self.calibrate and self.checkpoint is None:
            raise RvlError("--calibrate: needs -c CHECKPOINT (the temperature is stored beside "
                           "its weights); a zero-shot eval has no folder to store it in")
        if self.calibrate and self.decode == Decode.GENERATE:
            raise RvlError("--calibrate: needs class scores; not with --decode generate")
        if self.class_chunk is not None and self.class_chunk < 1:
            raise RvlError(f"--class-chunk {self.class_chunk}: must be a positive whole number")

    @classmethod
    def from_flags(cls, **flags: Any) -> EvalConfig:
        """The config from the eval command's flat flags: its own, and the zero-shot prompt
        settings (``ZERO_SHOT_FIELDS``, None or their PrepareConfig default when not given)."""
        own = {f.name for f in fields(cls)} - {"zero_shot"}
        unknown = set(flags) - own - set(ZERO_SHOT_FIELDS)
        if unknown:
            raise TypeError(f"EvalConfig.from_flags: unknown settings {sorted(unknown)}")
        prompt = {k: v for k, v in flags.items() if k in ZERO_SHOT_FIELDS}
        settings = {k: v for k, v in flags.items() if k in own}
        if settings.get("checkpoint") is not None:
            # An option not given holds None or its PrepareConfig default.
            given = [f for f in fields(PrepareConfig)
                     if f.name in prompt and prompt[f.name] not in (None, field_default(f))]
            if given:
                raise RvlError(f"{long_flag(given[0])}: not with -c/--checkpoint (the "
                               "checkpoint's recipe names the model and prompt); drop it, or "
                               "drop -c for a zero-shot eval")
            return cls(**settings)
        if prompt.get("model") is None:
            raise RvlError("-m/--model: needed without -c/--checkpoint (pass -c CHECKPOINT for "
                           "a trained run, or -m MODEL -g -d DATA for a zero-shot baseline)")
        if not prompt.get("generative"):
            raise RvlError(NO_HEAD)
        if settings.get("data_dir") is None:
            raise RvlError("-d/--data: needed without -c/--checkpoint (no recipe names the data "
                           "folder of a zero-shot eval)")
        shared = {name: settings.get(name) for name in ("data_dir", "max_len", "cache_dir")}
        given = {k: v for k, v in {**prompt, **shared}.items() if v is not None}  # None: default
        data = PrepareConfig(
            **given, splits=(settings.get("split", cls.split),),
            skip_bad_files=bool(settings.get("skip_bad_files")),
            trust_remote_code=bool(settings.get("trust_remote_code")),
            progress=settings.get("progress"))
        return cls(**settings, zero_shot=data)

    @property
    def resolved_out_dir(self) -> Path:
        if self.out_dir is not None:
            return self.out_dir
        return ZERO_SHOT_OUT_DIR if self.checkpoint is None else self.checkpoint / DEFAULT_OUT_NAME


# The settings of a zero-shot eval's prompt and source: every PrepareConfig option the eval command
# does not declare itself (with -c the checkpoint's recipe names them all). Derived, so a new
# prompt or source setting is a zero-shot option with no edit here; eval's --split names the one
# split it prepares.
ZERO_SHOT_FIELDS = tuple(
    f.name for f in fields(PrepareConfig)
    if CLI_KEY in f.metadata and f.name not in {g.name for g in fields(EvalConfig)}
    and f.name != "splits"
)


def long_flag(f: Any) -> str:
    """A field's options as the help shows them (``-m/--model``), else its name."""
    declarations = f.metadata.get(CLI_KEY, ((),))[0]
    return "/".join(declarations) or f.name
