"""``--config FILE`` on every command, and the ``config.yaml`` a train run writes.

A config file (YAML or TOML) maps a command's long option names (``max-len`` or ``max_len``;
``inputs`` and ``out_dir`` for the positional arguments) to values. It fills click's
``default_map``, so the command line overrides the file and ``--help``, types, choices and
validation stay click's. Values are as strict as on the command line (no ``64.7`` read as 64, no
``0`` read as false). Keys that grant something (replacing or continuing a run, running a model's
own code) are refused: only the command line decides them.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from rvl_llm.errors import RvlError
from rvl_llm.options import F, split_commas

CONFIG_SUFFIXES = (".yaml", ".yml", ".toml")
CONFIG_PARAM = "config_file"
# Replacing or continuing a run (or an export) and running a model's own code are never taken
# from a file, which may come from anywhere (a run's config.yaml, a download).
COMMAND_LINE_ONLY = ("resume", "overwrite", "trust_remote_code")


def _load_into_default_map(ctx: click.Context, _param: click.Parameter,
                           paths: tuple[Path, ...]) -> None:
    """The eager ``--config`` option's callback: the file's values become the defaults of the
    command's other parameters (the command line still overrides them)."""
    if not paths:
        return
    if len(paths) > 1:  # click would keep the last one and drop the others without a word
        shown = ", ".join(str(p) for p in paths)
        raise RvlError(f"--config given {len(paths)} times ({shown}): give one file "
                       "(options on the command line override it)")
    defaults = config_defaults(ctx, read_config_file(paths[0]), paths[0])
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


config_file_option: Callable[[F], F] = click.option(
    "--config", CONFIG_PARAM, type=click.Path(path_type=Path), metavar="FILE", multiple=True,
    is_eager=True, expose_value=False, callback=_load_into_default_map,
    help="Read options from a YAML or TOML file (keys: the long option names, - or _); "
         "options on the command line override it.")


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; a missing, unreadable or malformed file is one line."""
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise RvlError(f"--config {path}: not a config file (use .yaml, .yml or .toml)")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise RvlError(f"--config {path}: no such file") from err
    except UnicodeDecodeError as err:
        raise RvlError(f"--config {path}: not UTF-8 text ({err.reason})") from err
    except OSError as err:
        raise RvlError(f"--config {path}: cannot read it ({err.strerror or err})") from err
    data = _parse(path, text)
    if data is None:  # an empty YAML file: no settings
        return {}
    if not isinstance(data, dict):
        raise RvlError(f"--config {path}: must hold a mapping of option names to values, "
                       f"not a {type(data).__name__}")
    return data


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:  # its message ends "(at line N, column M)"
            raise RvlError(f"--config {path}: not valid TOML: {err}") from err
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RvlError(f"--config {path}: not valid YAML{where}: "
                       f"{err.problem or err.context}") from err
    except yaml.YAMLError as err:
        raise RvlError(f"--config {path}: not valid YAML: {err}") from err


def config_keys(command: click.Command) -> dict[str, click.Parameter]:
    """The keys a config file of ``command`` may hold (``-`` spelling) and their parameters:
    every long option name, and the names of the positional arguments."""
    keys: dict[str, click.Parameter] = {}
    for param in command.params:
        if param.name not in (CONFIG_PARAM, None):
            names = [param.name] if isinstance(param, click.Argument) else [
                opt[2:] for opt in param.opts if opt.startswith("--")]
            keys.update((_normal(name), param) for name in names)
    return keys


def _normal(key: str) -> str:
    return key.replace("_", "-")


def config_defaults(ctx: click.Context, values: Mapping[str, Any],
                    path: Path) -> dict[str, Any]:
    """``values`` (a config file's mapping) as a ``default_map``: by parameter name, checked
    against the parameters' types; ``null`` leaves a parameter at its default."""
    command = ctx.command
    keys = config_keys(command)
    defaults: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, value in values.items():
        param = keys.get(_normal(str(key)))
        if param is None:
            nearest = difflib.get_close_matches(_normal(str(key)), keys, n=1, cutoff=0)
            hint = f"; did you mean '{nearest[0]}'?" if nearest else ""
            raise RvlError(f"--config {path}: unknown key '{key}' for rvl-llm "
                           f"{command.name}{hint}")
        assert param.name is not None
        if param.name in COMMAND_LINE_ONLY:
            raise RvlError(f"--config {path}: '{key}' is decided on the command line only; "
                           f"remove it from the file and pass {_hint(param)} when you mean it")
        if param.name in given_as:
            raise RvlError(f"--config {path}: '{given_as[param.name]}' and '{key}' both set "
                           f"{_hint(param)}; keep one")
        given_as[param.name] = str(key)
        if value is None:
            continue
        value = _click_value(param, value, path)
        try:
            param.type_cast_value(ctx, value)  # click's own check, naming the option
        except click.BadParameter as err:
            err.param = err.param or param
            raise RvlError(f"--config {path}: {err.format_message()}") from err
        defaults[param.name] = value
    return defaults


def _hint(param: click.Parameter) -> str:
    return " / ".join(param.opts) if isinstance(param, click.Option) else param.name or ""


def _click_value(param: click.Parameter, value: Any, path: Path) -> Any:
    """A file's value in the form click takes from a ``default_map`` for ``param``."""
    several = param.nargs != 1 or getattr(param, "multiple", False)
    if isinstance(value, list):
        for item in value:
            _check_kind(param, item, path)
        if several:
            return value
        if param.callback is split_commas:  # a tuple option typed as "a,b,c"
            return ",".join(str(item) for item in value)
        raise RvlError(f"--config {path}: {_hint(param)} takes one value, not a list")
    if isinstance(value, dict):
        raise RvlError(f"--config {path}: {_hint(param)} takes a value, not a table/mapping")
    if isinstance(value, bool) and _takes_optional_value(param):
        # --mixed-precision / --set-pad-token: true is the bare flag, false the default
        return param.flag_value if value else None  # type: ignore[attr-defined]
    _check_kind(param, value, path)
    if several:  # one input given as a plain string, not split on spaces
        return [value]
    return value


def _check_kind(param: click.Parameter, value: Any, path: Path) -> None:
    """A file's value must be of the kind the option takes, as strictly as on the command line:
    click would read 64.7 as 64 and 0 as false, and fail with a traceback on a date."""
    if isinstance(value, str):
        return  # click parses it as it parses the command line
    kind = param.type
    expected = ("true or false" if isinstance(kind, click.types.BoolParamType)
                else "a whole number" if isinstance(kind, click.types.IntParamType)
                else "a number" if isinstance(kind, click.types.FloatParamType)
                else "text")
    accepted = {"true or false": bool, "a whole number": int}.get(expected, (int, float))
    # bool is an int: true and false fit a flag alone, and a flag takes nothing else
    fits = isinstance(value, accepted) and isinstance(value, bool) == (expected == "true or false")
    if not fits:
        raise RvlError(f"--config {path}: {_hint(param)} takes {expected}, not "
                       f"{_shown(value)}; fix the value in the file")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date too
        return f"the {type(value).__name__} {value.isoformat()} (quote it if it is text)"
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def _takes_optional_value(param: click.Parameter) -> bool:
    """An option that may be given bare (``--mixed-precision`` means auto)."""
    return (isinstance(param, click.Option) and not param.is_flag
            and isinstance(param.flag_value, str))
