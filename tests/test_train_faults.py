"""Faults around a training run, each through the entry point a user meets: a one-line
``Error: ...`` naming the option or file, exit 1 from the CLI, and nothing lost or half-written.

The runs are real and tiny (tiny-mistral, max-len 64, 8 train and 4 validation documents); the
refusals fail before a model is loaded and take milliseconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_train_cli import assert_refused

from rvl_llm.cli import main
from rvl_llm.errors import RvlError
from rvl_llm.options import CLI_KEY
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.prompt import PromptSpec
from rvl_llm.presets import TOKENIZER_FILES
from rvl_llm.recipe import Quantization, Recipe, TrainSettings
from rvl_llm.train import run as train_run
from rvl_llm.train.cli import train_command
from rvl_llm.train.config import TRAIN_SPLITS, TrainConfig
from rvl_llm.train.run import run_train
from rvl_llm.train.run_folder import is_complete_checkpoint, run_lock

LABELS = ("letter", "form", "email", "invoice")
WORDS = ("dear sincerely regards yours", "field date signature box", "from subject sent cc",
         "total amount due payment")
ROOT = Path(__file__).resolve().parent.parent


def documents(split: str, n: int) -> dict[str, str]:
    files = {}
    for i in range(n):
        label = i % len(LABELS)
        words = (WORDS[label] + " the office report page ").split() * (1 + i % 6)
        files[f"{split}_{i:04d}_{label}_aws.json"] = " ".join(words)
    return files


@pytest.fixture
def corpus(write_corpus: Callable[..., Path], tmp_path: Path) -> Path:
    """8 train and 4 validation documents over 4 classes, and the label file."""
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return write_corpus({**documents("train", 8), **documents("validation", 4)})


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the working folder: the default log/ and data_cache/ land in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before every check passed")

    monkeypatch.setattr(train_run, "load_model", load_model)  # the name run_train calls


def config(tmp_path: Path, model: Path, **overrides: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data", "name": "run", "model": str(model), "max_len": 64,
        "num_epochs": 1, "batch_size": 4, "lr": 1e-3, "labels_file": tmp_path / "labels.txt",
        "log_dir": tmp_path / "log", "cache_dir": tmp_path / "cache", "save": "never",
        "trainable": "classifier",
    }
    return TrainConfig.from_flags(**{**values, **overrides})


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def train_args(tmp_path: Path, model: Path, *extra: str | Path) -> list[str | Path]:
    """`rvl-llm train` of a tiny classifier run, as config() would make it."""
    return ["train", "-d", tmp_path / "data", "--labels", tmp_path / "labels.txt",
            "--name", "run", "-m", model, "--max-len", "64", "-n", "1", "-b", "4", "-l", "1e-3",
            "--trainable", "classifier", "--save", "never", "--log-dir", tmp_path / "log",
            "--cache-dir", tmp_path / "cache", "--no-progress", *extra]


def assert_failed_in_one_line(result: Result, *needles: str) -> str:
    """For a failure after work began (progress was printed): exit 1, no traceback, and the
    last line is the only ``Error: ...`` line, holding every needle. A progress bar cut short
    must not swallow the start of the error line (logs are searched for ``^Error:``)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert errors == [lines[-1]], result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def cache_entries(cache_dir: Path) -> list[Path]:
    if not cache_dir.is_dir():
        return []
    return sorted(p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


# ---- --overwrite deletes runs only --------------------------------------------------------------

def test_overwrite_refuses_a_users_folder_and_deletes_nothing(
    models: Path, corpus: Path, tmp_path: Path, no_model_load: None,
) -> None:
    run = tmp_path / "log" / "run"
    (run / "thesis").mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    (run / "thesis" / "chapter1.tex").write_text("also mine")
    before = tree(run)
    result = cli(*train_args(tmp_path, models / "tiny-mistral", "--overwrite"))
    assert_refused(result, "--overwrite", str(run), "not a run", "nothing was deleted")
    assert tree(run) == before
    assert not (tmp_path / "cache").exists()  # refused before prepare


def test_overwrite_replaces_a_finished_run(models: Path, corpus: Path, tmp_path: Path) -> None:
    run_train(config(tmp_path, models / "tiny-mistral"))
    run = tmp_path / "log" / "run"
    first = json.loads((run / "final" / "recipe.json").read_text())
    # A file the run did not write (the user's) stops --overwrite: listed, nothing deleted.
    (run / "final" / "notes.md").write_text("mine")
    (run / "thesis.tex").write_text("mine")
    before = tree(run)
    result = cli(*train_args(tmp_path, models / "tiny-mistral", "--overwrite", "--seed", "7"))
    assert_refused(result, "--overwrite", str(run), "files a run of rvl-llm does not write",
                   "final/notes.md, thesis.tex", "nothing was deleted")
    assert tree(run) == before
    (run / "final" / "notes.md").unlink()
    (run / "thesis.tex").unlink()
    (run / "checkpoint-9").mkdir()  # a stale checkpoint is the run's own: it goes
    (run / "checkpoint-9" / "optimizer.pt").write_bytes(b"")
    result = cli(*train_args(tmp_path, models / "tiny-mistral", "--overwrite", "--seed", "7"))
    assert result.exit_code == 0, result.output
    assert not (run / "checkpoint-9").exists()
    second = json.loads((run / "final" / "recipe.json").read_text())
    assert (first["settings"]["seed"], second["settings"]["seed"]) == (1234, 7)
    assert json.loads((run / "recipe.json").read_text()) == second


@pytest.mark.parametrize("make", [
    lambda run: None,
    lambda run: run.mkdir(parents=True),
    lambda run: run.mkdir(parents=True) or (run / "recipe.json").write_text("{}"),
], ids=["missing", "empty", "look-alike"])
def test_resume_without_a_run_is_refused(make: Callable[[Path], object], models: Path,
                                         corpus: Path, tmp_path: Path,
                                         no_model_load: None) -> None:
    run = tmp_path / "log" / "run"
    make(run)
    before = tree(run)
    result = cli(*train_args(tmp_path, models / "tiny-mistral", "--resume"))
    assert_refused(result, "--resume", str(run), "holds no run to continue", "drop --resume")
    assert tree(run) == before and run.exists() == bool(before or run.exists())
    assert not (tmp_path / "cache").exists()  # refused before prepare


# ---- split prefixes that overlap or are empty ---------------------------------------------------

@pytest.mark.parametrize(("flags", "needles"), [
    (["--prefix-train", "t"], ["--prefix-train 't'", "--prefix-test 'test_'", "overlap"]),
    (["--prefix-validation", "train_x"],
     ["--prefix-train 'train_'", "--prefix-validation 'train_x'", "overlap"]),
    (["--prefix-validation", ""], ["--prefix-validation ''", "must not be empty"]),
], ids=["train-starts-test", "validation-extends-train", "empty"])
@pytest.mark.parametrize("command", ["prepare", "train"])
def test_bad_split_prefixes_are_refused_before_anything_is_written(
    command: str, flags: list[str], needles: list[str], models: Path, corpus: Path,
    workdir: Path, no_model_load: None,
) -> None:
    args = [command, "-d", "data", "-m", models / "tiny-mistral", "--labels", "labels.txt",
            *flags]
    if command == "train":
        args += ["--name", "run", "--trainable", "lora"]
    assert_refused(cli(*args), *needles)
    assert not (workdir / "data_cache").exists() and not (workdir / "log").exists()


# ---- --log-dir that is a file -------------------------------------------------------------------

def test_log_dir_that_is_a_file_is_refused_before_prepare_and_model_load(
    models: Path, corpus: Path, tmp_path: Path, no_model_load: None,
) -> None:
    (tmp_path / "log").write_text("not a folder")
    result = cli(*train_args(tmp_path, models / "tiny-mistral"))
    assert_refused(result, "--log-dir", str(tmp_path / "log"), "is a file")
    assert (tmp_path / "log").read_text() == "not a folder"
    assert not (tmp_path / "cache").exists()


# ---- a tokenizer folder is not a model ----------------------------------------------------------

def test_model_folder_without_config_is_refused_before_prepare(
    models: Path, corpus: Path, tmp_path: Path, no_model_load: None,
) -> None:
    tokenizer_only = tmp_path / "tokenizer-only"
    tokenizer_only.mkdir()
    copied = [name for name in TOKENIZER_FILES if (models / "tiny-mistral" / name).is_file()]
    assert "tokenizer.json" in copied
    for name in copied:
        shutil.copy(models / "tiny-mistral" / name, tokenizer_only / name)
    result = cli(*train_args(tmp_path, tokenizer_only))
    assert_refused(result, f"--model {tokenizer_only}", "config.json")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "log").exists()


