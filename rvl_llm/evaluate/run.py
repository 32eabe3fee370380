"""``run_eval``: a trained checkpoint + one split -> metrics, predictions and a confusion matrix.

Read top to bottom: the checkpoint's recipe says how the model was trained; the output folder is
claimed before anything heavy; prepare builds (or finds in the cache) the split exactly as
training tokenised it, from the recipe's prepare settings; the checkpoint is loaded; every
document is scored; outputs are written into a temporary folder that replaces the eval's
folder when complete. A failed eval leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rvl_llm.atomic import TEMP_PREFIX, replace_dir
from rvl_llm.errors import RvlError
from rvl_llm.evaluate.config import EvalConfig
from rvl_llm.inference.checkpoint import CHECKPOINT_PREFIX, check_weights, weights_folder
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.recipe import Recipe

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalResult:
    folder: Path  # OUT_DIR/<max-len>-max-len/<eval name>/
    record: dict[str, Any]  # what metrics.json holds
    files: tuple[Path, ...]


def run_eval(cfg: EvalConfig, log: Log | None = None) -> EvalResult:
    say = log or (lambda _msg: None)
    checkpoint = weights_folder(cfg.checkpoint)
    recipe = Recipe.read(checkpoint)
    check_weights(checkpoint)  # damaged files are named before anything is prepared
    data = eval_data(cfg, recipe)
    decode = cfg.decode if recipe.generative else "classifier"
    folder = output_folder(cfg, checkpoint, recipe, data, decode)
    from rvl_llm.evaluate.outputs import write_all

    with _staging(folder) as staging:
        record, preds = _evaluate(cfg, checkpoint, recipe, data, decode, folder, say)
        try:
            files = write_all(staging, record, preds, recipe.labels)
            replace_dir(staging, folder)  # an identical rerun replaces its own folder whole
        except OSError as err:  # a full disk, say: one line, and nothing half-written stays
            raise RvlError(f"-o {cfg.resolved_out_dir}: cannot write the eval outputs "
                           f"({err.strerror or err}); nothing was kept") from err
    return EvalResult(folder, record, tuple(folder / f.name for f in files))


def eval_data(cfg: EvalConfig, recipe: Recipe) -> PrepareConfig:
    """The recipe's prepare settings as they are, with what an eval may change."""
    return replace(
        recipe.data,
        data_dir=(cfg.data_dir or recipe.data.data_dir).resolve(),
        cache_dir=(cfg.cache_dir or recipe.data.cache_dir).resolve(),
        max_len=cfg.max_len or recipe.data.max_len,
        splits=(cfg.split,),
        skip_bad_files=recipe.data.skip_bad_files or cfg.skip_bad_files,
        trust_remote_code=cfg.trust_remote_code,  # the command's flag, never the recipe's
        progress=cfg.progress,
    )


