"""``run_train``: a TrainConfig -> prepared shards -> trained model in ``LOG_DIR/NAME/final``.

Top to bottom: resolve the model and the preset's defaults; check the log folder, the run folder
and the machine (nothing is touched before every check passed); lock the run; prepare the shards
(rank 0 first); load tokenizer and model; train with validation and a finite guard; write final/.
"""

from __future__ import annotations

import shutil
import sys
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import click

from rvl_llm import __version__
from rvl_llm.compat import close_progress_bars
from rvl_llm.errors import RvlError
from rvl_llm.inference.base_model import cpu_only, resolve_pad_token
from rvl_llm.logs import Log
from rvl_llm.options import long_option
from rvl_llm.pipeline.config import SourceSettings
from rvl_llm.pipeline.prepare import PrepareResult, run_prepare
from rvl_llm.pipeline.prompt import PromptSettings
from rvl_llm.pipeline.tokenize import load_tokenizer
from rvl_llm.presets import ModelSource, resolve_model
from rvl_llm.recipe import RECIPE_NAME, Recipe
from rvl_llm.train.arguments import (
    METRIC,
    accuracies,
    early_stopping,
    recipe_callback,
    save_at_end,
    training_arguments,
)
from rvl_llm.train.class_weights import check_weights_spec, resolve_class_weights
from rvl_llm.train.config import TrainConfig, with_preset_defaults, write_run_config
from rvl_llm.train.data import make_collator, train_dataset, validation_dataset
from rvl_llm.train.guards import finite_guard
from rvl_llm.train.model import (
    check_environment,
    load_model,
    lora_targets,
    quantization_settings,
    resolve_mixed_precision,
)
from rvl_llm.train.run_folder import (
    FINAL_DIR,
    check_log_dir,
    check_overwritable,
    checkpoint_problem,
    is_run_folder,
    resume_point,
    run_lock,
    run_recipe,
    save_failure,
    set_aside,
)


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
    check_environment(cfg)
    chose: list[str] = []  # what --mixed-precision auto chose: said once the run is accepted
    mixed_precision = resolve_mixed_precision(cfg.settings.mixed_precision, chose.append)
    source.tokenizer_dir()  # a hub model unreachable offline fails here, before any write
    check_weights_spec(cfg.settings.class_weights)  # its contents once the labels are known
    check_log_dir(cfg.log_dir)
    if cfg.settings.unsloth:
        import unsloth  # noqa: F401 - patches transformers and peft; must come before them

    from accelerate import PartialState

    state = PartialState(cpu=cpu_only())
    # One process of a launch holds the lock: the others are its own workers.
    with run_lock(cfg.log_dir, cfg.name) if state.is_main_process else nullcontext():
        check_run_dir(cfg)
        for line in chose if state.is_main_process else ():
            say(line)
        with state.main_process_first():  # rank 0 builds the shards; the others hit the cache
            prepared = run_prepare(cfg.data, log=say if state.is_main_process else None)
        if state.is_main_process:
            for line in prepared.summary_lines():
                say(line)
        return _train(cfg, source, prepared, mixed_precision, state, say)


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
        if run.is_symlink() or run_recipe(run) is None:  # from scratch would surprise
            raise RvlError(f"--resume: {run} holds no run to continue (no {RECIPE_NAME} of "
                           "rvl-llm); drop --resume to start it, or check --name and --log-dir")
        return
    if (run / FINAL_DIR / RECIPE_NAME).is_file():
        raise RvlError(f"--name {cfg.name}: {run} holds a finished run; pass --overwrite to "
                       "replace it or --resume to continue it")
    if is_run_folder(run):
        raise RvlError(f"--name {cfg.name}: {run} holds checkpoints of an unfinished run; pass "
                       "--resume to continue it or --overwrite to start again")


