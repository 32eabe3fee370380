"""``run_prepare``: a corpus (OCR folder, table files, dataset) -> one verified cache entry with
the requested splits.

Read top to bottom: resolve model, source and labels; derive the key; when every requested split
is in the entry and verifies, return it without locking or writing anything (a read-only cache
serves hits). Otherwise, under the key's lock, reuse every split that verifies; list the others
(keys and labels, bad entries refused before anything is written), select their documents, and
build each (tokeniser loaded only then) from the selected documents alone, into a temporary
folder moved into place when complete, the manifest replaced last.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rvl_llm.atomic import replace_dir, staging_path, write_json_atomic
from rvl_llm.dataclass_json import to_json
from rvl_llm.errors import RvlError
from rvl_llm.logs import Log
from rvl_llm.pipeline import cache
from rvl_llm.pipeline.chunks import build_chunks
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.corpus import BadFile
from rvl_llm.pipeline.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    SPLITS,
    Manifest,
    SkippedFile,
    SplitInfo,
)
from rvl_llm.pipeline.prompt import PromptSpec, resolve_prompt
from rvl_llm.pipeline.rows import RowBuilder, load_row_builder
from rvl_llm.pipeline.selection import select_split, selection_settings
from rvl_llm.pipeline.shards import ShardWriter
from rvl_llm.pipeline.sources import (
    Bad,
    FolderSource,
    Listing,
    Source,
    is_hub,
    open_source,
    resolved_data,
)
from rvl_llm.presets import resolve_model


@dataclass(frozen=True)
class PrepareResult:
    manifest: Manifest
    prompt: PromptSpec  # what every row was rendered from: the recipe stores it
    built: tuple[str, ...]  # splits tokenised by this call
    reused: tuple[str, ...]  # splits found complete in the cache
    seconds: float
    notes: tuple[str, ...] = ()  # rebuilt corrupt shards, skips

    @property
    def root(self) -> Path:
        return self.manifest.root

    def summary_lines(self) -> list[str]:
        """A line per split and a closing line, for whichever stage ran prepare to report."""
        manifest, lines = self.manifest, []
        for split, info in manifest.splits.items():
            status = ("built" if split in self.built else "cached" if split in self.reused
                      else "kept")
            share = info.truncated / info.rows if info.rows else 0.0
            lines.append(f"  {split:<10} {info.rows:>7} rows  truncated {share:6.1%}  empty "
                         f"{info.empty:>4}  skipped {len(info.skipped_files):>3}  median "
                         f"{info.length.get('median', 0):>6.0f} tokens  [{status}]")
        what = "cache hit" if not self.built else f"built {', '.join(self.built)}"
        lines.append(f"prepare: {what} in {self.seconds:.2f}s ({manifest.mode}, max-len "
                     f"{manifest.max_len}, {len(manifest.labels)} labels)")
        return lines


@dataclass(frozen=True)
class _Inputs:
    source: Source  # lists and reads the documents; its files key the cache
    tokenizer_dir: Path
    settings: dict[str, Any]
    prompt: PromptSpec


def run_prepare(cfg: PrepareConfig, log: Log | None = None,
                prompt: PromptSpec | None = None) -> PrepareResult:
    """``prompt``: a recipe's resolved prompt to render from (eval of a checkpoint); None
    resolves it from ``cfg``'s prompt settings (prepare, train, zero-shot eval)."""
    start = time.perf_counter()
    say = log or (lambda _msg: None)
    with cache.paused_gc():  # the listing: a million objects at 400k files, no cycles
        inputs = _resolve_inputs(cfg, prompt)
    key = cache.cache_key(inputs.settings)
    root = cfg.cache_dir.resolve() / key
    manifest, unusable = cache.read_manifest(root)
    checked = _check_splits(manifest, cfg.splits)
    if manifest is not None and all(s in checked and checked[s] is None for s in cfg.splits):
        # A hit takes no lock and writes nothing: a read-only cache serves it.
        _refuse_cached_skips(cfg, inputs.source, manifest, cfg.splits)
        return PrepareResult(manifest, inputs.prompt, (), cfg.splits,
                             time.perf_counter() - start)
    with contextlib.ExitStack() as stack:
        _lock(stack, cfg, key, unusable)
        cache.remove_leftovers(root)
        fresh, unusable = cache.read_manifest(root)
        if fresh != manifest:  # another prepare changed the entry while this one checked it
            manifest, checked = fresh, _check_splits(fresh, cfg.splits)
        # A damaged or hand-edited manifest, a damaged split: said, then rebuilt.
        notes = [f"cache: {unusable}; rebuilding the entry"] if unusable else []
        notes += [f"cache: {why}; rebuilding split {s}" for s, why in checked.items() if why]
        for note in notes:
            say(note)
        todo = [s for s in cfg.splits if s not in checked or checked[s] is not None]
        if manifest is not None:
            _refuse_cached_skips(cfg, inputs.source, manifest,
                                 [s for s in cfg.splits if s not in todo])
        if todo:
            manifest = _build(cfg, inputs, root, key, manifest, todo, notes, say)
    assert manifest is not None
    reused = tuple(s for s in cfg.splits if s not in todo)
    return PrepareResult(manifest, inputs.prompt, tuple(todo), reused,
                         time.perf_counter() - start, tuple(notes))


