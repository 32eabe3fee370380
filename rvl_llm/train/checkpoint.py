"""``recipe.json`` (what a run was, in every folder that holds weights) and ``load_checkpoint``.

A run folder ``log/NAME/`` holds ``recipe.json``, the Trainer's ``checkpoint-N/`` folders and
``final/``. Each weights folder holds the tokenizer (with its pad token), the weights (adapter,
full model or, in head-only classifier mode, the head alone) and a ``recipe.json``; the recipe
says how to rebuild the model around the weights.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rvl_llm.errors import RvlError

if TYPE_CHECKING:
    from rvl_llm.pipeline.manifest import Manifest
    from rvl_llm.presets import ModelSource
    from rvl_llm.train.config import TrainConfig

RECIPE_NAME = "recipe.json"
RECIPE_VERSION = 1
FINAL_DIR = "final"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODEL_WEIGHTS = "model.safetensors"


def build_recipe(
    cfg: TrainConfig,
    source: ModelSource,
    manifest: Manifest,
    *,
    pad_token: str,
    lora_targets: str | list[str],
    quantization: dict[str, Any] | None,
    mixed_precision: str | None,
) -> dict[str, Any]:
    """Everything eval needs to rebuild the model and re-prepare data the same way."""
    lora = None
    if cfg.trainable in ("lora", "qlora"):
        lora = {"rank": cfg.lora_rank, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
                "targets": lora_targets}
    return {
        "recipe_version": RECIPE_VERSION,
        "run_name": cfg.name,
        "model": cfg.model,
        "model_location": source.location,
        "mode": cfg.mode,
        "trainable": cfg.trainable,
        "response_template": cfg.response_template if cfg.generative else None,
        "pad_token": pad_token,
        "labels": list(manifest.labels),
        "max_len": cfg.max_len,
        "data_dir": str(cfg.data_dir.resolve()),
        "prefixes": {"train": cfg.prefix_train, "validation": cfg.prefix_validation,
                     "test": cfg.prefix_test},
        "suffix": cfg.suffix,
        "cache_dir": str(cfg.cache_dir.resolve()),
        "cache_key": manifest.key,
        "seed": cfg.seed,
        "lora": lora,
        "quantization": quantization,
        "mixed_precision": mixed_precision,
        "unsloth": cfg.unsloth,
        "trust_remote_code": cfg.trust_remote_code,
        "versions": _versions(),
        "command": " ".join(sys.argv),
        "validation_accuracy": None,  # of the weights in this folder
        "best_validation_accuracy": None,  # of the run so far
    }


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    from rvl_llm import __version__

    found: dict[str, str | None] = {}
    for name in ("torch", "transformers", "peft", "trl", "accelerate"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    found["rvl_llm"] = __version__
    return found


def write_recipe(folder: Path, recipe: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{RECIPE_NAME}.tmp"
    temp.write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, folder / RECIPE_NAME)  # a reader never sees half a recipe


def read_recipe(folder: Path) -> dict[str, Any]:
    path = Path(folder) / RECIPE_NAME
    try:
        recipe = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise RvlError(f"{folder}: no {RECIPE_NAME} (not a checkpoint or final folder of a "
                       "run)") from err
    except (OSError, ValueError) as err:
        raise RvlError(f"{path}: unreadable recipe ({err})") from err
    if recipe.get("recipe_version") != RECIPE_VERSION:
        raise RvlError(f"{path}: recipe version {recipe.get('recipe_version')} is not "
                       f"{RECIPE_VERSION}")
    return recipe


def accuracies(log_history: list[dict[str, Any]], step: int) -> tuple[float | None, float | None]:
    """(accuracy of the weights at ``step``, best accuracy so far) from the Trainer's log."""
    evals = [e for e in log_history if "eval_accuracy" in e]
    at_step = [e["eval_accuracy"] for e in evals if e.get("step") == step]
    best = max((e["eval_accuracy"] for e in evals), default=None)
    return (at_step[-1] if at_step else None), best


def recipe_callback(run_dir: Path, recipe: dict[str, Any]) -> Any:
    """A TrainerCallback writing the recipe into every checkpoint as it is saved."""
    from transformers import TrainerCallback

    class RecipeCallback(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                current, best = accuracies(state.log_history, state.global_step)
                folder = run_dir / f"checkpoint-{state.global_step}"
                write_recipe(folder, {**recipe, "validation_accuracy": current,
                                      "best_validation_accuracy": best})

    return RecipeCallback()


@dataclass
class LoadedCheckpoint:
    model: Any  # in eval mode
    tokenizer: Any  # with the pad token training used
    recipe: dict[str, Any]
    pad_token_id: int


def load_checkpoint(path: Path, *, device_map: Any = None) -> LoadedCheckpoint:
    """The model of a ``final/`` or ``checkpoint-N/`` folder, ready for evaluation.

    Full weights load from the folder; adapters and heads are put on the base model named by
    the recipe (4-bit again for qlora). ``device_map`` goes to ``from_pretrained``.
    """
    from transformers import AutoTokenizer

    from rvl_llm.train.model import load_base_model

    path = Path(path)
    recipe = read_recipe(path)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=recipe["trust_remote_code"])
    pad_token_id = tokenizer.convert_tokens_to_ids(recipe["pad_token"])
    tokenizer.pad_token = recipe["pad_token"]
    trainable = recipe["trainable"]
    model = load_base_model(
        str(path) if trainable == "full" else recipe["model_location"],
        generative=recipe["mode"] == "generative",
        labels=tuple(recipe["labels"]),
        pad_token_id=pad_token_id,
        dtype=recipe["mixed_precision"],
        quantization=recipe["quantization"],
        device_map=device_map,
        trust_remote_code=recipe["trust_remote_code"],
    )
    if trainable == "classifier":
        _load_head(model, path / MODEL_WEIGHTS)
    elif trainable in ("lora", "qlora"):
        model = _load_adapter(model, path)
    model.eval()
    return LoadedCheckpoint(model, tokenizer, recipe, pad_token_id)


def _load_head(model: Any, weights: Path) -> None:
    from safetensors.torch import load_file

    if not weights.is_file():
        raise RvlError(f"{weights.parent}: no {MODEL_WEIGHTS} with the classifier head")
    head = load_file(str(weights))
    own = model.state_dict()
    wrong = [k for k, v in head.items() if k not in own or own[k].shape != v.shape]
    if wrong:
        raise RvlError(f"{weights}: the head does not match the model ({', '.join(wrong[:3])})")
    model.load_state_dict(head, strict=False)


def _load_adapter(model: Any, folder: Path) -> Any:
    from peft import PeftModel, get_peft_model_state_dict
    from peft.utils import load_peft_weights

    if not (folder / ADAPTER_CONFIG).is_file():
        raise RvlError(f"{folder}: no {ADAPTER_CONFIG} (the recipe says the run trained LoRA)")
    try:
        model = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as err:  # shapes or module names differ
        raise RvlError(f"{folder}: the adapter does not match the model "
                       f"({str(err).splitlines()[0][:200]})") from err
    saved = set(load_peft_weights(str(folder)))
    unknown = sorted(saved - set(get_peft_model_state_dict(model)))
    if unknown:
        raise RvlError(f"{folder}: the adapter does not match the model (unknown weights such "
                       f"as {unknown[0]})")
    return model