def _evaluate(cfg: EvalConfig, checkpoint: Path, recipe: Recipe, data: PrepareConfig,
              decode: str, folder: Path, say: Log) -> tuple[dict[str, Any], Any]:
    """The metrics record and the predictions (nothing is written here)."""
    from rvl_llm.inference.metrics import compute_metrics
    from rvl_llm.inference.scoring import NonFiniteScores, predict
    from rvl_llm.pipeline.prepare import run_prepare

    prepared = run_prepare(data, log=say)
    say(f"eval: {cfg.split} split from {prepared.root} "
        f"({'cache hit' if not prepared.built else 'built now'})")
    manifest = prepared.manifest
    say(f"eval: loading {checkpoint}")
    loaded = _load(checkpoint, cfg.trust_remote_code)
    start = time.perf_counter()
    try:
        preds = predict(
            loaded.model, manifest.dataset(cfg.split), manifest.template,
            pad_token_id=loaded.pad_token_id, batch_size=cfg.batch_size, decode=cfg.decode,
            tokenizer=loaded.tokenizer, labels=recipe.labels, class_chunk=cfg.class_chunk,
            progress=cfg.progress,
        )
    except NonFiniteScores as err:
        raise RvlError(f"-c {checkpoint}: {err.message}; nothing was written") from err
    seconds = time.perf_counter() - start
    info = manifest.split_info(cfg.split)
    record = {
        "name": folder.name,
        "run_name": recipe.run_name,
        "checkpoint": str(checkpoint.resolve()),
        "data_dir": str(data.data_dir),
        "split": cfg.split,
        "decode": decode,
        "mode": recipe.mode,
        "max_len": data.max_len,
        "train_max_len": recipe.data.max_len,
        "truncated_share": info.truncated / info.rows if info.rows else 0.0,
        "cache_key": manifest.key,
        "train_cache_key": recipe.cache_key,
        "labels": list(recipe.labels),
        **compute_metrics(preds.true, preds.predicted, recipe.labels),
        "seconds": round(seconds, 3),
        "docs_per_second": round(len(preds.doc_ids) / seconds, 2) if seconds > 0 else None,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(cfg).items()},
        "recipe": {"model": recipe.model, "model_location": recipe.model_location,
                   "trainable": recipe.trainable, "seed": recipe.settings.seed,
                   "validation_accuracy": recipe.validation_accuracy,
                   "versions": recipe.versions},
    }
    return record, preds


def eval_name(recipe: Recipe, checkpoint: Path, data: PrepareConfig, split: str,
              decode: str) -> str:
    """A readable name (run, checkpoint, split, decode) and a short hash of everything that
    makes this eval distinct (checkpoint folder, data folder, split, decode): two distinct evals
    in one OUT_DIR never share a folder, and an identical rerun replaces its own."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", recipe.run_name).lstrip(".") or "run"
    if checkpoint.name.startswith(CHECKPOINT_PREFIX):
        name += f"-{checkpoint.name}"
    if split != "test":
        name += f"-{split}"
    if decode == "generate":
        name += "-generate"
    identity = json.dumps([str(checkpoint.resolve()), str(data.data_dir), split, decode])
    return f"{name}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


def output_folder(cfg: EvalConfig, checkpoint: Path, recipe: Recipe, data: PrepareConfig,
                  decode: str) -> Path:
    """OUT_DIR/<max-len>-max-len/<eval name>/: always inside OUT_DIR; writable is proved
    before any model or data is loaded."""
    from rvl_llm.evaluate.outputs import run_folder

    out_dir = cfg.resolved_out_dir
    folder = run_folder(out_dir, data.max_len, eval_name(recipe, checkpoint, data, cfg.split,
                                                         decode))
    if not folder.resolve().is_relative_to(out_dir.resolve()):  # the name is sanitised too
        raise RvlError(f"-o {out_dir}: the eval folder {folder} would lie outside it")
    return folder


@contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to write the outputs into (creating it proves the
    place writable before anything heavy runs). On failure it is removed, with every parent
    folder this created that is still empty: a failed eval leaves nothing behind."""
    created = [p for p in folder.parents if not p.exists()]
    staging = folder.with_name(f"{TEMP_PREFIX}{folder.name}-{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir(parents=True)
    except OSError as err:
        _remove_empty(created)
        raise RvlError(f"-o {folder.parent.parent}: cannot write the eval outputs to {folder} "
                       f"({err.strerror or err})") from err
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(created)
        raise


def _remove_empty(created: list[Path]) -> None:
    for path in created:  # innermost first
        try:
            path.rmdir()
        except OSError:
            break  # not empty (another eval's outputs) or already gone


def _load(checkpoint: Path, trust_remote_code: bool) -> Any:
    from rvl_llm.inference.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint, device_map=_device_map(),
                           trust_remote_code=trust_remote_code)


def _device_map() -> str | None:
    """Every visible GPU (layers spread only if one is too small); the CPU when there is none."""
    import torch

    return "auto" if torch.cuda.is_available() else None
