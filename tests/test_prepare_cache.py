"""run_prepare and its cache: every key part, hits without tokenising, the manifest and the shards,
atomic builds (exceptions, SIGKILL), concurrent prepares and damaged shards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import psutil
import pytest

from rvl_llm.dataclass_json import to_json
from rvl_llm.errors import RvlError
from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline import cache, manifest, tokenize
from rvl_llm.pipeline import prepare as prepare_module
from rvl_llm.pipeline import shards as shards_module
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.manifest import IGNORE_INDEX, SPLITS, Manifest, shard_schema
from rvl_llm.pipeline.prepare import run_prepare
from rvl_llm.pipeline.prompt import DEFAULT_RESPONSE_TEMPLATE, PromptSettings
from rvl_llm.pipeline.shards import ShardWriter
from rvl_llm.presets import TOKENIZER_FILES

ROOT = Path(__file__).resolve().parent.parent
MAX_LEN = 64


@dataclass
class Env:
    """A corpus, a private copy of the tiny-mistral tokenizer files and a cache folder."""

    tmp: Path
    data: Path
    tokenizer: Path
    cache: Path

    def cfg(self, **overrides: object) -> PrepareConfig:
        settings: dict[str, object] = {
            "data_dir": self.data, "model": str(self.tokenizer), "cache_dir": self.cache,
            "max_len": MAX_LEN, "generative": True, "progress": False,
        }
        return PrepareConfig(**(settings | overrides))


def copy_tokenizer(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    return target


@pytest.fixture
def env(tmp_path: Path, small_corpus: Path, tokenizer_dirs: dict[str, Path],
        fast_tokenizer_loads: None) -> Env:
    tokenizer = copy_tokenizer(tokenizer_dirs["tiny-mistral"], tmp_path / "tok")
    return Env(tmp_path, small_corpus, tokenizer, tmp_path / "cache")


def leftovers(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.rglob("*") if p.name.startswith(cache.TEMP_PREFIX)]


# ------------------------------------------------------------------------------------------------
# The manifest and the shards
# ------------------------------------------------------------------------------------------------

LONG = " ".join(f"paragraph {i} of a long report." for i in range(200))
FILES = {
    "train_0000_0_aws.json": "Dear Sir, thank you for your letter.",
    "train_0001_11_aws.json": "INVOICE No. 4711 Total due $1,250.00 </s> <s>",
    "train_0002_11_aws.json": LONG,
    "train_0003_15_aws.json": "",  # empty OCR: kept, counted
    "train_0004_5_aws.json": b'{"id": "latin-1", "ocr": "r\xe9sum\xe9 of results"}',
    "validation_0000_3_aws.json": "handwritten note",
    "test_0000_14_aws.json": {"path": "scans/resume.tif", "ocr": "RESUME John Smith"},
}


def expected_rows(tok, texts: list[str], labels: list[int], generative: bool) -> list[list[int]]:
    """Rows built from whole-text tokenisation, independently of encode_documents."""
    rows = []
    if generative:
        template = tokenize.build_template(
            tok.tokenizer, tok.encode, generative=True, response_template=DEFAULT_RESPONSE_TEMPLATE,
            labels=RVL_CDIP_CLASSES, max_len=MAX_LEN,
        )
        for text, label in zip(texts, labels, strict=True):
            doc = tok.full(text)[: template.document_budget]
            rows.append([tok.bos, *doc, *template.directive, *template.completions[label]])
    else:
        rows = [[tok.bos, *tok.full(text)[: MAX_LEN - 1]] for text in texts]
    return rows


@pytest.mark.parametrize("generative", [True, False], ids=["generative", "classifier"])
def test_manifest_and_shards_hold_exactly_the_rows(
    tok, write_corpus: Callable[..., Path], tmp_path: Path, generative: bool,
    fast_tokenizer_loads: None,
) -> None:
    import datasets
    import pyarrow as pa

    data = write_corpus(FILES)
    cfg = PrepareConfig(data_dir=data, model=str(tok.folder), cache_dir=tmp_path / "cache",
                        max_len=MAX_LEN, generative=generative, progress=False)
    result = run_prepare(cfg)
    m = result.manifest
    assert result.built == SPLITS and result.reused == ()
    assert m.root == (tmp_path / "cache").resolve() / m.key
    assert json.loads((m.root / "manifest.json").read_text()) == json.loads(json.dumps(m.to_json()))
    assert Manifest.load(m.root) == m

    # Settings in clear text.
    s = m.settings
    assert s["format_version"] == manifest.FORMAT_VERSION
    assert s["mode"] == ("generative" if generative else "classifier")
    assert s["max_len"] == MAX_LEN
    assert s["prompt"]["settings"]["response_template"] == DEFAULT_RESPONSE_TEMPLATE
    assert s["labels"] == s["prompt"]["labels"] == list(RVL_CDIP_CLASSES)
    assert s["prompt"]["tokenizer"] == {
        n: cache.file_sha256(tok.folder / n) for n in TOKENIZER_FILES if (tok.folder / n).is_file()}
    assert s["data"]["dir"] == str(data.resolve())
    assert s["data"]["files"] == {"train": 5, "validation": 1, "test": 1}
    assert s["source"]["model"] == str(tok.folder)
    assert m.template.prefix == (tok.bos,)

    train = m.splits["train"]
    assert (train.rows, train.truncated, train.empty, train.replaced_utf8) == (5, 1, 1, 1)
    assert train.skipped_files == ()
    assert train.class_counts == {
        name: {0: 1, 5: 1, 11: 2, 15: 1}.get(i, 0) for i, name in enumerate(RVL_CDIP_CLASSES)
    }
    assert list(train.class_counts) == list(RVL_CDIP_CLASSES)
    assert set(train.length) == {"min", "mean", "median", "p90", "p99", "max"}
    assert [m.splits[s].rows for s in SPLITS] == [5, 1, 1]

    texts = ["Dear Sir, thank you for your letter.",
             "INVOICE No. 4711 Total due $1,250.00 </s> <s>", LONG, "",
             "r\ufffdsum\ufffd of results"]
    labels = [0, 11, 11, 15, 5]
    rows = expected_rows(tok, texts, labels, generative)
    assert (train.length["min"], train.length["max"]) == (min(map(len, rows)), max(map(len, rows)))
    assert train.length["max"] <= MAX_LEN

    for split in SPLITS:
        info = m.splits[split]
        assert [sh.file for sh in info.shards] == ["shard-00000.arrow"]
        for shard, path in zip(info.shards, m.shard_paths(split), strict=True):
            assert path.stat().st_size == shard.bytes
            assert cache.file_sha256(path) == shard.sha256
            with pa.ipc.open_stream(pa.OSFile(str(path))) as reader:
                assert reader.schema.equals(shard_schema(generative))
                assert reader.read_all().num_rows == shard.rows

    ds = datasets.Dataset.from_file(str(m.shard_paths("train")[0]))
    assert ds.column_names == shard_schema(generative).names
    assert ds.data.schema.remove_metadata().equals(shard_schema(generative))
    via_manifest = m.dataset("train")
    assert via_manifest.to_dict() == ds.to_dict()

    assert ds["input_ids"] == rows
    for row in ds:  # the OCR'd "</s>" and "<s>" stayed text: BOS first, EOS last or nowhere
        assert row["input_ids"].count(tok.bos) == 1 and row["input_ids"][0] == tok.bos
        assert row["input_ids"].count(tok.eos) == (1 if generative else 0)
    assert ds["label"] == labels
    assert ds["doc_id"] == ["train_0000_0_aws", "train_0001_11_aws", "train_0002_11_aws",
                            "train_0003_15_aws", "latin-1"]
    assert ds["length"] == [len(r) for r in rows]
    assert ds["truncated"] == [False, False, True, False, False]
    assert m.dataset("test")["doc_id"] == ["scans/resume.tif"]
    if generative:
        for row in ds:
            n = row["prompt_len"]
            assert row["labels"][:n] == [IGNORE_INDEX] * n
            assert row["labels"][n:] == row["input_ids"][n:]
            assert row["input_ids"][n:] == list(m.template.completions[row["label"]])
    else:
        assert "labels" not in ds.column_names
        assert ds["prompt_len"] == ds["length"]
        assert max(ds["length"]) <= MAX_LEN


def test_a_split_rolls_over_into_several_shards(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    single = run_prepare(env.cfg(splits=("train",))).manifest.dataset("train").to_dict()
    monkeypatch.setattr(shards_module, "ROWS_PER_SHARD", 3)
    result = run_prepare(env.cfg(splits=("train",), tokenize_batch=1, cache_dir=env.tmp / "c2"))
    info = result.manifest.splits["train"]
    assert [(s.file, s.rows) for s in info.shards] == [("shard-00000.arrow", 3),
                                                        ("shard-00001.arrow", 1)]
    assert cache.split_problem(result.manifest, "train") is None
    assert result.manifest.dataset("train").to_dict() == single


# ------------------------------------------------------------------------------------------------
# The cache key: one change at a time
# ------------------------------------------------------------------------------------------------


def insert_byte(path: Path) -> None:
    """One more byte (a space after the opening brace): same meaning, other content."""
    path.write_bytes(path.read_bytes().replace(b"{", b"{ ", 1))


def labels_file(env: Env, names: tuple[str, ...]) -> Path:
    path = env.tmp / "labels.txt"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return path


def first_train_file(env: Env) -> Path:
    return sorted(env.data.glob("train_*.json"))[0]


def change_tokenizer_config(env: Env, monkeypatch: pytest.MonkeyPatch) -> PrepareConfig:
    insert_byte(env.tokenizer / "tokenizer_config.json")
    return env.cfg()


def change_tokenizer_json(env: Env, monkeypatch: pytest.MonkeyPatch) -> PrepareConfig:
    insert_byte(env.tokenizer / "tokenizer.json")
    return env.cfg()


def bump_format_version(env: Env, monkeypatch: pytest.MonkeyPatch) -> PrepareConfig:
    monkeypatch.setattr(manifest, "FORMAT_VERSION", manifest.FORMAT_VERSION + 1)
    monkeypatch.setattr(prepare_module, "FORMAT_VERSION", manifest.FORMAT_VERSION)
    return env.cfg()


def touch_a_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> PrepareConfig:
    path = first_train_file(env)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    return env.cfg()


def grow_a_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> PrepareConfig:
    path = first_train_file(env)
    stat = path.stat()
    path.write_text(json.dumps({"id": "x", "ocr": "a longer text than before"}))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # only the size differs
    return env.cfg()


def add_a_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> PrepareConfig:
    (env.data / "test_0009_2_aws.json").write_text('{"ocr": "new"}')
    return env.cfg()


def remove_a_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> PrepareConfig:
    first_train_file(env).unlink()
    return env.cfg()


def move_the_data(env: Env, monkeypatch: pytest.MonkeyPatch) -> PrepareConfig:
    return env.cfg(data_dir=Path(shutil.copytree(env.data, env.tmp / "moved-data")))


def copy_the_tokenizer(env: Env, monkeypatch: pytest.MonkeyPatch) -> PrepareConfig:
    return env.cfg(model=str(shutil.copytree(env.tokenizer, env.tmp / "renamed-tok")))


Change = Callable[[Env, pytest.MonkeyPatch], PrepareConfig]
MISSES: dict[str, Change] = {
    "tokenizer_config.json": change_tokenizer_config,
    "tokenizer.json": change_tokenizer_json,
    "mode": lambda e, mp: e.cfg(generative=False),
    "template": lambda e, mp: e.cfg(response_template=" ### Classification:"),
    "max-len": lambda e, mp: e.cfg(max_len=MAX_LEN + 1),
    "label set": lambda e, mp: e.cfg(
        labels_file=labels_file(e, (*RVL_CDIP_CLASSES[:-1], "memorandum"))),
    "format version": bump_format_version,
    "touched file": touch_a_file,
    "file size": grow_a_file,
    "added file": add_a_file,
    "removed file": remove_a_file,
    "data folder path": move_the_data,
}
HITS: dict[str, Change] = {
    "same run": lambda e, mp: e.cfg(),
    "tokenizer folder copied": copy_the_tokenizer,
    "same label set from a file": lambda e, mp: e.cfg(labels_file=labels_file(e, RVL_CDIP_CLASSES)),
    "batch size, progress": lambda e, mp: e.cfg(tokenize_batch=1, progress=True),
    "bad-file skipping": lambda e, mp: e.cfg(skip_bad_files=True),
}


@pytest.mark.parametrize("change", MISSES.values(), ids=MISSES.keys())
def test_each_key_part_changes_the_entry(
    env: Env, monkeypatch: pytest.MonkeyPatch, change: Change
) -> None:
    first = run_prepare(env.cfg())
    second = run_prepare(change(env, monkeypatch))
    assert second.root != first.root
    assert second.built == SPLITS and second.reused == ()
    assert cache.cache_key(second.manifest.settings) == second.manifest.key
    # The old entry is left alone.
    assert all(cache.split_problem(first.manifest, s) is None for s in SPLITS)


@pytest.mark.parametrize("change", HITS.values(), ids=HITS.keys())
def test_what_is_not_a_key_part_hits(
    env: Env, monkeypatch: pytest.MonkeyPatch, change: Change
) -> None:
    first = run_prepare(env.cfg())
    second = run_prepare(change(env, monkeypatch))
    assert second.root == first.root
    assert second.built == () and second.reused == SPLITS


def test_classifier_entries_ignore_the_response_template(env: Env) -> None:
    first = run_prepare(env.cfg(generative=False))
    second = run_prepare(env.cfg(generative=False, response_template="\n### Label:"))
    assert (second.root, second.built) == (first.root, ())
    assert first.manifest.settings["prompt"]["settings"]["response_template"] == (
        DEFAULT_RESPONSE_TEMPLATE)


def test_format_version_bump_writes_the_new_version(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = manifest.FORMAT_VERSION
    result = run_prepare(bump_format_version(env, monkeypatch))
    on_disk = json.loads((result.root / "manifest.json").read_text())
    assert on_disk["format_version"] == on_disk["settings"]["format_version"] == current + 1


@pytest.mark.parametrize(
    "damage", ["other format", "garbage", "not an object", "missing key", "unknown split key"]
)
def test_an_unreadable_manifest_is_rebuilt(env: Env, damage: str) -> None:
    first = run_prepare(env.cfg())
    path = first.root / "manifest.json"
    data = json.loads(path.read_text())
    if damage == "garbage":
        path.write_text("{not json")
    elif damage == "other format":
        version = f'"format_version": {manifest.FORMAT_VERSION}'
        path.write_text(path.read_text().replace(version, '"format_version": 0', 1))
    elif damage == "not an object":
        path.write_text("[]")
    elif damage == "missing key":
        del data["template"]
        path.write_text(json.dumps(data))
    else:
        data["splits"]["train"]["written_by"] = "another tool"
        path.write_text(json.dumps(data))
    again = run_prepare(env.cfg())
    assert again.root == first.root and again.built == SPLITS
    assert Manifest.load(first.root) == again.manifest


# ------------------------------------------------------------------------------------------------
# Hits, added splits
# ------------------------------------------------------------------------------------------------


def test_a_cache_hit_does_no_tokenisation_and_is_fast(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_prepare(env.cfg())

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cache hit loaded the tokenizer")

    monkeypatch.setattr(tokenize, "load_tokenizer", no_loading)
    monkeypatch.setattr(tokenize, "encode_documents", no_loading)
    started = time.perf_counter()
    again = run_prepare(env.cfg())
    assert time.perf_counter() - started < 1.0
    assert again.seconds < 1.0
    assert (again.built, again.reused, again.notes) == ((), SPLITS, ())
    assert again.manifest == first.manifest


def test_a_cache_hit_imports_neither_torch_nor_transformers(env: Env) -> None:
    first = run_prepare(env.cfg())
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rvl_llm.pipeline.config import PrepareConfig\n"
        "from rvl_llm.pipeline.prepare import run_prepare\n"
        f"cfg = PrepareConfig(data_dir=Path({str(env.data)!r}), model={str(env.tokenizer)!r},\n"
        f"    cache_dir=Path({str(env.cache)!r}), max_len={MAX_LEN}, generative=True)\n"
        "result = run_prepare(cfg)\n"
        "assert result.built == (), result.built\n"
        "print(result.root)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60, cwd=env.tmp)
    assert out.stdout.splitlines() == [str(first.root), "[]"]


def test_other_splits_are_added_to_the_same_entry(env: Env) -> None:
    first = run_prepare(env.cfg(splits=("train",)))
    assert list(first.manifest.splits) == ["train"]
    assert not (first.root / "validation").exists()
    second = run_prepare(env.cfg(splits=("test", "validation")))
    assert second.root == first.root
    assert (second.built, second.reused) == (("test", "validation"), ())
    assert list(second.manifest.splits) == list(SPLITS)
    assert second.manifest.splits["train"] == first.manifest.splits["train"]
    third = run_prepare(env.cfg())
    assert (third.built, third.reused) == ((), SPLITS)
    assert Manifest.load(first.root) == third.manifest


# ------------------------------------------------------------------------------------------------
# Atomicity and concurrency
# ------------------------------------------------------------------------------------------------


def fail_after_first_write(monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = ShardWriter.write
    calls = []

    def write(self: ShardWriter, rows: object, docs: object) -> None:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("disk full")
        real_write(self, rows, docs)

    monkeypatch.setattr(ShardWriter, "write", write)


def test_an_exception_mid_build_leaves_nothing(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_after_first_write(monkeypatch)
    with pytest.raises(RvlError, match=r"cannot write the shards \(disk full\)"):
        run_prepare(env.cfg(tokenize_batch=1))
    entries = [p for p in env.cache.iterdir() if p.is_dir()]
    assert all(list(p.iterdir()) == [] for p in entries)  # no split folder, no manifest
    assert leftovers(env.cache) == []
    assert cache.list_entries(env.cache) == ([], [])


def test_an_exception_mid_split_keeps_the_finished_splits(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_prepare(env.cfg(splits=("train",)))
    with monkeypatch.context() as patch:
        fail_after_first_write(patch)
        with pytest.raises(RvlError, match="disk full"):
            run_prepare(env.cfg(tokenize_batch=1, splits=("validation", "test")))
    assert sorted(p.name for p in first.root.iterdir()) == ["manifest.json", "train"]
    assert Manifest.load(first.root) == first.manifest
    again = run_prepare(env.cfg())
    assert (again.built, again.reused) == (("validation", "test"), ("train",))


@pytest.mark.slow
def test_a_prepare_killed_mid_build_leaves_nothing_complete(
    env: Env, write_corpus: Callable[..., Path]
) -> None:
    # Many chunks of 512 documents, written in order: killed once the first chunk is in a
    # shard, the rest still to come.
    docs = 512 * 6
    body = " ".join(f"word{i % 97} line {i}." for i in range(15))
    data = write_corpus({f"train_{i:05d}_{i % 16}_aws.json": f"doc {i} {body}" for i in range(docs)}
                        | {"validation_0000_1_aws.json": "v", "test_0000_2_aws.json": "t"},
                        folder="big")
    command = [sys.executable, "-m", "rvl_llm", "prepare", "--data", str(data), "--model",
               str(env.tokenizer), "--cache-dir", str(env.cache), "--max-len", "256",
               "--no-progress"]
    log = env.tmp / "prepare.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=env.tmp)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        partial = f"*/{cache.TEMP_PREFIX}train-*/shard-00000.arrow"
        while not list(env.cache.glob(partial)):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the build never started"
            time.sleep(0.005)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f"finished before the kill: {log.read_text()}"
        # Nothing it started outlives it.
        _gone, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
    finally:
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    (root,) = [p for p in env.cache.iterdir() if p.is_dir()]
    assert [p.name.startswith(f"{cache.TEMP_PREFIX}train-") for p in root.iterdir()] == [True]
    assert cache.list_entries(env.cache) == ([], [])

    result = run_prepare(env.cfg(data_dir=data, max_len=256, generative=False))
    assert result.root == root and result.built == SPLITS
    assert leftovers(env.cache) == []
    assert sorted(p.name for p in root.iterdir()) == ["manifest.json", *sorted(SPLITS)]
    assert result.manifest.splits["train"].rows == docs
    assert all(cache.split_problem(result.manifest, s) is None for s in SPLITS)


@pytest.mark.slow
def test_concurrent_prepares_of_one_key_tokenise_once(env: Env) -> None:
    command = [sys.executable, "-m", "rvl_llm", "prepare", "--data", str(env.data), "--model",
               str(env.tokenizer), "--cache-dir", str(env.cache), "--max-len", str(MAX_LEN),
               "--generative", "--no-progress"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=env.tmp) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    lasts = {out.splitlines()[-1] for out, _ in outputs}
    assert len(lasts) == 1
    (root,) = lasts
    summaries = sorted(line.split(" in ")[0] for out, _ in outputs for line in out.splitlines()
                       if line.startswith("prepare: "))
    assert summaries == ["prepare: built train, validation, test", "prepare: cache hit"]
    assert Manifest.load(Path(root)).key == Path(root).name
    assert leftovers(env.cache) == []


# ------------------------------------------------------------------------------------------------
# Damaged shards
# ------------------------------------------------------------------------------------------------


def flip_middle(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 8] = bytes(b ^ 0xFF for b in raw[middle : middle + 8])
    path.write_bytes(bytes(raw))


def cut(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


@pytest.mark.parametrize(
    ("damage", "problem"),
    [(flip_middle, "is corrupted (checksum mismatch)"), (cut, "is truncated"),
     (Path.unlink, "is missing")],
    ids=["flipped", "cut", "deleted"],
)
def test_a_damaged_shard_is_detected_and_rebuilt_identically(
    env: Env, damage: Callable[[Path], None], problem: str
) -> None:
    first = run_prepare(env.cfg())
    shard = first.manifest.shard_paths("validation")[0]
    before = first.manifest.dataset("validation").to_dict()
    size = shard.stat().st_size
    damage(shard)
    if damage is flip_middle:
        assert shard.stat().st_size == size
    messages: list[str] = []
    again = run_prepare(env.cfg(), log=messages.append)
    # (this test's tokenizer also says why it is loaded with transformers)
    messages = [m for m in messages if m.startswith("cache:")]
    assert len(messages) == 1
    assert messages[0].startswith(f"cache: {shard} {problem}")
    assert messages[0].endswith("; rebuilding split validation")
    assert again.notes == tuple(messages)
    assert (again.built, again.reused) == (("validation",), ("train", "test"))
    assert again.manifest.splits["validation"].shards == first.manifest.splits["validation"].shards
    assert again.manifest.dataset("validation").to_dict() == before
    assert cache.file_sha256(shard) == first.manifest.splits["validation"].shards[0].sha256


def settle(root: Path) -> None:
    """Date the manifest a second after its shards, as a build of real shards does (hashing one
    takes longer than a clock tick); a tiny test entry is otherwise written within one tick."""
    path = root / "manifest.json"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_a_hit_reads_no_shard_but_checks_sizes_and_inputs(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_prepare(env.cfg())
    settle(first.root)
    hashed: list[Path] = []
    real_sha256 = cache.file_sha256
    monkeypatch.setattr(cache, "file_sha256", lambda p: hashed.append(Path(p)) or real_sha256(p))
    hit = run_prepare(env.cfg())
    assert (hit.built, hit.root) == ((), first.root)
    assert [p for p in hashed if p.suffix == ".arrow"] == []  # sizes and mtimes only

    # A modified input (same size, new content) is a new key, as before.
    path = first_train_file(env)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"e", b"E", 1))
    assert path.stat().st_size == len(raw)
    changed = run_prepare(env.cfg())
    assert changed.root != first.root and changed.built == SPLITS

    # A truncated shard is caught by its size, without reading it.
    settle(changed.root)
    shard = changed.manifest.shard_paths("train")[0]
    cut(shard)
    size = shard.stat().st_size
    messages: list[str] = []
    again = run_prepare(env.cfg(), log=messages.append)
    assert [m for m in messages if m.startswith("cache:")] == [
        f"cache: {shard} is truncated or overwritten ({size} of "
        f"{changed.manifest.splits['train'].shards[0].bytes} bytes); rebuilding split train"]
    assert again.built == ("train",)


def test_a_rewritten_shard_is_hashed_on_a_hit(env: Env) -> None:
    """Same size, new bytes: its mtime changed since the build hashed it, so the hit reads it."""
    first = run_prepare(env.cfg())
    settle(first.root)
    shard = first.manifest.shard_paths("test")[0]
    recorded = first.manifest.splits["test"].shards[0].mtime_ns
    assert shard.stat().st_mtime_ns == recorded
    flip_middle(shard)
    os.utime(shard, ns=(recorded, recorded + 1))  # even a nanosecond away
    messages: list[str] = []
    again = run_prepare(env.cfg(), log=messages.append)
    assert f"cache: {shard} is corrupted (checksum mismatch); rebuilding split test" in messages
    assert again.built == ("test",)


def test_a_shard_as_new_as_its_manifest_is_hashed_on_a_hit(env: Env) -> None:
    """Written within the manifest's clock tick, a shard's mtime proves nothing (git's "racily
    clean" entries): the hit reads it."""
    first = run_prepare(env.cfg())
    shard = first.manifest.shard_paths("test")[0]
    recorded = first.manifest.splits["test"].shards[0].mtime_ns
    flip_middle(shard)
    os.utime(shard, ns=(recorded, recorded))  # the mtime the build recorded
    manifest_path = first.root / "manifest.json"
    os.utime(manifest_path, ns=(recorded, recorded))
    again = run_prepare(env.cfg())
    assert again.built == ("test",)


def test_cache_verify_hashes_what_a_hit_trusts(env: Env) -> None:
    """A same-size corruption that kept the shard's mtime (bit rot; a copy with its times put
    back) passes a hit's size and mtime check; ``cache verify`` reads every byte, names it and
    dates it now (bytes untouched), so the next prepare rebuilds it as verify says."""
    from click.testing import CliRunner

    from rvl_llm.cli import main

    first = run_prepare(env.cfg())
    settle(first.root)
    shard = first.manifest.shard_paths("validation")[0]
    stat = shard.stat()
    flip_middle(shard)
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    damaged = shard.read_bytes()
    assert run_prepare(env.cfg()).built == ()  # the documented limit of a hit

    verify = CliRunner().invoke(main, ["cache", "verify", "--cache-dir", str(env.cache)])
    assert verify.exit_code == 1
    assert verify.output.splitlines() == [
        f"{first.manifest.key} {'train':<10} OK",
        f"{first.manifest.key} {'validation':<10} {shard} is corrupted (checksum mismatch)",
        f"{first.manifest.key} {'test':<10} OK",
        f"Error: 1 damaged split(s) in {env.cache}; prepare rebuilds them",
    ]
    assert shard.read_bytes() == damaged  # verify reads; it only dates the shard now
    messages: list[str] = []
    again = run_prepare(env.cfg(), log=messages.append)  # so prepare reads it, and rebuilds
    assert f"cache: {shard} is corrupted (checksum mismatch); rebuilding split validation" in (
        messages)
    assert again.built == ("validation",)
    assert cache.file_sha256(shard) == first.manifest.splits["validation"].shards[0].sha256


def test_builds_are_byte_for_byte_reproducible(env: Env) -> None:
    first = run_prepare(env.cfg())
    copy = replace(env, cache=env.tmp / "other-cache")
    second = run_prepare(copy.cfg())
    assert second.manifest.key == first.manifest.key
    for split in SPLITS:
        assert [s.sha256 for s in second.manifest.splits[split].shards] == [
            s.sha256 for s in first.manifest.splits[split].shards
        ]




def test_the_key_hashes_the_prompt_the_source_and_the_selection(env: Env) -> None:
    """The settings and key of a folder, written out by hand: the resolved prompt whole (its
    settings as PromptSettings writes them), the documents' identity and the subset (none)."""
    import hashlib

    for i, path in enumerate(sorted(env.data.iterdir())):
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000 + i))
    m = run_prepare(env.cfg()).manifest
    digest = hashlib.sha256()
    for split in sorted(SPLITS):
        for path in sorted(env.data.resolve().glob(f"{split}_*.json")):
            stat = path.stat()
            digest.update(f"{split}\t{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    expected = {
        "format_version": manifest.FORMAT_VERSION,
        "mode": "generative",
        "max_len": MAX_LEN,
        "labels": list(RVL_CDIP_CLASSES),
        "prompt": {
            "settings": to_json(PromptSettings(max_len=MAX_LEN, generative=True, prompt="plain")),
            "tokenizer": {n: cache.file_sha256(env.tokenizer / n) for n in TOKENIZER_FILES
                          if (env.tokenizer / n).is_file()},
            "labels": list(RVL_CDIP_CLASSES),
            "chat": None,
        },
        "data": {
            "dir": str(env.data.resolve()),
            "prefixes": {"train": "train_", "validation": "validation_", "test": "test_"},
            "suffix": "_aws",
            "files": {"train": 4, "validation": 4, "test": 4},
            "fingerprint": digest.hexdigest(),
        },
        "selection": None,
        "source": {"model": str(env.tokenizer), "location": str(env.tokenizer.resolve())},
    }
    assert json.dumps(m.settings) == json.dumps(expected)  # same keys, same order
    keyed = {k: expected[k] for k in ("format_version", "prompt", "data", "selection")}
    assert m.key == hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:20]
    assert "selection" not in json.loads((m.root / "manifest.json").read_text())["splits"]["train"]
