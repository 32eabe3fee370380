"""The model card (``README.md``) of an exported folder: a pure function of the exported recipe
and the test metrics eval wrote for the checkpoint, so it can be tested without a model.

It says what the model is (base model, data, labels, max-len, mode, template, validation and
test scores) and how to use it with rvl-llm and without it (plain transformers or peft). Every
snippet renders the recipe's resolved prompt (``recipe.prompt``), as predict does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rvl_llm.recipe import Recipe

FOLDER = "path/to/this/folder"  # how the snippets name the exported folder


def model_card(recipe: Recipe, metrics: Sequence[Mapping[str, Any]] = ()) -> str:
    """``recipe``: the recipe written into the export (``recipe.exported`` set); ``metrics``:
    eval's metrics.json records (accuracy, macro_f1, split, max_len, n)."""
    adapter = recipe.trainable in ("lora", "qlora")  # an export recorded as full is merged
    parts = [
        _front_matter(recipe, adapter),
        f"# {recipe.run_name}\n\nA document classifier over OCR text, fine-tuned with "
        f"rvl-llm from `{recipe.model_location}`: it reads a document's "
        f"text and names one of {len(recipe.labels)} classes.\n",
        _facts(recipe, adapter),
        "## Labels\n\n" + "\n".join(f"{i}. {name}" for i, name in enumerate(recipe.labels))
        + "\n",
        _scores(recipe, metrics),
        _WITH_RVL_LLM,
        _without_rvl_llm(recipe, adapter),
        "## Upload\n\nPushing to the Hugging Face hub is left to its own command (this folder "
        "is a complete model repository):\n\n```sh\n"
        f"huggingface-cli upload YOUR-NAME/{recipe.run_name} {FOLDER}\n```\n",
    ]
    return "\n".join(parts)


def _front_matter(recipe: Recipe, adapter: bool) -> str:
    lines = ["---", f"library_name: {'peft' if adapter else 'transformers'}"]
    if not recipe.model_location.startswith(("/", ".")):  # a hub id, not a local folder
        lines.append(f"base_model: {recipe.model_location}")
    tag = "text-generation" if recipe.generative else "text-classification"
    lines += [f"pipeline_tag: {tag}", "tags:", "- rvl-llm", "- document-classification", "---"]
    return "\n".join(lines) + "\n"


def _weights(recipe: Recipe, adapter: bool) -> str:
    info = recipe.exported
    trained = info.trainable if info else recipe.trainable
    if adapter:
        base = " (the base loads in 4-bit NF4)" if recipe.quantization else ""
        return f"{trained} adapter on the base model{base}, not merged"
    dtype = info.dtype if info else (recipe.mixed_precision or "fp32")
    how = {"lora": "LoRA adapter merged into the base weights",
           "qlora": "QLoRA adapter merged into the dequantised 4-bit base weights",
           "classifier": "new classification head on the frozen base",
           "full": "all weights"}[trained]
    return f"full model, {dtype} ({how})"


def _facts(recipe: Recipe, adapter: bool) -> str:
    rows = [
        ("base model", f"`{recipe.model_location}`"),
        ("weights", _weights(recipe, adapter)),
        ("mode", "generative: the class name is scored as the completion of a prompt"
         if recipe.generative else "classifier: a sequence-classification head"),
        ("max-len", f"{recipe.prompt.max_len} tokens (longer documents are cut)"),
    ]
    if recipe.prompt.chat is not None:
        rows.append(("prompt", "chat: the document in a user turn of the tokenizer's chat "
                     "template, the class name as the reply"))
    elif recipe.generative:
        rows.append(("response template",
                     f"`{json.dumps(recipe.prompt.settings.response_template)}`"))
    rows += [
        ("pad token", f"`{recipe.pad_token}`"),
        ("data folder", f"`{recipe.data.data_dir}`"),
        ("validation accuracy", _number(recipe.validation_accuracy)),
    ]
    if recipe.exported is not None:
        rows.append(("exported from", f"`{recipe.exported.source}`"))
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    return f"## Model\n\n| | |\n|---|---|\n{table}\n"


