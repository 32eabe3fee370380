"""``run_eval``: a model + one split -> metrics, predictions and a confusion matrix.

What is evaluated is a :class:`Subject`: a trained checkpoint (its recipe says how the model was
trained and how its split is prepared) or, without one, the untrained model (a zero-shot
baseline with prepare's prompt settings). Everything after that is one flow, read top to bottom:
the output folder is claimed before anything heavy; prepare builds (or finds in the cache) the
split; the model is loaded; every document is scored; outputs are written into a temporary
folder that replaces the eval's folder when complete. A failed eval leaves nothing behind.

Under ``accelerate launch`` each process scores a contiguous share of the documents with its own
model copy; rank 0 prepares first, gathers the shares in input order and alone writes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from rvl_llm.atomic import discard_staging_dir, make_staging_dir, replace_dir
from rvl_llm.errors import RvlError
from rvl_llm.evaluate.config import EvalConfig
from rvl_llm.inference.checkpoint import CHECKPOINT_PREFIX, check_weights, weights_folder
from rvl_llm.pipeline.cache import holds_cache
from rvl_llm.pipeline.config import DEFAULT_CACHE_DIR, PrepareConfig
from rvl_llm.pipeline.manifest import MANIFEST_NAME
from rvl_llm.recipe import Recipe

Log = Callable[[str], None]
ZERO_SHOT_MARK = "zero-shot"  # in the eval folder's name and the report's kind column
SHOWN_SKIPS = 5  # skipped documents named in the log and metrics.json; the manifest lists all


@dataclass(frozen=True)
class EvalResult:
    folder: Path  # OUT_DIR/<max-len>-max-len/<eval name>/
    record: dict[str, Any]  # what metrics.json holds
    files: tuple[Path, ...]


@dataclass(frozen=True)
class Subject:
    """What an eval evaluates; the rest of the eval does not ask which kind it is."""

    name: str  # readable start of the eval folder's name
    identity: tuple[Any, ...]  # what tells it from others (hashed into the folder name)
    option: str  # the option that named it, for errors: "-c PATH" or "--model MODEL"
    weights: str  # where the weights load from (a folder or a hub id), for the log
    data: PrepareConfig  # the one split to prepare, paths resolved
    labels: tuple[str, ...]
    generative: bool
    load: Callable[[Any], Any]  # device_map -> .model (eval mode), .tokenizer, .pad_token_id
    record: dict[str, Any]  # what metrics.json says about it
    notes: tuple[str, ...] = ()  # said before the eval starts (a recipe's cache folder refused)


@dataclass(frozen=True)
class Loaded:
    model: Any
    tokenizer: Any
    pad_token_id: int


def run_eval(cfg: EvalConfig, log: Log | None = None) -> EvalResult | None:
    """The eval's result on the main process; None on the other processes of a launch."""
    subject = zero_shot_subject(cfg) if cfg.zero_shot is not None else trained_subject(cfg)
    decode = cfg.decode if subject.generative else "classifier"
    folder = output_folder(cfg, subject, decode)
    from rvl_llm.evaluate.outputs import write_all
    from rvl_llm.inference.distributed import process_state

    state = process_state()
    say = (log or _quiet) if state.is_main_process else _quiet
    for note in subject.notes:
        say(note)
    with _staging(folder, state) as staging:
        evaluated = _evaluate(cfg, subject, decode, folder, state, say)
        if evaluated is None:  # not the main process: rank 0 writes
            return None
        record, preds = evaluated
        try:
            files = write_all(staging, record, preds, subject.labels)
            replace_dir(staging, folder)  # an identical rerun replaces its own folder whole
        except OSError as err:  # a full disk, say: one line, and nothing half-written stays
            raise RvlError(f"-o {cfg.resolved_out_dir}: cannot write the eval outputs "
                           f"({err.strerror or err}); nothing was kept") from err
    return EvalResult(folder, record, tuple(folder / f.name for f in files))


