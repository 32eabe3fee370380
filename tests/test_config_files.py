"""``--config FILE`` on every command, and the ``config.yaml`` a train run writes.

The commands' run functions are replaced by ones that capture the frozen config they are given,
so these tests build configs from files without loading a model, except the round trip: a tiny
real training run whose ``config.yaml`` trains it again to the same recipe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from test_train_cli import assert_refused

from rvl_llm.cli import main
from rvl_llm.config_file import COMMAND_LINE_ONLY, config_keys
from rvl_llm.evaluate.config import EvalConfig
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.prompt import DEFAULT_RESPONSE_TEMPLATE
from rvl_llm.predict.config import PredictConfig
from rvl_llm.train.cli import train_command
from rvl_llm.train.config import RUN_CONFIG_NAME, TrainConfig, write_run_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The config each command hands its run function (which does nothing else)."""
    from rvl_llm.evaluate import report as report_module
    from rvl_llm.evaluate import run as eval_run
    from rvl_llm.pipeline import prepare as prepare_run
    from rvl_llm.predict import run as predict_run
    from rvl_llm.train import run as train_run

    seen: dict[str, Any] = {}

    def capture(name: str, result: Any) -> Callable[..., Any]:
        def run(cfg: Any, *args: Any, **kwargs: Any) -> Any:
            seen[name] = cfg
            return result

        return run

    prepared = SimpleNamespace(notes=[], summary_lines=lambda: [], root=Path("shards"))
    monkeypatch.setattr(train_run, "run_train", capture("train", None))
    monkeypatch.setattr(prepare_run, "run_prepare", capture("prepare", prepared))
    monkeypatch.setattr(eval_run, "run_eval", capture("eval", None))  # None: not the main rank
    monkeypatch.setattr(predict_run, "run_predict", capture("predict", SimpleNamespace(
        is_main=False)))
    monkeypatch.setattr(report_module, "run_report", capture("report", "report written"))
    return seen


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def accepted_train(captured: dict[str, Any], *args: str) -> TrainConfig:
    """The config `rvl-llm train ARGS` hands its run function; the command must accept ARGS."""
    result = invoke("train", *args)
    assert result.exit_code == 0, result.output
    return captured["train"]


TRAIN_YAML = """\
# a comment
data: corpus
name: from-yaml
model: some/model
max-len: 128          # - spelling
lora_rank: 16         # _ spelling
generative: true
data-files: [train=a.jsonl, validation=b.jsonl]
mixed-precision: bf16
lr: 3.0e-4
"""

TRAIN_TOML = """\
data = "corpus"
name = "from-toml"
model = "some/model"
max_len = 128
lora-rank = 16
generative = true
data_files = "train=a.jsonl,validation=b.jsonl"
mixed-precision = "bf16"
lr = 3e-4
"""


@pytest.mark.parametrize(("file_name", "text"), [("run.yaml", TRAIN_YAML),
                                                  ("run.yml", TRAIN_YAML),
                                                  ("run.toml", TRAIN_TOML)])
def test_train_config_file(file_name: str, text: str, workdir: Path,
                           captured: dict[str, Any]) -> None:
    cfg = accepted_train(captured, "--config", str(write(workdir / file_name, text)))
    assert cfg.name == ("from-toml" if file_name.endswith(".toml") else "from-yaml")
    assert cfg.data.data_dir == Path("corpus") and cfg.data.model == "some/model"
    assert cfg.data.max_len == 128 and cfg.data.generative is True
    assert cfg.data.data_files == ("train=a.jsonl", "validation=b.jsonl")
    assert cfg.data.splits == ("train", "validation")
    assert cfg.settings.lora_rank == 16 and cfg.settings.mixed_precision == "bf16"
    assert cfg.settings.lr == pytest.approx(3e-4)
    # Everything the file does not name keeps its default.
    assert cfg.settings.lora_alpha == 8 and cfg.data.response_template == (
        DEFAULT_RESPONSE_TEMPLATE) and cfg.settings.trainable is None


