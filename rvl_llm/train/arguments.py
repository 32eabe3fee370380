"""The Trainer's knobs: ``TrainingArguments`` from the training settings, ``--trainer-arg`` for
every other field, and the callbacks (a recipe in every checkpoint, ``--save end``, early stopping).

Names that depend on the transformers release (optimisers, schedules, trackers, fields) are
checked here when a run starts, not in ``TrainSettings``, so a recipe reads under any release.
So are the ``--trainer-arg`` values the Trainer would refuse only once the run folder exists.
"""

from __future__ import annotations

import difflib
import json
from contextlib import suppress
from dataclasses import fields, replace
from enum import Enum
from importlib.util import find_spec
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

import click

from rvl_llm.compat import (
    attention_implementations,
    checkpointing_arguments,
    reporting_integrations,
)
from rvl_llm.errors import RvlError
from rvl_llm.inference.base_model import cpu_only
from rvl_llm.recipe import (
    DEFAULT_OPTIM,
    DEFAULT_SCHEDULER,
    Recipe,
    TrainSettings,
    is_secret,
    secret_names,
)
from rvl_llm.train.run_folder import save_failure

if TYPE_CHECKING:
    from rvl_llm.train.config import TrainConfig

UNSET = object()  # a field our flags own but leave at transformers' default
BEST = "rvl-llm (final/ = the checkpoint with the best validation accuracy)"
OURS = "rvl-llm itself"
METRIC = "eval_accuracy"  # what RvlTrainer.evaluate logs; the best checkpoint is chosen by it
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# TrainingArguments fields the Trainer never reads when rvl-llm calls it: what to use instead.
NOT_USED = {
    "resume_from_checkpoint": "--resume (continues LOG_DIR/NAME from its newest complete "
                              "checkpoint)",
    "do_train": "nothing (rvl-llm train always trains)",
    "do_eval": "--eval-steps or the validation split (validation runs when there is one)",
    "do_predict": "rvl-llm eval or rvl-llm predict",
    "overwrite_output_dir": "--overwrite",
}
# Fields the Trainer takes as a JSON file or a dict, and reads only once the run has started.
CONFIG_FILE_FIELDS = ("deepspeed", "fsdp_config", "accelerator_config")
# Least values of fields that the Trainer checks only when it builds its data loaders.
LEAST = {"dataloader_num_workers": 0, "dataloader_prefetch_factor": 1,
         "eval_accumulation_steps": 1}


