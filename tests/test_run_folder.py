"""Run folders on disk: what counts as a run, --overwrite and --log-dir checks, the per-name lock
(another process, this process, kill -9) and telling complete checkpoints from ones a kill left
half-written. Real folders in tmp_path laid out as the Trainer leaves them; small fake files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as safetensors_bytes

from rvl_llm.errors import RvlError
from rvl_llm.train import run_folder
from rvl_llm.train.run_folder import (
    check_log_dir,
    check_overwritable,
    checkpoint_problem,
    foreign_files,
    is_complete_checkpoint,
    is_run_folder,
    resume_point,
    run_lock,
    set_aside,
)

ROOT = Path(__file__).resolve().parent.parent
Maker = Callable[[Path], object]  # makes something inside a folder
WEIGHTS = safetensors_bytes({"w": np.zeros(4, dtype=np.float32)})  # a real, tiny safetensors file


def torch_file(path: Path) -> None:
    """A stand-in for torch.save's output: a zip archive (what the checks read)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")


def write_checkpoint(run_dir: Path, step: int, *, weights: str = "model.safetensors",
                     weights_bytes: bytes = WEIGHTS, state: str | None = None,
                     recipe: bool = True) -> Path:
    """A checkpoint as the Trainer saves it, in its order; recipe.json (our on_save) last."""
    folder = run_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / weights).write_bytes(weights_bytes)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch_file(folder / name)
    (folder / "tokenizer.json").write_text("{}")
    if state is None:
        state = json.dumps({"global_step": step, "log_history": []})
    (folder / "trainer_state.json").write_text(state)
    if recipe:
        (folder / "recipe.json").write_text(json.dumps({"recipe_version": 1}))
    return folder


def write_user_folder(path: Path) -> list[Path]:
    (path / "data").mkdir(parents=True)
    files = [path / "notes.txt", path / "data" / "table.csv"]
    for file in files:
        file.write_text("mine")
    return files


def nested_recipe(folder: Path) -> None:
    (folder / "sub").mkdir()
    (folder / "sub" / "recipe.json").write_text("{}")


# ---- is_run_folder and --overwrite ------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda d: (d / "recipe.json").write_text("{}"),
    lambda d: (d / "final").mkdir() or (d / "final" / "recipe.json").write_text("{}"),
    lambda d: (d / "checkpoint-3").mkdir(),
    lambda d: (d / "incomplete-checkpoint-3").mkdir(),
    lambda d: (d / "incomplete-checkpoint-3.2").mkdir(),
], ids=["recipe", "final", "checkpoint", "incomplete", "incomplete-suffix"])
def test_each_thing_a_run_writes_makes_a_run_folder(tmp_path: Path, make: Maker) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("also here")
    make(run)
    assert is_run_folder(run)


@pytest.mark.parametrize("make", [
    lambda d: (d / "notes.txt").write_text("mine"),
    lambda d: (d / "checkpoint-abc").mkdir(),
    lambda d: (d / "checkpoint-3").write_text("a file"),
    lambda d: (d / "final").write_text("a file"),
    lambda d: (d / "final").mkdir(),
    lambda d: (d / "recipe.json").mkdir(),
    lambda d: nested_recipe(d),
], ids=["files", "bad-number", "checkpoint-file", "final-file", "bare-final", "recipe-folder",
        "nested"])
def test_other_folders_are_not_runs(tmp_path: Path, make: Maker) -> None:
    run = tmp_path / "run"
    run.mkdir()
    make(run)
    assert not is_run_folder(run)
    assert not is_run_folder(tmp_path / "missing")