def test_command_line_overrides_the_file(workdir: Path, captured: dict[str, Any]) -> None:
    path = write(workdir / "run.yaml", TRAIN_YAML + "progress: false\n")
    cfg = accepted_train(captured, "--config", str(path), "--max-len", "256", "-r", "2",
                         "--name", "other", "--data-files", "train=c.jsonl", "--progress")
    assert cfg.name == "other" and cfg.data.max_len == 256 and cfg.settings.lora_rank == 2
    assert cfg.data.data_files == ("train=c.jsonl",) and cfg.data.progress is True
    assert cfg.data.generative is True  # from the file, not overridden
    # The order does not matter: the file is read before any other option.
    result = invoke("train", "--max-len", "256", "--config", str(path))
    assert result.exit_code == 0 and captured["train"].data.max_len == 256


def test_null_and_bare_flag_values(workdir: Path, captured: dict[str, Any]) -> None:
    path = write(workdir / "run.yaml", "data: corpus\nname: n\nmodel: m\nmax-len: null\n"
                 "mixed-precision: true\nset-pad-token: true\nlabels: null\n")
    cfg = accepted_train(captured, "--config", str(path))
    assert cfg.data.max_len == 512  # null: the option's default
    assert cfg.settings.mixed_precision == "auto"  # true: as the bare --mixed-precision
    assert cfg.settings.set_pad_token == ""  # as the bare --set-pad-token
    assert cfg.data.labels_file is None


@pytest.mark.parametrize(("file_name", "text", "key", "nearest"), [
    ("bad.yaml", "data: corpus\nmax-lenn: 3\n", "max-lenn", "max-len"),
    ("bad.toml", 'data = "corpus"\nlora_rnk = 3\n', "lora_rnk", "lora-rank"),
    ("bad.yaml", "splits: train\n", "splits", "split-file"),  # prepare's, not train's
])
def test_unknown_key_names_the_nearest(file_name: str, text: str, key: str, nearest: str,
                                       workdir: Path, captured: dict[str, Any]) -> None:
    path = write(workdir / file_name, text)
    assert_refused(invoke("train", "--config", str(path)), str(path), f"unknown key '{key}'",
                   f"did you mean '{nearest}'?")
    assert "train" not in captured and sorted(p.name for p in workdir.iterdir()) == [file_name]


@pytest.mark.parametrize(("text", "option"), [
    ("max-len: abc\n", "'--max-len': 'abc' is not a valid integer"),
    ("generative: maybe\n", "'-g' / '--generative': 'maybe' is not a valid boolean"),
    ("trainable: half\n", "'--trainable': 'half' is not one of"),
    ("lr: [1, 2]\n", "--lr takes one value, not a list"),
    ("name: {a: 1}\n", "--name takes a value, not a table"),
])
def test_wrong_type_names_the_option(text: str, option: str, workdir: Path,
                                     captured: dict[str, Any]) -> None:
    path = write(workdir / "run.yaml", "data: corpus\nmodel: m\n" + text)
    assert_refused(invoke("train", "--config", str(path), "--name", "n"), str(path), option)
    assert "train" not in captured


@pytest.mark.parametrize(("file_name", "text", "where"), [
    ("bad.yaml", "data: corpus\nname: [run\nmodel: m\n", "line 3"),
    ("bad.yaml", "data: corpus\n  name: run\n", "line 2"),
    ("bad.toml", 'data = "corpus"\nname = \nmodel = "m"\n', "line 2"),
])
def test_malformed_file_names_the_line(file_name: str, text: str, where: str, workdir: Path,
                                       captured: dict[str, Any]) -> None:
    path = write(workdir / file_name, text)
    kind = "YAML" if file_name.endswith(".yaml") else "TOML"
    assert_refused(invoke("train", "--config", str(path)), str(path), f"not valid {kind}", where)
    assert "train" not in captured