# ---- one train per run name at a time -----------------------------------------------------------

@contextmanager
def lock_in_another_process(log_dir: Path, name: str) -> Iterator[None]:
    """``run_lock`` held by a child process until the block ends."""
    code = ("import sys; from pathlib import Path; from rvl_llm.train.run_folder import run_lock\n"
            "with run_lock(Path(sys.argv[1]), sys.argv[2]):\n"
            "    print('held', flush=True); sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(log_dir), name], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        yield
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=60)


@pytest.mark.parametrize("holder", ["this-process", "another-process"])
def test_a_second_train_of_the_same_name_is_refused(
    holder: str, models: Path, corpus: Path, tmp_path: Path, no_model_load: None,
) -> None:
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    hold = run_lock(log_dir, "run") if holder == "this-process" else lock_in_another_process(
        log_dir, "run")
    with hold:
        result = cli(*train_args(tmp_path, models / "tiny-mistral"))
        assert_refused(result, "--name run", "another rvl-llm train is running")
    assert not (log_dir / "run").exists() and not (tmp_path / "cache").exists()
    with run_lock(log_dir, "run"):  # the refused train left the lock free
        pass


# ---- a diverging run stops before it saves ------------------------------------------------------

def weights_are_finite(folder: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no weights in {folder}"
    return all(bool(torch.isfinite(t).all()) for f in files for t in load_file(str(f)).values())


def test_infinite_lr_stops_a_generative_run_before_any_nan_is_saved(
    models: Path, corpus: Path, tmp_path: Path,
) -> None:
    from rvl_llm.train.guards import NonFiniteTraining

    cfg = config(tmp_path, models / "tiny-mistral", generative=True, trainable="full",
                 num_epochs=2, save="epoch", lr=float("inf"))
    with pytest.raises(NonFiniteTraining, match=r"training diverged at step \d+: .*nan") as err:
        run_train(cfg)
    assert isinstance(err.value, RvlError) and "\n" not in err.value.message
    assert "final/ was not written" in err.value.message
    assert not (cfg.run_dir / "final").exists()
    for checkpoint in cfg.run_dir.glob("checkpoint-*"):
        assert weights_are_finite(checkpoint), checkpoint


def test_a_diverging_run_fails_in_one_line_through_the_cli(
    models: Path, corpus: Path, tmp_path: Path,
) -> None:
    result = cli(*train_args(tmp_path, models / "tiny-mistral", "-g", "--trainable", "full",
                             "-n", "2", "--save", "epoch", "-l", "inf"))
    assert_failed_in_one_line(result, "training diverged", "--lr", "final/ was not written")
    assert not (tmp_path / "log" / "run" / "final").exists()


def test_a_run_diverging_in_its_second_epoch_keeps_the_first_checkpoint(
    models: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2 steps an epoch: the optimiser poisons the weights at step 3; checkpoint-2 is kept and
    named, checkpoint-4 and final/ are never written."""
    import torch

    from rvl_llm.train.guards import NonFiniteTraining

    real_step = torch.optim.AdamW.step
    steps = []

    def step(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        out = real_step(self, *args, **kwargs)
        steps.append(1)
        if len(steps) >= 3:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    cfg = config(tmp_path, models / "tiny-mistral", generative=True, trainable="lora",
                 num_epochs=2, save="epoch")
    with pytest.raises(NonFiniteTraining, match="kept the last good checkpoint") as err:
        run_train(cfg)
    assert str(cfg.run_dir / "checkpoint-2") in err.value.message
    assert sorted(p.name for p in cfg.run_dir.glob("checkpoint-*")) == ["checkpoint-2"]
    assert weights_are_finite(cfg.run_dir / "checkpoint-2")
    assert not (cfg.run_dir / "final").exists()


# ---- resume after a kill -9 during a checkpoint save --------------------------------------------

def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("cut_short", [
    lambda folder: (folder / "recipe.json").unlink(),
    lambda folder: truncate(folder / "trainer_state.json"),
    lambda folder: truncate(folder / "optimizer.pt"),
    lambda folder: truncate(folder / "model.safetensors"),
], ids=["no-recipe", "truncated-state", "truncated-optimizer", "truncated-weights"])
def test_resume_sets_the_incomplete_checkpoint_aside_and_finishes(
    cut_short: Callable[[Path], None], models: Path, corpus: Path, tmp_path: Path,
) -> None:
    cfg = config(tmp_path, models / "tiny-mistral", num_epochs=2, save="epoch")
    run_train(cfg)
    run = cfg.run_dir
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    # As a kill -9 while checkpoint-4 was being written leaves it: no final/, no accuracies.
    cut_short(run / "checkpoint-4")
    shutil.rmtree(run / "final")
    recipe = Recipe.read(run)
    recipe = replace(recipe, validation_accuracy=None, best_validation_accuracy=None)
    recipe.write(run)
    damaged = tree(run)

    # A plain rerun is refused, touches nothing and says --resume.
    assert not is_complete_checkpoint(run / "checkpoint-4")
    result = cli(*train_args(tmp_path, models / "tiny-mistral", "-n", "2", "--save", "epoch"))
    assert_refused(result, "--name run", "unfinished", "--resume")
    assert tree(run) == damaged

    said: list[str] = []
    result = run_train(replace(cfg, resume=True), log=said.append)
    aside = [line for line in said if "incomplete" in line]
    assert len(aside) == 1 and "checkpoint-4" in aside[0], said
    assert "incomplete-checkpoint-4" in aside[0], aside
    assert any(f"continuing from {run / 'checkpoint-2'}" in line for line in said), said
    # The cut-short folder is kept, byte for byte, under its new name; nothing is deleted.
    kept = {k.removeprefix("checkpoint-4/"): v for k, v in damaged.items()
            if k.startswith("checkpoint-4/")}
    assert tree(run / "incomplete-checkpoint-4") == kept
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert (run / "final" / "recipe.json").is_file()
    assert Recipe.read(run / "final").validation_accuracy == result.final_accuracy is not None
    assert is_complete_checkpoint(run / "checkpoint-4")


def test_resume_with_every_checkpoint_damaged_says_it_starts_again(
    models: Path, corpus: Path, tmp_path: Path,
) -> None:
    cfg = config(tmp_path, models / "tiny-mistral", num_epochs=1, save="epoch")
    run_train(cfg)
    shutil.rmtree(cfg.run_dir / "final")
    truncate(cfg.run_dir / "checkpoint-2" / "optimizer.pt")
    said: list[str] = []
    run_train(replace(cfg, resume=True), log=said.append)
    assert any("checkpoint-2 is incomplete (optimizer.pt is damaged" in line for line in said)
    assert any("no complete checkpoint" in line and "starting from the beginning" in line
               for line in said), said
    assert (cfg.run_dir / "incomplete-checkpoint-2").is_dir()
    assert (cfg.run_dir / "final" / "recipe.json").is_file()


# ---- a full disk while saving -------------------------------------------------------------------

def full_disk_at(monkeypatch: pytest.MonkeyPatch, cls: type, method: str, folder: str,
                 error: Callable[[], Exception]) -> None:
    """``cls.method(self, path, ...)`` raises ``error()`` when it writes into ``folder``."""
    real = getattr(cls, method)

    def save(self: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == folder:
            (Path(path) / "half-written.tmp").write_bytes(b"\0")  # what a full disk leaves
            raise error()
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(cls, method, save)


def enospc() -> OSError:
    import errno

    return OSError(errno.ENOSPC, "No space left on device")


def safetensors_enospc() -> Exception:
    from safetensors import SafetensorError

    return SafetensorError("Error while serializing: I/O error: No space left on device "
                           "(os error 28)")


@pytest.mark.parametrize("where", ["checkpoint-tokenizer", "final-weights"])
def test_a_full_disk_while_saving_ends_in_one_line_and_keeps_the_last_checkpoint(
    where: str, models: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    if where == "checkpoint-tokenizer":  # the second epoch's checkpoint: OSError (tokenizer)
        folder = "checkpoint-4"
        full_disk_at(monkeypatch, PreTrainedTokenizerBase, "save_pretrained", folder, enospc)
    else:  # final/: SafetensorError (weights)
        folder = "final"
        full_disk_at(monkeypatch, PreTrainedModel, "save_pretrained", folder,
                     safetensors_enospc)
    run = tmp_path / "log" / "run"
    result = cli(*train_args(tmp_path, models / "tiny-mistral", "-n", "2", "--save", "epoch",
                             "--save-total-limit", "0"))
    what, last = ("final model", "checkpoint-4") if folder == "final" else ("checkpoint",
                                                                             "checkpoint-2")
    assert_failed_in_one_line(
        result, f"{run / folder}: cannot write the {what} (No space left on device)",
        f"kept the last complete checkpoint {run / last}", "--resume")
    assert not (run / folder).exists()  # nothing half-written
    assert is_complete_checkpoint(run / "checkpoint-2")
    assert (run / "checkpoint-4").exists() == (folder == "final")



# ---- a corpus with bad files: the recipe carries --skip-bad-files -------------------------------

def test_skip_bad_files_reaches_eval_through_the_recipe(
    models: Path, corpus: Path, tmp_path: Path, write_corpus: Callable[..., Path],
) -> None:
    from rvl_llm.evaluate.config import EvalConfig
    from rvl_llm.evaluate.run import run_eval

    bad_train, bad_test = "train_0100_1_aws.json", "test_0100_2_aws.json"
    write_corpus({**documents("test", 4), bad_train: b'{"id": "x", "ocr": ', bad_test: b"{oops"})
    args = train_args(tmp_path, models / "tiny-mistral")

    result = cli(*args)
    assert_failed_in_one_line(result, bad_train, "--skip-bad-files")
    assert not (tmp_path / "log" / "run").exists()
    for entry in cache_entries(tmp_path / "cache"):  # no train split was recorded
        assert not (entry / "train").exists()
        if (entry / "manifest.json").exists():
            assert "train" not in json.loads((entry / "manifest.json").read_text())["splits"]

    result = cli(*args, "--skip-bad-files")
    assert result.exit_code == 0, result.output
    final = tmp_path / "log" / "run" / "final"
    recipe = Recipe.read(final)
    assert recipe.data.skip_bad_files is True

    evaluated = run_eval(EvalConfig(checkpoint=final, progress=False))  # no --skip-bad-files
    assert evaluated.record["n"] == 4  # the 4 good test documents; the bad one left out
    assert evaluated.record["split"] == "test"


# ---- a relative --data keys the same cache entry as the absolute path ---------------------------

def test_relative_data_path_shares_the_cache_entry_and_the_recipe_is_absolute(
    models: Path, corpus: Path, workdir: Path,
) -> None:
    model = models / "tiny-mistral"
    result = cli("train", "-d", "data", "--labels", "labels.txt", "--name", "run", "-m", model,
                 "--max-len", "64", "-n", "1", "-b", "4", "--trainable", "classifier",
                 "--save", "never", "--no-progress")
    assert result.exit_code == 0, result.output
    entries = cache_entries(workdir / "data_cache")
    assert len(entries) == 1
    recipe = Recipe.read(workdir / "log" / "run" / "final")
    assert recipe.data.data_dir == (workdir / "data").resolve()
    assert recipe.data.data_dir.is_absolute() and recipe.data.cache_dir.is_absolute()
    assert recipe.cache_key == entries[0].name

    result = cli("prepare", "-d", (workdir / "data").resolve(), "--labels",
                 (workdir / "labels.txt").resolve(), "-m", model, "--max-len", "64",
                 "--splits", "train,validation", "--cache-dir", (workdir / "data_cache"),
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert cache_entries(workdir / "data_cache") == entries
    assert result.output.splitlines()[-1] == str(entries[0].resolve())


# ---- a new prepare setting reaches train, eval and resume with no other edit --------------------

# Fields whose values are constrained beyond their type.
CONSTRAINED = {"splits": ("validation", "test"), "labels": ("alpha", "beta", "gamma"),
               "data_format": "jsonl", "data_files": ("train=t.jsonl",), "train_per_class": 3,
               "prompt": "chat", "split_file": ("/tmp/x_split_file.txt",), "truncation": "chunks",
               "chunk_by": "page", "train_chunks": "first"}
# Left at their default because a field set above excludes them (--train-per-class, --truncation
# chunks, --instruction).
EXCLUDED = {"train_size", "keep_tail", "instruction_file"}


def unlike_default(name: str, hint: Any, default: Any, tmp_path: Path) -> Any:
    """A valid value of that type, never the field's default."""
    if name in CONSTRAINED:
        return CONSTRAINED[name]
    base = {bool | None: bool, Path | None: Path, str | None: str}.get(hint, hint)
    if base is bool:
        return default is not True
    if base is int:
        return default + 7
    if base is str:
        return f"x_{name}_"  # no such prefix starts another
    if base is Path:
        return tmp_path / f"x_{name}"
    pytest.fail(f"PrepareConfig.{name}: add an example value of {hint} to this test")


def prepare_values(tmp_path: Path, *, cli_only: bool = False) -> dict[str, Any]:
    """Every field of PrepareConfig (or every command-line one) set unlike its default."""
    from typing import get_type_hints

    hints = get_type_hints(PrepareConfig)
    values = {}
    for f in fields(PrepareConfig):
        if (cli_only and CLI_KEY not in f.metadata) or f.name in EXCLUDED:
            continue
        default = f.default if f.default is not MISSING else None
        values[f.name] = unlike_default(f.name, hints[f.name], default, tmp_path)
        assert values[f.name] != default, f.name
    return values


def example_recipe(tmp_path: Path) -> Recipe:
    data = PrepareConfig(**prepare_values(tmp_path))
    return Recipe(
        run_name="run", model="tiny", model_location=str(tmp_path / "model"), data=data,
        prompt=PromptSpec(data.prompt_settings, {"tokenizer.json": "0" * 64}, data.label_names()),
        settings=TrainSettings(trainable="lora"),
        pad_token="<unk>", lora_targets=("q_proj", "v_proj"), quantization=Quantization(),
        mixed_precision="bf16", cache_key="0" * 16, versions={"torch": "2.0"},
        command="rvl-llm train",
    )


def test_every_prepare_option_is_a_train_option() -> None:
    from rvl_llm.pipeline.cli import prepare_command

    train = {p.name: p for p in train_command.params}
    prepare = {p.name: p for p in prepare_command.params}
    tagged = [f.name for f in fields(PrepareConfig) if CLI_KEY in f.metadata]
    assert "splits" in tagged  # training prepares train and validation: its only exception
    for name in tagged:
        if name != "splits":
            assert name in train, f"PrepareConfig.{name} is not an option of `train`"
            assert train[name].opts == prepare[name].opts, name


def test_train_flags_reach_the_prepare_settings_whole(tmp_path: Path) -> None:
    values = prepare_values(tmp_path, cli_only=True)
    del values["splits"]
    cfg = TrainConfig.from_flags(name="run", **values)
    assert cfg.data == PrepareConfig(**values, splits=TRAIN_SPLITS)


def test_the_training_batch_size_does_not_reach_prepare(tmp_path: Path) -> None:
    """``-b`` is documents per training step; prepare's tokenize_batch (documents per tokenizer
    batch) keeps its own default, and no setting name belongs to two configs."""
    cfg = TrainConfig.from_flags(name="run", data_dir=tmp_path, model="m", batch_size=4)
    assert cfg.settings.batch_size == 4
    assert cfg.data.tokenize_batch == PrepareConfig(data_dir=tmp_path, model="m").tokenize_batch
    names = [{f.name for f in fields(c)} for c in (PrepareConfig, TrainSettings, TrainConfig)]
    assert not (names[0] & names[1]) and not ((names[0] | names[1]) & names[2] - {"data"})


def test_the_recipe_round_trips_every_prepare_setting(tmp_path: Path) -> None:
    recipe = example_recipe(tmp_path)
    assert recipe.data.trust_remote_code is True  # written as given...
    recipe.write(tmp_path / "run")
    back = Recipe.read(tmp_path / "run")
    assert back.data.trust_remote_code is False  # ...and never granted by the file
    skip = {"trust_remote_code", "progress"}
    written = {k: v for k, v in asdict(recipe.data).items() if k not in skip}
    read = {k: v for k, v in asdict(back.data).items() if k not in skip}
    assert read == written
    assert back == replace(recipe, data=replace(recipe.data, trust_remote_code=False))


def test_eval_takes_the_recipes_prepare_settings_and_changes_only_its_own(tmp_path: Path) -> None:
    from rvl_llm.evaluate.config import EvalConfig
    from rvl_llm.evaluate.run import eval_data

    recipe = example_recipe(tmp_path)
    recipe.data.cache_dir.mkdir(parents=True)  # holds a cache (a key's lock): eval keeps it
    (recipe.data.cache_dir / f".{'0' * 20}.lock").touch()
    plain = eval_data(EvalConfig(checkpoint=tmp_path / "final"), recipe)
    assert plain == replace(recipe.data, splits=("test",), trust_remote_code=False,
                            progress=None)
    assert plain.skip_bad_files is True  # the run skipped bad files: so does its eval

    cfg = EvalConfig(checkpoint=tmp_path / "final", data_dir=tmp_path / "other",
                     cache_dir=tmp_path / "cache2", max_len=32, split="validation",
                     trust_remote_code=True, progress=False)
    data = eval_data(cfg, recipe)
    own = {"data_dir": tmp_path / "other", "cache_dir": tmp_path / "cache2", "max_len": 32,
           "splits": ("validation",), "skip_bad_files": True, "trust_remote_code": True,
           "progress": False}
    assert data == replace(recipe.data, **own)
    for f in fields(PrepareConfig):
        if f.name not in own:
            assert getattr(data, f.name) == getattr(recipe.data, f.name), f.name
