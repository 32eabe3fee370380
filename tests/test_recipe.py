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
from rvl_llm.options import CLI_KEY, field_default
from rvl_llm.pipeline.cli import prepare_command
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.predict.cli import predict_command
from rvl_llm.predict.config import PredictConfig
from rvl_llm.recipe import Quantization, Recipe, TrainSettings
from rvl_llm.train.cli import train_command
from rvl_llm.train.config import TrainConfig


def recipe(tmp_path: Path, **changes: Any) -> Recipe:
    data = PrepareConfig(data_dir=tmp_path / "data", model=str(tmp_path / "model"),
                         generative=True, labels=("a", "b c"), cache_dir=tmp_path / "cache",
                         splits=("train", "validation"), skip_bad_files=True)
    values: dict[str, Any] = {
        "run_name": "run", "model": "tiny", "model_location": str(tmp_path / "model"),
        "data": data, "settings": TrainSettings(trainable="qlora", lr=2e-4),
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


def test_a_version_2_recipe_reads_with_the_settings_added_since(tmp_path: Path) -> None:
    """Checkpoints trained before data sources, subsets and the Trainer's knobs existed still
    load: the settings added since take their defaults, which reproduce what version 2 did, or
    the value version 2 had where the default differs (it kept every checkpoint)."""
    import json

    from rvl_llm.recipe import ADDED_IN

    recipe = Recipe(
        run_name="old", model="m", model_location="/m",
        data=PrepareConfig(data_dir=tmp_path, model="/m", labels=("a", "b")),
        settings=TrainSettings(trainable="full", mixed_precision=None), pad_token="<p>",
        lora_targets="all-linear", quantization=None, mixed_precision=None, cache_key="k",
        versions={}, command="c")
    recipe.write(tmp_path)
    data = json.loads((tmp_path / "recipe.json").read_text())
    data["recipe_version"] = 2
    for part in ("data", "settings"):
        for name in ADDED_IN[3][part][1]:
            del data[part][name]
    (tmp_path / "recipe.json").write_text(json.dumps(data))
    old = Recipe.read(tmp_path)
    assert old == replace(recipe, settings=replace(recipe.settings, save_total_limit=0))
    # fp32 was the default then, written as null: the new default (auto) does not replace it
    assert old.settings.mixed_precision is None
    assert (old.settings.lr_scheduler, old.settings.warmup_ratio, old.settings.max_grad_norm,
            old.settings.logging_steps) == ("cosine", 0.1, 0.3, 10)
    data["recipe_version"] = 1
    (tmp_path / "recipe.json").write_text(json.dumps(data))
    with pytest.raises(RvlError, match="recipe version 1"):
        Recipe.read(tmp_path)


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
