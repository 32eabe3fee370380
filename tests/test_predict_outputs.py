"""`rvl-llm predict`'s records: the exact content of each format, standard output flushed batch by
batch, `-o PATH` replaced atomically, and every problem with `-o` in one line, early."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from rvl_llm.atomic import TEMP_PREFIX
from rvl_llm.errors import RvlError
from rvl_llm.predict.outputs import RecordWriter, check_output, csv_header, output_format

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

RECORDS: list[dict[str, Any]] = [
    {"id": "docs/a.json", "label": "letter", "probability": 0.8734567891,
     "top_k": [{"label": "letter", "probability": 0.8734567891},
               {"label": "memo", "probability": 0.1},
               {"label": "email", "probability": 1.234567e-05}],
     "truncated": False},
    # an id a spreadsheet would split (comma, tab); a label set smaller than K
    {"id": "b, final\tv2", "label": "memo", "probability": 0.5,
     "top_k": [{"label": "memo", "probability": 0.5}, {"label": "letter", "probability": 0.5}],
     "truncated": True},
]


def write_records(path: Path | None, batches: list[list[dict[str, Any]]], top_k: int = 3,
                  **kwargs: Any) -> RecordWriter:
    with RecordWriter(path, top_k=top_k, **kwargs) as out:
        for batch in batches:
            out.write(batch)
    return out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


# ------------------------------------------------------------------------------------------------
# 1. Each format's exact content
# ------------------------------------------------------------------------------------------------


def test_jsonl_file_holds_one_record_a_line_with_its_floats(tmp_path: Path) -> None:
    path = tmp_path / "preds.jsonl"
    out = write_records(path, [RECORDS[:1], RECORDS[1:]])
    assert out.written == 2
    assert path.read_text(encoding="utf-8") == (
        '{"id": "docs/a.json", "label": "letter", "probability": 0.8734567891, "top_k": '
        '[{"label": "letter", "probability": 0.8734567891}, {"label": "memo", "probability": '
        '0.1}, {"label": "email", "probability": 1.234567e-05}], "truncated": false}\n'
        '{"id": "b, final\\tv2", "label": "memo", "probability": 0.5, "top_k": [{"label": '
        '"memo", "probability": 0.5}, {"label": "letter", "probability": 0.5}], '
        '"truncated": true}\n')
    assert [json.loads(line) for line in path.read_text().splitlines()] == RECORDS


def test_csv_file_has_the_header_and_quotes_only_what_needs_it(tmp_path: Path) -> None:
    path = tmp_path / "preds.csv"
    write_records(path, [RECORDS])
    assert path.read_text(encoding="utf-8") == (
        "id,label,probability,truncated,top1,top1_probability,top2,top2_probability,"
        "top3,top3_probability\n"
        "docs/a.json,letter,0.873457,false,letter,0.873457,memo,0.1,email,1.23457e-05\n"
        '"b, final\tv2",memo,0.5,true,memo,0.5,letter,0.5,,\n')


def test_tsv_file_has_the_header_and_quotes_only_what_needs_it(tmp_path: Path) -> None:
    path = tmp_path / "preds.tsv"
    write_records(path, [RECORDS], top_k=2)  # K columns, whatever a record holds
    assert path.read_text(encoding="utf-8") == (
        "id\tlabel\tprobability\ttruncated\ttop1\ttop1_probability\ttop2\ttop2_probability\n"
        "docs/a.json\tletter\t0.873457\tfalse\tletter\t0.873457\tmemo\t0.1\n"
        '"b, final\tv2"\tmemo\t0.5\ttrue\tmemo\t0.5\tletter\t0.5\n')


def test_a_run_without_records_writes_the_header_only(tmp_path: Path) -> None:
    write_records(tmp_path / "preds.csv", [], top_k=1)
    write_records(tmp_path / "preds.jsonl", [])
    assert (tmp_path / "preds.csv").read_text() == "id,label,probability,truncated,top1," \
                                                   "top1_probability\n"
    assert (tmp_path / "preds.jsonl").read_text() == ""
    assert csv_header(0) == ["id", "label", "probability", "truncated"]


def test_an_id_that_is_not_utf8_does_not_end_the_run(tmp_path: Path) -> None:
    record = RECORDS[0] | {"id": os.fsdecode(b"scan\xe9.json")}  # a file name from an old system
    write_records(tmp_path / "preds.csv", [[record]])
    write_records(tmp_path / "preds.jsonl", [[record]])
    assert (tmp_path / "preds.csv").read_text().splitlines()[1].startswith("scan\\udce9.json,")
    assert json.loads((tmp_path / "preds.jsonl").read_text())["id"] == "scan\udce9.json"


def test_the_suffix_names_the_format() -> None:
    assert [output_format(p) for p in (None, "a.jsonl", "a.csv", "a.tsv", "A.CSV")] == [
        "jsonl", "jsonl", "csv", "tsv", "csv"]


# ------------------------------------------------------------------------------------------------
# 2. Standard output: JSON lines, flushed batch by batch
# ------------------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    """Standard output that records what a consumer had seen at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def flush(self) -> None:
        self.seen.append(self.getvalue())


