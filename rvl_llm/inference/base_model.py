"""Loading a base model as training left it: a causal LM or a sequence classifier with a new head
for the label set, in the recipe's dtype, 4-bit again for QLoRA. Used by train (to start) and by
the inference layer (to put a checkpoint's adapter or head back on), so both load it one way.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from rvl_llm.errors import RvlError

if TYPE_CHECKING:
    from rvl_llm.presets import Preset
    from rvl_llm.recipe import Quantization

# Names transformers gives the new head of *ForSequenceClassification models.
HEAD_NAMES = ("score", "classifier", "classification_head")


def bf16_supported() -> bool:
    """CUDA: ask the device. CPU: torch's CPU autocast runs bf16 everywhere (natively with
    AVX512-BF16/AMX, emulated and slower otherwise), so it is supported, if not always fast."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return True

def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()

def torch_dtype(name: str | None) -> Any:
    import torch

    # None: no dtype asked for (full precision), as "fp32".
    return {None: torch.float32, "fp32": torch.float32, "bf16": torch.bfloat16,
            "fp16": torch.float16}[name]

def load_base_model(
    location: str,
    *,
    generative: bool,
    labels: tuple[str, ...],
    pad_token_id: int,
    dtype: str | None,
    quantization: Quantization | None,
    device_map: Any = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> Any:
    """The pretrained model: causal LM, or sequence classifier with a new head for ``labels``.
    ``attn_implementation`` None: transformers' choice for the model."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "device_map": device_map}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        compute = torch_dtype(quantization.compute_dtype)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quantization.quant_type,
            bnb_4bit_use_double_quant=quantization.double_quant,
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_quant_storage=compute,  # lets FSDP shard the 4-bit weights with the rest
        )
        dtype = quantization.compute_dtype
    kwargs["dtype"] = torch_dtype(dtype)
    if not generative:
        kwargs.update(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            pad_token_id=pad_token_id,
        )
    auto = AutoModelForCausalLM if generative else AutoModelForSequenceClassification
    try:
        model = auto.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as err:  # missing files or config, no network, gated repo
        raise RvlError(
            f"--model {location}: cannot load the model ({str(err).splitlines()[0]}); "
            "pass a local folder or a preset, or download it where there is network"
        ) from err
    model.config.pad_token_id = pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = pad_token_id
    return model


def cpu_only() -> bool:
    """Train on CPU: asked for (``accelerate launch --cpu``) or no GPU of any kind. Under a
    multi-process launch accelerate runs CPU data parallelism only when told it is on CPU."""
    import torch

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


def resolve_pad_token(tokenizer: Any, requested: str | None, preset: Preset | None) -> str:
    """The pad token: ``--set-pad-token TOKEN``; else the tokenizer's own unless the bare flag
    asks to replace it; else the preset's, unk, eos. Padding never carries a label (labels are
    padded with -100), so even eos is safe."""
    if requested:
        if requested not in tokenizer.get_vocab():
            raise RvlError(f"--set-pad-token {requested}: not a token of this tokenizer")
        return requested
    if requested is None and tokenizer.pad_token is not None:
        return tokenizer.pad_token
    for candidate in (preset.pad_token if preset else None, tokenizer.unk_token,
                      tokenizer.eos_token):
        if candidate is not None and candidate in tokenizer.get_vocab():
            return candidate
    raise RvlError("--set-pad-token: the tokenizer has no pad, unk or eos token; name one")
