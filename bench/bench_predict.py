"""Predict throughput against eval on the same documents, side by side in one process.

One checkpoint (the tiny Llama-3-style sample model saved as a finished run: speed does not
depend on what the model learnt), the sample's test split, one loaded model:
  eval     ``predict()`` over the prepared split (rows read from the cache: no tokenising)
  predict  ``Classifier.predict(texts)``: read from the files, cut, tokenised and scored
Both score every class exactly with the same scoring code; predict also pays for tokenising.
Then the whole commands, each a fresh process, start-up and model load included:
  rvl-llm eval     -c CHECKPOINT (the split's cache entry exists: a hit)
  rvl-llm predict  -c CHECKPOINT <the split's files> -o labels.jsonl
Docs/s is the median of ``--repeats`` timed runs after one warm-up, the variants interleaved per
repeat. Target: predict not slower than eval per document (ratio predict/eval time <= 1.0).

    python bench/bench_predict.py --max-len 512 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

PAD = "<|end_of_text|>"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "sample" / "models" / "tiny-llama3")
    parser.add_argument("--data", type=Path, default=ROOT / "sample" / "data")
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "predict")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "predict.json")
    return parser.parse_args()


def build_checkpoint(work: Path, model: Path, data: Path, max_len: int) -> Path:
    """``work/log/bench/final``: the model's weights as a finished generative run leaves them."""
    from rvl_llm.labels import RVL_CDIP_CLASSES
    from rvl_llm.pipeline.config import PrepareConfig
    from rvl_llm.recipe import Recipe, TrainSettings

    final = work / "log" / "bench" / "final"
    shutil.rmtree(final.parent, ignore_errors=True)
    shutil.copytree(model, final)
    Recipe(
        run_name="bench", model=str(model), model_location=str(model),
        data=PrepareConfig(data_dir=data.resolve(), model=str(model), max_len=max_len,
                           generative=True, labels=RVL_CDIP_CLASSES, cache_dir=work / "cache",
                           splits=("test",), progress=False),
        settings=TrainSettings(trainable="full"), pad_token=PAD, lora_targets="all-linear",
        quantization=None, mixed_precision=None, cache_key="none", versions={},
        command="bench/bench_predict.py",
    ).write(final)
    return final


def command_runs(final: Path, files: list[Path], work: Path) -> dict[str, Callable[[], Any]]:
    """The two whole commands, as fresh processes (what a user waits for)."""
    import subprocess

    rvl = [sys.executable, "-m", "rvl_llm"]
    eval_cmd = [*rvl, "eval", "-c", str(final), "-o", str(work / "results"), "--no-progress"]
    predict_cmd = [*rvl, "predict", "-c", str(final), *map(str, files), "-o",
                   str(work / "labels.jsonl"), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(command: list[str]) -> Callable[[], Any]:
        return lambda: subprocess.run(command, check=True, capture_output=True, env=env)

    return {"eval command": run(eval_cmd), "predict command": run(predict_cmd)}


def median_seconds(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    for run in runs.values():
        run()  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():  # interleaved: drift hits both alike
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main() -> None:
    import torch

    from rvl_llm.inference.scoring import predict
    from rvl_llm.pipeline.prepare import run_prepare
    from rvl_llm.predict.classifier import Classifier
    from rvl_llm.recipe import Recipe

    args = parse_args()
    final = build_checkpoint(args.work, args.model.resolve(), args.data, args.max_len)
    manifest = run_prepare(Recipe.read(final).data).manifest
    dataset = manifest.dataset("test")
    classifier = Classifier.from_checkpoint(final, batch_size=args.batch_size)
    files = sorted(args.data.glob("test_*.json"))
    assert len(files) == len(dataset), "the split and its files differ"

    def eval_pass() -> Any:
        return predict(classifier.model, dataset, manifest.template,
                       pad_token_id=classifier.pad_token_id, batch_size=args.batch_size,
                       progress=False)

    def predict_pass() -> Any:
        texts = [json.loads(f.read_text(encoding="utf-8"))["ocr"] for f in files]
        return classifier.predict(texts)

    # The two must give the same answers before their speeds mean anything.
    evaluated, predicted = eval_pass(), predict_pass()
    same = sum(int(evaluated.predicted[i]) == classifier.labels.index(p.label)
               for i, p in enumerate(predicted))
    seconds = median_seconds({"eval": eval_pass, "predict": predict_pass}, args.repeats)
    seconds |= median_seconds(command_runs(final, files, args.work), args.repeats)
    n = len(files)
    results = {name: {"seconds": s, "median_seconds": statistics.median(s),
                      "docs_per_s": n / statistics.median(s)} for name, s in seconds.items()}
    report = {
        "model": str(args.model), "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(), "max_len": args.max_len, "docs": n,
        "batch_size": args.batch_size, "repeats": args.repeats, "same_label": same,
        "results": results,
        "predict_over_eval": results["predict"]["median_seconds"]
        / results["eval"]["median_seconds"],
        "command_predict_over_eval": results["predict command"]["median_seconds"]
        / results["eval command"]["median_seconds"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"predict vs eval: {n} docs, max-len {args.max_len}, batch {args.batch_size}, "
          f"median of {args.repeats}; same label for {same} of {n}\n")
    print("| variant | docs/s | median s |\n|---|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['docs_per_s']:.1f} | {r['median_seconds']:.3f} |")
    print(f"\npredict / eval time: {report['predict_over_eval']:.2f}x in one process, "
          f"{report['command_predict_over_eval']:.2f}x as commands (target <= 1.0)")


if __name__ == "__main__":
    main()
