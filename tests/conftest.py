"""Shared fixtures: the sample world (tiny models with the real Mistral and Llama 3 tokenizers,
a synthetic corpus), tokenizers loaded once per session, and small corpora written per test."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before anything imports huggingface_hub: tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "true"

import pytest

from rvl_llm.pipeline import tokenize
from rvl_llm.pipeline.cache import tokenizer_fingerprint

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_NAMES = ("tiny-mistral", "tiny-llama3")

# Loaded tokenizers (keyed by the tokenizer files' content) and raw backends (keyed by their JSON):
# a session-wide memo shared by the `tokenizers` fixture and `fast_tokenizer_loads`; a load costs
# seconds.
_LOADED: dict[str, Any] = {}
_BACKENDS: dict[str, Any] = {}
_REAL_LOAD = tokenize.load_tokenizer
_REAL_FROM_JSON = tokenize.backend_from_json


@dataclass(frozen=True)
class LoadedTokenizer:
    name: str
    folder: Path
    tokenizer: Any  # the transformers fast tokenizer
    backend: Any  # the pipeline's raw Rust tokenizer: special-token text stays text
    encode: Callable[[list[str]], list[list[int]]]  # the pipeline's encoder

    @property
    def bos(self) -> int:
        return self.tokenizer.bos_token_id

    @property
    def eos(self) -> int:
        return self.tokenizer.eos_token_id

    def full(self, text: str) -> list[int]:
        """Ids of the whole text, as the pipeline's backend tokenises it."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def full_batch(self, texts: list[str]) -> list[list[int]]:
        """``full`` of many texts, on all cores."""
        return [e.ids for e in self.backend.encode_batch_fast(texts, add_special_tokens=False)]

    def decode(self, ids: list[int] | tuple[int, ...]) -> str:
        return self.tokenizer.decode(list(ids))


def _fingerprint(folder: Path) -> str:
    return json.dumps(tokenizer_fingerprint(Path(folder)), sort_keys=True)


def _load(folder: Path, *, trust_remote_code: bool = False) -> Any:
    key = _fingerprint(folder)
    if key not in _LOADED:
        _LOADED[key] = _REAL_LOAD(Path(folder), trust_remote_code=trust_remote_code)
    return _LOADED[key]


def _from_json(tokenizer_json: str) -> Any:
    key = hashlib.sha256(tokenizer_json.encode()).hexdigest()
    if key not in _BACKENDS:
        _BACKENDS[key] = _REAL_FROM_JSON(tokenizer_json)
    return _BACKENDS[key]


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo's sample world (`make sample`), or one built for this session."""
    repo = ROOT / "sample"
    if (repo / ".complete").exists():
        return repo
    from rvl_llm.sample.models import build_sample

    out = tmp_path_factory.mktemp("sample")
    build_sample(out)
    return out


@pytest.fixture(scope="session")
def models(request: pytest.FixtureRequest) -> Path:
    """The tiny sample models' folder (train and eval tests)."""
    try:
        root = request.getfixturevalue("sample_root")
    except Exception as err:
        pytest.skip(f"tiny sample models unavailable ({err}); build them with `make sample`")
    return root / "models"


@pytest.fixture(scope="session")
def tokenizer_dirs(sample_root: Path) -> dict[str, Path]:
    return {name: sample_root / "models" / name for name in TOKENIZER_NAMES}


@pytest.fixture(scope="session")
def sample_data(sample_root: Path) -> Path:
    return sample_root / "data"


class Tokenizers:
    """Each sample tokenizer, loaded on first use and kept for the session."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        self._loaded: dict[str, LoadedTokenizer] = {}

    def __getitem__(self, name: str) -> LoadedTokenizer:
        if name not in self._loaded:
            tokenizer = _load(self.dirs[name])
            backend = _from_json(tokenizer.backend_tokenizer.to_str())
            self._loaded[name] = LoadedTokenizer(name, self.dirs[name], tokenizer, backend,
                                                 tokenize.batch_encoder(backend))
        return self._loaded[name]


@pytest.fixture(scope="session")
def tokenizers(tokenizer_dirs: dict[str, Path]) -> Tokenizers:
    return Tokenizers(tokenizer_dirs)


@pytest.fixture(scope="session", params=TOKENIZER_NAMES)
def tok(request: pytest.FixtureRequest, tokenizers: Tokenizers) -> LoadedTokenizer:
    """Each of the two real tokenizers in turn."""
    return tokenizers[request.param]


@pytest.fixture
def fast_tokenizer_loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """run_prepare loads the tokenizer on every build; here a folder whose tokenizer files have
    the same bytes reuses the session's loaded tokenizer (changed bytes still load afresh), and
    a raw backend is parsed once per tokenizer JSON."""
    monkeypatch.setattr(tokenize, "load_tokenizer", _load)
    monkeypatch.setattr(tokenize, "backend_from_json", _from_json)
    yield


Content = str | dict[str, Any] | bytes


@pytest.fixture
def write_corpus(tmp_path: Path) -> Callable[..., Path]:
    """``write_corpus({"train_0_3_aws.json": "text", ...}, folder="data")`` -> the folder.

    A str value becomes ``{"id": <stem>, "ocr": <text>}``; a dict is written as JSON as is;
    bytes are written raw (malformed JSON, invalid UTF-8).
    """

    def write(files: dict[str, Content], folder: str = "data") -> Path:
        out = tmp_path / folder
        out.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            path = out / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            elif isinstance(content, dict):
                path.write_text(json.dumps(content), encoding="utf-8")
            else:
                record = {"id": name.removesuffix(".json"), "ocr": content}
                path.write_text(json.dumps(record), encoding="utf-8")
        return out

    return write


@pytest.fixture
def small_corpus(write_corpus: Callable[..., Path]) -> Path:
    """Four plain documents per split (labels 0, 5, 10, 15), the last one long enough to be cut
    at max-len 64."""
    files = {}
    for split in ("train", "validation", "test"):
        for i in range(4):
            words = 200 if i == 3 else 12
            text = " ".join(f"{split} document {i} word {j}." for j in range(words // 4))
            files[f"{split}_{i:04d}_{i * 5}_aws.json"] = text
    return write_corpus(files)


CORPUS_LABELS = ("letter", "form", "email", "invoice")
CORPUS_WORDS = ("dear sincerely regards yours", "field date signature box",
                "from subject sent cc", "total amount due payment")


@pytest.fixture
def corpus(write_corpus: Callable[..., Path], tmp_path: Path) -> Path:
    """8 train and 4 validation documents over 4 classes, 5-40 words each, and labels.txt
    (train tests)."""
    files = {}
    for split, n in (("train", 8), ("validation", 4)):
        for i in range(n):
            label = i % len(CORPUS_LABELS)
            words = (CORPUS_WORDS[label] + " the office report page ").split() * (1 + i % 6)
            files[f"{split}_{i:04d}_{label}_aws.json"] = " ".join(words)
    (tmp_path / "labels.txt").write_text("\n".join(CORPUS_LABELS) + "\n")
    return write_corpus(files)


def prompt_for(cfg: Any) -> Any:
    """The PromptSpec prepare resolves for a PrepareConfig ``cfg`` (a recipe written by hand)."""
    from rvl_llm.pipeline.prompt import resolve_prompt
    from rvl_llm.presets import resolve_model

    source = resolve_model(cfg.model)
    return resolve_prompt(cfg.resolved().prompt_settings, model=cfg.model, preset=source.preset,
                          tokenizer_dir=source.tokenizer_dir(), labels=cfg.label_names())
