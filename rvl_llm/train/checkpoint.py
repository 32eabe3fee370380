"""The recipe a run writes: built once from the resolved config, written into the run folder,
into every checkpoint as it is saved (last, so a checkpoint with a recipe is complete) and into
``final/``. Loading a checkpoint back is the inference layer's (``rvl_llm.inference.checkpoint``).
"""

from __future__ import annotations

import sys
from dataclasses import fields, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rvl_llm import __version__
from rvl_llm.pipeline.prompt import PromptSettings
from rvl_llm.recipe import Quantization, Recipe
from rvl_llm.train.arguments import METRIC
from rvl_llm.train.run_folder import save_failure

if TYPE_CHECKING:
    from rvl_llm.pipeline.prepare import PrepareResult
    from rvl_llm.presets import ModelSource
    from rvl_llm.train.config import TrainConfig


def build_recipe(
    cfg: TrainConfig,
    source: ModelSource,
    prepared: PrepareResult,
    *,
    pad_token: str,
    lora_targets: str | tuple[str, ...],
    quantization: Quantization | None,
    mixed_precision: str | None,
) -> Recipe:
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
        lora_targets=lora_targets,
        quantization=quantization,
        mixed_precision=mixed_precision,
        cache_key=prepared.manifest.key,
        versions=_versions(),
        command=" ".join(sys.argv),
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
