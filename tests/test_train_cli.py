"""``rvl-llm train`` on bad input: a one-line error naming the option, exit 1, nothing written.

Every case here fails before a model is loaded, so the tests take milliseconds each.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rvl_llm.cli import main
from rvl_llm.train import model as train_model


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "model"  # a local folder: resolves as a model without being loaded
    model.mkdir()
    (model / "config.json").write_text("{}")  # train checks that it is a model, not a tokenizer
    (tmp_path / "data").mkdir()
    return tmp_path


def train(*args: str) -> Result:
    base = ["train", "-d", "data", "--name", "run", "-m", "model", "--trainable", "lora"]
    return CliRunner().invoke(main, [*base, *args])


def assert_refused(result: Result, *needles: str) -> str:
    """Exit 1 and nothing but one line, ``Error: ...``, holding every needle."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def hide_module(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = importlib.util.find_spec

    def find_spec(module: str, *args: object) -> object:
        return None if module == name else real(module, *args)

    monkeypatch.setattr(train_model.importlib.util, "find_spec", find_spec)


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = importlib.util.find_spec

    def find_spec(module: str, *args: object) -> object:
        return object() if module == name else real(module, *args)

    monkeypatch.setattr(train_model.importlib.util, "find_spec", find_spec)


def test_finished_run_is_refused_and_kept(workdir: Path) -> None:
    recipe = workdir / "log" / "run" / "final" / "recipe.json"
    recipe.parent.mkdir(parents=True)
    recipe.write_text('{"recipe_version": 1}')
    assert_refused(train(), "--name run", "finished", "--overwrite", "--resume")
    assert recipe.read_text() == '{"recipe_version": 1}'


def test_unfinished_run_is_refused_without_resume(workdir: Path) -> None:
    (workdir / "log" / "run" / "checkpoint-6").mkdir(parents=True)
    assert_refused(train(), "--name run", "--resume")
    assert (workdir / "log" / "run" / "checkpoint-6").is_dir()


def test_classifier_with_generative_is_refused(workdir: Path) -> None:
    assert_refused(train("--trainable", "classifier", "-g"), "--trainable classifier",
                   "--generative")


def test_qlora_without_bitsandbytes(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_module(monkeypatch, "bitsandbytes")
    assert_refused(train("--trainable", "qlora"), "--trainable qlora", "bitsandbytes")


def test_unsloth_not_installed(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_module(monkeypatch, "unsloth")
    assert_refused(train("--unsloth"), "--unsloth", "rvl-llm[unsloth]")


def test_unsloth_without_gpu(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_module(monkeypatch, "unsloth")
    monkeypatch.setattr(train_model, "cuda_available", lambda: False)
    assert_refused(train("--unsloth"), "--unsloth", "GPU")


def test_split_model_under_multi_process_launch(workdir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert_refused(train("--split-model"), "--split-model", "multi-process")


def test_bf16_without_hardware_support(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_model, "bf16_supported", lambda: False)
    assert_refused(train("--mixed-precision", "bf16"), "--mixed-precision bf16")


def test_fp16_without_cuda(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_model, "cuda_available", lambda: False)
    assert_refused(train("--mixed-precision", "fp16"), "--mixed-precision fp16", "CUDA")


@pytest.mark.parametrize(
    ("flags", "option"),
    [
        (["-b", "0"], "--batch-size"),
        (["--batch-size", "-4"], "--batch-size"),
        (["-n", "0"], "--num-epochs"),
        (["-l", "0"], "--lr"),
        (["--lr", "-1e-4"], "--lr"),
        (["--gradient-accumulation", "0"], "--gradient-accumulation"),
        (["--resume", "--overwrite"], "--resume"),
    ],
)
def test_values_out_of_range(workdir: Path, flags: list[str], option: str) -> None:
    assert_refused(train(*flags), option)


def test_unknown_model_folder(workdir: Path) -> None:
    result = CliRunner().invoke(main, ["train", "-d", "data", "--name", "run", "-m", "./nope"])
    assert_refused(result, "--model ./nope")


def test_hub_model_without_network(workdir: Path, write_corpus: Callable[..., Path]) -> None:
    write_corpus({"train_0_0_aws.json": "a letter", "validation_0_0_aws.json": "a letter"})
    result = CliRunner().invoke(
        main, ["train", "-d", "data", "--name", "run", "-m", "nobody-here/no-model"]
    )
    assert_refused(result, "--model nobody-here/no-model", "local folder or a local preset")
    assert not (workdir / "log").exists()


def test_nothing_is_written_on_refusal(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    train("--split-model")
    assert not (workdir / "log").exists() and not (workdir / "data_cache").exists()


def test_optional_value_flags_parse(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--set-pad-token`` and ``--mixed-precision`` work bare and with a value."""
    from rvl_llm.train import run

    seen = []
    monkeypatch.setattr(run, "run_train", seen.append)
    runner = CliRunner()
    for args in (["--set-pad-token", "--mixed-precision"],
                 ["--set-pad-token", "<unk>", "--mixed-precision", "bf16"], []):
        result = runner.invoke(main, ["train", "-d", "data", "--name", "r", "-m", "m", *args])
        assert result.exit_code == 0, result.output
    assert [(c.settings.set_pad_token, c.settings.mixed_precision) for c in seen] == [
        ("", "auto"), ("<unk>", "bf16"), (None, "auto")]
    plain = seen[2].settings
    assert (plain.lr, plain.trainable, plain.batch_size, plain.num_epochs) == (None, None, 8, 10)
    assert seen[2].data.splits == ("train", "validation")  # training prepares these two only