def test_unreadable_files(workdir: Path, captured: dict[str, Any]) -> None:
    assert_refused(invoke("prepare", "--config", "missing.yaml"), "missing.yaml", "no such file")
    (workdir / "folder.yaml").mkdir()
    assert_refused(invoke("prepare", "--config", "folder.yaml"), "folder.yaml", "cannot read")
    write(workdir / "run.json", "{}")
    assert_refused(invoke("prepare", "--config", "run.json"), "run.json", ".yaml, .yml or .toml")
    write(workdir / "list.yaml", "- data\n- corpus\n")
    assert_refused(invoke("prepare", "--config", "list.yaml"), "list.yaml", "mapping", "list")
    write(workdir / "twice.yaml", "max-len: 3\nmax_len: 4\n")
    assert_refused(invoke("prepare", "--config", "twice.yaml"), "twice.yaml", "'max-len'",
                   "'max_len'", "--max-len")
    (workdir / "latin1.yaml").write_bytes(b"suffix: \xe9\n")
    assert_refused(invoke("prepare", "--config", "latin1.yaml"), "latin1.yaml", "UTF-8")
    assert not captured and not (workdir / "data_cache").exists()


def test_an_empty_file_sets_nothing(workdir: Path, captured: dict[str, Any]) -> None:
    write(workdir / "empty.yaml", "# nothing yet\n")
    result = invoke("prepare", "--config", "empty.yaml", "-d", "corpus", "-m", "m")
    assert result.exit_code == 0, result.output
    assert captured["prepare"] == PrepareConfig(data_dir=Path("corpus"), model="m")


def test_prepare_config_file(workdir: Path, captured: dict[str, Any]) -> None:
    write(workdir / "prepare.toml", 'data = "corpus"\nmodel = "tiny-llama3"\nmax_len = 96\n'
          'generative = true\nsplits = ["train", "test"]\nresponse-template = "\\nClass:"\n'
          'skip-bad-files = true\nlabels = "labels.txt"\ncache_dir = "shards"\n')
    result = invoke("prepare", "--config", "prepare.toml")
    assert result.exit_code == 0, result.output
    assert captured["prepare"] == PrepareConfig(
        data_dir=Path("corpus"), model="tiny-llama3", max_len=96, generative=True,
        splits=("train", "test"), response_template="\nClass:", skip_bad_files=True,
        labels_file=Path("labels.txt"), cache_dir=Path("shards"))
    write(workdir / "prepare.yaml", "data: corpus\nmodel: m\nsplits: validation, test\n")
    assert invoke("prepare", "--config", "prepare.yaml").exit_code == 0
    assert captured["prepare"].splits == ("validation", "test")


def test_eval_config_file(workdir: Path, captured: dict[str, Any]) -> None:
    write(workdir / "eval.yaml", "checkpoint: log/run/final\nmax_len: 256\nsplit: validation\n"
          "decode: generate\nout-dir: results\nclass-chunk: 4\n")
    result = invoke("eval", "--config", "eval.yaml", "-b", "2")
    assert result.exit_code == 0, result.output
    assert captured["eval"] == EvalConfig(
        checkpoint=Path("log/run/final"), max_len=256, split="validation", decode="generate",
        out_dir=Path("results"), class_chunk=4, batch_size=2)


def test_eval_zero_shot_config_file(workdir: Path, captured: dict[str, Any]) -> None:
    write(workdir / "eval.yaml", "model: tiny-llama3\ngenerative: true\ndata: corpus\n"
          "max-len: 128\n")
    result = invoke("eval", "--config", "eval.yaml")
    assert result.exit_code == 0, result.output
    cfg: EvalConfig = captured["eval"]
    assert cfg.checkpoint is None and cfg.zero_shot is not None
    assert cfg.zero_shot.model == "tiny-llama3" and cfg.zero_shot.max_len == 128
    assert cfg.zero_shot.splits == ("test",)


def test_predict_config_file(workdir: Path, captured: dict[str, Any]) -> None:
    write(workdir / "predict.yaml", "checkpoint: log/run/final\ninputs: [scans, note.txt]\n"
          "out: labels.csv\ntop-k: 5\nallow_skips: true\n")
    result = invoke("predict", "--config", "predict.yaml")
    assert result.exit_code == 0, result.output
    assert captured["predict"] == PredictConfig(
        checkpoint=Path("log/run/final"), inputs=("scans", "note.txt"), out=Path("labels.csv"),
        top_k=5, allow_skips=True)
    # INPUT on the command line replaces the file's; one input may be a plain string.
    assert invoke("predict", "--config", "predict.yaml", "other.jsonl").exit_code == 0
    assert captured["predict"].inputs == ("other.jsonl",)
    write(workdir / "one.yaml", "checkpoint: c\ninputs: my scans\n")
    assert invoke("predict", "--config", "one.yaml").exit_code == 0
    assert captured["predict"].inputs == ("my scans",)


