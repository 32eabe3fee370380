"""A synthetic, deterministic RVL-CDIP-like OCR corpus.

RVL-CDIP's documents come from the tobacco-litigation archives (letters, memos, forms, invoices,
scientific papers, ...) and its OCR text is noisy.  This module writes look-alike documents in the
layout of the RVL-CDIP OCR release: one JSON file per document, named
``{split}_{index:04d}_{label}_aws.json`` and holding ``{"id": "<split>_<index>", "ocr": "<text>"}``;
the same documents can be written as one JSON-lines or Parquet table.

What the classes look like is data: ``classes.toml`` describes each class (its lengths, key
words, headers, footers and structured blocks: tables, form fields, reference lists, ...) and
``words.toml`` holds the shared word tables and the OCR noise tables; the template language
they are written in is :mod:`rvl_llm.sample.templates`.  This module mixes class words into a
large shared filler vocabulary, so a small model can learn the classes but not trivially.
Lengths are roughly log-normal (median about 250 words, a tail up to about 6,000), about 2% of
the documents are empty and a few are whitespace only, and OCR-like noise is added (character
confusions, split and merged words, stray punctuation, odd line breaks).

Everything is driven by :class:`random.Random` instances, never the global generator, so a seed
gives the same bytes on every run.
"""

from __future__ import annotations

import functools
import json
import math
import random
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import document_file_name
from rvl_llm.pipeline.manifest import SPLITS
from rvl_llm.sample.templates import (
    CorpusSpecError,
    Lines,
    PartCompiler,
    Rng,
    Scope,
    Step,
    Table,
    bates,
    bound_names,
    make_pieces,
    randint,
    run_steps,
)

WORDS_FILE = Path(__file__).with_name("words.toml")
CLASSES_FILE = Path(__file__).with_name("classes.toml")
DEFAULT_PER_CLASS: dict[str, int] = {"train": 48, "validation": 8, "test": 8}
NUM_CLASSES = len(RVL_CDIP_CLASSES)
MAX_WORDS = 6000
EMPTY_RATE = 0.02
BLANK_RATE = 0.006
LONG_EVERY = 256
LONG_OFFSET = 6

# File names as `rvl-llm prepare` reads them by default: its own prefixes and suffix.
_PREPARE_DEFAULTS = {f.name: f.default for f in fields(PrepareConfig)}
FILE_PREFIXES: dict[str, str] = {split: _PREPARE_DEFAULTS[f"prefix_{split}"] for split in SPLITS}
FILE_SUFFIX: str = _PREPARE_DEFAULTS["suffix"]


def corpus_file_name(split: str, index: int, label: int) -> str:
    """The RVL-CDIP OCR file name of one document, e.g. ``train_0000_13_aws.json``."""
    return document_file_name(FILE_PREFIXES[split], f"{index:04d}", label, FILE_SUFFIX)


# --------------------------------------------------------------------------------------------
# The class descriptions, read from TOML
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassSpec:
    """One class as ``classes.toml`` describes it, its parts compiled."""

    name: str
    median_words: float
    sigma: float
    p_header: float
    p_block: float
    p_footer: float
    caps_rate: float
    noise: float
    chunk: int
    keywords: tuple[str, ...]
    phrases: tuple[str, ...]
    weak_siblings: tuple[int, ...]
    header: list[Step]
    block: list[Step]
    footer: list[Step]


@dataclass(frozen=True)
class Noise:
    stray: tuple[str, ...]
    blanks: tuple[str, ...]
    junk_lines: tuple[str, ...]
    sentence_ends: tuple[str, ...]
    confusions: dict[str, tuple[str, ...]]


