"""``run_train``: a TrainConfig -> prepared shards -> trained model in ``LOG_DIR/NAME/final``.

Top to bottom: resolve the model and the preset's defaults; check the log folder, the run folder
and the machine (nothing is touched before every check passed); lock the run; prepare the shards
(rank 0 first under a multi-process launch); load tokenizer and model; train with validation each
epoch and a guard against non-finite weights; write ``final/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import click

from rvl_llm.errors import RvlError
from rvl_llm.options import CLI_KEY
from rvl_llm.presets import resolve_model
from rvl_llm.recipe import RECIPE_NAME, Recipe
from rvl_llm.train.config import TrainConfig, with_preset_defaults
from rvl_llm.train.run_folder import (
    FINAL_DIR,
    check_log_dir,
    check_overwritable,
    is_run_folder,
    resume_point,
    run_lock,
    set_aside,
)

WARMUP_RATIO = 0.1  # of all optimiser steps
MAX_GRAD_NORM = 0.3  # QLoRA paper's clipping
LOGGING_STEPS = 10
Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    final_dir: Path
    best_accuracy: float | None  # best validation accuracy of any epoch
    final_accuracy: float | None  # validation accuracy of the weights in final/


def run_train(cfg: TrainConfig, log: Log | None = None) -> TrainResult:
    say = log or click.echo
    source = resolve_model(cfg.data.model)
    cfg = with_preset_defaults(cfg, source.preset)
    source.check_model_files()
    from rvl_llm.inference.base_model import cpu_only
    from rvl_llm.train.model import check_environment, resolve_mixed_precision

    check_environment(cfg)
    mixed_precision = resolve_mixed_precision(cfg.settings.mixed_precision)
    source.tokenizer_dir()  # a hub model unreachable offline fails here, before any write
    check_log_dir(cfg.log_dir)
    if cfg.settings.unsloth:
        import unsloth  # noqa: F401 - patches transformers and peft; must come before them

    from accelerate import PartialState

    from rvl_llm.pipeline.prepare import run_prepare

    state = PartialState(cpu=cpu_only())
    # One process of a launch holds the lock: the others are its own workers.
    with run_lock(cfg.log_dir, cfg.name) if state.is_main_process else nullcontext():
        check_run_dir(cfg)
        with state.main_process_first():  # rank 0 builds the shards; the others hit the cache
            prepared = run_prepare(cfg.data, log=say if state.is_main_process else None)
        if state.is_main_process:
            for line in prepared.summary_lines():
                say(line)
        return _train(cfg, source, prepared.manifest, mixed_precision, state, say)


def check_run_dir(cfg: TrainConfig) -> None:
    """Refuse to write into a run folder that holds a run, unless asked to, and into a folder
    that is not a run at all (a user's files), even when asked to (nothing lost)."""
    run = cfg.run_dir
    if cfg.overwrite:
        check_overwritable(run)
        return
    if run.exists() and any(run.iterdir()) and not is_run_folder(run):
        raise RvlError(f"--name {cfg.name}: {run} holds files that are not a run of rvl-llm; "
                       "choose another --name or --log-dir")
    if cfg.resume:
        return
    if (run / FINAL_DIR / RECIPE_NAME).is_file():
        raise RvlError(f"--name {cfg.name}: {run} holds a finished run; pass --overwrite to "
                       "replace it or --resume to continue it")
    if is_run_folder(run):
        raise RvlError(f"--name {cfg.name}: {run} holds checkpoints of an unfinished run; pass "
                       "--resume to continue it or --overwrite to start again")


def _train(cfg: TrainConfig, source: Any, manifest: Any, mixed_precision: str | None,
           state: Any, say: Log) -> TrainResult:
    from transformers import set_seed

    from rvl_llm.compat import close_progress_bars
    from rvl_llm.inference.base_model import resolve_pad_token
    from rvl_llm.pipeline.tokenize import load_tokenizer
    from rvl_llm.train.checkpoint import build_recipe, recipe_callback
    from rvl_llm.train.data import make_collator, train_dataset, validation_dataset
    from rvl_llm.train.guards import finite_guard
    from rvl_llm.train.model import load_model, lora_targets, quantization_settings
    from rvl_llm.train.trainer import RvlTrainer

    tokenizer = load_tokenizer(source.tokenizer_dir(),
                               trust_remote_code=cfg.data.trust_remote_code)
    tokenizer.pad_token = resolve_pad_token(tokenizer, cfg.settings.set_pad_token, source.preset)
    recipe = build_recipe(
        cfg, source, manifest,
        pad_token=tokenizer.pad_token,
        lora_targets=lora_targets(source.preset),
        quantization=quantization_settings(cfg.settings.trainable or ""),
        mixed_precision=mixed_precision,
    )
    resume_from = _resume_point(cfg, recipe, say) if state.is_main_process else None
    if cfg.resume and state.num_processes > 1:  # rank 0 chose (and set aside); all follow it
        from accelerate.utils import broadcast_object_list

        resume_from = broadcast_object_list([resume_from])[0]
    set_seed(cfg.settings.seed)  # LoRA and head initialisation
    model = load_model(cfg, source.location, labels=manifest.labels,
                       pad_token_id=tokenizer.pad_token_id, preset=source.preset,
                       mixed_precision=mixed_precision)
    validation = validation_dataset(manifest)
    has_validation = len(validation) > 0
    if state.is_main_process:
        if cfg.overwrite and cfg.run_dir.exists():
            shutil.rmtree(cfg.run_dir)  # only now: every check passed and the model loaded
        recipe.write(cfg.run_dir)
    state.wait_for_everyone()

    trainer = RvlTrainer(
        model=model,
        args=training_arguments(cfg, mixed_precision, has_validation),
        train_dataset=train_dataset(manifest),
        eval_dataset=validation if has_validation else None,
        data_collator=make_collator(manifest, tokenizer.pad_token_id),
        processing_class=tokenizer,  # saved with every checkpoint, pad token included
        # The guard last: it checks the weights once the others have asked for a save.
        callbacks=[recipe_callback(cfg.run_dir, recipe), *_save_at_end(cfg),
                   finite_guard(cfg.run_dir)],
        template=manifest.template,
        class_names=manifest.labels,
        pad_token_id=tokenizer.pad_token_id,
        head_only=cfg.settings.trainable == "classifier",
        say=say,
    )
    if not has_validation and state.is_main_process:
        say("train: the validation split is empty; no validation, final/ = last epoch")
    try:
        trainer.train(resume_from_checkpoint=resume_from)
    except BaseException:
        close_progress_bars(trainer)  # so the one-line error starts a line of its own
        raise
    return _write_final(cfg, trainer, recipe, state, say)


# Prepare settings that do not change the rows a run reads.
_NOT_DATA = ("progress", "trust_remote_code", "tokenize_batch")


def _resume_identity(recipe: Recipe) -> dict[str, Any]:
    """What a resumed run must share with the run it continues: every prepare setting that
    shapes the rows (compared one by one, so the message names it), the model and adapters."""
    data = {_flag(f): getattr(recipe.data, f.name)
            for f in fields(recipe.data) if f.name not in _NOT_DATA}
    return {
        **data,
        "model_location": recipe.model_location,
        "cache_key": recipe.cache_key,
        "trainable": recipe.trainable,
        "lora_targets": recipe.lora_targets,
        "lora_rank": recipe.settings.lora_rank,
        "lora_alpha": recipe.settings.lora_alpha,
        "quantization": recipe.quantization,
    }


def _flag(f: Any) -> str:
    """A setting's long option (``--data``), else its field name (``labels``)."""
    declarations = f.metadata.get(CLI_KEY, ((),))[0]
    return next((d for d in declarations if d.startswith("--")), f.name)


def _resume_point(cfg: TrainConfig, recipe: Recipe, say: Log) -> str | None:
    """The newest complete checkpoint to continue from; incomplete newer ones (a save killed
    half-way) are set aside, never deleted."""
    if not cfg.resume or not cfg.run_dir.is_dir():
        return None
    if (cfg.run_dir / RECIPE_NAME).is_file():
        before, now = _resume_identity(Recipe.read(cfg.run_dir)), _resume_identity(recipe)
        for key, value in before.items():
            if value != now[key]:
                raise RvlError(f"--resume: {cfg.run_dir} was trained with {key} {value!r}, "
                               f"this run asks for {now[key]!r}; resume with the same settings")
    last, incomplete = resume_point(cfg.run_dir)
    for old, new in zip(incomplete, set_aside(incomplete), strict=True):
        say(f"--resume: {old.name} is incomplete (a save was cut short); set aside as {new.name}")
    if last is None:
        say(f"--resume: no complete checkpoint in {cfg.run_dir}; starting from the beginning")
        return None
    say(f"--resume: continuing from {last}")
    return str(last)


def training_arguments(cfg: TrainConfig, mixed_precision: str | None,
                       has_validation: bool) -> Any:
    from transformers import TrainingArguments

    from rvl_llm.compat import checkpointing_arguments
    from rvl_llm.inference.base_model import cpu_only

    settings = cfg.settings
    return TrainingArguments(
        output_dir=str(cfg.run_dir),
        run_name=cfg.name,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        num_train_epochs=settings.num_epochs,
        learning_rate=settings.lr,
        weight_decay=settings.weight_decay,
        lr_scheduler_type="cosine",
        warmup_steps=WARMUP_RATIO,  # a float below 1 is a fraction of all steps
        max_grad_norm=MAX_GRAD_NORM,
        train_sampling_strategy="group_by_length",
        length_column_name="length",  # precomputed by prepare
        eval_strategy="epoch" if has_validation else "no",
        save_strategy="epoch" if settings.save == "epoch" else "no",
        # Best by accuracy needs a checkpoint of every epoch to go back to.
        load_best_model_at_end=has_validation and settings.save == "epoch",
        metric_for_best_model="eval_accuracy" if has_validation else None,
        greater_is_better=True,
        bf16=mixed_precision == "bf16",
        fp16=mixed_precision == "fp16",
        use_cpu=cpu_only(),  # also tells transformers that bf16 means CPU autocast
        **checkpointing_arguments(settings.gradient_checkpointing and not settings.unsloth),
        report_to=settings.report_to,
        seed=settings.seed,
        remove_unused_columns=False,  # the collator picks its columns
        label_names=["labels"],
        logging_steps=LOGGING_STEPS,
        logging_nan_inf_filter=False,  # the finite guard must see a NaN loss as it is
        ddp_find_unused_parameters=False,
    )


def _save_at_end(cfg: TrainConfig) -> list[Any]:
    """``--save end``: one checkpoint (resumable, with optimiser state) after the last epoch."""
    if cfg.settings.save != "end":
        return []
    from transformers import TrainerCallback

    class SaveAtEnd(TrainerCallback):
        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step >= state.max_steps:
                control.should_save = True

    return [SaveAtEnd()]


def _write_final(cfg: TrainConfig, trainer: Any, recipe: Recipe, state: Any,
                 say: Log) -> TrainResult:
    from rvl_llm.train.checkpoint import accuracies

    final = cfg.run_dir / FINAL_DIR
    trainer.save_model(str(final))  # on every process: FSDP gathers the weights collectively
    history = trainer.state.log_history
    _, best = accuracies(history, -1)
    if trainer.args.load_best_model_at_end:
        final_accuracy = best
    else:
        evals = [e["eval_accuracy"] for e in history if "eval_accuracy" in e]
        final_accuracy = evals[-1] if evals else None
    if state.is_main_process:
        done = replace(recipe, validation_accuracy=final_accuracy, best_validation_accuracy=best)
        done.write(final)  # last: final/ with a recipe is complete
        done.write(cfg.run_dir)
        shown = "n/a" if final_accuracy is None else f"{final_accuracy:.4f}"
        say(f"train: done; validation accuracy of {final}: {shown}"
            + ("" if best is None else f" (best epoch {best:.4f})"))
    state.wait_for_everyone()
    return TrainResult(cfg.run_dir, final, best, final_accuracy)
