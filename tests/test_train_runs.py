"""``run_train`` end to end on CPU with the tiny sample models (real Mistral and Llama 3
tokenizers): every trainable mode, the run folder, the recipe, and reloading for evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import CORPUS_LABELS as LABELS

from rvl_llm.inference.checkpoint import load_checkpoint
from rvl_llm.recipe import Recipe
from rvl_llm.train import model as train_model
from rvl_llm.train.config import TrainConfig
from rvl_llm.train.run import TrainResult, run_train

RECIPE_FIELDS = {
    "recipe_version", "run_name", "model", "model_location", "data", "settings", "pad_token",
    "lora_targets", "quantization", "mixed_precision", "cache_key", "versions", "command",
    "validation_accuracy", "best_validation_accuracy", "prompt", "class_weights", "exported",
}


def config(tmp_path: Path, model: Path, **overrides: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data", "name": "run", "model": str(model), "max_len": 64,
        "num_epochs": 1, "batch_size": 4, "lr": 1e-3, "labels_file": tmp_path / "labels.txt",
        "log_dir": tmp_path / "log", "cache_dir": tmp_path / "cache",
    }
    return TrainConfig.from_flags(**{**values, **overrides})


def snapshot_initial_state(monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """The model's weights as training starts (after freezing and adding adapters)."""
    initial: dict[str, torch.Tensor] = {}
    real = train_model.make_trainable

    def make_trainable(*args: Any, **kwargs: Any) -> Any:
        model = real(*args, **kwargs)
        initial.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        initial["__trainable__"] = [n for n, p in model.named_parameters() if p.requires_grad]
        return model

    monkeypatch.setattr(train_model, "make_trainable", make_trainable)
    return initial


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype == b.dtype:  # bitwise: 4-bit weights packed in a float dtype hold NaN patterns
        return a.shape == b.shape and torch.equal(a.contiguous().view(torch.uint8),
                                                  b.contiguous().view(torch.uint8))
    return torch.equal(a.float(), b.float())  # e.g. a norm upcast for k-bit training


def check_weights(initial: dict[str, Any], loaded: Any) -> None:
    """Trained weights changed, frozen weights did not (the TRL PEFT test)."""
    trainable = {n.replace(".modules_to_save.default", "") for n in initial["__trainable__"]}
    final = loaded.state_dict()
    changed, kept = [], []
    for name, before in initial.items():
        if name == "__trainable__" or name not in final:
            continue
        same = _same(before, final[name])
        param = name.replace(".modules_to_save.default", "")
        (kept if same else changed).append(param)
        if param not in trainable and not name.endswith(".original_module.weight"):
            assert same, f"frozen weight {name} changed"
    trained = [n for n in changed if n in trainable]
    assert trained, f"no trainable weight changed (trainable: {sorted(trainable)[:4]})"


def check_run_folder(result: TrainResult, cfg: TrainConfig, trainable: str) -> dict[str, Any]:
    run = cfg.run_dir
    final = json.loads((run / "final" / "recipe.json").read_text())
    assert set(final) == RECIPE_FIELDS
    assert json.loads((run / "recipe.json").read_text()) == final
    checkpoints = sorted(run.glob("checkpoint-*"))
    assert len(checkpoints) == cfg.settings.num_epochs
    assert json.loads((checkpoints[-1] / "recipe.json").read_text())["validation_accuracy"] == (
        final["validation_accuracy"])
    weights = {"lora": "adapter_model.safetensors", "qlora": "adapter_model.safetensors",
               "full": "model.safetensors", "classifier": "model.safetensors"}[trainable]
    assert (run / "final" / weights).is_file() and (run / "final" / "tokenizer.json").is_file()
    assert final["settings"]["trainable"] == trainable and final["data"]["labels"] == list(LABELS)
    assert final["data"]["generative"] == cfg.data.generative
    assert final["data"]["max_len"] == cfg.data.max_len
    assert (final["quantization"] is not None) == (trainable == "qlora")
    # --mixed-precision auto (the default) records what it chose: fp32 on CPU, never null.
    assert final["settings"]["mixed_precision"] == "auto"
    assert final["mixed_precision"] == ("bf16" if torch.cuda.is_available() else "fp32")
    data = final["data"]
    assert Path(data["data_dir"]).is_absolute() and Path(data["cache_dir"]).is_absolute()
    assert data["labels_file"] is None and data["trust_remote_code"] is False
    assert result.final_accuracy == final["validation_accuracy"] is not None
    recipe = Recipe.read(run / "final")  # every field checked
    assert recipe.settings.trainable == trainable and recipe.labels == LABELS
    return final