# A class's table: its numbers, typed as ClassSpec types them, and its word lists and parts.
_CLASS_NUMBERS: dict[str, type[float] | type[int]] = {
    f.name: {"float": float, "int": int}[f.type]
    for f in fields(ClassSpec)
    if f.type in ("float", "int")
}
_CLASS_KEYS = {*_CLASS_NUMBERS, "keywords", "phrases", "weak_siblings", "tables", "parts"}
_NOISE_KEYS = frozenset(f.name for f in fields(Noise))


@dataclass(frozen=True)
class CorpusSpec:
    classes: tuple[ClassSpec, ...]  # in label order
    tables: Mapping[str, Table]
    noise: Noise


def _check_keys(where: str, data: object, allowed: Iterable[str], required: Iterable[str]) -> None:
    if not isinstance(data, dict):
        raise CorpusSpecError(f"{where}: expected a table")
    allowed = set(allowed)
    unknown, missing = sorted(set(data) - allowed), sorted(set(required) - set(data))
    if unknown:
        raise CorpusSpecError(f"{where}: unknown keys {unknown}; expected {sorted(allowed)}")
    if missing:
        raise CorpusSpecError(f"{where}: missing keys {missing}")


def _read_tables(sources: dict[str, dict[str, Any]]) -> dict[str, Table]:
    """Every table of every file and class: a string of words, a list, or ``{concat = [...]}``."""
    raw: dict[str, Any] = {}
    for where, tables in sources.items():
        _check_keys(where, tables, tables, ())
        for name, value in tables.items():
            if name in raw:
                raise CorpusSpecError(f"{where}: table {name!r} is defined twice")
            raw[name] = value
    resolved: dict[str, Table] = {}

    def resolve(name: str, seen: tuple[str, ...] = ()) -> Table:
        if name in resolved:
            return resolved[name]
        if name not in raw or name in seen:
            raise CorpusSpecError(f"table {name!r}: {'undefined' if name not in raw else 'cycle'}")
        value = raw[name]
        if isinstance(value, str):
            table: Table = tuple(value.split())
        elif isinstance(value, list):
            table = tuple(value)
        elif isinstance(value, dict) and set(value) == {"concat"}:
            table = sum((resolve(part, (*seen, name)) for part in value["concat"]), ())
        else:
            raise CorpusSpecError(f"table {name!r}: a string, a list or {{concat = [...]}}")
        if not table:
            raise CorpusSpecError(f"table {name!r} is empty")
        resolved[name] = table
        return table

    for name in raw:
        resolve(name)
    return resolved


def _read_class(
    name: str, data: dict[str, Any], tables: Mapping[str, Table], shared: dict[str, Any]
) -> ClassSpec:
    where = f"classes.toml [classes.{name!r}]"
    _check_keys(where, data, _CLASS_KEYS, _CLASS_KEYS - {"phrases"})
    numbers = {}
    for key, kind in _CLASS_NUMBERS.items():
        value = data[key]
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise CorpusSpecError(f"{where}: {key} must be a number >= 0, got {value!r}")
        numbers[key] = kind(value)
    parts = data["parts"]
    _check_keys(f"{where}.parts", parts, parts, ("header", "block", "footer"))
    clashes = sorted(set(parts) & set(shared))
    if clashes:
        raise CorpusSpecError(f"{where}: parts {clashes} are also shared parts of words.toml")
    pieces = make_pieces(tables)
    all_parts = {**shared, **parts}
    variables = frozenset(bound_names(list(all_parts.values())))
    clashes = sorted(variables & (set(tables) | set(pieces)))
    if clashes:
        raise CorpusSpecError(f"{where}: variables {clashes} are also table or piece names")
    compiler = PartCompiler(all_parts, Scope(tables, pieces, variables, where))
    for part in parts:  # compile every part, so an unused one with a typo fails too
        compiler.part(part)
    unknown = [t for t in (*data["keywords"], data.get("phrases", "")) if t and t not in tables]
    siblings = data["weak_siblings"]
    if unknown or not set(siblings) <= set(RVL_CDIP_CLASSES) or len(siblings) != 2:
        raise CorpusSpecError(
            f"{where}: unknown tables {unknown} or weak_siblings {siblings} (two class names)"
        )
    return ClassSpec(
        name=name,
        **numbers,
        keywords=sum((tables[t] for t in data["keywords"]), ()),
        phrases=tables[data["phrases"]] if "phrases" in data else (),
        weak_siblings=tuple(RVL_CDIP_CLASSES.index(s) for s in siblings),
        header=compiler.part("header"),
        block=compiler.part("block"),
        footer=compiler.part("footer"),
    )