def test_report_and_cache_config_files(workdir: Path, captured: dict[str, Any]) -> None:
    write(workdir / "report.yaml", "out_dir: results\n")
    result = invoke("report", "--config", "report.yaml")
    assert result.exit_code == 0 and captured["report"] == Path("results")
    write(workdir / "cache.yaml", "cache-dir: empty-cache\n")
    (workdir / "empty-cache").mkdir()
    for command in ("ls", "verify"):
        result = invoke("cache", command, "--config", "cache.yaml")
        assert result.exit_code == 0 and "no cache entries in empty-cache" in result.output


def test_every_command_takes_config() -> None:
    from rvl_llm.config_file import CONFIG_PARAM

    commands = [main.commands[name] for name in ("prepare", "train", "eval", "report",
                                                 "predict", "export")]
    cache = main.commands["cache"]
    commands += [cache.commands["ls"], cache.commands["verify"]]  # type: ignore[attr-defined]
    for command in commands:
        assert any(p.name == CONFIG_PARAM for p in command.params), command.name
    keys = config_keys(train_command)
    assert {"data", "max-len", "lora-rank", "skip-bad-rows", "skip-bad-files",
            "progress"} <= set(keys)
    assert "config" not in keys and "splits" not in keys


EXPECTED_EXAMPLES: dict[str, dict[str, Any]] = {
    "mistral-qlora-generative.yaml": {
        "model": "mistral", "generative": True, "max_len": 768, "batch_size": 8,
        "lora_rank": 8, "lora_alpha": 16, "mixed_precision": "auto", "trainable": "qlora"},
    "llama3-unsloth.yaml": {"model": "llama3", "unsloth": True, "generative": True},
    "classifier-head.yaml": {"model": "mistral", "generative": False,
                             "trainable": "classifier"},
    "ddp.yaml": {"model": "mistral", "trainable": "lora", "gradient_accumulation": 2},
}


