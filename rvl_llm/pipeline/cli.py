"""Click commands of the prepare stage: ``prepare``, ``cache ls``, ``cache verify``.

Thin: flags -> PrepareConfig -> run_prepare. No torch import on any of these paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rvl_llm.atomic import find_staging
from rvl_llm.config_file import config_file_option
from rvl_llm.errors import RvlError
from rvl_llm.options import click_options
from rvl_llm.pipeline.cache import entry_bytes, list_entries, unreadable_count, verify_split
from rvl_llm.pipeline.config import DEFAULT_CACHE_DIR, PrepareConfig

SHOWN_SKIPS = 50  # skipped files or rows printed one a line; the manifest lists them all


@click.command("prepare")
@config_file_option
@click_options(PrepareConfig)
def prepare_command(**flags: object) -> None:
    """Tokenise a corpus once into versioned Arrow shards; print the shard folder last."""
    # Lazy for start-up: the build pulls the tokenizer stack; --help stays instant.
    from rvl_llm.pipeline.prepare import run_prepare

    result = run_prepare(PrepareConfig(**flags), log=lambda msg: click.echo(msg, err=True))  # type: ignore[arg-type]
    skips = [note for note in result.notes if note.startswith("skipped")]
    for note in skips[:SHOWN_SKIPS]:
        click.echo(f"  {note}")
    if len(skips) > SHOWN_SKIPS:
        click.echo(f"  ... and {len(skips) - SHOWN_SKIPS} more skipped (listed in the manifest)")
    click.echo("\n".join([*result.summary_lines(), str(result.root)]))


@click.group("cache")
def cache_group() -> None:
    """Inspect and check prepared shards."""


@cache_group.command("ls")
@config_file_option
@click.option("--cache-dir", type=click.Path(path_type=Path), default=DEFAULT_CACHE_DIR)
def cache_ls(cache_dir: Path) -> None:
    """List cache entries with their settings and sizes; exit 1 if any cannot be read."""
    entries, unreadable = _entries(cache_dir)
    for m in entries:
        splits = " ".join(f"{s}={info.rows}" for s, info in m.splits.items())
        click.echo(
            f"{m.key}  {m.mode:<10} max-len {m.max_len:<5} {len(m.labels):>2} labels  "
            f"{entry_bytes(m.root) / 2**20:8.1f} MiB  {splits}  "
            f"model {m.settings['source']['model']}"
        )
    for _folder, why in unreadable:
        click.echo(why)
    # Temporary files and folders of builds that name their maker: a killed one's stay until
    # its command runs again.
    for item in [*find_staging(cache_dir), *(s for m in entries for s in find_staging(m.root))]:
        if item.pid is not None:
            click.echo(item.describe())
    if unreadable:
        raise RvlError(f"{unreadable_count(unreadable)} in {cache_dir}")


@cache_group.command("verify")
@config_file_option
@click.option("--cache-dir", type=click.Path(path_type=Path), default=DEFAULT_CACHE_DIR)
def cache_verify(cache_dir: Path) -> None:
    """Check every shard's size and checksum; exit 1 if any is damaged or unreadable."""
    entries, unreadable = _entries(cache_dir)
    damaged = 0
    for m in entries:
        for split in m.splits:
            problem = verify_split(m, split)  # every byte, not only sizes
            damaged += problem is not None
            click.echo(f"{m.key} {split:<10} {'OK' if problem is None else problem}")
    for _folder, why in unreadable:
        click.echo(why)
    wrong = [f"{damaged} damaged split(s)"] if damaged else []
    wrong += [unreadable_count(unreadable)] if unreadable else []
    if wrong:
        raise RvlError(f"{' and '.join(wrong)} in {cache_dir}; prepare rebuilds them")


def _entries(cache_dir: Path) -> tuple[list[Any], list[tuple[Path, str]]]:
    """The cache's entries and its unreadable folders (with why); says so when there is none."""
    entries, unreadable = list_entries(cache_dir)
    if not entries and not unreadable:
        click.echo(f"no cache entries in {cache_dir}")
    return entries, unreadable
