"""Train pieces on tiny random models built from a config: collators, the completion-only loss,
validation by accuracy in the right row order, config checks. No tokenizer, no files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rvl_llm.dataclass_json import convert
from rvl_llm.errors import RvlError
from rvl_llm.pipeline.manifest import IGNORE_INDEX, TemplateIds
from rvl_llm.presets import load_presets
from rvl_llm.recipe import DEFAULT_LR
from rvl_llm.train.config import TrainConfig, with_preset_defaults
from rvl_llm.train.data import ClassifierCollator, GenerativeCollator
from rvl_llm.train.model import lora_targets
from rvl_llm.train.trainer import completion_loss

EOS = 2
TEMPLATE = TemplateIds(
    mode="generative",
    prefix=(1,),
    suffix=(),
    directive=(5, 6),
    completions=((10, EOS), (11, 12, 13, EOS), (14, EOS)),
    document_budget=40,
)
K = TEMPLATE.max_completion_len  # 4


def tiny_llama(num_labels: int | None = None, seed: int = 0) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=0,
                         num_labels=num_labels or 2)
    model = LlamaForSequenceClassification(config) if num_labels else LlamaForCausalLM(config)
    return model.eval()


def gen_row(doc: list[int], label: int, doc_id: str = "d") -> dict:
    prompt = TEMPLATE.prompt(doc)
    completion = list(TEMPLATE.completions[label])
    ids = prompt + completion
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * len(prompt) + completion,
            "prompt_len": len(prompt), "label": label, "length": len(ids), "doc_id": doc_id,
            "truncated": False}


def gen_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [gen_row(rng.integers(20, 60, size=int(rng.integers(1, 30))).tolist(), i % 3, f"d{i}")
            for i in range(n)]


def test_generative_collator_left_pads_to_multiple_of_8_with_positions() -> None:
    rows = gen_rows(5)
    batch = GenerativeCollator(pad_token_id=0, completion_len=K)(rows)
    width = batch["input_ids"].shape[1]
    assert width % 8 == 0 and width >= max(r["length"] for r in rows)
    for i, row in enumerate(rows):
        n = row["length"]
        assert batch["input_ids"][i, -n:].tolist() == row["input_ids"]
        assert batch["labels"][i, -n:].tolist() == row["labels"]
        assert (batch["input_ids"][i, :-n] == 0).all() and (batch["labels"][i, :-n] == -100).all()
        assert batch["attention_mask"][i].tolist() == [0] * (width - n) + [1] * n
        assert batch["position_ids"][i, -n:].tolist() == list(range(n))
        assert (batch["position_ids"][i, :-n] == 0).all()


def test_collator_pads_short_batches_to_the_completion_window() -> None:
    rows = [gen_row([], 0)]  # 1 + 2 + 2 tokens; the loss reads the last K + 1 = 5 positions
    batch = GenerativeCollator(pad_token_id=0, completion_len=7)(rows)
    assert batch["input_ids"].shape[1] == 8


def test_pad_token_equal_to_eos_keeps_the_completion_eos_label() -> None:
    rows = gen_rows(4)
    batch = GenerativeCollator(pad_token_id=EOS, completion_len=K)(rows)
    labels = batch["labels"]
    assert (labels[:, -1] == EOS).all()  # every completion ends in EOS, labelled
    expected = sum(len(TEMPLATE.completions[r["label"]]) for r in rows)
    assert int((labels != IGNORE_INDEX).sum()) == expected
    pads = batch["attention_mask"] == 0
    assert (batch["input_ids"][pads] == EOS).all() and (labels[pads] == IGNORE_INDEX).all()


def test_classifier_collator_right_pads_with_class_index() -> None:
    rows = [{"input_ids": [1, 5, 6, 7], "label": 3}, {"input_ids": [1, 9], "label": 0}]
    batch = ClassifierCollator(pad_token_id=0)(rows)
    assert batch["input_ids"].tolist() == [[1, 5, 6, 7, 0, 0, 0, 0], [1, 9, 0, 0, 0, 0, 0, 0]]
    assert batch["attention_mask"][1].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert batch["labels"].tolist() == [3, 0]


@pytest.mark.parametrize("num_items", [None, 37])
def test_completion_loss_equals_full_logits_causal_lm_loss(num_items: int | None) -> None:
    model = tiny_llama()
    batch = GenerativeCollator(pad_token_id=0, completion_len=K)(gen_rows(6))
    with torch.no_grad():
        loss, outputs = completion_loss(model, batch, K, num_items)
        kwargs = {} if num_items is None else {"num_items_in_batch": num_items}
        reference = model(**batch, **kwargs).loss  # HF: full logits, shifted labels
    assert outputs.logits.shape[1] == K + 1  # logits only where labels can be
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)


def test_left_padding_does_not_change_a_rows_logits() -> None:
    model = tiny_llama()
    rows = gen_rows(4)
    batch = GenerativeCollator(pad_token_id=0, completion_len=K)(rows)
    alone = GenerativeCollator(pad_token_id=0, completion_len=K)([rows[0]])
    n = rows[0]["length"]
    with torch.no_grad():
        padded = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, -n:]
        single = model(**{k: v for k, v in alone.items() if k != "labels"}).logits[0, -n:]
    torch.testing.assert_close(padded, single, rtol=1e-4, atol=1e-5)


def independent_generative_predictions(model: torch.nn.Module, rows: list[dict]) -> list[int]:
    """Per row, per class: log P(completion | prompt) from one unpadded full forward."""
    predictions = []
    with torch.no_grad():
        for row in rows:
            prompt = row["input_ids"][: row["prompt_len"]]
            scores = []
            for completion in TEMPLATE.completions:
                ids = torch.tensor([prompt + list(completion)])
                logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
                picks = logp[len(prompt) - 1 :].gather(1, torch.tensor(completion)[:, None])
                scores.append(float(picks.sum()))
            predictions.append(int(np.argmax(scores)))
    return predictions


def validation_trainer(tmp_path: Path, model: torch.nn.Module, rows: list[dict],
                       template: TemplateIds, labels: tuple[str, ...]):
    import datasets

    from rvl_llm.train.run import training_arguments
    from rvl_llm.train.trainer import RvlTrainer

    cfg = TrainConfig.from_flags(data_dir=tmp_path, name="t", model="x", log_dir=tmp_path,
                                 batch_size=4, lr=1e-3, generative=template.mode == "generative")
    dataset = datasets.Dataset.from_list(rows)
    collator = (GenerativeCollator(0, template.max_completion_len) if cfg.data.generative
                else ClassifierCollator(0))
    return RvlTrainer(model=model, args=training_arguments(cfg, None, True),
                      train_dataset=dataset, eval_dataset=dataset, data_collator=collator,
                      template=template, class_names=labels, pad_token_id=0)


def test_validation_pairs_predictions_with_their_own_labels(tmp_path: Path) -> None:
    """Labels set to what the model predicts for each row: any reordering (the Trainer's eval
    sampler groups by length) that pairs a prediction with another row's label drops the
    accuracy below 1."""
    model = tiny_llama()
    rows = gen_rows(24, seed=1)
    predicted = independent_generative_predictions(model, rows)
    rows = [gen_row(r["input_ids"][1 : r["prompt_len"] - 2], p, r["doc_id"])  # same prompt
            for r, p in zip(rows, predicted, strict=True)]
    assert len({r["label"] for r in rows}) > 1 and len({r["length"] for r in rows}) > 5
    trainer = validation_trainer(tmp_path, model, rows, TEMPLATE, ("a", "b", "c"))
    assert trainer.args.train_sampling_strategy == "group_by_length"
    metrics = trainer.evaluate()
    assert metrics["eval_accuracy"] == 1.0 and "eval_macro_f1" in metrics


def test_classifier_validation_pairs_predictions_with_their_own_labels(tmp_path: Path) -> None:
    model = tiny_llama(num_labels=3)
    template = TemplateIds("classifier", (1,), (), (), (), 40)
    rng = np.random.default_rng(2)
    rows = []
    for i in range(24):
        ids = [1, *rng.integers(20, 60, size=int(rng.integers(1, 30))).tolist()]
        with torch.no_grad():
            label = int(model(input_ids=torch.tensor([ids])).logits.argmax())
        rows.append({"input_ids": ids, "prompt_len": len(ids), "label": label,
                     "length": len(ids), "doc_id": f"c{i}", "truncated": False})
    assert len({r["label"] for r in rows}) > 1
    metrics = validation_trainer(tmp_path, model, rows, template, ("a", "b", "c")).evaluate()
    assert metrics["eval_accuracy"] == 1.0


def test_config_checks_name_the_option(tmp_path: Path) -> None:
    base = {"data_dir": tmp_path, "name": "r", "model": "m"}
    cases = [
        ({"batch_size": 0}, "--batch-size"),
        ({"num_epochs": -1}, "--num-epochs"),
        ({"lr": 0.0}, "--lr"),
        ({"lora_dropout": 1.0}, "--lora-dropout"),
        ({"trainable": "classifier", "generative": True}, "--trainable classifier"),
        ({"resume": True, "overwrite": True}, "--resume"),
        ({"name": "a/b"}, "--name"),
        ({"save": "sometimes"}, "--save"),
    ]
    for extra, option in cases:
        with pytest.raises(RvlError, match=option):
            TrainConfig.from_flags(**{**base, **extra})


def test_preset_defaults_fill_only_what_the_user_left_open(tmp_path: Path) -> None:
    preset = load_presets()["tiny-llama3"]
    cfg = TrainConfig.from_flags(data_dir=tmp_path, name="r", model="tiny-llama3")
    filled = with_preset_defaults(cfg, preset).settings
    assert (filled.lr, filled.trainable) == (preset.learning_rate, preset.trainable)
    mine = with_preset_defaults(TrainConfig.from_flags(
        data_dir=tmp_path, name="r", model="tiny-llama3", lr=3e-5, trainable="lora"), preset)
    assert (mine.settings.lr, mine.settings.trainable) == (3e-5, "lora")
    plain = with_preset_defaults(cfg, None).settings
    assert (plain.lr, plain.trainable) == (DEFAULT_LR, "qlora")


class FakeTokenizer:
    def __init__(self, pad: str | None, unk: str | None, eos: str | None) -> None:
        self.pad_token, self.unk_token, self.eos_token = pad, unk, eos

    def get_vocab(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(["<pad>", "<unk>", "</s>", "<|eot_id|>", "a"])}


def test_pad_token_choice() -> None:
    from rvl_llm.inference.base_model import resolve_pad_token

    preset = load_presets()["tiny-llama3"]  # pad_token <|eot_id|>
    llama3 = FakeTokenizer(None, None, "</s>")
    mistral = FakeTokenizer(None, "<unk>", "</s>")
    padded = FakeTokenizer("<pad>", "<unk>", "</s>")
    assert resolve_pad_token(llama3, None, preset) == "<|eot_id|>"
    assert resolve_pad_token(llama3, None, None) == "</s>"  # no pad, no unk: eos
    assert resolve_pad_token(mistral, None, None) == "<unk>"
    assert resolve_pad_token(padded, None, preset) == "<pad>"  # its own, when not asked
    assert resolve_pad_token(padded, "", preset) == "<|eot_id|>"  # the bare flag replaces it
    assert resolve_pad_token(padded, "a", None) == "a"
    with pytest.raises(RvlError, match="--set-pad-token <nope>"):
        resolve_pad_token(padded, "<nope>", None)


def test_lora_targets_read_back_from_a_recipe_as_written() -> None:
    """A recipe's JSON gives a tuple back: a list recorded at train time made --resume see a
    changed run."""
    presets = list(load_presets().values())
    listing = replace(presets[0], lora_targets=("q_proj", "v_proj"))  # no shipped one lists
    for preset in (*presets, listing, None):
        targets = lora_targets(preset)
        assert isinstance(targets, str | tuple)
        assert convert(str | tuple[str, ...], json.loads(json.dumps(targets)), "") == targets
