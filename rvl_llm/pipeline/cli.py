"""Click commands of the prepare stage: ``prepare``, ``cache ls``, ``cache verify``.

Thin: flags -> PrepareConfig -> run_prepare. No torch import on any of these paths.
"""

from __future__ import annotations

from pathlib import Path

import click

from rvl_llm.pipeline.config import DEFAULT_CACHE_DIR, DEFAULT_RESPONSE_TEMPLATE, PrepareConfig
from rvl_llm.pipeline.manifest import SPLITS


def data_options(func):
    """Options shared by prepare, train and eval: where the corpus is and how it is named."""
    options = [
        click.option(
            "-d",
            "--data",
            "data_dir",
            required=True,
            type=click.Path(path_type=Path),
            help="Folder of OCR JSON files.",
        ),
        click.option("--prefix-train", default="train_", show_default=True),
        click.option("--prefix-validation", default="validation_", show_default=True),
        click.option("--prefix-test", default="test_", show_default=True),
        click.option(
            "--suffix",
            default="_aws",
            show_default=True,
            help="File names end in SUFFIX.json; the label is the number before it.",
        ),
        click.option(
            "--labels",
            "labels_file",
            type=click.Path(path_type=Path),
            default=None,
            help="Label names, one a line, in class-index order [RVL-CDIP's 16].",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(path_type=Path),
            default=DEFAULT_CACHE_DIR,
            show_default=True,
        ),
        click.option(
            "--response-template",
            default=DEFAULT_RESPONSE_TEMPLATE,
            help="Directive after the document in generative mode "
            r'[default: "\n\n### Classification:"].',
        ),
        click.option(
            "--trust-remote-code",
            is_flag=True,
            help="Allow model code from the hub (off unless asked).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def echo_result(result) -> None:
    manifest = result.manifest
    for split in manifest.splits:
        info = manifest.splits[split]
        status = (
            "built" if split in result.built else "cached" if split in result.reused else "kept"
        )
        share = info.truncated / info.rows if info.rows else 0.0
        click.echo(
            f"  {split:<10} {info.rows:>7} rows  truncated {share:6.1%}  empty {info.empty:>4}"
            f"  skipped {len(info.skipped_files):>3}  median {info.length.get('median', 0):>6.0f}"
            f" tokens  [{status}]"
        )
    what = "cache hit" if not result.built else f"built {', '.join(result.built)}"
    click.echo(
        f"prepare: {what} in {result.seconds:.2f}s ({manifest.mode}, max-len "
        f"{manifest.max_len}, {len(manifest.labels)} labels)"
    )


@click.command("prepare")
@data_options
@click.option("-m", "--model", required=True, help="Preset, local folder or hub id.")
@click.option("--max-len", default=512, show_default=True, type=int)
@click.option("-g", "--generative", is_flag=True, help="Completion-only masks for class names.")
@click.option("--splits", default=",".join(SPLITS), show_default=True)
@click.option(
    "--skip-bad-files", is_flag=True, help="Skip bad files and list them in the manifest."
)
@click.option("--progress/--no-progress", default=None, help="Progress bar [on a terminal].")
def prepare_command(splits: str, **flags: object) -> None:
    """Tokenise a corpus once into versioned Arrow shards; print the shard folder last."""
    from rvl_llm.pipeline.prepare import run_prepare

    cfg = PrepareConfig(splits=tuple(s.strip() for s in splits.split(",") if s.strip()), **flags)
    result = run_prepare(cfg, log=lambda msg: click.echo(msg, err=True))
    for note in result.notes:
        if note.startswith("skipped"):
            click.echo(f"  {note}")
    echo_result(result)
    click.echo(str(result.root))


@click.group("cache")
def cache_group() -> None:
    """Inspect and check prepared shards."""


@cache_group.command("ls")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=DEFAULT_CACHE_DIR)
def cache_ls(cache_dir: Path) -> None:
    """List cache entries with their settings and sizes."""
    from rvl_llm.pipeline.cache import entry_bytes, list_entries

    entries = list_entries(cache_dir)
    if not entries:
        click.echo(f"no cache entries in {cache_dir}")
    for m in entries:
        splits = " ".join(f"{s}={info.rows}" for s, info in m.splits.items())
        click.echo(
            f"{m.key}  {m.mode:<10} max-len {m.max_len:<5} {len(m.labels):>2} labels  "
            f"{entry_bytes(m.root) / 2**20:8.1f} MiB  {splits}  "
            f"model {m.settings['source']['model']}"
        )


@cache_group.command("verify")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=DEFAULT_CACHE_DIR)
def cache_verify(cache_dir: Path) -> None:
    """Check every shard's size and checksum; exit 1 if any is damaged."""
    from rvl_llm.errors import RvlError
    from rvl_llm.pipeline.cache import list_entries, split_problem

    damaged = 0
    for m in list_entries(cache_dir):
        for split in m.splits:
            problem = split_problem(m, split)
            damaged += problem is not None
            click.echo(f"{m.key} {split:<10} {'OK' if problem is None else problem}")
    if damaged:
        raise RvlError(f"{damaged} damaged split(s) in {cache_dir}; prepare rebuilds them")