def trained_subject(cfg: EvalConfig) -> Subject:
    """A checkpoint and its recipe; damaged files are named before anything is prepared."""
    checkpoint = weights_folder(cfg.checkpoint)
    recipe = Recipe.read(checkpoint)
    check_weights(checkpoint)
    name = _sanitise(recipe.run_name)
    if checkpoint.name.startswith(CHECKPOINT_PREFIX):
        name += f"-{checkpoint.name}"
    cache_dir, note = eval_cache_dir(cfg, recipe)
    return Subject(
        name=name,
        identity=(str(checkpoint.resolve()),),
        option=f"-c {checkpoint}",
        weights=str(checkpoint),
        data=eval_data(cfg, recipe, cache_dir),
        labels=recipe.labels,
        generative=recipe.generative,
        load=partial(_load_checkpoint, checkpoint, cfg.trust_remote_code),
        record={
            "zero_shot": False,
            "model": recipe.model,
            "run_name": recipe.run_name,
            "checkpoint": str(checkpoint.resolve()),
            "train_max_len": recipe.data.max_len,
            "train_cache_key": recipe.cache_key,
            "recipe": {"model": recipe.model, "model_location": recipe.model_location,
                       "trainable": recipe.trainable, "seed": recipe.settings.seed,
                       "validation_accuracy": recipe.validation_accuracy,
                       "versions": recipe.versions},
        },
        notes=(note,) if note else (),
    )


def zero_shot_subject(cfg: EvalConfig) -> Subject:
    """The untrained model with prepare's prompt settings; a model that cannot be reached (a hub
    id offline) or a bad labels file is named before anything is prepared."""
    from rvl_llm.presets import resolve_model

    assert cfg.zero_shot is not None
    data = cfg.zero_shot.resolved()
    source = resolve_model(data.model)
    source.check_model_files()
    source.tokenizer_dir()  # a hub model unreachable offline fails here, before any write
    labels = data.label_names()
    shown = data.model if source.preset or not source.is_local else Path(source.location).name
    prompt = (data.response_template, labels, data.prefix_train, data.prefix_validation,
              data.prefix_test, data.suffix, data.prompt, data.instruction,
              str(data.label_descriptions))
    return Subject(
        name=f"{_sanitise(shown)}-{ZERO_SHOT_MARK}",
        identity=(ZERO_SHOT_MARK, source.location, *prompt),
        option=f"--model {data.model}",
        weights=source.location,
        data=data,
        labels=labels,
        generative=True,
        load=partial(_load_base, source, labels, cfg.trust_remote_code),
        record={"zero_shot": True, "model": data.model, "model_location": source.location},
    )


def eval_cache_dir(cfg: EvalConfig, recipe: Recipe) -> tuple[Path, str | None]:
    """Where eval's cache lives, and a note when the recipe's folder was refused. A recipe is a
    file anyone can edit: its cache folder is a default only when it exists and holds this
    project's cache, never a place eval creates folders and lock files in."""
    if cfg.cache_dir is not None:
        return cfg.cache_dir, None
    wanted = recipe.data.cache_dir
    if holds_cache(wanted):
        return wanted, None
    why = "does not exist" if not wanted.exists() else "holds no prepared cache"
    return DEFAULT_CACHE_DIR, (f"eval: the recipe's cache folder {wanted} {why}; using "
                               f"{DEFAULT_CACHE_DIR.resolve()} (--cache-dir chooses another)")


def eval_data(cfg: EvalConfig, recipe: Recipe, cache_dir: Path | None = None) -> PrepareConfig:
    """The recipe's prepare settings as they are, with what an eval may change (the cache
    folder: ``eval_cache_dir``'s choice unless given)."""
    return replace(
        recipe.data,
        data_dir=cfg.data_dir or recipe.data.data_dir,
        cache_dir=cache_dir or eval_cache_dir(cfg, recipe)[0],
        max_len=cfg.max_len or recipe.data.max_len,
        splits=(cfg.split,),
        skip_bad_files=recipe.data.skip_bad_files or cfg.skip_bad_files,
        trust_remote_code=cfg.trust_remote_code,  # the command's flag, never the recipe's
        progress=cfg.progress,
    ).resolved()