def our_arguments(cfg: TrainConfig, mixed_precision: str | None,
                  has_validation: bool) -> dict[str, tuple[str, Any]]:
    """Every TrainingArguments field rvl-llm sets: field -> (what sets it, value)."""
    s = cfg.settings
    evaluation = "no" if not has_validation else "steps" if s.eval_every else "epoch"
    saving = "no" if s.save != "epoch" else "steps" if s.save_every else "epoch"
    trackers = [name.strip() for name in s.report_to.split(",")]
    ours: dict[str, tuple[str, Any]] = {
        "output_dir": ("--log-dir and --name", str(cfg.run_dir)),
        "run_name": ("--name", cfg.name),
        "per_device_train_batch_size": ("--batch-size", s.batch_size),
        "per_device_eval_batch_size": ("--batch-size", s.batch_size),
        "gradient_accumulation_steps": ("--gradient-accumulation", s.gradient_accumulation),
        "num_train_epochs": ("--num-epochs", s.num_epochs),
        "max_steps": ("--max-steps", s.max_steps or -1),  # -1: --num-epochs decides
        "learning_rate": ("--lr", s.lr),
        "weight_decay": ("--weight-decay", s.weight_decay),
        "lr_scheduler_type": ("--lr-scheduler", s.lr_scheduler),
        "warmup_steps": ("--warmup-ratio", s.warmup_ratio),  # below 1: a fraction of all steps
        "warmup_ratio": ("--warmup-ratio", UNSET),  # the older name
        "max_grad_norm": ("--max-grad-norm", s.max_grad_norm),
        "optim": ("--optim", s.optim),
        "eval_strategy": ("--eval-steps", evaluation),
        "eval_steps": ("--eval-steps", s.eval_every if evaluation == "steps" else None),
        "save_strategy": ("--save and --save-steps", saving),
        "save_steps": ("--save-steps", s.save_every if saving == "steps" else UNSET),
        "save_total_limit": ("--save-total-limit", s.save_total_limit or None),
        # Best by accuracy needs a checkpoint at the validations to go back to.
        "load_best_model_at_end": (BEST, saving != "no" and saving == evaluation),
        "metric_for_best_model": (BEST, METRIC if has_validation else None),
        "greater_is_better": (BEST, True),
        "bf16": ("--mixed-precision", mixed_precision == "bf16"),
        "fp16": ("--mixed-precision", mixed_precision == "fp16"),
        "tf32": ("--tf32", s.tf32),
        "use_cpu": (OURS, cpu_only()),  # also tells transformers that bf16 means CPU autocast
        "report_to": ("--report-to", trackers if len(trackers) > 1 else trackers[0]),
        "seed": ("--seed", s.seed),
        "logging_steps": ("--logging-steps", s.logging_steps),
        "train_sampling_strategy": (OURS, "group_by_length"),
        "length_column_name": (OURS, "length"),  # precomputed by prepare
        "remove_unused_columns": (OURS, False),  # the collator picks its columns
        "label_names": (OURS, ["labels"]),
        "logging_nan_inf_filter": (OURS, False),  # the finite guard must see a NaN loss as it is
        "ddp_find_unused_parameters": (OURS, False),
    }
    checkpointing = checkpointing_arguments(s.gradient_checkpointing and not s.unsloth)
    for name in ("gradient_checkpointing", "activation_checkpointing"):  # 5.2x renamed it
        for key in (name, f"{name}_kwargs"):
            ours[key] = ("--gradient-checkpointing", checkpointing.get(key, UNSET))
    return ours


def training_arguments(cfg: TrainConfig, mixed_precision: str | None,
                       has_validation: bool) -> Any:
    from transformers import TrainingArguments

    ours = our_arguments(cfg, mixed_precision, has_validation)
    given = {key: value for key, (_, value) in ours.items() if value is not UNSET}
    values = trainer_arg_values(cfg)
    try:
        args = TrainingArguments(**given, **values)
    except ValueError as err:  # a combination TrainingArguments refuses
        what = "--trainer-arg" if cfg.settings.trainer_args else "training settings"
        raise RvlError(f"{what}: transformers refuses them ({str(err).splitlines()[0]})") from err
    secrets = [key for key in values if is_secret(key)]
    if secrets:
        # The Trainer pickles its arguments into every checkpoint (training_args.bin): the
        # pickled copy leaves the secrets out; this one, which the Trainer uses, keeps them.
        def state() -> dict[str, Any]:
            kept = {k: v for k, v in vars(args).items() if k != "__getstate__"}
            return {**kept, **dict.fromkeys(secrets)}

        args.__getstate__ = state
    return args


def trainer_arg_values(cfg: TrainConfig) -> dict[str, Any]:
    """``--trainer-arg KEY=VALUE`` as TrainingArguments keywords, each value parsed by the
    field's type; a key that is no field, or one our flags set, is refused naming the right one."""
    if not cfg.settings.trainer_args:
        return {}
    from transformers import TrainingArguments

    hints = get_type_hints(TrainingArguments)
    known = sorted(f.name for f in fields(TrainingArguments) if f.init)
    owners = {key: owner for key, (owner, _) in our_arguments(cfg, None, True).items()}
    values: dict[str, Any] = {}
    for item in cfg.settings.trainer_args:
        key, _, text = item.partition("=")
        key = key.strip()
        if key in owners:
            raise RvlError(f"--trainer-arg {key}: set by {owners[key]}; use that instead")
        if key in NOT_USED:
            raise RvlError(f"--trainer-arg {key}: the Trainer does not use it in rvl-llm; "
                           f"use {NOT_USED[key]}")
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            owner = f" (set by {owners[near[0]]})" if near and near[0] in owners else ""
            hint = f"; did you mean {near[0]}{owner}?" if near else ""
            raise RvlError(f"--trainer-arg {key}: not a field of transformers' "
                           f"TrainingArguments{hint}")
        values[key] = parse_value(key, text, hints[key])
        _check_value(key, values[key], text)
    if values.get("push_to_hub"):
        _check_hub(values.get("hub_token"))
    return values


