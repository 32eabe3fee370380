"""The run recipe: the contract between a training run and everything that uses its checkpoint.

``recipe.json`` sits in a run folder, in ``final/`` and in every ``checkpoint-N/``. It nests the
prepare settings verbatim (paths absolute, the label set inline), the resolved prompt every row
was rendered from (eval, predict, ``Classifier`` and the export card render from it, never from
the flags again) and the training settings (preset defaults filled in), plus what the run
resolved. A folder written by ``rvl-llm export`` carries a recipe too, with ``exported`` saying
what it was made from; merged and full exports are recorded as full runs in the exported dtype.

A recipe never grants permissions (``trust_remote_code`` is read back as False) and never holds
a secret: a ``--trainer-arg`` whose name says token, secret, password or key is left out of it,
and its value is masked in the recorded command line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import click

from rvl_llm.atomic import write_json_atomic
from rvl_llm.dataclass_json import SchemaError, from_json, to_json
from rvl_llm.errors import RvlError
from rvl_llm.options import batch_size_field, cli
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.prompt import PromptSpec
from rvl_llm.pipeline.truncation import AGGREGATES
from rvl_llm.presets import TRAINABLE_MODES

RECIPE_NAME = "recipe.json"
# 4: the resolved prompt (PromptSpec). Any other version is refused: train again.
RECIPE_VERSION = 4
EXPORT_DTYPES = ("bf16", "fp16", "fp32")
SAVE_CHOICES = ("never", "end", "epoch")
# "fp32" and "no" turn autocast off; so does None (false in a config file).
MIXED_PRECISION = ("auto", "bf16", "fp16", "fp32", "no")
# Optimiser and schedule defaults: what ran before they were options.
DEFAULT_OPTIM = "adamw_torch_fused"  # transformers' default
DEFAULT_SCHEDULER = "cosine"
DEFAULT_LR = 1e-4  # when neither --lr nor the preset says
DEFAULT_TRAINABLE = "qlora"  # when neither --trainable nor the preset says
BARE_FLAG = ""  # --set-pad-token given without a value
# A --trainer-arg whose name holds one of these words is a secret: used, never written to a file.
SECRET_WORDS = ("token", "secret", "password", "passwd", "key", "apikey")
MASK = "***"


def is_secret(name: str) -> bool:
    """``hub_token``, ``api_key``, ``push_to_hub_token``: a word of the name says it is a secret
    (``include_num_input_tokens_seen`` does not)."""
    return any(word in SECRET_WORDS for word in re.split(r"[_\-.\s]+", name.strip().lower()))


def secret_names(trainer_args: tuple[str, ...]) -> list[str]:
    """The secret keys among ``--trainer-arg KEY=VALUE`` items."""
    return [item.partition("=")[0].strip() for item in trainer_args
            if is_secret(item.partition("=")[0])]


def without_secrets(trainer_args: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(item for item in trainer_args if not is_secret(item.partition("=")[0]))


def masked_command(command: str) -> str:
    """``command`` with the value of every secret ``KEY=VALUE`` in it replaced by ``***``."""
    return " ".join(_masked_word(word) for word in command.split(" "))


def _masked_word(word: str) -> str:
    parts = word.split("=")  # also --trainer-arg=hub_token=VALUE
    for i, part in enumerate(parts[:-1]):
        if is_secret(part.lstrip("-")):
            return "=".join(parts[:i + 1]) + "=" + MASK
    return word


@dataclass(frozen=True)
class TrainSettings:
    """How the model is trained. Defaults are the old train.py's; ``None`` means the preset's."""

    trainable: str | None = field(default=None, metadata=cli(
        "--trainable", type=click.Choice(TRAINABLE_MODES),
        help=f"What is trained [the preset's, else {DEFAULT_TRAINABLE}]."))
    lr: float | None = field(default=None, metadata=cli(
        "-l", "--lr", help=f"Learning rate [the preset's, else {DEFAULT_LR:g}]."))
    batch_size: int = batch_size_field()
    num_epochs: int = field(default=10, metadata=cli("-n", "--num-epochs"))
    weight_decay: float = field(default=0.1, metadata=cli("--weight-decay"))
    lora_rank: int = field(default=4, metadata=cli("-r", "--lora-rank"))
    lora_alpha: int = field(default=8, metadata=cli("-a", "--lora-alpha"))
    lora_dropout: float = field(default=0.2, metadata=cli("--lora-dropout"))
    mixed_precision: str | None = field(default="auto", metadata=cli(
        "--mixed-precision", type=click.Choice(MIXED_PRECISION), is_flag=False,
        flag_value="auto", help="Autocast dtype; auto: bf16 on a GPU that supports it, else "
        "fp16; fp32 on CPU. fp32 or no: off. Bare flag: auto."))
    # None: keep the tokenizer's pad token (or pick one if it has none); BARE_FLAG: pick one
    # (the preset's, else unk, else eos) even if it has one; else that token.
    set_pad_token: str | None = field(default=None, metadata=cli(
        "--set-pad-token", is_flag=False, flag_value=BARE_FLAG, metavar="[TOKEN]",
        help="Pad token; bare flag: the preset's, else unk, else eos."))
    split_model: bool = field(default=False, metadata=cli(
        "--split-model", help="Spread the layers over all visible GPUs (single process only)."))
    save: str = field(default="epoch", metadata=cli(
        "--save", type=click.Choice(SAVE_CHOICES),
        help="Checkpoints: each epoch (or each --save-steps / --eval-steps), one at the end, "
        "or never (final/ is always written)."))
    eval_steps: int | None = field(default=None, metadata=cli(
        "--eval-steps", metavar="N", help="Validate every N optimiser steps (and at the end), "
        "not each epoch; with --save epoch, checkpoints follow [each epoch]."))
    save_steps: int | None = field(default=None, metadata=cli(
        "--save-steps", metavar="N", help="A checkpoint every N optimiser steps; validation "
        "follows unless --eval-steps says (N must be a multiple of it) [each epoch]."))
    save_total_limit: int = field(default=2, metadata=cli(
        "--save-total-limit", metavar="N", help="Checkpoints kept: the newest and the most "
        "accurate always, older ones deleted; 0 keeps all."))
    max_steps: int | None = field(default=None, metadata=cli(
        "--max-steps", metavar="N", help="Stop after N optimiser steps (overrides "
        "--num-epochs; for smoke runs)."))
    early_stopping_patience: int | None = field(default=None, metadata=cli(
        "--early-stopping-patience", metavar="N",
        help="Stop after N validations without a better accuracy [off]."))
    unsloth: bool = field(default=False, metadata=cli(
        "--unsloth", help="Load and train with unsloth (CUDA GPU)."))
    seed: int = field(default=1234, metadata=cli("--seed"))
    gradient_accumulation: int = field(default=1, metadata=cli(
        "--gradient-accumulation", help="Micro-batches per optimiser step."))
    gradient_checkpointing: bool = field(default=False, metadata=cli(
        "--gradient-checkpointing",
        help="Recompute activations in the backward pass: less memory, slower."))
    report_to: str = field(default="none", metadata=cli(
        "--report-to", metavar="NAME[,NAME]", help="Experiment trackers: any installed "
        "integration of transformers (wandb, tensorboard, mlflow, ...), all, or none."))
    warmup_ratio: float = field(default=0.1, metadata=cli(
        "--warmup-ratio", help="Linear warmup over this fraction of all optimiser steps."))
    lr_scheduler: str = field(default=DEFAULT_SCHEDULER, metadata=cli(
        "--lr-scheduler", help="The Trainer's schedule (SchedulerType): linear, cosine, "
        "constant_with_warmup, ..."))
    max_grad_norm: float = field(default=0.3, metadata=cli(  # the QLoRA paper's clipping
        "--max-grad-norm", help="Clip the gradient norm to this; 0: no clipping."))
    logging_steps: int = field(default=10, metadata=cli(
        "--logging-steps", metavar="N", help="Log loss and learning rate every N steps."))
    optim: str = field(default=DEFAULT_OPTIM, metadata=cli(
        "--optim", help="The Trainer's optimiser (OptimizerNames): adamw_torch, "
        "adamw_8bit, paged_adamw_8bit, adafactor, ..."))
    attn_implementation: str | None = field(default=None, metadata=cli(
        "--attn-implementation", help="Attention kernel: eager, sdpa, flash_attention_2, ... "
        "[transformers' default]."))
    tf32: bool | None = field(default=None, metadata=cli(
        "--tf32/--no-tf32", help="TF32 matmuls on Ampere or newer CUDA GPUs [torch's setting]."))
    trainer_args: tuple[str, ...] = field(default=(), metadata=cli(
        # default=(): click's repeatable option wants a tuple (options.py writes "" for tuples)
        "--trainer-arg", multiple=True, default=(), show_default=False, metavar="KEY=VALUE",
        help="Any other TrainingArguments field (repeatable), e.g. dataloader_num_workers=4."))
    class_weights: str | None = field(default=None, metadata=cli(
        "--class-weights", metavar="balanced|FILE", help="Weigh each row's loss by its class: "
        "balanced (rows / (classes * rows of the class), from the train split) or a file of "
        "'class name: weight' lines [unweighted]."))
    chunk_aggregate: str = field(default="mean", metadata=cli(
        "--chunk-aggregate", type=click.Choice(AGGREGATES), help="--truncation chunks: a "
        "document's class log-probabilities from its windows' (validation, eval, predict)."))

    def __post_init__(self) -> None:
        """Checks that hold on any machine and transformers version; the names transformers
        knows (optimisers, schedules, trackers, --trainer-arg keys) are checked when training
        starts, so a recipe stays readable elsewhere (rvl_llm.train.arguments)."""
        def flag(name: str) -> str:
            return "--" + name.replace("_", "-")

        for name in ("batch_size", "num_epochs", "lora_rank", "gradient_accumulation",
                     "logging_steps", "eval_steps", "save_steps", "max_steps",
                     "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RvlError(f"{flag(name)} {value}: must be a positive whole number")
        if self.lr is not None and not self.lr > 0:
            raise RvlError(f"--lr {self.lr}: must be a positive number")
        if self.weight_decay < 0:
            raise RvlError(f"--weight-decay {self.weight_decay}: must not be negative")
        if not 0 <= self.lora_dropout < 1:
            raise RvlError(f"--lora-dropout {self.lora_dropout}: must be in [0, 1)")
        if not 0 <= self.warmup_ratio < 1:  # transformers reads 1 or more as a step count
            raise RvlError(f"--warmup-ratio {self.warmup_ratio}: must be in [0, 1)")
        if not self.max_grad_norm >= 0:
            raise RvlError(f"--max-grad-norm {self.max_grad_norm}: must not be negative "
                           "(0: no clipping)")
        if self.save_total_limit < 0:
            raise RvlError(f"--save-total-limit {self.save_total_limit}: must not be negative "
                           "(0 keeps every checkpoint)")
        choices = {"trainable": (None, *TRAINABLE_MODES), "save": SAVE_CHOICES,
                   "mixed_precision": (None, *MIXED_PRECISION), "chunk_aggregate": AGGREGATES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                shown = ", ".join(a for a in allowed if a is not None)
                raise RvlError(f"{flag(name)} {getattr(self, name)}: choose from {shown}")
        # Validation and checkpoints go together, so final/ can go back to the best one.
        if self.save_steps is not None and self.save != "epoch":
            raise RvlError(f"--save-steps {self.save_steps}: saves every N steps, --save "
                           f"{self.save} asks otherwise; choose one")
        if (self.save_steps is not None and self.eval_steps is not None
                and self.save_steps % self.eval_steps):
            raise RvlError(f"--save-steps {self.save_steps}: must be a multiple of --eval-steps "
                           f"{self.eval_steps} (a checkpoint at a validation)")
        for name in ("report_to", "lr_scheduler", "optim", "attn_implementation"):
            value = getattr(self, name)
            if value is not None and (not value.strip() or value != value.strip()):
                raise RvlError(f"{flag(name)} {value!r}: must be a name")
        trackers = [name.strip() for name in self.report_to.split(",")]
        if "" in trackers or (len(trackers) > 1 and {"none", "all"} & set(trackers)):
            raise RvlError(f"--report-to {self.report_to}: one name or names joined by commas; "
                           "none and all stand alone")
        keys: set[str] = set()
        for item in self.trainer_args:
            key, equals, _ = item.partition("=")
            if not equals or not key.strip().isidentifier():
                raise RvlError(f"--trainer-arg {item}: must be KEY=VALUE, KEY a field of "
                               "transformers' TrainingArguments")
            if key.strip() in keys:
                raise RvlError(f"--trainer-arg {key.strip()}: given twice")
            keys.add(key.strip())

    @property
    def eval_every(self) -> int | None:
        """Optimiser steps between validations; None: each epoch. --save-steps alone sets it."""
        return self.eval_steps or self.save_steps

    @property
    def save_every(self) -> int | None:
        """Optimiser steps between checkpoints (--save epoch); None: each epoch. --eval-steps
        alone sets it, so every validation has a checkpoint to go back to."""
        return self.save_steps or self.eval_steps


@dataclass(frozen=True)
class Quantization:
    """QLoRA's 4-bit settings, as the base model is loaded again for eval."""

    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bf16"  # bf16 | fp16


