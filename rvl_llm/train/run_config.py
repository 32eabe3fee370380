"""The options of ``rvl-llm train`` and the ``config.yaml`` a run writes with them.

``TRAIN_OPTIONS`` names the configs whose ``cli`` fields are the train command's options (the
command stacks them, ``train_options``); :func:`write_run_config` writes every one of them with
the value the run used to ``LOG_DIR/NAME/config.yaml``, so
``rvl-llm train --config log/NAME/config.yaml --overwrite`` trains the same run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from rvl_llm.atomic import write_text_atomic
from rvl_llm.config_file import COMMAND_LINE_ONLY
from rvl_llm.options import CLI_KEY, click_options
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.presets import load_presets
from rvl_llm.recipe import TrainSettings, secret_names, without_secrets
from rvl_llm.train.config import TrainConfig

F = TypeVar("F", bound=Callable[..., Any])
RUN_CONFIG_NAME = "config.yaml"  # in LOG_DIR/NAME, beside recipe.json
# The configs whose cli fields are train's options, and the fields each leaves out: training
# prepares train and validation, so --splits is prepare's alone.
TRAIN_OPTIONS: tuple[tuple[type, tuple[str, ...]], ...] = (
    (PrepareConfig, ("splits",)), (TrainConfig, ()), (TrainSettings, ()))


def train_options(func: F) -> F:
    """The train command's options, one per field of ``TRAIN_OPTIONS`` (``rvl_llm.options``)."""
    for cls, excluded in reversed(TRAIN_OPTIONS):
        func = click_options(cls, exclude=excluded)(func)
    return func


def train_option_names() -> set[str]:
    """The parameter names of train's options: the fields ``train_options`` turns into them."""
    return {f.name for cls, excluded in TRAIN_OPTIONS for f in fields(cls)
            if CLI_KEY in f.metadata and f.name not in excluded}


def write_run_config(cfg: TrainConfig, run_dir: Path) -> Path:
    """Write ``run_dir/config.yaml``: every option of ``rvl-llm train`` with the value this run
    used (``cfg`` with the preset's defaults filled in), paths absolute, the label set as given.
    The keys come from the config fields' ``cli`` declarations, so a new field is written with
    no edit here; only the options the train command offers are written, less those decided on
    the command line only, and no secret ``--trainer-arg``."""
    offered = {name for name in train_option_names() if name not in COMMAND_LINE_ONLY}
    sections = run_config_sections(cfg, offered)
    written = {f.name for section in sections.values() for f, _value in section}
    assert written == offered, f"train options without a field: {sorted(offered - written)}"
    path = run_dir / RUN_CONFIG_NAME
    write_text_atomic(path, _run_config_text(cfg, path, sections))
    return path


def run_config_sections(cfg: Any,
                        offered: set[str | None]) -> dict[str, list[tuple[Field, Any]]]:
    """``cfg``'s fields that are ``offered`` options with their values, in field order and
    grouped by the config class that holds them (a nested config's fields under its class)."""
    sections: dict[str, list[tuple[Field, Any]]] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value) and not isinstance(value, type):
            sections[type(value).__name__] = [
                (g, getattr(value, g.name)) for g in fields(value) if g.name in offered]
        elif f.name in offered:
            sections.setdefault(type(cfg).__name__, []).append((f, value))
    return sections


def _long_name(f: Field) -> str:
    """A field's key: its first long option without the dashes (``--data`` -> ``data``)."""
    declarations = f.metadata[CLI_KEY][0]
    return next(d.split("/")[0][2:] for d in declarations if d.startswith("--"))


def _file_value(name: str, value: Any) -> Any:
    if name == "trainer_args":  # a token or password never reaches a file
        return list(without_secrets(value))
    if name == "model":
        return _model_value(value)
    if isinstance(value, Path):
        # Existing paths are made absolute; anything else (hf:NAME) is kept as given.
        return str(value.resolve()) if value.exists() else str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _model_value(model: str) -> str:
    """A preset or hub id as given; a local folder relative to here made absolute."""
    folder = Path(model).expanduser()
    if model in load_presets() or folder.is_absolute() or not folder.is_dir():
        return model
    return str(folder.resolve())


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
        values = {_long_name(f): _file_value(f.name, value) for f, value in section}
        lines += ["", f"# {title}",
                  yaml.dump(values, Dumper=Dumper, sort_keys=False, allow_unicode=True,
                            default_flow_style=False, width=1000).rstrip("\n")]
    return "\n".join(lines) + "\n"
