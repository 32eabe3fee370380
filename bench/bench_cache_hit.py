"""Cache-hit benchmark: `rvl-llm prepare` finding its entry, on a corpus of RVL-CDIP's size.

A hit does no tokenising, so its cost is the corpus folder's listing (every file's name, size and
mtime: what keys the cache), hashing the tokenizer files and checking each shard. This builds a
400k-file synthetic corpus of short documents (1-2 KB each; a hit's cost does not depend on the
tokens), prepares it once at a short max-len, then times, side by side:

  floor   listing the folder alone: ``os.scandir`` and a ``stat`` per file, in a fresh process
  hit     ``rvl-llm prepare`` again, the whole command (start-up included)
  verify  ``rvl-llm cache verify`` (every shard's sha256)

each with a warm page cache (median of ``--repeats``) and, when ``--cold`` is given and this
process may write /proc/sys/vm/drop_caches (root), after dropping the page, dentry and inode
caches (median of ``--cold`` runs).

Usage: python bench/bench_cache_hit.py [--docs 400000] [--folder /tmp/bench-400k] [--repeats 5]
           [--cold 3] [--keep]
Writes bench/out/cache_hit.json and prints a markdown table; removes the folder unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
RVL = [sys.executable, "-m", "rvl_llm"]
CLASSES = 16
# The floor in a fresh process: what any lookup that notices a changed input must do.
FLOOR = (
    "import os,sys,time;t=time.perf_counter();n=0\n"
    "with os.scandir(sys.argv[1]) as it:\n"
    "    for e in it:\n"
    "        if e.name.endswith('.json'): e.stat(); n+=1\n"
    "print(time.perf_counter()-t, n)"
)


def make_corpus(folder: Path, docs: int, seed: int = 1) -> None:
    """``docs`` short OCR JSON files (80/10/10 train/validation/test, 16 classes), 1-2 KB each."""
    from rvl_llm.sample.corpus import corpus_file_name

    if (folder / ".complete").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(2000)] + ["invoice", "letter", "memo", "form", "total"]
    sizes = {"train": docs * 8 // 10, "validation": docs // 10}
    sizes["test"] = docs - sizes["train"] - sizes["validation"]
    for split, n in sizes.items():
        for index in range(n):
            label = index % CLASSES
            text = " ".join(rng.choices(words, k=rng.randint(220, 420)))
            record = json.dumps({"id": f"{split}_{index}", "ocr": text})
            (folder / corpus_file_name(split, index, label)).write_text(record, "utf-8")
    (folder / ".complete").touch()


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def timed(args: list[str]) -> float:
    """Wall seconds of one command, start-up included; exits on failure."""
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=_env())
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


def drop_caches() -> bool:
    """Drop the page, dentry and inode caches (root only); False when not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=400_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench-400k"))
    parser.add_argument("--model", default="tiny-llama3")
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold", type=int, default=0, help="runs after dropping the caches")
    parser.add_argument("--keep", action="store_true", help="keep the corpus and its cache")
    args = parser.parse_args()

    data, cache = args.folder / "data", args.folder / "cache"
    start = time.perf_counter()
    make_corpus(data, args.docs)
    made = time.perf_counter() - start
    prepare = [*RVL, "prepare", "--data", str(data), "--model", args.model, "--max-len",
               str(args.max_len), "--generative", "--no-progress", "--cache-dir", str(cache)]
    build = timed(prepare)  # a build, unless --keep left the entry last time
    variants = {
        "floor": [sys.executable, "-c", FLOOR, str(data)],
        "hit": prepare,
        "verify": [*RVL, "cache", "verify", "--cache-dir", str(cache)],
    }
    warm: dict[str, list[float]] = {k: [] for k in variants}
    cold: dict[str, list[float]] = {k: [] for k in variants}
    for command in variants.values():  # one untimed run each warms the page cache
        timed(command)
    for _ in range(args.repeats):
        for name, command in variants.items():
            warm[name].append(timed(command))
    can_drop = True
    for _ in range(args.cold):
        for name, command in variants.items():
            can_drop = drop_caches()
            if not can_drop:
                break
            cold[name].append(timed(command))
    shard_bytes = sum(p.stat().st_size for p in cache.rglob("*.arrow"))
    results = {
        "docs": args.docs,
        "max_len": args.max_len,
        "model": args.model,
        "repeats": args.repeats,
        "corpus_seconds": made,
        "first_prepare_seconds": build,
        "shard_bytes": shard_bytes,
        "warm": warm,
        "cold": cold,
        "warm_median": {k: statistics.median(v) for k, v in warm.items()},
        "cold_median": {k: statistics.median(v) for k, v in cold.items() if v},
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cache_hit.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"{args.docs:,} files; first prepare {build:.1f} s; shards {shard_bytes / 2**20:.0f} MiB")
    print("| variant | warm median s | cold median s |\n|---|---:|---:|")
    for name in variants:
        cold_s = f"{statistics.median(cold[name]):.2f}" if cold[name] else "-"
        print(f"| {name} | {statistics.median(warm[name]):.2f} | {cold_s} |")
    if args.cold and not can_drop:
        print("(cold runs skipped: /proc/sys/vm/drop_caches is not writable)")
    if not args.keep:
        shutil.rmtree(args.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
