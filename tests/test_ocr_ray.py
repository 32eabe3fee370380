"""``rvl-llm ocr --backend ray`` on one local Ray instance (started once, ~5-10 s): the same
bytes as the local backend, and resuming works as locally."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from ocr_fixtures import page, save_tiff, text_layer_pdf

from rvl_llm.cli import main

pytestmark = pytest.mark.slow


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".ocr.lock"}


def test_ray_backend_output_is_byte_identical_to_local(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    src = tmp_path / "src"
    src.mkdir()
    page("Invoice number 12").save(src / "train_0001_11.png")
    save_tiff(src / "test_0002_15.tif", ["Memo page one", "Memo page two"])
    text_layer_pdf(src / "report.pdf", "Annual report text")
    (src / "broken.png").write_bytes(b"not a png")

    def ocr(out: Path, *flags: str) -> object:
        return CliRunner().invoke(main, ["ocr", str(src), "-o", str(out), "--no-progress",
                                         "--skip-bad-files", *flags])

    local = ocr(tmp_path / "local", "-j", "1")
    assert local.exit_code == 0, local.output
    # Resuming as locally: a run killed after two documents (its manifest and outputs copied).
    (tmp_path / "ray").mkdir()
    for name in ("ocr.manifest", "train_0001_11_aws.json", "test_0002_15_aws.json"):
        shutil.copy(tmp_path / "local" / name, tmp_path / "ray" / name)
    ray = ocr(tmp_path / "ray", "--backend", "ray", "-j", "1")
    assert ray.exit_code == 0, ray.output
    assert "1 documents written" in ray.output and "2 already done, 1 bad" in ray.output
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "local")
