"""Presets: data only, and their folders found wherever the command runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvl_llm.errors import RvlError
from rvl_llm.presets import HOME_VARIABLE, PROJECT_ROOT, load_presets, resolve_model


def test_a_preset_folder_is_the_projects_not_the_current_folders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOME_VARIABLE, raising=False)
    (tmp_path / "sample" / "models" / "tiny-llama3").mkdir(parents=True)  # a decoy
    monkeypatch.chdir(tmp_path)
    source = resolve_model("tiny-llama3")
    assert Path(source.location) == (PROJECT_ROOT / "sample/models/tiny-llama3").resolve()


def test_the_home_variable_moves_the_preset_folders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path))
    with pytest.raises(RvlError, match=f"make sample.*{HOME_VARIABLE}"):
        resolve_model("tiny-llama3")
    (tmp_path / "sample" / "models" / "tiny-llama3").mkdir(parents=True)
    assert resolve_model("tiny-llama3").location == str(tmp_path / "sample/models/tiny-llama3")


def test_every_preset_has_a_model_and_a_pad_token() -> None:
    presets = load_presets()
    assert {"mistral", "llama3", "tiny-mistral", "tiny-llama3", "smollm2"} <= set(presets)
    assert all(p.model and p.pad_token for p in presets.values())
