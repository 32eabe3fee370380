"""``rvl-llm predict`` and ``Classifier``: every input kind, both modes, the same answer as eval
document by document, the API equal to the command, and every bad input.

The checkpoints are the tiny Llama-3-style sample model saved as a run's ``final/`` (full
weights, untrained: predict and eval must agree whatever the weights are), with the recipe
`rvl-llm train` writes, over the sample corpus.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from conftest import prompt_for  # noqa: E402

from rvl_llm.cli import main  # noqa: E402
from rvl_llm.errors import RvlError  # noqa: E402
from rvl_llm.labels import RVL_CDIP_CLASSES  # noqa: E402
from rvl_llm.pipeline.config import PrepareConfig  # noqa: E402
from rvl_llm.recipe import Recipe, TrainSettings  # noqa: E402

MAX_LEN = 96
PAD = "<|end_of_text|>"


@pytest.fixture(autouse=True, scope="module")
def load_each_checkpoint_once() -> Iterator[None]:
    """Every command here loads its checkpoint afresh (3 s each on 2 cores); the module's
    commands share one load per checkpoint and settings. The loading itself is tested by the
    first command of each checkpoint and by test_api_gives_the_command_results."""
    from rvl_llm.predict.classifier import Classifier

    real = Classifier.from_checkpoint.__func__  # type: ignore[attr-defined]
    loaded: dict[tuple, Classifier] = {}

    def from_checkpoint(cls: type, path: str | Path, device: str | None = None,
                        **options: object) -> Classifier:
        key = (str(Path(path).resolve()), device, *sorted(options.items()))
        if key not in loaded:
            loaded[key] = real(cls, path, device, **options)
        return loaded[key]

    patch = pytest.MonkeyPatch()
    patch.setattr(Classifier, "from_checkpoint", classmethod(from_checkpoint))
    yield
    patch.undo()


def build_checkpoint(root: Path, base: Path, data: Path, mode: str) -> Path:
    """``root/log/sample-MODE/final``: the base model's weights as a finished run leaves them."""
    final = root / "log" / f"sample-{mode}" / "final"
    if mode == "generative":
        shutil.copytree(base, final)
    else:
        torch.manual_seed(0)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(RVL_CDIP_CLASSES), id2label=dict(enumerate(RVL_CDIP_CLASSES)),
            label2id={n: i for i, n in enumerate(RVL_CDIP_CLASSES)})
        model.save_pretrained(final)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(base / name, final / name)
    prepare = PrepareConfig(data_dir=data, model=str(base), max_len=MAX_LEN,
                            generative=mode == "generative", labels=RVL_CDIP_CLASSES,
                            cache_dir=root / "cache", splits=("train", "validation"))
    recipe = Recipe(
        run_name=f"sample-{mode}", model=str(base), model_location=str(base),
        data=prepare, prompt=prompt_for(prepare),
        settings=TrainSettings(trainable="full"), pad_token=PAD, lora_targets="all-linear",
        quantization=None, mixed_precision=None, cache_key="none", versions={},
        command="rvl-llm train ...")
    recipe.write(final)
    recipe.write(final.parent)
    return final


@pytest.fixture(scope="module", params=["generative", "classifier"])
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               models: Path, sample_data: Path) -> Path:
    root = tmp_path_factory.mktemp(f"predict-{request.param}")
    return build_checkpoint(root, models / "tiny-llama3", sample_data, request.param)


@pytest.fixture(scope="module")
def generative(tmp_path_factory: pytest.TempPathFactory, models: Path,
               sample_data: Path) -> Path:
    root = tmp_path_factory.mktemp("predict-one")
    return build_checkpoint(root, models / "tiny-llama3", sample_data, "generative")


def sample_test_files(sample_data: Path, count: int = 128) -> list[Path]:
    return sorted(sample_data.glob("test_*.json"))[:count]


