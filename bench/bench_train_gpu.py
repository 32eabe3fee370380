"""Training throughput on a GPU: Mistral-7B- and Llama-3-8B-shaped models, LoRA and QLoRA,
random-order against length-grouped batches, through train's own loss path.

The models are built from a config with random weights (no hub, no download): throughput and
memory depend on the shapes, not on the values. Each is saved once (bf16 safetensors) and loaded
back through ``rvl_llm.train.model`` exactly as ``rvl-llm train`` loads it: bf16 for LoRA,
4-bit NF4 + gradient checkpointing for QLoRA. Rows are synthetic generative rows (prompt + a
class name of 2-5 tokens + EOS) whose lengths follow a log-normal fit of OCR documents (median
~320 tokens, p90 ~750) cut at --max-len. Batches come from the Trainer's own LengthGroupedSampler
(length-grouped) or a random permutation; each step is forward, ``completion_loss`` (logits at
the last K + 1 positions only), backward and an AdamW step.

Reported per configuration: tokens/s (padded batch), useful tokens/s (attention mask),
padding share and peak GPU memory, as a markdown table; also written to bench/out/train_gpu.json.

Usage: python bench/bench_train_gpu.py [--models mistral-7b,llama3-8b] [--modes lora,qlora]
                                       [--steps 6] [--warmup 2] [--max-len 768] [--batch-size 8]
       python bench/bench_train_gpu.py --tiny     # 2-layer, 64-wide shapes: a CPU dry run
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"

SHAPES: dict[str, dict[str, Any]] = {
    "mistral-7b": {
        "model_type": "mistral", "vocab_size": 32000, "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "max_position_embeddings": 32768, "rope_theta": 10000.0,
        "sliding_window": 4096, "tie_word_embeddings": False,
    },
    "llama3-8b": {
        "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "max_position_embeddings": 8192, "rope_theta": 500000.0,
        "tie_word_embeddings": False,
    },
}
# --tiny keeps each vocabulary (its logits are what the completion-only loss saves) and shrinks
# the rest, so the whole script runs on a CPU in about a minute.
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2}
LENGTH_MEDIAN, LENGTH_P90 = 320, 750  # tokens per OCR document
EOS = 2


def synthetic_rows(n: int, max_len: int, vocab: int, seed: int) -> list[dict[str, Any]]:
    """Generative rows: prompt tokens, then a 2-5 token completion ending in EOS."""
    rng = np.random.default_rng(seed)
    sigma = np.log(LENGTH_P90 / LENGTH_MEDIAN) / 1.2816  # z of the 90th percentile
    lengths = np.exp(rng.normal(np.log(LENGTH_MEDIAN), sigma, n)).astype(int).clip(16, max_len)
    rows = []
    for length in lengths:
        completion = [*rng.integers(100, vocab, int(rng.integers(1, 5))).tolist(), EOS]
        prompt = rng.integers(100, vocab, int(length) - len(completion)).tolist()
        rows.append({"input_ids": prompt + completion,
                     "labels": [-100] * len(prompt) + completion, "length": int(length)})
    return rows


def batches(rows: list[dict[str, Any]], batch_size: int, grouped: bool, seed: int) -> list[Any]:
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    if grouped:  # the sampler train_sampling_strategy="group_by_length" uses
        generator = torch.Generator().manual_seed(seed)
        order = list(LengthGroupedSampler(batch_size, lengths=[r["length"] for r in rows],
                                          generator=generator))
    else:
        order = np.random.default_rng(seed).permutation(len(rows)).tolist()
    return [[rows[i] for i in order[s : s + batch_size]]
            for s in range(0, len(order) - batch_size + 1, batch_size)]


def save_random_model(shape: dict[str, Any], folder: Path, device: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**shape)
    with torch.device(device):  # initialise on the GPU: seconds instead of minutes on CPU
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    del model
    gc.collect()


def load_for_training(folder: Path, mode: str, device: str) -> Any:
    """The model as ``rvl-llm train`` builds it for ``--trainable mode -g``."""
    from rvl_llm.inference.base_model import load_base_model
    from rvl_llm.train.config import TrainConfig
    from rvl_llm.train.model import make_trainable, quantization_settings

    cfg = TrainConfig.from_flags(data_dir=folder, name="bench", model=str(folder),
                                 generative=True, trainable=mode, lr=1e-4,
                                 gradient_checkpointing=mode == "qlora", mixed_precision="bf16")
    model = load_base_model(str(folder), generative=True, labels=(), pad_token_id=0,
                            dtype="bf16", quantization=quantization_settings(mode),
                            device_map={"": device})
    model.config.use_cache = False
    return make_trainable(model, cfg, "all-linear")  # qlora: also turns on checkpointing


def run_steps(model: Any, steps: list[Any], warmup: int, completion_len: int,
              device: str) -> dict[str, float]:
    import torch

    from rvl_llm.train.data import GenerativeCollator
    from rvl_llm.train.trainer import completion_loss

    collate = GenerativeCollator(pad_token_id=0, completion_len=completion_len)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    tokens = useful = 0
    elapsed = 0.0
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for i, rows in enumerate(steps):
        batch = {k: v.to(device) for k, v in collate(rows).items()}
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
            loss, _ = completion_loss(model, batch, completion_len)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.3)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        if i >= warmup:
            elapsed += time.perf_counter() - start
            tokens += batch["input_ids"].numel()
            useful += int(batch["attention_mask"].sum())
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return {"tokens_per_s": tokens / elapsed, "useful_tokens_per_s": useful / elapsed,
            "padding": 1 - useful / tokens, "peak_gib": peak, "seconds": elapsed}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_one(folder: Path, mode: str, grouped: bool, args: argparse.Namespace, vocab: int,
              device: str) -> dict[str, Any]:
    import torch

    n_steps = args.warmup + args.steps
    # The sampler groups within mega-batches of 50 batches; draw that many so grouping works.
    rows = synthetic_rows(max(n_steps, 50) * args.batch_size, args.max_len, vocab, seed=0)
    steps = batches(rows, args.batch_size, grouped, seed=0)[:n_steps]
    model = load_for_training(folder, mode, device)
    try:
        return run_steps(model, steps, args.warmup, completion_len=5, device=device)
    except torch.OutOfMemoryError:
        return {"oom": True}
    finally:
        del model
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| model | mode | batches | tokens/s | useful tokens/s | padding | peak GiB |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in results:
        if r.get("oom"):
            lines.append(f"| {r['model']} | {r['mode']} | {r['order']} | OOM | | | |")
            continue
        peak = "n/a" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        lines.append(f"| {r['model']} | {r['mode']} | {r['order']} | {r['tokens_per_s']:,.0f} "
                     f"| {r['useful_tokens_per_s']:,.0f} | {r['padding']:.0%} | {peak} |")
    return "\n".join(lines)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mistral-7b,llama3-8b")
    parser.add_argument("--modes", default="lora,qlora")
    parser.add_argument("--steps", type=int, default=6, help="measured steps per configuration")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-len", type=int, default=768)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes: a CPU dry run")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the random models are saved [a temporary folder]")
    args = parser.parse_args()
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        sys.exit("no CUDA GPU: pass --tiny for a CPU dry run")
    torch.backends.cuda.matmul.allow_tf32 = True
    work = Path(tempfile.mkdtemp(prefix="bench-train-", dir=args.work_dir))
    results = []
    try:
        for name in args.models.split(","):
            shape = {**SHAPES[name], **(TINY if args.tiny else {})}
            folder = work / name
            save_random_model(shape, folder, device)
            for mode in args.modes.split(","):
                for grouped in (False, True):
                    result = bench_one(folder, mode, grouped, args, shape["vocab_size"], device)
                    result.update(model=name, mode=mode, order="length-grouped" if grouped
                                  else "random", tiny=args.tiny, max_len=args.max_len,
                                  batch_size=args.batch_size, device=torch.cuda.get_device_name()
                                  if device != "cpu" else "cpu")
                    results.append(result)
                    print(json.dumps(result), flush=True)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "train_gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