def read_corpus_spec(
    words_file: Path = WORDS_FILE, classes_file: Path = CLASSES_FILE
) -> CorpusSpec:
    """Read and check the two TOML files; any unknown key, name or table is an error."""
    words = tomllib.loads(Path(words_file).read_text(encoding="utf-8"))
    classes = tomllib.loads(Path(classes_file).read_text(encoding="utf-8"))
    _check_keys(str(words_file), words, ("tables", "noise", "parts"), ("tables", "noise", "parts"))
    _check_keys(str(classes_file), classes, ("classes",), ("classes",))
    by_name: dict[str, Any] = classes["classes"]
    if sorted(by_name) != sorted(RVL_CDIP_CLASSES):
        raise CorpusSpecError(
            f"{classes_file}: classes {sorted(by_name)}; "
            f"expected exactly {sorted(RVL_CDIP_CLASSES)}"
        )
    tables = _read_tables(
        {"words.toml [tables]": words["tables"]}
        | {f"[classes.{n!r}.tables]": c.get("tables", {}) for n, c in by_name.items()}
    )
    for needed in ("filler", "rare_filler"):
        if needed not in tables:
            raise CorpusSpecError(f"{words_file}: no table {needed!r}")
    _check_keys(f"{words_file} [noise]", words["noise"], _NOISE_KEYS, _NOISE_KEYS)
    noise = {k: tuple(v) for k, v in words["noise"].items() if k != "confusions"}
    confusions = {c: tuple(options) for c, options in words["noise"]["confusions"].items()}
    return CorpusSpec(
        classes=tuple(
            _read_class(name, by_name[name], tables, words["parts"]) for name in RVL_CDIP_CLASSES
        ),
        tables=tables,
        noise=Noise(**noise, confusions=confusions),
    )


corpus_spec = functools.cache(read_corpus_spec)  # the shipped descriptions, read once


def _run_part(steps: list[Step], rng: Rng) -> Lines:
    lines: Lines = []
    run_steps(steps, rng, {}, lines)
    return lines


_POPULATION_SIZE = 1 << 16


