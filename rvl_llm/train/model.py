"""Loading the model and making the right parts trainable: classifier head, LoRA, QLoRA or all;
and the checks that need to know the machine, run before anything is prepared or written.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

from rvl_llm.errors import RvlError
from rvl_llm.inference.base_model import (
    HEAD_NAMES,
    bf16_supported,
    cuda_available,
    load_base_model,
)
from rvl_llm.inference.distributed import device_map, process_state
from rvl_llm.logs import Log
from rvl_llm.presets import Preset
from rvl_llm.recipe import Quantization
from rvl_llm.train.arguments import check_arguments

if TYPE_CHECKING:
    from rvl_llm.train.config import TrainConfig

# unsloth wants module names; these are "all-linear" for Llama/Mistral-style decoders.
UNSLOTH_ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def resolve_mixed_precision(choice: str | None, say: Log | None = None) -> str:
    """``--mixed-precision`` to what runs, as the recipe records it: "fp32", "bf16" or "fp16";
    ``say`` is told what ``auto`` chose and why. ``auto`` is fp32 without CUDA: CPU bf16 is
    emulated without AMX/AVX512-BF16, slower than fp32, and can score differently from eval."""
    if choice in (None, "fp32", "no"):  # None: the flag's off value in a config file
        return "fp32"
    if choice == "auto":
        if not cuda_available():
            chosen, why = "fp32", "no CUDA GPU; --mixed-precision bf16 to autocast on CPU"
        elif bf16_supported():
            chosen, why = "bf16", "the GPU supports it"
        else:
            chosen, why = "fp16", "the GPU has no bf16; loss scaling on"
        if say is not None:
            say(f"train: --mixed-precision auto: {chosen} ({why})")
        return chosen
    if choice == "bf16" and not bf16_supported():
        raise RvlError("--mixed-precision bf16: this GPU has no bf16 support; use fp16 or auto")
    if choice == "fp16" and not cuda_available():
        # Without CUDA there is no gradient scaler: fp16 gradients would underflow silently.
        raise RvlError("--mixed-precision fp16: needs a CUDA GPU; use bf16 (or auto) on CPU")
    return choice


def check_environment(cfg: TrainConfig) -> None:
    """Every check that depends on the machine; ``cfg`` has its preset defaults filled in."""
    if cfg.settings.split_model and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RvlError(
            "--split-model: not under a multi-process launch (accelerate launch / torchrun), "
            "which would split the model once per process; run it as a single process"
        )
    if cfg.settings.trainable == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        raise RvlError(
            "--trainable qlora: needs bitsandbytes (pip install bitsandbytes), "
            "or choose --trainable lora"
        )
    if cfg.settings.unsloth:
        if importlib.util.find_spec("unsloth") is None:
            raise RvlError("--unsloth: unsloth is not installed (pip install 'rvl-llm[unsloth]')")
        if not cuda_available():
            raise RvlError("--unsloth: needs a CUDA GPU; none is visible")
        if cfg.settings.trainable == "classifier":
            raise RvlError("--unsloth: speeds up lora, qlora and full training, not --trainable "
                           "classifier (head only); drop --unsloth")
    resolve_mixed_precision(cfg.settings.mixed_precision)
    if cfg.settings.tf32 and not cuda_available():
        raise RvlError("--tf32: TF32 is a CUDA GPU's (Ampere or newer); none is visible, drop it")
    attention = cfg.settings.attn_implementation
    if attention == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise RvlError("--attn-implementation flash_attention_2: flash-attn is not installed "
                       "(pip install flash-attn), or use sdpa")
    check_arguments(cfg)  # names transformers knows: optimiser, schedule, trackers, --trainer-arg


def quantization_settings(trainable: str) -> Quantization | None:
    """QLoRA's 4-bit settings as recorded in the recipe (and read back by load_checkpoint)."""
    if trainable != "qlora":
        return None
    return Quantization(compute_dtype="bf16" if bf16_supported() else "fp16")


def head_name(model: Any) -> str:
    import torch

    for name in HEAD_NAMES:
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return name
    raise RvlError(f"{type(model).__name__}: no classification head ({', '.join(HEAD_NAMES)})")


def lora_targets(preset: Preset | None) -> str | tuple[str, ...]:
    """The preset's LoRA modules, else peft's "all-linear" (as the recipe records them)."""
    return preset.lora_targets if preset else "all-linear"