def validation_accuracy(loaded: Any, recipe: dict[str, Any]) -> float:
    from rvl_llm.inference.scoring import predict
    from rvl_llm.pipeline.manifest import Manifest

    manifest = Manifest.load(Path(recipe["data"]["cache_dir"]) / recipe["cache_key"])
    predictions = predict(loaded.model, manifest.dataset("validation"), manifest.template,
                          pad_token_id=loaded.pad_token_id, progress=False)
    return float((predictions.true == predictions.predicted).mean())


@pytest.mark.parametrize(
    ("name", "generative", "trainable"),
    [
        ("tiny-mistral", False, "classifier"),
        ("tiny-llama3", False, "lora"),
        ("tiny-mistral", False, "qlora"),
        ("tiny-mistral", False, "full"),
        ("tiny-mistral", True, "lora"),
        ("tiny-llama3", True, "qlora"),
        ("tiny-mistral", True, "full"),
    ],
)
def test_train_mode_writes_a_reloadable_run(
    name: str, generative: bool, trainable: str, models: Path, corpus: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    initial = snapshot_initial_state(monkeypatch)
    cfg = config(tmp_path, models / name, generative=generative, trainable=trainable)
    result = run_train(cfg)
    if not torch.cuda.is_available():
        assert "train: --mixed-precision auto: fp32 (no CUDA GPU;" in capsys.readouterr().out
    recipe = check_run_folder(result, cfg, trainable)
    loaded = load_checkpoint(cfg.run_dir / "final")
    assert not loaded.model.training
    assert loaded.tokenizer.pad_token == recipe["pad_token"] == loaded.recipe.pad_token
    assert loaded.pad_token_id == loaded.tokenizer.convert_tokens_to_ids(recipe["pad_token"])
    check_weights(initial, loaded.model)
    if name == "tiny-llama3":  # no preset here: Llama 3 has no pad and no unk, so eos pads
        assert recipe["pad_token"] == "<|end_of_text|>" == loaded.tokenizer.eos_token
    accuracy = validation_accuracy(loaded, recipe)
    if trainable == "qlora":  # the reloaded head is in the 4-bit compute dtype, not fp32
        assert abs(accuracy - recipe["validation_accuracy"]) <= 0.25
    else:
        assert accuracy == recipe["validation_accuracy"]


@pytest.mark.parametrize(("save", "checkpoints"), [("never", 0), ("end", 1)])
def test_save_choices(save: str, checkpoints: int, models: Path, corpus: Path,
                      tmp_path: Path) -> None:
    cfg = config(tmp_path, models / "tiny-mistral", trainable="classifier", num_epochs=2,
                 save=save)
    run_train(cfg)
    assert len(list(cfg.run_dir.glob("checkpoint-*"))) == checkpoints
    assert (cfg.run_dir / "final" / "recipe.json").is_file()  # eval always has final/
    load_checkpoint(cfg.run_dir / "final")


def test_adapter_that_does_not_match_the_model(models: Path, corpus: Path,
                                               tmp_path: Path) -> None:
    from rvl_llm.errors import RvlError

    cfg = config(tmp_path, models / "tiny-mistral", trainable="lora", save="never")
    run_train(cfg)
    recipe_path = cfg.run_dir / "final" / "recipe.json"
    recipe = json.loads(recipe_path.read_text())
    other = tmp_path / "narrower"  # same architecture and names, half the width
    config_json = json.loads((models / "tiny-mistral" / "config.json").read_text())
    config_json.update(hidden_size=32, intermediate_size=64)
    from transformers import AutoConfig, AutoModelForCausalLM

    other.mkdir()
    (other / "config.json").write_text(json.dumps(config_json))
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(other)).save_pretrained(other)
    recipe["model_location"] = str(other)
    recipe_path.write_text(json.dumps(recipe))
    with pytest.raises(RvlError, match="does not match"):
        load_checkpoint(cfg.run_dir / "final")


