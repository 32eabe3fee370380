"""The embedded sample world, built offline and deterministically.

``python -m rvl_llm.sample --out sample`` writes

* ``sample/data/``: a synthetic RVL-CDIP-like OCR corpus (:mod:`rvl_llm.sample.corpus`, its
  classes described in ``classes.toml`` and ``words.toml``), 768/128/128 documents in
  train/validation/test;
* ``sample/data.jsonl`` and ``sample/data.parquet``: the same documents as one table each
  (``id``, ``split``, ``label``, ``ocr``; the label a class name in JSON lines, an index in
  Parquet);
* ``sample/unlabelled/``: a few documents with no label, to try ``rvl-llm predict`` on;
* ``sample/scans/``: some of those documents printed as scanned pages (PNG, JPEG, a multi-page
  TIFF, PDFs) for ``rvl-llm ocr``, their known text in ``sample/scans-truth/``
  (:mod:`rvl_llm.sample.scans`);
* ``sample/models/tiny-mistral`` and ``sample/models/tiny-llama3``: tiny random models with the
  real Mistral-7B-v0.1 and Llama 3 tokenizers (:mod:`rvl_llm.sample.models`).

Importing this package is cheap: torch and transformers load only when a model is built.
"""
