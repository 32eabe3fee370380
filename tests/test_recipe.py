"""The typed run recipe and the pieces it stands on: strict JSON reading of frozen dataclasses,
and click options whose defaults come from the config fields (written once)."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any

import click
import pytest

from rvl_llm.errors import RvlError
from rvl_llm.evaluate.cli import eval_command
from rvl_llm.evaluate.config import EvalConfig
from rvl_llm.export.cli import export_command
from rvl_llm.export.config import ExportConfig
from rvl_llm.options import CLI_KEY, field_default, long_option
from rvl_llm.pipeline.cli import prepare_command
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.prompt import PromptSpec
from rvl_llm.predict.cli import predict_command
from rvl_llm.predict.config import PredictConfig
from rvl_llm.recipe import RECIPE_VERSION, Quantization, Recipe, TrainSettings
from rvl_llm.train.cli import train_command
from rvl_llm.train.config import TrainConfig


def recipe(tmp_path: Path, **changes: Any) -> Recipe:
    data = PrepareConfig(data_dir=tmp_path / "data", model=str(tmp_path / "model"),
                         generative=True, labels=("a", "b c"), cache_dir=tmp_path / "cache",
                         splits=("train", "validation"), skip_bad_files=True)
    values: dict[str, Any] = {
        "run_name": "run", "model": "tiny", "model_location": str(tmp_path / "model"),
        "data": data, "prompt": PromptSpec(data.prompt_settings, {"tokenizer.json": "0" * 64},
                                           ("a", "b c")),
        "settings": TrainSettings(trainable="qlora", lr=2e-4),
        "pad_token": "<pad>", "lora_targets": ("q_proj", "v_proj"),
        "quantization": Quantization(compute_dtype="fp16"), "mixed_precision": "bf16",
        "cache_key": "abc", "versions": {"torch": "2.13", "trl": None}, "command": "rvl-llm",
        "validation_accuracy": 0.5,
    }
    return Recipe(**{**values, **changes})


def edited(tmp_path: Path, edit: Any) -> Path:
    folder = tmp_path / "final"
    recipe(tmp_path).write(folder)
    data = json.loads((folder / "recipe.json").read_text())
    edit(data)
    (folder / "recipe.json").write_text(json.dumps(data))
    return folder


def test_recipe_round_trips_every_field(tmp_path: Path) -> None:
    written = recipe(tmp_path)
    written.write(tmp_path / "final")
    assert Recipe.read(tmp_path / "final") == written


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.pop("pad_token"), "missing field pad_token"),
        (lambda d: d["data"].pop("max_len"), "missing field data.max_len"),
        (lambda d: d.update(extra=1), "unknown field extra"),
        (lambda d: d["data"].update(max_len="512"), "data.max_len"),
        (lambda d: d["settings"].update(lr="fast"), "settings.lr"),
        (lambda d: d["data"].update(labels=None), "data.labels"),
        (lambda d: d["data"].update(prefix_test=""), "--prefix-test"),
        (lambda d: d["settings"].update(trainable="everything"), "--trainable everything"),
        (lambda d: d.update(quantization={"quant_type": "nf4"}), "quantization.double_quant"),
        (lambda d: d.update(run_name="../../x"), "run name"),
        (lambda d: d.update(recipe_version=1), "recipe version 1"),
    ],
)
def test_a_bad_recipe_is_one_line_naming_the_file_and_field(
    tmp_path: Path, edit: Any, needle: str
) -> None:
    folder = edited(tmp_path, edit)
    with pytest.raises(RvlError, match=None) as err:
        Recipe.read(folder)
    message = err.value.message
    assert str(folder / "recipe.json") in message and needle in message
    assert "\n" not in message


def test_a_recipe_cannot_switch_on_remote_code(tmp_path: Path) -> None:
    folder = edited(tmp_path, lambda d: d["data"].update(trust_remote_code=True))
    assert Recipe.read(folder).data.trust_remote_code is False


def test_a_recipe_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "recipe.json").write_text("{not json")
    with pytest.raises(RvlError, match="unreadable recipe"):
        Recipe.read(tmp_path)
    with pytest.raises(RvlError, match=r"no recipe\.json"):
        Recipe.read(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("command", "configs"),
    [
        (prepare_command, (PrepareConfig,)),
        (train_command, (PrepareConfig, TrainSettings, TrainConfig)),
        (eval_command, (EvalConfig,)),
        (predict_command, (PredictConfig,)),
        (export_command, (ExportConfig,)),
    ],
)
def test_every_option_default_is_the_field_default(command: click.Command,
                                                   configs: tuple[type, ...]) -> None:
    params = {p.name: p for p in command.params}
    for config in configs:
        for f in fields(config):
            if CLI_KEY not in f.metadata or f.name not in params:
                continue
            option = params[f.name]
            default = field_default(f)
            if isinstance(default, tuple) and not option.multiple:  # typed as "a,b,c"
                default = ",".join(default)
            if option.required:
                assert default is MISSING, f"{command.name} {f.name}"
            else:
                assert option.default == default, f"{command.name} {f.name}"


def test_train_flags_fill_the_nested_configs(tmp_path: Path) -> None:
    cfg = TrainConfig.from_flags(data_dir=tmp_path, model="m", name="n", max_len=64, lr=1e-3,
                                 skip_bad_files=True, overwrite=True)
    assert cfg.data == replace(PrepareConfig(data_dir=tmp_path, model="m", max_len=64,
                                             skip_bad_files=True), splits=("train", "validation"))
    assert cfg.settings == TrainSettings(lr=1e-3) and cfg.overwrite
    with pytest.raises(TypeError, match="max_length"):
        TrainConfig.from_flags(data_dir=tmp_path, model="m", name="n", max_length=64)


def test_a_recipe_of_another_version_is_refused_in_one_line(tmp_path: Path) -> None:
    """0.x: no migrations. A recipe of an older (or newer) version is refused, naming the file,
    its version and what to do, on one line."""
    for version in (3, 2, 99, None):
        folder = edited(tmp_path, lambda d, v=version: d.update(recipe_version=v))
        with pytest.raises(RvlError) as err:
            Recipe.read(folder)
        assert err.value.message == (
            f"{folder / 'recipe.json'}: recipe version {version} is not this rvl-llm's "
            f"{RECIPE_VERSION}; evaluate it with the rvl-llm that trained it, or train again")
        assert "\n" not in err.value.message


def test_a_new_prompt_setting_is_one_field(tmp_path: Path) -> None:
    """Nothing lists the prompt settings by hand: every field of PromptSettings is, by
    construction, an option of prepare, train and zero-shot eval, part of the resolved prompt the
    cache key hashes and the recipe stores (and reads back), and compared on --resume. A field
    added to PromptSettings passes this test with no other edit."""
    from rvl_llm.dataclass_json import to_json
    from rvl_llm.evaluate.config import ZERO_SHOT_FIELDS
    from rvl_llm.pipeline import cache
    from rvl_llm.pipeline.prompt import PromptSettings
    from rvl_llm.train.run import _resume_identity

    names = [f.name for f in fields(PromptSettings)]
    prepare = {p.name for p in prepare_command.params}
    train = {p.name for p in train_command.params}
    evaluate = set(ZERO_SHOT_FIELDS) | {f.name for f in fields(EvalConfig)}
    for f in fields(PromptSettings):
        if CLI_KEY in f.metadata:
            assert {f.name} <= prepare & train & evaluate, f.name
    written = recipe(tmp_path)
    assert "prompt" in cache.KEY_FIELDS  # the key hashes the spec whole...
    assert list(to_json(written.prompt)["settings"]) == names  # ...and so every setting
    written.write(tmp_path / "final")
    stored = json.loads((tmp_path / "final" / "recipe.json").read_text())
    assert list(stored["prompt"]["settings"]) == names
    assert Recipe.read(tmp_path / "final").prompt == written.prompt
    identity = _resume_identity(written)
    assert all((long_option(f) or f.name) in identity for f in fields(PromptSettings))


def test_a_recipe_never_holds_a_secret(tmp_path: Path) -> None:
    """Issue 14: a --trainer-arg named like a secret is used (in memory) but never written, and
    its value is masked in the recorded command line; other arguments are kept."""
    given = ("hub_token=s3cr3t-1", "api_key=s3cr3t-2", "dataloader_num_workers=2",
             "include_num_input_tokens_seen=all")  # "tokens" is no secret
    command = ("rvl-llm train --trainer-arg hub_token=s3cr3t-1 --trainer-arg=api_key=s3cr3t-2 "
               "--trainer-arg dataloader_num_workers=2")
    made = recipe(tmp_path, settings=TrainSettings(trainable="qlora", lr=2e-4,
                                                   trainer_args=given), command=command)
    path = made.write(tmp_path / "final")
    assert "s3cr3t" not in path.read_text()
    assert made.settings.trainer_args == given  # the run itself still has them
    read = Recipe.read(tmp_path / "final")
    assert read.settings.trainer_args == ("dataloader_num_workers=2",
                                          "include_num_input_tokens_seen=all")
    assert read.command == ("rvl-llm train --trainer-arg hub_token=*** "
                            "--trainer-arg=api_key=*** --trainer-arg dataloader_num_workers=2")