def test_overwrite_replaces_a_finished_run(models: Path, corpus: Path, tmp_path: Path) -> None:
    from rvl_llm.errors import RvlError

    cfg = config(tmp_path, models / "tiny-mistral", trainable="classifier", save="never")
    run_train(cfg)
    stale = cfg.run_dir / "checkpoint-99"  # what a run writes, left by the first one
    stale.mkdir()
    (stale / "trainer_state.json").write_text("{}")
    with pytest.raises(RvlError, match=r"--resume: .* trainable 'classifier'"):
        run_train(config(tmp_path, models / "tiny-mistral", trainable="full", resume=True))
    with pytest.raises(RvlError, match=r"--resume: .* --max-len 64, this run asks for 48"):
        run_train(config(tmp_path, models / "tiny-mistral", trainable="classifier", max_len=48,
                         resume=True))
    assert stale.exists()
    run_train(config(tmp_path, models / "tiny-mistral", trainable="classifier", save="never",
                     overwrite=True))
    assert not stale.exists()
    assert (cfg.run_dir / "final" / "recipe.json").is_file()


class Killed(Exception):
    """Stands in for a kill -9 right after a checkpoint is written."""


@pytest.mark.slow
def test_resume_after_a_kill_gives_the_same_weights(models: Path, corpus: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import load_file

    from rvl_llm.train.trainer import RvlTrainer

    # Generative LoRA with dropout: the data order and the dropout masks must both resume.
    common = {"generative": True, "trainable": "lora", "num_epochs": 2}
    straight = config(tmp_path, models / "tiny-mistral", name="straight", **common)
    run_train(straight)
    first = straight.run_dir / "checkpoint-2"  # a checkpoint folder reloads like final/
    recipe = json.loads((first / "recipe.json").read_text())
    assert validation_accuracy(load_checkpoint(first), recipe) == recipe["validation_accuracy"]

    real_save = RvlTrainer._save_checkpoint

    def save_then_die(self: RvlTrainer, *args: Any, **kwargs: Any) -> None:
        real_save(self, *args, **kwargs)
        raise Killed

    monkeypatch.setattr(RvlTrainer, "_save_checkpoint", save_then_die)
    killed = config(tmp_path, models / "tiny-mistral", name="killed", **common)
    with pytest.raises(Killed):
        run_train(killed)
    assert not (killed.run_dir / "final").exists()
    assert [p.name for p in killed.run_dir.glob("checkpoint-*")] == ["checkpoint-2"]
    monkeypatch.setattr(RvlTrainer, "_save_checkpoint", real_save)
    run_train(config(tmp_path, models / "tiny-mistral", name="killed", resume=True, **common))

    expected = load_file(str(straight.run_dir / "final" / "adapter_model.safetensors"))
    resumed = load_file(str(killed.run_dir / "final" / "adapter_model.safetensors"))
    assert expected.keys() == resumed.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)
    before = json.loads((straight.run_dir / "final" / "recipe.json").read_text())
    after = json.loads((killed.run_dir / "final" / "recipe.json").read_text())
    assert after["validation_accuracy"] == before["validation_accuracy"]


@pytest.mark.slow
def test_two_process_data_parallel_run(models: Path, corpus: Path, tmp_path: Path) -> None:
    """``accelerate launch --cpu --num_processes 2`` (gloo): one cache entry built once,
    one final folder, validation printed once per epoch."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a free port: other test runs may be launching too
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        # The shipped DDP config (torchrun underneath; accelerate's --cpu would start a single
        # process): without a GPU, train runs the processes on CPU with gloo.
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(root / "accelerate_configs" / "ddp.yaml"), "--num_processes", "2",
        "--main_process_port", str(port), "-m", "rvl_llm",
        "train", "-d", str(tmp_path / "data"), "--labels", str(tmp_path / "labels.txt"),
        "--name", "ddp", "-m", str(models / "tiny-mistral"), "--max-len", "64", "-n", "2",
        "-b", "2", "-l", "1e-3", "--trainable", "lora", "-g",
        "--log-dir", str(tmp_path / "log"), "--cache-dir", str(tmp_path / "cache"),
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    entries = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert len(entries) == 1 and (entries[0] / "manifest.json").is_file()
    assert done.stderr.count("built train") + done.stdout.count("built train") == 1
    assert done.stdout.count("validation accuracy") == 3  # epoch 1, epoch 2, the final line
    assert done.stdout.count("(4 documents)") == 2  # both shares of the validation gathered
    run = tmp_path / "log" / "ddp"
    # 8 documents, 2 per process and step, 2 processes: 2 steps an epoch (4 alone).
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    recipe = json.loads((run / "final" / "recipe.json").read_text())
    # The gathered validation equals scoring the final weights in one process.
    assert validation_accuracy(load_checkpoint(run / "final"), recipe) == (
        recipe["validation_accuracy"])
