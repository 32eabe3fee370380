"""TrainConfig: one training run. It nests the prepare and the training settings and adds what
belongs to the run itself: its name, where it lives, and whether to resume or replace it. Its
fields are the train command's options, and a run writes them to ``config.yaml``, so that
``rvl-llm train --config log/NAME/config.yaml --overwrite`` trains the same run again.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rvl_llm.atomic import write_text_atomic
from rvl_llm.config_file import COMMAND_LINE_ONLY
from rvl_llm.errors import RvlError
from rvl_llm.options import CLI_KEY, F, cli, click_options, long_option
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.presets import Preset, load_presets
from rvl_llm.recipe import (
    DEFAULT_LR,
    DEFAULT_TRAINABLE,
    TrainSettings,
    secret_names,
    without_secrets,
)

TRAIN_SPLITS = ("train", "validation")  # what training prepares and reads
RUN_CONFIG_NAME = "config.yaml"  # in LOG_DIR/NAME, beside recipe.json


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
        parts = {"data": PrepareConfig, "settings": TrainSettings, "own": cls}
        given = {key: {k: v for k, v in flags.items() if k in {f.name for f in fields(part)}}
                 for key, part in parts.items()}
        # A flag must mean one setting: a name in two configs would silently set both.
        assert sum(map(len, given.values())) == len(set().union(*given.values())), given
        unknown = set(flags) - set().union(*given.values())
        if unknown:
            raise TypeError(f"TrainConfig.from_flags: unknown settings {sorted(unknown)}")
        data = PrepareConfig(**{"splits": TRAIN_SPLITS, **given["data"]})
        return cls(data=data, settings=TrainSettings(**given["settings"]), **given["own"])

    @property
    def run_dir(self) -> Path:
        return self.log_dir / self.name


def with_preset_defaults(cfg: TrainConfig, preset: Preset | None) -> TrainConfig:
    """``cfg`` with the values the user left to the preset filled in (checked again)."""
    settings = cfg.settings
    lr = settings.lr or (preset.learning_rate if preset else None) or DEFAULT_LR
    trainable = settings.trainable or (preset.trainable if preset else DEFAULT_TRAINABLE)
    if settings.trainable is None and trainable == "classifier" and cfg.data.generative:
        trainable = DEFAULT_TRAINABLE  # a classifier preset says nothing about generative runs
    return replace(cfg, settings=replace(settings, lr=lr, trainable=trainable))


# The configs whose cli fields are train's options, and the fields each leaves out: training
# prepares train and validation, so --splits is prepare's alone.
TRAIN_OPTIONS: tuple[tuple[type, tuple[str, ...]], ...] = (
    (PrepareConfig, ("splits",)), (TrainConfig, ()), (TrainSettings, ()))


def train_options(func: F) -> F:
    """The train command's options, one per field of ``TRAIN_OPTIONS`` (``rvl_llm.options``)."""
    for cls, excluded in reversed(TRAIN_OPTIONS):
        func = click_options(cls, exclude=excluded)(func)
    return func


def write_run_config(cfg: TrainConfig, run_dir: Path) -> Path:
    """Write ``run_dir/config.yaml``: every option of ``rvl-llm train`` with the value this run
    used (``cfg`` with the preset's defaults filled in), paths absolute, the label set as given;
    less the options decided on the command line only, and no secret ``--trainer-arg``."""
    held = {PrepareConfig: cfg.data, TrainConfig: cfg, TrainSettings: cfg.settings}
    sections: dict[str, list[tuple[Field, Any]]] = {}
    for cls, excluded in TRAIN_OPTIONS:
        skip = (*excluded, *COMMAND_LINE_ONLY)
        sections[cls.__name__] = [(f, getattr(held[cls], f.name)) for f in fields(cls)
                                  if CLI_KEY in f.metadata and f.name not in skip]
    path = run_dir / RUN_CONFIG_NAME
    write_text_atomic(path, _run_config_text(cfg, path, sections))
    return path


def _file_value(name: str, value: Any) -> Any:
    if name == "trainer_args":  # a token or password never reaches a file
        return list(without_secrets(value))
    if name == "model":  # a preset or hub id as given; a relative local folder made absolute
        folder = Path(value).expanduser()
        local = value not in load_presets() and not folder.is_absolute() and folder.is_dir()
        return str(folder.resolve()) if local else value
    if isinstance(value, Path):
        # Existing paths are made absolute; anything else (hf:NAME) is kept as given.
        return str(value.resolve()) if value.exists() else str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _run_config_text(cfg: TrainConfig, path: Path,
                     sections: dict[str, list[tuple[Field, Any]]]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, text: str) -> Any:
        # A value with newlines (the response template) on one line, escaped.
        style = None if text.isprintable() else '"'
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    Dumper.add_representer(str, represent_str)
    lines = [
        f"# rvl-llm train: the settings run {cfg.name} used (preset defaults filled in, paths",
        "# absolute). Train it again with",
        f"#   rvl-llm train --config {path.resolve()} --overwrite",
        "# Options on the command line override these keys. resume, overwrite and",
        "# trust-remote-code are not written: give them on the command line.",
    ]
    if cfg.data.trust_remote_code:
        lines.append("# This run was given --trust-remote-code.")
    secrets = secret_names(cfg.settings.trainer_args)
    if secrets:
        lines.append(f"# Not written (secrets): --trainer-arg {', '.join(secrets)}.")
    for title, section in sections.items():
        values = {(long_option(f) or f.name).removeprefix("--"): _file_value(f.name, value)
                  for f, value in section}
        lines += ["", f"# {title}",
                  yaml.dump(values, Dumper=Dumper, sort_keys=False, allow_unicode=True,
                            default_flow_style=False, width=1000).rstrip("\n")]
    return "\n".join(lines) + "\n"
