"""template.py: budgets, truncation and completion-only masks from token ids (no tokenizer)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from rvl_llm.dataclass_json import from_json
from rvl_llm.errors import RvlError
from rvl_llm.pipeline.manifest import IGNORE_INDEX, TemplateIds
from rvl_llm.pipeline.template import build_row, make_template

BOS, EOS = 1, 2
DIRECTIVE = (30, 31, 32)
# Class names of 1, 3 and 2 tokens, each followed by EOS: the longest completion is 4 ids.
COMPLETIONS = ((40, EOS), (41, 42, 43, EOS), (44, 45, EOS))


def generative(max_len: int) -> TemplateIds:
    return make_template(
        "generative", max_len, prefix=[BOS], directive=DIRECTIVE, completions=COMPLETIONS
    )


def test_budget_reserves_the_longest_label() -> None:
    # 1 BOS + 3 directive + 4 longest completion = 8 fixed tokens.
    assert generative(20).document_budget == 12
    assert generative(9).document_budget == 1


@pytest.mark.parametrize("max_len", [1, 5, 8])
def test_budget_without_room_for_one_document_token_names_max_len(max_len: int) -> None:
    with pytest.raises(RvlError) as err:
        generative(max_len)
    message = err.value.message
    assert message.startswith(f"--max-len {max_len}:")
    assert "needs 8 tokens" in message
    assert "\n" not in message


def test_classifier_budget_counts_prefix_and_suffix() -> None:
    template = make_template("classifier", 10, prefix=[101], suffix=[102])
    assert template.document_budget == 8
    assert template.completions == ()
    with pytest.raises(RvlError, match="--max-len 2"):
        make_template("classifier", 2, prefix=[101], suffix=[102])


@pytest.mark.parametrize("label", range(len(COMPLETIONS)))
def test_generative_row_masks_everything_but_the_completion(label: int) -> None:
    template = generative(20)
    document = [100, 101, 102, 103, 104]
    row = build_row(document, label, template)
    prompt = [BOS, *document, *DIRECTIVE]
    assert row.input_ids == prompt + list(COMPLETIONS[label])
    assert row.prompt_len == len(prompt)
    assert row.labels == [IGNORE_INDEX] * len(prompt) + list(COMPLETIONS[label])
    assert row.truncated is False


def test_truncation_cuts_the_document_only_and_keeps_the_same_prompt_for_every_class() -> None:
    template = generative(12)  # budget 4
    document = list(range(100, 110))
    rows = [build_row(document, label, template) for label in range(len(COMPLETIONS))]
    prompt = [BOS, 100, 101, 102, 103, *DIRECTIVE]
    for label, row in enumerate(rows):
        assert row.truncated is True
        assert row.input_ids[: row.prompt_len] == prompt
        assert row.input_ids[row.prompt_len :] == list(COMPLETIONS[label])
        assert len(row.input_ids) <= 12
    # The class with the longest name fills max-len exactly.
    assert len(rows[1].input_ids) == 12


def test_truncated_flag_at_the_budget_boundary() -> None:
    template = generative(12)  # budget 4
    assert build_row([5, 6, 7, 8], 0, template).truncated is False
    assert build_row([5, 6, 7, 8, 9], 0, template).truncated is True
    assert build_row([], 0, template).input_ids == [BOS, *DIRECTIVE, 40, EOS]


def test_empty_document_row_is_prefix_directive_completion() -> None:
    row = build_row([], 2, generative(20))
    assert row.input_ids == [BOS, *DIRECTIVE, 44, 45, EOS]
    assert row.labels == [IGNORE_INDEX] * 4 + [44, 45, EOS]
    assert row.prompt_len == 4


def test_classifier_row_has_no_labels_and_keeps_the_suffix() -> None:
    template = make_template("classifier", 6, prefix=[101], suffix=[102])  # budget 4
    row = build_row([7, 8, 9, 10, 11, 12], 3, template)
    assert row.input_ids == [101, 7, 8, 9, 10, 102]
    assert row.labels is None
    assert row.prompt_len == 6
    assert row.truncated is True


def test_template_ids_round_trip_through_json() -> None:
    template = generative(20)
    data = json.loads(json.dumps(asdict(template)))
    assert from_json(TemplateIds, data) == template
    assert template.max_completion_len == 4