def test_examples_are_all_checked() -> None:
    assert sorted(p.name for p in EXAMPLES) == sorted(EXPECTED_EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_resolves_into_a_train_config(example: Path, workdir: Path,
                                              captured: dict[str, Any]) -> None:
    cfg = accepted_train(captured, "--config", str(example))
    for name, expected in EXPECTED_EXAMPLES[example.name].items():
        owner = cfg.data if hasattr(cfg.data, name) else cfg.settings
        assert getattr(owner, name) == expected, name


# --- the config.yaml of a train run: a tiny real run, trained again from its file -----------



def test_run_config_reads_back_as_the_resolved_config(tmp_path: Path, workdir: Path,
                                                      captured: dict[str, Any]) -> None:
    """Without training: every train option is written, and the file gives the config back."""
    from rvl_llm.train.config import with_preset_defaults

    (tmp_path / "labels.txt").write_text("a\nb\n")
    cfg = with_preset_defaults(TrainConfig.from_flags(
        data_dir=tmp_path, name="run", model="some/model", log_dir=tmp_path / "log",
        labels_file=Path("../labels.txt"), generative=True, max_len=99, lora_alpha=32,
        data_files=("train=a.jsonl", "test=b.jsonl"), set_pad_token="", resume=True,
        mixed_precision="auto", response_template="\n\nLabel, one line:"), None)
    cfg.run_dir.mkdir(parents=True)
    (workdir / "data_cache").mkdir()  # as a run has made it by then (relative: data_cache)
    path = write_run_config(cfg, cfg.run_dir)
    values = yaml.safe_load(path.read_text())
    offered = {p.name for p in config_keys(train_command).values()}
    assert len(values) == len(offered - set(COMMAND_LINE_ONLY))
    assert values["labels"] == str(tmp_path / "labels.txt")  # absolute, as given
    assert not {"resume", "overwrite", "trust-remote-code"} & set(values)  # command line only
    result = invoke("train", "--config", str(path))
    assert result.exit_code == 0, result.output
    expected = TrainConfig.from_flags(
        data_dir=tmp_path, name="run", model="some/model", log_dir=tmp_path / "log",
        labels_file=tmp_path / "labels.txt", generative=True, max_len=99, lora_alpha=32,
        data_files=("train=a.jsonl", "test=b.jsonl"), set_pad_token="",
        mixed_precision="auto", response_template="\n\nLabel, one line:",
        lr=1e-4, trainable="qlora", cache_dir=(workdir / "data_cache"))
    assert captured["train"] == expected


def _recipe_without_command(path: Path) -> dict[str, Any]:
    recipe = json.loads(path.read_text())
    del recipe["command"]
    return recipe


def test_run_config_trains_the_same_run_again(models: Path, corpus: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths on the command line: written absolute
    result = invoke("train", "-d", "data", "--name", "run", "-m", str(models / "tiny-mistral"),
                    "--max-len", "64", "-n", "1", "-b", "4", "--labels", "labels.txt",
                    "--log-dir", "log", "--cache-dir", "cache", "--trainable", "classifier",
                    "--save", "never")
    assert result.exit_code == 0, result.output
    run = tmp_path / "log" / "run"
    config_path = run / RUN_CONFIG_NAME
    written = config_path.read_text()
    values = yaml.safe_load(written)
    # Every option of `rvl-llm train`, once, under its first long name, but those decided on
    # the command line only.
    options = {p.name: p for p in config_keys(train_command).values()}
    assert len(values) == len(set(options) - set(COMMAND_LINE_ONLY))
    assert values["data"] == str(tmp_path / "data") and values["log-dir"] == str(tmp_path / "log")
    assert values["labels"] == str(tmp_path / "labels.txt")
    assert values["lr"] == 1e-4  # None on the command line: filled in as the run did
    assert values["trainable"] == "classifier" and "overwrite" not in values
    assert values["response-template"] == DEFAULT_RESPONSE_TEMPLATE
    first = _recipe_without_command(run / "final" / "recipe.json")

    # A finished run is not replaced by its own config without --overwrite.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert_refused(invoke("train", "--config", str(config_path)), "finished", "--overwrite")
    result = invoke("train", "--config", str(config_path), "--overwrite")
    assert result.exit_code == 0, result.output
    assert _recipe_without_command(run / "final" / "recipe.json") == first
    assert config_path.read_text() == written
    assert not list(elsewhere.iterdir())  # nothing relative to where it was run from


# --- issue 14: what a file may not decide, and values of the wrong kind -----------------------


@pytest.mark.parametrize(("command", "text", "key"), [
    ("train", "overwrite: true\n", "overwrite"),
    ("train", "resume: true\n", "resume"),
    ("train", "overwrite: false\n", "overwrite"),  # the key itself, whatever its value
    ("train", "trust-remote-code: true\n", "trust-remote-code"),
    ("train", "trust_remote_code: true\n", "trust_remote_code"),
    ("prepare", "trust-remote-code: true\n", "trust-remote-code"),
    ("eval", "trust-remote-code: true\n", "trust-remote-code"),
    ("predict", "trust-remote-code: true\n", "trust-remote-code"),
    ("export", "overwrite: true\n", "overwrite"),
    ("export", "trust-remote-code: true\n", "trust-remote-code"),
])
def test_command_line_only_keys_are_refused(command: str, text: str, key: str, workdir: Path,
                                            captured: dict[str, Any]) -> None:
    path = write(workdir / "run.yaml", text)
    flag = "--" + key.replace("_", "-")
    assert_refused(invoke(command, "--config", str(path)), str(path), f"'{key}'",
                   "command line only", flag)
    assert not captured and sorted(p.name for p in workdir.iterdir()) == ["run.yaml"]


def test_a_config_file_cannot_replace_a_finished_run(workdir: Path) -> None:
    """The run function is the real one: the refusal comes before anything is read or written."""
    final = workdir / "log" / "run" / "final"
    final.mkdir(parents=True)
    (final / "recipe.json").write_text("{}")
    (final / "model.safetensors").write_bytes(b"the trained weights")
    before = {p: p.read_bytes() for p in final.iterdir()}
    path = write(workdir / "run.yaml", f"data: {workdir}\nname: run\nmodel: m\n"
                 f"log-dir: {workdir / 'log'}\noverwrite: true\n")
    assert_refused(invoke("train", "--config", str(path)), "'overwrite'", "--overwrite")
    assert {p: p.read_bytes() for p in final.iterdir()} == before


@pytest.mark.parametrize("command", ["train", "eval", "predict"])
def test_a_config_file_cannot_run_a_models_own_code(command: str, workdir: Path) -> None:
    """A model whose auto_map names its own Python file: a file saying trust-remote-code is
    refused before the model is looked at, so the code never runs."""
    model = workdir / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(
        {"model_type": "evil", "auto_map": {"AutoConfig": "evil.EvilConfig"}}))
    marker = workdir / "ran"
    (model / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    values = {"train": f"data: {workdir}\nname: run\nmodel: {model}\n",
              "eval": f"model: {model}\ndata: {workdir}\n",
              "predict": f"checkpoint: {model}\ninputs: [{workdir}]\n"}[command]
    path = write(workdir / "run.yaml", values + "trust-remote-code: true\n")
    assert_refused(invoke(command, "--config", str(path)), "'trust-remote-code'",
                   "--trust-remote-code")
    assert not marker.exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["model", "run.yaml"]


def test_two_config_files_are_refused(workdir: Path, captured: dict[str, Any]) -> None:
    first = write(workdir / "first.yaml", "max-len: 64\n")
    second = write(workdir / "second.yaml", "lora-rank: 2\n")
    assert_refused(invoke("train", "--config", str(first), "--config", str(second), "-d", "c",
                          "--name", "n", "-m", "m"),
                   "--config given 2 times", "first.yaml", "second.yaml", "give one")
    assert not captured


@pytest.mark.parametrize(("file_name", "text", "needles"), [
    ("run.yaml", "max-len: 64.7\n", ["--max-len takes a whole number, not 64.7"]),
    ("run.yaml", "max-len: 64.0\n", ["--max-len takes a whole number, not 64.0"]),
    ("run.yaml", "max-len: true\n", ["--max-len takes a whole number, not true"]),
    ("run.yaml", "generative: 0\n", ["-g / --generative takes true or false, not 0"]),
    ("run.yaml", "generative: 1\n", ["-g / --generative takes true or false, not 1"]),
    ("run.yaml", "tf32: 1\n", ["--tf32 takes true or false, not 1"]),
    ("run.yaml", "lr: false\n", ["--lr takes a number, not false"]),
    ("run.yaml", "trainable: yes\n", ["--trainable takes text, not true"]),  # YAML 1.1's yes
    ("run.yaml", "name: 2024-01-31\n", ["--name takes text", "date 2024-01-31", "quote it"]),
    ("run.yaml", "trainer-arg: [seed=1, true]\n", ["--trainer-arg takes text, not true"]),
    ("run.toml", "max-len = 1979-05-27\n", ["--max-len takes a whole number",
                                            "the date 1979-05-27"]),
    ("run.toml", "max-len = 07:32:00\n", ["--max-len takes a whole number",
                                          "the time 07:32:00"]),
    ("run.toml", "name = 1979-05-27T07:32:00\n", ["--name takes text", "datetime"]),
])
def test_values_of_the_wrong_kind_are_refused(file_name: str, text: str, needles: list[str],
                                              workdir: Path, captured: dict[str, Any]) -> None:
    """As strict as the command line: no 64.7 run at 64, no 0 read as false, no traceback."""
    path = write(workdir / file_name, text)
    assert_refused(invoke("train", "--config", str(path), "-d", "c", "--name", "n", "-m", "m"),
                   str(path), *needles)
    assert not captured


def test_values_of_the_right_kind_still_pass(workdir: Path, captured: dict[str, Any]) -> None:
    path = write(workdir / "run.yaml", "data: c\nname: 123\nmodel: m\nlr: 3\nmax-len: 96\n"
                 "generative: false\ntf32: true\nsuffix: 1.5\n")
    cfg = accepted_train(captured, "--config", str(path))
    assert (cfg.name, cfg.settings.lr, cfg.data.max_len, cfg.data.generative) == (
        "123", 3.0, 96, False)
    assert cfg.settings.tf32 is True and cfg.data.suffix == "1.5"
