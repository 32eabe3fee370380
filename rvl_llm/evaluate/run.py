"""``run_eval``: a model + one split -> metrics, predictions and a confusion matrix.

What is evaluated is a :class:`Subject`: a trained checkpoint (its recipe says how the model was
trained and how its split is prepared) or, without one, the untrained model (a zero-shot
baseline with prepare's prompt settings). Everything after that is one flow, read top to bottom:
the output folder is claimed before anything heavy; prepare builds (or finds in the cache) the
split; the model is loaded; every document is scored; outputs are written into a temporary
folder that replaces the eval's folder when complete. A failed eval leaves nothing behind.

``--test-sets`` prepares one subset per split file and scores each distinct row once; the figures
per set and their mean ± standard deviation come from those scores. ``--calibrate`` scores the
validation split first and fits a temperature (``inference/calibration.py``), stored in the
checkpoint's ``calibration.json`` when the outputs are in place; a temperature already there is
applied to the probabilities (ECE, coverage table, reliability diagram).

Under ``accelerate launch`` each process scores a contiguous share of the documents with its own
model copy; rank 0 prepares first, gathers the shares in input order and alone writes.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np

from rvl_llm.atomic import replace_dir, staging_dir
from rvl_llm.dataclass_json import to_json
from rvl_llm.errors import RvlError
from rvl_llm.evaluate.config import ZERO_SHOT_FIELDS, EvalConfig
from rvl_llm.evaluate.outputs import run_folder, write_all
from rvl_llm.evaluate.report import ZERO_SHOT
from rvl_llm.inference import Decode
from rvl_llm.inference.aggregate import aggregate_predictions, documents_of
from rvl_llm.inference.base_model import (
    bf16_supported,
    cuda_available,
    load_base_model,
    resolve_pad_token,
)
from rvl_llm.inference.calibration import (
    CALIBRATION_NAME,
    ECE_BINS,
    T_MAX,
    T_MIN,
    Calibration,
    coverage_table,
    expected_calibration_error,
    fit_calibration,
    mean_std,
    nll,
    read_temperature,
    softmax,
    write_calibration,
)
from rvl_llm.inference.checkpoint import (
    CHECKPOINT_PREFIX,
    check_weights,
    load_checkpoint,
    weights_folder,
)
from rvl_llm.inference.distributed import (
    concatenate_predictions,
    device_map,
    gather_in_rank_order,
    process_state,
    share_of,
)
from rvl_llm.inference.metrics import compute_metrics
from rvl_llm.inference.scoring import NonFiniteScores, predict
from rvl_llm.logs import Log, quiet
from rvl_llm.pipeline.cache import holds_cache
from rvl_llm.pipeline.config import DEFAULT_CACHE_DIR, PrepareConfig
from rvl_llm.pipeline.manifest import MANIFEST_NAME
from rvl_llm.pipeline.prepare import run_prepare
from rvl_llm.pipeline.prompt import PromptSpec
from rvl_llm.pipeline.selection import read_split_file
from rvl_llm.pipeline.tokenize import load_tokenizer
from rvl_llm.presets import resolve_model
from rvl_llm.recipe import Recipe

SHOWN_SKIPS = 5  # skipped documents named in the log and metrics.json; the manifest lists all


@dataclass(frozen=True)
class EvalResult:
    folder: Path  # OUT_DIR/<max-len>-max-len/<eval name>/
    record: dict[str, Any]  # what metrics.json holds


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
    load: Callable[..., Any]  # device_map= -> .model (eval mode), .tokenizer, .pad_token_id
    record: dict[str, Any]  # what metrics.json says about it
    notes: tuple[str, ...] = ()  # said before the eval starts (a recipe's cache folder refused)
    checkpoint: Path | None = None  # the weights folder of a trained checkpoint or an export
    exported: bool = False  # an export folder: a copy, never calibrated in place
    temperature: float | None = None  # from the checkpoint's calibration.json, if any
    prompt: PromptSpec | None = None  # the recipe's; None: resolved from data's (zero-shot)
    chunk_aggregate: str = "mean"  # --truncation chunks: windows -> one prediction per document


@dataclass(frozen=True)
class TestSet:
    """One ``--test-sets`` file: a published test subset of the eval's split."""

    name: str  # its file name, or its path where two files share a name
    path: Path
    sha256: str  # of its content: a changed file makes another eval folder


