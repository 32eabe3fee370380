"""Long documents and class weights on the sample: accuracy, macro-F1 and eval time.

    .venv/bin/python bench/bench_truncation.py [--model PATH] [--max-len 128] [--epochs 2]

Part 1 trains one run per ``--truncation`` (head, head+tail, chunks) on ``--per-class`` train
documents of each class, at a max-len that cuts most documents, and evaluates each on the test
split at the same max-len. Part 2 trains on an imbalanced train subset (a split file: classes
0-7 keep ``--majority`` train documents, classes 8-15 ``--minority``), without and with
``--class-weights balanced``, and evaluates both on the whole test split. Each run is the real
CLI, in its own process; the work folder (cache, runs, evals) is ``--work``. Raw figures go to
bench/out/truncation.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RVL = str(Path(sys.executable).parent / "rvl-llm")
STRATEGIES = {
    "head": [],
    "head+tail": ["--truncation", "head+tail"],
    "chunks": ["--truncation", "chunks"],
    # the same training rows as head (each document's first window): isolates eval's pooling
    "chunks-first": ["--truncation", "chunks", "--train-chunks", "first"],
}


def run(args: list[str]) -> float:
    start = time.perf_counter()
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def train_and_eval(opts: argparse.Namespace, name: str, flags: list[str]) -> dict[str, object]:
    work = opts.work
    out = work / "evals" / name
    done = list(out.rglob("metrics.json")) if opts.reuse else []
    if done:  # --reuse: a run measured before, with its train time
        return json.loads((work / f"{name}.json").read_text())
    common = ["--data", str(opts.data), "--model", opts.model, "--generative",
              "--max-len", str(opts.max_len), "--cache-dir", str(work / "cache"), "--no-progress"]
    train_s = run([RVL, "train", *common, "--name", name, "--log-dir", str(work / "log"),
                   "--num-epochs", str(opts.epochs), "--batch-size", "8", "--trainable", "full",
                   "--lr", "1e-3", "--save", "never", "--seed", "1", "--overwrite", *flags])
    run([RVL, "eval", "--checkpoint", str(work / "log" / name / "final"), "--out-dir", str(out),
         "--no-progress"])
    [metrics] = list(out.rglob("metrics.json"))
    record = json.loads(metrics.read_text())
    result = {"name": name, "flags": " ".join(flags), "train_s": round(train_s, 1),
              "accuracy": record["accuracy"], "macro_f1": record["macro_f1"],
              "eval_s": record["seconds"], "truncated_share": record["truncated_share"]}
    (work / f"{name}.json").write_text(json.dumps(result))
    return result


def eval_times(opts: argparse.Namespace, repeats: int = 3) -> list[dict[str, object]]:
    """Eval seconds of part 1's runs again, interleaved per repeat (medians): the timings of
    the first pass share the machine with whatever ran beside it."""
    names = [f"trunc-{n.replace('+', '-')}" for n in STRATEGIES if n in opts.strategies.split(",")]
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for repeat in range(repeats):
        for name in names:
            out = opts.work / "evals-timing" / f"{name}-{repeat}"
            run([RVL, "eval", "--checkpoint", str(opts.work / "log" / name / "final"),
                 "--out-dir", str(out), "--no-progress"])
            [metrics] = list(out.rglob("metrics.json"))
            seconds[name].append(json.loads(metrics.read_text())["seconds"])
    return [{"name": n, "eval_s": sorted(v)[len(v) // 2], "runs": v} for n, v in seconds.items()]


def imbalanced_split_file(data: Path, majority: int, minority: int, path: Path) -> Path:
    """Train lines only (validation and test stay whole): classes 0-7 keep their first
    ``majority`` train documents (by file name), classes 8-15 their first ``minority``."""
    kept: dict[int, int] = {}
    lines = []
    for file in sorted(data.glob("train_*_aws.json")):
        label = int(file.name.split("_")[2])
        kept[label] = kept.get(label, 0) + 1
        if kept[label] <= (majority if label < 8 else minority):
            lines.append(f"train {file.name}")
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "sample" / "data")
    parser.add_argument("--model", default=str(ROOT / "sample" / "models" / "tiny-mistral"))
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=16)
    parser.add_argument("--majority", type=int, default=24)
    parser.add_argument("--minority", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rvl-bench-truncation"))
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help="Part 1's runs, comma-separated: " + ", ".join(STRATEGIES))
    parser.add_argument("--out", default="truncation.json", help="File name in bench/out.")
    parser.add_argument("--reuse", action="store_true",
                        help="Keep the figures of runs already measured in --work.")
    parser.add_argument("--part", choices=("all", "truncation", "weights", "eval-time"),
                        default="all")
    opts = parser.parse_args()
    opts.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, object]]] = {}
    if opts.part in ("all", "truncation"):
        subset = ["--train-per-class", str(opts.per_class)]
        results["truncation"] = [
            train_and_eval(opts, f"trunc-{name.replace('+', '-')}", [*subset, *flags])
            for name, flags in STRATEGIES.items() if name in opts.strategies.split(",")]
    if opts.part in ("all", "weights"):
        split = imbalanced_split_file(opts.data, opts.majority, opts.minority,
                                      opts.work / "imbalanced.txt")
        subset = ["--split-file", str(split)]
        results["weights"] = [
            train_and_eval(opts, "imbalanced-unweighted", subset),
            train_and_eval(opts, "imbalanced-balanced", [*subset, "--class-weights", "balanced"]),
        ]
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    if opts.part == "eval-time":
        times = eval_times(opts)
        (out / opts.out).write_text(json.dumps(times, indent=2) + "\n")
        for t in times:
            print(f"| {t['name']} | {t['eval_s']:.2f} | {t['runs']} |")
        return
    (out / opts.out).write_text(json.dumps(results, indent=2) + "\n")
    print("| run | flags | accuracy | macro-F1 | eval s | train s | truncated |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for rows in results.values():
        for r in rows:
            print(f"| {r['name']} | `{r['flags']}` | {r['accuracy']:.4f} | {r['macro_f1']:.4f} "
                  f"| {r['eval_s']:.2f} | {r['train_s']:.0f} | {r['truncated_share']:.1%} |")


if __name__ == "__main__":
    main()
