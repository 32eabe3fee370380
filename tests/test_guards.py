"""finite_guard: a run whose loss or weights stop being finite stops with one line before it
saves, validates or writes final/. Callback methods called directly on a small Linear, and one
real Trainer run on CPU that diverges halfway."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import save as safetensors_bytes
from transformers import TrainerCallback, TrainerControl, TrainerState

from rvl_llm.train import guards
from rvl_llm.train.guards import NonFiniteTraining, finite_guard, weights_finite

ROOT = Path(__file__).resolve().parent.parent
ARGS = SimpleNamespace(fp16=False)  # the guard reads only this of TrainingArguments


def linear(value: float | None = None) -> torch.nn.Linear:
    model = torch.nn.Linear(3, 2)
    if value is not None:
        with torch.no_grad():
            model.weight[1, 2] = value  # one bad number among finite ones
    return model


def state(step: int = 7, max_steps: int = 100) -> TrainerState:
    return TrainerState(global_step=step, max_steps=max_steps)


def write_good_checkpoint(run_dir: Path, step: int) -> Path:
    folder = run_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    # Real (tiny) weights: a resume point's safetensors must read, as eval reads them.
    (folder / "model.safetensors").write_bytes(safetensors_bytes({"w": np.zeros(2, np.float32)}))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / "recipe.json").write_text(json.dumps({"recipe_version": 1}))
    return folder


def test_nan_weights_stop_the_run_before_a_save(tmp_path: Path) -> None:
    guard = finite_guard(tmp_path)
    assert isinstance(guard, TrainerCallback)
    with pytest.raises(NonFiniteTraining) as err:
        guard.on_step_end(ARGS, state(7), TrainerControl(should_save=True), model=linear(math.nan))
    assert err.value.message == (
        "training diverged at step 7: trainable weights are nan or infinite (lower --lr, or "
        "check --mixed-precision); no checkpoint was saved before it; final/ was not written")


def test_the_message_names_the_last_good_checkpoint(tmp_path: Path) -> None:
    write_good_checkpoint(tmp_path, 9)
    good = write_good_checkpoint(tmp_path, 10)
    (tmp_path / "checkpoint-12").mkdir()  # killed while saving: not good
    with pytest.raises(NonFiniteTraining, match=f"; kept the last good checkpoint {good}; final/ "
                                                "was not written$"):
        finite_guard(tmp_path).on_step_end(ARGS, state(14), TrainerControl(should_save=True),
                                           model=linear(math.inf))


@pytest.mark.parametrize("due", ["save", "evaluate", "last-step"])
@pytest.mark.parametrize("event", ["on_step_end", "on_epoch_end"])
def test_weights_are_checked_whenever_something_is_due(tmp_path: Path, due: str,
                                                       event: str) -> None:
    control = TrainerControl(should_save=due == "save", should_evaluate=due == "evaluate")
    at = state(100 if due == "last-step" else 7)
    guard = finite_guard(tmp_path)
    getattr(guard, event)(ARGS, at, control, model=linear(1.0))  # finite: carries on
    with pytest.raises(NonFiniteTraining, match=r"^training diverged at step"):
        getattr(finite_guard(tmp_path), event)(ARGS, at, control, model=linear(-math.inf))


def test_nothing_is_checked_when_nothing_is_due(tmp_path: Path) -> None:
    guard = finite_guard(tmp_path)
    guard.on_step_end(ARGS, state(7), TrainerControl(), model=linear(math.nan))
    guard.on_epoch_end(ARGS, state(7), TrainerControl(), model=linear(math.nan))


def test_frozen_weights_are_not_checked() -> None:
    model = linear()
    with torch.no_grad():
        model.bias.fill_(math.nan)
    model.bias.requires_grad_(False)  # a frozen base weight is not what training changed
    assert weights_finite(model)
    model.bias.requires_grad_(True)
    assert not weights_finite(model)


def test_a_bad_value_in_any_chunk_of_a_large_weight_is_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guards, "CHUNK", 4)  # the 6 weights of linear() span two chunks
    assert weights_finite(linear())
    assert not weights_finite(linear(math.nan))  # the last weight, in the second chunk


def test_large_finite_half_precision_weights_pass() -> None:
    model = linear().to(torch.float16)
    with torch.no_grad():
        model.weight.fill_(60000.0)  # a sum or a norm of these overflows fp16
    assert weights_finite(model)


@pytest.mark.parametrize(("logs", "problem"), [
    ({"loss": math.nan, "grad_norm": 1.0}, "the loss is nan"),
    ({"loss": 0.5, "grad_norm": math.inf}, "the gradient norm is inf"),
    ({"loss": "nan"}, "the loss is nan"),  # in case a value comes as text
])
def test_a_logged_non_finite_value_stops_the_run(tmp_path: Path, logs: dict[str, Any],
                                                 problem: str) -> None:
    with pytest.raises(NonFiniteTraining) as err:
        finite_guard(tmp_path).on_log(ARGS, state(30), TrainerControl(), logs=logs,
                                      model=linear())
    assert err.value.message.startswith(f"training diverged at step 30: {problem} (lower --lr")


def test_finite_and_other_logs_pass(tmp_path: Path) -> None:
    guard = finite_guard(tmp_path)
    for logs in ({"loss": 0.5, "grad_norm": 2.0, "learning_rate": 1e-4},
                 {"eval_loss": math.nan, "eval_accuracy": 0.5}, {"train_runtime": 1.0}, None):
        guard.on_log(ARGS, state(), TrainerControl(), logs=logs, model=linear())


def test_fp16_overflow_skips_are_tolerated_while_the_weights_are_finite(tmp_path: Path) -> None:
    fp16 = SimpleNamespace(fp16=True)
    logs = {"loss": 0.5, "grad_norm": math.inf}  # the loss scaler skipped this step
    guard = finite_guard(tmp_path)
    guard.on_log(fp16, state(), TrainerControl(), logs=logs, model=linear())
    with pytest.raises(NonFiniteTraining, match="trainable weights are nan or infinite"):
        guard.on_log(fp16, state(), TrainerControl(), logs=logs, model=linear(math.nan))
    with pytest.raises(NonFiniteTraining, match="the loss is nan"):
        guard.on_log(fp16, state(), TrainerControl(), logs={"loss": math.nan}, model=linear())


def test_every_process_stops_together(tmp_path: Path) -> None:
    """The verdict is reduced over the process group (a one-process gloo group here)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        assert weights_finite(linear())
        assert not weights_finite(linear(math.nan))
    finally:
        dist.destroy_process_group()


