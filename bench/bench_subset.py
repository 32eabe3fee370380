"""Subset benchmark: a 160-document `--train-per-class 10` prepare against the full train split,
at three train-split sizes. A subset's cost should not grow with the split it is drawn from: only
its documents are read and tokenised (the folder is still listed, and every file's size and
mtime key the cache).

Side by side in one process, interleaved per repeat: for each corpus, a cold ``run_prepare``
(a fresh cache folder each time) with ``--train-per-class 10`` and one over the whole train
split; generative, max-len 512. Validation and test (16 documents each) are built in both. One
untimed prepare first, so that importing transformers is paid by neither variant.

Usage: python bench/bench_subset.py [--train-per-class-sizes 100 400 1600] [--repeats 3]
Writes bench/out/subset.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SUBSET_PER_CLASS = 10  # 160 documents over RVL-CDIP's 16 classes: the paper's smallest subset


def make_corpus(folder: Path, train_per_class: int) -> None:
    """A generated RVL-CDIP-like corpus: ``train_per_class`` x 16 train documents, 16 + 16 eval."""
    from rvl_llm.sample.corpus import write_corpus

    if (folder / ".complete").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    write_corpus(folder, per_class={"train": train_per_class, "validation": 1, "test": 1}, seed=1)
    (folder / ".complete").touch()


def cold_prepare(data: Path, cache: Path, model: str, max_len: int,
                 per_class: int | None) -> dict[str, float]:
    """One cold run_prepare into an empty ``cache``: seconds, train rows, train-build seconds."""
    from rvl_llm.pipeline.config import PrepareConfig
    from rvl_llm.pipeline.prepare import run_prepare

    shutil.rmtree(cache, ignore_errors=True)
    cfg = PrepareConfig(data_dir=data, model=model, max_len=max_len, generative=True,
                        cache_dir=cache, train_per_class=per_class, progress=False)
    start = time.perf_counter()
    result = run_prepare(cfg)
    seconds = time.perf_counter() - start
    train = result.manifest.splits["train"]
    shutil.rmtree(cache, ignore_errors=True)
    return {"seconds": seconds, "train_rows": train.rows, "train_build_s": train.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class-sizes", type=int, nargs="+",
                        default=[100, 400, 1600], help="train documents per class of each corpus")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="tiny-llama3")
    parser.add_argument("--max-len", type=int, default=512)
    args = parser.parse_args()

    work = OUT / "subset"
    corpora = {n * 16: work / f"corpus-train-{n * 16}" for n in args.train_per_class_sizes}
    for per_class, folder in zip(args.train_per_class_sizes, corpora.values(), strict=True):
        make_corpus(folder, per_class)
    smallest = next(iter(corpora.values()))
    cold_prepare(smallest, work / "cache-warmup", args.model, args.max_len, SUBSET_PER_CLASS)

    variants = {"subset": SUBSET_PER_CLASS, "full": None}
    runs: dict[str, list[dict[str, float]]] = {}
    for repeat in range(args.repeats):
        for train_docs, folder in corpora.items():
            for name, per_class in variants.items():
                run = cold_prepare(folder, work / f"cache-{name}", args.model, args.max_len,
                                   per_class)
                runs.setdefault(f"{name}-{train_docs}", []).append(run)
                print(f"repeat {repeat + 1}: {name:<6} train {train_docs:>6}: "
                      f"{run['seconds']:6.2f}s ({run['train_rows']:.0f} train rows)", flush=True)

    medians = {key: {m: statistics.median(r[m] for r in rs) for m in rs[0]}
               for key, rs in runs.items()}
    first_docs = next(iter(corpora))
    print(f"\n| train split | subset (160) s | subset train build s | full split s | "
          f"full / subset | subset vs {first_docs:,} |")
    print("|---:|---:|---:|---:|---:|---:|")
    for train_docs in corpora:
        subset, full = medians[f"subset-{train_docs}"], medians[f"full-{train_docs}"]
        growth = subset["seconds"] / medians[f"subset-{first_docs}"]["seconds"]
        print(f"| {train_docs:,} | {subset['seconds']:.2f} | {subset['train_build_s']:.2f} | "
              f"{full['seconds']:.2f} | {full['seconds'] / subset['seconds']:.1f}x | "
              f"{growth:.2f}x |")
    record: dict[str, Any] = {"args": vars(args), "runs": runs, "medians": medians}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "subset.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
