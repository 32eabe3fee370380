"""load_tokenizer_files: a tokenizer read from its own files with `tokenizers` alone gives exactly
what the transformers tokenizer gives (scheme, BOS/EOS, templates, document ids), on both real
sample tokenizers, a BERT-like WordPiece tokenizer and the post-processor flags transformers 5
rewrites; files only transformers can load still load through it; a cold prepare imports
neither torch nor transformers."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import prompt_for

from rvl_llm.errors import RvlError
from rvl_llm.labels import RVL_CDIP_CLASSES
from rvl_llm.pipeline import tokenize
from rvl_llm.pipeline.config import PrepareConfig
from rvl_llm.pipeline.rows import load_row_builder, row_builder
from rvl_llm.pipeline.tokenize import (
    TokenizerFiles,
    batch_encoder,
    build_template,
    encode_documents,
    load_tokenizer_files,
)
from rvl_llm.sample.corpus import generate_document

TEMPLATES = ("\n\n### Classification:", " ### Classification:")
TRICKY_TEXTS = [
    "", " ", "\n", "hello", " leading space", "  two leading spaces", "\nleading newline",
    "Dear Mr. Smith,\nplease find enclosed the invoice No. 4711 for $1,250.00.\n",
    "Total due. </s> <s> <unk> <|end_of_text|> <|begin_of_text|> [CLS] [SEP] Signed.",
    "café résumé naïve “quoted” — ½ 東京 日本語の文書 Привет مرحبا 😀 ß İ",
    "tabs\tand\r\nwindows\r\nlines   and    runs" + " " * 300 + "end",
    "".join(str(i % 10) for i in range(3000)),
]
LABELS = ("letter", "form", "email")
TEMPLATE_FIELDS = ("name", "bos_token", "bos_token_id", "eos_token", "eos_token_id", "prefix",
                   "suffix")


def same_fields(light: TokenizerFiles, heavy: TokenizerFiles) -> dict[str, tuple[Any, Any]]:
    """{field: (light, heavy)} for each field but the backend and loaded_by where they differ."""
    return {f: (getattr(light, f), getattr(heavy, f)) for f in TEMPLATE_FIELDS
            if getattr(light, f) != getattr(heavy, f)}


def texts_to_encode(sample_data: Path) -> list[str]:
    corpus = [json.loads(p.read_text(encoding="utf-8"))["ocr"]
              for p in sorted(sample_data.glob("*.json"))[::16]]
    return corpus + TRICKY_TEXTS + [generate_document(random.Random(5), 3, words=3000)]


def assert_same_tokenizer(light: TokenizerFiles, tokenizer: Any, texts: list[str], *,
                          generative_too: bool = True) -> None:
    """``light`` gives what the transformers ``tokenizer`` gives: fields, templates, documents."""
    heavy = TokenizerFiles.from_transformers(tokenizer)
    assert same_fields(light, heavy) == {}
    light_encode, heavy_encode = batch_encoder(light.backend), batch_encoder(heavy.backend)
    for budget in (1, 31, 500):
        assert (encode_documents(light_encode, texts, budget)
                == encode_documents(heavy_encode, texts, budget))
    modes = (False, True) if generative_too else (False,)
    for generative in modes:
        for response_template in TEMPLATES:
            settings = dict(generative=generative, response_template=response_template,
                            labels=RVL_CDIP_CLASSES, max_len=256)
            assert (build_template(light, light_encode, **settings)
                    == build_template(tokenizer, heavy_encode, **settings))


def without_post_processor(backend: Any) -> dict[str, Any]:
    data = json.loads(backend.to_str())
    data.pop("post_processor")
    return data


# ------------------------------------------------------------------------------------------------
# The two real tokenizers
# ------------------------------------------------------------------------------------------------


def test_the_sample_tokenizers_load_without_transformers_and_match_it(
    tok, sample_data: Path, fast_tokenizer_loads: None
) -> None:
    logged: list[str] = []
    light = load_tokenizer_files(tok.folder, log=logged.append)
    assert (light.loaded_by, logged) == ("tokenizers", [])
    assert (light.prefix, light.suffix) == ((tok.bos,), ())
    # The very Rust tokenizer transformers uses (its post-processor is checked through the scheme).
    assert without_post_processor(light.backend) == without_post_processor(
        tok.tokenizer.backend_tokenizer)
    assert light.backend.encode_special_tokens  # special-token text in a document stays text
    assert_same_tokenizer(light, tok.tokenizer, texts_to_encode(sample_data))


@pytest.mark.parametrize("generative", [True, False], ids=["generative", "classifier"])
def test_row_builders_from_the_files_and_from_transformers_agree(
    tok, sample_data: Path, generative: bool, fast_tokenizer_loads: None
) -> None:
    cfg = PrepareConfig(data_dir=sample_data, model=str(tok.folder), generative=generative,
                        max_len=64, labels=LABELS)
    prompt = prompt_for(cfg)
    light, heavy = load_row_builder(prompt, tok.folder), row_builder(prompt, tok.tokenizer)
    assert light.template == heavy.template
    texts = texts_to_encode(sample_data)
    assert light.prompt_rows(texts) == heavy.prompt_rows(texts)


# ------------------------------------------------------------------------------------------------
# A BERT-like WordPiece tokenizer: CLS/SEP around the text, no BOS/EOS
# ------------------------------------------------------------------------------------------------

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BERT_WORDS = ["the", "invoice", "no", "total", "due", "dear", "mr", "smith", "please", "find",
              "for", "a", "to", "of", ".", ",", "$", "1", "2", "4", "5", "7", "##s", "##ed",
              "##1", "##0", "##ing"]


def write_bert(folder: Path, tokenizer_class: str) -> Path:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = {token: i for i, token in enumerate(BERT_SPECIALS + BERT_WORDS)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    backend.decoder = decoders.WordPiece()
    backend.add_special_tokens(BERT_SPECIALS)
    folder.mkdir()
    backend.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": tokenizer_class, "do_lower_case": True, "unk_token": "[UNK]",
              "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
              "mask_token": "[MASK]"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_a_bert_like_tokenizer_puts_cls_and_sep_around_the_document(
    tmp_path: Path, sample_data: Path
) -> None:
    folder = write_bert(tmp_path / "bert", "PreTrainedTokenizerFast")
    light = load_tokenizer_files(folder)
    assert light.loaded_by == "tokenizers"
    assert (light.prefix, light.suffix) == ((2,), (3,))
    assert (light.bos_token_id, light.eos_token_id) == (None, None)
    tokenizer = tokenize.load_tokenizer(folder)
    assert_same_tokenizer(light, tokenizer, texts_to_encode(sample_data), generative_too=False)
    template = build_template(light, batch_encoder(light.backend), generative=False,
                              response_template=TEMPLATES[0], labels=LABELS, max_len=16)
    assert (template.prefix, template.suffix, template.document_budget) == ((2,), (3,), 14)
    for source in (light, tokenizer):  # no EOS: generative mode fails alike
        with pytest.raises(RvlError, match=f"--model {folder}: the tokenizer has no EOS token"):
            build_template(source, batch_encoder(light.backend), generative=True,
                           response_template=TEMPLATES[0], labels=LABELS, max_len=16)


# ------------------------------------------------------------------------------------------------
# The scheme transformers 5 builds from tokenizer_config flags, and where BOS/EOS come from
# ------------------------------------------------------------------------------------------------


def mistral_copy(source: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        shutil.copy(source / name, target / name)
    return target


def edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def drop_flags(config: dict[str, Any]) -> None:
    config.pop("add_bos_token")
    config.pop("add_eos_token")


def eos_after_text(tokenizer_json: dict[str, Any]) -> None:
    tokenizer_json["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}},
    }


def as_added_token_dicts(config: dict[str, Any]) -> None:
    for key in ("bos_token", "eos_token"):
        config[key] = {"__type": "AddedToken", "content": config[key], "lstrip": False,
                       "normalized": False, "rstrip": False, "single_word": False,
                       "special": True}


def tokens_only_in_the_map(folder: Path) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        special = {k: config.pop(k) for k in ("bos_token", "eos_token", "unk_token")}
        (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")

    return edit


def map_over_config(folder: Path) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:  # legacy files: the map wins over the config
        special = {"eos_token": "<unk>"}
        (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")

    return edit


# Each variant: (edit of tokenizer_config.json, edit of tokenizer.json, expected scheme). With a
# tokenizer.json, transformers 5 drops the add_bos_token/add_eos_token flags: the file decides.
SCHEMES: dict[str, tuple[Any, Any, tuple[tuple[int, ...], tuple[int, ...]]]] = {
    "flags as shipped (bos on)": (None, None, ((1,), ())),
    "add_eos_token on": (lambda c: c.update(add_eos_token=True), None, ((1,), ())),
    "add_bos_token off": (lambda c: c.update(add_bos_token=False), None, ((1,), ())),
    "no flags": (drop_flags, None, ((1,), ())),
    "eos-after-text post-processor": (None, eos_after_text, ((), (2,))),
    "eos-after-text, add_bos_token on, add_eos_token off": (
        lambda c: c.update(add_bos_token=True, add_eos_token=False), eos_after_text, ((), (2,))),
    "no post-processor, add_eos_token on": (lambda c: c.update(add_eos_token=True),
                                            lambda t: t.update(post_processor=None), ((), ())),
    "no bos_token": (lambda c: c.update(bos_token=None), None, ((1,), ())),
    "bos/eos as AddedToken dicts": (as_added_token_dicts, None, ((1,), ())),
}


@pytest.mark.parametrize("variant", list(SCHEMES))
def test_the_scheme_follows_transformers_rewrite_of_the_post_processor(
    tokenizer_dirs: dict[str, Path], tmp_path: Path, variant: str
) -> None:
    edit_config, edit_json_file, expected = SCHEMES[variant]
    folder = mistral_copy(tokenizer_dirs["tiny-mistral"], tmp_path / "tok")
    if edit_config is not None:
        edit_json(folder / "tokenizer_config.json", edit_config)
    if edit_json_file is not None:
        edit_json(folder / "tokenizer.json", edit_json_file)
    light = load_tokenizer_files(folder)
    assert light.loaded_by == "tokenizers"
    assert (light.prefix, light.suffix) == expected
    heavy = TokenizerFiles.from_transformers(tokenize.load_tokenizer(folder))
    assert same_fields(light, heavy) == {}


@pytest.mark.parametrize("where", ["only in special_tokens_map.json", "map over config"])
def test_special_tokens_come_from_the_files_transformers_reads(
    tokenizer_dirs: dict[str, Path], tmp_path: Path, where: str
) -> None:
    folder = mistral_copy(tokenizer_dirs["tiny-mistral"], tmp_path / "tok")
    edit = tokens_only_in_the_map if where.startswith("only") else map_over_config
    edit_json(folder / "tokenizer_config.json", edit(folder))
    light = load_tokenizer_files(folder)
    assert light.loaded_by == "tokenizers"
    assert light.eos_token == ("</s>" if where.startswith("only") else "<unk>")
    heavy = TokenizerFiles.from_transformers(tokenize.load_tokenizer(folder))
    assert same_fields(light, heavy) == {}


# ------------------------------------------------------------------------------------------------
# Files only transformers loads as transformers does
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def transformers_loads(monkeypatch: pytest.MonkeyPatch) -> dict[Path, Any]:
    """The folders load_tokenizer_files handed to transformers -> the tokenizer it loaded."""
    calls: dict[Path, Any] = {}
    real = tokenize.load_tokenizer

    def spy(folder: Path, *, trust_remote_code: bool = False) -> Any:
        calls[folder] = real(folder, trust_remote_code=trust_remote_code)
        return calls[folder]

    monkeypatch.setattr(tokenize, "load_tokenizer", spy)
    return calls


def test_a_folder_without_tokenizer_json_loads_with_transformers(
    tokenizer_dirs: dict[str, Path], tmp_path: Path, sample_data: Path,
    transformers_loads: dict[Path, Any],
) -> None:
    folder = tmp_path / "sentencepiece-only"
    folder.mkdir()
    for name in ("tokenizer.model", "tokenizer_config.json", "config.json"):
        shutil.copy(tokenizer_dirs["tiny-mistral"] / name, folder / name)
    logged: list[str] = []
    files = load_tokenizer_files(folder, log=logged.append)
    assert list(transformers_loads) == [folder]
    assert files.loaded_by.startswith("transformers (no tokenizer.json")
    assert logged == [f"tokenizer: {folder}: no tokenizer.json, only a sentencepiece or "
                      "vocabulary file; loading it with transformers"]
    assert_same_tokenizer(files, transformers_loads[folder], texts_to_encode(sample_data))


def test_a_model_class_that_may_rebuild_the_backend_loads_with_transformers(
    tmp_path: Path, sample_data: Path, transformers_loads: dict[Path, Any]
) -> None:
    folder = write_bert(tmp_path / "bert", "BertTokenizer")
    files = load_tokenizer_files(folder)
    assert list(transformers_loads) == [folder]
    assert files.loaded_by == ("transformers (tokenizer_class BertTokenizer, which transformers "
                               "may rebuild from its vocabulary)")
    assert (files.prefix, files.suffix) == ((2,), (3,))
    assert_same_tokenizer(files, transformers_loads[folder], texts_to_encode(sample_data),
                          generative_too=False)


def test_llama_class_files_of_a_llama_model_load_with_transformers(
    tokenizer_dirs: dict[str, Path], tmp_path: Path, sample_data: Path,
    transformers_loads: dict[Path, Any],
) -> None:
    # transformers 5 rebuilds these as LlamaTokenizer (its own pre-tokenizer, not the file's):
    # reading tokenizer.json as written would tokenise some texts differently.
    folder = mistral_copy(tokenizer_dirs["tiny-mistral"], tmp_path / "llama2-like")
    edit_json(folder / "config.json", lambda c: c.update(model_type="llama"))
    files = load_tokenizer_files(folder)
    assert list(transformers_loads) == [folder]
    assert files.loaded_by.startswith("transformers (tokenizer_class LlamaTokenizer")
    assert_same_tokenizer(files, transformers_loads[folder], texts_to_encode(sample_data))


@pytest.mark.parametrize("edit", ["new special token", "added token flags differ"])
def test_tokens_the_config_adds_send_the_load_to_transformers(
    tokenizer_dirs: dict[str, Path], tmp_path: Path, sample_data: Path, edit: str,
    transformers_loads: dict[Path, Any],
) -> None:
    folder = mistral_copy(tokenizer_dirs["tiny-mistral"], tmp_path / "tok")
    if edit == "new special token":
        edit_json(folder / "tokenizer_config.json", lambda c: c.update(pad_token="<pad>"))
    else:
        entry = {"content": "</s>", "lstrip": True, "normalized": False, "rstrip": False,
                 "single_word": False, "special": True}
        edit_json(folder / "tokenizer_config.json",
                  lambda c: c.update(added_tokens_decoder={"2": entry}))
    files = load_tokenizer_files(folder)
    assert list(transformers_loads) == [folder]
    assert files.loaded_by.startswith("transformers (tokenizer_config.json")
    assert_same_tokenizer(files, transformers_loads[folder], texts_to_encode(sample_data))


def test_remote_code_sends_the_load_to_transformers(
    tokenizer_dirs: dict[str, Path], tmp_path: Path, transformers_loads: dict[Path, Any]
) -> None:
    folder = mistral_copy(tokenizer_dirs["tiny-mistral"], tmp_path / "tok")
    edit_json(folder / "tokenizer_config.json", lambda c: c.update(
        auto_map={"AutoTokenizer": [None, "custom.CustomTokenizer"]}))
    files = load_tokenizer_files(folder)
    assert list(transformers_loads) == [folder]
    assert files.loaded_by == "transformers (tokenizer_config.json names remote code (auto_map))"


def test_a_failed_transformers_load_says_why_it_was_needed(tmp_path: Path) -> None:
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.model").write_bytes(b"not a sentencepiece model")
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "LlamaTokenizer"}')
    with pytest.raises(RvlError) as err:
        load_tokenizer_files(folder)
    assert err.value.message.startswith(f"--model {folder}: cannot load its tokenizer")
    assert err.value.message.endswith("[loaded with transformers: no tokenizer.json, only a "
                                      "sentencepiece or vocabulary file]")


def test_a_broken_tokenizer_json_is_named(tokenizer_dirs: dict[str, Path], tmp_path: Path) -> None:
    folder = mistral_copy(tokenizer_dirs["tiny-mistral"], tmp_path / "tok")
    (folder / "tokenizer.json").write_text('{"model": ', encoding="utf-8")
    with pytest.raises(RvlError, match=f"--model {folder}: cannot load its tokenizer"):
        load_tokenizer_files(folder)


# ------------------------------------------------------------------------------------------------
# A cold prepare imports neither torch nor transformers
# ------------------------------------------------------------------------------------------------


def test_a_cold_prepare_imports_neither_torch_nor_transformers(
    small_corpus: Path, tokenizer_dirs: dict[str, Path], tmp_path: Path
) -> None:
    mistral, llama3 = (str(tokenizer_dirs[n]) for n in ("tiny-mistral", "tiny-llama3"))
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rvl_llm.cli import main\n"
        "from rvl_llm.pipeline.config import PrepareConfig\n"
        "from rvl_llm.pipeline.prepare import run_prepare\n"
        f"main(['prepare', '--data', {str(small_corpus)!r}, '--model', {mistral!r},\n"
        f"      '--cache-dir', {str(tmp_path / 'cli-cache')!r}, '--max-len', '64',\n"
        "      '--generative', '--no-progress'], standalone_mode=False)\n"
        f"cfg = PrepareConfig(data_dir=Path({str(small_corpus)!r}), model={llama3!r},\n"
        f"    cache_dir=Path({str(tmp_path / 'api-cache')!r}), max_len=64, progress=False)\n"
        "result = run_prepare(cfg)\n"
        "assert len(result.built) == 3, result.built\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"
    assert len(list((tmp_path / "cli-cache").glob("*/train/*"))) >= 1


def test_the_dataclass_compares_without_its_backend(tokenizer_dirs: dict[str, Path]) -> None:
    light = load_tokenizer_files(tokenizer_dirs["tiny-mistral"])
    again = load_tokenizer_files(tokenizer_dirs["tiny-mistral"])
    assert light.backend is not again.backend and light == again
    assert dataclasses.replace(light, suffix=(2,)) != light
