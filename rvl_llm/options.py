"""Click options made from config dataclass fields, so a default is written once: in the field.

A field that a command exposes carries ``metadata=cli("--flag", help=...)``; the option's name,
default, type and whether it is required come from the field and its type hint. An option that
several commands offer is declared once, below: calling it makes a config's field.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import MISSING, Field, field, fields
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import click

F = TypeVar("F", bound=Callable[..., Any])
CLI_KEY = "cli"
DEFAULT_MAX_LEN = 512  # tokens per document row, prepare's and training's
DEFAULT_BATCH_SIZE = 8  # documents per forward pass (training: per device and step)


def cli(*declarations: str, help: str = "", **click_kwargs: Any) -> dict[str, Any]:
    """Field metadata: how the field appears on the command line (click.option's arguments)."""
    return {CLI_KEY: (declarations, {"help": help, **click_kwargs})}


def click_options(cls: type, *, exclude: tuple[str, ...] = (), only: tuple[str, ...] | None = None,
                  optional: bool = False) -> Callable[[F], F]:
    """A decorator adding one click option per ``cli``-tagged field of ``cls`` (in field order);
    ``optional``: a field without a default defaults to None instead of being required."""
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(only or ()) - known)
    assert not unknown, f"{cls.__name__} has no fields {unknown}"
    options = [
        _option(f, hints[f.name], optional)
        for f in fields(cls)
        if CLI_KEY in f.metadata and f.name not in exclude and (only is None or f.name in only)
    ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def long_option(f: Field) -> str | None:
    """A field's first long option, less its negation (``--tf32/--no-tf32``: ``--tf32``)."""
    declarations = f.metadata.get(CLI_KEY, ((),))[0]
    return next((d.split("/")[0] for d in declarations if d.startswith("--")), None)


def field_default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _option(f: Field, hint: Any, optional: bool = False) -> Callable[[F], F]:
    declarations, given = f.metadata[CLI_KEY]
    kwargs: dict[str, Any] = dict(given)
    default = field_default(f)
    base = _without_none(hint)
    if default is MISSING and optional:
        kwargs.setdefault("default", None)
    elif default is MISSING:
        kwargs.setdefault("required", True)
    elif base is tuple or get_origin(base) is tuple:
        # A tuple of names is typed as "a,b,c" and split back into the tuple.
        kwargs.setdefault("default", ",".join(default))
        kwargs.setdefault("callback", split_commas)
    else:
        kwargs.setdefault("default", default)
    if base is bool and not any("/" in d for d in declarations):
        kwargs.setdefault("is_flag", True)
    elif base is Path:
        kwargs.setdefault("type", click.Path(path_type=Path))
    elif base in (int, float) and "type" not in kwargs:
        kwargs["type"] = base
    shown = kwargs.get("default")
    if "show_default" not in kwargs and shown not in (None, False, MISSING):
        text = str(shown)
        # A default with newlines (the response template) is shown escaped, on one line.
        escaped = text.encode("unicode_escape").decode("ascii")
        kwargs["show_default"] = True if text.isprintable() else f'"{escaped}"'
    return click.option(*declarations, f.name, **kwargs)


def _without_none(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        rest = [a for a in get_args(hint) if a is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def split_commas(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


# --- options several commands share, each declared once --------------------------------------

# --trust-remote-code is never read from a config file or a recipe (``config_file``).
trust_remote_code_field: Callable[[], Any] = partial(field, default=False, metadata=cli(
    "--trust-remote-code",
    help="Allow the model's own code (off unless asked; never taken from a file or a recipe)."))
progress_field: Callable[[], Any] = partial(field, default=None, metadata=cli(
    "--progress/--no-progress", help="Progress bar on stderr [on a terminal]."))
batch_size_field: Callable[[], Any] = partial(field, default=DEFAULT_BATCH_SIZE, metadata=cli(
    "-b", "--batch-size", help="Documents per forward pass (training: per device and step)."))
class_chunk_field: Callable[[], Any] = partial(field, default=None, metadata=cli(
    "--class-chunk", help="Classes scored per forward pass, to bound memory [all]."))
skip_bad_field: Callable[[], Any] = partial(field, default=False, metadata=cli(
    "--skip-bad-rows", "--skip-bad-files",
    help="Skip files or table rows that would be errors and list them (the manifest, eval's "
         "outputs); eval skips them anyway where training did."))


def max_len_field(default: int | None, unset: str = "") -> Any:
    """``--max-len``; ``unset`` says what None means where the default is None."""
    shown = f" [{unset}]" if default is None else ""
    return field(default=default, metadata=cli(
        "--max-len",
        help=f"Tokens per document row, special tokens and completion included{shown}."))
