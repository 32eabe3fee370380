"""Model presets (``presets.toml``) and resolving ``--model`` to a local folder.

``--model`` takes a preset name, a local folder or a hub id. Everything model-specific lives in the
TOML table as data; code asks the preset, never the model's name.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path

from rvl_llm.errors import RvlError

TRAINABLE_MODES = ("classifier", "lora", "qlora", "full")
# Files that define a tokenizer's behaviour; their bytes (not the model's name) key the cache.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where the presets' relative folders (the sample models) are found: this variable, else the
# project checkout rvl_llm runs from (an installed copy has no sample/ beside it).
HOME_VARIABLE = "RVL_LLM_HOME"


@dataclass(frozen=True)
class Preset:
    name: str
    model: str
    pad_token: str | None = None
    trainable: str = "qlora"
    lora_targets: str | tuple[str, ...] = "all-linear"
    unsloth_model: str | None = None
    learning_rate: float | None = None
    prompt: str = "plain"  # the generative prompt style: plain, or the tokenizer's chat template
    description: str = ""

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE_MODES:
            raise ValueError(f"preset {self.name}: trainable must be one of {TRAINABLE_MODES}")


@cache
def load_presets() -> dict[str, Preset]:
    table = tomllib.loads(resources.files("rvl_llm").joinpath("presets.toml").read_text())
    known = {f.name for f in fields(Preset)} - {"name"}
    presets = {}
    for name, values in table.items():
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"presets.toml [{name}]: unknown keys {sorted(unknown)}")
        if isinstance(values.get("lora_targets"), list):
            values = {**values, "lora_targets": tuple(values["lora_targets"])}
        presets[name] = Preset(name=name, **values)
    return presets


@dataclass(frozen=True)
class ModelSource:
    """Where a ``--model`` value points: a local folder, or a hub id resolved on demand."""

    spec: str  # what the user typed
    location: str  # local folder (absolute) or hub id
    is_local: bool
    preset: Preset | None

    def tokenizer_dir(self) -> Path:
        """A local folder holding the tokenizer files (downloaded or cached for hub ids)."""
        if self.is_local:
            return Path(self.location)
        from huggingface_hub import snapshot_download

        try:
            # config.json too: transformers picks the tokenizer class from the model type in it,
            # so without it a hub tokenizer could load differently than from the model folder.
            patterns = [*TOKENIZER_FILES, "config.json"]
            return Path(snapshot_download(self.location, allow_patterns=patterns))
        except Exception as err:  # offline, no network, gated, missing: all need the same hint
            local = ", ".join(n for n, p in load_presets().items() if _looks_local(p.model))
            raise RvlError(
                f"--model {self.spec}: cannot reach {self.location} on the Hugging Face hub "
                f"({type(err).__name__}); download it where there is network, or pass a local "
                f"folder or a local preset ({local})"
            ) from err

    def check_model_files(self) -> None:
        """A local folder to train must hold a model, not only a tokenizer (prepare needs only
        the tokenizer, so this is checked by train, before anything is prepared)."""
        if self.is_local and not (Path(self.location) / "config.json").is_file():
            raise RvlError(
                f"--model {self.spec}: {self.location} has no config.json (a tokenizer alone "
                "is not a model); pass the folder `save_pretrained` wrote, a preset or a hub id"
            )


def resolve_model(spec: str) -> ModelSource:
    presets = load_presets()
    if spec in presets:
        preset = presets[spec]
        if _looks_local(preset.model):
            # A preset's folder belongs to the project, not to wherever the command runs.
            root = Path(os.environ.get(HOME_VARIABLE) or PROJECT_ROOT).expanduser()
            folder = (root / preset.model).resolve()
            if not folder.is_dir():
                raise RvlError(
                    f"--model {spec}: the preset's folder {folder} does not exist; build it "
                    f"with `make sample`, or set {HOME_VARIABLE} to the folder that holds "
                    f"{preset.model}"
                )
            return ModelSource(spec, str(folder), True, preset)
        return ModelSource(spec, preset.model, False, preset)
    for candidate in (Path(spec).expanduser(), PROJECT_ROOT / spec):
        if candidate.is_dir():
            return ModelSource(spec, str(candidate.resolve()), True, None)
    if _looks_local(spec) or spec.count("/") != 1:
        raise RvlError(
            f"--model {spec}: not a preset ({', '.join(presets)}), not an existing folder "
            "and not a hub id (org/name)"
        )
    return ModelSource(spec, spec, False, None)


def _looks_local(path: str) -> bool:
    return path.startswith((".", "/", "~", "sample/")) or os.sep + os.sep in path

