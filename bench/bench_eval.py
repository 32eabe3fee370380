"""Eval throughput: class scoring against its floor and against the old 100-token generation.

One model, one split, side by side in one process:
  floor     one forward pass over the prompts (last position's logits only): no eval is cheaper
  score     ``predict(decode="score")``: every class's completion log-probability
  generate  greedy ``generate`` with ``max_new_tokens=100`` and no early stop, as the old eval did

Docs/s is the median of ``--repeats`` timed runs after one warm-up run. Targets: score within
1.3x of the floor; score at least 3x faster than generation. Random weights are fine: speed does
not depend on what the model learnt. ``--shape`` / ``--config-override`` resize the model (random
weights of a real model's shape) while keeping the tokenizer, to measure at real scale on a GPU.

    python bench/bench_eval.py --model sample/models/tiny-llama3 --max-len 512
    python bench/bench_eval.py --model sample/models/tiny-llama3 --shape llama-3-8b --limit 128
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

GENERATE_TOKENS = 100  # what the old eval asked for
TARGET_SCORE_OVER_FLOOR = 1.3
TARGET_GENERATE_OVER_SCORE = 3.0
# Real models' shapes for --shape (with the tiny model's tokenizer and vocabulary).
SHAPES = {
    "llama-3-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                   "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                   "tie_word_embeddings": False},
    "width-512": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 8,
                  "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sample/models/tiny-llama3",
                        help="preset, local folder or hub id (weights and tokenizer)")
    parser.add_argument("--data", type=Path, default=ROOT / "sample" / "data")
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=64, help="first N documents (0: all)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"),
                        default="auto", help="auto: bfloat16 on a GPU, float32 on the CPU")
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None,
                        help="random weights of this shape (a --config-override preset)")
    parser.add_argument("--config-override", type=json.loads, default=None,
                        help='JSON config fields of a random model: {"num_hidden_layers": 32}')
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "bench" / "out" / "eval-cache")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "eval.json")
    return parser.parse_args()


def load_model(location: str, dtype_name: str, override: dict[str, Any] | None) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype_name == "auto":
        dtype_name = "bfloat16" if device == "cuda" else "float32"
    dtype = getattr(torch, dtype_name)
    if override:
        config = AutoConfig.from_pretrained(location)
        for key, value in override.items():
            setattr(config, key, value)
        with torch.device(device):  # initialise on the device: an 8B model in seconds
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype).to(device)
    return model.eval()


def floor_pass(model: Any, prompts: list[list[int]], batch_size: int, pad: int) -> None:
    """One forward over every prompt, batched and padded exactly as ``predict`` does."""
    import numpy as np
    import torch

    from rvl_llm.inference.scoring import _length_batches, _pad  # the same batching as predict

    device = model.get_input_embeddings().weight.device
    lengths = np.array([len(p) for p in prompts])
    with torch.inference_mode():
        for batch in _length_batches(lengths, batch_size):
            ids, mask = _pad([prompts[i] for i in batch], pad, left=True)
            ids, mask = ids.to(device), mask.to(device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                  logits_to_keep=1)


def generate_pass(model: Any, prompts: list[list[int]], batch_size: int, pad: int) -> None:
    """The old eval: greedy, 100 new tokens, no stop at EOS."""
    import numpy as np
    import torch

    from rvl_llm.inference.scoring import _length_batches, _pad

    device = model.get_input_embeddings().weight.device
    lengths = np.array([len(p) for p in prompts])
    with torch.inference_mode():
        for batch in _length_batches(lengths, batch_size):
            ids, mask = _pad([prompts[i] for i in batch], pad, left=True)
            model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                           max_new_tokens=GENERATE_TOKENS, min_new_tokens=GENERATE_TOKENS,
                           do_sample=False, pad_token_id=pad)


def compute_estimate(model: Any, prompt_tokens: float, completions: list[int]) -> dict[str, float]:
    """Multiply-adds per document, attention left out: the floor runs the body over the prompt
    and the vocabulary projection once; score adds body + projection for every completion
    position after the first (sum of len(c) - 1). Explains why a 64-wide model with a 128k
    vocabulary cannot reach the target while a real one does."""
    projection = model.get_output_embeddings().weight.numel()
    embedding = model.get_input_embeddings().weight.numel()
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    body = sum(p.numel() for p in model.parameters()) - embedding - (0 if tied else projection)
    floor = prompt_tokens * body + projection
    extra = sum(n - 1 for n in completions) * (body + projection)
    return {"body_params": body, "projection_params": projection, "floor_macs": floor,
            "score_extra_macs": extra, "score_over_floor": (floor + extra) / floor}


def timed(run: Callable[[], None], repeats: int) -> list[float]:
    import torch

    def once() -> float:
        start = time.perf_counter()
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()  # warm-up: kernels, allocator, caches
    return [once() for _ in range(repeats)]


def main() -> None:
    import torch

    from rvl_llm.inference.scoring import predict
    from rvl_llm.pipeline.config import PrepareConfig
    from rvl_llm.pipeline.prepare import run_prepare
    from rvl_llm.presets import resolve_model

    args = parse_args()
    source = resolve_model(args.model)
    prep = PrepareConfig(data_dir=args.data, model=args.model, max_len=args.max_len,
                         generative=True, splits=(args.split,), cache_dir=args.cache_dir,
                         progress=False)
    manifest = run_prepare(prep).manifest
    dataset = manifest.dataset(args.split)
    if args.limit:  # 0: the whole split
        dataset = dataset.select(range(min(args.limit, len(dataset))))
    template = manifest.template
    pad = template.completions[0][-1]  # EOS: any id works, padding is masked
    rows = dataset.select_columns(["input_ids", "prompt_len"])
    prompts = [list(r["input_ids"][: r["prompt_len"]]) for r in rows]
    override = {**SHAPES.get(args.shape or "", {}), **(args.config_override or {})}
    model = load_model(source.location, args.dtype, override or None)
    n = len(prompts)

    runs: dict[str, Callable[[], None]] = {
        "floor": lambda: floor_pass(model, prompts, args.batch_size, pad),
        "score": lambda: predict(model, dataset, template, pad_token_id=pad,
                                 batch_size=args.batch_size, progress=False),
    }
    if not args.skip_generate:
        runs["generate"] = lambda: generate_pass(model, prompts, args.batch_size, pad)
    results = {}
    for name, run in runs.items():
        seconds = timed(run, args.repeats)
        median = statistics.median(seconds)
        results[name] = {"seconds": seconds, "median_seconds": median, "docs_per_s": n / median}
        each = ", ".join(f"{s:.3f}" for s in seconds)
        print(f"{name:<9} {n / median:10.1f} docs/s  (runs: {each} s)", file=sys.stderr)

    ratios = {"score_over_floor": results["score"]["median_seconds"]
              / results["floor"]["median_seconds"]}
    if "generate" in results:
        ratios["generate_over_score"] = (results["generate"]["median_seconds"]
                                         / results["score"]["median_seconds"])
    report = {
        "model": args.model, "shape": args.shape, "config_override": override or None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "dtype": str(next(model.parameters()).dtype), "torch_threads": torch.get_num_threads(),
        "max_len": args.max_len, "docs": n, "batch_size": args.batch_size,
        "repeats": args.repeats, "classes": len(template.completions),
        "completion_tokens": [len(c) for c in template.completions],
        "median_prompt_tokens": statistics.median(len(p) for p in prompts),
        "results": results, "ratios": ratios,
        "estimate": compute_estimate(model, statistics.mean(len(p) for p in prompts),
                                     [len(c) for c in template.completions]),
        "targets": {"score_over_floor_max": TARGET_SCORE_OVER_FLOOR,
                    "generate_over_score_min": TARGET_GENERATE_OVER_SCORE},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    ratios = report["ratios"]
    lines = [
        f"eval throughput: {report['model']} ({report['parameters'] / 1e6:.1f}M params, "
        f"{report['dtype']}, {report['device']}), max-len {report['max_len']}, "
        f"{report['docs']} docs, batch {report['batch_size']}, median of {report['repeats']}",
        "",
        "| mode | docs/s | median s | vs floor |",
        "|---|---:|---:|---:|",
    ]
    floor = report["results"]["floor"]["median_seconds"]
    for name, r in report["results"].items():
        lines.append(f"| {name} | {r['docs_per_s']:.1f} | {r['median_seconds']:.3f} | "
                     f"{r['median_seconds'] / floor:.2f}x |")
    lines.append("")
    lines.append(f"score / floor = {ratios['score_over_floor']:.2f}x "
                 f"(target <= {TARGET_SCORE_OVER_FLOOR}x; multiply-adds predict "
                 f"{report['estimate']['score_over_floor']:.2f}x)")
    if "generate_over_score" in ratios:
        lines.append(f"generate / score = {ratios['generate_over_score']:.2f}x "
                     f"(target >= {TARGET_GENERATE_OVER_SCORE}x)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