def test_overwrite_accepts_missing_and_empty_folders(tmp_path: Path) -> None:
    check_overwritable(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    check_overwritable(tmp_path / "empty")


def look_alike_recipe(run: Path) -> None:
    (run / "recipe.json").write_text("{}")
    (run / "thesis.tex").write_text("mine")


def look_alike_checkpoint(run: Path) -> None:
    (run / "checkpoint-500").mkdir()
    (run / "checkpoint-500" / "pytorch_model.bin").write_bytes(b"weights of mine")
    (run / "checkpoint-500" / "notes.md").write_text("mine")


@pytest.mark.parametrize("make", [write_user_folder, look_alike_recipe, look_alike_checkpoint,
                                  lambda d: write_checkpoint(d, 5, recipe=False)],
                         ids=["users-files", "empty-recipe", "checkpoint-of-mine", "no-recipe"])
def test_overwrite_refuses_a_folder_without_our_recipe_and_deletes_nothing(
    tmp_path: Path, make: Maker,
) -> None:
    run = tmp_path / "log" / "mine"
    run.mkdir(parents=True)
    make(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(RvlError) as err:
        check_overwritable(run)
    assert err.value.message == (
        f"--overwrite: {run} is not a run of rvl-llm (no recipe.json that reads as rvl-llm's, "
        "in it or in final/); nothing was deleted: move it or choose another --name")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_files_a_run_does_not_write_are_listed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_checkpoint(run, 2)
    (run / "recipe.json").write_text("{}")
    (run / "config.yaml").write_text("name: run\n")
    (run / ".tmp-recipe.json-1234").write_text("")
    (run / "final" / "eval" / "64-max-len" / "test").mkdir(parents=True)
    (run / "final" / "eval" / "64-max-len" / "test" / "metrics.json").write_text("{}")
    (run / "runs" / "May01").mkdir(parents=True)  # tensorboard's logs
    assert foreign_files(run) == []
    (run / "thesis.tex").write_text("mine")
    (run / "checkpoint-2" / "notes.md").write_text("mine")
    (run / "final" / "eval" / "draft.docx").write_text("mine")
    (run / "data").mkdir()
    assert foreign_files(run) == ["checkpoint-2/notes.md", "data/", "final/eval/draft.docx",
                                  "thesis.tex"]


def test_overwrite_refuses_a_file_and_a_link_naming_the_option(tmp_path: Path) -> None:
    file = tmp_path / "run"
    file.write_text("mine")
    with pytest.raises(RvlError, match=rf"^--resume: {file} is a file, not a run of rvl-llm; "
                                       "nothing was deleted"):
        check_overwritable(file, option="--resume")
    assert file.read_text() == "mine"
    target = tmp_path / "elsewhere"
    write_checkpoint(target, 1)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(RvlError, match=rf"^--overwrite: {link} is a symbolic link"):
        check_overwritable(link)


# ---- --log-dir --------------------------------------------------------------------------------

def test_log_dir_is_created_with_its_parents_and_left_clean(tmp_path: Path) -> None:
    log = tmp_path / "a" / "b" / "log"
    check_log_dir(log)
    check_log_dir(log)  # an existing folder is fine too
    assert log.is_dir() and list(log.iterdir()) == []  # the probe is gone


def test_log_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "log"
    file.write_text("mine")
    with pytest.raises(RvlError) as err:
        check_log_dir(file)
    assert err.value.message == f"--log-dir: {file} is a file, not a folder"
    with pytest.raises(RvlError, match=rf"^--log-dir: cannot create {file / 'sub'} \("):
        check_log_dir(file / "sub")
    assert file.read_text() == "mine"


def test_unwritable_log_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, where chmod does not stop writes: refuse the probe instead.
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(run_folder.tempfile, "mkstemp", refuse)
    with pytest.raises(RvlError) as err:
        check_log_dir(tmp_path)
    assert err.value.message == (f"--log-dir: cannot write in {tmp_path} (Permission denied); "
                                 "choose a writable folder")


def test_log_dir_where_the_probe_cannot_be_removed_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(run_folder.os, "unlink", refuse)
    with pytest.raises(RvlError, match=r"^--log-dir: cannot write in .*Operation not permitted"):
        check_log_dir(tmp_path)


# ---- run_lock ---------------------------------------------------------------------------------

LOCK_MESSAGE = ("--name exp: another rvl-llm train is running in {log}/exp (lock {log}/.exp.lock); "
                "wait for it or choose another --name")


def hold_in_child(log: Path) -> subprocess.Popen[str]:
    """Another process holding the lock of 'exp' until it is killed."""
    code = ("import sys, time; from pathlib import Path; "
            "from rvl_llm.train.run_folder import run_lock\n"
            "with run_lock(Path(sys.argv[1]), 'exp'):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", code, str(log)], stdout=subprocess.PIPE,
                             text=True, env=env)
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def test_lock_held_by_another_process_is_refused_until_it_is_killed(tmp_path: Path) -> None:
    child = hold_in_child(tmp_path)
    try:
        with pytest.raises(RvlError) as err, run_lock(tmp_path, "exp"):
            pass
        assert err.value.message == LOCK_MESSAGE.format(log=tmp_path)
        with run_lock(tmp_path, "other"):  # other names are free
            pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with run_lock(tmp_path, "exp"):  # the OS freed it with the process (kill -9)
        pass


def test_second_holder_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with run_lock(tmp_path, "exp"):
        with pytest.raises(RvlError, match="another rvl-llm train is running"), \
                run_lock(tmp_path, "exp"):
            pass
        refused: list[bool] = []

        def other_thread() -> None:
            try:
                with run_lock(tmp_path, "exp"):
                    refused.append(False)
            except RvlError:
                refused.append(True)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert refused == [True]
    with run_lock(tmp_path, "exp"):  # released on exit
        pass


def test_lock_is_released_on_error_and_outlives_the_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError), run_lock(tmp_path, "exp"):
        raise ValueError("training failed")
    run = tmp_path / "exp"
    write_checkpoint(run, 1)
    with run_lock(tmp_path, "exp"):
        import shutil

        shutil.rmtree(run)  # --overwrite replaces the run folder; the lock stays beside it
        with pytest.raises(RvlError, match="another rvl-llm train"), run_lock(tmp_path, "exp"):
            pass


