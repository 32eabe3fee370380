"""What a run folder ``LOG_DIR/NAME/`` is, and how to use one safely.

``--overwrite`` deletes only runs, ``--log-dir`` is proved writable before anything is touched,
one ``train`` per name runs at a time, and a checkpoint half-written when the process was killed
is set aside as ``incomplete-checkpoint-N`` so neither we nor the Trainer resume from it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from rvl_llm.atomic import TEMP_PREFIX
from rvl_llm.errors import RvlError, write_reason
from rvl_llm.inference.checkpoint import (
    ADAPTER_WEIGHTS,
    CHECKPOINT_PREFIX,
    FINAL_DIR,
    MODEL_INDEX,
    MODEL_WEIGHTS,
)
from rvl_llm.recipe import RECIPE_NAME, Recipe
from rvl_llm.train.config import RUN_CONFIG_NAME

INCOMPLETE_PREFIX = "incomplete-"
TRAINER_STATE = "trainer_state.json"  # the Trainer's TRAINER_STATE_NAME
# One weights file (adapter, full model or head-only classifier) or a sharded full model.
WEIGHTS_FILES = (MODEL_WEIGHTS, ADAPTER_WEIGHTS)

# The same pattern as transformers' get_last_checkpoint: "checkpoint-" and digits, nothing else.
_CHECKPOINT = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(\d+)$")
# set_aside may add ".K" when the plain name is taken.
_INCOMPLETE = re.compile(rf"^{re.escape(INCOMPLETE_PREFIX + CHECKPOINT_PREFIX)}\d+(\.\d+)?$")
EVAL_DIR = "eval"  # eval's default output folder, inside a checkpoint or the run folder
TRACKER_DIR = "runs"  # the Trainer's default logging_dir (tensorboard)
# Files a save writes into checkpoint-N/ and final/: the Trainer's (weights, optimiser,
# scheduler, rng, state, args), the tokenizer's, peft's README.md, our recipe.json.
SAVED_FILES = ("*.safetensors", "*.json", "*.pt", "*.pth", "training_args.bin", "optimizer.bin",
               "*.model", "*.jinja", "*.tiktoken", "vocab.txt", "merges.txt", "README.md")
FSDP_DIRS = ("pytorch_model_fsdp_*", "optimizer_*")  # FSDP's sharded state: theirs, whole
EVAL_FILES = ("*.json", "*.tsv", "*.csv", "*.png", "report.md")  # eval's and report's outputs
# torch.save writes a zip archive: a truncated one has no central directory.
TORCH_FILES = ("*.pt", "*.pth", "*.bin")


def is_run_folder(path: Path) -> bool:
    """True when ``path`` holds something a run of this tool writes."""
    if not path.is_dir() or path.is_symlink():
        return False
    # A bare final/ could be anyone's: ours holds a recipe.
    if (path / RECIPE_NAME).is_file() or (path / FINAL_DIR / RECIPE_NAME).is_file():
        return True
    return any((_CHECKPOINT.match(p.name) or _INCOMPLETE.match(p.name)) and p.is_dir()
               for p in path.iterdir())


def check_overwritable(run_dir: Path, option: str = "--overwrite") -> None:
    """Refuse to let ``option`` delete ``run_dir`` unless it is missing, empty, or a run of this
    tool (a recipe that reads as ours) holding nothing but what a run writes."""
    keep = "nothing was deleted: move it or choose another --name"
    if run_dir.is_symlink():  # rmtree refuses links, and the target may be anyone's
        raise RvlError(f"{option}: {run_dir} is a symbolic link, not a run of rvl-llm; {keep}")
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise RvlError(f"{option}: {run_dir} is a file, not a run of rvl-llm; {keep}")
    if next(run_dir.iterdir(), None) is None:
        return
    if run_recipe(run_dir) is None:
        # A folder that only looks like a run ({} as recipe.json, a checkpoint-N/ of anyone's)
        # may hold anything: only a recipe this tool reads proves the folder is ours.
        raise RvlError(f"{option}: {run_dir} is not a run of rvl-llm (no {RECIPE_NAME} that "
                       f"reads as rvl-llm's, in it or in {FINAL_DIR}/); {keep}")
    foreign = foreign_files(run_dir)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                         else "")
        raise RvlError(f"{option}: {run_dir} holds files a run of rvl-llm does not write "
                       f"({shown}); {keep}, or move those files out")


def run_recipe(run_dir: Path) -> Recipe | None:
    """The run's recipe (the run folder's, else final/'s), or None if neither reads as ours."""
    for folder in (run_dir, run_dir / FINAL_DIR):
        if (folder / RECIPE_NAME).is_file():
            try:
                return Recipe.read(folder)
            except RvlError:
                continue
    return None


