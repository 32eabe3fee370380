"""Prepare benchmark: the old per-document tokenisation against `rvl-llm prepare`, cold and cached.

Side by side in one run, each variant in its own process (so peak memory is its own), repeated
and reported as medians and ratios:

  (a) old   one ``tokenizer(text)`` call per document over the full text, in a Python loop
            (what train.py/eval.py did on every run), then truncation
  (b) cold  ``rvl-llm prepare`` into an empty cache (tokenizer read with ``tokenizers`` alone)
  (b') cold, as before 2026-11-30: the same command with the tokenizer loaded through
            transformers (importing it and torch), to measure what the light loader saves
  (c) hit   ``rvl-llm prepare`` again: the whole command, start-up included
  floor     what no prepare can avoid: start Python, load the tokenizer, read every file's JSON,
            and one Rust ``encode_batch`` over the text each document needs (the character
            prefix prepare's first window cuts), in a process timed the same way

The corpus has realistic lengths: the sample generator's documents cut to 76% of their
characters, which gives a median of about 330 Llama-3 tokens and 10-12% over 768.

Usage: python bench/bench_prepare.py [--docs 20000] [--repeats 3] [--model tiny-llama3]
Writes bench/out/prepare.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
RVL = [sys.executable, "-m", "rvl_llm"]
# `rvl-llm` with prepare's tokenizer loaded through transformers, as it was before 2026-11-30.
RVL_TRANSFORMERS = [sys.executable, "-c", (
    "from rvl_llm.pipeline import tokenize as t\n"
    "t.load_tokenizer_files = lambda folder, **kw: t.TokenizerFiles.from_transformers(\n"
    "    t.load_tokenizer(folder))\n"
    "from rvl_llm.cli import main\n"
    "main()"
)]


LENGTH_SCALE = 0.76  # of each generated text: median ~330 tokens, ~10-12% over 768 (RVL-CDIP-like)


def make_corpus(folder: Path, docs: int) -> None:
    """A generated corpus of ``docs`` documents in the RVL-CDIP layout (80/10/10 split), each
    text cut at a word to ``LENGTH_SCALE`` of its characters."""
    from rvl_llm.pipeline.tokenize import _cut
    from rvl_llm.sample.corpus import corpus_documents, write_documents

    marker = folder / f".complete-{LENGTH_SCALE}"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    per_class = {
        "train": docs * 8 // 10 // 16,
        "validation": docs // 10 // 16,
        "test": docs // 10 // 16,
    }
    documents = [replace(d, text=_cut(d.text, int(len(d.text) * LENGTH_SCALE)))
                 for d in corpus_documents(per_class=per_class, seed=1)]
    write_documents(folder, documents)
    marker.touch()


# The floor, run as its own process: imports, tokenizer, reading, one batch call. Prepare's
# first window per document is (budget + SLACK) * CHARS_PER_TOKEN characters.
FLOOR = """
import json, os, sys, time
start = time.perf_counter()
from tokenizers import Tokenizer
from rvl_llm.pipeline.tokenize import CHARS_PER_TOKEN, SLACK, _cut
folder, tokenizer_json, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
tokenizer = Tokenizer.from_file(tokenizer_json)
loaded = time.perf_counter()
texts = []
for name in sorted(os.listdir(folder)):
    if name.endswith(".json"):
        with open(os.path.join(folder, name), "rb") as handle:
            texts.append(json.loads(handle.read().decode("utf-8"))["ocr"])
read = time.perf_counter()
window = (max_len + SLACK) * CHARS_PER_TOKEN
encodings = tokenizer.encode_batch([_cut(t, window) for t in texts], add_special_tokens=False)
done = time.perf_counter()
print(json.dumps({"docs": len(texts), "tokens": sum(min(len(e.ids), max_len) for e in encodings),
                  "start_s": loaded - start, "read_s": read - loaded, "encode_s": done - read}))
"""


def old_way(data: Path, model: str, max_len: int) -> dict[str, float]:
    """The replaced scripts' loop: read each file, tokenise the whole text, truncate."""
    from transformers import AutoTokenizer

    from rvl_llm.presets import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model).location)
    start = time.perf_counter()
    tokens = 0
    files = sorted(data.glob("*.json"))
    for path in files:
        text = json.loads(path.read_text(encoding="utf-8"))["ocr"]
        ids = tokenizer(text)["input_ids"][:max_len]
        tokens += len(ids)
    return {"seconds": time.perf_counter() - start, "docs": len(files), "tokens": tokens}