def _check_value(key: str, value: Any, text: str) -> None:
    """What the Trainer would refuse only after the run folder is written."""
    if key in LEAST and value is not None and value < LEAST[key]:
        raise RvlError(f"--trainer-arg {key}={text}: must be {LEAST[key]} or more")
    is_file_name = key in CONFIG_FILE_FIELDS and isinstance(value, str) and bool(value)
    if is_file_name and not Path(value).expanduser().is_file():
        raise RvlError(f"--trainer-arg {key}={text}: no such file; name a JSON config "
                       "file, or give the settings inline as JSON")
    if key == "deepspeed" and value and find_spec("deepspeed") is None:
        raise RvlError(f"--trainer-arg {key}: DeepSpeed is not installed (pip install "
                       "deepspeed)")


def _check_hub(token: str | None) -> None:
    """``push_to_hub``: the Trainer creates the hub repository when it starts, after the run
    folder is written; without a hub to reach, or a login, it fails there."""
    from huggingface_hub import constants, get_token  # lazily, as transformers itself

    if constants.HF_HUB_OFFLINE:
        raise RvlError("--trainer-arg push_to_hub=true: the hub is offline here (HF_HUB_OFFLINE); "
                       "drop push_to_hub and upload the export (rvl-llm export) later")
    if not (token or get_token()):
        raise RvlError("--trainer-arg push_to_hub=true: not logged in to the hub; run `hf auth "
                       "login` or set HF_TOKEN first")


def parse_value(key: str, text: str, hint: Any) -> Any:
    """``text`` as the field type ``hint`` says: bool, int, float, JSON for dicts and lists,
    an enum's value, a string; ``none`` for an optional field (tried in that order)."""
    kinds = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    bases = [get_origin(k) or k for k in kinds]
    raw = text.strip()
    if type(None) in bases and raw.lower() in ("none", "null"):
        return None
    if bool in bases and raw.lower() in TRUE + FALSE:
        return raw.lower() in TRUE
    for number in (int, float):
        if number in bases:
            with suppress(ValueError):
                return number(raw)
    containers = tuple(base for base in (dict, list) if base in bases)
    with suppress(ValueError):
        if containers and isinstance(value := json.loads(raw), containers):
            return value
    enums = [base for base in bases if isinstance(base, type) and issubclass(base, Enum)]
    if any(raw in {member.value for member in enum} for enum in enums):
        return raw
    if str in bases:
        return text
    shown = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
    raise RvlError(f"--trainer-arg {key}={text}: not a {shown}")


def check_arguments(cfg: TrainConfig) -> None:
    """The names only this transformers can judge, before anything is prepared or written;
    transformers is imported only when a setting leaves its default."""
    s = cfg.settings
    if s.optim != DEFAULT_OPTIM:
        from transformers.training_args import OptimizerNames

        _check_name("--optim", s.optim, [o.value for o in OptimizerNames])
    if s.lr_scheduler != DEFAULT_SCHEDULER:
        from transformers.trainer_utils import SchedulerType

        _check_name("--lr-scheduler", s.lr_scheduler, [t.value for t in SchedulerType])
    if s.report_to != "none":
        known, installed = reporting_integrations()
        for name in (n.strip() for n in s.report_to.split(",")):
            _check_name("--report-to", name, [*known, "all", "none"])
            if name not in ("all", *installed):
                shown = ", ".join(installed) or "none of them"
                raise RvlError(f"--report-to {name}: not installed (pip install {name}); "
                               f"installed here: {shown}")
    attention = s.attn_implementation
    if attention is not None and "/" not in attention:  # "org/repo": a kernel from the hub
        _check_name("--attn-implementation", attention, list(attention_implementations()))
    trainer_arg_values(cfg)
    secrets = secret_names(s.trainer_args)
    if secrets:
        click.echo(f"--trainer-arg {', '.join(secrets)}: a secret; this run uses it but never "
                   "writes it to a file (recipe.json, config.yaml, checkpoints, the export); "
                   "give it again to --resume")