def _scores(recipe: Recipe, metrics: Sequence[Mapping[str, Any]]) -> str:
    head = (f"## Scores\n\nValidation accuracy {_number(recipe.validation_accuracy)} "
            "(these weights, measured in training).")
    if not metrics:
        return head + " No test evaluation was found beside the checkpoint " \
            "(`rvl-llm eval -c` writes one).\n"
    rows = "\n".join(
        f"| {m.get('split', '?')} | {m.get('max_len', '?')} | {m.get('n', '?')} | "
        f"{_number(m.get('accuracy'))} | {_number(m.get('macro_f1'))} |" for m in metrics)
    return (f"{head} Test evaluation by `rvl-llm eval`:\n\n"
            f"| split | max-len | documents | accuracy | macro-F1 |\n|---|---|---|---|---|\n"
            f"{rows}\n")


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "not measured"


_WITH_RVL_LLM = f"""## Use it with rvl-llm

The folder is a checkpoint for every rvl-llm command (its `recipe.json` says how):

```python
from rvl_llm import Classifier

classifier = Classifier.from_checkpoint("{FOLDER}")
print(classifier.predict(["text of a document"])[0].label)
```

```sh
rvl-llm predict -c {FOLDER} documents/        # OCR JSON files, .txt or .jsonl
rvl-llm eval -c {FOLDER}                      # the recipe's data folder, test split
```
"""


def _without_rvl_llm(recipe: Recipe, adapter: bool) -> str:
    labels = json.dumps(list(recipe.labels))
    if recipe.generative:
        return _generative_snippet(recipe, adapter, labels)
    max_len = recipe.prompt.max_len
    if not adapter:
        return f"""## Use it without rvl-llm

`config.json` carries the class names (`id2label`), so the plain transformers pipeline names
the class. Cut documents at max-len as training did:

```python
from transformers import pipeline

classify = pipeline("text-classification", model="{FOLDER}")
print(classify("text of a document", truncation=True, max_length={max_len}))
```
"""
    return f"""## Use it without rvl-llm

The folder is a peft adapter over `{recipe.model_location}` (named in `adapter_config.json`);
its new classification head is part of the adapter. Build the base with the label set first:

```python
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

LABELS = {labels}
tokenizer = AutoTokenizer.from_pretrained("{FOLDER}")
base = AutoModelForSequenceClassification.from_pretrained(
    "{recipe.model_location}", num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
    label2id={{name: i for i, name in enumerate(LABELS)}}, pad_token_id=tokenizer.pad_token_id)
model = PeftModel.from_pretrained(base, "{FOLDER}").merge_and_unload().eval()
classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
print(classify("text of a document", truncation=True, max_length={max_len}))
```
{_qlora_note(recipe)}"""


_PLAIN_INTRO = """\
The model was trained to complete a prompt with a class name. The prompt is BOS + the document
(cut to fit max-len) + the response template; each class's completion is `" " + class name`
+ EOS. The prediction is the class whose completion is the most probable: score every class,
never sample. Each segment is tokenised as the continuation of the text before it."""

_CHAT_INTRO = """\
The model was trained on chat prompts: the user's turn of the tokenizer's chat template holds an
instruction and the document (cut to fit max-len), and the assistant answers with the class
name, ending its turn with the template's end-of-turn token. The prediction is the class whose
answer is the most probable: score every class, never sample. The template is rendered once
with stand-ins for the document and the answer and cut there, so only the document is cut."""