@dataclass(frozen=True)
class Loaded:
    model: Any
    tokenizer: Any
    pad_token_id: int


def run_eval(cfg: EvalConfig, log: Log | None = None) -> EvalResult | None:
    """The eval's result on the main process; None on the other processes of a launch."""
    subject = zero_shot_subject(cfg) if cfg.zero_shot is not None else trained_subject(cfg)
    decode = cfg.decode if subject.generative else Decode.HEAD
    if cfg.calibrate:
        check_calibration_target(subject)
    test_sets = read_test_sets(cfg.test_sets, cfg.split)
    folder = output_folder(cfg, subject, decode, test_sets)
    state = process_state()
    say = (log or quiet) if state.is_main_process else quiet
    for note in subject.notes:
        say(note)
    # The main process alone makes the staging folder; the others get None, or its error (rank
    # 0's verdict, on every process).
    with staging_dir(folder, lambda err: (f"-o {folder.parent.parent}: cannot write the eval "
                                          f"outputs to {folder} ({err.strerror or err})"),
                     make=state.is_main_process,
                     agree=lambda problem: gather_in_rank_order(problem, state)[0]) as staging:
        evaluated = _evaluate(cfg, subject, decode, folder, state, say, test_sets)
        if evaluated is None:  # not the main process: rank 0 writes
            return None
        record, preds, fitted = evaluated
        _store(cfg, subject, record, preds, fitted, staging, folder)
    return EvalResult(folder, record)


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
        prompt=recipe.prompt.with_max_len(cfg.max_len),
        chunk_aggregate=recipe.settings.chunk_aggregate,
        labels=recipe.labels,
        generative=recipe.generative,
        load=partial(load_checkpoint, checkpoint, trust_remote_code=cfg.trust_remote_code),
        checkpoint=checkpoint,
        exported=recipe.exported is not None,
        # --calibrate fits a new one; a damaged file is refused here, before anything runs
        temperature=None if cfg.calibrate else read_temperature(checkpoint),
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
    assert cfg.zero_shot is not None
    data = cfg.zero_shot.resolved()
    source = resolve_model(data.model)
    source.check_model_files()
    source.tokenizer_dir()  # a hub model unreachable offline fails here, before any write
    labels = data.label_names()
    shown = data.model if source.preset or not source.is_local else Path(source.location).name
    prompt = (labels, *(str(getattr(data, name)) for name in ZERO_SHOT_FIELDS))
    return Subject(
        name=f"{_sanitise(shown)}-{ZERO_SHOT}",  # the report's kind, in the folder name
        identity=(ZERO_SHOT, source.location, *prompt),
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


def check_calibration_target(subject: Subject) -> None:
    """Prove the folder ``--calibrate`` stores calibration.json in writable before anything
    runs: a trained checkpoint, not an export (a copy: calibrate its source, then export)."""
    folder = subject.checkpoint
    assert folder is not None  # EvalConfig refuses --calibrate without -c
    if subject.exported:
        raise RvlError(f"--calibrate: {folder} is an export; calibrate the checkpoint it was "
                       "exported from, then export again (the export carries calibration.json)")
    probe = folder / f".tmp-calibration-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RvlError(f"--calibrate: cannot write {folder / CALIBRATION_NAME} "
                       f"({err.strerror or err}); copy the checkpoint to a writable folder "
                       "and calibrate the copy") from err


def read_test_sets(given: tuple[Path, ...], split: str) -> tuple[TestSet, ...]:
    """Each ``--test-sets`` file (a quoted glob is expanded here, sorted), read with
    ``--split-file``'s parser: it must list documents of the evaluated split, and only those."""
    paths: list[Path] = []
    for path in given:
        if not path.exists() and glob.has_magic(str(path)):
            matches = sorted(glob.glob(str(path)))
            if not matches:
                raise RvlError(f"--test-sets {path}: no file matches")
            paths += [Path(m) for m in matches]
        else:
            paths.append(path)
    names = [p.name for p in paths]
    sets = []
    for path in dict.fromkeys(paths):  # a file given twice is one test set
        try:
            listed = read_split_file(path)
        except RvlError as err:  # the parser names --split-file; here the option is --test-sets
            raise RvlError(str(err).replace("--split-file", "--test-sets", 1)) from err
        others = sorted(set(listed) - {split})
        if split not in listed or others:
            raise RvlError(f"--test-sets {path}: lists {', '.join(sorted(listed))} documents; a "
                           f"test set lists documents of the evaluated split ({split}) only")
        sets.append(TestSet(path.name if names.count(path.name) == 1 else str(path), path,
                            hashlib.sha256(path.read_bytes()).hexdigest()))
    return tuple(sets)


