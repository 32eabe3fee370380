"""``run_eval``: a trained checkpoint + one split -> metrics, predictions and a confusion matrix.

Read top to bottom: the run's recipe says how the model was trained; the output folder is checked
before anything heavy; prepare builds (or finds in the cache) the split exactly as training
tokenised it; the checkpoint is loaded; every document is scored; outputs are written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.evaluate.config import EvalConfig

RECIPE_NAME = "recipe.json"  # written by `rvl-llm train` (rvl_llm.train.checkpoint)
RECIPE_VERSION = 1
FINAL_DIR = "final"  # a run folder's finished weights
# What eval reads from a recipe: checked up front so a bad one fails before any model loads.
RECIPE_KEYS = ("run_name", "model_location", "mode", "response_template", "labels", "max_len",
               "data_dir", "prefixes", "suffix", "cache_dir")
Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalResult:
    folder: Path  # OUT_DIR/<max-len>-max-len/<name>/
    record: dict[str, Any]  # what metrics.json holds
    files: tuple[Path, ...]


def run_eval(cfg: EvalConfig, log: Log | None = None) -> EvalResult:
    say = log or (lambda _msg: None)
    checkpoint = weights_folder(cfg.checkpoint)
    recipe = find_recipe(checkpoint)
    max_len = cfg.max_len or int(recipe["max_len"])
    generative = recipe["mode"] == "generative"
    decode = cfg.decode if generative else "classifier"
    folder = _output_folder(cfg, checkpoint, recipe, max_len, decode)
    manifest = _prepare(cfg, recipe, max_len, say)
    dataset = manifest.dataset(cfg.split)
    say(f"eval: loading {checkpoint}")
    loaded = _load(checkpoint)

    from rvl_llm.inference.metrics import compute_metrics
    from rvl_llm.evaluate.outputs import write_all
    from rvl_llm.inference.scoring import predict

    labels = tuple(recipe["labels"])
    start = time.perf_counter()
    preds = predict(
        loaded.model, dataset, manifest.template, pad_token_id=loaded.pad_token_id,
        batch_size=cfg.batch_size, decode=cfg.decode, tokenizer=loaded.tokenizer, labels=labels,
        class_chunk=cfg.class_chunk, progress=cfg.progress,
    )
    seconds = time.perf_counter() - start
    info = manifest.split_info(cfg.split)
    record = {
        "name": folder.name,
        "run_name": recipe["run_name"],
        "checkpoint": str(checkpoint.resolve()),
        "split": cfg.split,
        "decode": decode,
        "mode": recipe["mode"],
        "max_len": max_len,
        "train_max_len": int(recipe["max_len"]),
        "truncated_share": info.truncated / info.rows if info.rows else 0.0,
        "cache_key": manifest.key,
        "train_cache_key": recipe.get("cache_key"),
        "labels": list(labels),
        **compute_metrics(preds.true, preds.predicted, labels),
        "seconds": round(seconds, 3),
        "docs_per_second": round(len(preds.doc_ids) / seconds, 2) if seconds > 0 else None,
        "config": cfg.to_json(),
        "recipe": {k: recipe.get(k) for k in ("model", "model_location", "trainable", "seed",
                                               "validation_accuracy", "versions")},
    }
    files = write_all(folder, record, preds, labels)
    return EvalResult(folder, record, tuple(files))


def weights_folder(checkpoint: Path) -> Path:
    """The folder to load: CHECKPOINT itself, or its ``final/`` when given a whole run folder."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise RvlError(f"-c {checkpoint}: no such checkpoint folder")
    final = checkpoint / FINAL_DIR
    return final if (final / RECIPE_NAME).is_file() else checkpoint


