"""The Trainer's knobs: every flag reaches TrainingArguments, step validation and checkpoints,
pruning that keeps the best, --max-steps, early stopping (and resuming it), --trainer-arg,
mixed precision auto, and a one-line refusal for every bad value.

Tiny runs: tiny-mistral head-only classifier, max-len 64, 8 train documents, batch 4, so 2
optimiser steps an epoch. Accuracies are forced where the test needs a best validation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import CORPUS_LABELS as LABELS
from test_train_cli import assert_refused
from test_train_runs import config

from rvl_llm.cli import main
from rvl_llm.errors import RvlError
from rvl_llm.train import model as train_model
from rvl_llm.train.arguments import parse_value, trainer_arg_values, training_arguments
from rvl_llm.train.config import TrainConfig
from rvl_llm.train.run import run_train


def settings_config(tmp_path: Path, **flags: Any) -> TrainConfig:
    return TrainConfig.from_flags(data_dir=tmp_path, name="run", model="m", log_dir=tmp_path,
                                  lr=1e-3, trainable="lora", **flags)


def args_of(tmp_path: Path, has_validation: bool = True, **flags: Any) -> Any:
    return training_arguments(settings_config(tmp_path, **flags), None, has_validation)


def tiny(tmp_path: Path, models: Path, **flags: Any) -> TrainConfig:
    return config(tmp_path, models / "tiny-mistral", trainable="classifier", **flags)


def checkpoints(cfg: TrainConfig) -> list[str]:
    return sorted((p.name for p in cfg.run_dir.glob("checkpoint-*")),
                  key=lambda name: int(name.split("-")[1]))


def evals(cfg: TrainConfig, folder: str) -> list[tuple[int, float]]:
    state = json.loads((cfg.run_dir / folder / "trainer_state.json").read_text())
    return [(e["step"], e["eval_accuracy"]) for e in state["log_history"] if "eval_accuracy" in e]


def force_accuracies(monkeypatch: pytest.MonkeyPatch, by_step: dict[int, float]) -> None:
    """Validation at step N reports accuracy ``by_step[N]``."""
    from rvl_llm.train import trainer
    from rvl_llm.train.trainer import RvlTrainer

    real_evaluate, real_metrics = RvlTrainer.evaluate, trainer.compute_metrics
    step = [0]

    def evaluate(self: RvlTrainer, *args: Any, **kwargs: Any) -> Any:
        step[0] = self.state.global_step
        return real_evaluate(self, *args, **kwargs)

    def compute_metrics(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**real_metrics(*args, **kwargs), "accuracy": by_step[step[0]]}

    monkeypatch.setattr(RvlTrainer, "evaluate", evaluate)
    monkeypatch.setattr(trainer, "compute_metrics", compute_metrics)


# ---- every flag reaches TrainingArguments ---------------------------------------------------

def test_the_defaults_are_what_ran_before(tmp_path: Path) -> None:
    args = args_of(tmp_path)
    assert (args.lr_scheduler_type.value, args.warmup_steps, args.max_grad_norm,
            args.logging_steps) == ("cosine", 0.1, 0.3, 10)
    assert (args.eval_strategy.value, args.save_strategy.value, args.load_best_model_at_end,
            args.metric_for_best_model) == ("epoch", "epoch", True, "eval_accuracy")
    assert (args.save_total_limit, args.max_steps, args.optim.value) == (
        2, -1, "adamw_torch_fused")
    assert args.report_to == [] or args.report_to in ("none", ["none"])


def test_each_flag_reaches_training_arguments(tmp_path: Path) -> None:
    args = args_of(tmp_path, eval_steps=5, save_steps=10, save_total_limit=3, max_steps=40,
                   warmup_ratio=0.05, lr_scheduler="linear", max_grad_norm=1.0,
                   logging_steps=2, optim="adamw_torch", tf32=False,
                   trainer_args=("dataloader_num_workers=2", "adam_beta2=0.95",
                                 "lr_scheduler_kwargs={\"power\": 2}", "eval_on_start=true"))
    assert (args.eval_strategy.value, args.eval_steps, args.save_strategy.value,
            args.save_steps) == ("steps", 5, "steps", 10)
    assert (args.save_total_limit, args.max_steps, args.warmup_steps) == (3, 40, 0.05)
    assert (args.lr_scheduler_type.value, args.max_grad_norm, args.logging_steps) == (
        "linear", 1.0, 2)
    assert (args.optim.value, args.tf32, args.load_best_model_at_end) == (
        "adamw_torch", False, True)
    assert (args.dataloader_num_workers, args.adam_beta2, args.lr_scheduler_kwargs,
            args.eval_on_start) == (2, 0.95, {"power": 2}, True)
    assert args_of(tmp_path, save_total_limit=0).save_total_limit is None  # keep all


@pytest.mark.parametrize(("flags", "expected"), [
    ({}, ("epoch", None, "epoch", True)),
    ({"eval_steps": 3}, ("steps", 3, "steps", True)),  # checkpoints follow validation
    ({"save_steps": 4}, ("steps", 4, "steps", True)),  # validation follows checkpoints
    ({"eval_steps": 2, "save_steps": 6}, ("steps", 2, "steps", True)),
    ({"eval_steps": 3, "save": "never"}, ("steps", 3, "no", False)),
    ({"eval_steps": 3, "save": "end"}, ("steps", 3, "no", False)),
])
def test_validation_and_checkpoints_go_together(tmp_path: Path, flags: dict[str, Any],
                                                expected: tuple[Any, ...]) -> None:
    args = args_of(tmp_path, **flags)
    assert (args.eval_strategy.value, args.eval_steps, args.save_strategy.value,
            args.load_best_model_at_end) == expected
    if expected[2] == "steps":
        assert args.save_steps == flags.get("save_steps", flags.get("eval_steps"))


def test_without_validation_there_is_no_best_to_keep(tmp_path: Path) -> None:
    args = args_of(tmp_path, has_validation=False, eval_steps=3)
    assert (args.eval_strategy.value, args.save_strategy.value, args.save_steps,
            args.load_best_model_at_end) == ("no", "steps", 3, False)


def test_attention_implementation_reaches_from_pretrained(models: Path) -> None:
    from rvl_llm.inference.base_model import load_base_model

    model = load_base_model(str(models / "tiny-mistral"), generative=True, labels=LABELS,
                            pad_token_id=0, dtype=None, quantization=None,
                            attn_implementation="eager")
    assert model.config._attn_implementation == "eager"


# ---- --trainer-arg --------------------------------------------------------------------------

@pytest.mark.parametrize(("hint", "text", "value"), [
    (int, "4", 4), (float, "0.5", 0.5), (bool, "yes", True), (bool, "False", False),
    (int | None, "none", None), (float | None, "3", 3.0), (str | None, "abc", "abc"),
    (dict | str | None, '{"a": 1}', {"a": 1}), (dict | str | None, "a=1,b=2", "a=1,b=2"),
    (list[str] | str | None, '["x", "y"]', ["x", "y"]),
])
def test_trainer_arg_values_parse_by_the_field_type(hint: Any, text: str, value: Any) -> None:
    parsed = parse_value("key", text, hint)
    assert parsed == value and type(parsed) is type(value)


def test_trainer_arg_that_does_not_parse_names_the_type() -> None:
    with pytest.raises(RvlError, match=r"--trainer-arg key=abc: not a int"):
        parse_value("key", "abc", int)


def test_trainer_arg_refuses_unknown_keys_naming_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(RvlError, match=r"dataloader_num_worker: not a field .* did you mean "
                       r"dataloader_num_workers\?"):
        trainer_arg_values(settings_config(tmp_path, trainer_args=("dataloader_num_worker=2",)))
    with pytest.raises(RvlError, match=r"did you mean learning_rate \(set by --lr\)\?"):
        trainer_arg_values(settings_config(tmp_path, trainer_args=("learning_rat=1",)))


@pytest.mark.parametrize(("key", "flag"), [
    ("learning_rate", "--lr"), ("save_total_limit", "--save-total-limit"),
    ("warmup_steps", "--warmup-ratio"), ("gradient_checkpointing", "--gradient-checkpointing"),
    ("load_best_model_at_end", "final/"), ("label_names", "rvl-llm itself"),
])
def test_trainer_arg_refuses_keys_our_flags_own(tmp_path: Path, key: str, flag: str) -> None:
    with pytest.raises(RvlError, match=rf"--trainer-arg {key}: set by .*{flag}"):
        trainer_arg_values(settings_config(tmp_path, trainer_args=(f"{key}=1",)))


# ---- mixed precision ------------------------------------------------------------------------

@pytest.mark.parametrize(("choice", "cuda", "bf16", "resolved", "said"), [
    # CPU: fp32 (bf16 autocast is emulated and slower there)
    ("auto", False, True, "fp32", "train: --mixed-precision auto: fp32 (no CUDA GPU; "
                                  "--mixed-precision bf16 to autocast on CPU)"),
    ("auto", True, True, "bf16", "train: --mixed-precision auto: bf16 (the GPU supports it)"),
    ("auto", True, False, "fp16", "train: --mixed-precision auto: fp16 (the GPU has no bf16; "
                                  "loss scaling on)"),
    ("fp32", True, True, "fp32", None), ("no", True, True, "fp32", None),
    (None, True, True, "fp32", None),
    ("bf16", False, True, "bf16", None),  # asked for: CPU bf16 autocast
])
def test_mixed_precision_auto_says_what_it_chose(
        monkeypatch: pytest.MonkeyPatch, choice: str | None, cuda: bool, bf16: bool,
        resolved: str, said: str | None) -> None:
    """What runs is named (never None, so the recipe records it), and auto says its choice."""
    monkeypatch.setattr(train_model, "cuda_available", lambda: cuda)
    monkeypatch.setattr(train_model, "bf16_supported", lambda: bf16)
    lines: list[str] = []
    assert train_model.resolve_mixed_precision(choice, lines.append) == resolved
    assert lines == ([said] if said else [])


def test_mixed_precision_defaults_to_auto_and_fp32_turns_it_off(tmp_path: Path) -> None:
    assert settings_config(tmp_path).settings.mixed_precision == "auto"
    cfg = settings_config(tmp_path, mixed_precision="fp32")
    args = training_arguments(cfg, train_model.resolve_mixed_precision("fp32"), True)
    assert not args.bf16 and not args.fp16


# ---- tiny runs ------------------------------------------------------------------------------

def test_eval_steps_validate_and_save_every_n_steps(models: Path, corpus: Path,
                                                    tmp_path: Path) -> None:
    cfg = tiny(tmp_path, models, num_epochs=2, eval_steps=1, save_total_limit=0)
    run_train(cfg)
    assert checkpoints(cfg) == ["checkpoint-1", "checkpoint-2", "checkpoint-3", "checkpoint-4"]
    assert [step for step, _ in evals(cfg, "checkpoint-4")] == [1, 2, 3, 4]
    for folder in checkpoints(cfg):
        assert (cfg.run_dir / folder / "recipe.json").is_file()  # complete


def test_save_steps_alone_saves_and_validates_every_n_steps(models: Path, corpus: Path,
                                                            tmp_path: Path) -> None:
    cfg = tiny(tmp_path, models, num_epochs=2, save_steps=3, save_total_limit=0)
    run_train(cfg)
    # every 3 steps, and at the end (step 4)
    assert checkpoints(cfg) == ["checkpoint-3", "checkpoint-4"]
    assert [step for step, _ in evals(cfg, "checkpoint-4")] == [3, 4]


def test_save_total_limit_keeps_the_newest_and_the_best(models: Path, corpus: Path,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    force_accuracies(monkeypatch, {1: 0.75, 2: 0.5, 3: 0.25, 4: 0.5})
    cfg = tiny(tmp_path, models, num_epochs=2, eval_steps=1, save_total_limit=2)
    result = run_train(cfg)
    assert checkpoints(cfg) == ["checkpoint-1", "checkpoint-4"]  # 4 saves, the best is the first
    recipe = json.loads((cfg.run_dir / "final" / "recipe.json").read_text())
    assert recipe["validation_accuracy"] == recipe["best_validation_accuracy"] == 0.75
    assert result.final_accuracy == 0.75
    from safetensors.torch import load_file

    best = load_file(str(cfg.run_dir / "checkpoint-1" / "model.safetensors"))
    final = load_file(str(cfg.run_dir / "final" / "model.safetensors"))
    assert best.keys() == final.keys()
    assert all(bool((best[k] == final[k]).all()) for k in best)


def test_max_steps_stops_the_run(models: Path, corpus: Path, tmp_path: Path) -> None:
    cfg = tiny(tmp_path, models, num_epochs=5, max_steps=1)
    run_train(cfg)
    assert checkpoints(cfg) == ["checkpoint-1"]
    state = json.loads((cfg.run_dir / "checkpoint-1" / "trainer_state.json").read_text())
    assert (state["global_step"], state["max_steps"]) == (1, 1)
    assert (cfg.run_dir / "final" / "recipe.json").is_file()


# Improves at step 2, then two validations without improvement (patience 2): stops at step 4.
EARLY = {1: 0.25, 2: 0.5, 3: 0.5, 4: 0.25, 5: 1.0, 6: 1.0}


def test_early_stopping_stops_after_n_validations_without_improvement(
    models: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    force_accuracies(monkeypatch, EARLY)
    cfg = tiny(tmp_path, models, num_epochs=3, eval_steps=1, early_stopping_patience=2)
    result = run_train(cfg)
    assert checkpoints(cfg) == ["checkpoint-2", "checkpoint-4"]
    assert [step for step, _ in evals(cfg, "checkpoint-4")] == [1, 2, 3, 4]
    assert result.final_accuracy == result.best_accuracy == 0.5


class Killed(Exception):
    """Stands in for a kill -9 right after a checkpoint is written."""


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [3, 4])  # counting; at the step where it stopped
def test_resumed_early_stopping_stops_where_the_uninterrupted_run_did(
    kill_at: int, models: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from safetensors.torch import load_file

    from rvl_llm.train.trainer import RvlTrainer

    force_accuracies(monkeypatch, EARLY)
    common = {"num_epochs": 3, "eval_steps": 1, "early_stopping_patience": 2,
              "save_total_limit": 0}
    straight = tiny(tmp_path, models, name="straight", **common)
    run_train(straight)
    real_save = RvlTrainer._save_checkpoint

    def save_then_die(self: RvlTrainer, *args: Any, **kwargs: Any) -> None:
        real_save(self, *args, **kwargs)
        if self.state.global_step == kill_at:
            raise Killed

    monkeypatch.setattr(RvlTrainer, "_save_checkpoint", save_then_die)
    killed = tiny(tmp_path, models, name="killed", **common)
    with pytest.raises(Killed):
        run_train(killed)
    monkeypatch.setattr(RvlTrainer, "_save_checkpoint", real_save)
    result = run_train(tiny(tmp_path, models, name="killed", resume=True, **common))
    assert checkpoints(killed) == checkpoints(straight) == [f"checkpoint-{n}" for n in range(1, 5)]
    assert result.final_accuracy == 0.5
    expected = load_file(str(straight.run_dir / "final" / "model.safetensors"))
    resumed = load_file(str(killed.run_dir / "final" / "model.safetensors"))
    assert all(bool((expected[k] == resumed[k]).all()) for k in expected)


def test_early_stopping_without_validation_is_refused_before_writing(
    models: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rvl_llm.train import data
    from rvl_llm.train import run as train_run

    real = data.validation_dataset
    # run.py holds its own name for the function: patch that one.
    monkeypatch.setattr(train_run, "validation_dataset", lambda m: real(m).select([]))
    cfg = tiny(tmp_path, models, early_stopping_patience=2)
    with pytest.raises(RvlError, match="--early-stopping-patience 2: needs validation"):
        run_train(cfg)
    assert not cfg.run_dir.exists()


# ---- bad values: one line, exit 1, nothing written -------------------------------------------

@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "data").mkdir()
    return tmp_path


@pytest.mark.parametrize(("flags", "needles"), [
    (["--eval-steps", "0"], ["--eval-steps 0", "positive"]),
    (["--save-steps", "-2"], ["--save-steps -2"]),
    (["--save-steps", "3", "--eval-steps", "2"], ["--save-steps 3", "multiple of --eval-steps"]),
    (["--save", "never", "--save-steps", "2"], ["--save-steps 2", "--save never"]),
    (["--save-total-limit", "-1"], ["--save-total-limit -1"]),
    (["--max-steps", "0"], ["--max-steps 0"]),
    (["--early-stopping-patience", "0"], ["--early-stopping-patience 0"]),
    (["--warmup-ratio", "1"], ["--warmup-ratio 1.0", "[0, 1)"]),
    (["--max-grad-norm", "-1"], ["--max-grad-norm -1.0"]),
    (["--logging-steps", "0"], ["--logging-steps 0"]),
    (["--lr-scheduler", "cosin"], ["--lr-scheduler cosin", "did you mean cosine?"]),
    (["--optim", "adamw_torh"], ["--optim adamw_torh", "did you mean adamw_torch?"]),
    (["--report-to", "wandb"], ["--report-to wandb", "not installed"]),
    (["--report-to", "wandbb"], ["--report-to wandbb", "did you mean wandb?"]),
    (["--report-to", "none,wandb"], ["--report-to none,wandb", "stand alone"]),
    (["--attn-implementation", "flash_attention_2"], ["flash_attention_2", "flash-attn"]),
    (["--attn-implementation", "spda"], ["--attn-implementation spda", "did you mean sdpa?"]),
    (["--tf32"], ["--tf32", "CUDA"]),
    (["--trainer-arg", "dataloader_num_workers"], ["--trainer-arg", "KEY=VALUE"]),
    (["--trainer-arg", "seed=1", "--trainer-arg", "seed=2"], ["--trainer-arg seed", "twice"]),
    (["--trainer-arg", "dataloader_num_worker=2"], ["did you mean dataloader_num_workers?"]),
    (["--trainer-arg", "learning_rate=1"], ["--trainer-arg learning_rate", "--lr"]),
    (["--trainer-arg", "dataloader_num_workers=two"], ["dataloader_num_workers=two", "int"]),
    # Issue 14: what the Trainer refused only once the run folder was written, or ignored.
    (["--trainer-arg", "dataloader_num_workers=-1"], ["dataloader_num_workers=-1", "0 or more"]),
    (["--trainer-arg", "deepspeed=missing.json"], ["deepspeed=missing.json", "no such file"]),
    (["--trainer-arg", "fsdp_config=missing.json"], ["fsdp_config=missing.json", "no such file"]),
    (["--trainer-arg", "push_to_hub=true"], ["push_to_hub=true", "offline", "rvl-llm export"]),
    (["--trainer-arg", "resume_from_checkpoint=log/run/checkpoint-2"],
     ["--trainer-arg resume_from_checkpoint", "does not use it", "--resume"]),
    (["--trainer-arg", "overwrite_output_dir=true"], ["overwrite_output_dir", "--overwrite"]),
])
def test_bad_values_are_one_line_and_write_nothing(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                   flags: list[str], needles: list[str]) -> None:
    monkeypatch.setattr(train_model, "cuda_available", lambda: False)
    base = ["train", "-d", "data", "--name", "run", "-m", "model", "--trainable", "lora"]
    assert_refused(CliRunner().invoke(main, [*base, *flags]), *needles)
    assert not (workdir / "log").exists() and not (workdir / "data_cache").exists()


def test_mixed_precision_flag_forms(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rvl_llm.train import run

    seen: list[TrainConfig] = []
    monkeypatch.setattr(run, "run_train", seen.append)
    for args in ([], ["--mixed-precision"], ["--mixed-precision", "fp32"],
                 ["--mixed-precision", "no"], ["--trainer-arg", "a=1,2", "--trainer-arg", "b=c"]):
        result = CliRunner().invoke(main, ["train", "-d", "data", "--name", "r", "-m", "m", *args])
        assert result.exit_code == 0, result.output
    assert [c.settings.mixed_precision for c in seen] == ["auto", "auto", "fp32", "no", "auto"]
    assert seen[-1].settings.trainer_args == ("a=1,2", "b=c")  # commas stay in a value
    assert seen[0].settings.trainer_args == ()


def test_push_to_hub_without_a_login_is_refused_before_writing(
    workdir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Online but not logged in: refused before the run folder exists (the Trainer failed only
    when it started, leaving a run folder that a rerun took for an unfinished run)."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    monkeypatch.setattr(train_model, "cuda_available", lambda: False)
    base = ["train", "-d", "data", "--name", "run", "-m", "model", "--trainable", "lora"]
    assert_refused(CliRunner().invoke(main, [*base, "--trainer-arg", "push_to_hub=true"]),
                   "push_to_hub=true", "not logged in", "hf auth login")
    assert not (workdir / "log").exists() and not (workdir / "data_cache").exists()


# ---- secrets: used, never written -----------------------------------------------------------

SECRET = "hf_sEcReT0123456789"


def test_a_secret_trainer_arg_reaches_the_trainer_but_not_its_pickle(tmp_path: Path) -> None:
    import pickle

    args = args_of(tmp_path, trainer_args=(f"hub_token={SECRET}", "dataloader_num_workers=0"))
    assert args.hub_token == SECRET  # the Trainer's own copy keeps it
    pickled = pickle.dumps(args)  # what torch.save writes as training_args.bin
    assert SECRET.encode() not in pickled
    again = pickle.loads(pickled)
    assert again.hub_token is None and again.dataloader_num_workers == 0
    assert SECRET.encode() not in pickle.dumps(args_of(tmp_path))  # no secret: as before


def test_a_secret_trainer_arg_is_never_written(models: Path, corpus: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny real run given hub_token, with a checkpoint, then exported: no file anywhere holds
    the token (recipe.json, config.yaml, training_args.bin, the export), and the run says so."""
    import sys

    monkeypatch.chdir(tmp_path)
    args = ["train", "-d", str(corpus), "--name", "run", "-m", str(models / "tiny-mistral"),
            "--max-len", "64", "-n", "1", "-b", "4", "--labels", str(tmp_path / "labels.txt"),
            "--log-dir", "log", "--cache-dir", "cache", "--trainable", "classifier",
            "--trainer-arg", f"hub_token={SECRET}", "--trainer-arg", "dataloader_num_workers=0"]
    monkeypatch.setattr(sys, "argv", ["rvl-llm", *args])  # the recipe records the command line
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "hub_token: a secret" in result.output and "never writes it" in result.output
    run = tmp_path / "log" / "run"
    assert list(run.glob("checkpoint-*/training_args.bin"))  # the pickle is there, checked below
    result = CliRunner().invoke(main, ["export", "-c", str(run / "final"), "-o", "exported"])
    assert result.exit_code == 0, result.output
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p for p in written if SECRET.encode() in p.read_bytes()] == []
    recipe = json.loads((run / "final" / "recipe.json").read_text())
    assert recipe["settings"]["trainer_args"] == ["dataloader_num_workers=0"]
    assert "hub_token=***" in recipe["command"]
    config_text = (run / "config.yaml").read_text()
    assert "Not written (secrets): --trainer-arg hub_token" in config_text