def _evaluate(cfg: EvalConfig, subject: Subject, decode: str, folder: Path, state: Any,
              say: Log) -> tuple[dict[str, Any], Any] | None:
    """The metrics record and the predictions on the main process, None on the others
    (nothing is written here)."""
    from rvl_llm.inference.distributed import (
        contiguous_share,
        gather_in_rank_order,
        inference_device_map,
    )
    from rvl_llm.inference.metrics import compute_metrics
    from rvl_llm.pipeline.prepare import run_prepare

    data = subject.data
    with state.main_process_first():  # rank 0 builds the split; the others hit the cache
        prepared = run_prepare(data, log=say)
    say(f"eval: {cfg.split} split from {prepared.root} "
        f"({'cache hit' if not prepared.built else 'built now'})")
    manifest = prepared.manifest
    info = manifest.split_info(cfg.split)
    skipped = [s.name for s in info.skipped_files]
    if skipped:  # the documents this eval does not score: said, and recorded below
        more = f" and {len(skipped) - SHOWN_SKIPS} more" if len(skipped) > SHOWN_SKIPS else ""
        say(f"eval: skipped {len(skipped)} bad {cfg.split} document(s): "
            f"{', '.join(skipped[:SHOWN_SKIPS])}{more} (all listed in "
            f"{manifest.root / MANIFEST_NAME})")
    dataset = manifest.dataset(cfg.split)
    start, end = contiguous_share(len(dataset), state.process_index, state.num_processes)
    if (start, end) != (0, len(dataset)):  # one process alone scores the split as it is
        # An empty share (fewer documents than processes) is an empty list: datasets refuses
        # range(n, n) at the end of the split.
        dataset = dataset.select(range(start, end) if end > start else [])
    say(f"eval: loading {subject.weights}")
    loaded = subject.load(inference_device_map(state))
    began = time.perf_counter()
    share = _predict(cfg, loaded, dataset, manifest.template, subject.labels,
                     cfg.progress if state.is_main_process else False)
    shares = gather_in_rank_order(share, state)
    seconds = time.perf_counter() - began
    failed = [s for s in shares if isinstance(s, str)]
    if failed:  # every process stops with the same line
        raise RvlError(f"{subject.option}: {failed[0]}; nothing was written")
    if not state.is_main_process:
        return None
    preds = _concatenate(shares)
    record = {
        "name": folder.name,
        **subject.record,
        "data_dir": str(data.data_dir),
        "split": cfg.split,
        "decode": decode,
        "mode": data.mode,
        "max_len": data.max_len,
        "truncated_share": info.truncated / info.rows if info.rows else 0.0,
        "skipped": len(skipped),  # bad documents left out (--skip-bad-files / --skip-bad-rows)
        "skipped_first": skipped[:SHOWN_SKIPS],
        "cache_key": manifest.key,
        "labels": list(subject.labels),
        **compute_metrics(preds.true, preds.predicted, subject.labels),
        "seconds": round(seconds, 3),
        "docs_per_second": round(len(preds.doc_ids) / seconds, 2) if seconds > 0 else None,
        "processes": state.num_processes,
        "config": _plain(cfg),
    }
    return record, preds


def _predict(cfg: EvalConfig, loaded: Any, dataset: Any, template: Any,
             labels: tuple[str, ...], progress: bool | None) -> Any:
    """This process's predictions, or the message of scores that are not finite (passed on to
    every process, so that all stop alike instead of one waiting for the others)."""
    from rvl_llm.inference.scoring import NonFiniteScores, predict

    try:
        return predict(
            loaded.model, dataset, template,
            pad_token_id=loaded.pad_token_id, batch_size=cfg.batch_size, decode=cfg.decode,
            tokenizer=loaded.tokenizer, labels=labels, class_chunk=cfg.class_chunk,
            progress=progress,
        )
    except NonFiniteScores as err:
        return err.message


def _concatenate(shares: list[Any]) -> Any:
    """One Predictions from the processes' contiguous shares, in rank (= input) order."""
    import numpy as np

    from rvl_llm.inference.scoring import Predictions

    if len(shares) == 1:
        return shares[0]

    def joined(name: str) -> Any:
        parts = [getattr(s, name) for s in shares]
        return None if parts[0] is None else np.concatenate(parts)

    generated = [s.generated for s in shares]
    return Predictions(
        doc_ids=[d for s in shares for d in s.doc_ids],
        true=joined("true"),
        predicted=joined("predicted"),
        probs=joined("probs"),
        generated=None if generated[0] is None else [g for part in generated for g in part],
        invalid=sum(s.invalid for s in shares),
        scores=joined("scores"),
    )