def foreign_files(run_dir: Path) -> list[str]:
    """Paths under ``run_dir`` (relative, sorted) that a run of this tool does not write."""
    found: list[str] = []
    for entry in sorted(run_dir.iterdir()):
        name = entry.name
        if name.startswith(TEMP_PREFIX) or (entry.is_file() and name in (RECIPE_NAME,
                                                                         RUN_CONFIG_NAME)):
            continue
        if entry.is_symlink() or not entry.is_dir():
            found.append(name + ("/" if entry.is_dir() else ""))
        elif name == FINAL_DIR or _CHECKPOINT.match(name) or _INCOMPLETE.match(name):
            found += [f"{name}/{p}" for p in _foreign_in_save(entry)]
        elif name == EVAL_DIR:
            found += [f"{name}/{p}" for p in _foreign_in(entry, EVAL_FILES)]
        elif name != TRACKER_DIR:  # the trackers' own logs are theirs
            found.append(name + "/")
    return found


def _foreign_in_save(folder: Path) -> list[str]:
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            if entry.name == EVAL_DIR:
                found += [f"{EVAL_DIR}/{p}" for p in _foreign_in(entry, EVAL_FILES)]
            elif not any(fnmatch(entry.name, p) for p in FSDP_DIRS):
                found.append(entry.name + "/")
        elif not (entry.is_file() and (entry.name.startswith(TEMP_PREFIX) or any(
                fnmatch(entry.name, p) for p in SAVED_FILES))):
            found.append(entry.name)
    return found


def _foreign_in(folder: Path, patterns: tuple[str, ...]) -> list[str]:
    """Files under ``folder`` matching none of ``patterns`` (eval's nested output folders)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if (p.is_file() or p.is_symlink()) and not p.name.startswith(TEMP_PREFIX)
                  and not any(fnmatch(p.name, pattern) for pattern in patterns))


def check_log_dir(log_dir: Path) -> None:
    """Create ``log_dir`` if missing and prove a file can be made and removed in it (a probe,
    not ``os.access``: root passes every access check, a read-only mount does not)."""
    if log_dir.exists() and not log_dir.is_dir():
        raise RvlError(f"--log-dir: {log_dir} is a file, not a folder")
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RvlError(f"--log-dir: cannot create {log_dir} ({_reason(err)})") from err
    try:
        handle, probe = tempfile.mkstemp(prefix=".rvl-llm-probe-", dir=log_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise RvlError(f"--log-dir: cannot write in {log_dir} ({_reason(err)}); choose a "
                       "writable folder") from err


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


@contextmanager
def run_lock(log_dir: Path, name: str) -> Iterator[None]:
    """Hold ``log_dir/.NAME.lock`` (beside the run folder, which --overwrite replaces) for a
    whole train; a second holder is refused at once, the OS frees it when the process dies."""
    # Non-singleton, not thread-local: a second lock object is refused, in this process too.
    path = log_dir / f".{name}.lock"
    lock = FileLock(str(path), timeout=0, thread_local=False, is_singleton=False)
    try:
        lock.acquire()
    except Timeout as err:  # before OSError: Timeout is a TimeoutError
        raise RvlError(f"--name {name}: another rvl-llm train is running in {log_dir / name} "
                       f"(lock {path}); wait for it or choose another --name") from err
    except OSError as err:
        raise RvlError(f"--log-dir: cannot create the lock {path} ({_reason(err)})") from err
    try:
        yield
    finally:
        lock.release()


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, truncated or not UTF-8
        return None
    return found if isinstance(found, dict) else None


def _non_empty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _has_weights(folder: Path) -> bool:
    if any(_non_empty(folder / name) for name in WEIGHTS_FILES):
        return True
    index = _json_object(folder / MODEL_INDEX)
    shards = index.get("weight_map") if index else None
    if not isinstance(shards, dict) or not shards:
        return False
    return all(_non_empty(folder / str(shard)) for shard in set(shards.values()))


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a checkpoint to resume from, or None when its save finished and
    its files read. Our on_save callback writes recipe.json last, after the Trainer's files;
    the other checks catch a recipe from elsewhere or files damaged after the save."""
    if not folder.is_dir():
        return "not a folder"
    if _json_object(folder / RECIPE_NAME) is None:
        return f"no readable {RECIPE_NAME} (a save was cut short)"
    if _json_object(folder / TRAINER_STATE) is None:
        return f"no readable {TRAINER_STATE} (a save was cut short)"
    if not _has_weights(folder):
        return "no weights (a save was cut short)"
    for path in sorted(folder.iterdir()):
        if path.is_file() and not _reads(path):
            return f"{path.name} is damaged (cut short or corrupted)"
    return None


