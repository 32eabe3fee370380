"""``run_export``: a trained checkpoint -> a standalone Hugging Face model folder.

Everything is checked before anything heavy loads; the model is rebuilt as eval loads it (a QLoRA
base dequantised first when merging: the weights the adapter was trained against) and saved with
its tokenizer, card and recipe (last) into a staging folder that then takes the target's place,
so a failed export leaves nothing behind. The folder is itself a checkpoint: its recipe records
merged and full exports as full weights in the exported dtype.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from rvl_llm.atomic import replace_dir, staging_dir, write_text_atomic
from rvl_llm.errors import RvlError, write_reason
from rvl_llm.export.card import model_card
from rvl_llm.export.config import ExportConfig
from rvl_llm.inference import Decode
from rvl_llm.inference.base_model import HEAD_NAMES, torch_dtype
from rvl_llm.inference.calibration import CALIBRATION_NAME, calibration_note, read_temperature
from rvl_llm.inference.checkpoint import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    check_weights,
    checkpoint_tokenizer,
    load_checkpoint,
    recipe_model,
    weights_folder,
)
from rvl_llm.inference.distributed import device_map
from rvl_llm.logs import Log, quiet
from rvl_llm.recipe import RECIPE_NAME, ExportInfo, Recipe

CARD_NAME = "README.md"
EVAL_DIR = "eval"  # eval's default output folder inside a checkpoint
MODEL_CONFIG = "config.json"


def run_export(cfg: ExportConfig, log: Log = quiet) -> Path:
    """Export ``cfg.checkpoint`` into ``cfg.out_dir``; return that folder."""
    checkpoint = weights_folder(cfg.checkpoint, "-c")
    recipe = Recipe.read(checkpoint)
    check_weights(checkpoint)  # damaged files are named before anything is written
    temperature = read_temperature(checkpoint)  # eval --calibrate's; a damaged one is refused
    target = check_target(cfg, checkpoint)
    adapter = recipe.trainable in ("lora", "qlora")
    merge = cfg.merge and adapter
    unmerged = adapter and not merge  # the folder is the adapter, naming its base
    if cfg.merge and not adapter:
        log(f"export: --merge: the run trained {recipe.trainable}, there is no adapter to "
            "merge; exporting its full model")
    if unmerged:
        _check_adapter_files(checkpoint, cfg)
    dtype = cfg.dtype or ran_in(recipe)
    exported = exported_recipe(recipe, checkpoint, merged=merge, dtype=dtype,
                               adapter_only=unmerged)
    from safetensors import SafetensorError  # a Rust binding, light to import

    card = model_card(exported, eval_metrics(checkpoint, recipe))
    if temperature is not None:  # the export answers with the checkpoint's probabilities
        card += calibration_note(temperature)

    # "-o ." has no name to put a staging folder beside: resolve it first.
    with staging_dir(target.resolve(), lambda err: f"-o {target}: cannot write there "
                     f"({err.strerror or err})") as staging:
        assert staging is not None  # this process makes it
        if unmerged:
            log(f"export: the {recipe.trainable} adapter of {checkpoint} (base "
                f"{recipe.model_location})")
            model, tokenizer = None, checkpoint_tokenizer(checkpoint, recipe,
                                                          cfg.trust_remote_code)
        else:
            log(f"export: loading {checkpoint}" + (" and merging its adapter" if merge else ""))
            model, tokenizer = _full_model(checkpoint, recipe, merge, dtype,
                                           cfg.trust_remote_code)
        try:
            if model is None:
                _write_adapter(checkpoint, recipe, staging)
            else:
                model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            write_text_atomic(staging / CARD_NAME, card)
            if temperature is not None:
                shutil.copyfile(checkpoint / CALIBRATION_NAME, staging / CALIBRATION_NAME)
            exported.write(staging)  # last: a folder with a recipe is complete
            replace_dir(staging, target.resolve())  # an earlier export goes only now
        except (OSError, RuntimeError, SafetensorError) as err:
            # A full disk, say (safetensors and torch.save wrap the OS error in their own):
            # one line, and nothing half-written stays.
            raise RvlError(f"-o {target}: cannot write the export ({write_reason(err)}); "
                           "nothing was kept") from err
    log(f"export: {dtype} {'merged ' if merge else ''}model written to {target}")
    return target


def check_target(cfg: ExportConfig, checkpoint: Path) -> Path:
    """-o, refused before anything is loaded: the checkpoint or a folder holding it, a file,
    or a folder with files in it (unless --overwrite and it holds an earlier export)."""
    target = cfg.out_dir
    resolved, source = target.resolve(), checkpoint.resolve()
    if source == resolved or source.is_relative_to(resolved):
        raise RvlError(f"-o {target}: holds the checkpoint being exported ({checkpoint}); "
                       "choose a folder outside it")
    if target.exists() and not target.is_dir():
        raise RvlError(f"-o {target}: exists and is not a folder; choose another")
    if target.is_dir() and any(target.iterdir()):
        if not cfg.overwrite:
            raise RvlError(f"-o {target}: exists and is not empty; choose another folder, or "
                           "--overwrite to replace an earlier export")
        if not is_export(target):
            raise RvlError(f"-o {target}: not an earlier export (recipe.json of `rvl-llm "
                           "export` beside config.json or adapter_config.json); --overwrite "
                           "replaces only those, so nothing was changed")
    return target


def is_export(folder: Path) -> bool:
    """A folder ``rvl-llm export`` wrote: its recipe says so, and it has model files."""
    try:
        recipe = json.loads((folder / RECIPE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    has_model = any((folder / name).is_file() for name in (MODEL_CONFIG, ADAPTER_CONFIG))
    return isinstance(recipe, dict) and isinstance(recipe.get("exported"), dict) and has_model


def ran_in(recipe: Recipe) -> str:
    """The dtype the checkpoint's weights run in when eval loads them."""
    if recipe.quantization is not None:
        return recipe.quantization.compute_dtype
    return recipe.mixed_precision or "fp32"


