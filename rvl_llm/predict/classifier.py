"""``Classifier``: a trained checkpoint as a Python object that labels texts.

    from rvl_llm import Classifier
    clf = Classifier.from_checkpoint("log/run/final")
    clf.predict(["text one", "text two"], top_k=3)[0].label

It is the code path of ``rvl-llm predict``: the checkpoint's recipe gives the template, the
pipeline cuts each text and builds its prompt row as prepare would (``rvl_llm.pipeline.rows``),
and the inference layer scores every class exactly (``rvl_llm.inference.scoring``), so a
document gets the label and probabilities eval gives it at the same max-len. Importing this
module loads no torch; ``from_checkpoint`` does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rvl_llm.errors import RvlError
from rvl_llm.inference.aggregate import aggregate_scores
from rvl_llm.inference.calibration import check_min_probability, read_temperature
from rvl_llm.inference.checkpoint import LoadedCheckpoint, load_checkpoint, weights_folder
from rvl_llm.inference.distributed import device_map
from rvl_llm.inference.scoring import NonFiniteScores, class_probabilities, score_prompts
from rvl_llm.options import DEFAULT_BATCH_SIZE
from rvl_llm.pipeline.rows import PromptRows, RowBuilder, row_builder
from rvl_llm.predict.config import DEFAULT_TOP_K
from rvl_llm.predict.inputs import BadInput, iter_inputs, no_documents
from rvl_llm.recipe import Recipe

RECORD_DECIMALS = 6
TEXTS_PER_PASS = 1024  # texts cut, tokenised and length-sorted together: bounds the memory
_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: no tokenizer encodes it


class Ranked(NamedTuple):
    label: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    label: str | None  # the most probable class; None below ``min_probability`` (abstained)
    probability: float  # the top probability: softmax over the class scores, as eval computes
    # it (divided by calibration.json's temperature first, when the checkpoint has one)
    top_k: tuple[Ranked, ...]  # the k most probable classes, most probable first
    scores: dict[str, float]  # every class -> its probability
    truncated: bool  # the text was cut to fit max-len

    def record(self, doc_id: str) -> dict[str, Any]:
        """The JSON-ready record ``rvl-llm predict`` writes for this document."""
        return {  # six decimals: enough to rank and threshold, and a line a person can read
            "id": doc_id,
            "label": self.label,
            "probability": round(self.probability, RECORD_DECIMALS),
            "top_k": [{"label": r.label, "probability": round(r.probability, RECORD_DECIMALS)}
                      for r in self.top_k],
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class Scored:
    """Class log-scores and probabilities of a batch of texts, in order (the raw form)."""

    scores: np.ndarray  # [n, C] natural-log scores
    probs: np.ndarray  # [n, C]
    truncated: list[bool]


class Classifier:
    """A checkpoint (``final/``, ``checkpoint-N/``, a run folder or an export) ready to label
    texts. Build it with :meth:`from_checkpoint`."""

    def __init__(self, checkpoint: Path, loaded: LoadedCheckpoint, rows: RowBuilder, *,
                 max_len: int, batch_size: int = DEFAULT_BATCH_SIZE,
                 class_chunk: int | None = None, temperature: float = 1.0) -> None:
        self.checkpoint = checkpoint
        self.max_len = max_len  # tokens per document row
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.recipe: Recipe = loaded.recipe
        self.pad_token_id = loaded.pad_token_id
        self.rows = rows
        self.batch_size = batch_size
        self.class_chunk = class_chunk
        self.temperature = temperature  # calibration.json's (``eval --calibrate``)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | None = None,
        *,
        max_len: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        class_chunk: int | None = None,
        trust_remote_code: bool = False,
    ) -> Classifier:
        """Load a checkpoint. ``device``: None picks the visible GPUs, else cpu; "auto" spreads
        the layers over every GPU; "cuda:1" holds the model on one (``device_map``).
        ``max_len``: tokens per document row [the max-len the run trained with]; more than the
        model's positions is refused."""
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"from_checkpoint: path must be a str or a path, not "
                            f"{type(path).__name__}")
        if device is not None and not isinstance(device, str):
            raise TypeError(f"from_checkpoint: device must be a str or None, not "
                            f"{type(device).__name__}")
        _check_count("batch_size", batch_size)
        for name, value in (("max_len", max_len), ("class_chunk", class_chunk)):
            if value is not None:
                _check_count(name, value)
        folder = weights_folder(Path(path))
        recipe = Recipe.read(folder)  # a bad recipe is named before any weights load
        temperature = read_temperature(folder)  # so is a damaged calibration.json
        prompt = recipe.prompt.with_max_len(max_len)  # the run's prompt, at this max-len
        loaded = load_checkpoint(folder, device_map=device_map(device),
                                 trust_remote_code=trust_remote_code)
        if max_len is not None:
            _check_positions(max_len, loaded.model)
        # The checkpoint's own tokenizer files: the same tokenizer training prepared with, and
        # present wherever the checkpoint is copied.
        rows = row_builder(prompt, loaded.tokenizer)
        return cls(folder, loaded, rows, max_len=prompt.max_len, batch_size=batch_size,
                   class_chunk=class_chunk, temperature=temperature or 1.0)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.recipe.labels

    def predict(self, texts: str | Iterable[str], top_k: int = DEFAULT_TOP_K,
                min_probability: float | None = None) -> list[Prediction]:
        """One prediction per text, in order: a str is one text; a list, tuple or other iterable
        of str (a generator too) is many. Below ``min_probability`` the label is None (the
        top-k are kept)."""
        texts = _check_texts(texts)
        _check_count("top_k", top_k)
        check_min_probability(min_probability, "min_probability")
        predictions: list[Prediction] = []
        for start in range(0, len(texts), TEXTS_PER_PASS):
            predictions += self.predictions(self.score(texts[start : start + TEXTS_PER_PASS]),
                                            top_k, min_probability)
        return predictions

    def predict_files(self, paths: str | Path | Iterable[str | Path],
                      top_k: int = DEFAULT_TOP_K,
                      text_field: str | None = None,
                      min_probability: float | None = None) -> list[Prediction]:
        """One prediction per document in ``paths`` (OCR JSON, .txt, .jsonl, .csv or .parquet
        files, images and PDFs, OCR'd with the training data's OCR settings, or folders of them;
        one path alone is one path), in input order. A file that cannot be used raises, naming
        it; no documents at all raises, as ``rvl-llm predict`` does."""
        given = [os.fspath(p) for p in _listed(paths, str | os.PathLike, "predict_files: paths",
                                               "a path", "paths")]
        _check_count("top_k", top_k)
        check_min_probability(min_probability, "min_probability")
        if text_field is not None and not isinstance(text_field, str):
            raise TypeError(f"predict_files: text_field must be a str or None, not "
                            f"{type(text_field).__name__}")
        texts = []
        for item in iter_inputs(given, text_field=text_field, ocr_data=self.recipe.data.data_dir):
            if isinstance(item, BadInput):
                raise RvlError(f"{item.source}: {item.reason}")
            texts.append(item.text)
        if not texts:
            raise no_documents(given)
        return self.predict(texts, top_k, min_probability)

    def score(self, texts: Sequence[str]) -> Scored:
        """Log-scores and probabilities of every class for each text (one pass; the caller
        bounds how many texts come at once)."""
        return self.score_rows(self.rows.prompt_rows(texts))

    def score_rows(self, rows: PromptRows) -> Scored:
        """``score`` of rows already built by ``self.rows.prompt_rows`` (predict builds the next
        chunk's rows while the model scores this one). The windows of one text (``--truncation
        chunks``) are aggregated into its scores, as eval does."""
        scores = score_prompts(
            self.model, [r.input_ids for r in rows.rows], self.rows.template,
            pad_token_id=self.pad_token_id, batch_size=self.batch_size,
            class_chunk=self.class_chunk,
        )
        truncated = [False] * rows.texts
        for row, i in zip(rows.rows, rows.owner, strict=True):
            truncated[i] = truncated[i] or row.truncated
        try:
            if len(rows.rows) != rows.texts:
                scores = aggregate_scores(scores, np.asarray(rows.owner, dtype=np.int64),
                                          rows.texts, self.recipe.settings.chunk_aggregate)
            probs = class_probabilities(scores / self.temperature)
        except NonFiniteScores as err:
            raise RvlError(f"-c {self.checkpoint}: {err.message}") from err
        return Scored(scores, probs, truncated)

    def predictions(self, scored: Scored, top_k: int = DEFAULT_TOP_K,
                    min_probability: float | None = None) -> list[Prediction]:
        """The predictions of scored texts, in order."""
        labels = self.labels
        ranked = np.argsort(-scored.probs, axis=1, kind="stable")[:, :top_k]
        predictions = []
        for probs, order, truncated in zip(scored.probs, ranked, scored.truncated, strict=True):
            top = tuple(Ranked(labels[c], float(probs[c])) for c in order)
            sure = min_probability is None or top[0].probability >= min_probability
            predictions.append(Prediction(
                top[0].label if sure else None, top[0].probability, top,
                {name: float(p) for name, p in zip(labels, probs, strict=True)}, truncated))
        return predictions


