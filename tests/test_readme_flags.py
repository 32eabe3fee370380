"""Every flag README.md names for a command is an option of that command, and parses.

The README is read as a user reads it: command lines in code blocks (``\\`` continuations
joined, ``#`` comments dropped), inline code spans such as ``rvl-llm eval -c DIR [--max-len N]``,
and the flag tables of a section named after a command (``## Train``'s knobs).
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rvl_llm.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
INVOCATION = re.compile(r"(?:rvl-llm|-m rvl_llm)\s+([a-z][a-z-]*)(?:\s+([a-z][a-z-]*))?")
FLAG = re.compile(r"^\[?(--?[A-Za-z][\w-]*)")
ENDS = re.compile(r"\s(?:\||&&|;|>|#)\s")  # a pipe, a second command or a comment ends one


def _command(name: str, sub: str | None) -> tuple[str, click.Command] | None:
    command = main.commands.get(name)
    if command is None:
        return None
    if isinstance(command, click.Group) and sub in command.commands:
        return f"{name} {sub}", command.commands[sub]
    return name, command


def _flags(words: str) -> list[str]:
    flags = []
    for word in words.split():
        match = FLAG.match(word)
        if match:
            flags += match[1].split("/")  # --tf32/--no-tf32
    return flags


def _texts() -> list[tuple[int, str, str | None]]:
    """(line number, text, command of its section's flag table or None) of every code line and
    inline code span of the README."""
    texts: list[tuple[int, str, str | None]] = []
    in_code, pending, section, table_command = False, "", "", None
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            pending += line.rstrip("\\") + " "
            if not line.endswith("\\"):
                texts.append((number, pending, None))
                pending = ""
            continue
        if line.startswith("## "):
            section = line[3:].split()[0].lower().rstrip(":")
        if line.startswith("|") and "flag" in line.split("|")[1].lower():
            table_command = section if section in main.commands else None
        elif not line.startswith("|"):
            table_command = None
        for span in re.findall(r"`([^`]+)`", line):
            texts.append((number, span, table_command if line.startswith("|") else None))
    return texts


def readme_flags() -> list[tuple[str, str, int]]:
    """(command, flag, README line) for every flag the README gives a command."""
    found: set[tuple[str, str, int]] = set()
    for number, text, table_command in _texts():
        if table_command is not None and text.startswith("-"):  # a row of a flag table
            found.update((table_command, flag, number) for flag in _flags(text.split("(")[0]))
        for match in INVOCATION.finditer(text):
            resolved = _command(match[1], match[2])
            if resolved is None:
                continue
            rest = ENDS.split(text[match.end():])[0]
            found.update((resolved[0], flag, number) for flag in _flags(rest))
    return sorted(found)


def _find(name: str) -> click.Command:
    words = name.split()
    resolved = _command(words[0], words[1] if len(words) > 1 else None)
    assert resolved is not None
    return resolved[1]


def _options(command: click.Command) -> dict[str, click.Parameter]:
    names = {"--help": None, "-h": None}
    for param in command.params:
        for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
            names[opt] = param
    return names  # type: ignore[return-value]


FLAGS = readme_flags()


def test_the_readme_names_flags_of_every_command() -> None:
    """The walk finds what it should: guards against a parser that silently finds nothing."""
    commands = {command for command, _flag, _line in FLAGS}
    assert {"prepare", "train", "eval", "predict", "export", "ocr"} <= commands
    assert ("train", "--eval-steps") in {(c, f) for c, f, _n in FLAGS}  # a flag table's row
    assert len(FLAGS) > 60


@pytest.mark.parametrize(("command", "flag", "line"), FLAGS,
                         ids=[f"{c}{f}:{n}" for c, f, n in FLAGS])
def test_every_readme_flag_is_an_option_of_its_command(command: str, flag: str,
                                                       line: int) -> None:
    known = _options(_find(command))
    assert flag in known, f"README.md:{line}: rvl-llm {command} has no option {flag}"


@pytest.mark.parametrize("command", sorted({c for c, _f, _n in FLAGS}))
def test_every_readme_flag_of_a_command_parses(command: str) -> None:
    """Each flag, with a value of its type where it takes one, goes through click's parser."""
    cmd = _find(command)
    known = _options(cmd)
    for flag in sorted({f for c, f, _n in FLAGS if c == command} - {"--help", "-h"}):
        param = known[flag]
        args = [flag]
        if isinstance(param, click.Option) and not param.is_flag and param.nargs == 1:
            kind = param.type
            value = (kind.choices[0] if isinstance(kind, click.Choice)
                     else "1" if isinstance(kind, click.types.IntParamType
                                             | click.types.FloatParamType)
                     else "KEY=1" if flag == "--trainer-arg" else "x")
            args.append(str(value))
        ctx = cmd.make_context(command, args, resilient_parsing=True)
        assert not param.expose_value or ctx.params[param.name] is not None, flag


def test_eval_takes_skip_bad_rows_as_the_readme_says(tmp_path: Path) -> None:
    """README "Data": train and eval accept --skip-bad-rows (its old name --skip-bad-files)."""
    assert "train and eval accept the same flag" in README.read_text(encoding="utf-8")
    missing = tmp_path / "none"
    for flag in ("--skip-bad-rows", "--skip-bad-files"):
        result = CliRunner().invoke(main, ["eval", "-c", str(missing), flag])
        assert result.exit_code == 1, result.output
        assert "No such option" not in result.output
        assert f"-c {missing}: no such checkpoint folder" in result.output
    assert not missing.exists()