def test_standard_output_gets_json_lines_flushed_each_batch() -> None:
    terminal = Terminal()
    write_records(None, [RECORDS[:1], RECORDS[1:]], stdout=terminal)
    lines = terminal.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == RECORDS
    assert terminal.seen == [lines[0] + "\n", lines[0] + "\n" + lines[1] + "\n"]
    assert not terminal.closed  # standard output is not ours to close


def test_standard_output_defaults_to_sys_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    write_records(None, [RECORDS[:1]])
    assert json.loads(capsys.readouterr().out) == RECORDS[0]


def test_a_closed_pipe_is_one_line(tmp_path: Path) -> None:
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    with pytest.raises(RvlError) as caught:
        write_records(None, [RECORDS], stdout=ClosedPipe())
    assert caught.value.message == "standard output: cannot write (Broken pipe)"


# ------------------------------------------------------------------------------------------------
# 3. -o PATH is replaced atomically
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_nothing_is_at_path_until_the_run_ends(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"preds{suffix}"
    path.write_text("previous run\n")
    with RecordWriter(path, top_k=3) as out:
        out.write(RECORDS)
        assert path.read_text() == "previous run\n"
        assert len(leftovers(tmp_path)) == 1
    assert "docs/a.json" in path.read_text()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_an_exception_midway_leaves_the_old_file_and_no_temporary_file(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"preds{suffix}"
    path.write_text("previous run\n")
    with pytest.raises(KeyboardInterrupt), RecordWriter(path, top_k=3) as out:
        out.write(RECORDS)
        raise KeyboardInterrupt
    assert path.read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_an_exception_midway_leaves_no_file_where_there_was_none(tmp_path: Path) -> None:
    with pytest.raises(KeyError), RecordWriter(tmp_path / "preds.csv", top_k=3) as out:
        out.write([RECORDS[0], {"id": "no label"}])
    assert list(tmp_path.iterdir()) == []


def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The temporary file is created, and every byte written to it goes to /dev/full (ENOSPC when
    a buffer is flushed: during a batch or only when the file is closed)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    real_open = builtins.open

    def open_on_full_disk(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        real_open(file, mode, *args, **kwargs).close()
        return real_open("/dev/full", mode, *args, **kwargs)

    monkeypatch.setattr("rvl_llm.predict.outputs.open", open_on_full_disk, raising=False)


@pytest.mark.parametrize("records", [1, 5000], ids=["fails at close", "fails in a batch"])
def test_a_full_disk_is_one_line_and_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records: int
) -> None:
    path = tmp_path / "preds.jsonl"
    path.write_text("previous run\n")
    full_disk(monkeypatch)
    with pytest.raises(RvlError) as caught:
        write_records(path, [RECORDS[:1] * records])
    assert caught.value.message == f"-o {path}: cannot write (No space left on device)"
    assert path.read_text() == "previous run\n"
    assert leftovers(tmp_path) == []


def test_a_failed_rename_is_one_line_and_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "preds.csv"
    path.write_text("previous run\n")

    def replace(source: Any, target: Any) -> None:
        raise ENOSPC

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(RvlError) as caught:
        write_records(path, [RECORDS])
    assert caught.value.message == f"-o {path}: cannot write (No space left on device)"
    assert path.read_text() == "previous run\n"
    assert leftovers(tmp_path) == []


def test_a_temporary_file_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "preds.jsonl"  # the folder went away after check_output
    with pytest.raises(RvlError) as caught:
        write_records(path, [RECORDS])
    assert caught.value.message == f"-o {path}: cannot write (No such file or directory)"


# ------------------------------------------------------------------------------------------------
# 4. -o checked before any model is loaded
# ------------------------------------------------------------------------------------------------


def test_check_output_accepts_a_new_or_existing_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "old.tsv").write_text("old")
    assert check_output(tmp_path / "new.csv") == "csv"
    assert check_output(tmp_path / "old.tsv") == "tsv"
    assert check_output(None) == "jsonl"
    monkeypatch.chdir(tmp_path)
    assert check_output("here.jsonl") == "jsonl"  # parent "." exists


def test_a_bad_suffix_is_one_line_naming_the_allowed_ones(tmp_path: Path) -> None:
    for path in (tmp_path / "preds.json", tmp_path / "preds"):
        with pytest.raises(RvlError) as caught:
            check_output(path)
        assert caught.value.message == (
            f"-o {path}: the file name must end in .jsonl, .csv, .tsv (it names the format)")
        with pytest.raises(RvlError):
            RecordWriter(path, top_k=3)  # refused before anything is opened
    assert list(tmp_path.iterdir()) == []


def test_o_naming_a_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "out.csv"
    folder.mkdir()
    with pytest.raises(RvlError) as caught:
        check_output(folder)
    assert caught.value.message == f"-o {folder}: is a folder; name a file ending in .jsonl, " \
                                   ".csv, .tsv"


def test_o_in_a_missing_folder_or_under_a_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RvlError) as caught:
        check_output(tmp_path / "missing" / "preds.csv")
    assert caught.value.message == (f"-o {tmp_path / 'missing' / 'preds.csv'}: "
                                    f"no folder {tmp_path / 'missing'}")
    (tmp_path / "file").write_text("")
    with pytest.raises(RvlError) as caught:
        check_output(tmp_path / "file" / "preds.csv")
    assert caught.value.message == (f"-o {tmp_path / 'file' / 'preds.csv'}: "
                                    f"{tmp_path / 'file'} is not a folder")