def child_peak(args: list[str]) -> dict[str, float]:
    """Run a command under a tiny wrapper that reports its own peak RSS exactly."""
    wrapper = (
        "import resource,subprocess,sys,time,json;t=time.perf_counter();"
        "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
        "print(json.dumps({'rc':p.returncode,'seconds':time.perf_counter()-t,'peak_mib':r/1024,"
        "'out':p.stdout[-2000:],'err':p.stderr[-2000:]}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, cwd=ROOT, env=_env()
    )
    result = json.loads(proc.stdout)
    if result["rc"] != 0:
        sys.exit(f"failed: {' '.join(args)}\n{result['out']}\n{result['err']}")
    return result


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--small-docs", type=int, default=5_000, help="second size, for memory")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="tiny-llama3")
    parser.add_argument("--max-len", type=int, default=768)
    parser.add_argument(
        "--old-child", nargs=3, metavar=("DATA", "MODEL", "MAXLEN"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.old_child:
        data, model, max_len = args.old_child
        print(json.dumps(old_way(Path(data), model, int(max_len))))
        return

    OUT.mkdir(parents=True, exist_ok=True)
    corpora = {n: OUT / f"corpus-{n}" for n in (args.docs, args.small_docs)}
    for n, folder in corpora.items():
        make_corpus(folder, n)
    big = corpora[args.docs]
    prepare_args = [
        "prepare",
        "--data",
        str(big),
        "--model",
        args.model,
        "--max-len",
        str(args.max_len),
        "--generative",
        "--no-progress",
    ]
    prepare = [*RVL, *prepare_args]
    runs: dict[str, list[dict[str, float]]] = {
        "old": [], "floor": [], "cold": [], "cold_tf": [], "hit": [], "cold_small": []
    }
    from rvl_llm.presets import resolve_model

    tokenizer_json = resolve_model(args.model).tokenizer_dir() / "tokenizer.json"
    floor = [sys.executable, "-c", FLOOR, str(big), str(tokenizer_json), str(args.max_len)]
    for _ in range(args.repeats):
        cache = OUT / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        old = child_peak(
            [sys.executable, __file__, "--old-child", str(big), args.model, str(args.max_len)]
        )
        old["inner_seconds"] = json.loads(old["out"])["seconds"]
        runs["old"].append(old)
        runs["floor"].append(child_peak(floor))
        runs["floor"][-1] |= json.loads(runs["floor"][-1]["out"])
        shutil.rmtree(OUT / "cache-tf", ignore_errors=True)
        runs["cold_tf"].append(
            child_peak([*RVL_TRANSFORMERS, *prepare_args, "--cache-dir", str(OUT / "cache-tf")])
        )
        runs["cold"].append(child_peak([*prepare, "--cache-dir", str(cache)]))
        runs["hit"].append(child_peak([*prepare, "--cache-dir", str(cache)]))
        small = [*prepare, "--cache-dir", str(OUT / "cache-small")]
        small[small.index(str(big))] = str(corpora[args.small_docs])
        shutil.rmtree(OUT / "cache-small", ignore_errors=True)
        runs["cold_small"].append(child_peak(small))

    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    peak = {k: statistics.median(r["peak_mib"] for r in v) for k, v in runs.items()}
    results = {
        "docs": args.docs,
        "small_docs": args.small_docs,
        "model": args.model,
        "max_len": args.max_len,
        "repeats": args.repeats,
        "median_seconds": med,
        "median_peak_mib": peak,
        "old_inner_seconds": statistics.median(r["inner_seconds"] for r in runs["old"]),
        "speedup_cold_vs_old": med["old"] / med["cold"],
        "speedup_cold_transformers_vs_old": med["old"] / med["cold_tf"],
        "cold_vs_floor": med["cold"] / med["floor"],
        "floor_parts_median_s": {k: statistics.median(r[k] for r in runs["floor"])
                                 for k in ("start_s", "read_s", "encode_s")},
        "cpu_count": os.cpu_count(),
    }
    (OUT / "prepare.json").write_text(json.dumps(results, indent=2) + "\n")
    n = args.docs
    print("| variant | median s | docs/s | vs old | vs floor | peak MiB |")
    print("|---|---|---|---|---|---|")
    for k, label in (
        ("old", "(a) old: tokenizer(text) per doc"),
        ("floor", "floor: read + one encode_batch of the needed prefixes"),
        ("cold", "(b) prepare, cold"),
        ("cold_tf", "(b') prepare, cold, tokenizer via transformers (before)"),
        ("hit", "(c) prepare, cache hit"),
        ("cold_small", f"(b) prepare, cold, {args.small_docs} docs"),
    ):
        docs = args.small_docs if k == "cold_small" else n
        print(
            f"| {label} | {med[k]:.2f} | {docs / med[k]:,.0f} | {med['old'] / med[k]:.2f}x "
            f"| {med[k] / med['floor']:.2f}x | {peak[k]:.0f} |"
        )


if __name__ == "__main__":
    main()