def predict(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``rvl-llm predict ARGS --no-progress``."""
    result = CliRunner().invoke(main, ["predict", *args, "--no-progress"], input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_predict_agrees_with_eval_per_document(checkpoint: Path, sample_data: Path,
                                               tmp_path: Path) -> None:
    """The sample test split through eval and through predict: the same label and the same
    probability for every document."""
    out = tmp_path / "results"
    result = CliRunner().invoke(main, ["eval", "-c", str(checkpoint), "-o", str(out),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    folder = Path(result.output.strip().splitlines()[-1])
    with (folder / "predictions.tsv").open() as f:
        evaluated = {row["doc_id"]: row for row in csv.DictReader(f, delimiter="\t")}

    code, stdout, _ = predict("-c", str(checkpoint), *map(str, sample_test_files(sample_data)))
    assert code == 0
    predicted = records(stdout)
    assert len(predicted) == len(evaluated) == 128
    for record in predicted:
        row = evaluated[record["id"]]
        assert record["label"] == row["predicted"] == row["top1"]
        assert record["probability"] == pytest.approx(float(row["top1_prob"]), abs=1e-4)
        assert [r["label"] for r in record["top_k"]] == [row["top1"], row["top2"], row["top3"]]


def test_api_gives_the_command_results(checkpoint: Path, sample_data: Path) -> None:
    from rvl_llm import Classifier

    files = sample_test_files(sample_data, 12)
    _, stdout, _ = predict("-c", str(checkpoint), "--top-k", "2", *map(str, files))
    clf = Classifier.from_checkpoint(checkpoint.parent, batch_size=3)  # a run: its final/
    assert clf.labels == RVL_CDIP_CLASSES and clf.max_len == MAX_LEN
    from_files = clf.predict_files(files, top_k=2)
    texts = [json.loads(f.read_text())["ocr"] for f in files]
    from_texts = clf.predict(texts, top_k=2)
    for record, a, b in zip(records(stdout), from_files, from_texts, strict=True):
        assert record["label"] == a.label == b.label
        assert record["probability"] == pytest.approx(a.probability, abs=1e-6)
        assert a.probability == pytest.approx(b.probability, abs=1e-6)
        assert [r["label"] for r in record["top_k"]] == [r.label for r in a.top_k]
        assert sum(a.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert a.scores[a.label] == a.probability
    assert clf.predict("one text")[0].label in RVL_CDIP_CLASSES


def test_every_input_kind_in_input_order(generative: Path, sample_data: Path,
                                         tmp_path: Path) -> None:
    files = sample_test_files(sample_data, 3)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, f in enumerate(files[:2]):  # no label or split in the name
        shutil.copy(f, folder / f"doc-{i}.json")
    (tmp_path / "note.txt").write_text("Dear Sir, thank you for your letter. Sincerely, Ann")
    (tmp_path / "batch.jsonl").write_text(
        json.dumps({"id": "first", "text": "INVOICE total due 42"}) + "\n"
        + json.dumps({"ocr": "MEMO to all staff"}) + "\n")
    stdin = json.dumps({"id": "piped", "ocr": "RESUME education experience"}) + "\n"
    code, stdout, _ = predict("-c", str(generative), str(folder), str(tmp_path / "note.txt"),
                              str(tmp_path / "batch.jsonl"), "-", stdin=stdin)
    assert code == 0
    got = records(stdout)
    doc_ids = [json.loads(f.read_text())["id"] for f in files[:2]]
    # Prepare's id rule: "id", else the path given alone, else the row number (from 0).
    assert [r["id"] for r in got] == [*doc_ids, str(tmp_path / "note.txt"), "first", "1",
                                      "piped"]
    for record in got:
        assert set(record) == {"id", "label", "probability", "top_k", "truncated"}
        assert record["label"] == record["top_k"][0]["label"] and len(record["top_k"]) == 3
        assert record["label"] in RVL_CDIP_CLASSES and 0 < record["probability"] <= 1


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_output_formats(generative: Path, sample_data: Path, tmp_path: Path,
                        suffix: str) -> None:
    files = sample_test_files(sample_data, 4)
    out = tmp_path / f"labels{suffix}"
    code, stdout, stderr = predict("-c", str(generative), "-o", str(out), "--top-k", "2",
                                   *map(str, files))
    assert code == 0 and stdout == "" and "4 documents" in stderr
    text = out.read_text()
    if suffix == ".jsonl":
        assert [r["id"] for r in records(text)] == [
            json.loads(f.read_text())["id"] for f in files]
    else:
        rows = list(csv.DictReader(io.StringIO(text), delimiter="," if suffix == ".csv" else "\t"))
        assert len(rows) == 4 and rows[0]["label"] == rows[0]["top1"]
        assert "top2_probability" in rows[0] and "top3" not in rows[0]


def test_long_document_is_marked_truncated(generative: Path, tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("word " * 2000)
    (tmp_path / "short.txt").write_text("word")
    _, stdout, _ = predict("-c", str(generative), str(tmp_path / "long.txt"),
                           str(tmp_path / "short.txt"))
    assert [r["truncated"] for r in records(stdout)] == [True, False]
    # --max-len changes the rows: a document that fits at 96 tokens is cut at 16.
    (tmp_path / "mid.txt").write_text("word " * 30)
    _, stdout, _ = predict("-c", str(generative), "--max-len", "16", str(tmp_path / "mid.txt"))
    assert records(stdout)[0]["truncated"] is True


def test_bad_inputs_are_skipped_with_a_count(generative: Path, sample_data: Path,
                                             tmp_path: Path) -> None:
    files = sample_test_files(sample_data, 2)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "no-text.json").write_text(json.dumps({"title": "x"}))
    args = [str(files[0]), str(tmp_path / "broken.json"), str(tmp_path / "no-text.json"),
            str(tmp_path / "missing.json"), str(files[1])]
    out = tmp_path / "out.jsonl"
    code, _, stderr = predict("-c", str(generative), "-o", str(out), *args)
    assert code == 1
    assert f"skipped {tmp_path / 'broken.json'}: malformed JSON" in stderr
    assert "no-text.json" in stderr and "missing.json" in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: 3 inputs skipped") and "--allow-skips" in last
    # The rest is not lost: both good documents were written, in order.
    assert len(records(out.read_text())) == 2
    code, _, _ = predict("-c", str(generative), "-o", str(out), "--allow-skips", *args)
    assert code == 0


def assert_refused(code: int, stderr: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in stderr.strip().splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_refusals_write_nothing(generative: Path, sample_data: Path, tmp_path: Path) -> None:
    one = str(sample_test_files(sample_data, 1)[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.jsonl"
    (tmp_path / "empty.jsonl").write_text("")
    assert_refused(*predict("-c", str(generative), "-o", str(out),
                            str(tmp_path / "empty.jsonl"))[::2], "no documents")
    assert_refused(*predict("-c", str(generative), "-o", str(out), str(empty))[::2],
                   "no document could be read")
    assert_refused(*predict("-c", str(generative), "-o", str(tmp_path / "x.xlsx"), one)[::2],
                   "-o", ".jsonl")
    assert_refused(*predict("-c", str(tmp_path / "nowhere"), one)[::2], "-c")
    assert_refused(*predict("-c", str(generative), "--top-k", "0", one)[::2], "--top-k")
    assert_refused(*predict("-c", str(generative))[::2], "INPUT")
    all_bad = tmp_path / "bad.json"
    all_bad.write_text("[")
    assert_refused(*predict("-c", str(generative), "-o", str(out), str(all_bad))[::2],
                   "no document could be read")
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


@pytest.mark.slow
def test_two_process_predict_matches_one(generative: Path, sample_data: Path,
                                         tmp_path: Path) -> None:
    """``accelerate launch`` with two CPU processes: each scores a contiguous share, rank 0
    writes everything in input order; the records equal a one-process run's."""
    import os
    import socket

    files = [str(f) for f in sample_test_files(sample_data, 10)]
    alone = tmp_path / "alone.jsonl"
    assert predict("-c", str(generative), "-o", str(alone), *files)[0] == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    together = tmp_path / "together.jsonl"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(root / "accelerate_configs" / "ddp.yaml"), "--num_processes", "2",
        "--main_process_port", str(port), "-m", "rvl_llm", "predict", "-c", str(generative),
        "-o", str(together), "--no-progress", *files,
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stderr.count("predict: 10 documents") == 1  # rank 0 alone reports
    one, two = records(alone.read_text()), records(together.read_text())
    assert [r["id"] for r in two] == [r["id"] for r in one]
    for a, b in zip(one, two, strict=True):
        assert a["label"] == b["label"]
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


# ------------------------------------------------------------------------------------------------
# Issue 14: the faults found by a hostile test
# ------------------------------------------------------------------------------------------------


def test_o_naming_an_input_is_refused_and_the_input_kept(generative: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "INVOICE"}\n')
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "one.txt").write_text("MEMO")
    (tmp_path / "link.jsonl").symlink_to(docs)
    code, stdout, stderr = predict("-c", str(generative), str(docs), "-o", str(docs))
    assert_refused(code, stderr, f"-o {docs}", "is the INPUT")
    assert code == 1 and stdout == ""
    assert_refused(*predict("-c", str(generative), str(docs), "-o",
                            str(tmp_path / "link.jsonl"))[::2], "link.jsonl", "is the INPUT")
    assert_refused(*predict("-c", str(generative), str(folder), "-o",
                            str(folder / "labels.csv"))[::2], "inside the INPUT folder")
    assert docs.read_text() == '{"id": "a", "text": "INVOICE"}\n'
    assert sorted(p.name for p in folder.iterdir()) == ["one.txt"]
    assert not list(tmp_path.glob(".tmp-*"))


