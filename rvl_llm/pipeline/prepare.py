"""``run_prepare``: a corpus folder -> one verified cache entry with the requested splits.

Read top to bottom: resolve labels, model and files; derive the key; when every requested split
is in the entry and verifies, return it without locking or writing anything (a read-only cache
serves hits). Otherwise, under the key's lock, reuse every split that verifies and build the
others (tokeniser loaded only then), each into a temporary folder moved into place when complete,
the manifest replaced last.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rvl_llm.atomic import replace_dir, write_json_atomic
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
from rvl_llm.pipeline.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    SPLITS,
    Manifest,
    SkippedFile,
    SplitInfo,
    TemplateIds,
)
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

    def summary_lines(self) -> list[str]:
        """A line per split and a closing line, for whichever stage ran prepare to report."""
        manifest, lines = self.manifest, []
        for split, info in manifest.splits.items():
            built, reused = split in self.built, split in self.reused
            status = "built" if built else "cached" if reused else "kept"
            share = info.truncated / info.rows if info.rows else 0.0
            lines.append(
                f"  {split:<10} {info.rows:>7} rows  truncated {share:6.1%}  empty "
                f"{info.empty:>4}  skipped {len(info.skipped_files):>3}  median "
                f"{info.length.get('median', 0):>6.0f} tokens  [{status}]"
            )
        what = "cache hit" if not self.built else f"built {', '.join(self.built)}"
        lines.append(f"prepare: {what} in {self.seconds:.2f}s ({manifest.mode}, max-len "
                     f"{manifest.max_len}, {len(manifest.labels)} labels)")
        return lines


@dataclass(frozen=True)
class _Inputs:
    labels: tuple[str, ...]
    files: dict[str, list[SourceFile]]  # every split's files: all of them key the cache
    bad_names: dict[str, list[tuple[Path, str]]]  # per split: bad names, labels, links
    tokenizer_dir: Path
    settings: dict[str, Any]


def run_prepare(cfg: PrepareConfig, log: Log | None = None) -> PrepareResult:
    start = time.perf_counter()
    say = log or (lambda _msg: None)
    inputs = _resolve_inputs(cfg)
    key = cache.cache_key(inputs.settings)
    root = cfg.cache_dir.resolve() / key
    manifest = cache.read_manifest(root)
    checked = _check_splits(manifest, cfg.splits)
    if manifest is not None and _all_verified(checked, cfg.splits):
        # A hit takes no lock and writes nothing: a read-only cache serves it.
        _refuse_cached_skips(cfg, manifest, cfg.splits)
        return PrepareResult(manifest, (), cfg.splits, time.perf_counter() - start)
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        _lock(stack, cfg, key)
        cache.remove_leftovers(root)
        fresh = cache.read_manifest(root)
        if fresh != manifest:  # another prepare changed the entry while this one checked it
            manifest, checked = fresh, _check_splits(fresh, cfg.splits)
        for split, problem in checked.items():
            if problem:
                notes.append(f"cache: {problem}; rebuilding split {split}")
                say(notes[-1])
        todo = [s for s in cfg.splits if s not in checked or checked[s] is not None]
        if manifest is not None:
            _refuse_cached_skips(cfg, manifest, [s for s in cfg.splits if s not in todo])
        if todo:
            manifest = _build(cfg, inputs, root, key, manifest, todo, notes, say)
    assert manifest is not None
    reused = tuple(s for s in cfg.splits if s not in todo)
    return PrepareResult(manifest, tuple(todo), reused, time.perf_counter() - start, tuple(notes))


def _check_splits(manifest: Manifest | None, splits: Sequence[str]) -> dict[str, str | None]:
    """Each requested split the entry lists -> why its shards cannot be trusted, or None."""
    if manifest is None:
        return {}
    return {s: cache.split_problem(manifest, s) for s in splits if s in manifest.splits}


def _all_verified(checked: dict[str, str | None], splits: Sequence[str]) -> bool:
    return all(s in checked and checked[s] is None for s in splits)


def _refuse_cached_skips(cfg: PrepareConfig, manifest: Manifest, reused: Sequence[str]) -> None:
    """Shards that skipped files are reused only when this run skips bad files too."""
    skipped = [f for split in reused for f in manifest.splits[split].skipped_files]
    if skipped and not cfg.skip_bad_files:
        raise RvlError(
            f"{cfg.data_dir / skipped[0].name}: {skipped[0].reason} "
            "(the cached shards skipped it: pass --skip-bad-files)"
        )


def _lock(stack: contextlib.ExitStack, cfg: PrepareConfig, key: str) -> None:
    """Hold the key's lock until ``stack`` closes; a cache that cannot be written fails here."""
    try:
        stack.enter_context(cache.entry_lock(cfg.cache_dir, key))
    except OSError as err:
        raise RvlError(
            f"--cache-dir {cfg.cache_dir}: cannot write ({_reason(err)}); the entry {key} is "
            "missing or incomplete, so it must be built"
        ) from err


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def _resolve_inputs(cfg: PrepareConfig) -> _Inputs:
    labels = cfg.label_names()
    source = resolve_model(cfg.model)
    files, bad_names, fingerprint = _scan_splits(cfg, labels)
    for split in cfg.splits:
        if not files[split] and not bad_names[split]:
            raise RvlError(
                f"--data {cfg.data_dir}: no files for split {split!r} "
                f"(expected {cfg.prefix(split)}*_<label>{cfg.suffix}.json)"
            )
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
            "fingerprint": fingerprint,
        },
        "source": {"model": cfg.model, "location": source.location},
    }
    return _Inputs(labels, files, bad_names, tokenizer_dir, settings)