@functools.cache
def _population(label: int, strong: bool) -> tuple[str, ...]:
    """The word population of a class: shared filler plus class (and some sibling) key words.

    ``strong`` documents use about 12% class words; weak ones about 4%, plus words of two
    neighbouring classes, so that vocabulary alone does not settle every document.  The
    population is stretched to exactly 65,536 entries for :func:`_prose`.
    """
    spec = corpus_spec()
    filler = spec.tables["filler"] * 8 + spec.tables["rare_filler"]
    own = spec.classes[label].keywords
    base = filler + own * max(1, round((0.14 if strong else 0.04) * len(filler) / len(own)))
    if not strong:
        for other in spec.classes[label].weak_siblings:
            base += spec.classes[other].keywords
    shuffled = list(base)
    random.Random(f"population/{label}/{strong}").shuffle(shuffled)
    return tuple((shuffled * (_POPULATION_SIZE // len(shuffled) + 1))[:_POPULATION_SIZE])


def _prose(rng: Rng, pop: tuple[str, ...], n: int, phrases: tuple[str, ...]) -> str:
    """About ``n`` (> 0) words of sentences wrapped into OCR-like lines, with class phrases.

    Two random bytes index one word of the 65,536 in ``pop``, ``map`` doing the look-ups in C
    (about three times faster than :meth:`random.Random.choices`).  Words and separators are
    built as two lists and interleaved by slice assignment, and the random choices per sentence
    and per line come from one block of random bytes: the Python work is a few operations per
    sentence and per line rather than per word.
    """
    ends = corpus_spec().noise.sentence_ends
    words = list(map(pop.__getitem__, memoryview(rng.randbytes(2 * n)).cast("H")))
    if phrases:
        for _ in range(1 + n // 80):
            words[int(rng.random() * n)] = phrases[int(rng.random() * len(phrases))]
    rb = rng.randbytes(n + 8)
    k = 0
    seps = [" "] * n
    i = 0
    while i < n:
        w = words[i]
        words[i] = w[:1].upper() + w[1:]
        i += 4 + rb[k] % 17
        if i < n:
            seps[i - 1] = ends[rb[k + 1] % len(ends)]
        k += 2
    width = 5 + rb[k] % 8
    j = width + rb[k + 1] % 5
    k += 2
    while j < n:
        seps[j - 1] = seps[j - 1].rstrip(" ") + ("\n\n" if rb[k] < 31 else "\n")
        j += width + rb[k + 1] % 5
        k += 2
    seps[-1] = "."
    out = seps * 2  # interleave words and separators by slice assignment (C speed)
    out[::2] = words
    out[1::2] = seps
    return "".join(out)


def _ocr_noise(rng: Rng, text: str, rate: float, noise: Noise) -> str:
    """Character-level OCR errors: confusions, merged/split words, stray marks, line breaks."""
    length = len(text)
    k = int(length * rate * rng.uniform(0.3, 1.7))
    if k == 0:
        return text
    rnd = rng.random
    confusions, stray = noise.confusions, noise.stray
    positions = sorted(int(rnd() * length) for _ in range(k))
    out: list[str] = []
    prev = 0
    for p in positions:
        if p < prev:
            continue
        out.append(text[prev:p])
        c = text[p]
        op = rnd()
        if c == "r" and text[p + 1 : p + 2] == "n" and op < 0.7:
            out.append("m")
            prev = p + 2
        elif c in confusions and op < 0.5:
            options = confusions[c]
            out.append(options[int(rnd() * len(options))])
            prev = p + 1
        elif c == " " and op < 0.65:
            prev = p + 1  # merged words
        elif op < 0.7:
            out.append(" ")  # split word
            prev = p
        elif op < 0.8:
            out.append(stray[int(rnd() * len(stray))])
            prev = p
        elif op < 0.87:
            out.append("   " if rnd() < 0.5 else "  ")
            prev = p
        elif op < 0.94:
            out.append("\n")
            prev = p
        else:
            prev = p + 1  # dropped character
    out.append(text[prev:])
    return "".join(out)


def _decorate(rng: Rng, text: str, caps_rate: float, junk_lines: tuple[str, ...]) -> str:
    """Line-level OCR effects: ALL-CAPS lines, junk lines, page numbers."""
    lines = text.split("\n")
    rb = rng.randbytes(len(lines))
    caps = int(caps_rate * 256)
    junk = caps + 2 + rb[0] % 6
    out: Lines = []
    for b, line in zip(rb, lines, strict=True):
        if b >= junk:
            out.append(line)
        elif b < caps:
            out.append(line.upper())
        else:
            out.append(junk_lines[b % len(junk_lines)] if b & 1 else f"- {2 + b % 37} -")
            out.append(line)
    return "\n".join(out)


def generate_document(rng: random.Random, label: int, *, words: int | None = None) -> str:
    """The OCR text of one synthetic document of class ``label`` (0..15), drawn from ``rng``.

    ``words`` forces a length (about that many words, never empty); by default the length is
    drawn from the class's log-normal length distribution, and about 2% of the documents are
    empty and 0.6% whitespace only.
    """
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label must be in 0..{NUM_CLASSES - 1}, got {label}")
    corpus = corpus_spec()
    spec, noise = corpus.classes[label], corpus.noise
    if words is None:
        r = rng.random()
        if r < EMPTY_RATE:
            return ""
        if r < EMPTY_RATE + BLANK_RATE:
            return noise.blanks[int(rng.random() * len(noise.blanks))]
        target = int(math.exp(rng.gauss(math.log(spec.median_words), spec.sigma)))
        if rng.random() < 0.01:
            target *= randint(rng, 2, 8)  # the odd very long document (bound volumes, transcripts)
        target = max(1, min(target, MAX_WORDS))
    else:
        target = max(1, words)
    pop = _population(label, rng.random() < 0.7)

    lines: Lines = []
    if rng.random() < spec.p_header:
        lines += _run_part(spec.header, rng)
    count = sum(len(line.split()) for line in lines)
    footer = _run_part(spec.footer, rng) if rng.random() < spec.p_footer else []
    target -= sum(len(line.split()) for line in footer)
    while count < target:
        if rng.random() < spec.p_block:
            block = _run_part(spec.block, rng)
            count += sum(len(line.split()) for line in block)
            lines += block
        else:
            n = min(target - count, 5 + int(rng.random() * spec.chunk))
            lines.append(_prose(rng, pop, n, spec.phrases))
            count += n
    lines += footer
    if rng.random() < 0.35:
        lines += ["", bates(rng, corpus.tables)]

    text = _decorate(rng, "\n".join(lines), spec.caps_rate, noise.junk_lines)
    if rng.random() < 0.85:
        text = _ocr_noise(rng, text, spec.noise * rng.uniform(0.2, 2.0), noise)
    if rng.random() < 0.2:
        text = text.replace("\n\n", "\n \n")
    return text.strip("\n") if rng.random() < 0.8 else text


def split_documents(split: str, per_class: int, *, seed: int = 0) -> list[tuple[int, int, str]]:
    """``(index, label, text)`` of one split, classes interleaved: label = index % 16.

    Every 256th document from index 6 on (a scientific publication) is a long one of 3,000 to
    6,000 words, so that even a small split holds documents that need truncating.
    """
    rng = random.Random(f"rvl-llm-sample/{seed}/{split}")
    docs: list[tuple[int, int, str]] = []
    for i in range(per_class * NUM_CLASSES):
        label = i % NUM_CLASSES
        words = randint(rng, 3000, MAX_WORDS) if i % LONG_EVERY == LONG_OFFSET else None
        docs.append((i, label, generate_document(rng, label, words=words)))
    return docs


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusDocument:
    split: str
    index: int
    label: int
    text: str

    @property
    def doc_id(self) -> str:
        return f"{self.split}_{self.index}"

    @property
    def file_name(self) -> str:
        return corpus_file_name(self.split, self.index, self.label)


def corpus_documents(
    *, per_class: dict[str, int] | None = None, seed: int = 0
) -> list[CorpusDocument]:
    """The documents of a corpus in file order: train, validation, test, each by index.

    ``per_class`` maps a split to its documents per class; only the splits it names are made
    (default: 48/8/8 per class, i.e. 768/128/128).  Each split has its own random stream, so
    changing one split's size leaves the others unchanged.
    """
    sizes = dict(DEFAULT_PER_CLASS if per_class is None else per_class)
    unknown = sorted(set(sizes) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected some of {list(SPLITS)}")
    if any(n < 0 for n in sizes.values()):
        raise ValueError(f"per_class counts must be >= 0: {sizes}")
    return [
        CorpusDocument(split, index, label, text)
        for split in SPLITS
        if split in sizes
        for index, label, text in split_documents(split, sizes[split], seed=seed)
    ]


def write_documents(out_dir: Path, documents: list[CorpusDocument]) -> dict[str, int]:
    """One RVL-CDIP OCR JSON file per document in ``out_dir``; the documents per split.

    Existing files of the same names are overwritten; nothing else in ``out_dir`` is touched.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for doc in documents:
        record = {"id": doc.doc_id, "ocr": doc.text}
        (out_dir / doc.file_name).write_text(json.dumps(record, ensure_ascii=False), "utf-8")
    return dict(Counter(doc.split for doc in documents))


def write_corpus(
    out_dir: Path, *, per_class: dict[str, int] | None = None, seed: int = 0
) -> dict[str, int]:
    """Write a synthetic RVL-CDIP OCR corpus into ``out_dir``; return the documents per split.

    ``per_class`` and the random streams are :func:`corpus_documents`'; a split named with 0
    documents per class is counted with 0 files.
    """
    documents = corpus_documents(per_class=per_class, seed=seed)
    counts = write_documents(out_dir, documents)
    sizes = DEFAULT_PER_CLASS if per_class is None else per_class
    return {split: counts.get(split, 0) for split in SPLITS if split in sizes}


# JSON-lines readers that split at every Unicode line break (str.splitlines) would cut a row at
# these; json.dumps leaves them raw when ensure_ascii is off, so they are escaped.
_UNICODE_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def write_jsonl(path: Path, documents: list[CorpusDocument]) -> int:
    """The corpus as one JSON-lines file: ``{"id", "split", "label", "ocr"}`` per document, the
    label as its class name; rows in the documents' order.  Returns the rows written."""
    text = "".join(
        json.dumps(
            {"id": d.doc_id, "split": d.split, "label": RVL_CDIP_CLASSES[d.label], "ocr": d.text},
            ensure_ascii=False,
        )
        + "\n"
        for d in documents
    )
    for char, escaped in _UNICODE_LINE_BREAKS.items():
        text = text.replace(char, escaped)
    Path(path).write_text(text, encoding="utf-8")
    return len(documents)


def write_parquet(path: Path, documents: list[CorpusDocument]) -> int:
    """The corpus as one Parquet file: columns ``id``, ``split``, ``label`` (the class index, an
    int64) and ``ocr``; rows in the documents' order.  Returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": d.doc_id, "split": d.split, "label": d.label, "ocr": d.text} for d in documents]
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, Path(path))
    return table.num_rows


UNLABELLED_PER_KIND = 4  # documents of each input kind `rvl-llm predict` reads


def unlabelled_texts(*, seed: int = 0) -> list[str]:
    """The texts of the unlabelled documents, in file order: ``scan-01.json`` ... first (the
    sample scans print these too), then ``fax.txt``, then the lines of ``batch.jsonl``."""
    rng = random.Random(f"rvl-llm-sample/{seed}/unlabelled")
    return [generate_document(rng, i % NUM_CLASSES) for i in range(2 * UNLABELLED_PER_KIND + 1)]


def write_unlabelled(out_dir: Path, *, seed: int = 0) -> int:
    """Documents to label with ``rvl-llm predict``, one input kind each: OCR JSON files named
    with no split or label (``scan-01.json``), a ``.txt`` file, and a ``.jsonl`` file with ids.
    Their classes cycle through the label set; none of them is in the labelled corpus."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = unlabelled_texts(seed=seed)
    for i, text in enumerate(texts[:UNLABELLED_PER_KIND], start=1):
        record = json.dumps({"id": f"scan-{i:02d}", "ocr": text}, ensure_ascii=False)
        (out_dir / f"scan-{i:02d}.json").write_text(record, encoding="utf-8")
    (out_dir / "fax.txt").write_text(texts[UNLABELLED_PER_KIND], encoding="utf-8")
    lines = [
        json.dumps({"id": f"batch-{i:02d}", "text": text}, ensure_ascii=False)
        for i, text in enumerate(texts[UNLABELLED_PER_KIND + 1 :], start=1)
    ]
    (out_dir / "batch.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(texts)
