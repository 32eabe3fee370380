"""Loading a trained checkpoint from its recipe: the one way validation, eval and predict get a
model back.

A run folder ``log/NAME/`` holds ``recipe.json``, the Trainer's ``checkpoint-N/`` folders and
``final/``. Each weights folder holds the tokenizer (with its pad token), the weights (adapter,
full model or, in head-only classifier mode, the head alone) and its ``recipe.json``, which says
how to rebuild the model around the weights. A folder written by ``rvl-llm export`` is one too:
merged and full exports are full weights, an unmerged export is the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.inference.base_model import load_base_model
from rvl_llm.recipe import RECIPE_NAME, Recipe

FINAL_DIR = "final"
CHECKPOINT_PREFIX = "checkpoint-"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODEL_WEIGHTS = "model.safetensors"
MODEL_INDEX = "model.safetensors.index.json"  # a model saved in shards (large exports)


@dataclass
class LoadedCheckpoint:
    model: Any  # in eval mode
    tokenizer: Any  # with the pad token training used
    recipe: Recipe
    pad_token_id: int


def weights_folder(checkpoint: Path, option: str = "-c") -> Path:
    """The folder to load: CHECKPOINT itself, or its ``final/`` when given a whole run folder.
    A run folder without ``final/`` is refused with the checkpoints it does have."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise RvlError(f"{option} {checkpoint}: no such checkpoint folder")
    final = checkpoint / FINAL_DIR
    if (final / RECIPE_NAME).is_file():
        return final
    has_weights = any((checkpoint / name).is_file()
                      for name in (MODEL_WEIGHTS, MODEL_INDEX, ADAPTER_CONFIG))
    checkpoints = sorted(
        (p for p in checkpoint.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir()),
        key=lambda p: _step(p.name),
    )
    if not has_weights and (checkpoints or (checkpoint / RECIPE_NAME).is_file()):
        found = ", ".join(p.name for p in checkpoints[-3:]) or "none"
        raise RvlError(f"{option} {checkpoint}: the run has no {FINAL_DIR}/ (it has not "
                       f"finished); pass one of its checkpoints ({found}) or finish it with "
                       "`rvl-llm train --resume`")
    if not (checkpoint / RECIPE_NAME).is_file():
        raise RvlError(f"{option} {checkpoint}: no {RECIPE_NAME} (not a final/ or "
                       "checkpoint-N/ folder written by `rvl-llm train`)")
    return checkpoint


def _step(name: str) -> int:
    tail = name.removeprefix(CHECKPOINT_PREFIX)
    return int(tail) if tail.isdigit() else -1


def load_checkpoint(
    path: Path, *, device_map: Any = None, trust_remote_code: bool = False
) -> LoadedCheckpoint:
    """The model of a ``final/`` or ``checkpoint-N/`` folder, ready for inference.

    Full weights load from the folder; adapters and heads are put on the base model named by
    the recipe (4-bit again for qlora). ``device_map`` goes to ``from_pretrained``. Remote code
    runs only when the caller's own flag says so, whatever the recipe recorded.
    """
    path = Path(path)
    recipe = Recipe.read(path)
    check_weights(path)
    try:
        tokenizer = checkpoint_tokenizer(path, recipe, trust_remote_code)
        pad_token_id = tokenizer.convert_tokens_to_ids(recipe.pad_token)
        model = recipe_model(recipe, str(path) if recipe.trainable == "full" else None,
                             pad_token_id, device_map, trust_remote_code)
        if recipe.trainable == "classifier":
            _load_head(model, path / MODEL_WEIGHTS)
        elif recipe.trainable in ("lora", "qlora"):
            model = _load_adapter(model, path)
    except RvlError:
        raise
    except Exception as err:  # weights that do not fit the recipe's model, damaged files
        first = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise RvlError(f"{path}: cannot load the checkpoint onto the recipe's model "
                       f"{recipe.model_location} ({type(err).__name__}: {first})") from err
    model.eval()
    return LoadedCheckpoint(model, tokenizer, recipe, pad_token_id)


def check_weights(folder: Path) -> None:
    """Every safetensors file in the folder has a readable header covering the whole file: a
    truncated copy or a killed save is named here, not deep inside from_pretrained."""
    from safetensors import SafetensorError, safe_open

    for weights in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise RvlError(f"{weights}: damaged weights ({err}); copy the checkpoint again or "
                           "use another one") from err


def checkpoint_tokenizer(path: Path, recipe: Recipe, trust_remote_code: bool) -> Any:
    """The checkpoint's own tokenizer with the pad token training used (the recipe's)."""
    from transformers import AutoTokenizer  # heavy: imported when a checkpoint is loaded

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if recipe.pad_token not in tokenizer.get_vocab():
        raise RvlError(f"{path}: the recipe's pad token {recipe.pad_token!r} is not in the "
                       "checkpoint's tokenizer")
    tokenizer.pad_token = recipe.pad_token
    return tokenizer


def recipe_model(recipe: Recipe, location: str | None, pad_token_id: int, device_map: Any,
                 trust_remote_code: bool) -> Any:
    """The model as the recipe built it, from ``location`` (full weights) or else the recipe's
    base: its mode, label set, dtype and (QLoRA) 4-bit settings."""
    return load_base_model(
        location or recipe.model_location,
        generative=recipe.generative,
        labels=recipe.labels,
        pad_token_id=pad_token_id,
        dtype=recipe.mixed_precision,
        quantization=recipe.quantization,
        device_map=device_map,
        trust_remote_code=trust_remote_code,
    )


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