@dataclass(frozen=True)
class ExportInfo:
    """What ``rvl-llm export`` made a folder from."""

    source: Path  # the checkpoint folder exported, absolute
    trainable: str  # what the run trained: classifier, lora, qlora or full
    merged: bool  # an adapter merged into the base weights (False: the folder is the adapter)
    dtype: str  # the weights' dtype: bf16, fp16 or fp32

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE_MODES:
            raise RvlError(f"exported.trainable {self.trainable}: choose from "
                           f"{', '.join(TRAINABLE_MODES)}")
        if self.dtype not in EXPORT_DTYPES:
            raise RvlError(f"exported.dtype {self.dtype}: choose from {', '.join(EXPORT_DTYPES)}")


@dataclass(frozen=True)
class Recipe:
    run_name: str
    model: str  # what --model said: a preset, a folder or a hub id
    model_location: str  # the base model: an absolute folder or a hub id
    data: PrepareConfig  # verbatim: absolute paths, labels inline, model = model_location
    prompt: PromptSpec  # what every row was rendered from: every stage renders from it
    settings: TrainSettings  # preset defaults filled in
    pad_token: str
    lora_targets: str | tuple[str, ...]  # "all-linear" or module names
    quantization: Quantization | None  # qlora only
    mixed_precision: str | None  # what ran: fp32, bf16 or fp16 (--mixed-precision resolved)
    cache_key: str  # the prepared shards training read
    versions: dict[str, str | None]
    command: str
    validation_accuracy: float | None = None  # of the weights in this folder
    best_validation_accuracy: float | None = None  # of the run so far
    exported: ExportInfo | None = None  # set in a folder written by `rvl-llm export`
    class_weights: tuple[float, ...] | None = None  # the loss's, per class (--class-weights)

    def __post_init__(self) -> None:
        name = self.run_name
        if not name or Path(name).name != name or name in (".", ".."):
            raise RvlError(f"run name {self.run_name!r}: must be a plain folder name")
        if self.settings.trainable is None:
            raise RvlError("recipe: settings.trainable must be resolved (not the preset's)")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.prompt.labels

    @property
    def generative(self) -> bool:
        return self.prompt.generative

    @property
    def mode(self) -> str:
        return self.prompt.mode

    @property
    def trainable(self) -> str:
        assert self.settings.trainable is not None
        return self.settings.trainable

    def to_json(self) -> dict[str, object]:
        # Secrets stay in memory (the Trainer needs them), never in a file: every recipe on
        # disk (run folder, checkpoints, final/, an export) is written from here.
        public = replace(self, settings=replace(
            self.settings, trainer_args=without_secrets(self.settings.trainer_args)),
            command=masked_command(self.command))
        return {"recipe_version": RECIPE_VERSION, **to_json(public)}

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / RECIPE_NAME
        write_json_atomic(path, self.to_json())
        return path

    @classmethod
    def read(cls, folder: Path) -> Recipe:
        """The recipe in ``folder``, every field checked; an error names the file and field."""
        path = Path(folder) / RECIPE_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise RvlError(f"{folder}: no {RECIPE_NAME} (not a final/ or checkpoint-N/ folder "
                           "written by `rvl-llm train`)") from err
        except (OSError, ValueError) as err:
            raise RvlError(f"{path}: unreadable recipe ({err})") from err
        version = data.get("recipe_version") if isinstance(data, dict) else None
        if version != RECIPE_VERSION:
            raise RvlError(f"{path}: recipe version {version} is not this rvl-llm's "
                           f"{RECIPE_VERSION}; evaluate it with the rvl-llm that trained it, "
                           "or train again")
        fields_only = {k: v for k, v in data.items() if k != "recipe_version"}
        try:
            recipe = from_json(cls, fields_only)
        except SchemaError as err:
            raise RvlError(f"{path}: bad recipe ({err})") from err
        except RvlError as err:  # a value its config refuses
            raise RvlError(f"{path}: bad recipe ({err.message})") from err
        if recipe.data.labels is None:
            raise RvlError(f"{path}: bad recipe (data.labels: the label set must be inline)")
        # A file must not grant permissions: remote code runs only on the command's own flag.
        return replace(recipe, data=replace(recipe.data, trust_remote_code=False))