def _check_count(name: str, value: object) -> None:
    """A whole number of at least 1 (a bool, a float or a str is refused, not truncated)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number (int), not {type(value).__name__} "
                        f"{value!r}")
    if value < 1:
        raise ValueError(f"{name} {value}: must be a positive whole number")


def _check_texts(texts: object) -> list[str]:
    """The texts as a list, or TypeError/ValueError naming the first that is not text."""
    texts = _listed(texts, str, "predict: texts", "a str", "str")
    for i, text in enumerate(texts):
        if (bad := _SURROGATE.search(text)) is not None:
            raise ValueError(f"predict: texts[{i}] holds a lone surrogate "
                             f"(U+{ord(bad.group()):04X}) at character {bad.start()}, which is "
                             "not text; decode with errors='replace'")
    return texts


def _listed(value: object, kind: Any, name: str, one: str, many: str) -> list[Any]:
    """``value`` as a list: one ``kind`` alone, or an iterable of them (not bytes nor a
    mapping); else a TypeError naming ``name`` or its first item that is not a ``kind``."""
    if isinstance(value, kind):
        return [value]
    if isinstance(value, bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        hint = " (decode bytes to str first)" if isinstance(value, bytes | bytearray) else ""
        raise TypeError(f"{name} must be {one} or a list of {many}, not "
                        f"{type(value).__name__}{hint}")
    items = list(value)
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise TypeError(f"{name}[{i}] is {type(item).__name__}, not {one}")
    return items


def _check_positions(max_len: int, model: Any) -> None:
    """Refuse a max-len beyond the model's position embeddings (rows past them would be scored
    with positions it never learnt, or fail deep in the model)."""
    config = getattr(model, "config", None)
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions",
                                                                        None)
    if isinstance(limit, int) and max_len > limit:
        raise RvlError(f"--max-len {max_len}: beyond the model's {limit} positions "
                       f"(max_position_embeddings); give at most {limit}")