@pytest.mark.skipif(AS_ROOT, reason="root writes in folders whatever their mode")
def test_o_in_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(RvlError) as caught:
        check_output(folder / "preds.csv")
    assert caught.value.message == (f"-o {folder / 'preds.csv'}: cannot write in the folder "
                                    f"{folder} (permission denied)")


# ------------------------------------------------------------------------------------------------
# Issue 14: ids with control characters and formulas (7), -o among the inputs (1), staging (18)
# ------------------------------------------------------------------------------------------------

HOSTILE_IDS = ["a\rb.txt", "line\nbreak", "nul\x00and\x0bvt", "sep\u2028x", 'quo"te, comma',
               "=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "\tlead", "plain"]


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_any_id_reads_back_one_row_a_record_with_formulas_neutralised(
        tmp_path: Path, suffix: str) -> None:
    import csv

    records = [RECORDS[0] | {"id": doc_id} for doc_id in HOSTILE_IDS]
    path = tmp_path / f"preds{suffix}"
    write_records(path, [records])
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="," if suffix == ".csv" else "\t"))
    assert len(rows) == len(HOSTILE_IDS)
    expected = [f"'{i}" if i[0] in "=+-@\t" else i for i in HOSTILE_IDS]
    assert [row["id"] for row in rows] == expected
    assert {row["label"] for row in rows} == {"letter"}  # no cell moved to another column
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(path, sep="," if suffix == ".csv" else "\t", keep_default_na=False)
    assert list(frame["id"]) == expected and list(frame["probability"]) == [0.873457] * 11