def build_recipe(cfg: TrainConfig, source: ModelSource, prepared: PrepareResult, *,
                 pad_token: str, mixed_precision: str | None,
                 class_weights: tuple[float, ...] | None = None) -> Recipe:
    """Everything eval, predict and resume need: the prompt prepare resolved (every stage
    renders from it), and the prepare settings with what depends on the working folder made
    absolute, the label set inline (eval lists its split with them) and the prompt settings
    as resolved (a location has no preset to resolve the style from again)."""
    resolved = {f.name: getattr(prepared.prompt.settings, f.name) for f in fields(PromptSettings)}
    data = replace(cfg.data.resolved(), **resolved, model=source.location,
                   labels=prepared.prompt.labels, labels_file=None, progress=None)
    return Recipe(
        run_name=cfg.name,
        model=cfg.data.model,
        model_location=source.location,
        data=data,
        prompt=prepared.prompt,
        settings=cfg.settings,
        pad_token=pad_token,
        lora_targets=lora_targets(source.preset),
        quantization=quantization_settings(cfg.settings.trainable or ""),
        mixed_precision=mixed_precision,
        cache_key=prepared.manifest.key,
        versions=_versions(),
        command=" ".join(sys.argv),
        class_weights=class_weights,
    )


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in ("torch", "transformers", "peft", "trl", "accelerate"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    found["rvl_llm"] = __version__
    return found


def _train(cfg: TrainConfig, source: Any, prepared: PrepareResult, mixed_precision: str | None,
           state: Any, say: Log) -> TrainResult:
    from transformers import set_seed

    # Lazy: it imports transformers, which must come after unsloth (run_train imports it first).
    from rvl_llm.train.trainer import RvlTrainer

    tokenizer = load_tokenizer(source.tokenizer_dir(),
                               trust_remote_code=cfg.data.trust_remote_code)
    tokenizer.pad_token = resolve_pad_token(tokenizer, cfg.settings.set_pad_token, source.preset)
    manifest = prepared.manifest
    # From the rows the loss sees: the train split's class counts (windows, under chunks).
    weights = resolve_class_weights(cfg.settings.class_weights, manifest.labels,
                                    manifest.split_info("train").class_counts)
    if weights is not None and state.is_main_process:
        say("train: class weights " + ", ".join(
            f"{name} {w:.3g}" for name, w in zip(manifest.labels, weights, strict=True)))
    recipe = build_recipe(cfg, source, prepared, pad_token=tokenizer.pad_token,
                          mixed_precision=mixed_precision, class_weights=weights)
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
    if cfg.settings.early_stopping_patience is not None and not has_validation:
        raise RvlError(f"--early-stopping-patience {cfg.settings.early_stopping_patience}: "
                       "needs validation documents; the validation split is empty")
    args = training_arguments(cfg, mixed_precision, has_validation)  # refusals before any write
    if state.is_main_process:
        if cfg.overwrite and cfg.run_dir.exists():
            shutil.rmtree(cfg.run_dir)  # only now: every check passed and the model loaded
        recipe.write(cfg.run_dir)
        write_run_config(cfg, cfg.run_dir)  # config.yaml: `train --config` reruns it
    state.wait_for_everyone()

    trainer = RvlTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset(manifest),
        eval_dataset=validation if has_validation else None,
        data_collator=make_collator(manifest, tokenizer.pad_token_id),
        processing_class=tokenizer,  # saved with every checkpoint, pad token included
        # The guard last: it checks the weights once the others have asked for a save.
        callbacks=[recipe_callback(cfg.run_dir, recipe), *save_at_end(cfg.settings),
                   *early_stopping(cfg.settings), finite_guard(cfg.run_dir)],
        template=manifest.template,
        class_names=manifest.labels,
        pad_token_id=tokenizer.pad_token_id,
        head_only=cfg.settings.trainable == "classifier",
        class_weights=weights,
        chunk_aggregate=cfg.settings.chunk_aggregate,
        say=say,
    )
    if not has_validation and state.is_main_process:
        say("train: the validation split is empty; no validation, final/ = last epoch")
    try:
        trainer.train(resume_from_checkpoint=resume_from)
        return _write_final(cfg, trainer, recipe, state, say)
    except BaseException:
        close_progress_bars(trainer)  # so the one-line error starts a line of its own
        sys.stdout.flush()  # the Trainer's last log line (stdout) before the error (stderr)
        raise


def _resume_identity(recipe: Recipe) -> dict[str, Any]:
    """What a resumed run must share with the run it continues, compared one by one so the
    message names it: where its documents come from (every source setting), the prompt its rows
    were rendered from (every resolved prompt setting), the model and adapters."""
    # Each by its long option (--data), else its field name (labels).
    return {
        **{long_option(f) or f.name: getattr(recipe.data, f.name) for f in fields(SourceSettings)},
        **{long_option(f) or f.name: getattr(recipe.prompt.settings, f.name)
           for f in fields(PromptSettings)},
        "the prompt": recipe.prompt,  # what the settings resolved to (template, tokenizer)
        "model_location": recipe.model_location,
        "cache_key": recipe.cache_key,
        "trainable": recipe.trainable,
        "lora_targets": recipe.lora_targets,
        "lora_rank": recipe.settings.lora_rank,
        "lora_alpha": recipe.settings.lora_alpha,
        "quantization": recipe.quantization,
    }


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
    problems = [checkpoint_problem(folder) for folder in incomplete]
    for old, new, problem in zip(incomplete, set_aside(incomplete), problems, strict=True):
        say(f"--resume: {old.name} is incomplete ({problem}); set aside as {new.name}")
    if last is None:
        say(f"--resume: no complete checkpoint in {cfg.run_dir} to continue from; starting "
            "from the beginning")
        return None
    say(f"--resume: continuing from {last}")
    return str(last)


def _write_final(cfg: TrainConfig, trainer: Any, recipe: Recipe, state: Any,
                 say: Log) -> TrainResult:
    from safetensors import SafetensorError  # a Rust binding; transformers is loaded by now

    final = cfg.run_dir / FINAL_DIR
    try:
        trainer.save_model(str(final))  # on every process: FSDP gathers the weights collectively
    except (OSError, RuntimeError, SafetensorError) as err:  # a full disk, say
        raise save_failure(final, cfg.run_dir, err) from err
    history = trainer.state.log_history
    _, best = accuracies(history, -1)
    best_checkpoint = trainer.state.best_model_checkpoint
    if trainer.args.load_best_model_at_end and best_checkpoint is not None:
        # The best validation that has a checkpoint (--save-steps a multiple of --eval-steps
        # leaves some validations without one).
        final_accuracy, _ = accuracies(history, int(Path(best_checkpoint).name.split("-")[-1]))
    else:
        evals = [e[METRIC] for e in history if METRIC in e]
        final_accuracy = evals[-1] if evals else None
    if state.is_main_process:
        done = replace(recipe, validation_accuracy=final_accuracy, best_validation_accuracy=best)
        try:
            done.write(final)  # last: final/ with a recipe is complete
            done.write(cfg.run_dir)
        except OSError as err:
            raise save_failure(final, cfg.run_dir, err) from err
        shown = "n/a" if final_accuracy is None else f"{final_accuracy:.4f}"
        say(f"train: done; validation accuracy of {final}: {shown}"
            + ("" if best is None else f" (best validation {best:.4f})"))
    state.wait_for_everyone()
    return TrainResult(cfg.run_dir, final, best, final_accuracy)
