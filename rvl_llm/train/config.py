"""TrainConfig: one training run. It nests the prepare settings (:class:`PrepareConfig`) and the
training settings (:class:`TrainSettings`) instead of copying their fields, and adds only what
belongs to the run itself: its name, where it lives, and whether to resume or replace it.

Two settings default to the preset (``lr``, ``trainable``): ``None`` means "not given";
:func:`with_preset_defaults` fills them in once, before anything else reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.options import cli
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.presets import Preset
from rvl_llm.recipe import DEFAULT_LR, DEFAULT_TRAINABLE, TrainSettings

TRAIN_SPLITS = ("train", "validation")  # what training prepares and reads


@dataclass(frozen=True)
class TrainConfig:
    data: PrepareConfig
    name: str = field(metadata=cli(
        "--name", help="Run name: the run is kept in LOG_DIR/NAME."))
    settings: TrainSettings = field(default_factory=TrainSettings)
    log_dir: Path = field(default=Path("log"), metadata=cli("--log-dir"))
    resume: bool = field(default=False, metadata=cli(
        "--resume", help="Continue the run NAME from its newest complete checkpoint."))
    overwrite: bool = field(default=False, metadata=cli(
        "--overwrite", help="Replace the run NAME (only a folder that holds a run)."))

    def __post_init__(self) -> None:
        if not self.name or Path(self.name).name != self.name or self.name in (".", ".."):
            raise RvlError(f"--name {self.name!r}: must be a plain folder name (no '/')")
        if self.settings.trainable == "classifier" and self.data.generative:
            raise RvlError(
                "--trainable classifier: trains a classification head only and cannot be "
                "combined with --generative (use lora, qlora or full)"
            )
        if self.resume and self.overwrite:
            raise RvlError("--resume and --overwrite: choose one (continue the run or replace it)")

    @classmethod
    def from_flags(cls, **flags: Any) -> TrainConfig:
        """The config from flat flags (the train command's, or a test's): each flag goes to the
        config that owns the field of that name. Training prepares the train and validation
        splits."""
        own = {f.name for f in fields(cls)} - {"data", "settings"}
        owners = {
            "data": {f.name for f in fields(PrepareConfig)},
            "settings": {f.name for f in fields(TrainSettings)},
        }
        # A flag must mean one setting: a name in two configs would silently set both.
        shared = (owners["data"] & owners["settings"]) | ((owners["data"] | owners["settings"])
                                                          & own)
        assert not shared, f"settings named in two configs: {sorted(shared)}"
        unknown = set(flags) - own - owners["data"] - owners["settings"]
        if unknown:
            raise TypeError(f"TrainConfig.from_flags: unknown settings {sorted(unknown)}")
        data = PrepareConfig(**{"splits": TRAIN_SPLITS,
                                **{k: v for k, v in flags.items() if k in owners["data"]}})
        settings = TrainSettings(**{k: v for k, v in flags.items() if k in owners["settings"]})
        return cls(data=data, settings=settings, **{k: v for k, v in flags.items() if k in own})

    @property
    def run_dir(self) -> Path:
        return self.log_dir / self.name


def with_preset_defaults(cfg: TrainConfig, preset: Preset | None) -> TrainConfig:
    """``cfg`` with the values the user left to the preset filled in (checked again)."""
    settings = cfg.settings
    lr = settings.lr
    if lr is None:
        lr = preset.learning_rate if preset and preset.learning_rate else DEFAULT_LR
    trainable = settings.trainable or (preset.trainable if preset else DEFAULT_TRAINABLE)
    if settings.trainable is None and trainable == "classifier" and cfg.data.generative:
        trainable = DEFAULT_TRAINABLE  # a classifier preset says nothing about generative runs
    return replace(cfg, settings=replace(settings, lr=lr, trainable=trainable))
