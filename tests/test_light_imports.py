"""Commands and the API start fast: importing them loads none of the heavy libraries.

Each case runs in a fresh interpreter, since this test session has long imported everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# an import statement -> the modules it must not load
LIGHT_IMPORTS: dict[str, tuple[str, ...]] = {
    "import rvl_llm.cli": ("yaml", "torch", "tesserocr", "ray", "pypdfium2", "PIL",
                    "rapidocr_onnxruntime"),
    "import rvl_llm.evaluate.cli": ("torch", "transformers", "matplotlib", "sklearn", "numpy"),
    "import rvl_llm.export.cli": ("torch", "transformers", "peft", "numpy"),
    "import rvl_llm.predict.cli": ("torch",),
    "from rvl_llm import Classifier": ("torch",),
    "import rvl_llm.train.guards, rvl_llm.train.run_folder": ("torch", "transformers"),
}


@pytest.mark.parametrize(("statement", "heavy"), LIGHT_IMPORTS.items(), ids=LIGHT_IMPORTS.keys())
def test_importing_loads_no_heavy_library(statement: str, heavy: tuple[str, ...]) -> None:
    code = f"import sys; {statement}; print([m for m in {heavy!r} if m in sys.modules])"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