def _evaluate(cfg: EvalConfig, subject: Subject, decode: str, folder: Path, state: Any,
              say: Log, test_sets: tuple[TestSet, ...]
              ) -> tuple[dict[str, Any], Any, Calibration | None] | None:
    """The metrics record, the predictions and a temperature fitted now (``--calibrate``) on
    the main process, None on the others (nothing is written here)."""
    data = subject.data
    # One prepared split, or one per test set: each set's file selects its documents by the
    # --split-file rule.
    parts = [replace(data, split_file=(str(t.path.resolve()),)) for t in test_sets] or [data]
    with state.main_process_first():  # rank 0 builds the splits; the others hit the cache
        prepared = [run_prepare(d, log=say, prompt=subject.prompt) for d in parts]
        held_out = (run_prepare(replace(data, splits=("validation",)), log=say,
                                prompt=subject.prompt)
                    if cfg.calibrate else None)
    for result in prepared:
        say(f"eval: {cfg.split} split from {result.root} "
            f"({'cache hit' if not result.built else 'built now'})")
    infos = [r.manifest.split_info(cfg.split) for r in prepared]
    skipped = list(dict.fromkeys(s.name for info in infos for s in info.skipped_files))
    if skipped:  # the documents this eval does not score: said, and recorded below
        more = f" and {len(skipped) - SHOWN_SKIPS} more" if len(skipped) > SHOWN_SKIPS else ""
        say(f"eval: skipped {len(skipped)} bad {cfg.split} document(s): "
            f"{', '.join(skipped[:SHOWN_SKIPS])}{more} (all listed in "
            f"{prepared[0].manifest.root / MANIFEST_NAME})")
    dataset, members = _distinct_rows([r.manifest.dataset(cfg.split) for r in prepared])
    if test_sets:  # --truncation chunks: a set's rows -> its documents, as predictions count them
        members = documents_of(dataset["doc_id"], members)
    manifest = prepared[0].manifest
    say(f"eval: loading {subject.weights}")
    loaded = subject.load(device_map=device_map(state=state))
    fitted = None
    if held_out is not None:
        say(f"eval: scoring the validation split from {held_out.root} to fit a temperature")
        val = _score_split(cfg, subject, loaded, held_out.manifest.dataset("validation"),
                           held_out.manifest.template, state)
        if val is not None:
            fitted = fit_calibration(val.scores, val.true, {
                "split": "validation", "n": len(val.true), "data_dir": str(data.data_dir),
                "max_len": data.max_len, "cache_key": held_out.manifest.key})
            say(f"eval: temperature {fitted.temperature:.4f} (validation NLL "
                f"{fitted.nll_before:.4f} -> {fitted.nll_after:.4f})")
            if not T_MIN * 1.01 < fitted.temperature < T_MAX * 0.99:
                say("eval: the temperature is at the end of its range: the scores tell the "
                    "validation classes apart barely (large T) or perfectly (small T)")
    began = time.perf_counter()
    preds = _score_split(cfg, subject, loaded, dataset, manifest.template, state)
    seconds = time.perf_counter() - began
    if preds is None:
        return None
    temperature = fitted.temperature if fitted else subject.temperature
    rows = sum(info.rows for info in infos)
    record = {
        "name": folder.name,
        **subject.record,
        "data_dir": str(data.data_dir),
        "split": cfg.split,
        "decode": decode,
        "mode": data.mode,
        "max_len": data.max_len,
        "truncated_share": sum(info.truncated for info in infos) / rows if rows else 0.0,
        "skipped": len(skipped),  # bad documents left out (--skip-bad-files / --skip-bad-rows)
        "skipped_first": skipped[:SHOWN_SKIPS],
        "cache_key": manifest.key,
        "labels": list(subject.labels),
        **compute_metrics(preds.true, preds.predicted, subject.labels),
        "seconds": round(seconds, 3),
        "docs_per_second": round(len(preds.doc_ids) / seconds, 2) if seconds > 0 else None,
        "processes": state.num_processes,
        "config": to_json(cfg),
    }
    if preds.scores is not None:  # probabilities: calibrated when a temperature is known
        preds = replace(preds, probs=softmax(preds.scores, temperature or 1.0))
        record.update(calibration_record(preds, temperature, fitted, subject))
    if test_sets:
        record["test_sets"] = test_set_record(test_sets, members, preds, subject.labels,
                                              [r.manifest.key for r in prepared])
    return record, preds, fitted