# The chat template rendered with stand-ins, cut into the prompt's segments.
_CHAT_SEGMENTS = """\
DOCUMENT, ANSWER = "\u27e6document\u27e7", "\u27e6answer\u27e7"  # stand-ins to cut at

chat = tokenizer.apply_chat_template(
    [{"role": "user", "content": INSTRUCTION + DOCUMENT},
     {"role": "assistant", "content": ANSWER}], tokenize=False)
prefix_text, rest = chat.split(DOCUMENT)
directive_text, rest = rest.split(ANSWER)
special = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
end = min((t for t in special if t in rest), key=lambda t: (rest.index(t), -len(t)))
end_of_turn = rest[: rest.index(end) + len(end)]"""

# The end of both generative snippets: score every class's completion after the prompt.
_CLASSIFY = """budget = MAX_LEN - len(prefix) - len(directive) - max(len(c) for c in completions)



def classify(text):
    prompt = prefix + ids(text, as_text=True)[:budget] + directive
    scores = []
    for completion in completions:
        with torch.no_grad():
            logits = model(torch.tensor([prompt + completion])).logits[0].float()
        logp = logits[len(prompt) - 1 : -1].log_softmax(-1)
        scores.append(logp[range(len(completion)), completion].sum().item())
    return LABELS[max(range(len(LABELS)), key=scores.__getitem__)]


print(classify("text of a document"))
```
"""


def _generative_snippet(recipe: Recipe, adapter: bool, labels: str) -> str:
    """Score every class's completion after the recipe's prompt: plain (BOS, the document, the
    response template) or chat (the instruction and the document in a user turn of the
    tokenizer's chat template, the class name as the assistant's reply up to its end of turn)."""
    if adapter:  # the base named in adapter_config.json, with the adapter on it
        imports = ("from peft import AutoPeftModelForCausalLM\n"
                   "from transformers import AutoTokenizer")
        auto = "AutoPeftModelForCausalLM"
    else:
        imports = "from transformers import AutoModelForCausalLM, AutoTokenizer"
        auto = "AutoModelForCausalLM"
    chat = recipe.prompt.chat
    if chat is None:
        intro = _PLAIN_INTRO
        setting = f"TEMPLATE = {json.dumps(recipe.prompt.settings.response_template)}"
        segments = ""
        prompt = """prefix = [tokenizer.bos_token_id]
directive = after("a", TEMPLATE)
completions = [after("a" + TEMPLATE, " " + label) + [tokenizer.eos_token_id] for label in LABELS]"""
    else:
        intro = _CHAT_INTRO
        # The instruction has the descriptions folded in when it was resolved.
        setting = f"INSTRUCTION = {json.dumps(chat.instruction)}"
        segments = _CHAT_SEGMENTS + "\n"
        prompt = """prefix = ids(prefix_text)
directive = after("a", directive_text)
completions = [after(directive_text, label) + after(directive_text + label, end_of_turn)
               for label in LABELS]"""
    return f"""## Use it without rvl-llm

{intro}

```python
import torch
{imports}

model = {auto}.from_pretrained("{FOLDER}").eval()
tokenizer = AutoTokenizer.from_pretrained("{FOLDER}")
LABELS = {labels}
{setting}
MAX_LEN = {recipe.prompt.max_len}
{segments}

def ids(text, as_text=False):  # as_text: special-token text in a document stays text
    return tokenizer(text, add_special_tokens=False, split_special_tokens=as_text).input_ids


def after(context, text):  # the tokens of `text` as it continues `context`
    return ids(context + text)[len(ids(context)):]


{prompt}
{_CLASSIFY}{_qlora_note(recipe)}"""


def _qlora_note(recipe: Recipe) -> str:
    if recipe.quantization is None:
        return ""
    q = recipe.quantization
    compute = "bfloat16" if q.compute_dtype == "bf16" else "float16"
    return (f"\nThe adapter was trained against the 4-bit base: for the same predictions load "
            f"the base with `BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="
            f"\"{q.quant_type}\", bnb_4bit_use_double_quant={q.double_quant}, "
            f"bnb_4bit_compute_dtype=torch.{compute})`"
            ", or export with `--merge`.\n")
