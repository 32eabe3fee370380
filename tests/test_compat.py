"""One test per shim in ``rvl_llm.compat`` (transformers' private or renamed API): when a new
transformers release breaks one, the failing test names the shim to change."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from rvl_llm import compat
from rvl_llm.pipeline.manifest import TemplateIds


def tiny_llama(num_labels: int | None = None) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=0,
                         num_labels=num_labels or 2)
    model = LlamaForSequenceClassification(config) if num_labels else LlamaForCausalLM(config)
    return model.eval()


def test_cache_kwarg_is_what_the_forward_takes() -> None:
    from transformers import LlamaForCausalLM

    assert compat.cache_kwarg() in inspect.signature(LlamaForCausalLM.forward).parameters


def test_fork_cache_leaves_the_prompt_cache_untouched() -> None:
    model = tiny_llama()
    ids = torch.randint(3, 64, (2, 7))
    cache = compat.new_cache(model)
    with torch.no_grad():
        model(input_ids=ids, use_cache=True, **{compat.cache_kwarg(): cache})
        before = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
        fork = compat.fork_cache(cache)
        fork.batch_repeat_interleave(3)
        feed = torch.randint(3, 64, (6, 2))
        positions = torch.arange(7, 9).expand(6, 2)
        model(input_ids=feed, position_ids=positions, use_cache=True,
              **{compat.cache_kwarg(): fork})
    for layer, (keys, values) in zip(cache.layers, before, strict=True):
        assert torch.equal(layer.keys, keys) and torch.equal(layer.values, values)
    assert fork.layers[0].keys.shape[0] == 6 and fork.layers[0].keys.shape[2] == 9


def test_checkpointing_arguments_are_training_arguments(tmp_path: Path) -> None:
    from transformers import TrainingArguments

    assert compat.checkpointing_arguments(False) == {}
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                             **compat.checkpointing_arguments(True))
    name = next(iter(compat.checkpointing_arguments(True)))
    assert getattr(args, name) is True


def overrides_trainer(tmp_path: Path, model: torch.nn.Module, *, head_only: bool = False):
    import datasets

    from rvl_llm.train.trainer import RvlTrainer

    rows = [{"input_ids": [1] * n, "label": n % 2, "length": n} for n in (3, 9, 5, 12, 7, 4)]
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                             per_device_train_batch_size=2, remove_unused_columns=False,
                             train_sampling_strategy="group_by_length",
                             length_column_name="length")
    template = TemplateIds("classifier", (1,), (), (), (), 40)
    return RvlTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                      template=template, class_names=("a", "b"), pad_token_id=0,
                      head_only=head_only)


def test_train_sampler_is_length_grouped_from_a_list(tmp_path: Path) -> None:
    from transformers.trainer_pt_utils import LengthGroupedSampler

    trainer = overrides_trainer(tmp_path, tiny_llama(num_labels=2))
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler)
    assert list(sampler.lengths) == [3, 9, 5, 12, 7, 4]
    assert sorted(sampler) == list(range(6))


def test_head_only_save_writes_the_head_alone(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    model = tiny_llama(num_labels=2)
    model.requires_grad_(False)
    model.score.requires_grad_(True)
    trainer = overrides_trainer(tmp_path, model, head_only=True)
    trainer._save(str(tmp_path / "saved"))
    assert set(load_file(str(tmp_path / "saved" / "model.safetensors"))) == {"score.weight"}


def test_head_only_load_does_not_warn_of_the_missing_base(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from collections import namedtuple

    trainer = overrides_trainer(tmp_path, tiny_llama(num_labels=2), head_only=True)
    LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])
    with caplog.at_level("WARNING"):
        trainer._issue_warnings_after_load(LoadResult(["model.embed_tokens.weight"], []))
    assert "missing" not in caplog.text.lower()


def test_close_progress_bars_closes_what_progress_callback_opened(tmp_path: Path) -> None:
    from transformers import ProgressCallback, TrainerState

    trainer = overrides_trainer(tmp_path, tiny_llama(num_labels=2))
    progress = next(c for c in trainer.callback_handler.callbacks
                    if isinstance(c, ProgressCallback))
    state = TrainerState(max_steps=4, is_local_process_zero=True, is_world_process_zero=True)
    progress.on_train_begin(trainer.args, state, trainer.control)
    assert progress.training_bar is not None
    compat.close_progress_bars(trainer)
    assert progress.training_bar is None


def test_reporting_integrations_come_from_the_registry() -> None:
    from rvl_llm.compat import reporting_integrations

    known, installed = reporting_integrations()
    assert {"wandb", "tensorboard", "mlflow"} <= set(known)
    assert set(installed) <= set(known)


def test_attention_implementations_name_eager_and_sdpa() -> None:
    from rvl_llm.compat import attention_implementations

    names = attention_implementations()
    assert {"eager", "sdpa", "flash_attention_2"} <= set(names)


def test_tied_weight_names_name_the_tied_output_layer(models: Path) -> None:
    """transformers' private ``_tied_weights_keys``: a tied model names lm_head.weight, so
    reloading the best checkpoint does not warn that it is missing."""
    from transformers import AutoModelForCausalLM

    from rvl_llm.compat import tied_weight_names

    model = AutoModelForCausalLM.from_pretrained(models / "tiny-llama3")
    assert tied_weight_names(model) == ("lm_head.weight",)
    model.config.tie_word_embeddings = False
    assert tied_weight_names(model) == ()