def _distinct_rows(parts: list[Any]) -> tuple[Any, list[list[int]]]:
    """One dataset of the parts' distinct rows (a document in several test sets is scored
    once: same id, label and tokens) and, per part, its rows' indexes in it."""
    if len(parts) == 1:
        return parts[0], [list(range(len(parts[0])))]
    import datasets  # heavy (pyarrow): only a multi-set eval needs it here

    joined = datasets.concatenate_datasets(parts)
    seen: dict[tuple[Any, ...], int] = {}  # a distinct row -> its index among the distinct
    index = [seen.setdefault((row["doc_id"], row["label"], tuple(row["input_ids"])), len(seen))
             for row in joined.select_columns(["doc_id", "label", "input_ids"])]
    ends = list(accumulate(len(part) for part in parts))
    members = [index[end - len(part):end] for part, end in zip(parts, ends, strict=True)]
    # Distinct rows are numbered in order of first appearance: keep each one's first row.
    return joined.select(np.unique(index, return_index=True)[1]), members


def _score_split(cfg: EvalConfig, subject: Subject, loaded: Any, dataset: Any, template: Any,
                 state: Any) -> Any:
    """Predictions of every row of ``dataset`` on the main process (each process scores a
    contiguous share), None on the others."""
    dataset = share_of(dataset, state.process_index, state.num_processes)
    try:
        share = predict(loaded.model, dataset, template, pad_token_id=loaded.pad_token_id,
                        batch_size=cfg.batch_size, decode=cfg.decode, tokenizer=loaded.tokenizer,
                        labels=subject.labels, class_chunk=cfg.class_chunk,
                        progress=cfg.progress if state.is_main_process else False)
    except NonFiniteScores as err:  # passed on, so that every process stops alike
        share = err.message
    shares = gather_in_rank_order(share, state)
    failed = [s for s in shares if isinstance(s, str)]
    if failed:  # every process stops with the same line
        raise RvlError(f"{subject.option}: {failed[0]}; nothing was written")
    if not state.is_main_process:
        return None
    # The windows of one document (--truncation chunks) become one prediction.
    return aggregate_predictions(concatenate_predictions(shares), subject.chunk_aggregate)


def calibration_record(preds: Any, temperature: float | None, fitted: Calibration | None,
                       subject: Subject) -> dict[str, Any]:
    """ECE (with and without the temperature), NLL and the coverage/accuracy table of
    ``preds``, whose probabilities already carry the temperature."""
    source = None  # no calibration.json: probabilities as scored
    if fitted is not None:
        source = "fitted now on the validation split"
    elif temperature is not None:
        assert subject.checkpoint is not None
        source = str(subject.checkpoint / CALIBRATION_NAME)
    return {
        "ece_bins": ECE_BINS,
        "ece": expected_calibration_error(preds.probs, preds.true),
        "temperature": temperature or 1.0,
        "temperature_from": source,
        "ece_uncalibrated": expected_calibration_error(softmax(preds.scores), preds.true),
        "nll": nll(preds.scores, preds.true, temperature or 1.0),
        "nll_uncalibrated": nll(preds.scores, preds.true),
        "calibration_fit": None if fitted is None else fitted.to_json(),
        "coverage": coverage_table(preds.probs, preds.true),
    }