def _reads(path: Path) -> bool:
    """A safetensors file's header covers the whole file; a torch file's zip directory (at its
    end) is there. Other files are not checked."""
    if fnmatch(path.name, "*.safetensors"):
        from safetensors import SafetensorError, safe_open  # a Rust binding, light to import

        try:
            with safe_open(str(path), framework="numpy"):
                return True
        except (SafetensorError, OSError):
            return False
    if any(fnmatch(path.name, pattern) for pattern in TORCH_FILES):
        return zipfile.is_zipfile(path)
    return True


def is_complete_checkpoint(folder: Path) -> bool:
    """True when the save of ``folder`` finished and its files read (``checkpoint_problem``)."""
    return checkpoint_problem(folder) is None


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``checkpoint-N`` folders by N, oldest first (a name sort puts 10 before 9)."""
    if not run_dir.is_dir():
        return []
    matches = ((_CHECKPOINT.match(path.name), path) for path in run_dir.iterdir())
    return sorted((int(match.group(1)), path) for match, path in matches
                  if match and path.is_dir())


def resume_point(run_dir: Path) -> tuple[Path | None, list[Path]]:
    """(the newest complete checkpoint or None, the incomplete ones newer than it, oldest first);
    older incomplete folders are left alone: the Trainer's own scans only pick the newest."""
    newer: list[Path] = []
    for _, path in reversed(_checkpoints(run_dir)):
        if is_complete_checkpoint(path):
            return path, newer[::-1]
        newer.append(path)
    return None, newer[::-1]


def set_aside(folders: list[Path]) -> list[Path]:
    """Rename each ``checkpoint-N`` to ``incomplete-checkpoint-N`` (``.1``, ``.2``... if taken),
    which the Trainer's scans skip; nothing is deleted. Main process only, under ``run_lock``."""
    moved = []
    for folder in folders:
        target = folder.with_name(INCOMPLETE_PREFIX + folder.name)
        suffix = 1
        # os.rename would silently replace an empty folder of that name: look first.
        while target.exists() or target.is_symlink():
            target = folder.with_name(f"{INCOMPLETE_PREFIX}{folder.name}.{suffix}")
            suffix += 1
        os.rename(folder, target)
        moved.append(target)
    return moved


def save_failure(folder: Path, run_dir: Path, err: BaseException) -> RvlError:
    """The one line for a save into ``folder`` that failed (a full disk, say). The half-written
    folder goes (it could only mislead, and it takes space); every complete checkpoint stays,
    and the newest is named."""
    if folder.is_dir() and not is_complete_checkpoint(folder):
        shutil.rmtree(folder, ignore_errors=True)
    last, _ = resume_point(run_dir)
    kept = (f"kept the last complete checkpoint {last}; free some space, then continue with "
            "`rvl-llm train --resume`" if last is not None
            else "no complete checkpoint was saved before it; free some space and train again")
    what = "final model" if folder.name == FINAL_DIR else "checkpoint"
    return RvlError(f"{folder}: cannot write the {what} ({write_reason(err)}); {kept}")