def test_csv_ids_with_control_characters_round_trip_through_the_command(
        generative: Path, tmp_path: Path) -> None:
    ids = ["a\rb.txt", "=cmd|calc", "two\nlines", "plain"]
    (tmp_path / "docs.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": f"MEMO {n}"}) + "\n" for n, i in enumerate(ids)))
    out = tmp_path / "labels.csv"
    code, _, stderr = predict("-c", str(generative), str(tmp_path / "docs.jsonl"), "-o", str(out))
    assert code == 0, stderr
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["a\rb.txt", "'=cmd|calc", "two\nlines", "plain"]
    assert all(r["label"] in RVL_CDIP_CLASSES for r in rows)


def test_json_ids_round_trip_and_duplicates_are_counted(generative: Path,
                                                        tmp_path: Path) -> None:
    lines = [{"id": True, "text": "a"}, {"id": {"a": 1}, "text": "b"}, {"id": 1, "text": "c"},
             {"id": "1", "text": "d"}, {"id": "x", "text": "e"}, {"id": "x", "text": "f"}]
    (tmp_path / "ids.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, stdout, stderr = predict("-c", str(generative), str(tmp_path / "ids.jsonl"))
    assert code == 0, stderr
    assert [r["id"] for r in records(stdout)] == ["true", '{"a": 1}', "1", "1", "x", "x"]
    assert f"warning: duplicate id '1' at {tmp_path / 'ids.jsonl'}:4" in stderr
    assert "2 duplicate ids" in stderr.strip().splitlines()[-1]


def test_empty_blank_binary_and_latin1_documents_are_counted(generative: Path,
                                                             tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text(" \n\t ")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)))
    (tmp_path / "latin1.txt").write_bytes("Café menu, résumé".encode("latin-1"))
    (tmp_path / "fine.txt").write_text("MEMO to staff")
    names = ["empty.txt", "blank.txt", "binary.txt", "latin1.txt", "fine.txt"]
    code, stdout, stderr = predict("-c", str(generative), *(str(tmp_path / n) for n in names))
    assert code == 0 and len(records(stdout)) == 5  # labelled all the same, as prepare keeps them
    summary = stderr.strip().splitlines()[-1]
    assert "5 documents" in summary and "2 empty" in summary
    assert "2 not UTF-8 (bytes replaced)" in summary


