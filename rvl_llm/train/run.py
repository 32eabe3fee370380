"""``run_train``: flags -> prepared shards -> trained model in ``log/NAME/final``. Top to bottom:

resolve the model and the preset's defaults; check the run folder and the machine (nothing is
touched before every check passed); prepare the shards (rank 0 first under a multi-process
launch); load tokenizer and model; train with validation each epoch; write ``final/``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from rvl_llm.errors import RvlError
from rvl_llm.presets import resolve_model
from rvl_llm.train.checkpoint import FINAL_DIR, RECIPE_NAME, build_recipe, write_recipe
from rvl_llm.train.config import TrainConfig, with_preset_defaults

WARMUP_RATIO = 0.1  # of all optimiser steps
MAX_GRAD_NORM = 0.3  # QLoRA paper's clipping
LOGGING_STEPS = 10
# Recipe fields a resumed run must share with the run it continues.
RESUME_MUST_MATCH = ("model", "mode", "trainable", "max_len", "cache_key", "lora", "quantization")


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    final_dir: Path
    best_accuracy: float | None  # best validation accuracy of any epoch
    final_accuracy: float | None  # validation accuracy of the weights in final/


def run_train(cfg: TrainConfig) -> TrainResult:
    source = resolve_model(cfg.model)
    cfg = with_preset_defaults(cfg, source.preset)
    check_run_dir(cfg)
    from rvl_llm.train.model import check_environment, resolve_mixed_precision

    check_environment(cfg)
    mixed_precision = resolve_mixed_precision(cfg.mixed_precision)
    if cfg.unsloth:
        import unsloth  # noqa: F401 - patches transformers and peft; must come before them

    from accelerate import PartialState

    from rvl_llm.pipeline.cli import echo_result
    from rvl_llm.pipeline.prepare import run_prepare
    from rvl_llm.train.model import cpu_only

    state = PartialState(cpu=cpu_only())
    with state.main_process_first():  # rank 0 builds the shards; the others then hit the cache
        prepared = run_prepare(cfg.prepare_config(), log=_say if state.is_main_process else None)
    if state.is_main_process:
        echo_result(prepared)
    elif prepared.built:  # should not happen: the main process built them a moment ago
        click.echo(f"prepare (process {state.process_index}): built {', '.join(prepared.built)}")
    manifest = prepared.manifest
    return _train(cfg, source, manifest, mixed_precision, state)


def check_run_dir(cfg: TrainConfig) -> None:
    """Refuse to write into a run folder that holds a run, unless asked to (nothing lost)."""
    run = cfg.run_dir
    finished = (run / FINAL_DIR / RECIPE_NAME).is_file()
    if cfg.overwrite or cfg.resume:
        return
    if finished:
        raise RvlError(f"--name {cfg.name}: {run} holds a finished run; pass --overwrite to "
                       "replace it or --resume to continue it")
    if any(run.glob("checkpoint-*")):
        raise RvlError(f"--name {cfg.name}: {run} holds checkpoints of an unfinished run; pass "
                       "--resume to continue it or --overwrite to start again")


def _train(cfg: TrainConfig, source: Any, manifest: Any, mixed_precision: str | None,
           state: Any) -> TrainResult:
    from transformers import set_seed

    from rvl_llm.pipeline.tokenize import load_tokenizer
    from rvl_llm.train.checkpoint import recipe_callback
    from rvl_llm.train.data import make_collator, train_dataset, validation_dataset
    from rvl_llm.train.model import (
        load_model,
        lora_targets,
        quantization_settings,
        resolve_pad_token,
    )
    from rvl_llm.train.trainer import RvlTrainer

    tokenizer = load_tokenizer(source.tokenizer_dir(), trust_remote_code=cfg.trust_remote_code)
    tokenizer.pad_token = resolve_pad_token(tokenizer, cfg.set_pad_token, source.preset)
    recipe = build_recipe(
        cfg, source, manifest,
        pad_token=tokenizer.pad_token,
        lora_targets=lora_targets(source.preset),
        quantization=quantization_settings(cfg.trainable or ""),
        mixed_precision=mixed_precision,
    )
    resume_from = _resume_point(cfg, recipe)
    set_seed(cfg.seed)  # LoRA and head initialisation
    model = load_model(cfg, source.location, labels=manifest.labels,
                       pad_token_id=tokenizer.pad_token_id, preset=source.preset,
                       mixed_precision=mixed_precision)
    validation = validation_dataset(manifest)
    has_validation = len(validation) > 0
    if state.is_main_process:
        if cfg.overwrite and cfg.run_dir.exists():
            shutil.rmtree(cfg.run_dir)  # only now: every check passed and the model loaded
        write_recipe(cfg.run_dir, recipe)
    state.wait_for_everyone()

    trainer = RvlTrainer(
        model=model,
        args=training_arguments(cfg, mixed_precision, has_validation),
        train_dataset=train_dataset(manifest),
        eval_dataset=validation if has_validation else None,
        data_collator=make_collator(manifest, tokenizer.pad_token_id),
        processing_class=tokenizer,  # saved with every checkpoint, pad token included
        callbacks=[recipe_callback(cfg.run_dir, recipe), *_save_at_end(cfg)],
        template=manifest.template,
        class_names=manifest.labels,
        pad_token_id=tokenizer.pad_token_id,
        head_only=cfg.trainable == "classifier",
    )
    if not has_validation and state.is_main_process:
        click.echo("train: the validation split is empty; no validation, final/ = last epoch")
    trainer.train(resume_from_checkpoint=resume_from)
    return _write_final(cfg, trainer, recipe, state)


def _resume_point(cfg: TrainConfig, recipe: dict[str, Any]) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not cfg.resume or not cfg.run_dir.is_dir():
        return None
    before = cfg.run_dir / RECIPE_NAME
    if before.is_file():
        from rvl_llm.train.checkpoint import read_recipe

        old = read_recipe(cfg.run_dir)
        for key in RESUME_MUST_MATCH:
            if old.get(key) != recipe[key]:
                raise RvlError(f"--resume: {cfg.run_dir} was trained with {key} "
                               f"{old.get(key)!r}, this run asks for {recipe[key]!r}")
    last = get_last_checkpoint(str(cfg.run_dir))
    if last is None:
        click.echo(f"--resume: no checkpoint in {cfg.run_dir}; starting from the beginning")
    return last


def training_arguments(cfg: TrainConfig, mixed_precision: str | None,
                       has_validation: bool) -> Any:
    from transformers import TrainingArguments

    from rvl_llm.train.model import cpu_only

    return TrainingArguments(
        output_dir=str(cfg.run_dir),
        run_name=cfg.name,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        num_train_epochs=cfg.num_epochs,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="cosine",
        warmup_steps=WARMUP_RATIO,  # a float below 1 is a fraction of all steps
        max_grad_norm=MAX_GRAD_NORM,
        train_sampling_strategy="group_by_length",
        length_column_name="length",  # precomputed by prepare
        eval_strategy="epoch" if has_validation else "no",
        save_strategy="epoch" if cfg.save == "epoch" else "no",
        # Best by accuracy needs a checkpoint of every epoch to go back to.
        load_best_model_at_end=has_validation and cfg.save == "epoch",
        metric_for_best_model="eval_accuracy" if has_validation else None,
        greater_is_better=True,
        bf16=mixed_precision == "bf16",
        fp16=mixed_precision == "fp16",
        use_cpu=cpu_only(),  # also tells transformers that bf16 means CPU autocast
        **_checkpointing(cfg.gradient_checkpointing and not cfg.unsloth),
        report_to=cfg.report_to,
        seed=cfg.seed,
        remove_unused_columns=False,  # the collator picks its columns
        label_names=["labels"],
        logging_steps=LOGGING_STEPS,
        ddp_find_unused_parameters=False,
    )


def _checkpointing(enabled: bool) -> dict[str, Any]:
    """Gradient checkpointing under the name this transformers uses (renamed "activation_"
    in 5.2x; 5.17 knows the old name only)."""
    if not enabled:
        return {}
    from dataclasses import fields

    from transformers import TrainingArguments

    new = "activation_checkpointing" in {f.name for f in fields(TrainingArguments)}
    name = "activation_checkpointing" if new else "gradient_checkpointing"
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}}


def _save_at_end(cfg: TrainConfig) -> list[Any]:
    """``--save end``: one checkpoint (resumable, with optimiser state) after the last epoch."""
    if cfg.save != "end":
        return []
    from transformers import TrainerCallback

    class SaveAtEnd(TrainerCallback):
        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step >= state.max_steps:
                control.should_save = True

    return [SaveAtEnd()]


def _write_final(cfg: TrainConfig, trainer: Any, recipe: dict[str, Any], state: Any) -> TrainResult:
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
        done = {**recipe, "validation_accuracy": final_accuracy, "best_validation_accuracy": best}
        write_recipe(final, done)
        write_recipe(cfg.run_dir, done)
        shown = "n/a" if final_accuracy is None else f"{final_accuracy:.4f}"
        click.echo(f"train: done; validation accuracy of {final}: {shown}"
                   + ("" if best is None else f" (best epoch {best:.4f})"))
    state.wait_for_everyone()
    return TrainResult(cfg.run_dir, final, best, final_accuracy)


def _say(message: str) -> None:
    click.echo(message, err=True)