def _check_splits(manifest: Manifest | None, splits: Sequence[str]) -> dict[str, str | None]:
    """Each requested split the entry lists -> why its shards cannot be trusted, or None."""
    return {s: cache.split_problem(manifest, s) for s in splits
            if manifest is not None and s in manifest.splits}


def _refuse_cached_skips(
    cfg: PrepareConfig, source: Source, manifest: Manifest, reused: Sequence[str]
) -> None:
    """Shards that skipped files or rows are reused only when this run skips them too."""
    skipped = [f for split in reused for f in manifest.splits[split].skipped_files]
    if skipped and not cfg.skip_bad_files:
        in_folder = not is_hub(cfg.data_dir) and cfg.data_dir.is_dir()
        shown = cfg.data_dir / skipped[0].name if in_folder else skipped[0].name
        raise RvlError(f"{shown}: {skipped[0].reason} "
                       f"(the cached shards skipped it: pass --skip-bad-{source.unit})")


def _lock(stack: contextlib.ExitStack, cfg: PrepareConfig, key: str, unusable: str | None) -> None:
    """Hold the key's lock until ``stack`` closes; a cache that cannot be written fails here,
    naming the unusable manifest when that is why the entry needs building."""
    try:
        stack.enter_context(cache.entry_lock(cfg.cache_dir, key))
    except OSError as err:
        if unusable:
            raise RvlError(f"{unusable}; rebuild the entry with a writable --cache-dir "
                           f"({cfg.cache_dir}: {_reason(err)})") from err
        raise RvlError(f"--cache-dir {cfg.cache_dir}: cannot write ({_reason(err)}); the entry "
                       f"{key} is missing or incomplete, so it must be built") from err


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def _resolve_inputs(cfg: PrepareConfig, prompt: PromptSpec | None) -> _Inputs:
    model = resolve_model(cfg.model)
    source = open_source(cfg)
    if isinstance(source, FolderSource):  # a folder's listing is its scan: bad names stop
        # even a hit (checked without a listing's object per file: a hit lists 400k)
        _refuse_bad(cfg, source, source.bad_entries(cfg.splits))
    tokenizer_dir = model.tokenizer_dir()
    if prompt is None:
        prompt = resolve_prompt(cfg.resolved().prompt_settings, model=cfg.model,
                                preset=model.preset, tokenizer_dir=tokenizer_dir,
                                labels=source.labels)
    elif prompt.tokenizer != cache.tokenizer_fingerprint(tokenizer_dir):
        raise RvlError(f"--model {cfg.model}: its tokenizer files differ from those the recipe's "
                       "prompt was made with; evaluate with the base model the run trained on")
    # The key hashes every part but "source" (for people): the resolved prompt whole, the
    # documents' identity and the subset (cache.cache_key).
    settings = {"format_version": FORMAT_VERSION, "mode": prompt.mode, "max_len": prompt.max_len,
                "labels": list(prompt.labels), "prompt": to_json(prompt),
                "data": source.key_data(), "selection": selection_settings(cfg),
                "source": {"model": cfg.model, "location": model.location}}
    return _Inputs(source, tokenizer_dir, settings, prompt)


def _refuse_bad(cfg: PrepareConfig, source: Source, bad: dict[str, list[Bad]]) -> None:
    for found in bad.values():
        if found and not cfg.skip_bad_files:
            where, reason = found[0]
            raise RvlError(f"{where}: {reason} {_skip_hint(source.unit)}")


def _skip_hint(unit: str) -> str:
    return f"(--skip-bad-{unit} skips such {unit})"