# ---- complete and incomplete checkpoints ------------------------------------------------------

@pytest.mark.parametrize("weights", ["model.safetensors", "adapter_model.safetensors"])
def test_a_finished_save_is_complete(tmp_path: Path, weights: str) -> None:
    assert is_complete_checkpoint(write_checkpoint(tmp_path, 4, weights=weights))


def test_a_sharded_save_is_complete_only_with_every_shard(tmp_path: Path) -> None:
    folder = write_checkpoint(tmp_path, 4, weights="model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert not is_complete_checkpoint(folder)
    (folder / "model-00002-of-00002.safetensors").write_bytes(WEIGHTS)
    assert is_complete_checkpoint(folder)


@pytest.mark.parametrize("defect", [
    {"recipe": False},
    {"state": '{"global_step": 4, "log_hist'},
    {"state": "[1, 2]"},
    {"weights_bytes": b""},
    {"weights": "optimizer-only.bin"},
    {"weights_bytes": WEIGHTS[: len(WEIGHTS) // 2]},
], ids=["no-recipe", "truncated-state", "state-not-object", "empty-weights", "no-weights",
        "truncated-weights"])
def test_a_save_cut_short_is_incomplete(tmp_path: Path, defect: dict[str, object]) -> None:
    folder = write_checkpoint(tmp_path, 4, **defect)  # type: ignore[arg-type]
    assert not is_complete_checkpoint(folder)


@pytest.mark.parametrize("name", ["optimizer.pt", "model.safetensors"])
def test_a_truncated_file_makes_a_checkpoint_incomplete_and_names_it(tmp_path: Path,
                                                                     name: str) -> None:
    write_checkpoint(tmp_path, 2)
    folder = write_checkpoint(tmp_path, 4)
    assert checkpoint_problem(folder) is None
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])  # a copy cut short
    assert checkpoint_problem(folder) == f"{name} is damaged (cut short or corrupted)"
    assert resume_point(tmp_path) == (tmp_path / "checkpoint-2", [folder])


def test_resume_point_orders_by_step_not_by_name(tmp_path: Path) -> None:
    for step in (9, 10, 2):
        write_checkpoint(tmp_path, step)
    assert resume_point(tmp_path) == (tmp_path / "checkpoint-10", [])


def test_resume_point_skips_the_incomplete_newest(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 3, recipe=False)  # older than the newest good one: left alone
    write_checkpoint(tmp_path, 9)
    write_checkpoint(tmp_path, 100, state="{")
    write_checkpoint(tmp_path, 12, recipe=False)
    (tmp_path / "checkpoint-200").write_text("a file, not a checkpoint")
    assert resume_point(tmp_path) == (tmp_path / "checkpoint-9",
                                      [tmp_path / "checkpoint-12", tmp_path / "checkpoint-100"])


def test_resume_point_without_a_complete_checkpoint(tmp_path: Path) -> None:
    assert resume_point(tmp_path / "missing") == (None, [])
    assert resume_point(tmp_path) == (None, [])
    write_checkpoint(tmp_path, 5, weights_bytes=b"")
    assert resume_point(tmp_path) == (None, [tmp_path / "checkpoint-5"])


def test_set_aside_hides_incomplete_checkpoints_from_the_trainer(tmp_path: Path) -> None:
    from transformers.trainer_utils import get_last_checkpoint, sort_checkpoints

    write_checkpoint(tmp_path, 9)
    write_checkpoint(tmp_path, 10, recipe=False)
    _, incomplete = resume_point(tmp_path)
    assert set_aside(incomplete) == [tmp_path / "incomplete-checkpoint-10"]
    assert (tmp_path / "incomplete-checkpoint-10" / "trainer_state.json").is_file()  # kept
    assert get_last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-9")
    assert sort_checkpoints(str(tmp_path)) == [str(tmp_path / "checkpoint-9")]
    assert resume_point(tmp_path) == (tmp_path / "checkpoint-9", [])
    assert is_run_folder(tmp_path)


def test_set_aside_never_replaces_an_earlier_one(tmp_path: Path) -> None:
    (tmp_path / "incomplete-checkpoint-10").mkdir()  # empty: os.rename would replace it
    (tmp_path / "incomplete-checkpoint-10.1").mkdir()
    first = write_checkpoint(tmp_path, 10, recipe=False)
    assert set_aside([first]) == [tmp_path / "incomplete-checkpoint-10.2"]
    second = write_checkpoint(tmp_path, 10, recipe=False)
    other = write_checkpoint(tmp_path, 11, recipe=False)
    assert set_aside([second, other]) == [tmp_path / "incomplete-checkpoint-10.3",
                                          tmp_path / "incomplete-checkpoint-11"]
    assert not first.exists() and list((tmp_path / "incomplete-checkpoint-10").iterdir()) == []