def find_recipe(checkpoint: Path) -> dict[str, Any]:
    """The run's recipe: ``CHECKPOINT/recipe.json``, else the run folder's (its parent)."""
    for path in (checkpoint / RECIPE_NAME, checkpoint.parent / RECIPE_NAME):
        if path.is_file():
            return _read_recipe(path)
    raise RvlError(
        f"-c {checkpoint}: no {RECIPE_NAME} in it or its parent. eval needs the settings "
        f"`rvl-llm train` records there (model, labels, template, mode); no eval flag can stand "
        f"in for them: pass a run's final/ or checkpoint-N/ folder made by `rvl-llm train`"
    )


def _read_recipe(path: Path) -> dict[str, Any]:
    try:
        recipe = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RvlError(f"{path}: unreadable recipe ({err})") from err
    if not isinstance(recipe, dict) or recipe.get("recipe_version") != RECIPE_VERSION:
        version = recipe.get("recipe_version") if isinstance(recipe, dict) else None
        raise RvlError(f"{path}: recipe version {version} is not {RECIPE_VERSION}")
    missing = [k for k in RECIPE_KEYS if k not in recipe]
    if missing:
        raise RvlError(f"{path}: the recipe lacks {', '.join(missing)}")
    return recipe


def eval_name(recipe: dict[str, Any], checkpoint: Path, split: str, decode: str) -> str:
    """The run name, plus what sets this eval apart, so evals in one OUT_DIR never collide."""
    name = str(recipe["run_name"])
    if Path(checkpoint).name.startswith("checkpoint-"):
        name += f"-{Path(checkpoint).name}"
    if split != "test":
        name += f"-{split}"
    if decode == "generate":
        name += "-generate"
    return name


def _output_folder(
    cfg: EvalConfig, checkpoint: Path, recipe: dict[str, Any], max_len: int, decode: str
) -> Path:
    """The output folder, created and proved writable before any model or data is loaded."""
    from rvl_llm.evaluate.outputs import run_folder

    name = eval_name(recipe, checkpoint, cfg.split, decode)
    folder = run_folder(cfg.resolved_out_dir, max_len, name)
    probe = folder / f".write-test.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RvlError(
            f"-o {cfg.resolved_out_dir}: cannot write the eval outputs to {folder} "
            f"({err.strerror or err})"
        ) from err
    return folder


def _prepare(cfg: EvalConfig, recipe: dict[str, Any], max_len: int, say: Log) -> Any:
    """The split, tokenised exactly as training did (a cache hit when nothing changed)."""
    from rvl_llm.pipeline.config import PrepareConfig
    from rvl_llm.pipeline.prepare import run_prepare

    prefixes = recipe["prefixes"]
    generative = recipe["mode"] == "generative"
    extra = {"response_template": recipe["response_template"]} if generative else {}
    prep = PrepareConfig(
        data_dir=Path(cfg.data_dir or recipe["data_dir"]),
        model=recipe["model_location"],
        max_len=max_len,
        generative=generative,
        splits=(cfg.split,),
        prefix_train=prefixes["train"],
        prefix_validation=prefixes["validation"],
        prefix_test=prefixes["test"],
        suffix=recipe["suffix"],
        labels=tuple(recipe["labels"]),
        cache_dir=Path(cfg.cache_dir or recipe["cache_dir"]),
        trust_remote_code=bool(recipe.get("trust_remote_code", False)),
        progress=cfg.progress,
        **extra,
    )
    result = run_prepare(prep, log=say)
    say(f"eval: {cfg.split} split from {result.root} "
        f"({'cache hit' if not result.built else 'built now'})")
    return result.manifest


def _load(checkpoint: Path) -> Any:
    from rvl_llm.train.checkpoint import load_checkpoint

    device_map = _device_map()
    try:
        return load_checkpoint(Path(checkpoint), device_map=device_map)
    except RvlError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError) as err:  # weights that do not fit
        first = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise RvlError(f"-c {checkpoint}: cannot load the checkpoint onto the recipe's model "
                       f"({first})") from err


def _device_map() -> str | None:
    """Every visible GPU (layers spread only if one is too small); the CPU when there is none."""
    import torch

    return "auto" if torch.cuda.is_available() else None