def load_model(
    cfg: TrainConfig,
    location: str,
    *,
    labels: tuple[str, ...],
    pad_token_id: int,
    preset: Preset | None,
    mixed_precision: str,
) -> Any:
    """The model ready for the Trainer: loaded as the trainable mode needs, parts frozen."""
    if cfg.settings.unsloth:
        return _load_with_unsloth(cfg, location, labels, pad_token_id, preset)
    assert cfg.settings.trainable is not None
    # Frozen weights may live in the autocast dtype; trained ones are fp32 (AMP master weights).
    dtype = None if cfg.settings.trainable == "full" else mixed_precision
    model = load_base_model(
        location,
        generative=cfg.data.generative,
        labels=labels,
        pad_token_id=pad_token_id,
        dtype=dtype,
        quantization=quantization_settings(cfg.settings.trainable),
        device_map=_device_map(cfg),
        trust_remote_code=cfg.data.trust_remote_code,
        attn_implementation=cfg.settings.attn_implementation,
    )
    model.config.use_cache = False  # no KV cache in training (and it clashes with checkpointing)
    return make_trainable(model, cfg, lora_targets(preset))


def make_trainable(model: Any, cfg: TrainConfig, targets: str | tuple[str, ...]) -> Any:
    import torch

    head = None if cfg.data.generative else head_name(model)
    if cfg.settings.trainable == "full":
        model.requires_grad_(True)
    elif cfg.settings.trainable == "classifier":
        model.requires_grad_(False)
        getattr(model, head).requires_grad_(True)
    else:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if cfg.settings.trainable == "qlora":
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=cfg.settings.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        modules = targets if isinstance(targets, str) else list(targets)  # peft wants a list
        lora = LoraConfig(**_lora_settings(cfg, head), target_modules=modules,
                          task_type="CAUSAL_LM" if cfg.data.generative else "SEQ_CLS")
        model = get_peft_model(model, lora)
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()  # e.g. the head copied from a bf16 base
    return model


def _lora_settings(cfg: TrainConfig, head: str | None) -> dict[str, Any]:
    """peft's and unsloth's LoRA settings; the new head (not generative) is trained and saved."""
    return {"r": cfg.settings.lora_rank, "lora_alpha": cfg.settings.lora_alpha,
            "lora_dropout": cfg.settings.lora_dropout,
            "modules_to_save": [head] if head else None}


def _device_map(cfg: TrainConfig) -> Any:
    if cfg.settings.split_model:
        return device_map("auto")
    if cfg.settings.trainable == "qlora":
        # 4-bit weights cannot be moved after loading: load them on this process's device.
        return device_map(str(process_state().device))
    return None  # the Trainer moves the model


def _load_with_unsloth(
    cfg: TrainConfig,
    location: str,
    labels: tuple[str, ...],
    pad_token_id: int,
    preset: Preset | None,
) -> Any:
    os.environ.setdefault("UNSLOTH_RETURN_LOGITS", "1")  # our loss needs the logits
    from unsloth import FastLanguageModel

    checkpointing = "unsloth" if cfg.settings.gradient_checkpointing else False
    extra: dict[str, Any] = {}
    if not cfg.data.generative:
        extra = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                 "label2id": {name: i for i, name in enumerate(labels)}}
    model, _ = FastLanguageModel.from_pretrained(
        model_name=location,
        max_seq_length=cfg.data.max_len,
        dtype=None,  # unsloth picks bf16 where supported, else fp16
        load_in_4bit=cfg.settings.trainable == "qlora",
        full_finetuning=cfg.settings.trainable == "full",
        device_map="auto" if cfg.settings.split_model else "sequential",
        trust_remote_code=cfg.data.trust_remote_code,
        use_gradient_checkpointing=checkpointing,
        random_state=cfg.settings.seed,
        **extra,
    )
    model.config.pad_token_id = pad_token_id
    if cfg.settings.trainable in ("lora", "qlora"):
        targets = lora_targets(preset)
        model = FastLanguageModel.get_peft_model(
            model, **_lora_settings(cfg, None if cfg.data.generative else head_name(model)),
            target_modules=list(UNSLOTH_ALL_LINEAR if targets == "all-linear" else targets),
            use_gradient_checkpointing=checkpointing, random_state=cfg.settings.seed)
    return model