def _plain(cfg: EvalConfig) -> dict[str, Any]:
    from rvl_llm.dataclass_json import to_json

    return to_json(cfg)


def eval_name(subject: Subject, split: str, decode: str) -> str:
    """A readable name (run or model, checkpoint, split, decode) and a short hash of everything
    that makes this eval distinct (what is evaluated, data folder, split, decode): two distinct
    evals in one OUT_DIR never share a folder, and an identical rerun replaces its own."""
    name = subject.name
    if split != "test":
        name += f"-{split}"
    if decode == "generate":
        name += "-generate"
    identity = json.dumps([*subject.identity, str(subject.data.data_dir), split, decode])
    return f"{name}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


def output_folder(cfg: EvalConfig, subject: Subject, decode: str) -> Path:
    """OUT_DIR/<max-len>-max-len/<eval name>/: always inside OUT_DIR; writable is proved
    before any model or data is loaded."""
    from rvl_llm.evaluate.outputs import run_folder

    out_dir = cfg.resolved_out_dir
    folder = run_folder(out_dir, subject.data.max_len, eval_name(subject, cfg.split, decode))
    if not folder.resolve().is_relative_to(out_dir.resolve()):  # the name is sanitised too
        raise RvlError(f"-o {out_dir}: the eval folder {folder} would lie outside it")
    return folder


def _sanitise(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "run"


@contextmanager
def _staging(folder: Path, state: Any) -> Iterator[Path | None]:
    """A temporary folder beside ``folder`` to write the outputs into (creating it proves the
    place writable before anything heavy runs), made by the main process alone; the others get
    None, or its error. On failure it is removed, with every parent folder this created that is
    still empty: a failed eval leaves nothing behind."""
    from rvl_llm.inference.distributed import gather_in_rank_order

    problem, staging, created = None, None, []
    if state.is_main_process:
        try:
            staging, created = make_staging_dir(folder)
        except OSError as err:
            problem = (f"-o {folder.parent.parent}: cannot write the eval outputs to {folder} "
                       f"({err.strerror or err})")
    problem = gather_in_rank_order(problem, state)[0]  # rank 0's verdict, on every process
    if problem is not None:
        raise RvlError(problem)
    if not state.is_main_process:
        yield None
        return
    assert staging is not None
    try:
        yield staging
    except BaseException:
        discard_staging_dir(staging, created)
        raise


def _quiet(_msg: str) -> None:
    pass


def _load_checkpoint(checkpoint: Path, trust_remote_code: bool, device_map: Any) -> Any:
    from rvl_llm.inference.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint, device_map=device_map,
                           trust_remote_code=trust_remote_code)


def _load_base(source: Any, labels: tuple[str, ...], trust_remote_code: bool,
               device_map: Any) -> Loaded:
    """The untrained causal LM as training would start from it: the model's own tokenizer and
    the pad token training would pick, bf16 on a GPU that has it, full precision elsewhere."""
    from rvl_llm.inference.base_model import (
        bf16_supported,
        cuda_available,
        load_base_model,
        resolve_pad_token,
    )
    from rvl_llm.pipeline.tokenize import load_tokenizer

    tokenizer = load_tokenizer(source.tokenizer_dir(), trust_remote_code=trust_remote_code)
    tokenizer.pad_token = resolve_pad_token(tokenizer, None, source.preset)
    pad_token_id = tokenizer.convert_tokens_to_ids(tokenizer.pad_token)
    model = load_base_model(
        source.location, generative=True, labels=labels, pad_token_id=pad_token_id,
        dtype="bf16" if cuda_available() and bf16_supported() else None, quantization=None,
        device_map=device_map, trust_remote_code=trust_remote_code)
    model.eval()
    return Loaded(model, tokenizer, pad_token_id)