def _check_name(option: str, value: str, allowed: list[str]) -> None:
    if value in allowed:
        return
    near = difflib.get_close_matches(value, allowed, n=1)
    hint = f"did you mean {near[0]}? " if near else ""
    raise RvlError(f"{option} {value}: unknown; {hint}choose from {', '.join(allowed)}")


# -- callbacks --------------------------------------------------------------------------------


def save_at_end(settings: TrainSettings) -> list[Any]:
    """``--save end``: one checkpoint (resumable, with optimiser state) after the last step."""
    if settings.save != "end":
        return []
    from transformers import TrainerCallback

    class SaveAtEnd(TrainerCallback):
        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step >= state.max_steps:
                control.should_save = True

    return [SaveAtEnd()]


def validations_since_best(log_history: list[dict[str, Any]]) -> int:
    """Validations after the first with the best accuracy: EarlyStoppingCallback's count."""
    scores = [e[METRIC] for e in log_history if METRIC in e]
    return len(scores) - 1 - scores.index(max(scores)) if scores else 0


def early_stopping(settings: TrainSettings) -> list[Any]:
    """``--early-stopping-patience N``: transformers' EarlyStoppingCallback on validation
    accuracy. Its count is taken from the log when training (re)starts, so a resumed run counts
    the validations before the kill; resumed from the checkpoint at which it had stopped, the run
    stops after one step whose weights, validation and save are dropped (final/ is the best
    checkpoint, as in the uninterrupted run)."""
    if settings.early_stopping_patience is None:
        return []
    from transformers import EarlyStoppingCallback

    class EarlyStopping(EarlyStoppingCallback):
        stopped = False  # resumed from the checkpoint where the run had stopped

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            super().on_train_begin(args, state, control, **kwargs)
            self.early_stopping_patience_counter = validations_since_best(state.log_history)
            self.stopped = self.early_stopping_patience_counter >= self.early_stopping_patience

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.stopped:
                control.should_training_stop = True
                control.should_evaluate = control.should_save = control.should_log = False

    return [EarlyStopping(early_stopping_patience=settings.early_stopping_patience)]


def accuracies(log_history: list[dict[str, Any]], step: int) -> tuple[float | None, float | None]:
    """(accuracy of the weights at ``step``, best accuracy so far) from the Trainer's log."""
    evals = [e for e in log_history if METRIC in e]
    at_step = [e[METRIC] for e in evals if e.get("step") == step]
    best = max((e[METRIC] for e in evals), default=None)
    return (at_step[-1] if at_step else None), best


def recipe_callback(run_dir: Path, recipe: Recipe) -> Any:
    """A TrainerCallback writing the recipe into every checkpoint once it is saved: the recipe is
    the checkpoint's last file, so its presence marks a complete checkpoint."""
    from transformers import TrainerCallback

    class RecipeCallback(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                current, best = accuracies(state.log_history, state.global_step)
                folder = run_dir / f"checkpoint-{state.global_step}"
                try:
                    replace(recipe, validation_accuracy=current,
                            best_validation_accuracy=best).write(folder)
                except OSError as err:  # a full disk: the checkpoint stays incomplete
                    raise save_failure(folder, run_dir, err) from err

    return RecipeCallback()