def test_a_document_larger_than_memory_is_cut_and_said(generative: Path,
                                                       tmp_path: Path) -> None:
    """A .txt linked to /dev/zero under a memory limit: read up to a bound, labelled, said."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    script = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
        "from rvl_llm.cli import main; sys.argv = ['rvl-llm'] + sys.argv[1:]; main()")
    done = subprocess.run([sys.executable, "-c", script, "predict", "-c", str(generative),
                           "--no-progress", str(tmp_path / "zero.txt")],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    [record] = records(done.stdout)
    assert record["truncated"] is True and record["id"] == str(tmp_path / "zero.txt")
    assert f"cut {tmp_path / 'zero.txt'}: longer than 16 MiB" in done.stderr
    assert "1 cut at read" in done.stderr


def test_max_len_beyond_the_models_positions_is_refused(generative: Path, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("MEMO")
    out = tmp_path / "out.jsonl"
    code, _, stderr = predict("-c", str(generative), "--max-len", "10000", "-o", str(out),
                              str(tmp_path / "a.txt"))
    assert_refused(code, stderr, "--max-len 10000", "8192 positions")
    assert code == 1 and not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_a_killed_runs_temporary_output_is_removed_by_the_next_run(generative: Path,
                                                                  tmp_path: Path) -> None:
    """kill -9 while predict writes -o: its temporary file stays; the next run to the same file
    removes it (its process is gone) and says so."""
    import signal
    import time

    out = tmp_path / "out.csv"
    script = "import sys; from rvl_llm.cli import main; sys.argv[0] = 'rvl-llm'; main()"
    running = subprocess.Popen(  # reads standard input, left open: it waits mid-run
        [sys.executable, "-c", script, "predict", "-c", str(generative), "-o", str(out),
         "--no-progress", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert running.stdin is not None
    running.stdin.write(b'{"text": "MEMO"}\n')
    running.stdin.flush()
    deadline = time.monotonic() + 120
    while not (staged := list(tmp_path.glob(".tmp-out.csv-*"))) and time.monotonic() < deadline:
        time.sleep(0.1)
    running.send_signal(signal.SIGKILL)
    running.wait()
    assert len(staged) == 1 and staged[0].name.startswith(f".tmp-out.csv-{running.pid}-")
    assert staged[0].exists() and not out.exists()
    (tmp_path / "a.txt").write_text("MEMO")
    code, _, stderr = predict("-c", str(generative), "-o", str(out), str(tmp_path / "a.txt"))
    assert code == 0 and f"removed {staged[0]}" in stderr
    assert not list(tmp_path.glob(".tmp-*")) and out.exists()


def test_the_api_checks_its_arguments_at_the_edge(generative: Path, tmp_path: Path) -> None:
    from rvl_llm import Classifier

    clf = Classifier.from_checkpoint(generative)
    wrong_texts = [None, [1, 2], [None], b"bytes", {"a": "b"}, 3]
    for texts in wrong_texts:
        with pytest.raises(TypeError, match=r"^predict: texts") as caught:
            clf.predict(texts)  # type: ignore[arg-type]
        assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=r"texts\[1\] holds a lone surrogate \(U\+D800\)"):
        clf.predict(["fine", "bad \ud800 half"])
    for top_k in ("2", 2.5, True):
        with pytest.raises(TypeError, match="top_k must be a whole number"):
            clf.predict("MEMO", top_k=top_k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k 0: must be a positive"):
        clf.predict("MEMO", top_k=0)
    generated = clf.predict(t for t in ["MEMO", "INVOICE"])  # a generator is many texts
    assert [p.label for p in generated] == [p.label for p in clf.predict(["MEMO", "INVOICE"])]
    # predict_files: one str is one path; an empty input is the command's error.
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("MEMO")
    (folder / "b.txt").write_text("INVOICE")
    assert len(clf.predict_files(str(folder))) == len(clf.predict_files(folder)) == 2
    with pytest.raises(TypeError, match=r"paths\[1\] is int"):
        clf.predict_files([folder, 5])  # type: ignore[list-item]
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(RvlError, match="no documents") as caught:
        clf.predict_files(tmp_path / "empty.jsonl")
    code, _, stderr = predict("-c", str(generative), str(tmp_path / "empty.jsonl"))
    assert code == 1 and caught.value.message in stderr


def test_predict_on_scans_equals_predict_on_their_ocr_json(tmp_path: Path,
                                                            models: Path) -> None:
    """Issue 16: images (a PNG, a two-page TIFF) and a PDF, OCR'd on the fly with the engine
    settings of the training data's OCR manifest (a page separator unlike the default), give
    the records predict gives on the OCR JSON `rvl-llm ocr` wrote: same ids, same labels, same
    probabilities; the API alike."""
    pytest.importorskip("tesserocr")
    from ocr_fixtures import page, save_tiff, text_layer_pdf

    scans = tmp_path / "scans"
    scans.mkdir()
    page("MEMORANDUM\nTo: all staff\nRe: budget").save(scans / "memo.png")
    save_tiff(scans / "two-pages.tif", ["INVOICE 4711", "Total due $1,250.00"])
    text_layer_pdf(scans / "report.pdf", "Scientific report on tar")
    ocr_out = tmp_path / "ocr"
    result = CliRunner().invoke(main, ["ocr", str(scans), "-o", str(ocr_out), "-j", "1",
                                       "--page-separator", " || ", "--no-progress"])
    assert result.exit_code == 0, result.output
    texts = [json.loads(p.read_text())["ocr"] for p in sorted(ocr_out.glob("*.json"))]
    assert any(" || " in text for text in texts)  # the TIFF's pages, joined as the manifest says
    # A run trained on that OCR output: its recipe names the folder with the OCR manifest.
    checkpoint = build_checkpoint(tmp_path / "run", models / "tiny-llama3", ocr_out, "generative")
    code, on_json, _ = predict("-c", str(checkpoint), str(ocr_out))
    assert code == 0
    code, on_scans, stderr = predict("-c", str(checkpoint), str(scans))
    assert code == 0, stderr
    assert records(on_scans) == records(on_json)
    assert sorted(r["id"] for r in records(on_scans)) == ["memo.png", "report.pdf",
                                                          "two-pages.tif"]
    from rvl_llm import Classifier

    # The options the command passes: the module's one load of this checkpoint.
    clf = Classifier.from_checkpoint(checkpoint, None, max_len=None, batch_size=8,
                                     class_chunk=None, trust_remote_code=False)
    by_file = clf.predict_files(sorted(scans.iterdir()))
    by_text = clf.predict(texts)  # sorted OCR JSON names follow the scans' names
    assert [p.label for p in by_file] == [p.label for p in by_text]
    assert [p.probability for p in by_file] == pytest.approx([p.probability for p in by_text])