def test_set_record(test_sets: tuple[TestSet, ...], members: list[list[int]], preds: Any,
                    labels: tuple[str, ...], keys: list[str]) -> dict[str, Any]:
    """Accuracy and macro-F1 per test set, and their mean and sample standard deviation."""
    per_set = []
    for test_set, rows, key in zip(test_sets, members, keys, strict=True):
        metrics = compute_metrics(preds.true[rows], preds.predicted[rows], labels)
        entry = {"name": test_set.name, "file": str(test_set.path.resolve()),
                 "sha256": test_set.sha256, "cache_key": key, "n": metrics["n"],
                 "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
        if preds.probs is not None:
            entry["ece"] = expected_calibration_error(preds.probs[rows], preds.true[rows])
        per_set.append(entry)
    accuracy, accuracy_std = mean_std([s["accuracy"] for s in per_set])
    macro_f1, macro_f1_std = mean_std([s["macro_f1"] for s in per_set])
    return {"sets": per_set, "accuracy_mean": accuracy, "accuracy_std": accuracy_std,
            "macro_f1_mean": macro_f1, "macro_f1_std": macro_f1_std,
            "std": "sample standard deviation (n - 1) over the sets"}


def _store(cfg: EvalConfig, subject: Subject, record: dict[str, Any], preds: Any,
           fitted: Calibration | None, staging: Path, folder: Path) -> None:
    """The outputs, calibration.json (when fitted now), then the eval folder; if the folder
    cannot be put in place, the checkpoint's earlier calibration.json is put back: nothing
    half-done stays."""
    target = subject.checkpoint / CALIBRATION_NAME if subject.checkpoint else None
    before = target.read_bytes() if fitted and target and target.exists() else None
    try:
        write_all(staging, record, preds, subject.labels)
        if fitted is not None:
            assert subject.checkpoint is not None
            write_calibration(subject.checkpoint, fitted)
        replace_dir(staging, folder)  # an identical rerun replaces its own folder whole
    except OSError as err:  # a full disk, say: one line, and nothing half-written stays
        if fitted is not None and target is not None:
            if before is None:
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(before)
        raise RvlError(f"-o {cfg.resolved_out_dir}: cannot write the eval outputs "
                       f"({err.strerror or err}); nothing was kept") from err


def output_folder(cfg: EvalConfig, subject: Subject, decode: str,
                  test_sets: tuple[TestSet, ...] = ()) -> Path:
    """OUT_DIR/<max-len>-max-len/<eval name>/, always inside OUT_DIR. The name is readable (run
    or model, checkpoint, split, decode) and ends in a short hash of everything that makes this
    eval distinct (what is evaluated, data folder, split, decode, test sets): two distinct
    evals in one OUT_DIR never share a folder, and an identical rerun replaces its own."""
    name = subject.name
    if cfg.split != "test":
        name += f"-{cfg.split}"
    if decode == Decode.GENERATE:
        name += "-generate"
    if test_sets:
        name += f"-{len(test_sets)}-sets"
    # Test sets by content (sha256), in the order given: the per-set table keeps that order.
    sets = [[t.name, t.sha256] for t in test_sets]
    identity = json.dumps([*subject.identity, str(subject.data.data_dir), cfg.split, decode,
                           *([sets] if sets else [])])
    name += f"-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"
    out_dir = cfg.resolved_out_dir
    folder = run_folder(out_dir, subject.data.max_len, name)
    if not folder.resolve().is_relative_to(out_dir.resolve()):  # the name is sanitised too
        raise RvlError(f"-o {out_dir}: the eval folder {folder} would lie outside it")
    return folder


def _sanitise(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "run"


def _load_base(source: Any, labels: tuple[str, ...], trust_remote_code: bool, *,
               device_map: Any) -> Loaded:
    """The untrained causal LM as training would start from it: the model's own tokenizer and
    the pad token training would pick, bf16 on a GPU that has it, full precision elsewhere."""
    tokenizer = load_tokenizer(source.tokenizer_dir(), trust_remote_code=trust_remote_code)
    tokenizer.pad_token = resolve_pad_token(tokenizer, None, source.preset)
    pad_token_id = tokenizer.convert_tokens_to_ids(tokenizer.pad_token)
    model = load_base_model(
        source.location, generative=True, labels=labels, pad_token_id=pad_token_id,
        dtype="bf16" if cuda_available() and bf16_supported() else None, quantization=None,
        device_map=device_map, trust_remote_code=trust_remote_code)
    model.eval()
    return Loaded(model, tokenizer, pad_token_id)
