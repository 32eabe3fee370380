"""``rvl-llm export``: flags -> ExportConfig -> run_export. Imports nothing heavy at load time."""

from __future__ import annotations

import click

from rvl_llm.config_file import config_file_option
from rvl_llm.export.config import ExportConfig
from rvl_llm.options import click_options


@click.command("export")
@config_file_option
@click_options(ExportConfig)
def export_command(**flags: object) -> None:
    """Write a checkpoint as a standalone Hugging Face model folder: weights (an adapter merged
    with --merge), tokenizer, recipe.json and a model card. Plain transformers loads it, and it
    is a checkpoint for eval and predict. Upload it with `huggingface-cli upload NAME DIR`."""
    # Lazy for start-up: the export pulls safetensors and the model loaders; --help stays instant.
    from rvl_llm.export.run import run_export

    folder = run_export(ExportConfig(**flags), log=lambda msg: click.echo(msg, err=True))  # type: ignore[arg-type]
    click.echo(str(folder))
