"""ExportConfig: every setting of ``rvl-llm export``, once, checked on construction. The model
comes from the checkpoint's recipe; only where to, merged or not and the dtype live here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from rvl_llm.errors import RvlError
from rvl_llm.options import cli, trust_remote_code_field
from rvl_llm.recipe import EXPORT_DTYPES


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path = field(metadata=cli(
        "-c", "--checkpoint",
        help="A run's final/ or checkpoint-N/ folder (or the run folder: its final/)."))
    out_dir: Path = field(metadata=cli(
        "-o", "--out-dir", help="The model folder to write (absent or empty)."))
    merge: bool = field(default=False, metadata=cli(
        "--merge", help="Merge a LoRA/QLoRA adapter into the base weights (QLoRA: dequantised "
        "first); without it the folder is the adapter and names its base."))
    dtype: str | None = field(default=None, metadata=cli(
        "--dtype", type=click.Choice(EXPORT_DTYPES),
        help="Dtype of merged or full weights [the dtype the checkpoint ran in]."))
    overwrite: bool = field(default=False, metadata=cli(
        "--overwrite", help="Replace -o if it holds an earlier export (never other files)."))
    trust_remote_code: bool = trust_remote_code_field()

    def __post_init__(self) -> None:
        if self.dtype is not None and self.dtype not in EXPORT_DTYPES:
            raise RvlError(f"--dtype {self.dtype}: choose from {', '.join(EXPORT_DTYPES)}")