def _scan_splits(
    cfg: PrepareConfig, labels: Sequence[str]
) -> tuple[dict[str, list[SourceFile]], dict[str, list[tuple[Path, str]]], str]:
    """Every split's usable files, its bad ones and the fingerprint of them all.

    The fingerprint covers every split, bad files included, before any is set aside: the key
    must not depend on which splits are asked for, and a bad file that is fixed, added or
    removed changes what the entry skipped."""
    entries = scan_folder(cfg.data_dir)  # resolved paths: they key the cache
    files, bad = {}, {}
    for split in SPLITS:
        files[split], bad[split] = split_files(entries, cfg.prefix(split), cfg.suffix)
    fingerprint = cache.data_fingerprint(files, bad)
    for split in SPLITS:
        bad[split] += _label_problems(files[split], labels)
        files[split] = [f for f in files[split] if f.label < len(labels)]
    return files, bad, fingerprint


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
    from rvl_llm.pipeline.rows import load_row_builder

    builder = load_row_builder(replace(cfg, labels=inputs.labels), inputs.tokenizer_dir)
    encode, template = builder.encode, builder.template
    if manifest is None or manifest.template != template:
        manifest = Manifest(root, key, inputs.settings, template, {})
    for split in todo:
        info = _build_split(cfg, inputs, split, encode, template, root)
        notes.extend(f"skipped {s.name}: {s.reason}" for s in info.skipped_files)
        splits = {**manifest.splits, split: info}
        manifest = replace(manifest, splits={s: splits[s] for s in SPLITS if s in splits})
        try:
            write_json_atomic(root / MANIFEST_NAME, manifest.to_json())
        except OSError as err:  # the old manifest stands: a split it lacks is built next time
            raise RvlError(
                f"--cache-dir {cfg.cache_dir}: cannot write the manifest ({_reason(err)}); "
                "the previous one was kept"
            ) from err
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
    skipped = [SkippedFile(p.name, reason) for p, reason in inputs.bad_names[split]]
    try:
        folder = cache.temp_dir(root, split)
    except OSError as err:
        raise RvlError(f"--cache-dir {cfg.cache_dir}: cannot write ({_reason(err)})") from err
    writer = ShardWriter(folder, generative=cfg.generative, labels=inputs.labels)
    progress = None if cfg.progress is None else not cfg.progress
    bar = tqdm(total=len(files), desc=f"prepare {split}", unit="doc", disable=progress)
    try:
        for chunk in build_chunks(files, cfg.tokenize_batch, encode, template):
            if chunk.bad and not cfg.skip_bad_files:
                path, reason = chunk.bad[0]
                raise BadFile(path, f"{reason} (--skip-bad-files skips such files)")
            skipped += [SkippedFile(path.name, reason) for path, reason in chunk.bad]
            writer.write(chunk.rows, chunk.meta)
            bar.update(len(chunk.rows) + len(chunk.bad))
        shards = writer.close()
        replace_dir(folder, root / split)
    except BaseException as err:
        writer.abort()
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(err, OSError):  # reading errors are BadFiles: this is the cache's disk
            raise RvlError(
                f"--cache-dir {cfg.cache_dir}: cannot write the shards ({_reason(err)}); "
                "the partial split was removed"
            ) from err
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