def test_a_formula_label_is_neutralised_and_plain_rows_stay_minimally_quoted(
        tmp_path: Path) -> None:
    from rvl_llm.predict.outputs import safe_cell

    assert safe_cell("=1+1") == "'=1+1" and safe_cell("a=b") == "a=b"
    record = RECORDS[1] | {"label": "-memo", "top_k": [{"label": "-memo", "probability": 0.5}]}
    write_records(tmp_path / "preds.csv", [[record]], top_k=1)
    assert (tmp_path / "preds.csv").read_text().splitlines()[1] == (
        "\"b, final\tv2\",'-memo,0.5,true,'-memo,0.5")


def test_o_that_is_an_input_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "a"}\n')
    folder = tmp_path / "folder"
    folder.mkdir()
    link = tmp_path / "link.jsonl"
    link.symlink_to(docs)
    hard = tmp_path / "hard.jsonl"
    os.link(docs, hard)
    cases = [(docs, [str(docs)], "is the INPUT"), (link, [str(docs)], "is the INPUT"),
             (docs, [str(link)], "is the INPUT"), (hard, [str(docs)], "is the INPUT"),
             (folder / "out.jsonl", [str(folder)], "inside the INPUT folder")]
    for out, inputs, words in cases:
        with pytest.raises(RvlError) as caught:
            check_output(out, inputs)
        assert f"-o {out}" in caught.value.message and words in caught.value.message
        assert "\n" not in caught.value.message
    assert docs.read_text() == '{"text": "a"}\n'
    # A sub-folder of an input folder is not read (not recursive), nor is another file.
    (folder / "sub").mkdir()
    assert check_output(folder / "sub" / "out.csv", [str(folder)]) == "csv"
    assert check_output(tmp_path / "out.jsonl", [str(docs), "-", "missing.json"]) == "jsonl"


def dead_pid() -> int:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def killed_staging(target: Path, pid: int) -> Path:
    """The staging name a process ``pid`` would have left for ``target`` (as kill -9 leaves)."""
    from rvl_llm.atomic import staging_path

    mine = staging_path(target)
    parts = mine.name.rsplit("-", 3)  # name, pid, host, random
    return mine.with_name(f"{parts[0]}-{pid}-{parts[2]}-{parts[3]}")


def test_a_killed_runs_temporary_file_goes_on_the_next_run_a_live_ones_stays(
        tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    stale = killed_staging(out, dead_pid())
    stale.write_text("half a run")
    live = killed_staging(out, os.getppid())  # a process that is running
    live.write_text("a run in progress")
    other = killed_staging(tmp_path / "other.csv", dead_pid())  # another target: not ours
    other.write_text("x")
    unknown = tmp_path / f"{TEMP_PREFIX}out.csv-abcdef12"  # no pid: cannot tell
    unknown.write_text("x")
    writer = write_records(out, [RECORDS])
    assert writer.removed_stale == [stale]
    assert not stale.exists() and live.exists() and other.exists() and unknown.exists()
    assert out.read_text().startswith("id,label")


def test_a_killed_exports_staging_folder_goes_with_the_next_one(tmp_path: Path) -> None:
    """Export (and eval) build in ``make_staging_dir``: it removes a dead builder's folder."""
    from rvl_llm.atomic import discard_staging_dir, find_staging, make_staging_dir

    target = tmp_path / "export"
    stale = killed_staging(target, dead_pid())
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "model.safetensors").write_bytes(b"\0" * 1024)
    live = killed_staging(target, os.getppid())
    live.mkdir()
    staging, created = make_staging_dir(target)
    assert not stale.exists() and live.exists() and staging.is_dir()
    states = {s.path: s.alive for s in find_staging(tmp_path)}
    assert states == {live: True, staging: True}
    discard_staging_dir(staging, created)


def test_cache_ls_lists_staging_files_with_their_owner(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rvl_llm.cli import main

    stale = killed_staging(tmp_path / "abc123", dead_pid())
    stale.mkdir()
    (stale / "shard.arrow").write_bytes(b"\0" * 2**20)
    result = CliRunner().invoke(main, ["cache", "ls", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"staging {stale}  1.0 MiB  (stale: process ")
