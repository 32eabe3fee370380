"""The ocr stage: sources, page rules, engines, importers, output, resume and bad inputs.

Scans are drawn by the tests (tests/ocr_fixtures.py); Tesseract reads them exactly, so the
assertions compare whole texts. The Ray backend's test is in test_ocr_ray.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from ocr_fixtures import (
    bomb_png,
    iit_cdip_xml,
    page,
    raw_pdf,
    save_tiff,
    text_layer_pdf,
    textract_json,
)
from PIL import Image

from rvl_llm.cli import main
from rvl_llm.errors import RvlError
from rvl_llm.ocr import OcrSettings, find_ocr_settings, ocr_file
from rvl_llm.ocr import documents as documents_module

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "sample/models/tiny-llama3"


def ocr(*args: object) -> object:
    return CliRunner().invoke(main, ["ocr", *map(str, args), "--no-progress"])


def documents(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".ocr.lock"}


def test_folder_of_scans_to_prepare(tmp_path: Path) -> None:
    src, out = tmp_path / "scans", tmp_path / "out"
    src.mkdir()
    page("Invoice number 4711\nTotal amount due").save(src / "train_0001_11.png")
    page("Dear Sir thank you").save(src / "validation_0002_0.jpg")
    save_tiff(src / "test_0003_15.tif", ["First page of memo", "Second page here"])
    (src / "inbox").mkdir()
    page("Unlabelled letter text").save(src / "inbox" / "scan one.png")

    result = ocr(src, "-o", out, "-j", 1)
    assert result.exit_code == 0, result.output
    docs = documents(out)
    assert set(docs) == {"train_0001_11_aws.json", "validation_0002_0_aws.json",
                         "test_0003_15_aws.json", "inbox~scan%20one.json"}
    memo = docs["test_0003_15_aws.json"]
    assert memo["ocr"] == "First page of memo\fSecond page here"  # a multi-page TIFF: one doc
    assert (memo["id"], memo["split"], memo["label"]) == ("test_0003_15.tif", "test", 15)
    assert [p["source"] for p in memo["pages"]] == ["ocr", "ocr"]
    assert memo["engine"]["name"] == "tesseract" and "tesseract 5" in memo["engine"]["version"]
    assert memo["engine"]["settings"] == OcrSettings().to_dict()
    assert docs["train_0001_11_aws.json"]["ocr"] == "Invoice number 4711\nTotal amount due"
    unlabelled = docs["inbox~scan%20one.json"]
    assert (unlabelled["id"], unlabelled["split"], unlabelled["label"]) == (
        "inbox/scan one.png", None, None)

    # prepare reads the output with no further flag.
    prepared = CliRunner().invoke(main, ["prepare", "-d", str(out), "-m", str(MODEL),
                                         "--max-len", "64", "--cache-dir", str(tmp_path / "c"),
                                         "--no-progress"])
    assert prepared.exit_code == 0, prepared.output
    assert "train" in prepared.output


def test_pdf_text_layer_unless_force_ocr(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    text_layer_pdf(src / "layer.pdf", "Quarterly budget report")
    page("Scanned contract page").save(src / "scanned.pdf")  # image only: no text layer

    assert ocr(src, "-o", tmp_path / "a", "-j", 1).exit_code == 0
    docs = documents(tmp_path / "a")
    assert docs["layer.json"]["ocr"] == "Quarterly budget report"
    assert docs["layer.json"]["pages"][0]["source"] == "text-layer"
    assert docs["scanned.json"]["ocr"] == "Scanned contract page"
    assert docs["scanned.json"]["pages"][0]["source"] == "ocr"

    assert ocr(src, "-o", tmp_path / "b", "-j", 1, "--force-ocr").exit_code == 0
    forced = documents(tmp_path / "b")["layer.json"]
    assert forced["pages"][0]["source"] == "ocr"
    assert "budget report" in forced["ocr"]


def test_rvl_cdip_layout_with_bad_lines(tmp_path: Path) -> None:
    root, out = tmp_path / "rvl", tmp_path / "out"
    save_tiff(root / "images/imagesa/a/a/8003+55-21.tif", ["Memo to all staff"])
    save_tiff(root / "images/imagesb/b/b/0000-1.tif", ["Advertisement sale"])
    (root / "labels").mkdir()
    (root / "labels/train.txt").write_text("imagesa/a/a/8003+55-21.tif 15\n"
                                           "imagesz/missing.tif 3\n")
    (root / "labels/val.txt").write_text("imagesb/b/b/0000-1.tif 4\n")
    (root / "labels/test.txt").write_text("imagesa/a/a/8003+55-21.tif 16\n")

    result = ocr(root, "-o", out, "-j", 1)
    assert result.exit_code == 1
    assert "train.txt:2: imagesz/missing.tif: no such file" in result.output
    assert "test.txt:1: imagesa/a/a/8003+55-21.tif: label 16" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: SOURCE")
    assert "2 bad inputs" in result.output
    docs = documents(out)  # nothing lost: the good documents are written
    assert set(docs) == {"train_imagesa~a~a~8003+55-21_15_aws.json",
                         "validation_imagesb~b~b~0000-1_4_aws.json"}
    assert docs["train_imagesa~a~a~8003+55-21_15_aws.json"]["id"] == \
        "imagesa/a/a/8003+55-21.tif"
    assert ocr(root, "-o", out, "-j", 1, "--skip-bad-files").exit_code == 0


def test_table_and_dataset_sources(tmp_path: Path) -> None:
    import io

    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    def png(text: str) -> bytes:
        buffer = io.BytesIO()
        page(text).save(buffer, format="PNG")
        return buffer.getvalue()

    table = pa.table({"id": ["a", "b"], "split": ["train", "test"], "label": [2, 9],
                      "image": [png("Email from Bob"), png("News of the day")]})
    pq.write_table(table, tmp_path / "scans.parquet")
    assert ocr(tmp_path / "scans.parquet", "-o", tmp_path / "t", "-j", 1).exit_code == 0
    docs = documents(tmp_path / "t")
    assert docs["train_a_2_aws.json"]["ocr"] == "Email from Bob"
    assert docs["test_b_9_aws.json"]["ocr"] == "News of the day"

    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    dataset = datasets.Dataset.from_dict(
        {"image": [{"bytes": png("Resume of Ann"), "path": "ann.png"}], "label": [14]},
        features=features)
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(tmp_path / "ds"))
    assert ocr(tmp_path / "ds", "-o", tmp_path / "d", "-j", 1).exit_code == 0
    docs = documents(tmp_path / "d")
    assert docs == {"train_ann_14_aws.json": docs["train_ann_14_aws.json"]}
    assert docs["train_ann_14_aws.json"]["ocr"] == "Resume of Ann"


def test_rapidocr_engine(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    scan = Image.new("L", (760, 700), 255)  # RapidOCR scales the short side to 736: keep it
    scan.paste(page("Invoice total due"))
    scan.save(src / "a.png")
    result = ocr(src, "-o", tmp_path / "out", "-j", 1, "--engine", "rapidocr")
    assert result.exit_code == 0, result.output
    doc = documents(tmp_path / "out")["a.json"]
    assert doc["engine"]["name"] == "rapidocr"
    assert "Invoice" in doc["ocr"] and "total" in doc["ocr"]


def test_importers(tmp_path: Path) -> None:
    src = tmp_path / "textract"
    src.mkdir()
    (src / "train_0001_2.json").write_text(textract_json([["From: Ann", "To: Bob"], ["Bye"]]))
    assert ocr(src, "-o", tmp_path / "a", "--engine", "textract").exit_code == 0
    doc = documents(tmp_path / "a")["train_0001_2_aws.json"]
    assert doc["ocr"] == "From: Ann\nTo: Bob\fBye"
    assert [p["source"] for p in doc["pages"]] == ["import", "import"]

    src = tmp_path / "iit"
    src.mkdir()
    (src / "abc00a00.xml").write_text(iit_cdip_xml(["Page one & more", "Page two"]))
    assert ocr(src, "-o", tmp_path / "b", "--engine", "iit-cdip").exit_code == 0
    assert documents(tmp_path / "b")["abc00a00.json"]["ocr"] == "Page one & more\fPage two"


def test_bad_inputs_named_counted_and_skipped(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    page("Good letter").save(src / "good.png")
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    (src / "empty.tif").write_bytes(b"")
    (src / "notes.docx").write_bytes(b"PK")
    (src / "locked.pdf").write_bytes(raw_pdf(encrypted=True))
    (src / "nopages.pdf").write_bytes(raw_pdf(pages=0))
    (src / "bomb.png").write_bytes(bomb_png())
    page("Same name").save(src / "good.jpg")  # good.png's output name

    result = ocr(src, "-o", out, "-j", 1)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    for name, reason in (("corrupt.png", "not a readable image"),
                         ("empty.tif", "empty file (0 bytes)"),
                         ("notes.docx", "unsupported file kind '.docx'"),
                         ("locked.pdf", "encrypted PDF"),
                         ("nopages.pdf", "PDF with no pages"),
                         ("bomb.png", "page 1 is 100000x100000 pixels, over --max-pixels"),
                         ("good.png", f"same output file good.json as {src / 'good.jpg'}")):
        assert sum(f"{src / name}: {reason}" in line for line in lines) == 1, (name, lines)
    assert "7 bad inputs" in lines[-1] and "--skip-bad-files" in lines[-1]
    assert list(documents(out)) == ["good.json"]  # nothing lost
    assert not list(out.glob(".tmp-*"))
    assert ocr(src, "-o", out, "-j", 1, "--skip-bad-files").exit_code == 0


def test_changed_setting_refused_and_nothing_touched(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "a.json").write_text(textract_json([["Hello"]]))
    assert ocr(src, "-o", out, "--engine", "textract").exit_code == 0
    before = snapshot(out)
    result = ocr(src, "-o", out, "--engine", "textract", "--page-separator", "||")
    assert result.exit_code == 1
    assert result.output.startswith("Error: --page-separator '||':") and str(out) in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert snapshot(out) == before

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    result = ocr(src, "-o", tmp_path / "other", "--engine", "textract")
    assert result.exit_code == 1 and "no OCR manifest" in result.output
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["keep.txt"]


def test_jsonl_and_parquet_output(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    src = tmp_path / "src"
    src.mkdir()
    for i, split in enumerate(("train", "validation", "test")):
        (src / f"{split}_{i}_{i + 1}.json").write_text(textract_json([[f"Text {split}"]]))
    assert ocr(src, "-o", tmp_path / "o.jsonl", "--format", "jsonl",
               "--engine", "textract").exit_code == 0
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [(r["id"], r["split"], r["label"], r["ocr"]) for r in rows] == [
        ("test_2_3.json", "test", 3, "Text test"), ("train_0_1.json", "train", 1, "Text train"),
        ("validation_1_2.json", "validation", 2, "Text validation")]
    assert ocr(src, "-o", tmp_path / "o.parquet", "--format", "parquet",
               "--engine", "textract").exit_code == 0
    table = pq.read_table(tmp_path / "o.parquet").to_pylist()
    assert [r["ocr"] for r in table] == [r["ocr"] for r in rows]
    prepared = CliRunner().invoke(main, ["prepare", "-d", str(tmp_path / "o.jsonl"), "-m",
                                         str(MODEL), "--max-len", "32", "--cache-dir",
                                         str(tmp_path / "c"), "--no-progress"])
    assert prepared.exit_code == 0, prepared.output


def test_workers_give_the_same_bytes_and_api_agrees(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i, text in enumerate(("Alpha letter", "Beta memo", "Gamma form")):
        page(text).save(src / f"d{i}.png")
    assert ocr(src, "-o", tmp_path / "j1", "-j", 1).exit_code == 0
    assert ocr(src, "-o", tmp_path / "j2", "-j", 2).exit_code == 0
    assert snapshot(tmp_path / "j1") == snapshot(tmp_path / "j2")

    settings = find_ocr_settings(tmp_path / "j1")
    assert settings == OcrSettings()
    assert ocr_file(src / "d1.png", settings) == documents(tmp_path / "j1")["d1.json"]["ocr"]
    assert find_ocr_settings(src) is None
    with pytest.raises(RvlError, match=r"notes\.txt: unsupported file kind"):
        (src / "notes.txt").write_text("x")
        ocr_file(src / "notes.txt")


def test_resume_after_kill_9_gives_the_uninterrupted_output(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(8):
        page(f"Document number {i}\nwith a second line").save(src / f"train_{i:02d}_{i}.png")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert ocr(src, "-o", whole, "-j", 1).exit_code == 0

    command = [sys.executable, "-m", "rvl_llm", "ocr", str(src), "-o", str(killed), "-j", "1",
               "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(killed.glob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list(killed.glob("*.json")))
    assert 0 < done < 8
    (killed / ".tmp-train_03_3_aws.json-deadbeef").write_text('{"id": ')  # a half-written one

    result = ocr(src, "-o", killed, "-j", 1)
    assert result.exit_code == 0, result.output
    assert f"{done} already done" in result.output
    assert snapshot(killed) == snapshot(whole)  # no duplicates, no partial files


def test_missing_extra_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    monkeypatch.setattr(documents_module, "_ENGINES", {})  # engines loaded by earlier tests
    (tmp_path / "src").mkdir()
    result = ocr(tmp_path / "src", "-o", tmp_path / "out", "--engine", "rapidocr")
    assert result.exit_code == 1
    assert "pip install 'rvl-llm[rapidocr]'" in result.output
    assert not (tmp_path / "out").exists()


def test_an_image_only_pdf_page_is_rendered_at_its_scan_resolution(tmp_path: Path) -> None:
    """A page that is one scanned image is rendered at the image's own pixels per inch (here
    150), not --dpi 200: upsampling blurs the strokes Tesseract reads."""
    pdfium = pytest.importorskip("pypdfium2")
    from rvl_llm.ocr.pages import _scan_scale

    scan = page("INVOICE 4711\nTotal due 1,250.00")
    scan.save(tmp_path / "scan.pdf", "PDF", resolution=150)
    pdf = pdfium.PdfDocument(tmp_path / "scan.pdf")
    try:
        assert _scan_scale(pdf[0], pdfium) == pytest.approx(150 / 72)
    finally:
        pdf.close()
    assert ocr_file(tmp_path / "scan.pdf") == "INVOICE 4711\nTotal due 1,250.00"
    assert ocr_file(tmp_path / "scan.pdf", OcrSettings(dpi=300)) == ocr_file(tmp_path / "scan.pdf")