def exported_recipe(recipe: Recipe, checkpoint: Path, *, merged: bool, dtype: str,
                    adapter_only: bool) -> Recipe:
    """The recipe of the export. An adapter keeps its recipe (it loads on its base as before);
    merged and full weights are recorded as a full run in ``dtype``, so load_checkpoint loads
    the folder's own weights."""
    earlier = recipe.exported  # exporting an export: keep what was trained
    info = ExportInfo(source=checkpoint.resolve(),
                      trainable=earlier.trainable if earlier else recipe.trainable,
                      merged=merged or bool(earlier and earlier.merged), dtype=dtype)
    if adapter_only:
        return replace(recipe, exported=info)
    return replace(recipe, settings=replace(recipe.settings, trainable="full"),
                   quantization=None, mixed_precision=dtype,
                   exported=info)


def eval_metrics(checkpoint: Path, recipe: Recipe) -> list[dict[str, Any]]:
    """What eval wrote in its default place (CHECKPOINT/eval/<max-len>-max-len/<eval>/
    metrics.json) for the test split, scored: the newest per max-len, training max-len first."""
    newest: dict[int, tuple[float, dict[str, Any]]] = {}
    for path in (checkpoint / EVAL_DIR).glob("*-max-len/*/metrics.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            continue  # not ours to judge: the card just leaves it out
        if not isinstance(record, dict) or record.get("split") != "test" or record.get(
                "decode") == Decode.GENERATE or not isinstance(record.get("max_len"), int):
            continue
        if record["max_len"] not in newest or mtime > newest[record["max_len"]][0]:
            newest[record["max_len"]] = (mtime, record)
    order = sorted(newest, key=lambda n: (n != recipe.data.max_len, n))
    keys = ("split", "max_len", "n", "accuracy", "macro_f1")
    return [{k: newest[n][1].get(k) for k in keys} for n in order]


def _check_adapter_files(checkpoint: Path, cfg: ExportConfig) -> None:
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (checkpoint / name).is_file():
            raise RvlError(f"-c {checkpoint}: no {name} (the recipe says the run trained an "
                           "adapter)")
    if cfg.dtype is not None:
        raise RvlError(f"--dtype {cfg.dtype}: an unmerged adapter is exported as trained and "
                       "runs in its recipe's dtype; add --merge to choose the weights' dtype")


def _write_adapter(checkpoint: Path, recipe: Recipe, folder: Path) -> None:
    """The adapter as peft saved it, its config pointing at the recipe's base model."""
    shutil.copyfile(checkpoint / ADAPTER_WEIGHTS, folder / ADAPTER_WEIGHTS)
    try:
        config = json.loads((checkpoint / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except ValueError as err:
        raise RvlError(f"{checkpoint / ADAPTER_CONFIG}: unreadable adapter config ({err})") from err
    config["base_model_name_or_path"] = recipe.model_location
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _full_model(checkpoint: Path, recipe: Recipe, merge: bool, dtype: str,
                trust_remote_code: bool) -> tuple[Any, Any]:
    """The whole model in ``dtype``: full weights, a head on its base, or an adapter merged."""
    devices = device_map()  # every visible GPU, else the CPU
    with _no_false_head_report() if not recipe.generative else nullcontext():
        if merge and recipe.quantization is not None:
            tokenizer = checkpoint_tokenizer(checkpoint, recipe, trust_remote_code)
            model = _merged_qlora(checkpoint, recipe, tokenizer, devices, trust_remote_code)
        else:
            loaded = load_checkpoint(checkpoint, device_map=devices,
                                     trust_remote_code=trust_remote_code)
            model, tokenizer = loaded.model, loaded.tokenizer
            if merge:
                model = model.merge_and_unload()
    return model.to(torch_dtype(None if dtype == "fp32" else dtype)).eval(), tokenizer


def _merged_qlora(checkpoint: Path, recipe: Recipe, tokenizer: Any, device_map: Any,
                  trust_remote_code: bool) -> Any:
    """The 4-bit base loaded as training and eval load it, dequantised (the weights the adapter
    was trained against, in the compute dtype), with the adapter merged in."""
    from peft import PeftModel  # heavy: imported when merging

    model = recipe_model(recipe, None, tokenizer.convert_tokens_to_ids(recipe.pad_token),
                         device_map, trust_remote_code)
    try:
        model = model.dequantize()
        model = PeftModel.from_pretrained(model, str(checkpoint), is_trainable=False)
        return model.merge_and_unload()
    except (RuntimeError, ValueError, KeyError, NotImplementedError) as err:
        raise RvlError(f"-c {checkpoint}: cannot merge the QLoRA adapter into its dequantised "
                       f"base {recipe.model_location} ({write_reason(err)})") from err


@contextmanager
def _no_false_head_report() -> Iterator[None]:
    """Silence transformers' load report when all it says is that the classifier was built on
    a causal LM: the new head MISSING ("newly initialized") and the LM head UNEXPECTED. The
    checkpoint's trained head replaces the new one right after (load_checkpoint checks that it
    fits), so for this load the report is false. Any other report is shown."""
    import logging

    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(_shows_report)
    try:
        yield
    finally:
        logger.removeFilter(_shows_report)


def _shows_report(record: Any) -> bool:
    """A logging filter: False for a load report that names only the new head's keys."""
    text = _ANSI.sub("", record.getMessage())
    if "LOAD REPORT" not in text:
        return True
    rows = [[cell.strip() for cell in line.split("|")] for line in text.splitlines()
            if "|" in line and not line.startswith(("Key", "-"))]
    expected = all(
        len(row) > 1 and ((row[1] == "MISSING" and row[0].startswith(_HEAD_KEYS))
                          or (row[1] == "UNEXPECTED" and row[0].startswith("lm_head.")))
        for row in rows)
    return not (rows and expected)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the report's colours
_HEAD_KEYS = tuple(f"{name}." for name in HEAD_NAMES)  # a new head's weights, as key prefixes