class Diverging(torch.nn.Module):
    """Regression that returns a NaN loss from its third training step on."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)
        self.calls = 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        loss = ((self.lin(x).squeeze(-1) - labels) ** 2).mean()
        return {"loss": loss * math.nan if self.calls >= 3 else loss}


class WriteRecipe(TrainerCallback):
    """Stands in for the recipe callback: recipe.json last, after the Trainer's save."""

    def on_save(self, args: Any, state: TrainerState, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        (folder / "recipe.json").write_text("{}")


@pytest.mark.parametrize("logging_steps", [1, 100])
def test_a_real_trainer_stops_before_saving_nan_weights(tmp_path: Path,
                                                        logging_steps: int) -> None:
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    data = [{"x": torch.randn(4), "labels": torch.tensor(1.0)} for _ in range(16)]
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=2, learning_rate=1e-3,
        logging_steps=logging_steps, logging_nan_inf_filter=False, save_strategy="steps",
        save_steps=2, report_to="none", use_cpu=True, remove_unused_columns=False,
        disable_tqdm=True)
    trainer = Trainer(model=Diverging(), args=args, train_dataset=data,
                      callbacks=[WriteRecipe(), finite_guard(tmp_path)])
    # Logged every step, step 3's NaN loss stops it; else the weight check before step 4's save.
    problem = "the loss is nan" if logging_steps == 1 else "trainable weights are nan"
    with pytest.raises(NonFiniteTraining, match=f"step {3 if logging_steps == 1 else 4}: "
                                                f"{problem}.*kept the last good checkpoint "
                                                f"{tmp_path / 'checkpoint-2'}; final/"):
        trainer.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2"]
