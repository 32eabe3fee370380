"""``run_prepare``: a corpus folder -> one verified cache entry with the requested splits.

Read top to bottom: resolve labels, model and files; derive the key; under the key's lock reuse
every split that verifies and build the others (tokeniser loaded only then), each into a
temporary folder moved into place when complete, the manifest replaced last.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rvl_llm.errors import RvlError
from rvl_llm.pipeline import cache
from rvl_llm.pipeline.chunks import build_chunks
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import (
    BadFile,
    SourceFile,
    scan_folder,
    split_files,
)
from rvl_llm.pipeline.manifest import FORMAT_VERSION, SPLITS, Manifest, SplitInfo, TemplateIds
from rvl_llm.pipeline.shards import ShardWriter
from rvl_llm.pipeline.tokenize import EncodeBatch
from rvl_llm.presets import resolve_model

Log = Callable[[str], None]


@dataclass(frozen=True)
class PrepareResult:
    manifest: Manifest
    built: tuple[str, ...]  # splits tokenised by this call
    reused: tuple[str, ...]  # splits found complete in the cache
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)  # rebuilt corrupt shards, skips

    @property
    def root(self) -> Path:
        return self.manifest.root


@dataclass(frozen=True)
class _Inputs:
    labels: tuple[str, ...]
    files: dict[str, list[SourceFile]]  # every split's files: all of them key the cache
    bad_names: dict[str, list[tuple[Path, str]]]  # per split: files with a name problem
    tokenizer_dir: Path
    settings: dict[str, Any]


def run_prepare(cfg: PrepareConfig, log: Log | None = None) -> PrepareResult:
    start = time.perf_counter()
    say = log or (lambda _msg: None)
    inputs = _resolve_inputs(cfg)
    key = cache.cache_key(inputs.settings)
    root = cfg.cache_dir.resolve() / key
    notes: list[str] = []
    with cache.entry_lock(cfg.cache_dir, key):
        cache.remove_leftovers(root)
        manifest = cache.read_manifest(root)
        todo = []
        for split in cfg.splits:
            problem = (
                None
                if manifest is None or split not in manifest.splits
                else (cache.split_problem(manifest, split))
            )
            if problem:
                notes.append(f"cache: {problem}; rebuilding split {split}")
                say(notes[-1])
            if manifest is None or split not in manifest.splits or problem:
                todo.append(split)
            elif manifest.splits[split].skipped_files and not cfg.skip_bad_files:
                first = manifest.splits[split].skipped_files[0]
                raise RvlError(
                    f"{cfg.data_dir / first.split(':')[0]}: {first.split(': ', 1)[1]} "
                    "(the cached shards skipped it: pass --skip-bad-files)"
                )
        if todo:
            manifest = _build(cfg, inputs, root, key, manifest, todo, notes, say)
    assert manifest is not None
    reused = tuple(s for s in cfg.splits if s not in todo)
    return PrepareResult(manifest, tuple(todo), reused, time.perf_counter() - start, tuple(notes))


def _resolve_inputs(cfg: PrepareConfig) -> _Inputs:
    labels = cfg.label_names()
    source = resolve_model(cfg.model)
    entries = scan_folder(cfg.data_dir)
    files, bad_names = {}, {}
    for split in SPLITS:
        files[split], bad_names[split] = split_files(entries, cfg.prefix(split), cfg.suffix)
    for split in cfg.splits:
        if not files[split] and not bad_names[split]:
            raise RvlError(
                f"--data {cfg.data_dir}: no files for split {split!r} "
                f"(expected {cfg.prefix(split)}*_<label>{cfg.suffix}.json)"
            )
        for path, reason in _label_problems(files[split], labels):
            bad_names[split].append((path, reason))
        files[split] = [f for f in files[split] if f.label < len(labels)]
        if bad_names[split] and not cfg.skip_bad_files:
            path, reason = bad_names[split][0]
            raise RvlError(f"{path}: {reason} (--skip-bad-files skips such files)")
    tokenizer_dir = source.tokenizer_dir()
    settings = {
        "format_version": FORMAT_VERSION,
        "mode": cfg.mode,
        "max_len": cfg.max_len,
        "response_template": cfg.response_template if cfg.generative else None,
        "labels": list(labels),
        "tokenizer": cache.tokenizer_fingerprint(tokenizer_dir),
        "data": {
            "dir": str(cfg.data_dir.resolve()),
            "prefixes": {s: cfg.prefix(s) for s in SPLITS},
            "suffix": cfg.suffix,
            "files": {s: len(files[s]) for s in SPLITS},
            "fingerprint": cache.data_fingerprint(files),
        },
        "source": {"model": cfg.model, "location": source.location},
    }
    return _Inputs(labels, files, bad_names, tokenizer_dir, settings)


def _label_problems(files: list[SourceFile], labels: Sequence[str]) -> list[tuple[Path, str]]:
    return [
        (
            Path(f.path),
            f"label {f.label} is outside the label set (0..{len(labels) - 1}, see --labels)",
        )
        for f in files
        if f.label >= len(labels)
    ]


def _build(
    cfg: PrepareConfig,
    inputs: _Inputs,
    root: Path,
    key: str,
    manifest: Manifest | None,
    todo: list[str],
    notes: list[str],
    say: Log,
) -> Manifest:
    from rvl_llm.pipeline.tokenize import (
        backend_from_json,
        batch_encoder,
        build_template,
        load_tokenizer,
    )

    tokenizer = load_tokenizer(inputs.tokenizer_dir, trust_remote_code=cfg.trust_remote_code)
    encode = batch_encoder(backend_from_json(tokenizer.backend_tokenizer.to_str()))
    template = build_template(
        tokenizer,
        encode,
        generative=cfg.generative,
        response_template=cfg.response_template,
        labels=inputs.labels,
        max_len=cfg.max_len,
    )
    if manifest is None or manifest.template != template:
        manifest = Manifest(root, key, inputs.settings, template, {})
    for split in todo:
        info = _build_split(cfg, inputs, split, encode, template, root)
        notes.extend(f"skipped {name}" for name in info.skipped_files)
        splits = {**manifest.splits, split: info}
        manifest = replace(manifest, splits={s: splits[s] for s in SPLITS if s in splits})
        cache.write_json_atomic(root / "manifest.json", manifest.to_json())
    return manifest


def _build_split(
    cfg: PrepareConfig,
    inputs: _Inputs,
    split: str,
    encode: EncodeBatch,
    template: TemplateIds,
    root: Path,
) -> SplitInfo:
    from tqdm.auto import tqdm

    start = time.perf_counter()
    files = inputs.files[split]
    skipped = [f"{p.name}: {reason}" for p, reason in inputs.bad_names[split]]
    folder = cache.temp_dir(root, split)
    writer = ShardWriter(folder, generative=cfg.generative, labels=inputs.labels)
    progress = None if cfg.progress is None else not cfg.progress
    bar = tqdm(total=len(files), desc=f"prepare {split}", unit="doc", disable=progress)
    try:
        for chunk in build_chunks(files, cfg.batch_size, encode, template):
            if chunk.bad and not cfg.skip_bad_files:
                path, reason = chunk.bad[0]
                raise BadFile(path, f"{reason} (--skip-bad-files skips such files)")
            skipped += [f"{path.name}: {reason}" for path, reason in chunk.bad]
            writer.write(chunk.rows, chunk.meta)
            bar.update(len(chunk.rows) + len(chunk.bad))
        shards = writer.close()
        cache.replace_dir(folder, root / split)
    except BaseException:
        writer.abort()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        bar.close()
    return SplitInfo(
        rows=sum(s.rows for s in shards),
        shards=tuple(shards),
        truncated=writer.truncated,
        empty=writer.empty,
        replaced_utf8=writer.replaced_utf8,
        skipped_files=tuple(skipped),
        class_counts=writer.named_class_counts(),
        length=writer.length_summary(),
        seconds=round(time.perf_counter() - start, 3),
    )