def _build(cfg: PrepareConfig, inputs: _Inputs, root: Path, key: str, manifest: Manifest | None,
           todo: list[str], notes: list[str], say: Log) -> Manifest:
    # Each split's documents (keys, labels); a bad one stops prepare here, before anything is
    # written or the tokenizer is loaded, unless the skip flag turns it into a listed skip.
    listings = inputs.source.list_splits(todo)
    _refuse_bad(cfg, inputs.source, {split: listings[split].bad for split in todo})
    builder = load_row_builder(inputs.prompt, inputs.tokenizer_dir,
                               trust_remote_code=cfg.trust_remote_code, log=say)
    if manifest is None or manifest.template != builder.template:
        manifest = Manifest(root, key, inputs.settings, builder.template, {})
    try:
        for split in todo:
            info = _build_split(cfg, inputs, split, listings.pop(split), builder, root)
            notes.extend(f"skipped {s.name}: {s.reason}" for s in info.skipped_files)
            splits = {**manifest.splits, split: info}
            manifest = replace(manifest, splits={s: splits[s] for s in SPLITS if s in splits})
            try:
                write_json_atomic(root / MANIFEST_NAME, manifest.to_json())
            except OSError as err:  # the old manifest stands: a split it lacks is built next time
                raise RvlError(f"--cache-dir {cfg.cache_dir}: cannot write the manifest "
                               f"({_reason(err)}); the previous one was kept") from err
    except BaseException:
        # A first build that stopped (a malformed file, a full disk) leaves no empty key folder;
        # rmdir removes a folder only when it is empty, so an existing entry stays whole.
        with contextlib.suppress(OSError):
            root.rmdir()
        raise
    return manifest


def _build_split(cfg: PrepareConfig, inputs: _Inputs, split: str, listing: Listing,
                 builder: RowBuilder, root: Path) -> SplitInfo:
    from tqdm.auto import tqdm  # lazy: a hit draws no bar

    start = time.perf_counter()
    entries = listing.entries
    keys, labels = [e.key for e in entries], [e.label for e in entries]
    selection = select_split(split, keys, labels, cfg, inputs.source.labels,
                             doc_ids=lambda: inputs.source.doc_ids(entries))
    if selection.indexes is not None:  # only the selected documents are read and tokenised
        entries = [entries[i] for i in selection.indexes]
    skipped = [_skipped(cfg, bad) for bad in listing.bad]
    folder = staging_path(root / split)  # names its maker's pid: `cache ls` tells stale from live
    try:
        folder.mkdir(parents=True)
    except OSError as err:
        raise RvlError(f"--cache-dir {cfg.cache_dir}: cannot write ({_reason(err)})") from err
    writer = ShardWriter(folder, generative=cfg.generative, labels=inputs.source.labels)
    progress = None if cfg.progress is None else not cfg.progress
    bar = tqdm(total=len(entries), desc=f"prepare {split}", unit="doc", disable=progress)
    try:
        documents = inputs.source.read(split, entries, cfg.tokenize_batch)
        for chunk in build_chunks(documents, builder.encode, builder.template,
                                  builder.truncation, train=split == "train"):
            if chunk.bad and not cfg.skip_bad_files:
                where, reason = chunk.bad[0]
                raise BadFile(where, f"{reason} {_skip_hint(inputs.source.unit)}")
            skipped += [_skipped(cfg, bad) for bad in chunk.bad]
            writer.write(chunk.rows, chunk.meta)
            bar.update(len({m.doc_id for m in chunk.meta}) + len(chunk.bad))  # docs, not windows
        shards = writer.close()
        replace_dir(folder, root / split)
    except BaseException as err:
        writer.abort()
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(err, OSError):  # reading errors are BadFiles: this is the cache's disk
            raise RvlError(f"--cache-dir {cfg.cache_dir}: cannot write the shards "
                           f"({_reason(err)}); the partial split was removed") from err
        raise
    finally:
        bar.close()
    return SplitInfo(rows=sum(s.rows for s in shards), shards=tuple(shards),
                     truncated=writer.truncated, empty=writer.empty,
                     replaced_utf8=writer.replaced_utf8, skipped_files=tuple(skipped),
                     class_counts=writer.named_class_counts(), length=writer.length_summary(),
                     seconds=round(time.perf_counter() - start, 3), selection=selection.info)


def _skipped(cfg: PrepareConfig, bad: Bad) -> SkippedFile:
    """A bad file or row as the manifest names it: a folder's file name, file:ROW for a table row
    (relative to --data when it lies inside), hf:NAME[split]:ROW as it is."""
    where, reason = bad
    if is_hub(where):
        return SkippedFile(where, reason)
    folder = resolved_data(cfg.data_dir)
    if not folder.is_dir():
        folder = folder.parent
    path = Path(where)
    return SkippedFile(str(path.relative_to(folder)) if path.is_relative_to(folder) else path.name,
                       reason)
